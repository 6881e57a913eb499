//! What every core's worker shares, made once at boot and read by all: the settings, the backends' health board and the counters; and how they report as one listener's metrics.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use unisock_kernel::metrics::{Exposition, MetricSource};

use super::health::HealthBoard;
use super::settings::ProxySettings;
use super::statistics::{DEFAULT_POOL, ListenerMetrics, ProxyMetrics, ProxyStatistics};

/// What every core's worker shares: made once at boot, read by all.
#[derive(Clone)]
pub struct ProxyShared {
    pub settings: Arc<ProxySettings>,
    pub health: Arc<HealthBoard>,
    pub statistics: Arc<ProxyStatistics>,
}

impl ProxyShared {
    pub fn new(settings: ProxySettings, workers: usize) -> ProxyShared {
        let backends = settings.pool.backends.len();
        ProxyShared {
            settings: Arc::new(settings),
            health: Arc::new(HealthBoard::new(backends)),
            statistics: Arc::new(ProxyStatistics::new(workers, backends)),
        }
    }

    /// This one listener's metrics, its pool named `default`.
    pub fn metrics(&self) -> ProxyMetrics<'_> {
        ProxyMetrics {
            listeners: Vec::from([ListenerMetrics {
                port: self.settings.port,
                pool: DEFAULT_POOL,
                backends: &self.settings.pool.backends,
                health: &self.health,
                statistics: &self.statistics,
            }]),
        }
    }
}

impl MetricSource for ProxyShared {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        self.metrics().write_prometheus(out)
    }

    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result {
        self.metrics().write_stats(out)
    }
}
