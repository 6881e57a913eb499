//! The network device's configuration structure (`struct virtio_net_config`, virtio 1.2,
//! 5.1.4), read consistently under the configuration generation counter.

use crate::hal::Mmio;
use crate::nic::{HashTypes, LinkState, MacAddress, RssCapabilities};
use crate::virtio::features::Features;

/// Field offsets of `struct virtio_net_config` (5.1.4).
pub mod offset {
    pub const MAC: usize = 0;
    pub const STATUS: usize = 6;
    pub const MAX_VIRTQUEUE_PAIRS: usize = 8;
    pub const MTU: usize = 10;
    pub const RSS_MAX_KEY_SIZE: usize = 17;
    pub const RSS_MAX_INDIRECTION_TABLE_LENGTH: usize = 18;
    pub const SUPPORTED_HASH_TYPES: usize = 20;
    /// End of `supported_hash_types`: the structure must be this long when RSS is offered.
    pub const RSS_FIELDS_END: usize = 24;
}

/// `status` bit: link is up (5.1.4).
pub const STATUS_LINK_UP: u16 = 1;

/// Valid range of `max_virtqueue_pairs` (5.1.4.1:
/// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN..=VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX`).
pub const MIN_VIRTQUEUE_PAIRS: u16 = 1;
pub const MAX_VIRTQUEUE_PAIRS: u16 = 0x8000;

/// Why the configuration structure could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The structure is shorter than the fields the negotiated features promise.
    TooShort { length: usize, needed: usize },
    /// `max_virtqueue_pairs` is outside 1..=0x8000.
    BadMaxVirtqueuePairs { value: u16 },
    /// The generation counter kept changing while we read.
    Unstable,
}

/// The fields the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The device's MAC address if `MAC` was negotiated.
    pub mac: Option<MacAddress>,
    pub max_virtqueue_pairs: u16,
    pub rss: Option<RssCapabilities>,
}

const GENERATION_RETRIES: usize = 16;

/// Reads the fields implied by `features`; `generation` reads the configuration generation.
pub fn read_config<M: Mmio>(
    device: &M,
    features: Features,
    generation: impl Fn() -> u8,
) -> Result<NetConfig, ConfigError> {
    let needed = if features.contains(Features::RSS) {
        offset::RSS_FIELDS_END
    } else if features.contains(Features::MQ) {
        offset::MAX_VIRTQUEUE_PAIRS + 2
    } else if features.contains(Features::STATUS) {
        offset::STATUS + 2
    } else {
        offset::MAC + 6
    };
    if device.len() < needed {
        return Err(ConfigError::TooShort {
            length: device.len(),
            needed,
        });
    }
    for _ in 0..GENERATION_RETRIES {
        let before = generation();
        let mac = features.contains(Features::MAC).then(|| {
            let mut bytes = [0; 6];
            for (index, byte) in bytes.iter_mut().enumerate() {
                *byte = device.read_u8(offset::MAC + index);
            }
            MacAddress(bytes)
        });
        let max_virtqueue_pairs = if features.contains(Features::MQ) {
            device.read_u16(offset::MAX_VIRTQUEUE_PAIRS)
        } else {
            1
        };
        let rss = features.contains(Features::RSS).then(|| RssCapabilities {
            max_key_length: usize::from(device.read_u8(offset::RSS_MAX_KEY_SIZE)),
            max_indirection_table_length: usize::from(
                device.read_u16(offset::RSS_MAX_INDIRECTION_TABLE_LENGTH),
            ),
            hash_types: HashTypes::from_bits_truncate(
                device.read_u32(offset::SUPPORTED_HASH_TYPES),
            ),
        });
        if generation() != before {
            continue;
        }
        if !(MIN_VIRTQUEUE_PAIRS..=MAX_VIRTQUEUE_PAIRS).contains(&max_virtqueue_pairs) {
            return Err(ConfigError::BadMaxVirtqueuePairs {
                value: max_virtqueue_pairs,
            });
        }
        return Ok(NetConfig {
            mac,
            max_virtqueue_pairs,
            rss,
        });
    }
    Err(ConfigError::Unstable)
}

/// Link state from the `status` field; without `STATUS` the link is taken to be up (5.1.4.2).
pub fn read_link_state<M: Mmio>(device: &M, features: Features) -> LinkState {
    if !features.contains(Features::STATUS) {
        return LinkState::Up;
    }
    if device.read_u16(offset::STATUS) & STATUS_LINK_UP != 0 {
        LinkState::Up
    } else {
        LinkState::Down
    }
}
