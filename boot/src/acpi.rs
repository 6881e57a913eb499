//! A small reader for the ACPI tables this image needs: the RSDP, the RSDT/XSDT, the MADT
//! (every CPU's local APIC id) and the FADT with the DSDT's `\_S5` object (power-off).
//! Table layouts are from the ACPI 6.5 specification, sections 5.2.5 to 5.2.12.

use alloc::vec::Vec;
use core::ptr;

use x86_64::instructions::port::Port;

use crate::boot_info::BootInfo;

const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// An SDT header is 36 bytes; length at 4.
const HEADER_BYTES: u64 = 36;
/// No table we read comes near this; a larger length means a corrupt header.
const MAX_TABLE_BYTES: u64 = 1 << 20;
/// MADT (5.2.12): local APIC address at 36, flags at 40, entries from 44.
const MADT_ENTRIES_OFFSET: u64 = 44;
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_APIC_ADDRESS_OVERRIDE: u8 = 5;
const MADT_LOCAL_X2APIC: u8 = 9;
const MADT_ENABLED: u32 = 1 << 0;
const MADT_ONLINE_CAPABLE: u32 = 1 << 1;
/// FADT (5.2.9) field offsets.
const FADT_DSDT: u64 = 40;
const FADT_SMI_COMMAND: u64 = 48;
const FADT_ACPI_ENABLE: u64 = 52;
const FADT_PM1A_CONTROL_BLOCK: u64 = 64;
const FADT_PM1B_CONTROL_BLOCK: u64 = 68;
const FADT_X_DSDT: u64 = 140;
/// PM1 control register (4.8.3.2.1): SCI_EN bit 0, SLP_TYP bits 12:10, SLP_EN bit 13.
const PM1_SCI_ENABLE: u16 = 1 << 0;
const PM1_SLEEP_TYPE_SHIFT: u16 = 10;
const PM1_SLEEP_ENABLE: u16 = 1 << 13;
/// AML opcodes (20.3) needed to read `Name (_S5, Package () { a, b, ... })`.
const AML_PACKAGE_OP: u8 = 0x12;
const AML_BYTE_PREFIX: u8 = 0x0a;
const AML_ONE_OP: u8 = 0x01;

/// A CPU as the MADT lists it.
#[derive(Clone, Copy, Debug)]
pub struct Processor {
    pub apic_id: u32,
}

/// How to enter S5 (soft off).
#[derive(Clone, Copy, Debug)]
struct PowerOff {
    pm1a_control: u16,
    pm1b_control: u16,
    sleep_type_a: u16,
    sleep_type_b: u16,
    smi_command: u16,
    acpi_enable: u8,
}

/// What the tables told us.
pub struct Acpi {
    pub processors: Vec<Processor>,
    pub local_apic_address: u64,
    pub revision: u8,
    power_off: Option<PowerOff>,
}

// The fields are read through `Debug`, in the boot log.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum AcpiError {
    NoRsdp,
    BadChecksum([u8; 4]),
    NoMadt,
}

static ACPI: spin::Once<Acpi> = spin::Once::new();

/// Finds and reads the tables; the result stays available through [`get`].
pub fn init(boot_info: &BootInfo) -> Result<&'static Acpi, AcpiError> {
    let rsdp = find_rsdp(boot_info).ok_or(AcpiError::NoRsdp)?;
    let acpi = read_tables(&rsdp)?;
    Ok(ACPI.call_once(|| acpi))
}

pub fn get() -> Option<&'static Acpi> {
    ACPI.get()
}

/// The RSDP bytes: the loader's copy, the address it gave, or a scan of the BIOS areas
/// (5.2.5.1: the first KiB of the EBDA, then 0xE0000..0xFFFFF on 16-byte boundaries).
fn find_rsdp(boot_info: &BootInfo) -> Option<[u8; 36]> {
    let valid = |bytes: &[u8; 36]| &bytes[..8] == RSDP_SIGNATURE && checksum(&bytes[..20]) == 0;
    if let Some(copy) = boot_info.rsdp_copy().filter(|copy| valid(copy)) {
        return Some(*copy);
    }
    let read_at = |address: u64| {
        let mut bytes = [0u8; 36];
        // SAFETY: low memory and the loader-given address are identity-mapped RAM or ROM.
        unsafe { ptr::copy_nonoverlapping(address as *const u8, bytes.as_mut_ptr(), 36) };
        bytes
    };
    if let Some(address) = boot_info.rsdp_address {
        let bytes = read_at(address);
        if valid(&bytes) {
            return Some(bytes);
        }
    }
    // SAFETY: the BIOS data area word at 0x40e holds the EBDA segment on PCs.
    let ebda = u64::from(unsafe { read::<u16>(0x40e) }) << 4;
    let ebda_range = (ebda..ebda + 1024).step_by(16);
    let bios_range = (0xe_0000..0x10_0000).step_by(16);
    ebda_range
        .filter(|_| (0x8_0000..0xa_0000).contains(&ebda))
        .chain(bios_range)
        .map(read_at)
        .find(valid)
}

fn read_tables(rsdp: &[u8; 36]) -> Result<Acpi, AcpiError> {
    let revision = rsdp[15];
    let rsdt = u64::from(u32::from_le_bytes(
        rsdp[16..20].try_into().unwrap_or_default(),
    ));
    let xsdt = u64::from_le_bytes(rsdp[24..32].try_into().unwrap_or_default());
    let (root, entry_bytes) = if revision >= 2 && xsdt != 0 {
        (xsdt, 8)
    } else {
        (rsdt, 4)
    };
    let root = Table::at(root)?;
    let tables: Vec<Table> = (0..(root.length - HEADER_BYTES) / entry_bytes)
        .map(|index| {
            let slot = root.address + HEADER_BYTES + index * entry_bytes;
            // SAFETY: the slot lies inside the checksummed root table.
            unsafe {
                if entry_bytes == 8 {
                    read::<u64>(slot)
                } else {
                    u64::from(read::<u32>(slot))
                }
            }
        })
        .filter_map(|address| Table::at(address).ok())
        .collect();
    let find = |signature: &[u8; 4]| tables.iter().find(|table| &table.signature == signature);

    let madt = find(b"APIC").ok_or(AcpiError::NoMadt)?;
    let (local_apic_address, processors) = read_madt(madt);
    let power_off = find(b"FACP").and_then(read_power_off);
    Ok(Acpi {
        processors,
        local_apic_address,
        revision,
        power_off,
    })
}

fn read_madt(madt: &Table) -> (u64, Vec<Processor>) {
    let mut local_apic_address = u64::from(madt.field::<u32>(36).unwrap_or(0));
    let mut processors = Vec::new();
    let mut entry = MADT_ENTRIES_OFFSET;
    while let (Some(kind), Some(length)) = (madt.field::<u8>(entry), madt.field::<u8>(entry + 1)) {
        let length = u64::from(length);
        if length < 2 || entry + length > madt.length {
            break;
        }
        let usable = |flags: Option<u32>| {
            flags.is_some_and(|flags| flags & (MADT_ENABLED | MADT_ONLINE_CAPABLE) != 0)
        };
        match kind {
            MADT_LOCAL_APIC if length >= 8 => {
                if let Some(apic_id) = madt
                    .field::<u8>(entry + 3)
                    .filter(|_| usable(madt.field(entry + 4)))
                {
                    processors.push(Processor {
                        apic_id: u32::from(apic_id),
                    });
                }
            }
            MADT_LOCAL_X2APIC if length >= 16 => {
                let known = |apic_id: &u32| processors.iter().any(|cpu| cpu.apic_id == *apic_id);
                if let Some(apic_id) = madt
                    .field::<u32>(entry + 4)
                    .filter(|apic_id| usable(madt.field(entry + 8)) && !known(apic_id))
                {
                    processors.push(Processor { apic_id });
                }
            }
            MADT_LOCAL_APIC_ADDRESS_OVERRIDE if length >= 12 => {
                local_apic_address = madt.field::<u64>(entry + 4).unwrap_or(local_apic_address);
            }
            _ => {}
        }
        entry += length;
    }
    (local_apic_address, processors)
}

fn read_power_off(fadt: &Table) -> Option<PowerOff> {
    let dsdt = match fadt.field::<u64>(FADT_X_DSDT) {
        Some(address) if address != 0 => address,
        _ => u64::from(fadt.field::<u32>(FADT_DSDT)?),
    };
    let dsdt = Table::at(dsdt).ok()?;
    let (sleep_type_a, sleep_type_b) = find_s5(&dsdt)?;
    Some(PowerOff {
        pm1a_control: fadt.field::<u32>(FADT_PM1A_CONTROL_BLOCK)? as u16,
        pm1b_control: fadt.field::<u32>(FADT_PM1B_CONTROL_BLOCK)? as u16,
        sleep_type_a,
        sleep_type_b,
        smi_command: fadt.field::<u32>(FADT_SMI_COMMAND)? as u16,
        acpi_enable: fadt.field::<u8>(FADT_ACPI_ENABLE)?,
    })
}

/// Finds `_S5_` in the DSDT's AML and reads the first two package elements (SLP_TYPa/b).
fn find_s5(dsdt: &Table) -> Option<(u16, u16)> {
    // SAFETY: the DSDT is a checksummed table of `length` bytes.
    let aml =
        unsafe { core::slice::from_raw_parts(dsdt.address as *const u8, dsdt.length as usize) };
    let name = aml.windows(4).position(|window| window == b"_S5_")?;
    let mut cursor = name + 4;
    if *aml.get(cursor)? != AML_PACKAGE_OP {
        return None;
    }
    cursor += 1;
    // PkgLength: bits 7:6 of the lead byte count the bytes that follow it (20.2.4).
    cursor += 1 + usize::from(aml.get(cursor)? >> 6);
    cursor += 1; // NumElements
    let mut element = || -> Option<u16> {
        let value = match *aml.get(cursor)? {
            AML_BYTE_PREFIX => {
                cursor += 1;
                u16::from(*aml.get(cursor)?)
            }
            AML_ONE_OP => 1,
            _ => 0,
        };
        cursor += 1;
        Some(value)
    };
    Some((element()?, element()?))
}

/// Enters ACPI S5 if the tables said how; returns if that was not possible.
pub fn power_off() {
    let Some(power_off) = get().and_then(|acpi| acpi.power_off) else {
        return;
    };
    if power_off.pm1a_control == 0 {
        return;
    }
    let mut pm1a: Port<u16> = Port::new(power_off.pm1a_control);
    // SAFETY: the FADT names these ports as the PM1 control blocks; the SMI command port and
    // its enable value come from the same table (4.8.3.2, 5.2.9).
    unsafe {
        if pm1a.read() & PM1_SCI_ENABLE == 0 && power_off.smi_command != 0 {
            Port::<u8>::new(power_off.smi_command).write(power_off.acpi_enable);
            for _ in 0..1_000_000 {
                if pm1a.read() & PM1_SCI_ENABLE != 0 {
                    break;
                }
            }
        }
        pm1a.write((power_off.sleep_type_a << PM1_SLEEP_TYPE_SHIFT) | PM1_SLEEP_ENABLE);
        if power_off.pm1b_control != 0 {
            Port::<u16>::new(power_off.pm1b_control)
                .write((power_off.sleep_type_b << PM1_SLEEP_TYPE_SHIFT) | PM1_SLEEP_ENABLE);
        }
    }
}

/// A system description table whose checksum is good.
struct Table {
    address: u64,
    signature: [u8; 4],
    length: u64,
}

impl Table {
    fn at(address: u64) -> Result<Table, AcpiError> {
        if address == 0 {
            return Err(AcpiError::BadChecksum(*b"null"));
        }
        // SAFETY: ACPI tables are identity-mapped firmware memory; we read the header first
        // and then exactly `length` bytes.
        let (signature, length) = unsafe {
            (
                read::<[u8; 4]>(address),
                u64::from(read::<u32>(address + 4)),
            )
        };
        if !(HEADER_BYTES..=MAX_TABLE_BYTES).contains(&length) {
            return Err(AcpiError::BadChecksum(signature));
        }
        let table = Table {
            address,
            signature,
            length,
        };
        if checksum(table.bytes()) != 0 {
            return Err(AcpiError::BadChecksum(signature));
        }
        Ok(table)
    }

    /// The whole table, header included.
    fn bytes(&self) -> &[u8] {
        // SAFETY: `at` read the length from the table's own header and bounded it; ACPI
        // tables are identity-mapped firmware memory that nothing writes.
        unsafe { core::slice::from_raw_parts(self.address as *const u8, self.length as usize) }
    }

    /// The `T` at byte `offset` of the table, if the table is long enough to hold it.
    fn field<T: Copy>(&self, offset: u64) -> Option<T> {
        let end = offset.checked_add(size_of::<T>() as u64)?;
        // SAFETY: the value lies inside the table (checked just above).
        (end <= self.length).then(|| unsafe { read::<T>(self.address + offset) })
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte))
}

/// # Safety
/// The address must be mapped and hold a `T`.
unsafe fn read<T: Copy>(address: u64) -> T {
    // SAFETY: guaranteed by the caller; ACPI fields are not aligned.
    unsafe { ptr::read_unaligned(address as *const T) }
}
