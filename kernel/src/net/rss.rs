//! Toeplitz RSS hashing and the port-only key that makes the NIC queue a function of the ports.
