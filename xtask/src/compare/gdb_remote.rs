//! A minimal client of QEMU's gdbstub (the GDB remote serial protocol over a Unix socket),
//! just enough to sample where every vCPU is: interrupt, read each thread's `rip`, continue.
//!
//! Protocol: GDB manual, "Remote Protocol" (packets `$data#checksum`, `+` acknowledgements,
//! the 0x03 interrupt byte, `qfThreadInfo`/`qsThreadInfo`, `Hg`, `g`, `c`).

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::Failure;

/// Where `rip` is in a `g` reply: after rax..r15, 8 bytes each, in GDB's x86_64 order (QEMU
/// answers `p` only to a debugger that has read its target description, so `g` it is).
const RIP_OFFSET_BYTES: usize = 16 * 8;

pub struct GdbRemote {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// `$data#checksum`: the checksum is the sum of the data bytes modulo 256, in two hex digits.
pub fn frame(data: &str) -> String {
    let sum = data.bytes().fold(0u8, |sum, byte| sum.wrapping_add(byte));
    format!("${data}#{sum:02x}")
}

/// The thread ids of a `qfThreadInfo`/`qsThreadInfo` reply (`m1,2,3`), or `None` at its end
/// (`l`).
pub fn thread_ids(reply: &str) -> Option<Vec<String>> {
    let list = reply.strip_prefix('m')?;
    Some(
        list.split(',')
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// A register as `p` returns it: target byte order (little-endian) in hex.
pub fn little_endian_hex(reply: &str) -> Result<u64, Failure> {
    if reply.len() != 16 || !reply.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(Failure(format!(
            "gdbstub: not a 64-bit register: {reply:?}"
        )));
    }
    let mut value = 0u64;
    for index in (0..8).rev() {
        let byte = u8::from_str_radix(&reply[2 * index..2 * index + 2], 16)
            .map_err(|error| Failure(format!("gdbstub: {error}")))?;
        value = value << 8 | u64::from(byte);
    }
    Ok(value)
}

impl GdbRemote {
    /// Connects (QEMU stops the guest when a debugger connects: call [`resume`] next).
    pub fn connect(socket: &Path) -> Result<GdbRemote, Failure> {
        let stream = UnixStream::connect(socket)
            .map_err(|error| Failure(format!("connect {}: {error}", socket.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|error| Failure(format!("gdbstub socket: {error}")))?;
        let writer = stream
            .try_clone()
            .map_err(|error| Failure(format!("gdbstub socket: {error}")))?;
        Ok(GdbRemote {
            reader: BufReader::new(stream),
            writer,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.writer
            .write_all(bytes)
            .map_err(|error| Failure(format!("gdbstub write: {error}")))
    }

    fn read_byte(&mut self) -> Result<u8, Failure> {
        let mut byte = [0u8];
        self.reader
            .read_exact(&mut byte)
            .map_err(|error| Failure(format!("gdbstub read: {error}")))?;
        Ok(byte[0])
    }

    /// Sends a packet and waits for its acknowledgement.
    fn send(&mut self, data: &str) -> Result<(), Failure> {
        self.write(frame(data).as_bytes())?;
        loop {
            match self.read_byte()? {
                b'+' => return Ok(()),
                b'-' => self.write(frame(data).as_bytes())?,
                // A stray stop reply or console output before the acknowledgement.
                _ => {}
            }
        }
    }

    /// Reads the next packet and acknowledges it.
    fn receive(&mut self) -> Result<String, Failure> {
        while self.read_byte()? != b'$' {}
        let mut data = Vec::new();
        loop {
            match self.read_byte()? {
                b'#' => break,
                byte => data.push(byte),
            }
        }
        // The two checksum digits: a local socket does not corrupt bytes, so they are read,
        // not checked.
        self.read_byte()?;
        self.read_byte()?;
        self.write(b"+")?;
        String::from_utf8(data).map_err(|error| Failure(format!("gdbstub reply: {error}")))
    }

    fn request(&mut self, data: &str) -> Result<String, Failure> {
        self.send(data)?;
        self.receive()
    }

    /// The vCPUs' thread ids.
    pub fn threads(&mut self) -> Result<Vec<String>, Failure> {
        let mut threads = Vec::new();
        let mut reply = self.request("qfThreadInfo")?;
        while let Some(more) = thread_ids(&reply) {
            threads.extend(more);
            reply = self.request("qsThreadInfo")?;
        }
        if threads.is_empty() {
            return Err(Failure(format!("gdbstub listed no threads ({reply:?})")));
        }
        Ok(threads)
    }

    /// Stops every vCPU (the interrupt byte) and waits for the stop reply.
    pub fn stop(&mut self) -> Result<(), Failure> {
        self.write(&[0x03])?;
        let reply = self.receive()?;
        if reply.starts_with('T') || reply.starts_with('S') {
            Ok(())
        } else {
            Err(Failure(format!("gdbstub: unexpected stop reply {reply:?}")))
        }
    }

    /// `rip` of the (stopped) vCPU `thread`.
    pub fn instruction_pointer(&mut self, thread: &str) -> Result<u64, Failure> {
        let selected = self.request(&format!("Hg{thread}"))?;
        if selected != "OK" {
            return Err(Failure(format!("gdbstub: Hg{thread}: {selected:?}")));
        }
        let registers = self.request("g")?;
        let start = 2 * RIP_OFFSET_BYTES;
        let rip = registers.get(start..start + 16).ok_or_else(|| {
            Failure(format!(
                "gdbstub: a register reply of {} digits",
                registers.len()
            ))
        })?;
        little_endian_hex(rip)
    }

    /// Lets every vCPU run again (no reply until the next stop).
    pub fn resume(&mut self) -> Result<(), Failure> {
        self.send("c")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_carry_the_modulo_256_checksum() {
        // Values from the GDB manual's examples and by hand.
        assert_eq!(frame("OK"), "$OK#9a");
        assert_eq!(frame("c"), "$c#63");
        assert_eq!(frame("qfThreadInfo"), "$qfThreadInfo#bb");
    }

    #[test]
    fn thread_lists_and_their_end() {
        assert_eq!(thread_ids("m1,2"), Some(vec!["1".into(), "2".into()]));
        assert_eq!(thread_ids("m01"), Some(vec!["01".into()]));
        assert_eq!(thread_ids("l"), None);
    }

    #[test]
    fn registers_are_little_endian_hex() {
        assert_eq!(little_endian_hex("7856341200000000").unwrap(), 0x1234_5678);
        assert_eq!(
            little_endian_hex("efcdab8967452301").unwrap(),
            0x0123_4567_89ab_cdef
        );
        assert!(little_endian_hex("E01").is_err());
        assert!(little_endian_hex("xxxxxxxxxxxxxxxx").is_err());
    }
}
