//! The DHCPv4 client's state machine (RFC 2131 section 4.4, figure 5), without sockets or clocks.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::{
    DhcpMessageType, DhcpOpCode, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress,
};

use super::lease::{Lease, LeaseError, PARAMETER_REQUEST_LIST, option, parse_lease};
use crate::time::Instant;

/// The first retransmission timeout of SELECTING, REQUESTING and REBOOTING (RFC 2131 section
/// 4.1: 4 s, doubled up to 64 s, each randomised by +/- 1 s).
const FIRST_TIMEOUT: Duration = Duration::from_secs(4);
const LAST_TIMEOUT: Duration = Duration::from_secs(64);
/// REQUESTING gives up and restarts at INIT after the 64 s wait (RFC 2131 section 4.4.1).
const REQUEST_ATTEMPTS: u32 = 5;
/// INIT-REBOOT's REQUEST is tried this many times before falling back to INIT: a server with no
/// record of the address stays silent (RFC 2131 section 4.3.2), and a boot must not wait 2 min.
const REBOOT_ATTEMPTS: u32 = 2;
/// RENEWING and REBINDING retransmit at half the time left, but not more often than this
/// (RFC 2131 section 4.4.5).
const MINIMUM_RENEW_INTERVAL: Duration = Duration::from_secs(60);
/// After a DECLINE the client waits this long before a new DISCOVER (RFC 2131 section 3.1.5).
const DECLINE_WAIT: Duration = Duration::from_secs(10);
/// Room for the option 57 value below: a 1500-byte MTU less the IPv4 and UDP headers.
const MAXIMUM_MESSAGE_SIZE: u16 = 1472;

/// What the caller must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `message` from UDP port 68 to `destination`, port 67 (255.255.255.255 before a lease,
    /// the server's address when renewing).
    Send {
        destination: Ipv4Addr,
        message: Vec<u8>,
    },
    /// Probe `address` with ARP (RFC 5227 section 2.1.1) and report with
    /// [`DhcpClient::probe_result`]; the address must not be used before then.
    Probe { address: Ipv4Addr },
    /// A lease was bound or renewed: configure the interface with it.
    Bound(Lease),
    /// The lease expired or the server refused it: stop using `address` at once (close what was
    /// bound to it, say so on the console and in the metrics).
    Deconfigure { address: Ipv4Addr },
}

/// Where the client is in RFC 2131's figure 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Init,
    Selecting,
    Requesting,
    Probing,
    InitReboot,
    Rebooting,
    Bound,
    Renewing,
    Rebinding,
}

/// Every message the client sent, accepted, or refused, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhcpCounters {
    pub discovers_sent: u64,
    pub requests_sent: u64,
    pub declines_sent: u64,
    /// Transmissions after the first of a DISCOVER or REQUEST.
    pub retransmissions: u64,
    pub offers_accepted: u64,
    pub acks_accepted: u64,
    pub naks_accepted: u64,
    /// Not a BOOTREPLY DHCP message that parses (short, bad magic, no message type, ...).
    pub malformed_replies: u64,
    /// A reply whose xid is not the current transaction's.
    pub wrong_transaction_id: u64,
    /// A reply for another client: its chaddr or client identifier is not ours.
    pub other_client: u64,
    /// A valid reply that this state does not expect (an ACK while selecting, a second OFFER,
    /// an ACK or NAK from a server we did not select, ...).
    pub unexpected_replies: u64,
    /// An OFFER or ACK whose content is not a lease (no address, lease time or server).
    pub unusable_leases: u64,
    /// Options ignored in an accepted lease: malformed option 121, MTU below 68, bad mask.
    pub ignored_options: u64,
    pub conflicts_declined: u64,
    pub leases_expired: u64,
}

#[derive(Clone, Debug)]
enum State {
    Init {
        start_at: Instant,
    },
    Selecting {
        retry: Retry,
    },
    Requesting {
        offered: Ipv4Addr,
        server: Ipv4Addr,
        retry: Retry,
    },
    InitReboot {
        address: Ipv4Addr,
    },
    Rebooting {
        address: Ipv4Addr,
        retry: Retry,
    },
    Probing {
        lease: Lease,
        server: Ipv4Addr,
    },
    Bound {
        lease: Lease,
        times: LeaseTimes,
    },
    Renewing {
        lease: Lease,
        times: LeaseTimes,
        next_send: Instant,
    },
    Rebinding {
        lease: Lease,
        times: LeaseTimes,
        next_send: Instant,
    },
}

/// Retransmission of one exchange: how many were sent and when the next goes.
#[derive(Clone, Copy, Debug)]
struct Retry {
    sent: u32,
    deadline: Instant,
}

/// T1, T2 and the expiry as instants (from when the REQUEST that was acknowledged was sent).
#[derive(Clone, Copy, Debug)]
struct LeaseTimes {
    renew_at: Option<Instant>,
    rebind_at: Option<Instant>,
    expires_at: Option<Instant>,
}

impl LeaseTimes {
    fn new(lease: &Lease, start: Instant) -> LeaseTimes {
        LeaseTimes {
            renew_at: lease.renewal_time.map(|t| start + t),
            rebind_at: lease.rebinding_time.map(|t| start + t),
            expires_at: lease.lease_time.map(|t| start + t),
        }
    }
}

/// A DHCPv4 client for one interface: the caller feeds it the time, the replies received on
/// UDP port 68 and the ARP probe's result, and carries out the [`Action`]s it returns.
pub struct DhcpClient {
    hardware_address: EthernetAddress,
    state: State,
    transaction_id: u32,
    /// When this exchange began, for the `secs` field (RFC 2131 section 2).
    exchange_started: Instant,
    /// When the first REQUEST of this exchange was sent: the lease's times run from there
    /// (RFC 2131 section 4.4.1), so that they never end later than the server's even when
    /// the ACK answers the first REQUEST and arrives after a retransmission.
    request_sent_at: Instant,
    random: u64,
    counters: DhcpCounters,
}

impl DhcpClient {
    /// A client for the interface with `hardware_address`, starting at INIT now, or at
    /// INIT-REBOOT when an address from an earlier lease is remembered. `seed` (the core's boot
    /// secret) makes the transaction ids and back-off jitter unpredictable.
    pub fn new(
        hardware_address: [u8; 6],
        seed: u64,
        remembered: Option<Ipv4Addr>,
        now: Instant,
    ) -> DhcpClient {
        let state = match remembered {
            Some(address) => State::InitReboot { address },
            None => State::Init { start_at: now },
        };
        DhcpClient {
            hardware_address: EthernetAddress(hardware_address),
            state,
            transaction_id: 0,
            exchange_started: now,
            request_sent_at: now,
            // xorshift must not start at zero.
            random: seed | 1,
            counters: DhcpCounters::default(),
        }
    }

    pub fn state(&self) -> StateKind {
        match self.state {
            State::Init { .. } => StateKind::Init,
            State::Selecting { .. } => StateKind::Selecting,
            State::Requesting { .. } => StateKind::Requesting,
            State::InitReboot { .. } => StateKind::InitReboot,
            State::Rebooting { .. } => StateKind::Rebooting,
            State::Probing { .. } => StateKind::Probing,
            State::Bound { .. } => StateKind::Bound,
            State::Renewing { .. } => StateKind::Renewing,
            State::Rebinding { .. } => StateKind::Rebinding,
        }
    }

    pub fn counters(&self) -> &DhcpCounters {
        &self.counters
    }

    /// The lease in use, if any (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound { lease, .. }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }

    /// When [`poll`](Self::poll) next has something to do; `None` while waiting for the probe's
    /// result or on an infinite lease.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Init { start_at } => Some(*start_at),
            State::InitReboot { .. } => Some(self.exchange_started),
            State::Selecting { retry }
            | State::Requesting { retry, .. }
            | State::Rebooting { retry, .. } => Some(retry.deadline),
            State::Probing { .. } => None,
            State::Bound { times, .. } => times.renew_at.or(times.rebind_at).or(times.expires_at),
            State::Renewing {
                times, next_send, ..
            } => Some(earliest(*next_send, times.rebind_at.or(times.expires_at))),
            State::Rebinding {
                times, next_send, ..
            } => Some(earliest(*next_send, times.expires_at)),
        }
    }

    /// Runs the timers due at `now`: the first DISCOVER, retransmissions, T1, T2 and expiry.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.next_deadline().is_none_or(|deadline| now < deadline) {
            return actions;
        }
        match self.state.clone() {
            State::Init { .. } => self.start_discovery(now, &mut actions),
            State::InitReboot { address } => {
                self.new_exchange(now);
                self.request_sent_at = now;
                let message = self.request(now, RequestKind::InitReboot { address });
                self.state = State::Rebooting {
                    address,
                    retry: self.first_retry(now),
                };
                actions.push(broadcast(message));
            }
            State::Selecting { retry } => {
                self.counters.retransmissions += 1;
                let message = self.discover(now);
                self.state = State::Selecting {
                    retry: self.next_retry(now, retry),
                };
                actions.push(broadcast(message));
            }
            State::Requesting {
                offered,
                server,
                retry,
            } => {
                if retry.sent >= REQUEST_ATTEMPTS {
                    self.start_discovery(now, &mut actions);
                } else {
                    self.counters.retransmissions += 1;
                    let message = self.request(now, RequestKind::Selecting { offered, server });
                    self.state = State::Requesting {
                        offered,
                        server,
                        retry: self.next_retry(now, retry),
                    };
                    actions.push(broadcast(message));
                }
            }
            State::Rebooting { address, retry } => {
                if retry.sent >= REBOOT_ATTEMPTS {
                    self.start_discovery(now, &mut actions);
                } else {
                    self.counters.retransmissions += 1;
                    let message = self.request(now, RequestKind::InitReboot { address });
                    self.state = State::Rebooting {
                        address,
                        retry: self.next_retry(now, retry),
                    };
                    actions.push(broadcast(message));
                }
            }
            State::Probing { .. } => {}
            State::Bound { lease, times } => {
                if times.expires_at.is_some_and(|t| now >= t) {
                    self.expire(lease.address, now, &mut actions);
                } else if times.rebind_at.is_some_and(|t| now >= t) {
                    self.rebind(lease, times, now, &mut actions);
                } else {
                    // T1: RENEWING, a REQUEST unicast to the server that granted the lease.
                    self.new_exchange(now);
                    self.request_sent_at = now;
                    let message = self.request(
                        now,
                        RequestKind::Renewing {
                            address: lease.address,
                        },
                    );
                    let next_send = renew_retry(now, times.rebind_at);
                    actions.push(Action::Send {
                        destination: lease.server,
                        message,
                    });
                    self.state = State::Renewing {
                        lease,
                        times,
                        next_send,
                    };
                }
            }
            State::Renewing {
                lease,
                times,
                next_send,
            } => {
                if times.expires_at.is_some_and(|t| now >= t) {
                    self.expire(lease.address, now, &mut actions);
                } else if times.rebind_at.is_some_and(|t| now >= t) {
                    self.rebind(lease, times, now, &mut actions);
                } else if now >= next_send {
                    self.counters.retransmissions += 1;
                    let message = self.request(
                        now,
                        RequestKind::Renewing {
                            address: lease.address,
                        },
                    );
                    actions.push(Action::Send {
                        destination: lease.server,
                        message,
                    });
                    self.state = State::Renewing {
                        next_send: renew_retry(now, times.rebind_at),
                        lease,
                        times,
                    };
                }
            }
            State::Rebinding {
                lease,
                times,
                next_send,
            } => {
                if times.expires_at.is_some_and(|t| now >= t) {
                    self.expire(lease.address, now, &mut actions);
                } else if now >= next_send {
                    self.counters.retransmissions += 1;
                    let message = self.request(
                        now,
                        RequestKind::Renewing {
                            address: lease.address,
                        },
                    );
                    actions.push(broadcast(message));
                    self.state = State::Rebinding {
                        next_send: renew_retry(now, times.expires_at),
                        lease,
                        times,
                    };
                }
            }
        }
        actions
    }

    /// A datagram received on UDP port 68. Anything that is not the reply this state waits for
    /// is dropped and counted; nothing here panics on any input.
    pub fn receive(&mut self, now: Instant, datagram: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some((message_type, packet)) = self.validate(datagram) else {
            return actions;
        };
        let server_identifier = packet
            .options()
            .find(|o| o.kind == option::SERVER_IDENTIFIER)
            .and_then(|o| <[u8; 4]>::try_from(o.data).ok())
            .map(Ipv4Addr::from);
        match (self.state.clone(), message_type) {
            (State::Selecting { .. }, DhcpMessageType::Offer) => {
                // The first usable offer is taken (RFC 2131 section 4.4.1 lets the client
                // choose; dhclient and systemd-networkd take the first too).
                let lease = match parse_lease(&packet) {
                    Ok((lease, _)) => lease,
                    Err(_) => {
                        self.counters.unusable_leases += 1;
                        return actions;
                    }
                };
                self.counters.offers_accepted += 1;
                let (offered, server) = (lease.address, lease.server);
                self.request_sent_at = now;
                let message = self.request(now, RequestKind::Selecting { offered, server });
                self.state = State::Requesting {
                    offered,
                    server,
                    retry: self.first_retry(now),
                };
                actions.push(broadcast(message));
            }
            (
                State::Requesting {
                    offered, server, ..
                },
                DhcpMessageType::Ack,
            ) => {
                if server_identifier.is_some_and(|s| s != server) || packet.your_ip() != offered {
                    self.counters.unexpected_replies += 1;
                    return actions;
                }
                self.accept_first_ack(&packet, server, &mut actions);
            }
            (State::Rebooting { address, .. }, DhcpMessageType::Ack) => {
                if packet.your_ip() != address {
                    self.counters.unexpected_replies += 1;
                    return actions;
                }
                let server = server_identifier.unwrap_or(packet.server_ip());
                self.accept_first_ack(&packet, server, &mut actions);
            }
            (
                State::Renewing { lease, .. } | State::Rebinding { lease, .. },
                DhcpMessageType::Ack,
            ) => {
                if packet.your_ip() != lease.address {
                    // A server that answers a renewal with another address: RFC 2131 does not
                    // allow it; keep the lease and let it run to REBINDING or expiry.
                    self.counters.unexpected_replies += 1;
                    return actions;
                }
                match parse_lease(&packet) {
                    Ok((renewed, ignored)) => {
                        self.count_ignored(ignored);
                        self.counters.acks_accepted += 1;
                        let times = LeaseTimes::new(&renewed, self.request_sent_at);
                        actions.push(Action::Bound(renewed.clone()));
                        self.state = State::Bound {
                            lease: renewed,
                            times,
                        };
                    }
                    Err(_) => self.counters.unusable_leases += 1,
                }
            }
            (State::Requesting { server, .. }, DhcpMessageType::Nak) => {
                if server_identifier.is_some_and(|s| s != server) {
                    self.counters.unexpected_replies += 1;
                    return actions;
                }
                self.counters.naks_accepted += 1;
                self.start_discovery(now, &mut actions);
            }
            (State::Rebooting { .. }, DhcpMessageType::Nak) => {
                self.counters.naks_accepted += 1;
                self.start_discovery(now, &mut actions);
            }
            (
                State::Renewing { lease, .. } | State::Rebinding { lease, .. },
                DhcpMessageType::Nak,
            ) => {
                // RFC 2131 section 4.4.5: a NAK while renewing ends the lease at once.
                self.counters.naks_accepted += 1;
                actions.push(Action::Deconfigure {
                    address: lease.address,
                });
                self.start_discovery(now, &mut actions);
            }
            _ => self.counters.unexpected_replies += 1,
        }
        actions
    }

    /// The result of the ARP probe asked for by [`Action::Probe`]: `conflict` when another host
    /// answered for the address (RFC 5227 section 2.1.1). A conflict sends a DECLINE and starts
    /// over after 10 s; otherwise the lease is bound.
    pub fn probe_result(&mut self, now: Instant, conflict: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let State::Probing { lease, server } = self.state.clone() else {
            return actions;
        };
        if conflict {
            self.counters.conflicts_declined += 1;
            self.counters.declines_sent += 1;
            let message = self.emit(
                now,
                DhcpMessageType::Decline,
                Ipv4Addr::UNSPECIFIED,
                Some(lease.address),
                Some(server),
                false,
            );
            actions.push(broadcast(message));
            self.state = State::Init {
                start_at: now + DECLINE_WAIT,
            };
        } else {
            let times = LeaseTimes::new(&lease, self.request_sent_at);
            actions.push(Action::Bound(lease.clone()));
            self.state = State::Bound { lease, times };
        }
        actions
    }

    fn accept_first_ack<T: AsRef<[u8]>>(
        &mut self,
        packet: &DhcpPacket<T>,
        server: Ipv4Addr,
        actions: &mut Vec<Action>,
    ) {
        match parse_lease(packet) {
            Ok((lease, ignored)) => {
                self.count_ignored(ignored);
                self.counters.acks_accepted += 1;
                actions.push(Action::Probe {
                    address: lease.address,
                });
                self.state = State::Probing { lease, server };
            }
            Err(
                LeaseError::BadAddress | LeaseError::MissingLeaseTime | LeaseError::MissingServer,
            ) => {
                self.counters.unusable_leases += 1;
            }
        }
    }

    fn count_ignored(&mut self, ignored: super::lease::IgnoredOptions) {
        let count = u64::from(ignored.malformed_classless_routes)
            + u64::from(ignored.bad_mtu)
            + u64::from(ignored.bad_subnet_mask);
        self.counters.ignored_options += count;
    }

    /// Checks op, type, xid, chaddr and client identifier; counts and drops anything else.
    fn validate<'a>(
        &mut self,
        datagram: &'a [u8],
    ) -> Option<(DhcpMessageType, DhcpPacket<&'a [u8]>)> {
        let Ok(packet) = DhcpPacket::new_checked(datagram) else {
            self.counters.malformed_replies += 1;
            return None;
        };
        if packet.opcode() != DhcpOpCode::Reply {
            self.counters.malformed_replies += 1;
            return None;
        }
        let message_type = match DhcpRepr::parse(&packet) {
            Ok(repr) => repr.message_type,
            Err(_) => {
                self.counters.malformed_replies += 1;
                return None;
            }
        };
        if packet.transaction_id() != self.transaction_id {
            self.counters.wrong_transaction_id += 1;
            return None;
        }
        if packet.client_hardware_address() != self.hardware_address {
            self.counters.other_client += 1;
            return None;
        }
        // A server that echoes a client identifier (RFC 6842) must echo ours.
        if let Some(client_id) = packet
            .options()
            .find(|o| o.kind == option::CLIENT_IDENTIFIER)
            && client_id.data != self.client_identifier()
        {
            self.counters.other_client += 1;
            return None;
        }
        Some((message_type, packet))
    }

    fn client_identifier(&self) -> [u8; 7] {
        let mut id = [1u8; 7];
        id[1..].copy_from_slice(self.hardware_address.as_bytes());
        id
    }

    fn start_discovery(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.new_exchange(now);
        let message = self.discover(now);
        self.state = State::Selecting {
            retry: self.first_retry(now),
        };
        actions.push(broadcast(message));
    }

    fn rebind(&mut self, lease: Lease, times: LeaseTimes, now: Instant, actions: &mut Vec<Action>) {
        // T2: REBINDING, the same REQUEST broadcast to any server (RFC 2131 section 4.4.5).
        self.new_exchange(now);
        self.request_sent_at = now;
        let message = self.request(
            now,
            RequestKind::Renewing {
                address: lease.address,
            },
        );
        actions.push(broadcast(message));
        self.state = State::Rebinding {
            next_send: renew_retry(now, times.expires_at),
            lease,
            times,
        };
    }

    fn expire(&mut self, address: Ipv4Addr, now: Instant, actions: &mut Vec<Action>) {
        self.counters.leases_expired += 1;
        actions.push(Action::Deconfigure { address });
        self.start_discovery(now, actions);
    }

    fn new_exchange(&mut self, now: Instant) {
        self.transaction_id = self.next_random() as u32;
        self.exchange_started = now;
    }

    fn first_retry(&mut self, now: Instant) -> Retry {
        Retry {
            sent: 1,
            deadline: now + self.jittered(FIRST_TIMEOUT),
        }
    }

    fn next_retry(&mut self, now: Instant, previous: Retry) -> Retry {
        let timeout = FIRST_TIMEOUT
            .saturating_mul(1 << previous.sent.min(4))
            .min(LAST_TIMEOUT);
        Retry {
            sent: previous.sent + 1,
            deadline: now + self.jittered(timeout),
        }
    }

    /// `timeout` +/- up to 1 s, uniformly (RFC 2131 section 4.1).
    fn jittered(&mut self, timeout: Duration) -> Duration {
        let offset = self.next_random() % 2001;
        (timeout + Duration::from_millis(offset)).saturating_sub(Duration::from_secs(1))
    }

    /// xorshift64*: enough to make xids and jitter unpredictable to an off-link observer given
    /// a secret seed; no cryptographic claim.
    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn discover(&mut self, now: Instant) -> Vec<u8> {
        self.counters.discovers_sent += 1;
        self.emit(
            now,
            DhcpMessageType::Discover,
            Ipv4Addr::UNSPECIFIED,
            None,
            None,
            true,
        )
    }

    fn request(&mut self, now: Instant, kind: RequestKind) -> Vec<u8> {
        self.counters.requests_sent += 1;
        // RFC 2131 section 4.4.1's table: what each REQUEST carries.
        let (client_ip, requested, server, broadcast) = match kind {
            RequestKind::Selecting { offered, server } => {
                (Ipv4Addr::UNSPECIFIED, Some(offered), Some(server), true)
            }
            RequestKind::InitReboot { address } => {
                (Ipv4Addr::UNSPECIFIED, Some(address), None, true)
            }
            RequestKind::Renewing { address } => (address, None, None, false),
        };
        self.emit(
            now,
            DhcpMessageType::Request,
            client_ip,
            requested,
            server,
            broadcast,
        )
    }

    /// One message, through smoltcp's `DhcpRepr`. The BROADCAST flag is set until an address
    /// is ours: the interface drops unicast to an address it does not have (RFC 2131 section
    /// 4.1 allows the client to ask for broadcast replies for this reason).
    fn emit(
        &self,
        now: Instant,
        message_type: DhcpMessageType,
        client_ip: Ipv4Addr,
        requested_ip: Option<Ipv4Addr>,
        server_identifier: Option<Ipv4Addr>,
        broadcast: bool,
    ) -> Vec<u8> {
        let parameter_list =
            (message_type != DhcpMessageType::Decline).then_some(&PARAMETER_REQUEST_LIST[..]);
        let secs = now.saturating_since(self.exchange_started).as_secs();
        let repr = DhcpRepr {
            message_type,
            transaction_id: self.transaction_id,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            client_hardware_address: self.hardware_address,
            client_ip,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast,
            requested_ip,
            client_identifier: Some(self.hardware_address),
            server_identifier,
            parameter_request_list: parameter_list,
            dns_servers: None,
            max_size: Some(MAXIMUM_MESSAGE_SIZE),
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[] as &[DhcpOption<'_>],
        };
        let mut buffer = vec![0u8; repr.buffer_len()];
        let mut packet = DhcpPacket::new_unchecked(&mut buffer[..]);
        // The buffer is as long as buffer_len says the representation needs: emit cannot fail.
        if repr.emit(&mut packet).is_err() {
            buffer.clear();
        }
        buffer
    }
}

#[derive(Clone, Copy)]
enum RequestKind {
    Selecting { offered: Ipv4Addr, server: Ipv4Addr },
    InitReboot { address: Ipv4Addr },
    Renewing { address: Ipv4Addr },
}

fn broadcast(message: Vec<u8>) -> Action {
    Action::Send {
        destination: Ipv4Addr::BROADCAST,
        message,
    }
}

/// RENEWING/REBINDING's next REQUEST: half the time left to `until`, at least 60 s, never past
/// `until` (RFC 2131 section 4.4.5).
fn renew_retry(now: Instant, until: Option<Instant>) -> Instant {
    match until {
        Some(until) => {
            let half = until.saturating_since(now) / 2;
            earliest(now + half.max(MINIMUM_RENEW_INTERVAL), Some(until))
        }
        None => now + MINIMUM_RENEW_INTERVAL,
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}
