//! Random input never panics the engine and never breaks its bookkeeping (proptest).

use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

fn arbitrary_segment() -> impl Strategy<Value = Inbound> {
    (
        any::<u8>(),
        prop_oneof![Just(1000u32), Just(1001u32), any::<u32>()],
        any::<u32>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        prop_oneof![Just(REMOTE_PORT), Just(REMOTE_PORT + 1)],
        any::<Option<(u32, u32)>>(),
        any::<Option<u8>>(),
    )
        .prop_map(
            |(flags, sequence, acknowledgment, window, payload, port, timestamp, shift)| {
                let mut segment = Inbound::new(flags & 0x3f, sequence, acknowledgment)
                    .window(window)
                    .payload(&payload);
                segment.source_port = port;
                segment.options.timestamp = timestamp;
                segment.options.window_scale = shift;
                segment
            },
        )
}

proptest! {

    /// Random segments, raw bytes, timer ticks and socket calls against a listener and an
    /// established connection: no panic, and the memory budget stays consistent.
    #[test]
    fn random_segments_never_panic(
        steps in proptest::collection::vec(
            prop_oneof![
                arbitrary_segment().prop_map(Step::Segment),
                (arbitrary_segment(), -200i32..4000, -200i32..6000)
                    .prop_map(|(segment, sequence, acknowledgment)| Step::Near(segment, sequence, acknowledgment)),
                proptest::collection::vec(any::<u8>(), 0..60).prop_map(Step::Bytes),
                (0u64..5000).prop_map(Step::Wait),
                proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Step::Write),
                (0usize..4000).prop_map(Step::Read),
                Just(Step::Close),
            ],
            1..60,
        ),
        with_options in any::<bool>(),
    ) {
        let config = if with_options { TcpConfig { syn_queue_size: 1, ..TcpConfig::default() } } else { plain_config() };
        let mut harness = Harness::new(config);
        let (iss, connection) = harness.passive_open(1000);
        for step in steps {
            match step {
                Step::Segment(segment) => harness.inject(segment),
                Step::Near(mut segment, sequence, acknowledgment) => {
                    // Numbers near the connection's own, so that most checks pass and the
                    // deeper paths (data, ACKs, FIN, RST) run.
                    segment.source_port = REMOTE_PORT;
                    segment.sequence = 1001u32.wrapping_add_signed(sequence);
                    segment.acknowledgment = (iss + 1).wrapping_add_signed(acknowledgment);
                    harness.inject(segment);
                }
                Step::Bytes(bytes) => {
                    harness.layer.on_segment(harness.now, REMOTE, LOCAL, &bytes);
                    harness.collect();
                }
                Step::Wait(millis) => harness.advance(Duration::from_millis(millis)),
                Step::Write(data) => {
                    let _ = harness.layer.write(connection, &data);
                    harness.collect();
                }
                Step::Read(length) => {
                    let mut buffer = alloc::vec![0u8; length];
                    let _ = harness.layer.read(connection, &mut buffer);
                    harness.collect();
                }
                Step::Close => {
                    let _ = harness.layer.close(connection);
                    harness.collect();
                }
            }
            harness.sent.clear();
        }
        // Whatever happened, everything ends within the longest timeouts and gives its memory back.
        let _ = harness.layer.abort(connection);
        harness.advance(Duration::from_secs(2000));
        let mut sockets = Vec::new();
        harness.layer.list_sockets(&mut sockets);
        prop_assert_eq!(harness.layer.buffer_memory_used(), 0);
        prop_assert!(sockets.iter().all(|info| info.state == crate::net::tcp::TcpState::Listen));
        prop_assert_eq!(harness.layer.connection_count(), 0);
    }

    /// Whole conversations over a wire with random loss, duplication and reordering deliver
    /// every byte in order.
    #[test]
    fn lossy_conversations_deliver_every_byte(seed in any::<u64>(), loss in 0u64..15, size in 0usize..20_000) {
        let (message, received, reply) = super::loopback::conversation(TcpConfig::default(), seed, loss, size);
        prop_assert_eq!(&received, &message);
        prop_assert_eq!(&reply, &message);
    }
}

#[derive(Clone, Debug)]
enum Step {
    Segment(Inbound),
    Near(Inbound, i32, i32),
    Bytes(Vec<u8>),
    Wait(u64),
    Write(Vec<u8>),
    Read(usize),
    Close,
}
