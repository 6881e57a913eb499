//! The lease a DHCP server granted, read from an ACK's header and options, for the caller to apply.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::DhcpPacket;

/// RFC 2132 option codes the client asks for and reads.
pub(crate) mod option {
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DOMAIN_NAME_SERVER: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const LEASE_TIME: u8 = 51;
    pub const SERVER_IDENTIFIER: u8 = 54;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_IDENTIFIER: u8 = 61;
    pub const CLASSLESS_STATIC_ROUTE: u8 = 121;
}

/// The parameter request list (option 55) of every DISCOVER and REQUEST: the options above.
pub(crate) const PARAMETER_REQUEST_LIST: [u8; 11] = [
    option::SUBNET_MASK,
    option::ROUTER,
    option::DOMAIN_NAME_SERVER,
    option::HOST_NAME,
    option::DOMAIN_NAME,
    option::INTERFACE_MTU,
    option::LEASE_TIME,
    option::SERVER_IDENTIFIER,
    option::RENEWAL_TIME,
    option::REBINDING_TIME,
    option::CLASSLESS_STATIC_ROUTE,
];

/// The smallest MTU an IPv4 host may be given (RFC 2132 section 5.1, RFC 791's 68 octets).
pub const MINIMUM_MTU: u16 = 68;

/// A lease time of all ones is an infinite lease (RFC 2131 section 3.3).
const INFINITE_SECONDS: u32 = u32::MAX;

/// One classless static route of option 121 (RFC 3442).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClasslessRoute {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    /// 0.0.0.0 means the destination is on the link (RFC 3442 section 2, as GCE's route to its
    /// gateway outside a /32).
    pub gateway: Ipv4Addr,
}

/// What the server granted: everything the caller needs to configure the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// From option 1; the address's class when the server sent none (RFC 2131 leaves it to the
    /// client; dhclient does the same).
    pub prefix_len: u8,
    /// Option 3, empty when option 121 is present (RFC 3442 section 2: the client MUST ignore
    /// the Router option then).
    pub routers: Vec<Ipv4Addr>,
    /// Option 121, in the server's order; the default route is the one with `prefix_len` 0.
    pub classless_routes: Vec<ClasslessRoute>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub hostname: Option<String>,
    /// Option 26; values below 68 are refused (not returned).
    pub mtu: Option<u16>,
    /// Option 54: where RENEWING's unicast REQUEST goes.
    pub server: Ipv4Addr,
    /// Option 51; `None` is an infinite lease (no renewal, no expiry).
    pub lease_time: Option<Duration>,
    /// Option 58, or half the lease (RFC 2131 section 4.4.5).
    pub renewal_time: Option<Duration>,
    /// Option 59, or 7/8 of the lease.
    pub rebinding_time: Option<Duration>,
}

/// Why an ACK's content was not a usable lease, or an option was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// yiaddr is 0.0.0.0, broadcast, multicast or loopback.
    BadAddress,
    /// No option 51 (RFC 2131 section 4.3.1: the server MUST send it in an ACK to a REQUEST).
    MissingLeaseTime,
    /// No option 54 and the packet's siaddr is 0.0.0.0: nobody to renew with.
    MissingServer,
}

/// Options the lease was still made from, but that were ignored as malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredOptions {
    pub malformed_classless_routes: bool,
    pub bad_mtu: bool,
    pub bad_subnet_mask: bool,
}

/// Reads a lease from a valid reply (the caller checked op, xid, chaddr and message type).
pub(crate) fn parse_lease<T: AsRef<[u8]>>(
    packet: &DhcpPacket<T>,
) -> Result<(Lease, IgnoredOptions), LeaseError> {
    let address = packet.your_ip();
    if address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback()
    {
        return Err(LeaseError::BadAddress);
    }
    let mut ignored = IgnoredOptions::default();
    let mut prefix_len = None;
    let mut routers = Vec::new();
    let mut classless_routes = None;
    let mut dns_servers = Vec::new();
    let mut domain_name = None;
    let mut hostname = None;
    let mut mtu = None;
    let mut server = None;
    let mut lease_seconds = None;
    let mut renewal_seconds = None;
    let mut rebinding_seconds = None;
    for entry in packet.options() {
        let data = entry.data;
        match entry.kind {
            option::SUBNET_MASK => match mask_prefix(data) {
                Some(len) => prefix_len = Some(len),
                None => ignored.bad_subnet_mask = true,
            },
            option::ROUTER => routers.extend(addresses(data)),
            option::DOMAIN_NAME_SERVER => dns_servers.extend(addresses(data)),
            option::HOST_NAME => hostname = text(data),
            option::DOMAIN_NAME => domain_name = text(data),
            option::INTERFACE_MTU => match <[u8; 2]>::try_from(data).map(u16::from_be_bytes) {
                Ok(value) if value >= MINIMUM_MTU => mtu = Some(value),
                _ => ignored.bad_mtu = true,
            },
            option::SERVER_IDENTIFIER => server = address_of(data),
            option::LEASE_TIME => lease_seconds = seconds(data),
            option::RENEWAL_TIME => renewal_seconds = seconds(data),
            option::REBINDING_TIME => rebinding_seconds = seconds(data),
            option::CLASSLESS_STATIC_ROUTE => match parse_classless_routes(data) {
                Some(routes) => classless_routes = Some(routes),
                None => ignored.malformed_classless_routes = true,
            },
            _ => {}
        }
    }
    let server = server
        .or_else(|| Some(packet.server_ip()).filter(|ip| !ip.is_unspecified()))
        .ok_or(LeaseError::MissingServer)?;
    let lease_seconds = lease_seconds.ok_or(LeaseError::MissingLeaseTime)?;
    let (lease_time, renewal_time, rebinding_time) = if lease_seconds == INFINITE_SECONDS {
        (None, None, None)
    } else {
        // RFC 2131 section 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease. A server's
        // T1/T2 that do not satisfy T1 <= T2 <= lease are replaced by the defaults, as
        // systemd-networkd and smoltcp do, so that the timers always fire in order.
        let lease = u64::from(lease_seconds) * 1000;
        let default_renewal = lease / 2;
        let default_rebinding = lease * 7 / 8;
        let rebinding = rebinding_seconds
            .map(|s| u64::from(s) * 1000)
            .filter(|&t2| t2 <= lease)
            .unwrap_or(default_rebinding);
        let renewal = renewal_seconds
            .map(|s| u64::from(s) * 1000)
            .filter(|&t1| t1 <= rebinding)
            .unwrap_or(default_renewal.min(rebinding));
        (
            Some(Duration::from_millis(lease)),
            Some(Duration::from_millis(renewal)),
            Some(Duration::from_millis(rebinding)),
        )
    };
    let classless_routes = classless_routes.unwrap_or_default();
    if !classless_routes.is_empty() {
        routers.clear();
    }
    Ok((
        Lease {
            address,
            prefix_len: prefix_len.unwrap_or_else(|| class_prefix(address)),
            routers,
            classless_routes,
            dns_servers,
            domain_name,
            hostname,
            mtu,
            server,
            lease_time,
            renewal_time,
            rebinding_time,
        },
        ignored,
    ))
}

/// Option 121's routes, or `None` when any is malformed (RFC 3442 section 2: a width above 32
/// or an option that ends inside a route); the whole option is then ignored, as dhclient's
/// script does, so that a half-read table never replaces the routers.
pub fn parse_classless_routes(mut data: &[u8]) -> Option<Vec<ClasslessRoute>> {
    let mut routes = Vec::new();
    if data.is_empty() {
        return None;
    }
    while let Some((&width, rest)) = data.split_first() {
        if width > 32 {
            return None;
        }
        let significant = usize::from(width).div_ceil(8);
        if rest.len() < significant + 4 {
            return None;
        }
        let mut destination = [0u8; 4];
        destination[..significant].copy_from_slice(&rest[..significant]);
        // Bits past the width are not part of the destination: mask them off.
        let mask = u32::MAX.checked_shl(32 - u32::from(width)).unwrap_or(0);
        let destination = Ipv4Addr::from(u32::from_be_bytes(destination) & mask);
        let gateway = address_of(&rest[significant..significant + 4])?;
        routes.push(ClasslessRoute {
            destination,
            prefix_len: width,
            gateway,
        });
        data = &rest[significant + 4..];
    }
    Some(routes)
}

fn address_of(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

fn addresses(data: &[u8]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    data.chunks_exact(4).filter_map(address_of)
}

fn seconds(data: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes)
}

/// Printable ASCII only (names go to the console, syslog and /metrics); anything else is dropped.
fn text(data: &[u8]) -> Option<String> {
    let trimmed = data.strip_suffix(&[0]).unwrap_or(data);
    if trimmed.is_empty() || !trimmed.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    core::str::from_utf8(trimmed).ok().map(String::from)
}

/// The prefix length of a contiguous mask; `None` for anything else.
fn mask_prefix(data: &[u8]) -> Option<u8> {
    let mask = u32::from(address_of(data)?);
    let ones = mask.leading_ones();
    (mask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn class_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}
