//! `struct virtio_net_hdr` (virtio 1.2, 5.1.6): the 12-byte header in front of every frame.
//!
//! With VERSION_1 the header always includes `num_buffers`, so it is 12 bytes even without
//! MRG_RXBUF (5.1.6.1); HASH_REPORT would make it longer, and we do not negotiate it.

/// Header length with VERSION_1.
pub const HEADER_LENGTH: usize = 12;

const FLAGS: usize = 0;
const CSUM_START: usize = 6;
const CSUM_OFFSET: usize = 8;
/// `flags`: the device completes the checksum at `csum_start + csum_offset` (needs CSUM).
pub const FLAG_NEEDS_CSUM: u8 = 1;

/// Writes a transmit header: `flags` 0 (no checksum offload), `gso_type`
/// `VIRTIO_NET_HDR_GSO_NONE` (0), every other field 0 (5.1.6.2).
pub fn write_transmit_header(header: &mut [u8]) {
    header[..HEADER_LENGTH].fill(0);
}

/// Writes a transmit header that asks the device to complete a checksum: it sums from
/// `start` to the end of the frame and stores the result at `start + offset` (5.1.6.2).
pub fn write_checksum_header(header: &mut [u8], start: u16, offset: u16) {
    write_transmit_header(header);
    header[FLAGS] = FLAG_NEEDS_CSUM;
    header[CSUM_START..CSUM_START + 2].copy_from_slice(&start.to_le_bytes());
    header[CSUM_OFFSET..CSUM_OFFSET + 2].copy_from_slice(&offset.to_le_bytes());
}
