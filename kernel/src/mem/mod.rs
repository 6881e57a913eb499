//! Physical memory: the boot memory map, the frame allocator.

pub mod frame;
pub mod map;

pub use frame::{FRAME_SIZE, FrameAllocator};
pub use map::{MapError, MemoryMap, Region, RegionKind};
