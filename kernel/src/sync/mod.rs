//! Lock-free structures shared between cores (inter-core rings).
