//! Lock-free structures shared between cores (inter-core rings).

pub mod cache_padded;
pub mod mesh;
pub mod ring;

pub use cache_padded::CachePadded;
pub use mesh::{CoreRings, RingMesh, SendError};
pub use ring::{Consumer, Producer, ring};
