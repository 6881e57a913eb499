//! The per-core TCP/IP stack: Ethernet, ARP, IPv4, ICMP and TCP, plus Receive Flow Deliver steering.

pub mod rfd;
pub mod rss;
pub mod tcp;
