//! The chunked transfer coding (RFC 9112 section 7.1): a streaming decoder that never holds more than the bytes it is given, and the encoder's framing.

use alloc::vec::Vec;

/// Longest chunk extension accepted (`;name=value` after the size).
const MAX_EXTENSION: usize = 1024;
/// Longest trailer section accepted (the fields are read and dropped: RFC 9110 6.5.1 lets a
/// recipient discard them).
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex size; the value so far and how many digits.
    Size {
        value: u64,
        digits: u8,
    },
    /// After `;`: skipping an extension until CR; the size read before it.
    Extension {
        size: u64,
        length: usize,
    },
    /// Expecting the LF after the size line's CR.
    SizeLineFeed {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCarriageReturn,
    DataLineFeed,
    /// In the trailer section: bytes of the current line, and of the whole section.
    Trailer {
        line: usize,
        total: usize,
    },
    TrailerLineFeed {
        line: usize,
        total: usize,
    },
    Done,
}

/// The chunked body is malformed: the request gets 400, a response is cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkError;

/// Decodes a chunked body fed in pieces of any size.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
        }
    }

    /// The last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing from the start of `input` up to and including the next run of data:
    /// returns how many bytes of `input` were consumed and the data among them (a sub-slice
    /// of `input`, possibly empty). Call again with the rest until `consumed` is 0 or
    /// [`is_done`](Self::is_done).
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), ChunkError> {
        let mut position = 0;
        while position < input.len() {
            let byte = input[position];
            match self.state {
                State::Size { value, digits } => match hex_value(byte) {
                    Some(digit) => {
                        // 16 hex digits fill a u64; more is an attack or an error.
                        if digits >= 15 {
                            return Err(ChunkError);
                        }
                        self.state = State::Size {
                            value: value << 4 | u64::from(digit),
                            digits: digits + 1,
                        };
                    }
                    None if digits == 0 => return Err(ChunkError),
                    None => match byte {
                        b'\r' => self.state = State::SizeLineFeed { size: value },
                        // RFC 9112 7.1.1 allows whitespace before the `;` (BWS).
                        b';' | b' ' | b'\t' => {
                            self.state = State::Extension {
                                size: value,
                                length: 0,
                            }
                        }
                        _ => return Err(ChunkError),
                    },
                },
                State::Extension { size, length } => match byte {
                    b'\r' => self.state = State::SizeLineFeed { size },
                    b'\t' | b' '..=b'~' | 0x80..=0xff if length < MAX_EXTENSION => {
                        self.state = State::Extension {
                            size,
                            length: length + 1,
                        };
                    }
                    _ => return Err(ChunkError),
                },
                State::SizeLineFeed { size } => {
                    if byte != b'\n' {
                        return Err(ChunkError);
                    }
                    self.state = if size == 0 {
                        State::Trailer { line: 0, total: 0 }
                    } else {
                        State::Data { remaining: size }
                    };
                }
                State::Data { remaining } => {
                    let available = (input.len() - position) as u64;
                    let take = remaining.min(available) as usize;
                    let data = &input[position..position + take];
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCarriageReturn
                    } else {
                        State::Data { remaining: left }
                    };
                    return Ok((position + take, data));
                }
                State::DataCarriageReturn => {
                    if byte != b'\r' {
                        return Err(ChunkError);
                    }
                    self.state = State::DataLineFeed;
                }
                State::DataLineFeed => {
                    if byte != b'\n' {
                        return Err(ChunkError);
                    }
                    self.state = State::Size {
                        value: 0,
                        digits: 0,
                    };
                }
                State::Trailer { line, total } => {
                    if total >= MAX_TRAILERS {
                        return Err(ChunkError);
                    }
                    match byte {
                        b'\r' => {
                            self.state = State::TrailerLineFeed {
                                line,
                                total: total + 1,
                            }
                        }
                        b'\t' | b' '..=b'~' | 0x80..=0xff => {
                            self.state = State::Trailer {
                                line: line + 1,
                                total: total + 1,
                            }
                        }
                        _ => return Err(ChunkError),
                    }
                }
                State::TrailerLineFeed { line, total } => {
                    if byte != b'\n' {
                        return Err(ChunkError);
                    }
                    self.state = if line == 0 {
                        State::Done
                    } else {
                        State::Trailer {
                            line: 0,
                            total: total + 1,
                        }
                    };
                    if self.state == State::Done {
                        return Ok((position + 1, &[]));
                    }
                }
                State::Done => return Ok((position, &[])),
            }
            position += 1;
        }
        Ok((position, &[]))
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Appends the framing that starts a chunk of `length` bytes (`length` > 0).
pub fn write_chunk_start(out: &mut Vec<u8>, length: usize) {
    let digits = (usize::BITS - length.leading_zeros()).div_ceil(4).max(1);
    for digit in (0..digits).rev() {
        out.push(b"0123456789abcdef"[(length >> (4 * digit)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
}

/// The CRLF that ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; the data and whether it finished.
    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut used = 0;
        for chunk in input.chunks(piece) {
            let mut rest = chunk;
            while !rest.is_empty() && !decoder.is_done() {
                let (consumed, bytes) = decoder.decode(rest)?;
                data.extend_from_slice(bytes);
                used += consumed;
                rest = &rest[consumed..];
            }
        }
        Ok((data, decoder.is_done(), used))
    }

    #[test]
    fn bodies_decode_whatever_the_pieces() {
        let body =
            b"5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for piece in 1..body.len() {
            let (data, done, used) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(data, b"hello 0123456789", "piece {piece}");
            assert!(done);
            assert_eq!(used, body.len() - 4, "the next message is left alone");
        }
    }

    #[test]
    fn bad_framing_is_an_error() {
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\r\r",
            b"10000000000000000\r\n",
            b"0\r\nX: \x01\r\n\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(
                decode_in_pieces(bad, bad.len()).map(|_| ()),
                Err(ChunkError),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unfinished_bodies_are_not_done() {
        let (data, done, _) = decode_in_pieces(b"5\r\nhel", 3).unwrap();
        assert_eq!(data, b"hel");
        assert!(!done);
    }

    #[test]
    fn chunk_sizes_are_written_in_hex() {
        for (length, text) in [
            (1usize, &b"1\r\n"[..]),
            (255, b"ff\r\n"),
            (4096, b"1000\r\n"),
        ] {
            let mut out = Vec::new();
            write_chunk_start(&mut out, length);
            assert_eq!(out, text);
        }
    }
}
