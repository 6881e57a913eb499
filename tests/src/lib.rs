//! Helpers for end-to-end tests: boot the image in QEMU and watch its serial console.
