//! Shared code of the partition tests and the scaling benchmark.

pub mod harness;
