//! Tests of the DHCP client against a scripted server on a virtual clock.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use proptest::prelude::*;
use smoltcp::wire::{DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress};

use super::*;
use crate::time::Instant;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

fn at(seconds: u64) -> Instant {
    Instant::from_millis(seconds * 1000)
}

/// What the client sent, read back through smoltcp.
#[derive(Debug)]
struct Sent {
    destination: Ipv4Addr,
    message_type: DhcpMessageType,
    transaction_id: u32,
    client_ip: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_identifier: Option<Ipv4Addr>,
    broadcast: bool,
}

fn sent(actions: &[Action]) -> Vec<Sent> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send {
                destination,
                message,
            } => {
                let packet = DhcpPacket::new_checked(&message[..]).expect("a whole message");
                let repr = DhcpRepr::parse(&packet).expect("a message smoltcp reads");
                assert_eq!(repr.client_hardware_address, EthernetAddress(MAC));
                assert_eq!(repr.client_identifier, Some(EthernetAddress(MAC)));
                Some(Sent {
                    destination: *destination,
                    message_type: repr.message_type,
                    transaction_id: repr.transaction_id,
                    client_ip: repr.client_ip,
                    requested_ip: repr.requested_ip,
                    server_identifier: repr.server_identifier,
                    broadcast: repr.broadcast,
                })
            }
            _ => None,
        })
        .collect()
}

fn only_sent(actions: &[Action]) -> Sent {
    let mut all = sent(actions);
    assert_eq!(all.len(), 1, "{actions:?}");
    all.remove(0)
}

/// A DHCP server's reply with the options a test wants (raw, so that 26 and 121 are sent).
struct Reply {
    message_type: DhcpMessageType,
    transaction_id: u32,
    hardware_address: [u8; 6],
    your_ip: Ipv4Addr,
    options: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    fn to(request: &Sent, message_type: DhcpMessageType) -> Reply {
        let mut options = vec![(54, SERVER.octets().to_vec())];
        if message_type != DhcpMessageType::Nak {
            options.extend([
                (1, vec![255, 255, 255, 0]),
                (3, SERVER.octets().to_vec()),
                (6, vec![10, 77, 0, 1, 9, 9, 9, 9]),
                (15, b"unisock.test".to_vec()),
                (12, b"edge-1".to_vec()),
                (51, 100u32.to_be_bytes().to_vec()),
            ]);
        }
        Reply {
            message_type,
            transaction_id: request.transaction_id,
            hardware_address: MAC,
            your_ip: if message_type == DhcpMessageType::Nak {
                Ipv4Addr::UNSPECIFIED
            } else {
                request
                    .requested_ip
                    .unwrap_or(if request.client_ip.is_unspecified() {
                        OFFERED
                    } else {
                        request.client_ip
                    })
            },
            options,
        }
    }

    fn with(mut self, kind: u8, data: &[u8]) -> Reply {
        self.options.retain(|(k, _)| *k != kind);
        self.options.push((kind, data.to_vec()));
        self
    }

    fn without(mut self, kind: u8) -> Reply {
        self.options.retain(|(k, _)| *k != kind);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let options: Vec<DhcpOption<'_>> = self
            .options
            .iter()
            .map(|(kind, data)| DhcpOption { kind: *kind, data })
            .collect();
        let repr = DhcpRepr {
            message_type: self.message_type,
            transaction_id: self.transaction_id,
            secs: 0,
            client_hardware_address: EthernetAddress(self.hardware_address),
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: self.your_ip,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: true,
            requested_ip: None,
            client_identifier: None,
            server_identifier: None,
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &options,
        };
        let mut buffer = vec![0u8; repr.buffer_len()];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut buffer[..]))
            .unwrap();
        buffer
    }
}

fn bound_lease(actions: &[Action]) -> Lease {
    actions
        .iter()
        .find_map(|action| match action {
            Action::Bound(lease) => Some(lease.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no lease in {actions:?}"))
}

/// A client taken to BOUND at `at(0)` with the ACK `customise` makes; returns it and the lease.
fn bind(customise: impl Fn(Reply) -> Reply) -> (DhcpClient, Lease) {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let offer = customise(Reply::to(&discover, DhcpMessageType::Offer));
    let request = only_sent(&client.receive(at(0), &offer.bytes()));
    let ack = customise(Reply::to(&request, DhcpMessageType::Ack));
    let actions = client.receive(at(0), &ack.bytes());
    assert_eq!(actions, vec![Action::Probe { address: OFFERED }]);
    let lease = bound_lease(&client.probe_result(at(0), false));
    assert_eq!(client.state(), StateKind::Bound);
    (client, lease)
}

#[test]
fn discover_offer_request_ack_probe_binds_the_lease() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    assert_eq!(client.state(), StateKind::Init);
    assert_eq!(client.next_deadline(), Some(at(0)));
    let discover = only_sent(&client.poll(at(0)));
    assert_eq!(discover.message_type, DhcpMessageType::Discover);
    assert_eq!(discover.destination, Ipv4Addr::BROADCAST);
    // The interface drops unicast to an address it does not have yet: ask for broadcast.
    assert!(discover.broadcast);
    assert_eq!(client.state(), StateKind::Selecting);

    let offer = Reply::to(&discover, DhcpMessageType::Offer).bytes();
    let request = only_sent(&client.receive(at(1), &offer));
    assert_eq!(request.message_type, DhcpMessageType::Request);
    assert_eq!(request.transaction_id, discover.transaction_id);
    assert_eq!(request.requested_ip, Some(OFFERED));
    assert_eq!(request.server_identifier, Some(SERVER));
    assert_eq!(request.client_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(request.destination, Ipv4Addr::BROADCAST);
    assert_eq!(client.state(), StateKind::Requesting);

    let ack = Reply::to(&request, DhcpMessageType::Ack).bytes();
    assert_eq!(
        client.receive(at(2), &ack),
        vec![Action::Probe { address: OFFERED }]
    );
    assert_eq!(client.state(), StateKind::Probing);
    assert_eq!(client.lease(), None, "not in use before the probe");
    assert_eq!(client.next_deadline(), None);

    let lease = bound_lease(&client.probe_result(at(3), false));
    assert_eq!(
        lease,
        Lease {
            address: OFFERED,
            prefix_len: 24,
            routers: vec![SERVER],
            classless_routes: vec![],
            dns_servers: vec![SERVER, Ipv4Addr::new(9, 9, 9, 9)],
            domain_name: Some("unisock.test".into()),
            hostname: Some("edge-1".into()),
            mtu: None,
            server: SERVER,
            lease_time: Some(Duration::from_secs(100)),
            renewal_time: Some(Duration::from_secs(50)),
            rebinding_time: Some(Duration::from_millis(87_500)),
        }
    );
    // The times run from the REQUEST (sent at 1 s), RFC 2131 section 4.4.1.
    assert_eq!(client.next_deadline(), Some(at(51)));
    let counters = client.counters();
    assert_eq!((counters.discovers_sent, counters.requests_sent), (1, 1));
    assert_eq!((counters.offers_accepted, counters.acks_accepted), (1, 1));
}

#[test]
fn a_nak_while_requesting_starts_over_with_a_new_transaction() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let offer = Reply::to(&discover, DhcpMessageType::Offer).bytes();
    let request = only_sent(&client.receive(at(0), &offer));
    let nak = Reply::to(&request, DhcpMessageType::Nak).bytes();
    let again = only_sent(&client.receive(at(1), &nak));
    assert_eq!(again.message_type, DhcpMessageType::Discover);
    assert_ne!(again.transaction_id, discover.transaction_id);
    assert_eq!(client.state(), StateKind::Selecting);
    assert_eq!(client.counters().naks_accepted, 1);
}

#[test]
fn lost_discovers_are_retransmitted_at_4_8_16_32_64_64_seconds_plus_or_minus_one() {
    let mut client = DhcpClient::new(MAC, 7, None, at(0));
    only_sent(&client.poll(at(0)));
    let mut last = at(0);
    for expected in [4u64, 8, 16, 32, 64, 64] {
        let deadline = client.next_deadline().unwrap();
        let waited = deadline.saturating_since(last);
        assert!(
            waited >= Duration::from_secs(expected - 1)
                && waited <= Duration::from_secs(expected + 1),
            "waited {waited:?}, expected {expected} s +/- 1"
        );
        // Nothing before the deadline.
        assert!(client.poll(deadline - Duration::from_millis(1)).is_empty());
        let again = only_sent(&client.poll(deadline));
        assert_eq!(again.message_type, DhcpMessageType::Discover);
        last = deadline;
    }
    assert_eq!(client.counters().retransmissions, 6);
    assert_eq!(client.state(), StateKind::Selecting);
}

#[test]
fn the_back_off_is_randomised_not_fixed() {
    let first_waits: Vec<Instant> = (1..=8u64)
        .map(|seed| {
            let mut client = DhcpClient::new(MAC, seed * 7919, None, at(0));
            client.poll(at(0));
            client.next_deadline().unwrap()
        })
        .collect();
    assert!(
        first_waits.iter().any(|w| *w != first_waits[0]),
        "{first_waits:?}"
    );
}

#[test]
fn an_unanswered_request_falls_back_to_init_after_the_64_second_wait() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let offer = Reply::to(&discover, DhcpMessageType::Offer).bytes();
    only_sent(&client.receive(at(0), &offer));
    let mut requests = 1;
    loop {
        let deadline = client.next_deadline().unwrap();
        let message = only_sent(&client.poll(deadline));
        if message.message_type == DhcpMessageType::Discover {
            break;
        }
        assert_eq!(message.requested_ip, Some(OFFERED));
        requests += 1;
    }
    assert_eq!(requests, 5);
    assert_eq!(client.state(), StateKind::Selecting);
}

#[test]
fn t1_renews_by_unicast_to_the_server_and_the_ack_extends_the_lease() {
    let (mut client, _) = bind(|reply| reply);
    assert!(client.poll(at(49)).is_empty());
    let renew = only_sent(&client.poll(at(50)));
    assert_eq!(client.state(), StateKind::Renewing);
    assert_eq!(renew.message_type, DhcpMessageType::Request);
    assert_eq!(renew.destination, SERVER);
    assert_eq!(renew.client_ip, OFFERED);
    assert_eq!((renew.requested_ip, renew.server_identifier), (None, None));
    assert!(!renew.broadcast);
    // Unanswered: again at half the time to T2 but not sooner than 60 s, so at T2 here.
    assert_eq!(client.next_deadline(), Some(Instant::from_millis(87_500)));

    let ack = Reply::to(&renew, DhcpMessageType::Ack).bytes();
    let lease = bound_lease(&client.receive(at(51), &ack));
    assert_eq!(lease.address, OFFERED);
    assert_eq!(client.state(), StateKind::Bound);
    assert_eq!(
        client.next_deadline(),
        Some(at(100)),
        "T1 from the renewal at 50 s"
    );
}

#[test]
fn t2_rebinds_by_broadcast_and_expiry_deconfigures_then_discovers() {
    let (mut client, _) = bind(|reply| reply);
    only_sent(&client.poll(at(50)));
    let rebind = only_sent(&client.poll(Instant::from_millis(87_500)));
    assert_eq!(client.state(), StateKind::Rebinding);
    assert_eq!(rebind.destination, Ipv4Addr::BROADCAST);
    assert_eq!(rebind.client_ip, OFFERED);
    assert_eq!(rebind.server_identifier, None);
    assert_eq!(client.next_deadline(), Some(at(100)));

    let actions = client.poll(at(100));
    assert_eq!(
        actions[0],
        Action::Deconfigure { address: OFFERED },
        "the caller must stop using the address first"
    );
    assert_eq!(only_sent(&actions).message_type, DhcpMessageType::Discover);
    assert_eq!(client.state(), StateKind::Selecting);
    assert_eq!(client.lease(), None);
    assert_eq!(client.counters().leases_expired, 1);
}

#[test]
fn a_nak_while_renewing_deconfigures_at_once() {
    let (mut client, _) = bind(|reply| reply);
    let renew = only_sent(&client.poll(at(50)));
    let nak = Reply::to(&renew, DhcpMessageType::Nak).bytes();
    let actions = client.receive(at(50), &nak);
    assert_eq!(actions[0], Action::Deconfigure { address: OFFERED });
    assert_eq!(only_sent(&actions).message_type, DhcpMessageType::Discover);
}

#[test]
fn a_gce_style_slash_32_lease_takes_its_routes_from_option_121_and_its_mtu_from_26() {
    let gateway = Ipv4Addr::new(10, 77, 0, 1);
    let (_, lease) = bind(|reply| {
        reply
            .with(1, &[255, 255, 255, 255])
            // A router option that RFC 3442 says to ignore when 121 is present.
            .with(3, &[10, 77, 0, 254])
            // 10.77.0.1/32 on the link, then the default route through it.
            .with(121, &[32, 10, 77, 0, 1, 0, 0, 0, 0, 0, 10, 77, 0, 1])
            .with(26, &1460u16.to_be_bytes())
    });
    assert_eq!(lease.prefix_len, 32);
    assert!(lease.routers.is_empty());
    assert_eq!(
        lease.classless_routes,
        vec![
            ClasslessRoute {
                destination: gateway,
                prefix_len: 32,
                gateway: Ipv4Addr::UNSPECIFIED
            },
            ClasslessRoute {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway
            },
        ]
    );
    assert_eq!(lease.mtu, Some(1460));
}

#[test]
fn a_malformed_option_121_or_a_tiny_mtu_is_ignored_and_counted() {
    let (client, lease) = bind(|reply| {
        reply
            .with(121, &[24, 10, 0]) // ends inside the route
            .with(26, &60u16.to_be_bytes())
    });
    assert_eq!(
        lease.routers,
        vec![SERVER],
        "option 3 serves when 121 is unusable"
    );
    assert!(lease.classless_routes.is_empty());
    assert_eq!(lease.mtu, None);
    // Counted once per ACK (the OFFER's content is not counted).
    assert_eq!(client.counters().ignored_options, 2);
}

#[test]
fn classless_routes_read_as_rfc_3442_encodes_them() {
    // RFC 3442 section 2's examples: 0 -> default, 8 -> 10/8, 24 -> 10.17.0/24, 32 -> host.
    let routes = parse_classless_routes(&[
        0, 1, 1, 1, 1, 8, 10, 2, 2, 2, 2, 24, 10, 17, 0, 3, 3, 3, 3, 32, 10, 0, 0, 7, 4, 4, 4, 4,
    ])
    .unwrap();
    let expected = [
        (Ipv4Addr::new(0, 0, 0, 0), 0, [1, 1, 1, 1]),
        (Ipv4Addr::new(10, 0, 0, 0), 8, [2, 2, 2, 2]),
        (Ipv4Addr::new(10, 17, 0, 0), 24, [3, 3, 3, 3]),
        (Ipv4Addr::new(10, 0, 0, 7), 32, [4, 4, 4, 4]),
    ];
    for (route, (destination, prefix_len, gateway)) in routes.iter().zip(expected) {
        assert_eq!(route.destination, destination);
        assert_eq!(route.prefix_len, prefix_len);
        assert_eq!(route.gateway, Ipv4Addr::from(gateway));
    }
    assert_eq!(routes.len(), 4);
    // Bits beyond the width are masked off.
    assert_eq!(
        parse_classless_routes(&[9, 10, 255, 1, 1, 1, 1]).unwrap()[0].destination,
        Ipv4Addr::new(10, 128, 0, 0)
    );
    assert_eq!(
        parse_classless_routes(&[33, 1, 2, 3, 4, 5, 1, 1, 1, 1]),
        None
    );
    assert_eq!(parse_classless_routes(&[]), None);
}

#[test]
fn a_conflict_found_by_the_probe_declines_the_address_and_waits_ten_seconds() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let offer = Reply::to(&discover, DhcpMessageType::Offer).bytes();
    let request = only_sent(&client.receive(at(0), &offer));
    let ack = Reply::to(&request, DhcpMessageType::Ack).bytes();
    client.receive(at(1), &ack);
    let decline = only_sent(&client.probe_result(at(2), true));
    assert_eq!(decline.message_type, DhcpMessageType::Decline);
    assert_eq!(decline.requested_ip, Some(OFFERED));
    assert_eq!(decline.server_identifier, Some(SERVER));
    assert_eq!(decline.destination, Ipv4Addr::BROADCAST);
    assert_eq!(client.state(), StateKind::Init);
    assert_eq!(client.lease(), None);
    assert_eq!(client.next_deadline(), Some(at(12)));
    assert!(client.poll(at(11)).is_empty());
    assert_eq!(
        only_sent(&client.poll(at(12))).message_type,
        DhcpMessageType::Discover
    );
    assert_eq!(client.counters().conflicts_declined, 1);
}

#[test]
fn init_reboot_asks_for_the_remembered_address_and_binds_on_ack() {
    let remembered = Ipv4Addr::new(10, 77, 0, 60);
    let mut client = DhcpClient::new(MAC, 42, Some(remembered), at(0));
    assert_eq!(client.state(), StateKind::InitReboot);
    let request = only_sent(&client.poll(at(0)));
    assert_eq!(request.message_type, DhcpMessageType::Request);
    assert_eq!(request.requested_ip, Some(remembered));
    assert_eq!(request.server_identifier, None);
    assert_eq!(request.client_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(client.state(), StateKind::Rebooting);
    let ack = Reply::to(&request, DhcpMessageType::Ack).bytes();
    assert_eq!(
        client.receive(at(1), &ack),
        vec![Action::Probe {
            address: remembered
        }]
    );
    assert_eq!(
        bound_lease(&client.probe_result(at(2), false)).address,
        remembered
    );
}

#[test]
fn init_reboot_unanswered_falls_back_to_discover() {
    let mut client = DhcpClient::new(MAC, 42, Some(Ipv4Addr::new(10, 77, 0, 60)), at(0));
    client.poll(at(0));
    let second = only_sent(&client.poll(client.next_deadline().unwrap()));
    assert_eq!(second.message_type, DhcpMessageType::Request);
    let third = only_sent(&client.poll(client.next_deadline().unwrap()));
    assert_eq!(third.message_type, DhcpMessageType::Discover);
}

#[test]
fn an_infinite_lease_has_no_timers() {
    let (client, lease) = bind(|reply| reply.with(51, &u32::MAX.to_be_bytes()));
    assert_eq!(lease.lease_time, None);
    assert_eq!(client.next_deadline(), None);
}

#[test]
fn replies_for_another_transaction_or_client_and_rogue_bytes_are_ignored_and_counted() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let good = Reply::to(&discover, DhcpMessageType::Offer);

    let mut wrong_xid = Reply::to(&discover, DhcpMessageType::Offer);
    wrong_xid.transaction_id ^= 1;
    assert!(client.receive(at(0), &wrong_xid.bytes()).is_empty());
    assert_eq!(client.counters().wrong_transaction_id, 1);

    let mut wrong_chaddr = Reply::to(&discover, DhcpMessageType::Offer);
    wrong_chaddr.hardware_address[5] ^= 1;
    assert!(client.receive(at(0), &wrong_chaddr.bytes()).is_empty());
    let wrong_client_id =
        Reply::to(&discover, DhcpMessageType::Offer).with(61, &[1, 2, 2, 2, 2, 2, 2]);
    assert!(client.receive(at(0), &wrong_client_id.bytes()).is_empty());
    assert_eq!(client.counters().other_client, 2);

    // A BOOTREQUEST (another client's DISCOVER heard on the segment), a truncated reply, one
    // with a bad magic cookie, and plain garbage.
    let mut request = good.bytes();
    request[0] = 1;
    let mut bad_magic = good.bytes();
    bad_magic[236] ^= 0xff;
    for rogue in [
        request,
        good.bytes()[..200].to_vec(),
        bad_magic,
        vec![0xff; 300],
    ] {
        assert!(client.receive(at(0), &rogue).is_empty());
    }
    assert_eq!(client.counters().malformed_replies, 4);

    // An offer with no address, and an ACK before any request.
    let mut no_address = Reply::to(&discover, DhcpMessageType::Offer);
    no_address.your_ip = Ipv4Addr::UNSPECIFIED;
    assert!(client.receive(at(0), &no_address.bytes()).is_empty());
    assert_eq!(client.counters().unusable_leases, 1);
    let early_ack = Reply::to(&discover, DhcpMessageType::Ack);
    assert!(client.receive(at(0), &early_ack.bytes()).is_empty());
    assert_eq!(client.counters().unexpected_replies, 1);
    assert_eq!(client.state(), StateKind::Selecting);

    // The good offer still works afterwards.
    let request = only_sent(&client.receive(at(0), &good.bytes()));
    assert_eq!(request.requested_ip, Some(OFFERED));

    // An ACK from a server we did not select, and one without a lease time.
    let other_server = Reply::to(&request, DhcpMessageType::Ack).with(54, &[10, 77, 0, 2]);
    assert!(client.receive(at(0), &other_server.bytes()).is_empty());
    assert_eq!(client.counters().unexpected_replies, 2);
    let no_lease_time = Reply::to(&request, DhcpMessageType::Ack).without(51);
    assert!(client.receive(at(0), &no_lease_time.bytes()).is_empty());
    assert_eq!(client.counters().unusable_leases, 2);
    assert_eq!(client.state(), StateKind::Requesting);
}

/// A client in each state a reply can arrive in, with the transaction id it expects.
fn clients_in_every_state() -> Vec<(DhcpClient, u32)> {
    let mut clients = Vec::new();
    let mut selecting = DhcpClient::new(MAC, 1, None, at(0));
    let discover = only_sent(&selecting.poll(at(0)));
    clients.push((selecting, discover.transaction_id));
    let mut requesting = DhcpClient::new(MAC, 1, None, at(0));
    only_sent(&requesting.poll(at(0)));
    let request = only_sent(
        &requesting.receive(at(0), &Reply::to(&discover, DhcpMessageType::Offer).bytes()),
    );
    clients.push((requesting, request.transaction_id));
    let (mut renewing, _) = bind(|reply| reply);
    let renew = only_sent(&renewing.poll(at(50)));
    clients.push((renewing, renew.transaction_id));
    clients
}

proptest! {
    #[test]
    fn arbitrary_bytes_as_a_reply_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        for (mut client, _) in clients_in_every_state() {
            let before = *client.counters();
            let _ = client.receive(at(1), &bytes);
            prop_assert_ne!(before, *client.counters(), "every datagram is accepted or counted");
        }
    }

    /// Arbitrary options behind a header that passes every check reach the option readers.
    #[test]
    fn arbitrary_options_in_a_matching_reply_never_panic(
        options in proptest::collection::vec(any::<u8>(), 0..400),
        message_type in prop_oneof![Just(2u8), Just(5u8), Just(6u8)],
    ) {
        for (mut client, transaction_id) in clients_in_every_state() {
            let mut bytes = Reply {
                message_type: DhcpMessageType::Offer,
                transaction_id,
                hardware_address: MAC,
                your_ip: OFFERED,
                options: vec![],
            }
            .bytes();
            // Keep the message type option (the first, 53 1 x), replace the rest.
            bytes.truncate(240);
            bytes.extend([53, 1, message_type]);
            bytes.extend(&options);
            let _ = client.receive(at(1), &bytes);
            if let Some(lease) = client.lease() {
                prop_assert!(lease.mtu.is_none_or(|mtu| mtu >= MINIMUM_MTU));
                prop_assert!(lease.routers.is_empty() || lease.classless_routes.is_empty());
            }
        }
    }
}

#[test]
fn the_lease_runs_from_the_first_request_when_the_ack_comes_after_a_retransmission() {
    let mut client = DhcpClient::new(MAC, 42, None, at(0));
    let discover = only_sent(&client.poll(at(0)));
    let offer = Reply::to(&discover, DhcpMessageType::Offer).bytes();
    let request = only_sent(&client.receive(at(0), &offer));
    let retransmitted_at = client.next_deadline().unwrap();
    only_sent(&client.poll(retransmitted_at));
    // The server's ACK to the first REQUEST, heard after the retransmission: the server started
    // the lease at 0 s, so T1 must not be later than 50 s.
    let ack = Reply::to(&request, DhcpMessageType::Ack).bytes();
    client.receive(retransmitted_at, &ack);
    client.probe_result(retransmitted_at, false);
    assert_eq!(client.next_deadline(), Some(at(50)));
}

#[test]
fn renewing_retransmits_at_half_the_time_to_t2_but_not_within_60_seconds() {
    // A 1000 s lease: T1 at 500 s, T2 at 875 s.
    let (mut client, _) = bind(|reply| reply.with(51, &1000u32.to_be_bytes()));
    only_sent(&client.poll(at(500)));
    let mut sends = vec![];
    loop {
        let deadline = client.next_deadline().unwrap();
        let message = only_sent(&client.poll(deadline));
        sends.push((deadline.as_millis(), message.destination));
        if message.destination == Ipv4Addr::BROADCAST {
            break;
        }
    }
    assert_eq!(
        sends,
        vec![
            // Half of 375 s, then half of 187.5 s, then the 60 s floor, then T2 (rebinding).
            (687_500, SERVER),
            (781_250, SERVER),
            (841_250, SERVER),
            (875_000, Ipv4Addr::BROADCAST),
        ]
    );
    assert_eq!(client.state(), StateKind::Rebinding);
    // Rebinding: half of the 125 s to expiry is 62.5 s.
    assert_eq!(client.next_deadline(), Some(Instant::from_millis(937_500)));
}

#[test]
fn a_renewal_ack_for_another_address_is_not_taken() {
    let (mut client, _) = bind(|reply| reply);
    let renew = only_sent(&client.poll(at(50)));
    let mut moved = Reply::to(&renew, DhcpMessageType::Ack);
    moved.your_ip = Ipv4Addr::new(10, 77, 0, 99);
    assert!(client.receive(at(51), &moved.bytes()).is_empty());
    assert_eq!(client.state(), StateKind::Renewing);
    assert_eq!(client.counters().unexpected_replies, 1);
    assert_eq!(client.lease().unwrap().address, OFFERED);
}
