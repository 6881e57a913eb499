//! Physical memory: the boot memory map, the frame allocator.
