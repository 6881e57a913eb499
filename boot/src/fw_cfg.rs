//! QEMU's firmware configuration device (fw_cfg): finds it, looks a file up in its directory
//! and reads the file, through its x86 I/O ports or, in host tests, a fake device.
//!
//! Facts from QEMU's docs/specs/fw_cfg.rst: a 16-bit write to the selector port (0x510,
//! little-endian) picks an item and rewinds it; each read of the data port (0x511) returns
//! the item's next byte, and 0 past its end. Item 0x0000 reads "QEMU" when the device is
//! there. Item 0x0019 is the file directory: a big-endian `u32` count, then 64-byte entries
//! `{ u32 size (BE); u16 select (BE); u16 reserved; char name[56] (NUL-terminated) }`.
//! On a machine without the device the ports float (reads give 0xff), so the signature
//! check fails and nothing else is read.

/// The item that reads "QEMU" when the device is there.
const SIGNATURE_SELECTOR: u16 = 0x0000;
/// The file directory item.
const FILE_DIRECTORY_SELECTOR: u16 = 0x0019;
const SIGNATURE: [u8; 4] = *b"QEMU";
/// The size of one directory entry, and of the name field in it.
const DIRECTORY_ENTRY_BYTES: usize = 64;
const NAME_BYTES: usize = 56;
/// At most this many directory entries are read: the spec allows 0x4000 generic items,
/// and a count beyond that means a broken device, not a long directory.
const MAX_DIRECTORY_ENTRIES: u32 = 0x4000;

/// How the device is reached: pick an item, read its next bytes.
pub trait Transport {
    fn select(&mut self, selector: u16);
    fn read(&mut self, buffer: &mut [u8]);
}

/// A file in the device's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u32,
    pub selector: u16,
}

/// A directory entry's name bytes (up to the first NUL) and the file it describes.
fn decode_directory_entry(entry: &[u8; DIRECTORY_ENTRY_BYTES]) -> (&[u8], FileEntry) {
    let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
    let selector = u16::from_be_bytes([entry[4], entry[5]]);
    let name = &entry[8..8 + NAME_BYTES];
    let length = name
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(NAME_BYTES);
    (&name[..length], FileEntry { size, selector })
}

/// The device, once its signature has been seen.
pub struct FirmwareConfig<T: Transport> {
    transport: T,
}

impl<T: Transport> FirmwareConfig<T> {
    /// The device behind `transport`, if its signature reads "QEMU".
    pub fn detect(mut transport: T) -> Option<FirmwareConfig<T>> {
        transport.select(SIGNATURE_SELECTOR);
        let mut signature = [0u8; 4];
        transport.read(&mut signature);
        (signature == SIGNATURE).then_some(FirmwareConfig { transport })
    }

    /// The directory entry named `name`, if there is one.
    pub fn find_file(&mut self, name: &str) -> Option<FileEntry> {
        self.transport.select(FILE_DIRECTORY_SELECTOR);
        let mut count = [0u8; 4];
        self.transport.read(&mut count);
        let count = u32::from_be_bytes(count).min(MAX_DIRECTORY_ENTRIES);
        let mut entry = [0u8; DIRECTORY_ENTRY_BYTES];
        for _ in 0..count {
            self.transport.read(&mut entry);
            let (entry_name, file) = decode_directory_entry(&entry);
            if entry_name == name.as_bytes() {
                return Some(file);
            }
        }
        None
    }

    /// Reads the first `buffer.len()` bytes of `file`.
    pub fn read_file(&mut self, file: FileEntry, buffer: &mut [u8]) {
        self.transport.select(file.selector);
        self.transport.read(buffer);
    }
}

/// The device's x86 I/O ports.
#[cfg(target_os = "none")]
pub struct IoPorts;

#[cfg(target_os = "none")]
impl IoPorts {
    const SELECTOR_PORT: u16 = 0x510;
    const DATA_PORT: u16 = 0x511;
}

#[cfg(target_os = "none")]
impl Transport for IoPorts {
    fn select(&mut self, selector: u16) {
        let mut port = x86_64::instructions::port::Port::<u16>::new(Self::SELECTOR_PORT);
        // SAFETY: 0x510 is fw_cfg's selector under QEMU; elsewhere nothing decodes it on a
        // PC, and a write to an unclaimed port is dropped.
        unsafe { port.write(selector) };
    }

    fn read(&mut self, buffer: &mut [u8]) {
        let mut port = x86_64::instructions::port::Port::<u8>::new(Self::DATA_PORT);
        for byte in buffer {
            // SAFETY: reading fw_cfg's data port only advances the selected item; an
            // unclaimed port reads as 0xff.
            *byte = unsafe { port.read() };
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// A device with items, as QEMU keeps them: reads past an item's end give 0, and an
    /// unknown selector reads as an empty item.
    struct FakeDevice {
        items: BTreeMap<u16, Vec<u8>>,
        selected: u16,
        offset: usize,
    }

    impl FakeDevice {
        /// "QEMU" and a directory of `files` (name, selector, contents).
        fn with_files(files: &[(&[u8], u16, &[u8])]) -> FakeDevice {
            let mut items = BTreeMap::new();
            items.insert(SIGNATURE_SELECTOR, SIGNATURE.to_vec());
            let mut directory = (files.len() as u32).to_be_bytes().to_vec();
            for (name, selector, contents) in files {
                directory.extend_from_slice(&(contents.len() as u32).to_be_bytes());
                directory.extend_from_slice(&selector.to_be_bytes());
                directory.extend_from_slice(&[0, 0]);
                let mut name_field = [0u8; NAME_BYTES];
                name_field[..name.len()].copy_from_slice(name);
                directory.extend_from_slice(&name_field);
                items.insert(*selector, contents.to_vec());
            }
            items.insert(FILE_DIRECTORY_SELECTOR, directory);
            FakeDevice {
                items,
                selected: 0,
                offset: 0,
            }
        }
    }

    impl Transport for FakeDevice {
        fn select(&mut self, selector: u16) {
            self.selected = selector;
            self.offset = 0;
        }

        fn read(&mut self, buffer: &mut [u8]) {
            let item = self.items.get(&self.selected).map_or(&[][..], |item| item);
            for byte in buffer {
                *byte = item.get(self.offset).copied().unwrap_or(0);
                self.offset += 1;
            }
        }
    }

    /// No device: the ports float.
    struct FloatingBus;

    impl Transport for FloatingBus {
        fn select(&mut self, _selector: u16) {}

        fn read(&mut self, buffer: &mut [u8]) {
            buffer.fill(0xff);
        }
    }

    #[test]
    fn a_directory_entry_decodes_big_endian_fields_and_the_name_up_to_its_nul() {
        let mut entry = [0u8; DIRECTORY_ENTRY_BYTES];
        entry[..4].copy_from_slice(&0x0001_0203u32.to_be_bytes());
        entry[4..6].copy_from_slice(&0x0021u16.to_be_bytes());
        entry[6..8].copy_from_slice(&[0xaa, 0xbb]);
        entry[8..8 + 9].copy_from_slice(b"etc/e820\0");
        entry[20] = b'x'; // after the NUL: not part of the name
        let (name, file) = decode_directory_entry(&entry);
        assert_eq!(name, b"etc/e820");
        assert_eq!(
            file,
            FileEntry {
                size: 0x0001_0203,
                selector: 0x21
            }
        );
    }

    #[test]
    fn a_name_that_fills_the_whole_field_has_no_nul() {
        let mut entry = [0u8; DIRECTORY_ENTRY_BYTES];
        entry[8..].fill(b'a');
        assert_eq!(decode_directory_entry(&entry).0.len(), NAME_BYTES);
    }

    #[test]
    fn the_named_file_is_found_and_read() {
        let device = FakeDevice::with_files(&[
            (b"etc/boot-menu-wait", 0x20, b"\x00\x00"),
            (b"opt/unisock/config", 0x22, b"[proxy]\nport = 8080\n"),
            (b"opt/unisock/configuration", 0x23, b"other"),
        ]);
        let mut device = FirmwareConfig::detect(device).expect("the signature is there");
        let file = device.find_file("opt/unisock/config").expect("listed");
        assert_eq!(
            file,
            FileEntry {
                size: 20,
                selector: 0x22
            }
        );
        let mut contents = std::vec![0u8; file.size as usize];
        device.read_file(file, &mut contents);
        assert_eq!(contents, b"[proxy]\nport = 8080\n");
    }

    #[test]
    fn a_missing_file_is_none() {
        let device = FakeDevice::with_files(&[(b"opt/unisock/configuration", 0x23, b"x")]);
        let mut device = FirmwareConfig::detect(device).unwrap();
        assert_eq!(device.find_file("opt/unisock/config"), None);
    }

    #[test]
    fn no_signature_means_no_device() {
        assert!(FirmwareConfig::detect(FloatingBus).is_none());
        let mut wrong = FakeDevice::with_files(&[]);
        wrong.items.insert(SIGNATURE_SELECTOR, b"QEMX".to_vec());
        assert!(FirmwareConfig::detect(wrong).is_none());
    }

    #[test]
    fn an_absurd_directory_count_stops_at_the_bound() {
        let mut device = FakeDevice::with_files(&[]);
        device
            .items
            .insert(FILE_DIRECTORY_SELECTOR, u32::MAX.to_be_bytes().to_vec());
        let mut device = FirmwareConfig::detect(device).unwrap();
        // The entries read as zeros past the item's end: nothing matches, and the walk ends.
        assert_eq!(device.find_file("opt/unisock/config"), None);
        assert_eq!(
            device.transport.offset,
            4 + MAX_DIRECTORY_ENTRIES as usize * DIRECTORY_ENTRY_BYTES
        );
    }
}
