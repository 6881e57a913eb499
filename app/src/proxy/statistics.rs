//! The proxy's counters: one set per core (and, within it, one per backend of the pool, by
//! the backend's index), written only by that core (a plain load and store, no locked
//! instruction), read by whoever reports them at `/stats` and `/metrics`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Display, Write};

use unisock_kernel::metrics::{
    Counter, Exposition, Histogram, HistogramSnapshot, Metric, MetricKind, MetricSource,
};
use unisock_kernel::sync::CachePadded;

use super::health::HealthBoard;
use super::settings::Backend;

/// The name of the one pool there is today (the `pool` label).
pub const DEFAULT_POOL: &str = "default";

/// One series' labels, owned (the label values borrowed).
type SeriesLabels<'a> = Vec<(&'static str, &'a dyn Display)>;

/// Status classes, by `status / 100 - 1` (the `class` label).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(index: usize) -> &'static str {
    STATUS_CLASSES.get(index).copied().unwrap_or("5xx")
}

/// Why the proxy could not open a backend connection itself, by index (the `reason` label).
const LOCAL_FAILURE_REASONS: [&str; 3] = ["connection_limit", "local_port", "other"];

fn local_failure_reason(index: usize) -> &'static str {
    LOCAL_FAILURE_REASONS.get(index).copied().unwrap_or("other")
}

/// The index into [`LOCAL_FAILURE_REASONS`] of a local socket error.
pub fn local_failure_index(error: unisock_kernel::socket::SocketError) -> usize {
    use unisock_kernel::socket::SocketError;
    match error {
        SocketError::LimitReached => 0,
        SocketError::AddressNotAvailable | SocketError::AddressInUse => 1,
        _ => 2,
    }
}

/// The index into [`STATUS_CLASSES`] of `status` (anything out of range counts as 5xx).
fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Generates, from one list, a block of single-writer counters, its plain snapshot (with a
/// sum for the totals), the metric definitions, the `/stats` fields and the Prometheus
/// families. `labelled` entries are an array, one series per element (named by the label's
/// value, and `<field>_<value>` on `/stats`); `histograms` are latency histograms
/// (`<field>_count` and `<field>_sum_us` on `/stats`).
macro_rules! proxy_counters {
    (
        $(#[$block_doc:meta])* $block:ident, $snapshot:ident, $definitions:ident;
        scalars { $( $field:ident: $kind:ident $name:ident $help:literal, )* }
        labelled { $( $array:ident[$length:expr] by $label:literal $label_value:path:
                      $array_kind:ident $array_name:ident $array_help:literal, )* }
        histograms { $( $histogram:ident: $histogram_name:ident $histogram_help:literal, )* }
    ) => {
        $(#[$block_doc])*
        #[derive(Default)]
        pub struct $block {
            $( #[doc = $help] pub $field: Counter, )*
            $( #[doc = $array_help] pub $array: [Counter; $length], )*
            $( #[doc = $histogram_help] pub $histogram: Histogram, )*
        }

        /// A plain copy of the counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $snapshot {
            $( pub $field: u64, )*
            $( pub $array: [u64; $length], )*
            $( pub $histogram: HistogramSnapshot, )*
        }

        /// The definition of every metric of the block, in `/stats` order.
        pub const $definitions: &[Metric] = &[
            $( Metric::new(stringify!($name), stringify!($field), MetricKind::$kind, $help), )*
            $( Metric::new(stringify!($array_name), stringify!($array),
                           MetricKind::$array_kind, $array_help).with_labels(&[$label]), )*
            $( Metric::new(stringify!($histogram_name), stringify!($histogram),
                           MetricKind::Histogram, $histogram_help), )*
        ];

        impl $block {
            pub fn snapshot(&self) -> $snapshot {
                $snapshot {
                    $( $field: self.$field.get(), )*
                    $( $array: core::array::from_fn(|index| self.$array[index].get()), )*
                    $( $histogram: self.$histogram.snapshot(), )*
                }
            }
        }

        impl $snapshot {
            /// Adds `other` field by field (for the totals).
            pub fn add(&mut self, other: &$snapshot) {
                $( self.$field = self.$field.wrapping_add(other.$field); )*
                $(
                    for (sum, value) in self.$array.iter_mut().zip(other.$array) {
                        *sum = sum.wrapping_add(value);
                    }
                )*
                $( self.$histogram.add(&other.$histogram); )*
            }

            /// `name=value` pairs, separated by spaces.
            pub fn write_fields(&self, out: &mut dyn Write) -> fmt::Result {
                let mut separator = "";
                $(
                    write!(out, "{separator}{}={}", stringify!($field), self.$field)?;
                    separator = " ";
                )*
                $(
                    for (index, value) in self.$array.iter().enumerate() {
                        write!(out, "{separator}{}_{}={}", stringify!($array),
                               $label_value(index), value)?;
                        separator = " ";
                    }
                )*
                $(
                    write!(out, "{separator}{}_count={} {}_sum_us={}",
                           stringify!($histogram), self.$histogram.count,
                           stringify!($histogram), self.$histogram.sum_nanoseconds / 1_000)?;
                    separator = " ";
                )*
                let _ = separator;
                Ok(())
            }

            /// Every family of the block, each with one series per entry of `series`.
            pub fn write_families(
                series: &[(SeriesLabels<'_>, $snapshot)],
                out: &mut Exposition<'_>,
            ) -> fmt::Result {
                let mut definitions = $definitions.iter();
                $(
                    let metric = definitions.next().ok_or(fmt::Error)?;
                    out.family(metric)?;
                    for (labels, snapshot) in series {
                        out.sample(metric, labels, snapshot.$field)?;
                    }
                )*
                $(
                    let metric = definitions.next().ok_or(fmt::Error)?;
                    out.family(metric)?;
                    for index in 0..$length {
                        let value = $label_value(index);
                        for (labels, snapshot) in series {
                            let mut labels = labels.clone();
                            labels.push(($label, &value));
                            out.sample(metric, &labels, snapshot.$array[index])?;
                        }
                    }
                )*
                $(
                    let metric = definitions.next().ok_or(fmt::Error)?;
                    out.family(metric)?;
                    for (labels, snapshot) in series {
                        out.histogram(metric, labels, &snapshot.$histogram)?;
                    }
                )*
                let _ = definitions;
                Ok(())
            }
        }
    };
}

proxy_counters! {
    /// One core's proxy counters, client side (labelled by listener).
    ProxyCoreCounters, ProxyCoreSnapshot, PROXY_CORE_METRICS;
    scalars {
        client_connections: Counter unisock_proxy_client_connections_total
            "Client connections accepted.",
        client_connections_active: Gauge unisock_proxy_client_connections_active
            "Client connections open now.",
        requests: Counter unisock_proxy_requests_total
            "Requests whose head was read and accepted.",
        rejected_requests: Counter unisock_proxy_rejected_requests_total
            "Requests refused before any backend saw them (400, 405, 413, 414, 431, 501).",
        bad_host_requests: Counter unisock_proxy_bad_host_requests_total
            "400s for the host: HTTP/1.1 without Host, several Host fields, or a Host (or absolute target's authority) that is not host[:port] (part of rejected requests).",
        bad_target_requests: Counter unisock_proxy_bad_target_requests_total
            "400s for a request target in none of the forms forwarded: origin, absolute (http or https), * for OPTIONS (part of rejected requests).",
        request_head_parses: Counter unisock_proxy_request_head_parses_total
            "Request heads parsed: one per head, however it was split into reads (the end of a head is found before it is parsed).",
        backend_failures: Counter unisock_proxy_backend_failures_total
            "502s charged to a backend: it refused, reset, closed before a complete response head, or answered something that is not HTTP or a body framed so that no client can be sent it (chunked before another coding).",
        no_backend: Counter unisock_proxy_no_backend_total
            "503s: no backend was available.",
        backend_timeouts: Counter unisock_proxy_backend_timeouts_total
            "504s: a backend did not connect or answer in time.",
        backend_connects: Counter unisock_proxy_backend_connects_total
            "New backend connections opened (all backends).",
        backend_reuses: Counter unisock_proxy_backend_reuses_total
            "Requests sent on a pooled keep-alive backend connection (all backends).",
        retries: Counter unisock_proxy_retries_total
            "Attempts on another backend (or a new connection) after a failure.",
        truncated_responses: Counter unisock_proxy_truncated_responses_total
            "Responses cut off because the backend closed, reset or stalled mid-body.",
        unframeable_responses: Counter unisock_proxy_unframeable_responses_total
            "502s for a response this client cannot be sent as framed (a transfer coding before chunked, to an HTTP/1.0 client); not charged to the backend.",
        early_responses: Counter unisock_proxy_early_responses_total
            "Responses a backend sent before it had taken the whole request body (the write of the body then failed), relayed with Connection: close and not charged to the backend.",
        client_aborts: Counter unisock_proxy_client_aborts_total
            "Client connections that ended mid-request: closed, reset, or timed out other than over a body (those are counted as body and send timeouts).",
        body_timeouts: Counter unisock_proxy_body_timeouts_total
            "408s: a client's request body stalled for timeout.client, or fell behind timeout.body-rate by more than timeout.body.",
        send_timeouts: Counter unisock_proxy_send_timeouts_total
            "Responses cut off because the client did not take them: stalled for timeout.client, or fell behind timeout.send-rate by more than timeout.send.",
        tunnels: Counter unisock_proxy_tunnels_total
            "Upgrade (101) tunnels opened.",
        tunnel_timeouts: Counter unisock_proxy_tunnel_timeouts_total
            "Tunnels closed after timeout.tunnel without a byte in either direction.",
        health_transitions: Counter unisock_proxy_health_transitions_published_total
            "Backend up/down transitions published by this core's active checks.",
        local_probe_failures: Counter unisock_proxy_local_probe_failures_total
            "Health probes this core could not make for a reason of its own (connection table full, no free local port); they left the backend's health as it was.",
        ejections_capped: Counter unisock_proxy_ejections_capped_total
            "Ejections held back because the pool's share of ejected backends (eject.max-percent) was reached: once per backend, until it is ejected, succeeds or a check brings it up.",
        last_resort_attempts: Counter unisock_proxy_last_resort_attempts_total
            "Attempts on a passively ejected backend because no backend was available.",
        request_body_bytes: Counter unisock_proxy_request_body_bytes_total
            "Request body bytes relayed from clients to backends.",
        response_body_bytes: Counter unisock_proxy_response_body_bytes_total
            "Response body bytes relayed from backends to clients.",
        client_received_bytes: Counter unisock_proxy_client_received_bytes_total
            "Bytes read from client connections (heads and bodies).",
        client_sent_bytes: Counter unisock_proxy_client_sent_bytes_total
            "Bytes written to client connections (heads and bodies, the proxy's own responses too).",
    }
    labelled {
        responses[5] by "class" status_class: Counter unisock_proxy_responses_total
            "Responses sent to clients (the backends' and the proxy's own), by status class.",
        local_connect_failures[3] by "reason" local_failure_reason: Counter
            unisock_proxy_local_connect_failures_total
            "Backend connections this core could not open for a reason of its own (503 when no other backend could be tried); never charged to a backend.",
    }
    histograms {
        request_duration: unisock_proxy_request_duration_seconds
            "Client-observed request time: from the request head read to the response's last byte written.",
    }
}

proxy_counters! {
    /// One core's counters of one backend of the pool.
    BackendCounters, BackendSnapshot, BACKEND_METRICS;
    scalars {
        connections_opened: Counter unisock_proxy_backend_connections_opened_total
            "New connections opened to the backend.",
        connections_reused: Counter unisock_proxy_backend_connections_reused_total
            "Requests sent to the backend on a pooled keep-alive connection.",
        connections_active: Gauge unisock_proxy_backend_connections_active
            "Connections to the backend open now (busy or idle in the pool).",
        received_bytes: Counter unisock_proxy_backend_received_bytes_total
            "Bytes read from the backend's connections.",
        sent_bytes: Counter unisock_proxy_backend_sent_bytes_total
            "Bytes written to the backend's connections.",
    }
    labelled {
        responses[5] by "class" status_class: Counter unisock_proxy_backend_responses_total
            "Final responses the backend sent (relayed to a client), by status class.",
    }
    histograms {
        response_latency: unisock_proxy_backend_response_latency_seconds
            "Backend time: from the request (head and body) sent to the response head read.",
    }
}

/// Why an access-log line was not written (the `reason` label), by index.
const ACCESS_LOG_DROP_REASONS: [&str; 4] =
    ["rate", "ring_full", "syslog_queue_full", "syslog_unsent"];

fn access_log_drop_reason(index: usize) -> &'static str {
    ACCESS_LOG_DROP_REASONS
        .get(index)
        .copied()
        .unwrap_or("ring_full")
}

/// Index of the `rate` reason of [`CoreStateCounters::access_log_dropped`]: over the per-core
/// lines-per-second budget.
pub const ACCESS_LOG_DROPPED_RATE: usize = 0;
/// Index of the `ring_full` reason: the core's console ring had no room (the console is
/// slower than the lines).
pub const ACCESS_LOG_DROPPED_RING_FULL: usize = 1;
/// Index of the `syslog_queue_full` reason: the core's UDP output queue had no room for the
/// syslog datagram (the line is dropped, never waited for).
pub const ACCESS_LOG_DROPPED_SYSLOG_QUEUE_FULL: usize = 2;
/// Index of the `syslog_unsent` reason: no socket to the collector could be opened, or the
/// stack refused the datagram (an ICMP error from the collector, say).
pub const ACCESS_LOG_DROPPED_SYSLOG_UNSENT: usize = 3;

proxy_counters! {
    /// One core's own state across its listeners and configurations (no `listener` label):
    /// its client connections, its drain, its access log.
    CoreStateCounters, CoreStateSnapshot, CORE_STATE_METRICS;
    scalars {
        client_connections: Gauge unisock_proxy_core_client_connections
            "Client connections open on the core now, every listener and configuration together.",
        draining: Gauge unisock_proxy_core_draining
            "1 while the operator drains the core and client connections remain on it.",
        drained: Gauge unisock_proxy_core_drained
            "1 once a drained core has no client connection left (it can be taken down).",
        access_log_lines: Counter unisock_proxy_access_log_lines_total
            "Access-log lines queued for the console or sent to the syslog collector.",
        access_log_console_bytes: Counter unisock_proxy_access_log_console_bytes_total
            "Access-log bytes written to the console.",
    }
    labelled {
        access_log_dropped[4] by "reason" access_log_drop_reason: Counter
            unisock_proxy_access_log_dropped_total
            "Access-log lines not written: over the per-core rate (`rate`), no room in the core's console ring (`ring_full`: the console is slower than the lines), no room in the core's UDP output queue for the syslog datagram (`syslog_queue_full`), or the syslog datagram could not be sent (`syslog_unsent`).",
    }
    histograms {}
}

/// Every core's [`CoreStateCounters`], each written by its own core only.
pub struct CoreStates {
    cores: Vec<CachePadded<CoreStateCounters>>,
}

impl CoreStates {
    pub fn new(cores: usize) -> CoreStates {
        CoreStates {
            cores: (0..cores.max(1))
                .map(|_| CachePadded::new(CoreStateCounters::default()))
                .collect(),
        }
    }

    /// Core `index`'s block (the last core's for an index out of range).
    pub fn core(&self, index: usize) -> &CoreStateCounters {
        &self.cores[index.min(self.cores.len() - 1)]
    }

    /// Every core's snapshot, with `drained(core)` (the operator's drain) turned into the
    /// `draining` and `drained` gauges; and their total.
    fn snapshots(
        &self,
        drained: impl Fn(usize) -> bool,
    ) -> (Vec<CoreStateSnapshot>, CoreStateSnapshot) {
        let snapshots: Vec<CoreStateSnapshot> = self
            .cores
            .iter()
            .enumerate()
            .map(|(index, core)| {
                let mut snapshot = core.snapshot();
                let drained = drained(index);
                snapshot.draining = u64::from(drained && snapshot.client_connections > 0);
                snapshot.drained = u64::from(drained && snapshot.client_connections == 0);
                snapshot
            })
            .collect();
        let mut total = CoreStateSnapshot::default();
        for snapshot in &snapshots {
            total.add(snapshot);
        }
        (snapshots, total)
    }

    /// The Prometheus families, a series per core and `core="total"`.
    pub fn write_prometheus(
        &self,
        drained: impl Fn(usize) -> bool,
        out: &mut Exposition<'_>,
    ) -> fmt::Result {
        let (snapshots, total) = self.snapshots(drained);
        let cores: Vec<usize> = (0..snapshots.len()).collect();
        let series = per_core_series(&snapshots, total, &cores, &[]);
        CoreStateSnapshot::write_families(&series, out)
    }

    /// `proxy_core core=<i> ...` lines, then `core=total`.
    pub fn write_stats(&self, drained: impl Fn(usize) -> bool, out: &mut dyn Write) -> fmt::Result {
        let (snapshots, total) = self.snapshots(drained);
        for (index, snapshot) in snapshots.iter().enumerate() {
            write!(out, "proxy_core core={index} ")?;
            snapshot.write_fields(out)?;
            writeln!(out)?;
        }
        write!(out, "proxy_core core=total ")?;
        total.write_fields(out)?;
        writeln!(out)
    }
}

/// The backend health families (shared state, no `core` label).
pub const BACKEND_UP: Metric = Metric::new(
    "unisock_proxy_backend_up",
    "up",
    MetricKind::Gauge,
    "1 while the backend is up (active checks, or ejection when checks are on), 0 while down.",
)
.with_labels(&["pool", "backend"]);
pub const BACKEND_TRANSITIONS: Metric = Metric::new(
    "unisock_proxy_backend_health_transitions_total",
    "transitions",
    MetricKind::Counter,
    "Times the backend went up or down.",
)
.with_labels(&["pool", "backend"]);
pub const BACKEND_EJECTIONS: Metric = Metric::new(
    "unisock_proxy_backend_ejections_total",
    "ejections",
    MetricKind::Counter,
    "Passive ejections of the backend after consecutive failures.",
)
.with_labels(&["pool", "backend"]);
/// The health families, for the documentation.
pub const BACKEND_HEALTH_METRICS: [Metric; 3] =
    [BACKEND_UP, BACKEND_TRANSITIONS, BACKEND_EJECTIONS];

impl ProxyCoreCounters {
    /// Counts a response of `status` to a client.
    pub fn count_status(&self, status: u16) {
        self.responses[class_index(status)].increment();
    }
}

impl BackendCounters {
    /// Counts a final response of `status` from this backend.
    pub fn count_status(&self, status: u16) {
        self.responses[class_index(status)].increment();
    }
}

/// One core's counters: the client side and one block per backend (by index in the pool).
pub struct ProxyCore {
    pub client: ProxyCoreCounters,
    pub backends: Vec<BackendCounters>,
}

impl core::ops::Deref for ProxyCore {
    type Target = ProxyCoreCounters;

    fn deref(&self) -> &ProxyCoreCounters {
        &self.client
    }
}

impl ProxyCore {
    /// Backend `index`'s counters (`None` for an index outside the pool).
    pub fn backend(&self, index: usize) -> Option<&BackendCounters> {
        self.backends.get(index)
    }
}

/// Which counters a connection's bytes go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeteredSide {
    Client,
    Backend(usize),
}

/// Counts a connection's bytes as they are read and written, and holds the connection in
/// the active gauge of its side until it is dropped. Only the core that owns the counters
/// holds one.
pub struct ByteMeter {
    core: Arc<CachePadded<ProxyCore>>,
    side: MeteredSide,
}

impl ByteMeter {
    pub fn new(core: Arc<CachePadded<ProxyCore>>, side: MeteredSide) -> ByteMeter {
        match side {
            MeteredSide::Client => core.client.client_connections_active.add(1),
            MeteredSide::Backend(index) => {
                if let Some(backend) = core.backend(index) {
                    backend.connections_active.add(1);
                }
            }
        }
        ByteMeter { core, side }
    }

    pub fn received(&self, bytes: usize) {
        match self.side {
            MeteredSide::Client => self.core.client.client_received_bytes.add(bytes as u64),
            MeteredSide::Backend(index) => {
                if let Some(backend) = self.core.backend(index) {
                    backend.received_bytes.add(bytes as u64);
                }
            }
        }
    }

    pub fn sent(&self, bytes: usize) {
        match self.side {
            MeteredSide::Client => self.core.client.client_sent_bytes.add(bytes as u64),
            MeteredSide::Backend(index) => {
                if let Some(backend) = self.core.backend(index) {
                    backend.sent_bytes.add(bytes as u64);
                }
            }
        }
    }
}

impl Drop for ByteMeter {
    fn drop(&mut self) {
        match self.side {
            MeteredSide::Client => self.core.client.client_connections_active.subtract(1),
            MeteredSide::Backend(index) => {
                if let Some(backend) = self.core.backend(index) {
                    backend.connections_active.subtract(1);
                }
            }
        }
    }
}

/// Every core's counters. Each core's block sits behind its own `Arc` so that the core's
/// connections can hold it (in their [`ByteMeter`]) without touching a count shared by
/// the other cores.
pub struct ProxyStatistics {
    cores: Vec<Arc<CachePadded<ProxyCore>>>,
}

impl ProxyStatistics {
    pub fn new(cores: usize, backends: usize) -> ProxyStatistics {
        ProxyStatistics {
            cores: (0..cores.max(1))
                .map(|_| {
                    Arc::new(CachePadded::new(ProxyCore {
                        client: ProxyCoreCounters::default(),
                        backends: (0..backends).map(|_| BackendCounters::default()).collect(),
                    }))
                })
                .collect(),
        }
    }

    /// Core `index`'s counters (the last core's for an index out of range).
    pub fn core(&self, index: usize) -> &ProxyCore {
        self.core_shared(index)
    }

    /// Core `index`'s block itself, for a [`ByteMeter`].
    pub fn core_shared(&self, index: usize) -> &Arc<CachePadded<ProxyCore>> {
        &self.cores[index.min(self.cores.len() - 1)]
    }

    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    /// Every core's client-side snapshot and their total.
    fn client_snapshots(&self) -> (Vec<ProxyCoreSnapshot>, ProxyCoreSnapshot) {
        let snapshots: Vec<ProxyCoreSnapshot> = self
            .cores
            .iter()
            .map(|core| core.client.snapshot())
            .collect();
        let mut total = ProxyCoreSnapshot::default();
        for snapshot in &snapshots {
            total.add(snapshot);
        }
        (snapshots, total)
    }

    /// Backend `index`'s snapshot on every core, and their total.
    fn backend_snapshots(&self, index: usize) -> (Vec<BackendSnapshot>, BackendSnapshot) {
        let snapshots: Vec<BackendSnapshot> = self
            .cores
            .iter()
            .map(|core| {
                core.backend(index)
                    .map(BackendCounters::snapshot)
                    .unwrap_or_default()
            })
            .collect();
        let mut total = BackendSnapshot::default();
        for snapshot in &snapshots {
            total.add(snapshot);
        }
        (snapshots, total)
    }

    /// The client-side lines, `proxy core=<i> name=value ...`, then a total line.
    pub fn write_report(&self, out: &mut dyn Write) -> fmt::Result {
        let (snapshots, total) = self.client_snapshots();
        for (index, snapshot) in snapshots.iter().enumerate() {
            write!(out, "proxy core={index} ")?;
            snapshot.write_fields(out)?;
            writeln!(out)?;
        }
        write!(out, "proxy core=total ")?;
        total.write_fields(out)?;
        writeln!(out)
    }
}

/// Per core `core="<i>"` then `core="total"`, each with `extra` labels.
fn per_core_series<'a, S: Copy>(
    snapshots: &[S],
    total: S,
    cores: &'a [usize],
    extra: &[(&'static str, &'a dyn Display)],
) -> Vec<(SeriesLabels<'a>, S)> {
    let mut series: Vec<(SeriesLabels<'a>, S)> = snapshots
        .iter()
        .zip(cores)
        .map(|(snapshot, core)| {
            let mut labels: Vec<(&'static str, &'a dyn Display)> =
                Vec::from([("core", core as &dyn Display)]);
            labels.extend_from_slice(extra);
            (labels, *snapshot)
        })
        .collect();
    let mut labels: Vec<(&'static str, &'a dyn Display)> =
        Vec::from([("core", &"total" as &dyn Display)]);
    labels.extend_from_slice(extra);
    series.push((labels, total));
    series
}

/// One listener's counters and its pool, as the reports show them.
pub struct ListenerMetrics<'a> {
    pub port: u16,
    pub pool: &'a str,
    pub backends: &'a [Backend],
    pub health: &'a HealthBoard,
    pub statistics: &'a ProxyStatistics,
}

/// Every listener's counters, rendered once per family (a listener's client series carry
/// `listener="<port>"`; backend series carry the listener, the pool and the backend; health
/// is per pool).
pub struct ProxyMetrics<'a> {
    pub listeners: Vec<ListenerMetrics<'a>>,
}

impl MetricSource for ProxyMetrics<'_> {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let Some(first) = self.listeners.first() else {
            return Ok(());
        };
        let cores: Vec<usize> = (0..first.statistics.core_count()).collect();
        let client: Vec<_> = self
            .listeners
            .iter()
            .map(|listener| listener.statistics.client_snapshots())
            .collect();
        let mut series = Vec::new();
        for (listener, (snapshots, total)) in self.listeners.iter().zip(&client) {
            series.extend(per_core_series(
                snapshots,
                *total,
                &cores,
                &[("listener", &listener.port)],
            ));
        }
        ProxyCoreSnapshot::write_families(&series, out)?;

        let addresses: Vec<Vec<_>> = self
            .listeners
            .iter()
            .map(|listener| {
                listener
                    .backends
                    .iter()
                    .map(|backend| backend.address)
                    .collect()
            })
            .collect();
        let backend_snapshots: Vec<Vec<_>> = self
            .listeners
            .iter()
            .map(|listener| {
                (0..listener.backends.len())
                    .map(|index| listener.statistics.backend_snapshots(index))
                    .collect()
            })
            .collect();
        let mut series = Vec::new();
        for ((listener, addresses), snapshots) in self
            .listeners
            .iter()
            .zip(&addresses)
            .zip(&backend_snapshots)
        {
            for (address, (snapshots, total)) in addresses.iter().zip(snapshots) {
                series.extend(per_core_series(
                    snapshots,
                    *total,
                    &cores,
                    &[
                        ("listener", &listener.port),
                        ("pool", &listener.pool),
                        ("backend", address),
                    ],
                ));
            }
        }
        BackendSnapshot::write_families(&series, out)?;

        for metric in &BACKEND_HEALTH_METRICS {
            out.family(metric)?;
            for (position, (listener, addresses)) in
                self.listeners.iter().zip(&addresses).enumerate()
            {
                // A pool shared by listeners has one health state: shown once.
                if self.listeners[..position]
                    .iter()
                    .any(|earlier| earlier.pool == listener.pool)
                {
                    continue;
                }
                for (index, address) in addresses.iter().enumerate() {
                    let (transitions, ejections) = listener.health.history(index);
                    let value = match metric.stats_name {
                        "up" => u64::from(listener.health.is_up(index)),
                        "transitions" => transitions,
                        _ => ejections,
                    };
                    out.sample(
                        metric,
                        &[("pool", &listener.pool), ("backend", address)],
                        value,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Per listener: its `proxy core=` lines (with `listener=<port>` after the first
    /// listener's, whose lines keep their old shape), then per backend `proxy_backend
    /// core=<i|total> pool=<name> backend=<ip:port> ...` lines and one `proxy_health` line per
    /// backend.
    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result {
        for (position, listener) in self.listeners.iter().enumerate() {
            let statistics = listener.statistics;
            if position == 0 {
                statistics.write_report(out)?;
            } else {
                let mut text = String::new();
                statistics.write_report(&mut text)?;
                for line in text.lines() {
                    match line.strip_prefix("proxy ") {
                        Some(rest) => writeln!(out, "proxy listener={} {rest}", listener.port)?,
                        None => writeln!(out, "{line}")?,
                    }
                }
            }
            let shown = self.listeners[..position]
                .iter()
                .any(|earlier| earlier.pool == listener.pool);
            for (index, backend) in listener.backends.iter().enumerate() {
                let (snapshots, total) = statistics.backend_snapshots(index);
                for (core, snapshot) in snapshots.iter().enumerate() {
                    write!(
                        out,
                        "proxy_backend core={core} pool={} backend={} ",
                        listener.pool, backend.address
                    )?;
                    snapshot.write_fields(out)?;
                    writeln!(out)?;
                }
                write!(
                    out,
                    "proxy_backend core=total pool={} backend={} ",
                    listener.pool, backend.address
                )?;
                total.write_fields(out)?;
                writeln!(out)?;
                if shown {
                    continue;
                }
                let (transitions, ejections) = listener.health.history(index);
                writeln!(
                    out,
                    "proxy_health pool={} backend={} {}={} {}={transitions} {}={ejections}",
                    listener.pool,
                    backend.address,
                    BACKEND_UP.stats_name,
                    u64::from(listener.health.is_up(index)),
                    BACKEND_TRANSITIONS.stats_name,
                    BACKEND_EJECTIONS.stats_name,
                )?;
            }
        }
        Ok(())
    }
}
