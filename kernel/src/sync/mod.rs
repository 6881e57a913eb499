//! Structures shared between cores: the lock-free inter-core rings (over `rtrb`) and cache-line padding.

pub mod cache_padded;
pub mod mesh;
pub mod ring;

pub use cache_padded::CachePadded;
pub use mesh::{CoreRings, RingMesh, SendError};
pub use ring::{Consumer, Producer, ring};
