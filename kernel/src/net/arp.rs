//! ARP (RFC 826): the neighbour cache with timeouts, resolution requests and the bounded queue of
//! packets waiting for an answer. It never sends anything itself: the interface asks it what to send.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use hashbrown::HashMap;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};

use super::counters::DropReason;
use crate::time::Instant;

/// Length of an Ethernet/IPv4 ARP packet (RFC 826: 8 bytes of header, two MAC and two IPv4 addresses).
pub const PACKET_LEN: usize = 28;

/// How long a learnt neighbour is trusted before it must be resolved again. RFC 1122 2.3.2.1
/// asks for a timeout so that a moved or replaced neighbour is eventually found; Linux keeps
/// entries reachable for about 30 s and stale for longer; one minute is a common middle.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(60);

/// Time between two requests for the same address (RFC 1122 2.3.2.1 asks for at most one
/// request per second per destination).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// How long before an entry in use expires we ask its neighbour again, by a request sent
/// straight to the MAC we know ("unicast poll", RFC 1122 2.3.2.1). The answer renews the entry
/// while traffic keeps flowing, so a busy flow never waits for a fresh broadcast resolution.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5);

/// Requests sent for one address before its waiting packets are dropped.
pub const MAX_REQUESTS: u8 = 3;

/// Packets that may wait for resolution, all destinations together. RFC 1122 2.3.2.2 asks to
/// keep at least one per destination; a bound keeps a scan of dead addresses from eating memory.
pub const WAITING_CAPACITY: usize = 64;

/// Neighbours remembered at most; when full, the entry closest to expiry makes room.
pub const CACHE_CAPACITY: usize = 256;

/// Announcements sent at start-up (RFC 5227 section 2.3: ANNOUNCE_NUM = 2, ANNOUNCE_INTERVAL = 2 s).
pub const ANNOUNCEMENTS: u8 = 2;
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a claim of a new MAC lasts, frames from the known one in between or not (see
/// [`ArpCache::holds_back_change`]): past the RFC 5227 interval between a host's two
/// announcements, so that one frame from the old MAC between them cannot undo the first.
pub const CLAIM_HOLD: Duration = Duration::from_secs(3);

/// A parsed Ethernet/IPv4 ARP request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpMessage {
    pub operation: ArpOperation,
    pub sender_hardware: EthernetAddress,
    pub sender_protocol: Ipv4Addr,
    pub target_hardware: EthernetAddress,
    pub target_protocol: Ipv4Addr,
}

impl ArpMessage {
    /// Parse an ARP payload (after the Ethernet header; trailing padding is ignored).
    pub fn parse(payload: &[u8]) -> Result<ArpMessage, DropReason> {
        let packet = ArpPacket::new_checked(payload).map_err(|_| DropReason::ArpMalformed)?;
        let repr = ArpRepr::parse(&packet).map_err(|_| DropReason::ArpMalformed)?;
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } = repr
        else {
            return Err(DropReason::ArpMalformed);
        };
        match operation {
            ArpOperation::Request | ArpOperation::Reply => {}
            _ => return Err(DropReason::ArpUnknownOperation),
        }
        Ok(ArpMessage {
            operation,
            sender_hardware: source_hardware_addr,
            sender_protocol: source_protocol_addr,
            target_hardware: target_hardware_addr,
            target_protocol: target_protocol_addr,
        })
    }

    /// A request for `target` from `our_hardware`/`our_protocol` (RFC 826, "Packet Generation").
    pub fn request(
        our_hardware: EthernetAddress,
        our_protocol: Ipv4Addr,
        target: Ipv4Addr,
    ) -> ArpMessage {
        ArpMessage {
            operation: ArpOperation::Request,
            sender_hardware: our_hardware,
            sender_protocol: our_protocol,
            target_hardware: EthernetAddress([0; 6]),
            target_protocol: target,
        }
    }

    /// An announcement of our own binding: a request whose sender and target protocol addresses
    /// are both ours and whose target hardware address is zero (RFC 5227 section 3).
    pub fn announcement(our_hardware: EthernetAddress, our_protocol: Ipv4Addr) -> ArpMessage {
        ArpMessage::request(our_hardware, our_protocol, our_protocol)
    }

    /// The reply to `request` that says `our_hardware` holds the requested address.
    pub fn reply_to(request: &ArpMessage, our_hardware: EthernetAddress) -> ArpMessage {
        ArpMessage {
            operation: ArpOperation::Reply,
            sender_hardware: our_hardware,
            sender_protocol: request.target_protocol,
            target_hardware: request.sender_hardware,
            target_protocol: request.sender_protocol,
        }
    }

    /// Write the packet into the first [`PACKET_LEN`] bytes of `buffer`.
    pub fn write(&self, buffer: &mut [u8]) {
        let repr = ArpRepr::EthernetIpv4 {
            operation: self.operation,
            source_hardware_addr: self.sender_hardware,
            source_protocol_addr: self.sender_protocol,
            target_hardware_addr: self.target_hardware,
            target_protocol_addr: self.target_protocol,
        };
        repr.emit(&mut ArpPacket::new_unchecked(&mut buffer[..PACKET_LEN]));
    }
}

/// One learnt neighbour.
#[derive(Clone, Copy, Debug)]
struct Entry {
    hardware: EthernetAddress,
    expires_at: Instant,
    /// A unicast refresh request went out for this entry.
    refresh_requested: bool,
    /// A different MAC that one ARP packet claimed for this address, not believed yet, and
    /// when (see [`ArpCache::holds_back_change`]).
    claimed: Option<(EthernetAddress, Instant)>,
}

/// A known neighbour, as [`ArpCache::lookup_for_transmit`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub hardware: EthernetAddress,
    /// The entry is about to expire and no refresh was asked yet: send a unicast request to
    /// `hardware` now.
    pub refresh: bool,
}

/// An address being resolved: when we last asked and how many times.
#[derive(Clone, Copy, Debug)]
struct Resolution {
    last_request_at: Instant,
    requests_sent: u8,
}

/// An IPv4 packet (header included, Ethernet header not yet) waiting for its next hop's MAC.
#[derive(Debug)]
pub struct WaitingPacket {
    pub next_hop: Ipv4Addr,
    pub packet: Vec<u8>,
}

/// What the interface should do after [`ArpCache::enqueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// The packet waits, and a request for its next hop should go out now.
    SendRequest,
    /// The packet waits behind a request already sent.
    RequestPending,
}

/// The neighbour cache of one interface.
#[derive(Debug, Default)]
pub struct ArpCache {
    entries: HashMap<Ipv4Addr, Entry>,
    resolutions: HashMap<Ipv4Addr, Resolution>,
    waiting: VecDeque<WaitingPacket>,
    /// No timer is due before this (it may be early, never late): lets the per-poll call of
    /// `on_timers` return at once instead of scanning the tables.
    next_check: Option<Instant>,
    /// The entry the last transmit lookup found: its address, MAC, and the time until which
    /// it needs no refresh. Nearly every frame goes to the same next hop as the one before,
    /// and this answers it without hashing; any change to `entries` clears it.
    last_used: Option<(Ipv4Addr, EthernetAddress, Instant)>,
}

impl ArpCache {
    pub fn new() -> ArpCache {
        ArpCache::default()
    }

    /// The MAC of `address` if it is known and not expired.
    pub fn lookup(&self, now: Instant, address: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries
            .get(&address)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.hardware)
    }

    /// Like [`lookup`](Self::lookup) for a packet about to be sent: also says, once per entry,
    /// when the entry is close enough to expiry to be refreshed.
    pub fn lookup_for_transmit(&mut self, now: Instant, address: Ipv4Addr) -> Option<Neighbour> {
        if let Some((last, hardware, quiet_until)) = self.last_used
            && last == address
            && now < quiet_until
        {
            // What the table would answer: valid, and too far from expiry to refresh.
            return Some(Neighbour {
                hardware,
                refresh: false,
            });
        }
        let entry = self
            .entries
            .get_mut(&address)
            .filter(|entry| entry.expires_at > now)?;
        let refresh = !entry.refresh_requested && entry.expires_at <= now + REFRESH_BEFORE_EXPIRY;
        entry.refresh_requested |= refresh;
        self.last_used = Some((
            address,
            entry.hardware,
            entry.expires_at - REFRESH_BEFORE_EXPIRY,
        ));
        Some(Neighbour {
            hardware: entry.hardware,
            refresh,
        })
    }

    /// Whether `address` already has an entry (fresh or not); RFC 826's merge step updates
    /// such an entry from any ARP packet that names it as sender.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.entries.contains_key(&address)
    }

    /// Whether an ARP packet that says `address` is at `hardware` must not change the entry
    /// yet: the entry is valid and knows another MAC, and no packet claimed this one in the
    /// last `CLAIM_HOLD`.
    /// ARP has no checksum, and a frame with one bit flipped in its sender MAC (the
    /// impairment relay does this, as can a bad link) would otherwise send every frame to
    /// that neighbour into the void until the entry expires: a TCP transfer stalled for a
    /// minute (issue 29, item 9). The change is believed when a second packet claims the same
    /// MAC within `CLAIM_HOLD`: a host that really moved announces twice (RFC 5227 section 2.3, ANNOUNCE_NUM) and
    /// answers the broadcast request the caller sends to check; the true owner's answer with
    /// the known MAC renews the entry, and forgets the claim once it is `CLAIM_HOLD` old (a
    /// frame from the old MAC between the two announcements of a host that moved, or of an
    /// owner repairing a poisoned entry, must not undo the first). Linux reaches the same end by
    /// its neighbour states: a changed MAC from a request only makes the entry STALE, and
    /// one that is not confirmed by the upper layers is probed and replaced within seconds.
    /// True the first time only, so one claim draws one check.
    pub fn holds_back_change(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        hardware: EthernetAddress,
    ) -> bool {
        let Some(entry) = self
            .entries
            .get_mut(&address)
            .filter(|entry| entry.expires_at > now && entry.hardware != hardware)
        else {
            return false;
        };
        if entry.claimed.is_some_and(|(claimed, claimed_at)| {
            claimed == hardware && now < claimed_at + CLAIM_HOLD
        }) {
            return false;
        }
        entry.claimed = Some((hardware, now));
        true
    }

    /// Record that `address` is at `hardware`, and hand back in order the packets that were
    /// waiting for it, ready to be framed and sent.
    pub fn learn(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        hardware: EthernetAddress,
    ) -> Vec<WaitingPacket> {
        if !self.entries.contains_key(&address) && self.entries.len() >= CACHE_CAPACITY {
            self.evict_one(now);
        }
        let expires_at = now + ENTRY_LIFETIME;
        self.last_used = None;
        // A recent claim of another MAC survives the renewal (`CLAIM_HOLD`).
        let claimed = self
            .entries
            .get(&address)
            .filter(|entry| entry.hardware == hardware)
            .and_then(|entry| entry.claimed)
            .filter(|&(_, claimed_at)| now < claimed_at + CLAIM_HOLD);
        self.entries.insert(
            address,
            Entry {
                hardware,
                expires_at,
                refresh_requested: false,
                claimed,
            },
        );
        self.schedule(expires_at);
        self.resolutions.remove(&address);
        if !self
            .waiting
            .iter()
            .any(|waiting| waiting.next_hop == address)
        {
            return Vec::new();
        }
        let (ready, still_waiting): (VecDeque<_>, VecDeque<_>) = self
            .waiting
            .drain(..)
            .partition(|waiting| waiting.next_hop == address);
        self.waiting = still_waiting;
        ready.into()
    }

    /// Make room for one entry: drop the expired ones, or else the one closest to expiry.
    fn evict_one(&mut self, now: Instant) {
        self.last_used = None;
        self.entries.retain(|_, entry| entry.expires_at > now);
        if self.entries.len() < CACHE_CAPACITY {
            return;
        }
        if let Some(oldest) = self
            .entries
            .iter()
            // Ties broken by address, not by the table's order (see `on_timers`).
            .min_by_key(|(address, entry)| (entry.expires_at, **address))
            .map(|(address, _)| *address)
        {
            self.entries.remove(&oldest);
        }
    }

    /// Park `packet` until `next_hop` is resolved.
    pub fn enqueue(
        &mut self,
        now: Instant,
        next_hop: Ipv4Addr,
        packet: Vec<u8>,
    ) -> Result<Enqueued, DropReason> {
        if self.waiting.len() >= WAITING_CAPACITY {
            return Err(DropReason::ArpQueueFull);
        }
        self.waiting.push_back(WaitingPacket { next_hop, packet });
        if self.resolutions.contains_key(&next_hop) {
            return Ok(Enqueued::RequestPending);
        }
        self.resolutions.insert(
            next_hop,
            Resolution {
                last_request_at: now,
                requests_sent: 1,
            },
        );
        self.schedule(now + REQUEST_INTERVAL);
        Ok(Enqueued::SendRequest)
    }

    fn schedule(&mut self, deadline: Instant) {
        self.next_check = Some(
            self.next_check
                .map_or(deadline, |check| check.min(deadline)),
        );
    }

    /// Whether [`on_timers`](Self::on_timers) has anything to do at `now`: a check the
    /// interface makes at every poll, before it sets up the calls back.
    pub fn timers_due(&self, now: Instant) -> bool {
        self.next_check.is_some_and(|check| now >= check)
    }

    /// Run the timers: call `send_request` for every address whose request is due again, and
    /// `drop_packet` for every waiting packet whose next hop did not answer [`MAX_REQUESTS`]
    /// requests (RFC 1122 2.3.2.1: give up after a few tries). Expired entries are forgotten.
    pub fn on_timers(
        &mut self,
        now: Instant,
        mut send_request: impl FnMut(Ipv4Addr),
        mut drop_packet: impl FnMut(WaitingPacket),
    ) {
        if !self.timers_due(now) {
            return;
        }
        self.last_used = None;
        self.entries.retain(|_, entry| entry.expires_at > now);
        // The due addresses in address order, not the table's: the hash seed differs from one
        // table to the next, and the order of the requests (and of the dropped packets) must
        // not depend on it, so that a simulated run replays exactly from its seed.
        let mut due: Vec<Ipv4Addr> = self
            .resolutions
            .iter()
            .filter(|(_, resolution)| now >= resolution.last_request_at + REQUEST_INTERVAL)
            .map(|(address, _)| *address)
            .collect();
        due.sort_unstable();
        let mut failed: Vec<Ipv4Addr> = Vec::new();
        for address in due {
            let Some(resolution) = self.resolutions.get_mut(&address) else {
                continue;
            };
            if resolution.requests_sent >= MAX_REQUESTS {
                failed.push(address);
            } else {
                resolution.requests_sent += 1;
                resolution.last_request_at = now;
                send_request(address);
            }
        }
        for address in failed {
            self.resolutions.remove(&address);
            let (dropped, kept): (VecDeque<_>, VecDeque<_>) = self
                .waiting
                .drain(..)
                .partition(|waiting| waiting.next_hop == address);
            self.waiting = kept;
            dropped.into_iter().for_each(&mut drop_packet);
        }
        self.next_check = self.next_deadline();
    }

    /// The earliest time at which [`on_timers`](Self::on_timers) has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let resolutions = self
            .resolutions
            .values()
            .map(|resolution| resolution.last_request_at + REQUEST_INTERVAL);
        let expiries = self.entries.values().map(|entry| entry.expires_at);
        resolutions.chain(expiries).min()
    }

    /// Learnt neighbours, expired or not.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Packets waiting for resolution.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Addresses being resolved.
    pub fn resolution_count(&self) -> usize {
        self.resolutions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn messages_round_trip_through_the_wire_format() {
        let request = ArpMessage::request(US, OUR_IP, PEER_IP);
        let mut buffer = [0u8; PACKET_LEN + 18];
        request.write(&mut buffer);
        assert_eq!(ArpMessage::parse(&buffer), Ok(request));
        let reply = ArpMessage::reply_to(&request, PEER);
        assert_eq!(reply.sender_protocol, PEER_IP);
        assert_eq!(reply.target_hardware, US);
        let announcement = ArpMessage::announcement(US, OUR_IP);
        assert_eq!(announcement.target_protocol, OUR_IP);
        assert_eq!(announcement.sender_protocol, OUR_IP);
    }

    #[test]
    fn malformed_and_unknown_operations_are_rejected() {
        assert_eq!(ArpMessage::parse(&[0u8; 7]), Err(DropReason::ArpMalformed));
        let mut buffer = [0u8; PACKET_LEN];
        ArpMessage::request(US, OUR_IP, PEER_IP).write(&mut buffer);
        buffer[7] = 9; // operation 9 (InARP reply) is not ours to handle
        assert_eq!(
            ArpMessage::parse(&buffer),
            Err(DropReason::ArpUnknownOperation)
        );
        buffer[7] = 1;
        buffer[4] = 8; // hardware length 8: not Ethernet
        assert_eq!(ArpMessage::parse(&buffer), Err(DropReason::ArpMalformed));
    }

    #[test]
    fn waiting_packets_are_released_in_order_when_the_answer_comes() {
        let mut cache = ArpCache::new();
        let start = Instant::from_millis(10);
        assert_eq!(
            cache.enqueue(start, PEER_IP, alloc::vec![1]),
            Ok(Enqueued::SendRequest)
        );
        assert_eq!(
            cache.enqueue(start, PEER_IP, alloc::vec![2]),
            Ok(Enqueued::RequestPending)
        );
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(
            cache.enqueue(start, other, alloc::vec![3]),
            Ok(Enqueued::SendRequest)
        );
        let released = cache.learn(start, PEER_IP, PEER);
        let contents: Vec<Vec<u8>> = released.into_iter().map(|waiting| waiting.packet).collect();
        assert_eq!(contents, [alloc::vec![1], alloc::vec![2]]);
        assert_eq!(cache.lookup(start, PEER_IP), Some(PEER));
        assert_eq!(cache.waiting_count(), 1);
        assert_eq!(cache.resolution_count(), 1);
    }

    /// Every table gets its own random hash seed, so a table's iteration order differs from
    /// one cache to the next: the requests due together (and the packets given up together)
    /// must come out in address order, or a seeded simulation does not replay.
    #[test]
    fn timers_send_and_drop_in_address_order_whatever_the_hash_order() {
        let start = Instant::from_millis(0);
        let addresses: Vec<Ipv4Addr> = (0..40u8)
            .map(|index: u8| Ipv4Addr::new(10, 0, 0, 100 + (u16::from(index) * 37 % 120) as u8))
            .collect();
        let mut sorted = addresses.clone();
        sorted.sort_unstable();
        for _ in 0..8 {
            let mut cache = ArpCache::new();
            for (index, address) in addresses.iter().enumerate() {
                cache
                    .enqueue(start, *address, alloc::vec![index as u8])
                    .unwrap();
            }
            let mut requests = Vec::new();
            let mut dropped = Vec::new();
            while let Some(deadline) = cache.next_deadline() {
                cache.on_timers(
                    deadline,
                    |address| requests.push(address),
                    |waiting| dropped.push(waiting.next_hop),
                );
            }
            let retries = usize::from(MAX_REQUESTS) - 1;
            let expected: Vec<Ipv4Addr> = (0..retries).flat_map(|_| sorted.clone()).collect();
            assert_eq!(requests, expected);
            assert_eq!(dropped, sorted);
        }
    }

    #[test]
    fn requests_are_retried_then_given_up_and_entries_expire() {
        let mut cache = ArpCache::new();
        let start = Instant::from_millis(0);
        cache.enqueue(start, PEER_IP, alloc::vec![1]).unwrap();
        let mut requests = 0;
        let mut dropped = 0;
        let mut now = start;
        while let Some(deadline) = cache.next_deadline() {
            now = deadline;
            cache.on_timers(now, |_| requests += 1, |_| dropped += 1);
        }
        // One request at enqueue, MAX_REQUESTS - 1 retries, then the packet is dropped.
        assert_eq!(requests, usize::from(MAX_REQUESTS) - 1);
        assert_eq!(dropped, 1);
        assert_eq!(now, start + REQUEST_INTERVAL * u32::from(MAX_REQUESTS));
        assert_eq!(cache.waiting_count(), 0);

        cache.learn(now, PEER_IP, PEER);
        assert_eq!(cache.next_deadline(), Some(now + ENTRY_LIFETIME));
        assert_eq!(cache.lookup(now + ENTRY_LIFETIME, PEER_IP), None);
        cache.on_timers(now + ENTRY_LIFETIME, |_| {}, |_| {});
        assert_eq!(cache.entry_count(), 0);
    }

    #[test]
    fn an_entry_in_use_asks_for_one_refresh_before_it_expires() {
        let mut cache = ArpCache::new();
        let start = Instant::ZERO;
        cache.learn(start, PEER_IP, PEER);
        let early = cache.lookup_for_transmit(start + Duration::from_secs(1), PEER_IP);
        assert_eq!(
            early,
            Some(Neighbour {
                hardware: PEER,
                refresh: false
            })
        );
        let late = start + ENTRY_LIFETIME - REFRESH_BEFORE_EXPIRY;
        assert!(cache.lookup_for_transmit(late, PEER_IP).unwrap().refresh);
        assert!(!cache.lookup_for_transmit(late, PEER_IP).unwrap().refresh);
        // The answer renews the entry, and a later refresh may be asked again.
        cache.learn(late, PEER_IP, PEER);
        assert_eq!(
            cache.lookup(late + ENTRY_LIFETIME - Duration::from_secs(1), PEER_IP),
            Some(PEER)
        );
        let next = late + ENTRY_LIFETIME - Duration::from_secs(1);
        assert!(cache.lookup_for_transmit(next, PEER_IP).unwrap().refresh);
        assert_eq!(
            cache.lookup_for_transmit(next + Duration::from_secs(1), PEER_IP),
            None
        );
    }

    #[test]
    fn a_new_mac_is_used_by_the_next_transmit_lookup() {
        let mut cache = ArpCache::new();
        let now = Instant::ZERO;
        cache.learn(now, PEER_IP, PEER);
        assert_eq!(
            cache.lookup_for_transmit(now, PEER_IP).unwrap().hardware,
            PEER
        );
        let moved = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
        cache.learn(now, PEER_IP, moved);
        assert_eq!(
            cache.lookup_for_transmit(now, PEER_IP).unwrap().hardware,
            moved
        );
        // Expired entries forgotten by the timers are not answered either.
        let expired = now + ENTRY_LIFETIME;
        cache.on_timers(expired, |_| {}, |_| {});
        assert_eq!(cache.lookup_for_transmit(expired, PEER_IP), None);
    }

    #[test]
    fn the_waiting_queue_and_the_cache_are_bounded() {
        let mut cache = ArpCache::new();
        let now = Instant::ZERO;
        for index in 0..WAITING_CAPACITY {
            let address = Ipv4Addr::new(10, 1, 0, index as u8);
            assert!(cache.enqueue(now, address, Vec::new()).is_ok());
        }
        assert_eq!(
            cache.enqueue(now, PEER_IP, Vec::new()),
            Err(DropReason::ArpQueueFull)
        );
        for index in 0..CACHE_CAPACITY + 10 {
            let address = Ipv4Addr::from(0x0a02_0000 + index as u32);
            cache.learn(now + Duration::from_millis(index as u64), address, PEER);
        }
        assert_eq!(cache.entry_count(), CACHE_CAPACITY);
        // The newest entry stays, the oldest made room.
        assert!(cache.contains(Ipv4Addr::from(0x0a02_0000 + CACHE_CAPACITY as u32 + 9)));
        assert!(!cache.contains(Ipv4Addr::from(0x0a02_0000)));
    }
}
