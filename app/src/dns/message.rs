//! DNS messages on the wire (RFC 1035 section 4): the query Unisock sends for an A or SRV record (RFC 2782), and the parser that accepts only the answer to that query.
//!
//! The parser is the part that faces the network, so it refuses rather than guesses: every
//! offset is checked before it is read, a compression pointer must point strictly backwards
//! (so it cannot loop) and only so many may be followed, names and labels keep to their
//! limits (RFC 1035 section 2.3.4), and the id and the question must be ours (RFC 5452
//! section 9.1) before anything in the answer is believed. Each refusal is one
//! [`MessageError`] variant, so that the resolver can count it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

/// Longest message over UDP without EDNS (RFC 1035 section 4.2.1); a longer datagram is refused.
pub const MAX_UDP_MESSAGE: usize = 512;
/// Longest message at all: TCP's 2-byte length prefix (RFC 1035 section 4.2.2).
pub const MAX_MESSAGE: usize = 65_535;
/// Longest name in wire form, length octets and the root's 0 included (RFC 1035 section 2.3.4).
pub const MAX_NAME_LENGTH: usize = 255;
/// Longest label (RFC 1035 section 2.3.4); the top two bits of a length octet are the pointer flag.
pub const MAX_LABEL_LENGTH: usize = 63;
/// Most compression pointers followed in one name. Strictly backward pointers cannot loop;
/// this bounds the work a hostile message can ask for all the same.
pub const MAX_POINTER_JUMPS: usize = 32;
/// Most CNAMEs followed from the question to the records (glibc and Unbound stop around 8-16).
pub const MAX_CNAME_CHAIN: usize = 8;

const HEADER_LENGTH: usize = 12;
const CLASS_INTERNET: u16 = 1;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SRV: u16 = 33;
const FLAG_RESPONSE: u16 = 0x8000;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const POINTER_FLAGS: u8 = 0xC0;

/// Why a message was refused: one variant per cause, so each can be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Shorter than the 12-byte header.
    ShorterThanHeader,
    /// Longer than the transport allows (512 bytes over UDP without EDNS, 65535 at all).
    Oversized,
    /// A field (name, record, rdata) runs past the end of the message.
    Truncated,
    /// Not the id of our query: a late answer, or a forgery (RFC 5452 section 9.1).
    IdMismatch,
    /// The QR bit is clear: a query, not a response.
    NotAResponse,
    /// An opcode other than QUERY.
    UnexpectedOpcode,
    /// Not exactly one question (a response echoes the one question asked, RFC 1035 4.1.2).
    QuestionCount,
    /// The question is not ours (name, type or class): RFC 5452 section 9.1.
    QuestionMismatch,
    /// A length octet of 64 to 191: neither a label of at most 63 octets nor a pointer (the
    /// 0x40 and 0x80 forms are reserved, RFC 6891 section 5).
    LabelTooLong,
    /// A name longer than 255 octets in wire form.
    NameTooLong,
    /// A compression pointer to itself or further on: a loop, or a forward reference
    /// RFC 1035 section 4.1.4 does not allow ("a prior occurrence").
    PointerNotBackwards,
    /// More than [`MAX_POINTER_JUMPS`] pointers in one name.
    TooManyPointers,
    /// An A record whose data is not 4 bytes, or an SRV or CNAME record whose data does not
    /// end where its length says.
    BadRecordData,
    /// The CNAME chain leads back to a name already on it.
    CnameLoop,
    /// The CNAME chain is longer than [`MAX_CNAME_CHAIN`].
    CnameChainTooLong,
}

impl fmt::Display for MessageError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            MessageError::ShorterThanHeader => "message shorter than its header",
            MessageError::Oversized => "message longer than the transport allows",
            MessageError::Truncated => "a field runs past the end of the message",
            MessageError::IdMismatch => "id does not match the query",
            MessageError::NotAResponse => "not a response",
            MessageError::UnexpectedOpcode => "opcode is not QUERY",
            MessageError::QuestionCount => "not exactly one question",
            MessageError::QuestionMismatch => "question does not match the query",
            MessageError::LabelTooLong => "label longer than 63 octets",
            MessageError::NameTooLong => "name longer than 255 octets",
            MessageError::PointerNotBackwards => "compression pointer does not point backwards",
            MessageError::TooManyPointers => "too many compression pointers in a name",
            MessageError::BadRecordData => "record data of the wrong length",
            MessageError::CnameLoop => "CNAME loop",
            MessageError::CnameChainTooLong => "CNAME chain too long",
        };
        formatter.write_str(text)
    }
}

/// The record types Unisock asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    /// An IPv4 address (RFC 1035 section 3.4.1).
    A,
    /// A service's targets, ports and weights (RFC 2782).
    Srv,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Srv => TYPE_SRV,
        }
    }
}

/// A domain name in wire form (length-prefixed labels ending in the root's 0), ASCII letters
/// folded to lower case so that comparing bytes compares names as DNS does (RFC 4343).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    wire: Vec<u8>,
}

/// Why a name given as text cannot be a DNS name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    EmptyLabel,
    LabelTooLong,
    NameTooLong,
}

impl Name {
    /// `web.example.com` or `_http._tcp.example.com.` (the final dot is optional).
    pub fn from_dotted(text: &str) -> Result<Name, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(text.len() + 2);
        if !text.is_empty() {
            for label in text.split('.') {
                if label.is_empty() {
                    return Err(NameError::EmptyLabel);
                }
                if label.len() > MAX_LABEL_LENGTH {
                    return Err(NameError::LabelTooLong);
                }
                wire.push(label.len() as u8);
                wire.extend(label.bytes().map(|byte| byte.to_ascii_lowercase()));
            }
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LENGTH {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// The root name `.` (an SRV target of `.` means "no such service", RFC 2782).
    pub fn is_root(&self) -> bool {
        self.wire == [0]
    }

    /// The name in wire form.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The name as dotted text (bytes other than printable ASCII escaped as `\DDD`, RFC 1035
    /// section 5.1).
    pub fn to_dotted(&self) -> String {
        let mut text = String::new();
        let mut position = 0;
        while let Some(&length) = self.wire.get(position) {
            if length == 0 {
                break;
            }
            let label = &self.wire[position + 1..position + 1 + usize::from(length)];
            if !text.is_empty() {
                text.push('.');
            }
            for &byte in label {
                if byte.is_ascii_graphic() && byte != b'.' && byte != b'\\' {
                    text.push(char::from(byte));
                } else {
                    use core::fmt::Write;
                    let _ = write!(text, "\\{byte:03}");
                }
            }
            position += 1 + usize::from(length);
        }
        if text.is_empty() {
            text.push('.');
        }
        text
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Name({})", self.to_dotted())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_dotted())
    }
}

/// One question Unisock asks: its id, name and type (class IN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub name: Name,
    pub record_type: RecordType,
}

impl Query {
    /// The query as sent: a header with RD set (we ask a recursive resolver, RFC 1035
    /// section 4.1.1) and one question.
    pub fn encode(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(HEADER_LENGTH + self.name.wire.len() + 4);
        message.extend_from_slice(&self.id.to_be_bytes());
        message.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
        message.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
        message.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
        message.extend_from_slice(&self.name.wire);
        message.extend_from_slice(&self.record_type.code().to_be_bytes());
        message.extend_from_slice(&CLASS_INTERNET.to_be_bytes());
        message
    }
}

/// The RCODE of a response (RFC 1035 section 4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseCode {
    NoError,
    FormatError,
    ServerFailure,
    /// NXDOMAIN: the name does not exist.
    NameError,
    NotImplemented,
    Refused,
    Other(u8),
}

impl ResponseCode {
    fn from_code(code: u8) -> ResponseCode {
        match code {
            0 => ResponseCode::NoError,
            1 => ResponseCode::FormatError,
            2 => ResponseCode::ServerFailure,
            3 => ResponseCode::NameError,
            4 => ResponseCode::NotImplemented,
            5 => ResponseCode::Refused,
            other => ResponseCode::Other(other),
        }
    }
}

/// An IPv4 address and how long it may be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRecord {
    pub address: Ipv4Addr,
    /// Seconds (RFC 2181 section 8: a TTL with the top bit set reads as 0).
    pub ttl: u32,
}

/// One SRV record (RFC 2782) and the addresses of its target the additional section gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: Name,
    pub ttl: u32,
    /// The target's A records from the additional section (empty if the server sent none:
    /// the caller then resolves `target` itself).
    pub target_addresses: Vec<AddressRecord>,
}

/// A response accepted as the answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// TC: the answer did not fit; ask again over TCP (RFC 1035 section 4.2.1, RFC 7766).
    /// Its records are then not read (RFC 2181 section 9: a truncated answer is not used).
    pub truncated: bool,
    pub response_code: ResponseCode,
    /// The name the records belong to: the question's, or the end of its CNAME chain.
    pub canonical_name: Name,
    /// Smallest TTL of the CNAMEs followed (`None` without CNAMEs).
    pub cname_ttl: Option<u32>,
    /// The A records of `canonical_name` (an A query).
    pub addresses: Vec<AddressRecord>,
    /// The SRV records of `canonical_name` (an SRV query); targets of `.` left out (RFC 2782).
    pub services: Vec<ServiceRecord>,
}

impl Answer {
    /// The smallest TTL of the records used (CNAMEs and the SRV targets' additional
    /// addresses included), `None` if there are none.
    pub fn smallest_ttl(&self) -> Option<u32> {
        let target_addresses = self
            .services
            .iter()
            .flat_map(|service| service.target_addresses.iter());
        let records = self
            .addresses
            .iter()
            .chain(target_addresses)
            .map(|record| record.ttl)
            .chain(self.services.iter().map(|record| record.ttl));
        records.chain(self.cname_ttl).min()
    }
}

/// Reads the message from the start, every read bounds-checked.
struct Reader<'a> {
    message: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, count: usize) -> Result<&'a [u8], MessageError> {
        let end = self
            .position
            .checked_add(count)
            .ok_or(MessageError::Truncated)?;
        let bytes = self
            .message
            .get(self.position..end)
            .ok_or(MessageError::Truncated)?;
        self.position = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        let bytes = self.bytes(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        let bytes = self.bytes(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn name(&mut self) -> Result<Name, MessageError> {
        let (name, next) = read_name(self.message, self.position)?;
        self.position = next;
        Ok(name)
    }
}

/// The name at `start` of `message` and the offset just after it where it was written (after
/// its first pointer, if it has one): RFC 1035 section 4.1.4.
fn read_name(message: &[u8], start: usize) -> Result<(Name, usize), MessageError> {
    let mut wire = Vec::new();
    let mut position = start;
    let mut resume = None;
    let mut jumps = 0;
    loop {
        let length = *message.get(position).ok_or(MessageError::Truncated)?;
        if length & POINTER_FLAGS == POINTER_FLAGS {
            let low = *message.get(position + 1).ok_or(MessageError::Truncated)?;
            let target = usize::from(u16::from_be_bytes([length & !POINTER_FLAGS, low]));
            if target >= position {
                return Err(MessageError::PointerNotBackwards);
            }
            jumps += 1;
            if jumps > MAX_POINTER_JUMPS {
                return Err(MessageError::TooManyPointers);
            }
            resume.get_or_insert(position + 2);
            position = target;
            continue;
        }
        if usize::from(length) > MAX_LABEL_LENGTH {
            return Err(MessageError::LabelTooLong);
        }
        if wire.len() + 1 + usize::from(length) > MAX_NAME_LENGTH {
            return Err(MessageError::NameTooLong);
        }
        let label = message
            .get(position + 1..position + 1 + usize::from(length))
            .ok_or(MessageError::Truncated)?;
        wire.push(length);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
        position += 1 + usize::from(length);
        if length == 0 {
            return Ok((Name { wire }, resume.unwrap_or(position)));
        }
    }
}

/// One resource record, its data read according to its type.
struct Record {
    owner: Name,
    ttl: u32,
    data: RecordData,
}

enum RecordData {
    Address(Ipv4Addr),
    Alias(Name),
    Service {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    /// Another type or class: read past, not used.
    Other,
}

fn read_record(reader: &mut Reader<'_>) -> Result<Record, MessageError> {
    let owner = reader.name()?;
    let record_type = reader.u16()?;
    let class = reader.u16()?;
    // RFC 2181 section 8: the top bit set means the TTL is 0.
    let ttl = match reader.u32()? {
        ttl if ttl > i32::MAX as u32 => 0,
        ttl => ttl,
    };
    let length = usize::from(reader.u16()?);
    let start = reader.position;
    let data_bytes = reader.bytes(length)?;
    let end = reader.position;
    if class != CLASS_INTERNET {
        return Ok(Record {
            owner,
            ttl,
            data: RecordData::Other,
        });
    }
    // Names inside the data may point back anywhere earlier in the message; they must end
    // exactly where the record's length says.
    let mut inner = Reader {
        message: &reader.message[..end],
        position: start,
    };
    let data = match record_type {
        TYPE_A => {
            let octets: [u8; 4] = data_bytes
                .try_into()
                .map_err(|_| MessageError::BadRecordData)?;
            RecordData::Address(Ipv4Addr::from(octets))
        }
        TYPE_CNAME => RecordData::Alias(inner.name().map_err(truncated_is_bad_data)?),
        TYPE_SRV => {
            let priority = inner.u16().map_err(truncated_is_bad_data)?;
            let weight = inner.u16().map_err(truncated_is_bad_data)?;
            let port = inner.u16().map_err(truncated_is_bad_data)?;
            let target = inner.name().map_err(truncated_is_bad_data)?;
            RecordData::Service {
                priority,
                weight,
                port,
                target,
            }
        }
        _ => RecordData::Other,
    };
    if !matches!(data, RecordData::Address(_) | RecordData::Other) && inner.position != end {
        return Err(MessageError::BadRecordData);
    }
    Ok(Record { owner, ttl, data })
}

/// Data cut short by its own length field is bad data, not a short message.
fn truncated_is_bad_data(error: MessageError) -> MessageError {
    match error {
        MessageError::Truncated => MessageError::BadRecordData,
        other => other,
    }
}

/// Accepts `message` as the answer to `query`, or says why not.
///
/// The checks come in the order that lets the resolver tell a stray packet (wrong id) from a
/// wrong question from a broken message.
pub fn parse_response(query: &Query, message: &[u8]) -> Result<Answer, MessageError> {
    if message.len() > MAX_MESSAGE {
        return Err(MessageError::Oversized);
    }
    if message.len() < HEADER_LENGTH {
        return Err(MessageError::ShorterThanHeader);
    }
    let mut reader = Reader {
        message,
        position: 0,
    };
    let id = reader.u16()?;
    if id != query.id {
        return Err(MessageError::IdMismatch);
    }
    let flags = reader.u16()?;
    if flags & FLAG_RESPONSE == 0 {
        return Err(MessageError::NotAResponse);
    }
    if flags & OPCODE_MASK != 0 {
        return Err(MessageError::UnexpectedOpcode);
    }
    let truncated = flags & FLAG_TRUNCATED != 0;
    let response_code = ResponseCode::from_code((flags & 0x000F) as u8);
    let question_count = reader.u16()?;
    let answer_count = reader.u16()?;
    let authority_count = reader.u16()?;
    let additional_count = reader.u16()?;
    if question_count != 1 {
        return Err(MessageError::QuestionCount);
    }
    let name = reader.name()?;
    let question_type = reader.u16()?;
    let question_class = reader.u16()?;
    if name != query.name
        || question_type != query.record_type.code()
        || question_class != CLASS_INTERNET
    {
        return Err(MessageError::QuestionMismatch);
    }
    let mut answer = Answer {
        truncated,
        response_code,
        canonical_name: query.name.clone(),
        cname_ttl: None,
        addresses: Vec::new(),
        services: Vec::new(),
    };
    if truncated || response_code != ResponseCode::NoError {
        return Ok(answer);
    }
    let mut answers = Vec::new();
    for _ in 0..answer_count {
        answers.push(read_record(&mut reader)?);
    }
    for _ in 0..authority_count {
        read_record(&mut reader)?;
    }
    let mut additional = Vec::new();
    for _ in 0..additional_count {
        additional.push(read_record(&mut reader)?);
    }
    follow_cnames(&mut answer, &answers)?;
    for record in &answers {
        if record.owner != answer.canonical_name {
            // Out of the chain: not an answer to our question (RFC 5452 section 6, the
            // bailiwick rule in its simplest form).
            continue;
        }
        match (&record.data, query.record_type) {
            (RecordData::Address(address), RecordType::A) => {
                answer.addresses.push(AddressRecord {
                    address: *address,
                    ttl: record.ttl,
                });
            }
            (
                RecordData::Service {
                    priority,
                    weight,
                    port,
                    target,
                },
                RecordType::Srv,
            ) if !target.is_root() => {
                let target_addresses = additional
                    .iter()
                    .filter(|extra| extra.owner == *target)
                    .filter_map(|extra| match extra.data {
                        RecordData::Address(address) => Some(AddressRecord {
                            address,
                            ttl: extra.ttl,
                        }),
                        _ => None,
                    })
                    .collect();
                answer.services.push(ServiceRecord {
                    priority: *priority,
                    weight: *weight,
                    port: *port,
                    target: target.clone(),
                    ttl: record.ttl,
                    target_addresses,
                });
            }
            _ => {}
        }
    }
    Ok(answer)
}

/// Moves `answer.canonical_name` along the CNAMEs of the answer section (RFC 1034 section
/// 3.6.2), refusing loops and overlong chains.
fn follow_cnames(answer: &mut Answer, records: &[Record]) -> Result<(), MessageError> {
    let mut visited: Vec<Name> = Vec::new();
    loop {
        let next = records.iter().find_map(|record| match &record.data {
            RecordData::Alias(target) if record.owner == answer.canonical_name => {
                Some((target, record.ttl))
            }
            _ => None,
        });
        let Some((target, ttl)) = next else {
            return Ok(());
        };
        visited.push(answer.canonical_name.clone());
        if visited.contains(target) {
            return Err(MessageError::CnameLoop);
        }
        if visited.len() > MAX_CNAME_CHAIN {
            return Err(MessageError::CnameChainTooLong);
        }
        answer.cname_ttl = Some(answer.cname_ttl.map_or(ttl, |smallest| smallest.min(ttl)));
        answer.canonical_name = target.clone();
    }
}
