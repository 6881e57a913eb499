//! The HTTP/1.1 reverse proxy and load balancer: one worker per core accepts from its core's listener and serves each client connection to completion on that core, including the backend connection (opened from a Receive Flow Deliver port of the same core, so the backend's replies come back to this core).
//!
//! Modules, one concept each: `settings` (the typed configuration and its words), `worker`
//! (a core's worker and its tasks), `exchange` (one client connection: requests, relaying,
//! retries), `tunnel` (the byte tunnel after a `101`), `pace` (how long a client may keep a
//! body waiting), `forward` (the heads sent on), `balance`, `health`, `pool` (idle backend
//! connections), `console_ring` (a core's access-log lines on their way to the console),
//! `drain` (a core's drain as its connections see it), `errors` (the proxy's own
//! responses), `statistics`, `stream` (a buffered connection). HTTP parsing and framing live
//! in `crate::http`.

pub mod access_log;
mod balance;
pub mod console_ring;
pub mod drain;
mod errors;
pub(crate) mod exchange;
mod forward;
mod health;
mod pace;
mod pool;
pub mod settings;
mod statistics;
pub(crate) mod stream;
pub mod syslog;
mod tunnel;
pub mod worker;

pub use drain::CoreDrain;
pub use errors::ProxyError;
pub use exchange::serve_client;
pub use health::HealthBoard;
pub use settings::{ProxySettings, SettingsError, is_proxy_key};
pub use statistics::{
    ACCESS_LOG_DROPPED_RATE, ACCESS_LOG_DROPPED_RING_FULL, BACKEND_HEALTH_METRICS, BACKEND_METRICS,
    BackendCounters, CORE_STATE_METRICS, CoreStateCounters, CoreStates, DEFAULT_POOL,
    ListenerMetrics, PROXY_CORE_METRICS, ProxyCore, ProxyCoreCounters, ProxyMetrics,
    ProxyStatistics,
};
pub use worker::{CurrentWorker, Listening, ProxyLegs, ProxyShared, Worker, WorkerPlace, start};
