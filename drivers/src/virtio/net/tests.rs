//! Host tests of the virtio-net driver against the fake device.

use std::vec;
use std::vec::Vec;

use super::control::{ACK_ERROR, class, mq_command};
use super::device::{MsixRouting, VirtioNetError, VirtioNetOptions};
use super::fake_device::{self, FakeMachine, Settings};
use crate::hal::{HalError, PhysAddr};
use crate::nic::{
    ChecksumOffload, HashTypes, LinkState, MacAddress, Nic, NicQueue, QueueId, RssConfiguration,
    SteeringError, TransmitError,
};
use crate::pci::bar::{Bar, BarError};
use crate::pci::msix::{MsiMessage, MsixCapability, MsixError, MsixTable};
use crate::pci::{Command, PciAddress, PciFunction};
use crate::virtio::features::{DeviceStatus, Features};
use crate::virtio::net::control::ControlError;
use crate::virtio::pci_transport::{NO_MSIX_VECTOR, TransportError, config_type};

fn options(queue_pairs: u16, queue_size: u16) -> VirtioNetOptions {
    VirtioNetOptions {
        queue_pairs,
        queue_size,
        ..VirtioNetOptions::default()
    }
}

fn frame(seed: u32, length: usize) -> Vec<u8> {
    (0..length)
        .map(|index| (seed as usize * 31 + index) as u8)
        .collect()
}

#[test]
fn bring_up_negotiates_only_what_the_driver_uses_and_sets_driver_ok() {
    let machine = FakeMachine::new(Settings::default());
    let nic = machine.bring_up(options(1, 64)).unwrap();
    let expected = Features::VERSION_1
        | Features::MAC
        | Features::STATUS
        | Features::CTRL_VQ
        | Features::MQ
        | Features::RSS;
    assert_eq!(machine.device.driver_features(), expected);
    assert_eq!(nic.features(), expected);
    assert_eq!(
        machine.device.status(),
        DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK
    );
    assert_eq!(
        nic.mac_address(),
        MacAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    );
    assert_eq!(nic.link_state(), LinkState::Up);
    machine.device.set_link_up(false);
    assert_eq!(nic.link_state(), LinkState::Down);
    assert_eq!(nic.queue_count(), 1);
    // One pair needs no VQ_PAIRS_SET: the device starts with one pair.
    assert!(machine.device.control_log().is_empty());
}

#[test]
fn legacy_only_device_is_refused_and_marked_failed() {
    let settings = Settings {
        offered: Features::MAC | Features::STATUS | Features::CTRL_VQ,
        ..Settings::default()
    };
    let machine = FakeMachine::new(settings);
    assert_eq!(
        machine.bring_up(options(1, 64)).err(),
        Some(VirtioNetError::LegacyOnly)
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
    assert!(!machine.device.status().contains(DeviceStatus::DRIVER_OK));
}

#[test]
fn features_refused_by_the_device_fail_bring_up() {
    let machine = FakeMachine::new(Settings {
        accept_features: false,
        ..Settings::default()
    });
    assert!(matches!(
        machine.bring_up(options(1, 64)).err(),
        Some(VirtioNetError::FeaturesRejected { .. })
    ));
    let status = machine.device.status();
    assert!(status.contains(DeviceStatus::FAILED));
    assert!(!status.contains(DeviceStatus::FEATURES_OK));
    assert!(!status.contains(DeviceStatus::DRIVER_OK));
}

#[test]
fn without_control_queue_multiqueue_and_rss_are_not_negotiated() {
    let settings = Settings {
        offered: Features::VERSION_1 | Features::MAC | Features::MQ | Features::RSS,
        ..Settings::default()
    };
    let machine = FakeMachine::new(settings);
    let mut nic = machine.bring_up(options(4, 64)).unwrap();
    assert_eq!(
        machine.device.driver_features(),
        Features::VERSION_1 | Features::MAC
    );
    assert_eq!(nic.queue_count(), 1);
    assert_eq!(nic.steering().rss, None);
    // No STATUS feature: the link is taken to be up.
    assert_eq!(nic.link_state(), LinkState::Up);
    let configuration = RssConfiguration {
        hash_types: HashTypes::TCP_IPV4,
        key: vec![0; 40],
        indirection_table: vec![QueueId(0); 8],
        unclassified_queue: QueueId(0),
    };
    assert_eq!(
        nic.configure_rss(&configuration),
        Err(SteeringError::RssUnsupported)
    );
}

#[test]
fn device_without_mac_feature_uses_the_fallback_address() {
    let settings = Settings {
        offered: Features::VERSION_1 | Features::STATUS,
        ..Settings::default()
    };
    let machine = FakeMachine::new(settings);
    let fallback = MacAddress([0x02, 0, 0, 0, 0, 0x42]);
    let nic = machine
        .bring_up(VirtioNetOptions {
            fallback_mac: fallback,
            ..options(1, 64)
        })
        .unwrap();
    assert_eq!(nic.mac_address(), fallback);
}

#[test]
fn multiqueue_sets_up_every_pair_and_the_control_queue_then_sends_vq_pairs_set() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 64)).unwrap();
    assert_eq!(nic.queue_count(), 2);
    assert_eq!(nic.max_queue_pairs(), 4);
    for queue in 0..4 {
        let state = machine.device.queue(queue);
        assert!(state.enabled, "queue {queue}");
        assert_eq!(state.size, 64);
        assert_ne!(state.descriptor_table, 0);
        assert_eq!(state.driver_area, state.descriptor_table + 16 * 64);
        assert_eq!(state.device_area % 4, 0);
    }
    // Pairs 2 and 3 stay off; the control queue is queue 2 * max_virtqueue_pairs = 8.
    assert!(!machine.device.queue(4).enabled);
    assert!(!machine.device.queue(7).enabled);
    assert!(machine.device.queue(8).enabled);
    // Receive rings are full and were kicked once each, after DRIVER_OK.
    for receive in [0, 2] {
        assert_eq!(machine.device.pending_available(receive), 64);
        assert_eq!(machine.device.queue(receive).notifications, 1);
    }
    assert_eq!(machine.device.queue(1).notifications, 0);
    assert_eq!(
        machine.device.control_log(),
        vec![(class::MQ, mq_command::VQ_PAIRS_SET, vec![2, 0])]
    );
    assert_eq!(machine.device.active_queue_pairs(), 2);
    // Each pair can be taken once, by its core.
    let first = nic.take_queue(QueueId(0)).unwrap();
    assert_eq!(first.id(), QueueId(0));
    assert!(nic.take_queue(QueueId(0)).is_none());
    assert!(nic.take_queue(QueueId(2)).is_none());
    assert!(nic.take_queue(QueueId(1)).is_some());
}

#[test]
fn more_pairs_than_the_device_has_are_capped_and_sizes_follow_the_device_maximum() {
    let settings = Settings {
        max_queue_pairs: 2,
        queue_max_size: 100,
        ..Settings::default()
    };
    let machine = FakeMachine::new(settings);
    let nic = machine.bring_up(options(8, 256)).unwrap();
    assert_eq!(nic.queue_count(), 2);
    // 100 is not a power of two: the driver rounds down to 64.
    assert_eq!(machine.device.queue(0).size, 64);
    assert_eq!(machine.device.control_log()[0].2, vec![2, 0]);
}

#[test]
fn bad_options_are_refused_before_touching_the_device() {
    let machine = FakeMachine::new(Settings::default());
    assert_eq!(
        machine.bring_up(options(0, 64)).err(),
        Some(VirtioNetError::BadOptions)
    );
    assert_eq!(
        machine.bring_up(options(1, 100)).err(),
        Some(VirtioNetError::BadOptions)
    );
    assert_eq!(machine.device.status(), DeviceStatus::empty());
}

#[test]
fn rejected_vq_pairs_set_fails_bring_up() {
    let machine = FakeMachine::new(Settings {
        control_ack: ACK_ERROR,
        ..Settings::default()
    });
    assert_eq!(
        machine.bring_up(options(2, 64)).err(),
        Some(VirtioNetError::Control(ControlError::Rejected {
            class: class::MQ,
            command: mq_command::VQ_PAIRS_SET,
            ack: ACK_ERROR,
        }))
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
}

#[test]
fn unanswered_control_command_times_out_and_the_queue_is_retired() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 64)).unwrap();
    machine.device.set_control_answers(false);
    let configuration = port_only_configuration(2);
    assert_eq!(
        nic.configure_rss(&configuration),
        Err(SteeringError::DeviceRefused)
    );
    machine.device.set_control_answers(true);
    // The lost command is still in the ring; the driver does not guess and refuses further
    // commands instead.
    assert_eq!(
        nic.execute_control(&super::control::ControlCommand::set_queue_pairs(1)),
        Err(VirtioNetError::Control(ControlError::QueueBroken))
    );
}

#[test]
fn dma_exhaustion_during_bring_up_is_an_error_and_marks_the_device_failed() {
    let machine = FakeMachine::new(Settings::default());
    machine.dma.fail_after(3);
    assert!(matches!(
        machine.bring_up(options(2, 64)).err(),
        Some(VirtioNetError::Pool(_)) | Some(VirtioNetError::Queue { .. })
    ));
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
    machine.dma.fail_after(0);
    assert_eq!(
        machine.bring_up(options(1, 64)).err(),
        Some(VirtioNetError::Queue {
            queue: 0,
            error: crate::virtio::virtqueue::QueueError::Dma(HalError::OutOfDmaMemory)
        })
    );
}

/// The port-only key from the design notes: zero except bytes 13 and 15 = 0x80.
fn port_only_configuration(queues: u16) -> RssConfiguration {
    let mut key = vec![0u8; 40];
    key[13] = 0x80;
    key[15] = 0x80;
    RssConfiguration {
        hash_types: HashTypes::TCP_IPV4,
        key,
        indirection_table: (0..128).map(|entry| QueueId(entry % queues)).collect(),
        unclassified_queue: QueueId(0),
    }
}

#[test]
fn rss_config_is_sent_with_the_exact_virtio_layout() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(4, 64)).unwrap();
    let mut key = vec![0u8; 40];
    key[13] = 0x80;
    key[15] = 0x80;
    let configuration = RssConfiguration {
        hash_types: HashTypes::TCP_IPV4 | HashTypes::IPV4,
        key: key.clone(),
        indirection_table: vec![
            QueueId(0),
            QueueId(1),
            QueueId(2),
            QueueId(3),
            QueueId(3),
            QueueId(2),
            QueueId(1),
            QueueId(0),
        ],
        unclassified_queue: QueueId(1),
    };
    nic.configure_rss(&configuration).unwrap();
    let mut expected = vec![
        0x03, 0x00, 0x00, 0x00, // hash_types: IPv4 | TCPv4
        0x07, 0x00, // indirection_table_mask = 8 - 1
        0x01, 0x00, // unclassified_queue
        0, 0, 1, 0, 2, 0, 3, 0, 3, 0, 2, 0, 1, 0, 0, 0, // indirection_table
        0x04, 0x00, // max_tx_vq
        40,   // hash_key_length
    ];
    expected.extend_from_slice(&key);
    let log = machine.device.control_log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1], (class::MQ, mq_command::RSS_CONFIG, expected));
}

#[test]
fn rss_requests_the_device_cannot_honour_are_refused_without_a_command() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 64)).unwrap();
    let steering = nic.steering();
    let rss = steering.rss.unwrap();
    assert_eq!(rss.max_key_length, 40);
    assert_eq!(rss.max_indirection_table_length, 128);
    assert_eq!(steering.exact_filters, 0);
    let base = port_only_configuration(2);

    let long_key = RssConfiguration {
        key: vec![0; 41],
        ..base.clone()
    };
    assert_eq!(
        nic.configure_rss(&long_key),
        Err(SteeringError::KeyTooLong {
            length: 41,
            max: 40
        })
    );
    let no_key = RssConfiguration {
        key: vec![],
        ..base.clone()
    };
    assert_eq!(nic.configure_rss(&no_key), Err(SteeringError::EmptyKey));
    let odd_table = RssConfiguration {
        indirection_table: vec![QueueId(0); 6],
        ..base.clone()
    };
    assert_eq!(
        nic.configure_rss(&odd_table),
        Err(SteeringError::BadIndirectionTableLength {
            length: 6,
            max: 128
        })
    );
    let big_table = RssConfiguration {
        indirection_table: vec![QueueId(0); 256],
        ..base.clone()
    };
    assert!(matches!(
        nic.configure_rss(&big_table),
        Err(SteeringError::BadIndirectionTableLength { .. })
    ));
    let mut bad_queue = base.clone();
    bad_queue.indirection_table[5] = QueueId(2);
    assert_eq!(
        nic.configure_rss(&bad_queue),
        Err(SteeringError::NoSuchQueue {
            queue: QueueId(2),
            queue_count: 2
        })
    );
    let bad_unclassified = RssConfiguration {
        unclassified_queue: QueueId(9),
        ..base.clone()
    };
    assert!(matches!(
        nic.configure_rss(&bad_unclassified),
        Err(SteeringError::NoSuchQueue { .. })
    ));
    let bad_hash = RssConfiguration {
        hash_types: HashTypes::UDP_IPV6_EXTENSIONS,
        ..base.clone()
    };
    assert!(matches!(
        nic.configure_rss(&bad_hash),
        Err(SteeringError::UnsupportedHashTypes { .. })
    ));
    // Only VQ_PAIRS_SET reached the device.
    assert_eq!(machine.device.control_log().len(), 1);
    nic.configure_rss(&base).unwrap();
    assert_eq!(machine.device.control_log().len(), 2);
    machine.device.set_control_ack(ACK_ERROR);
    assert_eq!(nic.configure_rss(&base), Err(SteeringError::DeviceRefused));
    assert!(
        nic.add_exact_filter(&crate::nic::ExactFilter {
            source_address: None,
            destination_address: None,
            source_port: Some(80),
            destination_port: None,
            destination_port_mask: 0xffff,
            queue: QueueId(0),
        })
        .is_err()
    );
}

#[test]
fn received_frames_reach_the_handler_and_buffers_are_reposted_with_one_kick_per_burst() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 16)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    let frames: Vec<_> = (0..5)
        .map(|seed| frame(seed, 60 + seed as usize * 100))
        .collect();
    for frame in &frames {
        assert!(machine.device.deliver(0, frame));
    }
    let kicks_before = machine.device.queue(0).notifications;
    let mut received = Vec::new();
    assert_eq!(
        queue.rx_burst(3, &mut |bytes| received.push(bytes.to_vec())),
        3
    );
    assert_eq!(received, frames[..3]);
    assert_eq!(machine.device.queue(0).notifications, kicks_before + 1);
    assert_eq!(
        queue.rx_burst(32, &mut |bytes| received.push(bytes.to_vec())),
        2
    );
    assert_eq!(received, frames);
    assert_eq!(machine.device.queue(0).notifications, kicks_before + 2);
    // Nothing pending: no kick, nothing handled.
    assert_eq!(queue.rx_burst(32, &mut |_| panic!("no frame expected")), 0);
    assert_eq!(machine.device.queue(0).notifications, kicks_before + 2);
    // Every buffer went back to the device.
    assert_eq!(queue.receive_buffers_posted(), 16);
    assert_eq!(machine.device.pending_available(0), 16);
    let statistics = queue.statistics();
    assert_eq!(statistics.rx_frames, 5);
    assert_eq!(
        statistics.rx_bytes,
        frames.iter().map(|frame| frame.len() as u64).sum::<u64>()
    );
}

#[test]
fn receive_honours_no_notify_from_the_device() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 16)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    machine.device.set_no_notify(0, true);
    let kicks = machine.device.queue(0).notifications;
    machine.device.deliver(0, &frame(1, 64));
    assert_eq!(queue.rx_burst(8, &mut |_| {}), 1);
    assert_eq!(machine.device.queue(0).notifications, kicks);
    assert_eq!(machine.device.pending_available(0), 16);
}

#[test]
fn bad_lengths_and_ids_from_the_device_are_counted_not_trusted() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 8)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    // A length shorter than the header and one longer than the buffer.
    let (head, _) = machine.device.pop_available(0).unwrap();
    machine.device.push_used(0, head.into(), 5);
    let (head, _) = machine.device.pop_available(0).unwrap();
    machine.device.push_used(0, head.into(), 100_000);
    // An id outside the ring.
    machine.device.push_used(0, 4096, 64);
    assert_eq!(
        queue.rx_burst(32, &mut |_| panic!("no frame should be delivered")),
        0
    );
    let statistics = queue.statistics();
    assert_eq!(statistics.rx_bad_length, 2);
    assert_eq!(statistics.device_bad_id, 1);
    // The two buffers with bad lengths were reposted; the ring is still full.
    assert_eq!(queue.receive_buffers_posted(), 8);
    // The queue still works.
    assert!(machine.device.deliver(0, &frame(7, 80)));
    let mut received = Vec::new();
    assert_eq!(
        queue.rx_burst(32, &mut |bytes| received.push(bytes.to_vec())),
        1
    );
    assert_eq!(received, vec![frame(7, 80)]);

    // On the transmit side: a completion for a descriptor that is not in flight.
    queue
        .tx_enqueue(60, None, &mut |bytes| bytes.fill(1))
        .unwrap();
    queue.tx_flush();
    let (head, _) = machine.device.pop_available(1).unwrap();
    machine.device.push_used(1, u32::from(head) + 5, 0);
    queue.tx_flush();
    assert_eq!(queue.statistics().device_bad_id, 2);
    assert_eq!(
        queue.transmit_in_flight(),
        1,
        "the real frame is still the device's"
    );
    machine.device.push_used(1, head.into(), 0);
    queue.tx_flush();
    assert_eq!(queue.transmit_in_flight(), 0);
}

#[test]
fn a_used_index_beyond_the_buffers_in_flight_is_reported_and_ignored() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 8)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    machine.device.bump_used_index(0, 9);
    assert_eq!(queue.rx_burst(32, &mut |_| panic!("no frame")), 0);
    assert_eq!(queue.statistics().device_index_jump, 1);
}

#[test]
fn transmit_batches_frames_behind_one_notification_and_reclaims_buffers() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 16)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    let free_at_start = queue.free_packet_buffers();
    let frames: Vec<_> = (0..3).map(|seed| frame(seed, 64 + seed as usize)).collect();
    for frame in &frames {
        // The one-shot form the network stack's frame sink uses.
        queue
            .transmit(frame.len(), |bytes| bytes.copy_from_slice(frame))
            .unwrap();
    }
    // Nothing is visible to the device before the flush.
    assert_eq!(machine.device.pending_available(1), 0);
    assert_eq!(machine.device.queue(1).notifications, 0);
    queue.tx_flush();
    assert_eq!(machine.device.queue(1).notifications, 1);
    let sent = machine.device.transmit_all(0);
    assert_eq!(sent.len(), 3);
    for (sent, frame) in sent.iter().zip(&frames) {
        assert_eq!(sent[..12], [0; 12], "no offload requested");
        assert_eq!(sent[12..], frame[..]);
    }
    assert_eq!(queue.free_packet_buffers(), free_at_start - 3);
    queue.tx_flush();
    assert_eq!(queue.free_packet_buffers(), free_at_start);
    assert_eq!(queue.transmit_in_flight(), 0);
    // An empty flush does not kick.
    assert_eq!(machine.device.queue(1).notifications, 1);
    let statistics = queue.statistics();
    assert_eq!(statistics.tx_frames, 3);
    assert_eq!(statistics.tx_bytes, 64 + 65 + 66);
}

#[test]
fn transmit_honours_no_notify_and_reports_a_full_ring() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 8)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    machine.device.set_no_notify(1, true);
    for seed in 0..8 {
        queue
            .tx_enqueue(60, None, &mut |bytes| bytes.fill(seed))
            .unwrap();
    }
    assert_eq!(
        queue.tx_enqueue(60, None, &mut |_| {}),
        Err(TransmitError::QueueFull)
    );
    assert_eq!(queue.statistics().tx_full, 1);
    queue.tx_flush();
    assert_eq!(machine.device.queue(1).notifications, 0);
    assert_eq!(machine.device.transmit_all(0).len(), 8);
    // Completions are reclaimed on demand when the ring is full.
    queue
        .tx_enqueue(60, None, &mut |bytes| bytes.fill(0xee))
        .unwrap();
    assert_eq!(queue.transmit_in_flight(), 1);
    let max = queue.max_frame_length();
    assert_eq!(max, 2048 - 12);
    assert_eq!(
        queue.tx_enqueue(max + 1, None, &mut |_| {}),
        Err(TransmitError::FrameTooLong {
            length: max + 1,
            max
        })
    );
}

#[test]
fn rings_wrap_around_the_16_bit_indices() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 4)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    let rounds = 70_000u32;
    let mut received = 0u32;
    for round in 0..rounds {
        let payload = round.to_le_bytes();
        assert!(machine.device.deliver(0, &payload));
        queue.rx_burst(1, &mut |bytes| {
            assert_eq!(bytes, payload);
            received += 1;
        });
        queue
            .tx_enqueue(4, None, &mut |bytes| bytes.copy_from_slice(&payload))
            .unwrap();
        queue.tx_flush();
        let sent = machine.device.transmit_all(0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0][12..], payload);
    }
    assert_eq!(received, rounds);
    // The 16-bit available index has wrapped (4 initial buffers plus one per round).
    assert_eq!(machine.device.available_index(0), (4 + rounds) as u16);
    assert_eq!(queue.receive_buffers_posted(), 4);
    let statistics = queue.statistics();
    assert_eq!(statistics.device_bad_id + statistics.device_index_jump, 0);
}

#[test]
fn interrupts_start_suppressed_and_reenabling_reports_pending_work() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 8)).unwrap();
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    assert!(machine.device.interrupts_suppressed(0));
    assert!(machine.device.interrupts_suppressed(1));
    assert!(!queue.enable_interrupts());
    assert!(!machine.device.interrupts_suppressed(0));
    queue.disable_interrupts();
    assert!(machine.device.interrupts_suppressed(0));
    machine.device.deliver(0, &frame(3, 60));
    // A frame arrived while interrupts were off: the caller must poll, not sleep.
    assert!(queue.enable_interrupts());
}

/// QEMU's software RSS parks a frame on the queue it arrived on when the queue it steers to
/// has no buffer, and retries it only when the arrival queue is kicked. The arrival queue's
/// core, whose ring is full, must still kick it when it goes idle, or its tap stays unread.
#[test]
fn a_frame_parked_on_an_idle_queue_by_software_rss_is_retried_when_that_core_goes_idle() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 8)).unwrap();
    let mut idle_queue = nic.take_queue(QueueId(0)).unwrap();
    let mut busy_queue = nic.take_queue(QueueId(1)).unwrap();
    // The device has seen buffers on both queues and asked for no kicks.
    machine.device.set_no_notify(0, true);
    machine.device.set_no_notify(2, true);
    // A burst on pair 0's tap that RSS steers to pair 1 overruns pair 1's ring...
    let burst: Vec<_> = (0..8).map(|seed| frame(seed, 60)).collect();
    for frame in &burst {
        assert!(machine.device.deliver_steered(0, 1, frame));
    }
    let overrun = frame(100, 60);
    assert!(!machine.device.deliver_steered(0, 1, &overrun));
    // ... and a frame for pair 0 itself now waits behind it on the same tap.
    let own = frame(101, 60);
    assert!(!machine.device.deliver_steered(0, 0, &own));
    // Pair 1 drains and refills its ring and kicks its own queue: that retries nothing.
    let mut busy_received = Vec::new();
    assert_eq!(
        busy_queue.rx_burst(32, &mut |bytes| busy_received.push(bytes.to_vec())),
        8
    );
    assert_eq!(busy_received, burst);
    assert_eq!(busy_queue.rx_burst(32, &mut |_| {}), 0);
    assert_eq!(machine.device.parked_frames(), 2);
    // Pair 0 has nothing and goes idle: arming its interrupt kicks its queue, the parked
    // frames go out, and it is told to poll instead of halting.
    assert_eq!(idle_queue.rx_burst(32, &mut |_| {}), 0);
    assert!(
        idle_queue.enable_interrupts(),
        "the core would halt with its own frame pending"
    );
    assert_eq!(machine.device.parked_frames(), 0);
    idle_queue.disable_interrupts();
    let mut idle_received = Vec::new();
    assert_eq!(
        idle_queue.rx_burst(32, &mut |bytes| idle_received.push(bytes.to_vec())),
        1
    );
    assert_eq!(idle_received, [own]);
    busy_received.clear();
    assert_eq!(
        busy_queue.rx_burst(32, &mut |bytes| busy_received.push(bytes.to_vec())),
        1
    );
    assert_eq!(busy_received, [overrun]);
}

#[test]
fn msix_routing_gives_each_queue_its_own_vector() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine
        .bring_up(VirtioNetOptions {
            msix: MsixRouting::PerQueue,
            ..options(2, 16)
        })
        .unwrap();
    assert_eq!(nic.config_msix_vector(), Some(0));
    assert_eq!(machine.device.config_msix_vector(), 0);
    assert_eq!(machine.device.queue(0).msix_vector, 1);
    assert_eq!(machine.device.queue(1).msix_vector, 2);
    assert_eq!(machine.device.queue(2).msix_vector, 3);
    assert_eq!(machine.device.queue(3).msix_vector, 4);
    assert_eq!(machine.device.queue(8).msix_vector, NO_MSIX_VECTOR);
    assert_eq!(
        nic.take_queue(QueueId(1)).unwrap().msix_vectors(),
        (Some(3), Some(4))
    );

    let plain = FakeMachine::new(Settings::default());
    let mut nic = plain.bring_up(options(1, 16)).unwrap();
    assert_eq!(nic.config_msix_vector(), None);
    assert_eq!(
        nic.take_queue(QueueId(0)).unwrap().msix_vectors(),
        (None, None)
    );
}

#[test]
fn a_device_with_too_few_vectors_refuses_the_routing() {
    let machine = FakeMachine::new(Settings {
        msix_vectors: 3,
        ..Settings::default()
    });
    assert_eq!(
        machine
            .bring_up(VirtioNetOptions {
                msix: MsixRouting::PerQueue,
                ..options(2, 16)
            })
            .err(),
        Some(VirtioNetError::Transport(
            TransportError::MsixVectorRejected {
                queue: Some(2),
                vector: 3
            }
        ))
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
}

#[test]
fn dropping_the_driver_frees_every_dma_region() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 16)).unwrap();
    assert!(machine.memory.live_regions() > 0);
    let queue = nic.take_queue(QueueId(0)).unwrap();
    drop(nic);
    assert!(machine.memory.live_regions() > 0);
    drop(queue);
    assert_eq!(machine.memory.live_regions(), 0);
}

/// Offset of the virtio capability of `config_type` in the fake function's config space.
fn capability_offset(machine: &FakeMachine, config_type: u8) -> u8 {
    let function = PciFunction::new(&machine.pci, fake_device::address());
    function
        .capabilities()
        .filter(|capability| capability.id == crate::pci::capability::id::VENDOR_SPECIFIC)
        .find(|capability| function.read_u8(capability.offset + 3) == config_type)
        .unwrap()
        .offset
}

#[test]
fn a_missing_or_misplaced_virtio_structure_is_reported() {
    let machine = FakeMachine::new(Settings::default());
    let notify = capability_offset(&machine, config_type::NOTIFY);
    machine.pci.poke(fake_device::address(), notify + 3, 0x77);
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Transport(
            TransportError::MissingCapability {
                config_type: config_type::NOTIFY
            }
        ))
    );

    let machine = FakeMachine::new(Settings::default());
    let device = capability_offset(&machine, config_type::DEVICE);
    // Structure offset 0x7ff0 + 24 bytes runs past the 0x8000-byte BAR.
    machine.pci.poke(fake_device::address(), device + 8, 0xf0);
    machine.pci.poke(fake_device::address(), device + 9, 0x7f);
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Transport(
            TransportError::StructureOutsideBar {
                config_type: config_type::DEVICE,
                bar: 4
            }
        ))
    );

    let machine = FakeMachine::new(Settings::default());
    let common = capability_offset(&machine, config_type::COMMON);
    machine.pci.poke(fake_device::address(), common + 12, 0x20);
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Transport(
            TransportError::StructureTooShort {
                config_type: config_type::COMMON,
                length: 0x20
            }
        ))
    );
}

#[test]
fn an_odd_notification_address_is_refused_before_any_kick() {
    // The multiplier must be 0 or an even power of two (4.1.4.4); with 1, queue 1's notify
    // address is odd, and a 16-bit write there would be a misaligned register access.
    let machine = FakeMachine::new(Settings::default());
    let notify = capability_offset(&machine, config_type::NOTIFY);
    machine.pci.poke(fake_device::address(), notify + 16, 1);
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Transport(
            TransportError::NotifyMisaligned {
                queue: 1,
                offset: 1
            }
        ))
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
}

#[test]
fn a_looping_capability_list_ends() {
    let machine = FakeMachine::new(Settings::default());
    let notify = capability_offset(&machine, config_type::NOTIFY);
    // The last capability points back at the first.
    machine.pci.poke(fake_device::address(), notify + 1, 0x40);
    let function = PciFunction::new(&machine.pci, fake_device::address());
    assert_eq!(function.capabilities().count(), 48);
    // The driver still finds its structures (first of each type).
    assert!(machine.bring_up(options(1, 16)).is_ok());
}

#[test]
fn the_wrong_device_is_refused() {
    let machine = FakeMachine::new(Settings::default());
    let function = PciFunction::new(&machine.pci, PciAddress::new(0, 9, 0));
    assert_eq!(
        super::VirtioNet::new(&function, &machine.mapper, &machine.dma, options(1, 16)).err(),
        Some(VirtioNetError::NotVirtioNet {
            vendor_id: 0xffff,
            device_id: 0xffff
        })
    );
}

#[test]
fn bars_decode_with_their_size_and_the_command_register_is_restored() {
    let machine = FakeMachine::new(Settings::default());
    let function = PciFunction::new(&machine.pci, fake_device::address());
    function.set_command(Command::MEMORY_SPACE);
    assert_eq!(
        function.bar(4),
        Ok(Bar::Memory {
            address: PhysAddr(fake_device::BAR_PHYSICAL),
            size: fake_device::BAR_SIZE,
            prefetchable: false,
            is_64_bit: true,
        })
    );
    assert_eq!(function.bar(5), Err(BarError::UpperHalf { index: 5 }));
    assert_eq!(function.bar(0), Err(BarError::Unimplemented { index: 0 }));
    assert_eq!(function.bar(6), Err(BarError::NoSuchBar { index: 6 }));
    assert_eq!(function.command(), Command::MEMORY_SPACE);
    // The BAR still holds its address after sizing.
    assert_eq!(
        function.read_u32(0x20),
        fake_device::BAR_PHYSICAL as u32 | 0b100
    );
}

#[test]
fn bring_up_enables_memory_decoding_and_bus_mastering() {
    let machine = FakeMachine::new(Settings::default());
    machine.bring_up(options(1, 16)).unwrap();
    let function = PciFunction::new(&machine.pci, fake_device::address());
    assert!(
        function
            .command()
            .contains(Command::MEMORY_SPACE | Command::BUS_MASTER)
    );
}

#[test]
fn msix_vectors_are_programmed_through_the_table_in_the_bar() {
    let machine = FakeMachine::new(Settings::default());
    let function = PciFunction::new(&machine.pci, fake_device::address());
    let capability = MsixCapability::read(&function).unwrap();
    assert_eq!(capability.table_size, 10);
    assert_eq!(capability.table_bar, 4);
    assert_eq!(
        capability.table_offset as usize,
        fake_device::MSIX_TABLE_OFFSET
    );
    let table = MsixTable::map(&function, &capability, &machine.mapper).unwrap();
    table.program(3, MsiMessage::x86(2, 0x41)).unwrap();
    assert_eq!(
        table.program(10, MsiMessage::x86(0, 0x40)),
        Err(MsixError::NoSuchVector {
            vector: 10,
            table_size: 10
        })
    );
    let entry = &machine.device.msix_table()[3 * 16..4 * 16];
    assert_eq!(entry[0..4], 0xfee0_2000u32.to_le_bytes());
    assert_eq!(entry[4..8], [0; 4]);
    assert_eq!(entry[8..12], 0x41u32.to_le_bytes());
    assert_eq!(entry[12] & 1, 0, "unmasked");
    table.mask(3).unwrap();
    assert_eq!(machine.device.msix_table()[3 * 16 + 12] & 1, 1);

    capability.enable(&function);
    let control = machine
        .pci
        .read_u16(fake_device::address(), capability.offset + 2);
    assert_eq!(control & 0xc000, 0x8000, "enabled, not function-masked");
    capability.disable(&function);
    let control = machine
        .pci
        .read_u16(fake_device::address(), capability.offset + 2);
    assert_eq!(control & 0x8000, 0);
}

#[test]
fn an_msix_capability_that_runs_off_configuration_space_is_ignored() {
    let machine = FakeMachine::new(Settings::default());
    let address = fake_device::address();
    // The list now starts with an MSI-X capability at 0xfc, whose 12 bytes cannot fit
    // below 0x100.
    machine.pci.poke(address, 0x34, 0xfc);
    machine
        .pci
        .poke(address, 0xfc, crate::pci::capability::id::MSI_X);
    machine.pci.poke(address, 0xfd, 0);
    let function = PciFunction::new(&machine.pci, address);
    assert_eq!(MsixCapability::read(&function), None);
}

#[test]
fn a_device_that_never_finishes_reset_is_reported() {
    let machine = FakeMachine::new(Settings {
        stuck_in_reset: true,
        ..Settings::default()
    });
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Transport(TransportError::ResetTimeout))
    );
}

#[test]
fn bus_mastering_waits_for_the_reset() {
    // A device that cannot be reset may still be running a previous owner's rings: it must
    // not be allowed to write into memory that is ours now.
    let machine = FakeMachine::new(Settings {
        stuck_in_reset: true,
        ..Settings::default()
    });
    assert!(machine.bring_up(options(1, 16)).is_err());
    let function = PciFunction::new(&machine.pci, fake_device::address());
    assert!(function.command().contains(Command::MEMORY_SPACE));
    assert!(!function.command().contains(Command::BUS_MASTER));
}

#[test]
fn a_configuration_that_never_settles_is_reported() {
    let machine = FakeMachine::new(Settings {
        restless_configuration: true,
        ..Settings::default()
    });
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Config(super::config::ConfigError::Unstable))
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
}

#[test]
fn an_impossible_queue_pair_count_is_refused() {
    let machine = FakeMachine::new(Settings {
        max_queue_pairs: 0,
        ..Settings::default()
    });
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::Config(
            super::config::ConfigError::BadMaxVirtqueuePairs { value: 0 }
        ))
    );
}

#[test]
fn the_largest_queue_pair_count_is_checked_without_overflow() {
    // 0x8000 pairs is a valid `max_virtqueue_pairs` (5.1.4.1), but with the control queue it
    // needs 0x10001 virtqueues, more than the 16-bit `num_queues` can report.
    let machine = FakeMachine::new(Settings {
        max_queue_pairs: 0x8000,
        ..Settings::default()
    });
    assert_eq!(
        machine.bring_up(options(1, 16)).err(),
        Some(VirtioNetError::TooFewVirtqueues {
            needed: 0x1_0001,
            available: u16::MAX
        })
    );
    assert!(machine.device.status().contains(DeviceStatus::FAILED));
}

#[test]
fn receive_only_routing_leaves_transmit_queues_without_vectors() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine
        .bring_up(VirtioNetOptions {
            msix: MsixRouting::ReceiveOnly,
            ..options(3, 16)
        })
        .unwrap();
    assert_eq!(nic.config_msix_vector(), Some(0));
    for pair in 0..3u16 {
        assert_eq!(machine.device.queue(2 * pair).msix_vector, 1 + pair);
        assert_eq!(
            machine.device.queue(2 * pair + 1).msix_vector,
            NO_MSIX_VECTOR
        );
    }
    assert_eq!(
        nic.take_queue(QueueId(2)).unwrap().msix_vectors(),
        (Some(3), None)
    );
}

#[test]
fn device_needs_reset_is_visible_to_the_control_plane() {
    let machine = FakeMachine::new(Settings::default());
    let nic = machine.bring_up(options(1, 16)).unwrap();
    assert!(!nic.needs_reset());
    machine.device.set_needs_reset();
    assert!(nic.needs_reset());
}

#[test]
fn checksum_offload_is_negotiated_on_request_and_written_into_the_header() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine
        .bring_up(VirtioNetOptions {
            transmit_checksum_offload: true,
            ..options(1, 16)
        })
        .unwrap();
    assert!(machine.device.driver_features().contains(Features::CSUM));
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    assert!(queue.transmit_checksum_offload());
    // TCP over IPv4 without options: the TCP header starts at 34, its checksum 16 bytes in.
    let checksum = ChecksumOffload {
        start: 34,
        offset: 16,
    };
    queue
        .tx_enqueue(60, Some(checksum), &mut |bytes| bytes.fill(0xab))
        .unwrap();
    assert_eq!(
        queue.tx_enqueue(
            50,
            Some(ChecksumOffload {
                start: 34,
                offset: 16
            }),
            &mut |_| {}
        ),
        Err(TransmitError::ChecksumOutsideFrame {
            checksum,
            length: 50
        })
    );
    queue.tx_flush();
    let sent = machine.device.transmit_all(0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][..12], [1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0, 0]);
    assert_eq!(sent[0][12..], [0xab; 60]);

    // Not requested: CSUM stays off even though the device offers it.
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(1, 16)).unwrap();
    assert!(!machine.device.driver_features().contains(Features::CSUM));
    let mut queue = nic.take_queue(QueueId(0)).unwrap();
    assert!(!queue.transmit_checksum_offload());
    assert_eq!(
        queue.tx_enqueue(60, Some(checksum), &mut |_| {}),
        Err(TransmitError::ChecksumOffloadUnavailable)
    );
}

#[test]
fn each_pair_sees_only_its_own_frames() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 16)).unwrap();
    let mut first = nic.take_queue(QueueId(0)).unwrap();
    let mut second = nic.take_queue(QueueId(1)).unwrap();
    machine.device.deliver(1, &frame(11, 70));
    assert_eq!(
        first.rx_burst(8, &mut |_| panic!("frame for pair 1 on pair 0")),
        0
    );
    let mut received = Vec::new();
    assert_eq!(
        second.rx_burst(8, &mut |bytes| received.push(bytes.to_vec())),
        1
    );
    assert_eq!(received, vec![frame(11, 70)]);
    first.transmit(60, |bytes| bytes.fill(1)).unwrap();
    first.tx_flush();
    assert!(machine.device.transmit_all(1).is_empty());
    assert_eq!(machine.device.transmit_all(0).len(), 1);
    assert_eq!(machine.device.queue(3).notifications, 0);
}

/// A small deterministic generator (xorshift64*), so a failing interleaving replays.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

#[test]
fn random_interleavings_lose_no_frame_and_leak_no_buffer() {
    for seed in 1..=20u64 {
        let machine = FakeMachine::new(Settings::default());
        let mut nic = machine.bring_up(options(1, 8)).unwrap();
        let mut queue = nic.take_queue(QueueId(0)).unwrap();
        let capacity = queue.free_packet_buffers() + usize::from(queue.receive_buffers_posted());
        let mut random = Random(seed);
        let (mut delivered, mut received, mut queued, mut sent) = (0u32, 0u32, 0u32, 0u32);
        for _ in 0..2_000 {
            match random.below(5) {
                0 => {
                    if machine.device.deliver(0, &delivered.to_le_bytes()) {
                        delivered += 1;
                    }
                }
                1 => {
                    let budget = random.below(4) as usize;
                    queue.rx_burst(budget, &mut |bytes| {
                        assert_eq!(bytes, received.to_le_bytes(), "seed {seed}");
                        received += 1;
                    });
                }
                2 => {
                    let payload = queued.to_le_bytes();
                    match queue.transmit(4, |bytes| bytes.copy_from_slice(&payload)) {
                        Ok(()) => queued += 1,
                        Err(TransmitError::QueueFull) => {}
                        Err(error) => panic!("seed {seed}: {error:?}"),
                    }
                }
                3 => queue.tx_flush(),
                _ => {
                    for bytes in machine.device.transmit_all(0) {
                        assert_eq!(bytes[12..], sent.to_le_bytes(), "seed {seed}");
                        sent += 1;
                    }
                }
            }
            let in_flight = usize::from(queue.receive_buffers_posted())
                + usize::from(queue.transmit_in_flight());
            assert_eq!(
                queue.free_packet_buffers() + in_flight,
                capacity,
                "seed {seed}"
            );
        }
        queue.tx_flush();
        for bytes in machine.device.transmit_all(0) {
            assert_eq!(bytes[12..], sent.to_le_bytes());
            sent += 1;
        }
        while queue.rx_burst(8, &mut |_| received += 1) > 0 {}
        assert_eq!((received, sent), (delivered, queued), "seed {seed}");
        assert!(
            delivered > 100 && queued > 100,
            "seed {seed}: the mix exercised too little"
        );
        let statistics = queue.statistics();
        assert_eq!(statistics.device_bad_id + statistics.device_index_jump, 0);
        assert_eq!(statistics.rx_bad_length, 0);
    }
}

#[test]
fn a_control_completion_for_another_chain_retires_the_control_queue() {
    let machine = FakeMachine::new(Settings::default());
    let mut nic = machine.bring_up(options(2, 16)).unwrap();
    machine.device.set_control_answers(false);
    // A completion with an id outside the control ring, seen while waiting for the ack.
    machine.device.push_used(8, 4096, 1);
    let command = super::control::ControlCommand::set_queue_pairs(1);
    assert!(matches!(
        nic.execute_control(&command),
        Err(VirtioNetError::Control(ControlError::Queue(_)))
    ));
    machine.device.set_control_answers(true);
    assert_eq!(
        nic.execute_control(&command),
        Err(VirtioNetError::Control(ControlError::QueueBroken))
    );
}
