//! `struct virtio_net_hdr` (virtio 1.2, 5.1.6): the 12-byte header in front of every frame.
//!
//! With VERSION_1 the header always includes `num_buffers`, so it is 12 bytes even without
//! MRG_RXBUF (5.1.6.1); HASH_REPORT would make it longer, and we do not negotiate it.

/// Header length with VERSION_1.
pub const HEADER_LENGTH: usize = 12;

/// Writes a transmit header: `flags` 0 (no checksum offload), `gso_type`
/// `VIRTIO_NET_HDR_GSO_NONE` (0), every other field 0 (5.1.6.2).
pub fn write_transmit_header(header: &mut [u8]) {
    header[..HEADER_LENGTH].fill(0);
}
