//! The image's memory: the global frame allocator and the heap (talc), both cut from the
//! normalised memory map.

use spin::Mutex;
use talc::{ErrOnOom, Span, Talc, Talck};
use unisock_kernel::mem::frame::FrameRun;
use unisock_kernel::mem::{FRAME_SIZE, FrameAllocator, MapError, MemoryMap};
use unisock_kernel::metrics::HeapUsage;

use crate::start::IDENTITY_MAPPED_GIB;

/// Low memory (below 1 MiB) stays with the firmware and the AP trampoline.
const LOW_MEMORY_END: u64 = 0x10_0000;
/// The heap's share of the largest free range; the rest stays for frames (stacks, DMA).
const HEAP_SHARE_DIVISOR: u64 = 2;

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

static FRAMES: Mutex<Option<FrameAllocator>> = Mutex::new(None);

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

#[derive(Clone, Copy, Debug)]
pub enum MemoryError {
    Map(MapError),
    NoRoomForHeap,
}

/// What [`init`] set up, for the boot log.
pub struct MemorySummary {
    pub usable_bytes: u64,
    pub heap: FrameRun,
    pub frames_free_bytes: u64,
}

/// Reserves the image and the memory beyond the identity map, then builds the frame
/// allocator and gives the heap its share.
pub fn init(map: &mut MemoryMap) -> Result<MemorySummary, MemoryError> {
    let image_start = (&raw const __image_start) as u64;
    let image_end = (&raw const __image_end) as u64;
    map.reserve(image_start, image_end)
        .map_err(MemoryError::Map)?;
    map.reserve(IDENTITY_MAPPED_GIB << 30, u64::MAX)
        .map_err(MemoryError::Map)?;

    let mut frames = FrameAllocator::new(map, LOW_MEMORY_END);
    let heap_frames = frames.largest_free_range() / HEAP_SHARE_DIVISOR / FRAME_SIZE;
    let heap = frames
        .allocate(heap_frames, FRAME_SIZE)
        .ok_or(MemoryError::NoRoomForHeap)?;
    // SAFETY: the run is identity-mapped RAM that the frame allocator handed out once and
    // will never hand out again, so the heap owns it for the life of the image.
    unsafe {
        HEAP.lock()
            .claim(Span::from_base_size(
                heap.start as *mut u8,
                heap.bytes() as usize,
            ))
            .map_err(|()| MemoryError::NoRoomForHeap)?;
    }
    let summary = MemorySummary {
        usable_bytes: map.usable_bytes(),
        heap,
        frames_free_bytes: frames.free_bytes(),
    };
    *FRAMES.lock() = Some(frames);
    Ok(summary)
}

/// The heap's use now, from talc's counters (kept by the allocator on every allocation: a
/// few additions under the lock it already takes).
pub fn heap_usage() -> HeapUsage {
    let heap = HEAP.lock();
    let counters = heap.get_counters();
    HeapUsage {
        used_bytes: counters.allocated_bytes as u64,
        capacity_bytes: counters.claimed_bytes as u64,
    }
}

/// Allocates `count` contiguous, zeroed frames aligned to `alignment` bytes.
pub fn allocate_frames(count: u64, alignment: u64) -> Option<FrameRun> {
    let run = FRAMES.lock().as_mut()?.allocate(count, alignment)?;
    // SAFETY: the run is identity-mapped RAM that was just handed out and belongs to nobody.
    unsafe { core::ptr::write_bytes(run.start as *mut u8, 0, run.bytes() as usize) };
    Some(run)
}
