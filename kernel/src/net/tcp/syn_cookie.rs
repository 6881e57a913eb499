//! SYN cookies: a SYN-ACK whose ISN encodes the connection, so a full SYN queue costs no memory (RFC 4987 section 3.6).
//!
//! Layout of the cookie (our ISN), as in the classic scheme: the top 5 bits are a 64-second
//! counter modulo 32, the next 3 bits index the MSS table, the low 24 bits are a keyed hash of
//! the 4-tuple, the peer's ISN and the counter. When the peer offered timestamps, its window
//! scale and SACK-permitted ride in the low 5 bits of our TSval, which it echoes in TSecr.

use core::net::SocketAddrV4;

use super::isn::SipKey;
use super::seq::SeqNum;
use crate::time::Instant;

/// MSS values a cookie can carry (3 bits); the largest not above the peer's is chosen.
const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1360, 1400, 1440, 1460, 8960];

/// A cookie is accepted for this many counter periods after it was issued.
const VALID_PERIODS: u32 = 2;

/// Longest a cookie can stay valid after it was issued (two 64-second periods).
pub(crate) const LIFETIME: core::time::Duration =
    core::time::Duration::from_secs(64 * VALID_PERIODS as u64);

/// A window-scale value of 15 in the TSval bits means "no window scaling".
const NO_WINDOW_SCALE: u32 = 0xf;

/// What a cookie remembers of the SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CookieContents {
    pub(crate) mss: u16,
    /// Peer's window scale, known only if timestamps carried it.
    pub(crate) window_scale: Option<u8>,
    pub(crate) sack_permitted: bool,
}

fn counter(now: Instant) -> u32 {
    (now.as_nanos() / 64_000_000_000) as u32
}

fn hash24(
    key: &SipKey,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: SeqNum,
    count: u32,
) -> u32 {
    let [addresses, ports] = SipKey::tuple_words(local, remote);
    let extra = (u64::from(peer_isn.0) << 32) | u64::from(count);
    (key.hash(&[addresses, ports, extra, 0x636f_6f6b_6965]) as u32) & 0x00ff_ffff
}

/// Our ISN for a SYN answered with a cookie, and the MSS it will stand for.
pub(crate) fn make_cookie(
    key: &SipKey,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: SeqNum,
    peer_mss: u16,
) -> (SeqNum, u16) {
    let mss_index = MSS_TABLE
        .iter()
        .rposition(|&mss| mss <= peer_mss)
        .unwrap_or(0);
    let count = counter(now);
    let hash = hash24(key, local, remote, peer_isn, count);
    let cookie = ((count & 0x1f) << 27) | ((mss_index as u32) << 24) | hash;
    (SeqNum(cookie), MSS_TABLE[mss_index])
}

/// Our TSval `clock_value` with its low bits replaced by the cookie's `bits`, never above
/// it: TSval must not run ahead of the clock, or the next segments would carry a smaller
/// one and fail the peer's PAWS check (RFC 7323 section 5.4; issue 10, defect 5). It is at
/// most 31 ms behind instead, which RFC 7323 allows.
pub(crate) fn timestamp_with_bits(clock_value: u32, bits: u32) -> u32 {
    let value = (clock_value & !TIMESTAMP_BITS_MASK) | (bits & TIMESTAMP_BITS_MASK);
    if SeqNum(value).after(SeqNum(clock_value)) {
        value.wrapping_sub(TIMESTAMP_BITS_MASK + 1)
    } else {
        value
    }
}

/// The low bits of our TSval that carry the peer's options (RFC 7323 leaves TSval's value to us).
pub(crate) fn timestamp_bits(window_scale: Option<u8>, sack_permitted: bool) -> u32 {
    let scale = window_scale.map_or(NO_WINDOW_SCALE, u32::from);
    scale | (u32::from(sack_permitted) << 4)
}

/// Mask of those bits.
pub(crate) const TIMESTAMP_BITS_MASK: u32 = 0x1f;

/// Checks the cookie in the acknowledgment of a SYN-ACK we sent without keeping state.
/// `peer_isn` is SEG.SEQ - 1 and `cookie` is SEG.ACK - 1; `echoed_timestamp` is the TSecr.
pub(crate) fn check_cookie(
    key: &SipKey,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: SeqNum,
    cookie: SeqNum,
    echoed_timestamp: Option<u32>,
) -> Option<CookieContents> {
    let current = counter(now);
    let issued_low = cookie.0 >> 27;
    let age = current.wrapping_sub(issued_low) & 0x1f;
    if age >= VALID_PERIODS {
        return None;
    }
    let issued = current.wrapping_sub(age);
    if hash24(key, local, remote, peer_isn, issued) != cookie.0 & 0x00ff_ffff {
        return None;
    }
    let mss = MSS_TABLE[((cookie.0 >> 24) & 0x7) as usize];
    let (window_scale, sack_permitted) = match echoed_timestamp {
        Some(echo) => {
            let scale = echo & 0xf;
            let window_scale = if scale == NO_WINDOW_SCALE {
                None
            } else {
                Some(scale.min(14) as u8)
            };
            (window_scale, echo & 0x10 != 0)
        }
        None => (None, false),
    };
    Some(CookieContents {
        mss,
        window_scale,
        sack_permitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple() -> (SocketAddrV4, SocketAddrV4) {
        (
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 33000),
        )
    }

    #[test]
    fn cookie_round_trips_and_expires() {
        let key = SipKey::new([9; 16]);
        let (local, remote) = tuple();
        let now = Instant::from_millis(1_000_000);
        let (cookie, mss) = make_cookie(&key, now, local, remote, SeqNum(77), 1460);
        assert_eq!(mss, 1460);
        let bits = timestamp_bits(Some(7), true);
        let contents = check_cookie(
            &key,
            now,
            local,
            remote,
            SeqNum(77),
            cookie,
            Some(1234 << 5 | bits),
        )
        .unwrap();
        assert_eq!(
            contents,
            CookieContents {
                mss: 1460,
                window_scale: Some(7),
                sack_permitted: true
            }
        );
        // Still valid one period later, not two.
        let later = now + core::time::Duration::from_secs(64);
        assert!(check_cookie(&key, later, local, remote, SeqNum(77), cookie, None).is_some());
        let too_late = now + core::time::Duration::from_secs(128);
        assert!(check_cookie(&key, too_late, local, remote, SeqNum(77), cookie, None).is_none());
    }

    #[test]
    fn forged_cookies_fail() {
        let key = SipKey::new([9; 16]);
        let (local, remote) = tuple();
        let now = Instant::from_millis(5_000);
        let (cookie, _) = make_cookie(&key, now, local, remote, SeqNum(77), 536);
        assert!(check_cookie(&key, now, local, remote, SeqNum(78), cookie, None).is_none());
        assert!(check_cookie(&key, now, local, remote, SeqNum(77), cookie + 1, None).is_none());
        assert!(
            check_cookie(
                &SipKey::new([8; 16]),
                now,
                local,
                remote,
                SeqNum(77),
                cookie,
                None
            )
            .is_none()
        );
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 33000);
        assert!(check_cookie(&key, now, local, other, SeqNum(77), cookie, None).is_none());
    }
}
