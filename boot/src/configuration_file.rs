//! The appliance's configuration file as it reaches the image: the bytes of the first boot
//! module (QEMU's `-initrd`, GRUB's `module2`) or of QEMU's fw_cfg file
//! `opt/unisock/config`, bounded in size. Parsing them is the app's business, not this one's.

use alloc::vec::Vec;
use core::fmt;

/// The largest configuration file the image takes; a bigger one stops the boot.
pub const MAX_CONFIGURATION_BYTES: u64 = 1 << 20;
/// The fw_cfg file name (`-fw_cfg name=opt/unisock/config,file=FILE`).
pub const FIRMWARE_CONFIG_FILE_NAME: &str = "opt/unisock/config";

/// Where the configuration file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigurationSource {
    BootModule,
    FirmwareConfig,
}

impl ConfigurationSource {
    /// How the boot log names it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigurationSource::BootModule => "boot module",
            ConfigurationSource::FirmwareConfig => "fw_cfg opt/unisock/config",
        }
    }
}

/// The configuration file's bytes, copied into the heap, and where they came from.
pub struct ConfigurationFile {
    pub bytes: Vec<u8>,
    pub source: ConfigurationSource,
}

/// Why the configuration file cannot be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigurationFileError {
    TooLarge {
        source: ConfigurationSource,
        bytes: u64,
    },
    /// The loader put the module where the image cannot read it.
    ModuleOutsideMemory { start: u64, end: u64 },
}

impl fmt::Display for ConfigurationFileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigurationFileError::TooLarge { source, bytes } => write!(
                formatter,
                "the file from the {} is {bytes} bytes, more than the limit of \
                 {MAX_CONFIGURATION_BYTES} bytes",
                source.name()
            ),
            ConfigurationFileError::ModuleOutsideMemory { start, end } => write!(
                formatter,
                "the boot module at 0x{start:x}-0x{end:x} lies outside the memory the image maps"
            ),
        }
    }
}

/// Which source is read, how many bytes it holds, and the source left unread, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Choice {
    source: ConfigurationSource,
    bytes: u64,
    ignored: Option<ConfigurationSource>,
}

/// Picks between a boot module and a fw_cfg file of the given sizes: the module wins (it
/// is what the person at the boot loader chose; fw_cfg is the VM's standing setting), and
/// only the one read must fit the limit.
fn choose(
    module_bytes: Option<u64>,
    firmware_config_bytes: Option<u64>,
) -> Result<Option<Choice>, ConfigurationFileError> {
    let choice = match (module_bytes, firmware_config_bytes) {
        (None, None) => return Ok(None),
        (Some(bytes), other) => Choice {
            source: ConfigurationSource::BootModule,
            bytes,
            ignored: other.map(|_| ConfigurationSource::FirmwareConfig),
        },
        (None, Some(bytes)) => Choice {
            source: ConfigurationSource::FirmwareConfig,
            bytes,
            ignored: None,
        },
    };
    if choice.bytes > MAX_CONFIGURATION_BYTES {
        return Err(ConfigurationFileError::TooLarge {
            source: choice.source,
            bytes: choice.bytes,
        });
    }
    Ok(Some(choice))
}

/// The configuration file, if the loader or QEMU gave one. Call it once the heap is up and
/// before anything else can reuse the module's memory (it is reserved until then).
#[cfg(target_os = "none")]
pub fn configuration_file(
    boot_info: &crate::boot_info::BootInfo,
) -> Result<Option<ConfigurationFile>, ConfigurationFileError> {
    use crate::fw_cfg::{FirmwareConfig, IoPorts};
    use crate::start::IDENTITY_MAPPED_GIB;

    let module = boot_info.boot_module;
    let mut firmware_config = FirmwareConfig::detect(IoPorts);
    let firmware_config_file = firmware_config
        .as_mut()
        .and_then(|device| device.find_file(FIRMWARE_CONFIG_FILE_NAME));
    let Some(choice) = choose(
        module.map(|module| module.len()),
        firmware_config_file.map(|file| u64::from(file.size)),
    )?
    else {
        return Ok(None);
    };
    if boot_info.boot_module_count > 1 {
        info!(
            "config: {} boot modules given, only the first is read",
            boot_info.boot_module_count
        );
    }
    if let Some(ignored) = choice.ignored {
        info!(
            "config: {} ignored: the {} comes first",
            ignored.name(),
            choice.source.name()
        );
    }
    // The limit was checked: the size fits in memory.
    let mut bytes = alloc::vec![0u8; choice.bytes as usize];
    match (choice.source, module, firmware_config, firmware_config_file) {
        (ConfigurationSource::BootModule, Some(module), _, _) => {
            if module.end > IDENTITY_MAPPED_GIB << 30 {
                return Err(ConfigurationFileError::ModuleOutsideMemory {
                    start: module.start,
                    end: module.end,
                });
            }
            // An empty module may sit at address 0, which no slice may point to.
            if !bytes.is_empty() {
                // SAFETY: the loader put the module at [start, end), inside the identity
                // map (checked above); the range has been reserved in the memory map since
                // boot, so neither the heap nor the frame allocator has written over it.
                let contents =
                    unsafe { core::slice::from_raw_parts(module.start as *const u8, bytes.len()) };
                bytes.copy_from_slice(contents);
            }
        }
        (ConfigurationSource::FirmwareConfig, _, Some(mut device), Some(file)) => {
            device.read_file(file, &mut bytes);
        }
        // `choose` names only a source that was found, so this arm is never taken.
        _ => return Ok(None),
    }
    // Lets a test check that the image holds exactly the file's bytes, not just as many.
    debug!("config: fnv1a32 0x{:08x}", fnv1a32(&bytes));
    Ok(Some(ConfigurationFile {
        bytes,
        source: choice.source,
    }))
}

/// The 32-bit FNV-1a hash (the FNV reference's offset basis and prime).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn nothing_given_is_no_file() {
        assert_eq!(choose(None, None), Ok(None));
    }

    #[test]
    fn either_source_alone_is_read() {
        assert_eq!(
            choose(Some(17), None),
            Ok(Some(Choice {
                source: ConfigurationSource::BootModule,
                bytes: 17,
                ignored: None
            }))
        );
        assert_eq!(
            choose(None, Some(0)),
            Ok(Some(Choice {
                source: ConfigurationSource::FirmwareConfig,
                bytes: 0,
                ignored: None
            }))
        );
    }

    #[test]
    fn the_boot_module_wins_over_fw_cfg_and_names_it_ignored() {
        assert_eq!(
            choose(Some(5), Some(9)),
            Ok(Some(Choice {
                source: ConfigurationSource::BootModule,
                bytes: 5,
                ignored: Some(ConfigurationSource::FirmwareConfig)
            }))
        );
        // The ignored one may be any size: it is never read.
        assert!(choose(Some(5), Some(u64::MAX)).is_ok());
    }

    #[test]
    fn one_byte_over_the_limit_stops_the_boot_naming_size_and_limit() {
        assert!(choose(Some(MAX_CONFIGURATION_BYTES), None).is_ok());
        let error = choose(None, Some(MAX_CONFIGURATION_BYTES + 1)).unwrap_err();
        assert_eq!(
            error,
            ConfigurationFileError::TooLarge {
                source: ConfigurationSource::FirmwareConfig,
                bytes: MAX_CONFIGURATION_BYTES + 1
            }
        );
        assert_eq!(
            std::format!("{error}"),
            "the file from the fw_cfg opt/unisock/config is 1048577 bytes, more than the limit \
             of 1048576 bytes"
        );
    }
}
