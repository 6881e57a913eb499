//! The kernel command line (`key=value` words), parsed into a typed configuration.
//!
//! Words are separated by whitespace. A word is either a bare flag (`exit-after-boot`) or
//! `key=value` (`log=debug`). Unknown words are an error, so that a typo never silently
//! changes the appliance's behaviour. To add a word: add a field to [`Config`] and one arm to
//! [`Config::apply`]. Words that belong to an application (the proxy's `proxy=`,
//! `backends=`, ...) are passed over by [`Config::parse_with`]: the kernel knows no
//! application's words, and the application parses and validates its own from the same
//! line. (Parsing allocates nothing: it runs before the heap exists.)

use core::fmt;
use core::net::Ipv4Addr;

/// The largest body `responder.body=` accepts: 1 MiB, enough for bodies of hundreds of
/// segments, small enough that every core can keep its own copy.
pub const MAX_RESPONDER_BODY: usize = 1 << 20;

/// The largest per-core connection limit `tcp.max-connections=` accepts: the stack's slot
/// handles and tables are sized for at most this many connections a core.
pub const MAX_CONNECTIONS_PER_CORE: usize = 1 << 20;

/// How much the console logger prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A deliberate failure, used by the end-to-end tests to prove that faults are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFault {
    /// Read an unmapped address: a page fault.
    Page,
    /// Divide by zero: a divide error.
    Divide,
    /// Execute `ud2`: an invalid opcode.
    InvalidOpcode,
    /// Recurse until the stack's guard page: a double fault, reported from its own stack.
    StackOverflow,
    /// Call `panic!`: a Rust panic, not a CPU exception.
    Panic,
}

/// A self-test the image runs on all its cores instead of its services (`selftest=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTestKind {
    /// The partition scenarios (`net::partition::self_test`) over the real per-core loops.
    Partition,
}

/// Everything the command line can set. `Default` is the behaviour with an empty line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Exit QEMU with success right after the `unisock: ready` line.
    pub exit_after_boot: bool,
    /// The most verbose level the console prints.
    pub log_level: LogLevel,
    /// A deliberate failure to trigger after boot (tests only).
    pub test_fault: Option<TestFault>,
    /// The core that triggers `test_fault`: 0 (the bootstrap processor) after the ready
    /// line, or an application processor during its start-up.
    pub test_fault_cpu: u32,
    /// `ip=<address>/<prefix>`: the interface's static IPv4 address and prefix length.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// `gw=<address>`: the default gateway (on the interface's subnet).
    pub gateway: Option<Ipv4Addr>,
    /// `responder=<port>`: the HTTP responder's port.
    pub responder_port: Option<u16>,
    /// `responder.body=<bytes>`: the size of the responder's body, 1 to
    /// [`MAX_RESPONDER_BODY`]; `None` keeps the responder's own body.
    pub responder_body: Option<usize>,
    /// `sink=<port>`: the transfer sink (answers the byte count and SHA-256 of what it got).
    pub sink_port: Option<u16>,
    /// `source=<port>`: the transfer source (sends as many pattern bytes as asked).
    pub source_port: Option<u16>,
    /// `selftest=partition`: run that self-test, print its results and exit.
    pub self_test: Option<SelfTestKind>,
    /// The NIC words (`nic=`, `mac=`, `ixgbe.steering=`).
    pub nic: NicConfig,
    /// `tcp.max-connections=<n>`: each core's limit on connections (half-open and
    /// established; TIME_WAIT apart), 1 to [`MAX_CONNECTIONS_PER_CORE`]; `None` keeps the
    /// stack's default.
    pub tcp_max_connections: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            exit_after_boot: false,
            log_level: LogLevel::Info,
            test_fault: None,
            test_fault_cpu: 0,
            ipv4: None,
            gateway: None,
            responder_port: None,
            responder_body: None,
            sink_port: None,
            source_port: None,
            self_test: None,
            nic: NicConfig::default(),
            tcp_max_connections: None,
        }
    }
}

/// Why a command line was rejected; each variant names the offending word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// The key is not one this kernel knows.
    UnknownKey(&'a str),
    /// The key needs a value (`key=value`) but was given as a bare flag.
    MissingValue(&'a str),
    /// The key is a flag and takes no value.
    UnexpectedValue(&'a str),
    /// The value is not one the key accepts.
    InvalidValue { key: &'a str, value: &'a str },
    /// The value is a number, but outside `min..=max`.
    OutOfRange {
        key: &'a str,
        value: &'a str,
        min: usize,
        max: usize,
    },
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey(key) => write!(formatter, "unknown word `{key}`"),
            ConfigError::MissingValue(key) => write!(formatter, "`{key}` needs a value"),
            ConfigError::UnexpectedValue(key) => write!(formatter, "`{key}` takes no value"),
            ConfigError::InvalidValue { key, value } => {
                write!(formatter, "`{key}` does not accept `{value}`")
            }
            ConfigError::OutOfRange {
                key,
                value,
                min,
                max,
            } => write!(
                formatter,
                "`{key}` does not accept `{value}`: it must be {min} to {max}"
            ),
        }
    }
}

impl Config {
    /// Parses a whole command line, starting from the defaults.
    pub fn parse(line: &str) -> Result<Config, ConfigError<'_>> {
        Self::parse_with(line, |_| false)
    }

    /// Like [`parse`](Self::parse), passing over every word whose key `is_application_key`
    /// claims instead of rejecting it.
    pub fn parse_with(
        line: &str,
        is_application_key: impl Fn(&str) -> bool,
    ) -> Result<Config, ConfigError<'_>> {
        let mut config = Config::default();
        for word in line.split_whitespace() {
            let (key, value) = match word.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (word, None),
            };
            if is_application_key(key) {
                continue;
            }
            config.apply(key, value)?;
        }
        Ok(config)
    }

    /// Applies one word; a later word overrides an earlier one with the same key.
    fn apply<'a>(&mut self, key: &'a str, value: Option<&'a str>) -> Result<(), ConfigError<'a>> {
        match key {
            "exit-after-boot" => self.exit_after_boot = flag(key, value)?,
            "log" => {
                self.log_level = match required(key, value)? {
                    "error" => LogLevel::Error,
                    "warn" => LogLevel::Warn,
                    "info" => LogLevel::Info,
                    "debug" => LogLevel::Debug,
                    other => return Err(ConfigError::InvalidValue { key, value: other }),
                }
            }
            "test-fault" => {
                self.test_fault = Some(match required(key, value)? {
                    "page" => TestFault::Page,
                    "divide" => TestFault::Divide,
                    "invalid-opcode" => TestFault::InvalidOpcode,
                    "stack-overflow" => TestFault::StackOverflow,
                    "panic" => TestFault::Panic,
                    other => return Err(ConfigError::InvalidValue { key, value: other }),
                })
            }
            "test-fault-cpu" => {
                let value = required(key, value)?;
                self.test_fault_cpu = value
                    .parse()
                    .map_err(|_| ConfigError::InvalidValue { key, value })?;
            }
            "ip" => self.ipv4 = Some(address_and_prefix(key, required(key, value)?)?),
            "gw" => self.gateway = Some(address(key, required(key, value)?)?),
            "responder" => self.responder_port = Some(port(key, required(key, value)?)?),
            "responder.body" => {
                let value = required(key, value)?;
                self.responder_body = Some(in_range(key, value, 1, MAX_RESPONDER_BODY)?);
            }
            "tcp.max-connections" => {
                let value = required(key, value)?;
                self.tcp_max_connections = Some(in_range(key, value, 1, MAX_CONNECTIONS_PER_CORE)?);
            }
            "sink" => self.sink_port = Some(port(key, required(key, value)?)?),
            "source" => self.source_port = Some(port(key, required(key, value)?)?),
            "selftest" => {
                self.self_test = Some(match required(key, value)? {
                    "partition" => SelfTestKind::Partition,
                    other => return Err(ConfigError::InvalidValue { key, value: other }),
                })
            }
            "nic" | "mac" | "ixgbe.steering" | "ixgbe.selftest" => {
                self.nic.apply(key, required(key, value)?)?
            }
            _ => return Err(ConfigError::UnknownKey(key)),
        }
        Ok(())
    }
}

/// A dotted-quad IPv4 address.
fn address<'a>(key: &'a str, value: &'a str) -> Result<Ipv4Addr, ConfigError<'a>> {
    value
        .parse()
        .map_err(|_| ConfigError::InvalidValue { key, value })
}

/// `a.b.c.d/prefix` with a prefix length of 1 to 32.
fn address_and_prefix<'a>(key: &'a str, value: &'a str) -> Result<(Ipv4Addr, u8), ConfigError<'a>> {
    let invalid = ConfigError::InvalidValue { key, value };
    let (text, prefix) = value.split_once('/').ok_or(invalid)?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid)?;
    if !(1..=32).contains(&prefix) {
        return Err(invalid);
    }
    Ok((address(key, text).map_err(|_| invalid)?, prefix))
}

/// A TCP port, 1 to 65535.
fn port<'a>(key: &'a str, value: &'a str) -> Result<u16, ConfigError<'a>> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::InvalidValue { key, value }),
    }
}

/// A number in `min..=max`: a word that is not a number is an invalid value, a number
/// outside the range is out of range (and the message says the range).
fn in_range<'a>(
    key: &'a str,
    value: &'a str,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError<'a>> {
    let out_of_range = ConfigError::OutOfRange {
        key,
        value,
        min,
        max,
    };
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ConfigError::InvalidValue { key, value });
    }
    // All digits: the only parse failure left is a number too large for `usize`.
    match value.parse::<usize>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(out_of_range),
    }
}

/// A bare flag is `true`; it takes no value.
fn flag<'a>(key: &'a str, value: Option<&'a str>) -> Result<bool, ConfigError<'a>> {
    match value {
        None => Ok(true),
        Some(_) => Err(ConfigError::UnexpectedValue(key)),
    }
}

/// The value of a `key=value` word; an empty value counts as missing.
fn required<'a>(key: &'a str, value: Option<&'a str>) -> Result<&'a str, ConfigError<'a>> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError::MissingValue(key)),
    }
}

/// A PCI function as `lspci` prints it: `bus:device.function` in hexadecimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciLocation {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl fmt::Display for PciLocation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// How the 82599 steers (`ixgbe.steering=`): Flow Director for replies on connections we
/// open plus RSS (the default), or RSS only (if the hardware disagrees with the datasheet
/// about combining the two).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IxgbeSteering {
    Rss,
    #[default]
    FlowDirector,
}

/// Which NIC to bring up and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicConfig {
    /// `nic=<bus:dev.fn>`: use this function; otherwise the first supported one.
    pub location: Option<PciLocation>,
    /// `mac=<aa:bb:cc:dd:ee:ff>`: the MAC to use instead of the NIC's own.
    pub mac: Option<[u8; 6]>,
    /// `ixgbe.steering=rss|fdir`.
    pub ixgbe_steering: IxgbeSteering,
    /// `ixgbe.selftest=1`: run the 82599's loopback self-check, print it and exit.
    pub ixgbe_self_test: bool,
}

impl NicConfig {
    fn apply<'a>(&mut self, key: &'a str, value: &'a str) -> Result<(), ConfigError<'a>> {
        let invalid = ConfigError::InvalidValue { key, value };
        match key {
            "nic" => {
                let (bus, rest) = value.split_once(':').ok_or(invalid)?;
                let (device, function) = rest.split_once('.').ok_or(invalid)?;
                let hex = |text: &str| u8::from_str_radix(text, 16).map_err(|_| invalid);
                let location = PciLocation {
                    bus: hex(bus)?,
                    device: hex(device)?,
                    function: hex(function)?,
                };
                if location.device >= 32 || location.function >= 8 {
                    return Err(invalid);
                }
                self.location = Some(location);
            }
            "mac" => {
                let mut mac = [0u8; 6];
                let mut parts = value.split(':');
                for byte in mac.iter_mut() {
                    let part = parts.next().filter(|part| part.len() == 2).ok_or(invalid)?;
                    *byte = u8::from_str_radix(part, 16).map_err(|_| invalid)?;
                }
                // One more part, or a multicast address (I/G bit), is not a station MAC.
                if parts.next().is_some() || mac[0] & 1 != 0 {
                    return Err(invalid);
                }
                self.mac = Some(mac);
            }
            "ixgbe.selftest" => {
                self.ixgbe_self_test = match value {
                    "1" => true,
                    "0" => false,
                    _ => return Err(invalid),
                }
            }
            _ => {
                self.ixgbe_steering = match value {
                    "rss" => IxgbeSteering::Rss,
                    "fdir" => IxgbeSteering::FlowDirector,
                    _ => return Err(invalid),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(Config::parse(""), Ok(Config::default()));
        assert_eq!(Config::parse("  \t "), Ok(Config::default()));
    }

    #[test]
    fn flags_and_values_are_parsed() {
        let config = Config::parse("exit-after-boot  log=debug test-fault=page").unwrap();
        assert!(config.exit_after_boot);
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.test_fault, Some(TestFault::Page));
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(Config::parse("test-fault-cpu=3").unwrap().test_fault_cpu, 3);
        assert_eq!(
            Config::parse("test-fault-cpu=-1"),
            Err(ConfigError::InvalidValue {
                key: "test-fault-cpu",
                value: "-1"
            })
        );
    }

    #[test]
    fn later_word_wins() {
        let config = Config::parse("log=debug log=error").unwrap();
        assert_eq!(config.log_level, LogLevel::Error);
    }

    #[test]
    fn every_test_fault_has_a_name() {
        for (name, fault) in [
            ("page", TestFault::Page),
            ("divide", TestFault::Divide),
            ("invalid-opcode", TestFault::InvalidOpcode),
            ("stack-overflow", TestFault::StackOverflow),
            ("panic", TestFault::Panic),
        ] {
            let line = format!("test-fault={name}");
            assert_eq!(Config::parse(&line).unwrap().test_fault, Some(fault));
        }
    }

    #[test]
    fn bad_words_are_rejected_with_their_cause() {
        assert_eq!(
            Config::parse("exit-after-bot"),
            Err(ConfigError::UnknownKey("exit-after-bot"))
        );
        assert_eq!(Config::parse("log"), Err(ConfigError::MissingValue("log")));
        assert_eq!(Config::parse("log="), Err(ConfigError::MissingValue("log")));
        assert_eq!(
            Config::parse("exit-after-boot=yes"),
            Err(ConfigError::UnexpectedValue("exit-after-boot"))
        );
        assert_eq!(
            Config::parse("log=loud"),
            Err(ConfigError::InvalidValue {
                key: "log",
                value: "loud"
            })
        );
    }

    #[test]
    fn network_words_are_parsed() {
        let config =
            Config::parse("ip=10.77.0.2/24 gw=10.77.0.1 responder=80 sink=9001 source=9002")
                .unwrap();
        assert_eq!(config.ipv4, Some((Ipv4Addr::new(10, 77, 0, 2), 24)));
        assert_eq!(config.gateway, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(config.responder_port, Some(80));
        assert_eq!(config.sink_port, Some(9001));
        assert_eq!(config.source_port, Some(9002));
    }

    #[test]
    fn bad_network_words_are_rejected() {
        for line in [
            "ip=10.77.0.2",
            "ip=10.77.0.2/33",
            "ip=10.77.0.2/0",
            "ip=10.77.0/24",
            "gw=10.77.0.300",
            "responder=0",
            "responder=65536",
            "sink=http",
        ] {
            assert!(
                matches!(Config::parse(line), Err(ConfigError::InvalidValue { .. })),
                "{line}"
            );
        }
        assert_eq!(Config::parse("ip"), Err(ConfigError::MissingValue("ip")));
    }

    #[test]
    fn self_test_word_is_parsed() {
        assert_eq!(
            Config::parse("selftest=partition").unwrap().self_test,
            Some(SelfTestKind::Partition)
        );
        assert!(matches!(
            Config::parse("selftest=tcp"),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn application_words_are_passed_over() {
        let config =
            Config::parse_with("log=debug proxy=80 backends=10.0.0.2:80 proxy=81", |key| {
                key == "proxy" || key == "backends"
            })
            .unwrap();
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(
            Config::parse_with("proxy=80 frob=1", |key| key == "proxy"),
            Err(ConfigError::UnknownKey("frob"))
        );
        assert_eq!(
            Config::parse("proxy=80"),
            Err(ConfigError::UnknownKey("proxy"))
        );
    }

    #[test]
    fn responder_body_takes_one_byte_to_one_mebibyte() {
        assert_eq!(Config::default().responder_body, None);
        for (line, length) in [
            ("responder.body=1", 1),
            ("responder.body=64", 64),
            ("responder.body=100000", 100_000),
            ("responder.body=1048576", MAX_RESPONDER_BODY),
        ] {
            assert_eq!(
                Config::parse(line).unwrap().responder_body,
                Some(length),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_responder_bodies_are_rejected_naming_the_word() {
        for value in ["0", "1048577", "18446744073709551616"] {
            let line = format!("responder.body={value}");
            let error = Config::parse(&line).unwrap_err();
            assert_eq!(
                error,
                ConfigError::OutOfRange {
                    key: "responder.body",
                    value,
                    min: 1,
                    max: MAX_RESPONDER_BODY
                }
            );
            assert_eq!(
                error.to_string(),
                format!("`responder.body` does not accept `{value}`: it must be 1 to 1048576")
            );
        }
        for value in ["64k", "-1", "+64", "1e6", "0x40"] {
            let line = format!("responder.body={value}");
            assert_eq!(
                Config::parse(&line),
                Err(ConfigError::InvalidValue {
                    key: "responder.body",
                    value
                }),
                "{line}"
            );
        }
        assert_eq!(
            Config::parse("responder.body="),
            Err(ConfigError::MissingValue("responder.body"))
        );
        assert_eq!(
            Config::parse("responder.body"),
            Err(ConfigError::MissingValue("responder.body"))
        );
    }

    #[test]
    fn the_per_core_connection_limit_is_a_bounded_number() {
        assert_eq!(Config::parse("").unwrap().tcp_max_connections, None);
        assert_eq!(
            Config::parse("tcp.max-connections=64")
                .unwrap()
                .tcp_max_connections,
            Some(64)
        );
        assert_eq!(
            Config::parse("tcp.max-connections=0"),
            Err(ConfigError::OutOfRange {
                key: "tcp.max-connections",
                value: "0",
                min: 1,
                max: MAX_CONNECTIONS_PER_CORE
            })
        );
        assert_eq!(
            Config::parse("tcp.max-connections=many"),
            Err(ConfigError::InvalidValue {
                key: "tcp.max-connections",
                value: "many"
            })
        );
    }

    #[test]
    fn errors_print_the_word() {
        let error = Config::parse("frobnicate=1").unwrap_err();
        assert_eq!(error.to_string(), "unknown word `frobnicate`");
    }

    #[test]
    fn nic_words_name_a_function_a_mac_and_the_82599_steering() {
        let config =
            Config::parse("nic=0a:1f.1 mac=02:00:00:aa:bb:cc ixgbe.steering=rss ixgbe.selftest=1")
                .unwrap();
        assert!(config.nic.ixgbe_self_test);
        assert_eq!(
            config.nic.location,
            Some(PciLocation {
                bus: 0x0a,
                device: 0x1f,
                function: 1
            })
        );
        assert_eq!(config.nic.location.unwrap().to_string(), "0a:1f.1");
        assert_eq!(config.nic.mac, Some([0x02, 0, 0, 0xaa, 0xbb, 0xcc]));
        assert_eq!(config.nic.ixgbe_steering, IxgbeSteering::Rss);
        assert_eq!(
            Config::parse("").unwrap().nic.ixgbe_steering,
            IxgbeSteering::FlowDirector
        );
        for bad in [
            "nic=0a:20.0",
            "nic=0a:1f.8",
            "nic=1f.1",
            "mac=01:00:00:00:00:01",
            "mac=02:00:00:00:00",
            "mac=02:00:00:00:00:00:00",
            "ixgbe.steering=both",
            "ixgbe.selftest=yes",
        ] {
            assert!(
                matches!(Config::parse(bad), Err(ConfigError::InvalidValue { .. })),
                "{bad}"
            );
        }
    }
}
