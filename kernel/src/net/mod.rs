//! The per-core TCP/IP stack: Ethernet, ARP, IPv4, ICMP, UDP and TCP, plus Receive Flow Deliver steering.

pub mod arp;
pub mod checksum;
pub mod counters;
pub mod dhcp;
pub mod ethernet;
pub mod icmp;
pub mod icmp_rate_limit;
pub mod interface;
pub mod ipv4;
pub mod partition;
pub mod rfd;
pub mod rss;
pub mod tcp;
pub mod udp;
