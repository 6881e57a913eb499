//! The DNS stub resolver backends named by host name or SRV record will be found with (issue 24): the wire format in `message`, the asking in `resolver`.
//!
//! It lives in the application rather than the kernel because it is written only against the
//! socket API (`UdpSocket`, `TcpStream`, the executor's timers), as the proxy is, and its only
//! user is the proxy's backend pools.

pub mod message;
pub mod resolver;

pub use message::{
    AddressRecord, Answer, MessageError, Name, NameError, Query, RecordType, ResponseCode,
    ServiceRecord, parse_response,
};
pub use resolver::{
    Resolution, ResolveError, Resolver, ResolverConfig, ResolverCounters, refresh_after,
};

#[cfg(test)]
mod tests;
