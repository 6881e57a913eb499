//! The kernel command line (`key=value` words), parsed into a typed configuration.
