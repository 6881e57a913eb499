//! An IPv4 address range in CIDR notation (`10.0.0.0/24`, or one address), as the admin allow-list holds them.

use core::fmt;
use core::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    network: Ipv4Addr,
    prefix: u8,
}

impl AddressRange {
    /// The range of `address`'s network with a `prefix`-bit mask (host bits cleared).
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<AddressRange> {
        (prefix <= 32).then(|| AddressRange {
            network: Ipv4Addr::from_bits(address.to_bits() & mask(prefix)),
            prefix,
        })
    }

    /// `a.b.c.d/n` or `a.b.c.d` (one address); host bits set under the mask are refused, since
    /// they usually mean a typing mistake.
    pub fn parse(text: &str) -> Option<AddressRange> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|byte| byte.is_ascii_digit()) {
                    return None;
                }
                (address, prefix.parse::<u8>().ok()?)
            }
            None => (text, 32),
        };
        let address: Ipv4Addr = address.parse().ok()?;
        let range = AddressRange::new(address, prefix)?;
        (range.network == address).then_some(range)
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        address.to_bits() & mask(self.prefix) == self.network.to_bits()
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        prefix => u32::MAX << (32 - u32::from(prefix.min(32))),
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_contain() {
        let range = AddressRange::parse("10.1.0.0/16").unwrap();
        assert!(range.contains(Ipv4Addr::new(10, 1, 200, 3)));
        assert!(!range.contains(Ipv4Addr::new(10, 2, 0, 1)));
        let one = AddressRange::parse("192.0.2.7").unwrap();
        assert!(one.contains(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(!one.contains(Ipv4Addr::new(192, 0, 2, 8)));
        assert!(
            AddressRange::parse("0.0.0.0/0")
                .unwrap()
                .contains(Ipv4Addr::new(1, 2, 3, 4))
        );
        for bad in [
            "10.1.0.1/16",
            "10.1.0.0/33",
            "10.1.0.0/",
            "10.1.0/8",
            "x",
            "10.0.0.0/+8",
        ] {
            assert_eq!(AddressRange::parse(bad), None, "{bad}");
        }
        assert_eq!(range.to_string(), "10.1.0.0/16");
    }
}
