//! The HTTP/1.1 reverse proxy and load balancer: one worker per core accepts from its core's listener and serves each client connection to completion on that core, including the backend connection (opened from a Receive Flow Deliver port of the same core, so the backend's replies come back to this core).
//!
//! A request goes through named phases, each a module owning one decision, called in order
//! by the connection loop (`exchange`) as Pingora's `ProxyHttp` hooks or Envoy's filter chain
//! are; a phase depends only on the phases after it and on the layers below, never back:
//!
//! - `request_head`: read and validate the head (header timeout, head limits).
//! - route: today every request goes to the listener's pool; the place is marked in
//!   `exchange::exchange`.
//! - `policy`: apply policy (today the listener's limits: no `CONNECT`, the body limit).
//! - `request_body`: the body before a backend (`100 Continue`, a small body buffered whole).
//! - `retry` (the backend phase: connect or reuse, and whether to try again) with `pick`
//!   (pick a backend: balancer, health, last resort), `connect` (open a backend connection;
//!   the proxy's own failures told from the backend's) and `settle` (an attempt's outcome:
//!   the backend's health verdict, its connection pooled or closed, the counters).
//! - `attempt` (one attempt on one backend connection) with `forward_head` (forward the head)
//!   and `response_relay` (the response re-framed and relayed, the `101` switch); `outcome`
//!   is how an attempt ended; `body` copies bodies, paced by `pace`; `tunnel` is the byte
//!   tunnel after a `101`; `forward` builds the heads sent on.
//! - `finish`: the connection's next step (keep-alive, close, reset), the proxy's own error
//!   answers (`errors`) and the lingering close after one, the status counted; the access log
//!   line (`access_log`, and `console_ring` on its way to the console or `syslog` to a
//!   collector).
//!
//! Below the phases: `worker` (a core's worker: its balancer and idle pool beside the shared
//! state, and which worker a listener's new requests use), `tasks` (a worker's accept loop,
//! pool sweeper and health checks, the top of the graph), `shared` (what every core's worker
//! shares), `settings` (the typed configuration and its words), `balance`, `health` (the
//! shared health board and passive ejection), `health_check` (the active check task), `pool`
//! (idle backend connections), `drain` (a core's drain as its connections see it),
//! `statistics`, `stream` (a buffered connection). `app/tests/proxy_modules.rs` fails on a
//! cycle of imports among these modules. HTTP parsing and framing live in `crate::http`.

pub mod access_log;
mod attempt;
mod balance;
mod body;
mod connect;
pub mod console_ring;
pub mod drain;
mod errors;
pub(crate) mod exchange;
mod finish;
mod forward;
mod forward_head;
mod health;
mod health_check;
mod outcome;
mod pace;
mod pick;
mod policy;
mod pool;
mod request_body;
mod request_head;
mod response_relay;
mod retry;
pub mod settings;
mod settle;
mod shared;
mod statistics;
pub(crate) mod stream;
pub mod syslog;
pub mod tasks;
mod tunnel;
pub mod worker;

pub use drain::CoreDrain;
pub use errors::ProxyError;
pub use exchange::serve_client;
pub use health::HealthBoard;
pub use settings::{ProxySettings, SettingsError, is_proxy_key};
pub use shared::ProxyShared;
pub use statistics::{
    ACCESS_LOG_DROPPED_RATE, ACCESS_LOG_DROPPED_RING_FULL, BACKEND_HEALTH_METRICS, BACKEND_METRICS,
    BackendCounters, CORE_STATE_METRICS, CoreStateCounters, CoreStates, DEFAULT_POOL,
    ListenerMetrics, PROXY_CORE_METRICS, ProxyCore, ProxyCoreCounters, ProxyMetrics,
    ProxyStatistics,
};
pub use tasks::{Listening, start};
pub use worker::{CurrentWorker, ProxyLegs, Worker, WorkerPlace};
