//! Tests of the DNS message parser: each refusal reason from a hand-built message, and arbitrary bytes never panicking.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use proptest::prelude::*;

use super::message::*;
use super::resolver::{QueryIds, TTL_CEILING, TTL_FLOOR, refresh_after};

const ID: u16 = 0x4a2f;
const RESPONSE: u16 = 0x8180; // QR, RD, RA
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SRV: u16 = 33;

fn name(dotted: &str) -> Vec<u8> {
    Name::from_dotted(dotted).unwrap().wire().to_vec()
}

fn query(dotted: &str, record_type: RecordType) -> Query {
    Query {
        id: ID,
        name: Name::from_dotted(dotted).unwrap(),
        record_type,
    }
}

/// A message: header, the question, then raw records.
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(id: u16, flags: u16, counts: [u16; 4]) -> Message {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&flags.to_be_bytes());
        for count in counts {
            bytes.extend_from_slice(&count.to_be_bytes());
        }
        Message { bytes }
    }

    /// A response of `ancount`, `nscount`, `arcount` records to one question.
    fn response(question: &str, question_type: u16, counts: [u16; 3]) -> Message {
        let mut message = Message::new(ID, RESPONSE, [1, counts[0], counts[1], counts[2]]);
        message.question(&name(question), question_type);
        message
    }

    fn question(&mut self, owner: &[u8], record_type: u16) -> &mut Self {
        self.bytes.extend_from_slice(owner);
        self.bytes.extend_from_slice(&record_type.to_be_bytes());
        self.bytes.extend_from_slice(&1u16.to_be_bytes());
        self
    }

    fn record(&mut self, owner: &[u8], record_type: u16, ttl: u32, data: &[u8]) -> &mut Self {
        self.question(owner, record_type);
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    fn a(&mut self, owner: &str, ttl: u32, address: [u8; 4]) -> &mut Self {
        self.record(&name(owner), TYPE_A, ttl, &address)
    }

    fn cname(&mut self, owner: &str, ttl: u32, target: &str) -> &mut Self {
        self.record(&name(owner), TYPE_CNAME, ttl, &name(target))
    }

    fn srv(&mut self, owner: &str, ttl: u32, fields: [u16; 3], target: &str) -> &mut Self {
        let mut data = Vec::new();
        for field in fields {
            data.extend_from_slice(&field.to_be_bytes());
        }
        data.extend_from_slice(&name(target));
        self.record(&name(owner), TYPE_SRV, ttl, &data)
    }
}

#[test]
fn a_query_is_encoded_as_rfc_1035_says() {
    let encoded = query("Web.Example", RecordType::A).encode();
    let expected = [
        0x4a, 0x2f, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 7, b'e', b'x', b'a',
        b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1,
    ];
    assert_eq!(encoded, expected);
    let srv = query("_http._tcp.example", RecordType::Srv).encode();
    assert_eq!(&srv[srv.len() - 4..], &[0, 33, 0, 1]);
}

#[test]
fn an_a_answer_gives_its_addresses_and_ttls() {
    let mut message = Message::response("web.example", TYPE_A, [2, 0, 0]);
    message
        .a("web.example", 300, [10, 0, 0, 7])
        .a("WEB.example", 60, [10, 0, 0, 8]);
    let answer = parse_response(&query("web.example", RecordType::A), &message.bytes).unwrap();
    assert!(!answer.truncated);
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(
        answer.addresses,
        [
            AddressRecord {
                address: Ipv4Addr::new(10, 0, 0, 7),
                ttl: 300
            },
            AddressRecord {
                address: Ipv4Addr::new(10, 0, 0, 8),
                ttl: 60
            },
        ]
    );
    assert_eq!(answer.smallest_ttl(), Some(60));
}

#[test]
fn the_question_name_is_compared_without_case() {
    let mut message = Message::response("WeB.ExAmPlE", TYPE_A, [1, 0, 0]);
    message.a("web.example", 30, [10, 0, 0, 7]);
    let answer = parse_response(&query("web.EXAMPLE", RecordType::A), &message.bytes).unwrap();
    assert_eq!(answer.addresses.len(), 1);
}

#[test]
fn a_ttl_with_the_top_bit_set_reads_as_zero() {
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.a("web.example", 0x8000_0001, [10, 0, 0, 7]);
    let answer = parse_response(&query("web.example", RecordType::A), &message.bytes).unwrap();
    assert_eq!(answer.addresses[0].ttl, 0);
}

#[test]
fn an_srv_answer_gives_targets_ports_weights_and_additional_addresses() {
    let mut message = Message::response("_http._tcp.example", TYPE_SRV, [3, 0, 2]);
    message
        .srv("_http._tcp.example", 120, [10, 60, 9001], "one.example")
        .srv("_http._tcp.example", 90, [10, 40, 9002], "two.example")
        // "." means the service is not offered there (RFC 2782): left out.
        .srv("_http._tcp.example", 90, [20, 0, 0], ".")
        .a("one.example", 45, [10, 0, 1, 1])
        .a("elsewhere.example", 45, [10, 0, 9, 9]);
    let answer = parse_response(
        &query("_http._tcp.example", RecordType::Srv),
        &message.bytes,
    )
    .unwrap();
    assert_eq!(answer.services.len(), 2);
    let one = &answer.services[0];
    assert_eq!(
        (one.priority, one.weight, one.port, one.ttl),
        (10, 60, 9001, 120)
    );
    assert_eq!(one.target, Name::from_dotted("one.example").unwrap());
    assert_eq!(
        one.target_addresses,
        [AddressRecord {
            address: Ipv4Addr::new(10, 0, 1, 1),
            ttl: 45
        }]
    );
    let two = &answer.services[1];
    assert_eq!((two.priority, two.weight, two.port), (10, 40, 9002));
    assert!(two.target_addresses.is_empty());
    // The additional address's 45 s bounds how long it may be used.
    assert_eq!(answer.smallest_ttl(), Some(45));
}

#[test]
fn a_cname_chain_is_followed_to_the_records_of_its_end() {
    let mut message = Message::response("web.example", TYPE_A, [4, 0, 0]);
    message
        .cname("web.example", 600, "lb.example")
        .cname("lb.example", 20, "pool.cdn.example")
        .a("pool.cdn.example", 300, [10, 0, 0, 9])
        // Not on the chain: not an answer to our question.
        .a("web.example", 300, [6, 6, 6, 6]);
    let answer = parse_response(&query("web.example", RecordType::A), &message.bytes).unwrap();
    assert_eq!(
        answer.canonical_name,
        Name::from_dotted("pool.cdn.example").unwrap()
    );
    assert_eq!(answer.addresses.len(), 1);
    assert_eq!(answer.addresses[0].address, Ipv4Addr::new(10, 0, 0, 9));
    // The CNAME's 20 s bounds how long the addresses may be kept.
    assert_eq!(answer.smallest_ttl(), Some(20));
}

#[test]
fn a_cname_loop_is_refused() {
    let mut message = Message::response("a.example", TYPE_A, [3, 0, 0]);
    message
        .cname("a.example", 60, "b.example")
        .cname("b.example", 60, "a.example")
        .a("a.example", 60, [10, 0, 0, 1]);
    assert_eq!(
        parse_response(&query("a.example", RecordType::A), &message.bytes),
        Err(MessageError::CnameLoop)
    );
}

#[test]
fn a_cname_chain_longer_than_the_limit_is_refused() {
    let links = MAX_CNAME_CHAIN + 1;
    let mut message = Message::response("n0.example", TYPE_A, [links as u16, 0, 0]);
    for link in 0..links {
        message.cname(
            &alloc::format!("n{link}.example"),
            60,
            &alloc::format!("n{}.example", link + 1),
        );
    }
    assert_eq!(
        parse_response(&query("n0.example", RecordType::A), &message.bytes),
        Err(MessageError::CnameChainTooLong)
    );
    // One link fewer is within the limit.
    let mut message = Message::response("n0.example", TYPE_A, [links as u16 - 1, 0, 0]);
    for link in 0..links - 1 {
        message.cname(
            &alloc::format!("n{link}.example"),
            60,
            &alloc::format!("n{}.example", link + 1),
        );
    }
    assert!(parse_response(&query("n0.example", RecordType::A), &message.bytes).is_ok());
}

#[test]
fn compressed_names_are_read() {
    // The answer's owner points back at the question's name (offset 12), as servers write it.
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.record(&[0xC0, 12], TYPE_A, 30, &[10, 0, 0, 7]);
    let answer = parse_response(&query("web.example", RecordType::A), &message.bytes).unwrap();
    assert_eq!(answer.addresses.len(), 1);
    // A label then a pointer to the suffix "example".
    let mut message = Message::response("web.example", TYPE_SRV, [1, 0, 0]);
    let mut data = vec![0, 1, 0, 1, 0x23, 0x29, 2, b'b', b'e', 0xC0, 16];
    message.record(&[0xC0, 12], TYPE_SRV, 30, &data);
    let answer = parse_response(&query("web.example", RecordType::Srv), &message.bytes).unwrap();
    assert_eq!(
        answer.services[0].target,
        Name::from_dotted("be.example").unwrap()
    );
    // The same data one byte longer than its name: the record's length lies.
    data.push(0);
    let mut message = Message::response("web.example", TYPE_SRV, [1, 0, 0]);
    message.record(&[0xC0, 12], TYPE_SRV, 30, &data);
    assert_eq!(
        parse_response(&query("web.example", RecordType::Srv), &message.bytes),
        Err(MessageError::BadRecordData)
    );
}

#[test]
fn a_compression_loop_is_refused() {
    // A pointer to itself.
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    let at = message.bytes.len() as u16;
    message.record(&(0xC000 | at).to_be_bytes(), TYPE_A, 30, &[10, 0, 0, 7]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::PointerNotBackwards)
    );
    // Two pointers pointing at each other: the second is a forward one.
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    let at = message.bytes.len() as u16;
    let mut owner = (0xC000 | (at + 2)).to_be_bytes().to_vec();
    owner.extend_from_slice(&(0xC000 | at).to_be_bytes());
    message.record(&owner, TYPE_A, 30, &[10, 0, 0, 7]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::PointerNotBackwards)
    );
}

#[test]
fn a_forward_pointer_is_refused() {
    // The question's name points past itself at a copy of the name later in the message.
    let mut message = Message::new(ID, RESPONSE, [1, 0, 0, 0]);
    message.question(&[0xC0, 18], TYPE_A);
    message.bytes.extend_from_slice(&name("web.example"));
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::PointerNotBackwards)
    );
}

#[test]
fn a_chain_of_too_many_backward_pointers_is_refused() {
    // 40 pointers each to the one before, the first to the question's name.
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    // The pointers are the data of a record of an unused type, then the owner of the answer
    // points at the last one.
    let junk = name("junk.example");
    let data_start = (message.bytes.len() + junk.len() + 10) as u16;
    let mut previous = 12u16;
    let mut pointers = Vec::new();
    for _ in 0..40 {
        let at = data_start + pointers.len() as u16;
        pointers.extend_from_slice(&(0xC000 | previous).to_be_bytes());
        previous = at;
    }
    message.bytes[7] = 2; // ANCOUNT
    message.record(&junk, 99, 0, &pointers);
    message.record(
        &(0xC000 | previous).to_be_bytes(),
        TYPE_A,
        30,
        &[10, 0, 0, 7],
    );
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::TooManyPointers)
    );
}

#[test]
fn a_message_cut_short_is_refused() {
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.a("web.example", 300, [10, 0, 0, 7]);
    let query = query("web.example", RecordType::A);
    assert!(parse_response(&query, &message.bytes).is_ok());
    for length in 0..message.bytes.len() {
        let expected = if length < 12 {
            MessageError::ShorterThanHeader
        } else {
            MessageError::Truncated
        };
        assert_eq!(
            parse_response(&query, &message.bytes[..length]),
            Err(expected),
            "cut at {length}"
        );
    }
}

#[test]
fn an_oversized_message_is_refused() {
    let message = vec![0u8; MAX_MESSAGE + 1];
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message),
        Err(MessageError::Oversized)
    );
}

#[test]
fn a_name_longer_than_255_octets_is_refused() {
    // Four labels of 63 and a fifth of 3: 4 * 64 + 4 + 1 = 261 octets in wire form.
    let mut long = Vec::new();
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.extend_from_slice(&[3, b'c', b'o', b'm', 0]);
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.record(&long, TYPE_A, 30, &[10, 0, 0, 7]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::NameTooLong)
    );
    assert_eq!(
        Name::from_dotted(&alloc::format!("{0}.{0}.{0}.{0}.com", "x".repeat(63))),
        Err(NameError::NameTooLong)
    );
}

#[test]
fn a_label_longer_than_63_octets_is_refused() {
    let mut owner = vec![64];
    owner.extend_from_slice(&[b'x'; 64]);
    owner.push(0);
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.record(&owner, TYPE_A, 30, &[10, 0, 0, 7]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::LabelTooLong)
    );
    assert_eq!(
        Name::from_dotted(&"x".repeat(64)),
        Err(NameError::LabelTooLong)
    );
}

#[test]
fn an_a_record_of_the_wrong_length_is_refused() {
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.record(&name("web.example"), TYPE_A, 30, &[10, 0, 0, 7, 1]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::BadRecordData)
    );
}

#[test]
fn a_mismatched_id_is_refused() {
    let mut message = Message::response("web.example", TYPE_A, [1, 0, 0]);
    message.a("web.example", 300, [10, 0, 0, 7]);
    message.bytes[..2].copy_from_slice(&(ID ^ 1).to_be_bytes());
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::IdMismatch)
    );
}

#[test]
fn a_wrong_question_is_refused() {
    let mut message = Message::response("evil.example", TYPE_A, [1, 0, 0]);
    message.a("evil.example", 300, [6, 6, 6, 6]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::QuestionMismatch)
    );
    // The right name, the wrong type.
    let message = Message::response("web.example", TYPE_SRV, [0, 0, 0]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::QuestionMismatch)
    );
    // No question at all.
    let message = Message::new(ID, RESPONSE, [0, 0, 0, 0]);
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::QuestionCount)
    );
    // A query, not a response.
    let mut message = Message::response("web.example", TYPE_A, [0, 0, 0]);
    message.bytes[2] &= 0x7f;
    assert_eq!(
        parse_response(&query("web.example", RecordType::A), &message.bytes),
        Err(MessageError::NotAResponse)
    );
}

#[test]
fn nxdomain_is_reported_with_no_records() {
    let mut message = Message::new(ID, RESPONSE | 3, [1, 0, 1, 0]);
    message.question(&name("gone.example"), TYPE_A);
    // An SOA in the authority section, as servers send it (RFC 2308); not read.
    message.record(&name("example"), 6, 60, &[0; 22]);
    let answer = parse_response(&query("gone.example", RecordType::A), &message.bytes).unwrap();
    assert_eq!(answer.response_code, ResponseCode::NameError);
    assert!(answer.addresses.is_empty());
    let mut message = Message::new(ID, RESPONSE | 2, [1, 0, 0, 0]);
    message.question(&name("gone.example"), TYPE_A);
    let answer = parse_response(&query("gone.example", RecordType::A), &message.bytes).unwrap();
    assert_eq!(answer.response_code, ResponseCode::ServerFailure);
}

#[test]
fn the_tc_bit_is_reported_and_the_cut_records_are_not_read() {
    // Says one answer, carries half of it: cut where the 512 bytes ran out.
    let mut message = Message::new(ID, RESPONSE | 0x0200, [1, 1, 0, 0]);
    message.question(&name("web.example"), TYPE_A);
    message.bytes.extend_from_slice(&[0xC0, 12, 0, 1]);
    let answer = parse_response(&query("web.example", RecordType::A), &message.bytes).unwrap();
    assert!(answer.truncated);
    assert!(answer.addresses.is_empty());
}

#[test]
fn the_re_resolve_time_is_the_ttl_within_floor_and_ceiling() {
    assert_eq!(refresh_after(Some(0)), TTL_FLOOR);
    assert_eq!(refresh_after(Some(30)), Duration::from_secs(30));
    assert_eq!(refresh_after(Some(86_400)), TTL_CEILING);
    assert_eq!(refresh_after(None), TTL_FLOOR);
}

#[test]
fn query_ids_differ_by_seed_and_in_sequence() {
    let mut first = QueryIds::new(1);
    let mut second = QueryIds::new(2);
    let a: Vec<u16> = (0..64).map(|_| first.next_id()).collect();
    let b: Vec<u16> = (0..64).map(|_| second.next_id()).collect();
    assert_ne!(a, b);
    let mut distinct = a.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 60, "{a:?}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        // The query's id, or nearly every case ends at the id check.
        if bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&ID.to_be_bytes());
        }
        let _ = parse_response(&query("web.example", RecordType::A), &bytes);
        let _ = parse_response(&query("_http._tcp.example", RecordType::Srv), &bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_and_question_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        counts in proptest::array::uniform3(0u16..8),
        flags in any::<u16>(),
    ) {
        // A response with opcode QUERY, TC clear and rcode NOERROR (the other bits random):
        // any other header ends before the records, which are what this is for.
        let flags = 0x8000 | (flags & 0x0590);
        let mut message = Message::new(ID, flags, [1, counts[0], counts[1], counts[2]]);
        message.question(&name("web.example"), TYPE_SRV);
        message.bytes.extend_from_slice(&tail);
        let _ = parse_response(&query("web.example", RecordType::Srv), &message.bytes);
    }
    #[test]
    fn a_well_formed_answer_to_any_name_is_read_back(
        labels in proptest::collection::vec("[a-zA-Z0-9-]{1,20}", 1..6),
        records in proptest::collection::vec((any::<[u8; 4]>(), 0u32..0x7fff_ffff), 0..10),
    ) {
        let dotted = labels.join(".");
        let mut message = Message::response(&dotted, TYPE_A, [records.len() as u16, 0, 0]);
        for (address, ttl) in &records {
            // The owner compressed to the question's name, as servers write it.
            message.record(&[0xC0, 12], TYPE_A, *ttl, address);
        }
        let answer = parse_response(&query(&dotted.to_uppercase(), RecordType::A), &message.bytes)
            .unwrap();
        let read: Vec<([u8; 4], u32)> = answer
            .addresses
            .iter()
            .map(|record| (record.address.octets(), record.ttl))
            .collect();
        prop_assert_eq!(read, records);
        prop_assert_eq!(answer.canonical_name.to_dotted(), dotted.to_ascii_lowercase());
    }
}
