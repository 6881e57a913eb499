//! A value alone on its own cache lines, so that two cores writing neighbouring values do not fight over one line.

use core::ops::{Deref, DerefMut};

/// Aligned (and so padded) to 128 bytes, not 64: Intel's spatial prefetcher fetches cache lines
/// in aligned pairs (Intel 64 and IA-32 Architectures Optimization Reference Manual, "Data
/// Prefetching", the L2 spatial prefetcher), so two values 64 bytes apart still share traffic.
/// crossbeam's `CachePadded` uses 128 on x86_64 for the same reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(align(128))]
pub struct CachePadded<T>(T);

impl<T> CachePadded<T> {
    pub const fn new(value: T) -> Self {
        CachePadded(value)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    #[test]
    fn neighbours_are_128_bytes_apart() {
        struct Pair {
            first: CachePadded<AtomicUsize>,
            second: CachePadded<AtomicUsize>,
        }
        assert_eq!(core::mem::align_of::<CachePadded<u8>>(), 128);
        assert_eq!(core::mem::size_of::<CachePadded<u8>>(), 128);
        let pair = Pair {
            first: CachePadded::new(AtomicUsize::new(1)),
            second: CachePadded::new(AtomicUsize::new(2)),
        };
        let first = &*pair.first as *const AtomicUsize as usize;
        let second = &*pair.second as *const AtomicUsize as usize;
        assert!(first.abs_diff(second) >= 128);
        assert_eq!(first % 128, 0);
        assert_eq!(CachePadded::new(7u32).into_inner(), 7);
    }
}
