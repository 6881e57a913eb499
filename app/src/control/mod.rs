//! The control plane shared by every core: the configuration in force and its generation, which cores the operator drained, and the mailbox through which an admin request asks every core for its sockets. Each core's `CoreProxy` reads it at its own loop boundaries; no core ever touches another's state.

mod core_proxy;
mod discovery;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;
use unisock_kernel::metrics::{Exposition, MetricSource};
use unisock_kernel::net::tcp::{SocketHandle, SocketInfo};
use unisock_kernel::sync::CachePadded;

pub use core_proxy::{ConsoleWriter, CoreProxy, CoreProxyStart};
pub use discovery::{
    Discovery, NAME_METRICS, NameState, NoticeLine, RESOLVER_METRICS, follow_names,
};

use crate::config::{Configuration, PoolConfig};
use crate::proxy::{CoreStates, HealthBoard, ListenerMetrics, ProxyMetrics, ProxyStatistics};

/// A configuration as the cores run it: the settings plus the state that outlives one core's
/// view of it (each pool's health board, shared by every core).
pub struct AppliedConfiguration {
    pub generation: u64,
    pub configuration: Configuration,
    /// By pool index in `configuration.pools`.
    pub health: Vec<Arc<HealthBoard>>,
    /// The proxy's counters, by listener index in `configuration.listeners`.
    pub statistics: Vec<Arc<ProxyStatistics>>,
    cores: usize,
}

impl AppliedConfiguration {
    /// The first generation: every backend up.
    pub fn first(configuration: Configuration, cores: usize) -> AppliedConfiguration {
        let health = configuration
            .pools
            .iter()
            .map(|pool| Arc::new(HealthBoard::new(pool.settings.backends.len())))
            .collect();
        let statistics = (0..configuration.listeners.len())
            .map(|index| {
                Arc::new(ProxyStatistics::new(
                    cores,
                    backend_count(&configuration, index),
                ))
            })
            .collect();
        AppliedConfiguration {
            generation: 1,
            configuration,
            health,
            statistics,
            cores,
        }
    }

    /// The reports' view of every listener.
    pub fn metrics(&self) -> ProxyMetrics<'_> {
        ProxyMetrics {
            listeners: self
                .configuration
                .listeners
                .iter()
                .zip(&self.statistics)
                .filter_map(|(listener, statistics)| {
                    let index = self.configuration.pool_index(&listener.pool)?;
                    Some(ListenerMetrics {
                        port: listener.port,
                        pool: &listener.pool,
                        backends: &self.configuration.pools[index].settings.backends,
                        health: self.health.get(index)?,
                        statistics,
                    })
                })
                .collect(),
        }
    }

    /// The next generation: a pool whose backends did not change keeps its health board (and
    /// with it the checks' verdicts and the operator's drains); a changed one gets a new board
    /// that carries over the state of the backends it still has.
    pub fn next(&self, configuration: Configuration) -> AppliedConfiguration {
        let health = configuration
            .pools
            .iter()
            .map(|pool| match self.configuration.pool_index(&pool.name) {
                Some(old_index) => {
                    let old = &self.configuration.pools[old_index];
                    let board = &self.health[old_index];
                    if same_backends(old, pool) {
                        board.clone()
                    } else {
                        let fresh = Arc::new(HealthBoard::new(pool.settings.backends.len()));
                        fresh.carry_over(
                            board,
                            pool.settings.backends.iter().enumerate().filter_map(
                                |(here, backend)| {
                                    old.settings
                                        .backends
                                        .iter()
                                        .position(|known| known.address == backend.address)
                                        .map(|there| (here, there))
                                },
                            ),
                        );
                        fresh
                    }
                }
                None => Arc::new(HealthBoard::new(pool.settings.backends.len())),
            })
            .collect();
        // A listener keeps its counters across changes unless its pool's backend list changed
        // (the per-backend counters are kept by position in that list).
        let statistics = configuration
            .listeners
            .iter()
            .enumerate()
            .map(|(index, listener)| {
                let kept = self
                    .configuration
                    .listeners
                    .iter()
                    .zip(&self.statistics)
                    .find(|(old, _)| {
                        old.port == listener.port
                            && old.pool == listener.pool
                            && match (
                                self.configuration.pool(&old.pool),
                                configuration.pool(&listener.pool),
                            ) {
                                (Some(old_pool), Some(new_pool)) => {
                                    same_backends(old_pool, new_pool)
                                }
                                _ => false,
                            }
                    });
                match kept {
                    Some((_, statistics)) => statistics.clone(),
                    None => Arc::new(ProxyStatistics::new(
                        self.cores,
                        backend_count(&configuration, index),
                    )),
                }
            })
            .collect();
        AppliedConfiguration {
            generation: self.generation + 1,
            configuration,
            health,
            statistics,
            cores: self.cores,
        }
    }
}

fn backend_count(configuration: &Configuration, listener: usize) -> usize {
    configuration
        .listeners
        .get(listener)
        .and_then(|listener| configuration.pool(&listener.pool))
        .map_or(0, |pool| pool.settings.backends.len())
}

fn same_backends(old: &PoolConfig, new: &PoolConfig) -> bool {
    old.settings.backends.len() == new.settings.backends.len()
        && old
            .settings
            .backends
            .iter()
            .zip(&new.settings.backends)
            .all(|(a, b)| a.address == b.address)
}

/// One core's answer to a socket listing request.
#[derive(Clone, Default)]
pub struct CoreSockets {
    pub request: u64,
    pub sockets: Vec<SocketInfo>,
    /// (client, backend) legs of the proxy's connections in progress.
    pub legs: Vec<(SocketHandle, SocketHandle)>,
}

/// What every core shares about the application's control.
pub struct ControlBoard {
    current: Mutex<Arc<AppliedConfiguration>>,
    generation: AtomicU64,
    /// The generation each core runs.
    applied: Vec<CachePadded<AtomicU64>>,
    /// The operator's drain of each core (`POST /cores/<n>/drain`).
    drained: Vec<CachePadded<AtomicBool>>,
    socket_request: AtomicU64,
    sockets: Vec<Mutex<CoreSockets>>,
    /// Admin requests refused (address not allowed, missing or wrong token).
    pub admin_refused: AtomicU64,
    /// Each core's client connections, drain and access log (each core writes its own).
    pub core_states: Arc<CoreStates>,
    /// Other ports the appliance serves (responder, sink, source): no listener may take them.
    pub reserved_ports: Vec<u16>,
    /// Serialises `PUT /config` (two at once from two cores would each build on the same
    /// generation).
    pub change: Mutex<()>,
    /// The backends found by name: each entry's state and the resolvers' counters.
    pub discovery: Discovery,
}

impl ControlBoard {
    pub fn new(configuration: Configuration, cores: usize, reserved_ports: Vec<u16>) -> Arc<Self> {
        let cores = cores.max(1);
        Arc::new(ControlBoard {
            current: Mutex::new(Arc::new(AppliedConfiguration::first(configuration, cores))),
            generation: AtomicU64::new(1),
            applied: (0..cores)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            drained: (0..cores)
                .map(|_| CachePadded::new(AtomicBool::new(false)))
                .collect(),
            socket_request: AtomicU64::new(0),
            sockets: (0..cores)
                .map(|_| Mutex::new(CoreSockets::default()))
                .collect(),
            admin_refused: AtomicU64::new(0),
            core_states: Arc::new(CoreStates::new(cores)),
            reserved_ports,
            change: Mutex::new(()),
            discovery: Discovery::new(cores),
        })
    }

    pub fn core_count(&self) -> usize {
        self.applied.len()
    }

    pub fn current(&self) -> Arc<AppliedConfiguration> {
        self.current.lock().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `configuration` in force as the next generation; each core switches to it at its
    /// next loop boundary.
    pub fn publish(&self, configuration: Configuration) -> u64 {
        let mut current = self.current.lock();
        let next = Arc::new(current.next(configuration));
        let generation = next.generation;
        *current = next;
        self.generation.store(generation, Ordering::Release);
        generation
    }

    pub fn record_applied(&self, core: usize, generation: u64) {
        if let Some(applied) = self.applied.get(core) {
            applied.store(generation, Ordering::Release);
        }
    }

    /// How many cores run `generation` (or a later one).
    pub fn cores_applied(&self, generation: u64) -> usize {
        self.applied
            .iter()
            .filter(|applied| applied.load(Ordering::Acquire) >= generation)
            .count()
    }

    pub fn set_drained(&self, core: usize, drained: bool) -> bool {
        match self.drained.get(core) {
            Some(flag) => {
                flag.store(drained, Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub fn is_drained(&self, core: usize) -> bool {
        self.drained
            .get(core)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// Asks every core for its sockets; the answers carry the returned request number.
    pub fn request_sockets(&self) -> u64 {
        self.socket_request.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn socket_request(&self) -> u64 {
        self.socket_request.load(Ordering::Acquire)
    }

    pub fn answer_sockets(&self, core: usize, answer: CoreSockets) {
        if let Some(slot) = self.sockets.get(core) {
            *slot.lock() = answer;
        }
    }

    /// Every core's answer to `request`, if all have answered it (or a later one).
    pub fn collect_sockets(&self, request: u64) -> Option<Vec<CoreSockets>> {
        let answers: Vec<CoreSockets> = self
            .sockets
            .iter()
            .map(|slot| slot.lock().clone())
            .collect();
        answers
            .iter()
            .all(|answer| answer.request >= request)
            .then_some(answers)
    }

    /// A line for `/stats` about the control plane.
    pub fn write_report(&self, out: &mut String) {
        use core::fmt::Write;
        let drained: Vec<usize> = (0..self.core_count())
            .filter(|&core| self.is_drained(core))
            .collect();
        let _ = writeln!(
            out,
            "control generation={} admin_refused={} drained_cores={:?}",
            self.generation(),
            self.admin_refused.load(Ordering::Relaxed),
            drained
        );
    }
}

/// Each core's client connections, drain state and access-log counts (`proxy_core` lines on
/// `/stats`).
impl MetricSource for ControlBoard {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        self.core_states
            .write_prometheus(|core| self.is_drained(core), out)?;
        self.discovery.write_prometheus(out)
    }

    fn write_stats(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.core_states
            .write_stats(|core| self.is_drained(core), out)?;
        self.discovery.write_stats(out)
    }
}
