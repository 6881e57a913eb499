//! Backends found by name (issue 24): one task per named backend entry, on the core that owns it, resolves the name at its TTL (floor and ceiling from the resolver) and publishes a pool whose membership changed through the control board, exactly as `PUT /config` does; a resolver that stops answering leaves the last good answer in force, said on the console and in `/metrics`.
//!
//! Publishing a new configuration is the whole of a membership change: every core switches at
//! a loop boundary, requests in flight finish with the backends they started with (a removed
//! address is drained, not cut), and the health of the addresses that stay is carried over
//! (`AppliedConfiguration::next`).

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::net::SocketAddrV4;
use core::time::Duration;

use spin::Mutex;
use unisock_kernel::executor::Handle;
use unisock_kernel::metrics::{Exposition, Metric, MetricKind};
use unisock_kernel::socket::SharedUdpLayer;
use unisock_kernel::time::Instant;

use super::ControlBoard;
use super::core_proxy::CoreProxy;
use crate::config::Configuration;
use crate::dns::resolver::{QueryIds, RETRY_AFTER_FAILURE};
use crate::dns::{Name, RecordType, ResolveError, Resolver, ResolverConfig, ResolverCounters};
use crate::proxy::settings::{Backend, MAX_BACKENDS, MAX_WEIGHT, NameLookup, NamedBackend};

/// How often a core looks for named entries it should start resolving (a new configuration).
const FOLLOW_PERIOD: Duration = Duration::from_millis(250);
/// How often a waiting entry looks whether a configuration removed it (its state then leaves
/// `/metrics` within this, not at its TTL's end).
const PRESENCE_PERIOD: Duration = Duration::from_secs(1);
/// How long a publication waits when a `PUT /config` is being applied.
const CHANGE_BUSY_WAIT: Duration = Duration::from_millis(50);
/// The longest one resolution of a named entry may take, the SRV targets' own lookups
/// included: each lookup may take servers x 2 attempts x 2 s (and a retry over TCP), and the
/// targets are looked up one after another. Past it the resolution counts as failed (the last
/// good answer stays), as Envoy bounds a whole DNS resolution with its `dns_resolution_timeout`.
const RESOLUTION_DEADLINE: Duration = Duration::from_secs(30);

/// One named entry of one pool: what the board shows about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameState {
    pub pool: String,
    /// The entry as written (`web.example:9001`, `_http._tcp.example`).
    pub name: String,
    /// Addresses of the answer in force.
    pub addresses: u64,
    /// The last resolution failed and an older answer is kept.
    pub serving_stale: bool,
    /// Resolutions that changed the pool's membership.
    pub changed: u64,
    /// Resolutions that confirmed the answer in force.
    pub unchanged: u64,
    /// Resolutions that failed (no server answered, NXDOMAIN, no address).
    pub failed: u64,
    /// When the entry is next resolved (its task survives reconfiguration; a new one waits).
    pub next_resolution: Option<Instant>,
}

/// The named entries' states and each core's resolver counters, for `/metrics`.
#[derive(Default)]
pub struct Discovery {
    names: Mutex<Vec<NameState>>,
    resolver_counters: Mutex<Vec<ResolverCounters>>,
}

impl Discovery {
    pub fn new(cores: usize) -> Discovery {
        Discovery {
            names: Mutex::new(Vec::new()),
            resolver_counters: Mutex::new(alloc::vec![ResolverCounters::default(); cores]),
        }
    }

    /// The state of `name` in `pool` (a copy).
    pub fn name(&self, pool: &str, name: &str) -> Option<NameState> {
        self.names
            .lock()
            .iter()
            .find(|state| state.pool == pool && state.name == name)
            .cloned()
    }

    pub fn names(&self) -> Vec<NameState> {
        self.names.lock().clone()
    }

    fn update(&self, pool: &str, name: &str, change: impl FnOnce(&mut NameState)) {
        let mut names = self.names.lock();
        let position = match names
            .iter()
            .position(|state| state.pool == pool && state.name == name)
        {
            Some(position) => position,
            None => {
                names.push(NameState {
                    pool: pool.into(),
                    name: name.into(),
                    ..NameState::default()
                });
                names.len() - 1
            }
        };
        change(&mut names[position]);
    }

    fn forget(&self, pool: &str, name: &str) {
        self.names
            .lock()
            .retain(|state| state.pool != pool || state.name != name);
    }

    fn set_resolver_counters(&self, core: usize, counters: ResolverCounters) {
        if let Some(slot) = self.resolver_counters.lock().get_mut(core) {
            *slot = counters;
        }
    }

    /// Every core's resolver counters added up.
    pub fn resolver_counters(&self) -> ResolverCounters {
        let mut total = ResolverCounters::default();
        for counters in self.resolver_counters.lock().iter() {
            add_counters(&mut total, counters);
        }
        total
    }

    pub fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let names = self.names();
        for metric in &NAME_METRICS {
            out.family(metric)?;
            for state in &names {
                let labels: [(&'static str, &dyn fmt::Display); 2] =
                    [("pool", &state.pool), ("name", &state.name)];
                match metric.stats_name {
                    "resolutions" => {
                        for (outcome, value) in [
                            ("changed", state.changed),
                            ("unchanged", state.unchanged),
                            ("failed", state.failed),
                        ] {
                            out.sample(
                                metric,
                                &[labels[0], labels[1], ("outcome", &outcome)],
                                value,
                            )?;
                        }
                    }
                    "addresses" => out.sample(metric, &labels, state.addresses)?,
                    _ => out.sample(metric, &labels, u64::from(state.serving_stale))?,
                }
            }
        }
        let counters = self.resolver_counters();
        for (metric, value) in RESOLVER_METRICS.iter().zip(counter_values(&counters)) {
            out.family(metric)?;
            out.sample(metric, &[], value)?;
        }
        Ok(())
    }

    /// `dns_name pool= name= addresses= stale= changed= unchanged= failed=` lines and one
    /// `dns_resolver ...` line.
    pub fn write_stats(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        for state in self.names() {
            writeln!(
                out,
                "dns_name pool={} name={} addresses={} serving_stale={} resolutions_changed={} \
                 resolutions_unchanged={} resolutions_failed={}",
                state.pool,
                state.name,
                state.addresses,
                u64::from(state.serving_stale),
                state.changed,
                state.unchanged,
                state.failed
            )?;
        }
        write!(out, "dns_resolver")?;
        let counters = self.resolver_counters();
        for (metric, value) in RESOLVER_METRICS.iter().zip(counter_values(&counters)) {
            write!(out, " {}={value}", metric.stats_name)?;
        }
        writeln!(out)
    }
}

fn counter_values(counters: &ResolverCounters) -> [u64; 11] {
    [
        counters.queries_sent,
        counters.answers_accepted,
        counters.mismatched_ids,
        counters.wrong_questions,
        counters.malformed_answers,
        counters.truncated_retried_over_tcp,
        counters.tcp_failures,
        counters.timeouts,
        counters.unreachable_servers,
        counters.server_failures,
        counters.nonexistent_names,
    ]
}

fn add_counters(total: &mut ResolverCounters, more: &ResolverCounters) {
    total.queries_sent += more.queries_sent;
    total.answers_accepted += more.answers_accepted;
    total.mismatched_ids += more.mismatched_ids;
    total.wrong_questions += more.wrong_questions;
    total.malformed_answers += more.malformed_answers;
    total.truncated_retried_over_tcp += more.truncated_retried_over_tcp;
    total.tcp_failures += more.tcp_failures;
    total.timeouts += more.timeouts;
    total.unreachable_servers += more.unreachable_servers;
    total.server_failures += more.server_failures;
    total.nonexistent_names += more.nonexistent_names;
}

/// Per named backend entry (labels `pool`, `name`).
pub const NAME_METRICS: [Metric; 3] = [
    Metric::new(
        "unisock_dns_resolutions_total",
        "resolutions",
        MetricKind::Counter,
        "Resolutions of a backend name by outcome: changed (the pool's membership changed), \
         unchanged, failed (the last good answer was kept).",
    )
    .with_labels(&["pool", "name", "outcome"]),
    Metric::new(
        "unisock_dns_addresses",
        "addresses",
        MetricKind::Gauge,
        "Addresses in the backend name's answer in force (0 until the first answer), \
         counting those another entry already put in the pool.",
    )
    .with_labels(&["pool", "name"]),
    Metric::new(
        "unisock_dns_serving_stale",
        "serving_stale",
        MetricKind::Gauge,
        "1 while the last resolution of the name failed and an older answer is kept.",
    )
    .with_labels(&["pool", "name"]),
];

/// The stub resolver's counters, every core's added up (no label).
pub const RESOLVER_METRICS: [Metric; 11] = [
    Metric::new(
        "unisock_dns_queries_total",
        "queries_sent",
        MetricKind::Counter,
        "DNS queries sent over UDP.",
    ),
    Metric::new(
        "unisock_dns_answers_accepted_total",
        "answers_accepted",
        MetricKind::Counter,
        "DNS answers accepted.",
    ),
    Metric::new(
        "unisock_dns_mismatched_ids_total",
        "mismatched_ids",
        MetricKind::Counter,
        "DNS answers dropped: their id was not the query's (late answers, forgeries).",
    ),
    Metric::new(
        "unisock_dns_wrong_questions_total",
        "wrong_questions",
        MetricKind::Counter,
        "DNS answers dropped: the query's id but another question.",
    ),
    Metric::new(
        "unisock_dns_malformed_answers_total",
        "malformed_answers",
        MetricKind::Counter,
        "DNS answers dropped as malformed.",
    ),
    Metric::new(
        "unisock_dns_truncated_retried_over_tcp_total",
        "truncated_retried_over_tcp",
        MetricKind::Counter,
        "Truncated DNS answers asked again over TCP.",
    ),
    Metric::new(
        "unisock_dns_tcp_failures_total",
        "tcp_failures",
        MetricKind::Counter,
        "DNS retries over TCP that failed.",
    ),
    Metric::new(
        "unisock_dns_timeouts_total",
        "timeouts",
        MetricKind::Counter,
        "DNS attempts that heard no acceptable answer in time.",
    ),
    Metric::new(
        "unisock_dns_unreachable_servers_total",
        "unreachable_servers",
        MetricKind::Counter,
        "DNS servers found unreachable (port closed, socket failed).",
    ),
    Metric::new(
        "unisock_dns_server_failures_total",
        "server_failures",
        MetricKind::Counter,
        "DNS answers with SERVFAIL, REFUSED or another failure code.",
    ),
    Metric::new(
        "unisock_dns_nonexistent_names_total",
        "nonexistent_names",
        MetricKind::Counter,
        "DNS answers saying the name does not exist (NXDOMAIN).",
    ),
];

/// Identifies a named entry across configurations: its pool and the entry as written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntryKey {
    pool: String,
    name: String,
}

/// The named entry `key` in `configuration`: (pool index, entry index, the entry).
fn find_entry<'c>(
    configuration: &'c Configuration,
    key: &EntryKey,
) -> Option<(usize, usize, &'c NamedBackend)> {
    let pool_index = configuration.pool_index(&key.pool)?;
    let pool = &configuration.pools[pool_index];
    let (index, named) = pool
        .settings
        .named_backends
        .iter()
        .enumerate()
        .find(|(_, named)| named.text == key.name)?;
    Some((pool_index, index, named))
}

/// Every named entry of `configuration`, pools in order.
fn entry_keys(configuration: &Configuration) -> impl Iterator<Item = EntryKey> + '_ {
    configuration.pools.iter().flat_map(|pool| {
        pool.settings.named_backends.iter().map(|named| EntryKey {
            pool: pool.name.clone(),
            name: named.text.clone(),
        })
    })
}

/// The core that resolves `key` in `configuration`: the `n`th named entry's is core
/// `n mod cores`, as health checks are spread.
fn owner_of(configuration: &Configuration, key: &EntryKey, cores: usize) -> Option<usize> {
    entry_keys(configuration)
        .position(|other| other == *key)
        .map(|position| position % cores.max(1))
}

/// This core's resolver (one for all its names, rebuilt when the resolvers change) and the
/// counters of the ones it replaced.
struct CoreResolver {
    servers: Vec<SocketAddrV4>,
    resolver: Rc<Resolver>,
    earlier: ResolverCounters,
}

/// Says one whole line (without its `\n`) to the operator, however long the console takes:
/// these lines are rare (a name starts or stops serving a stale answer) and off the data
/// path, unlike the access log's, which go through a core's ring a few bytes at a time.
pub type NoticeLine = Rc<dyn Fn(&str)>;

/// What one core runs for the names it owns.
struct Follower {
    proxy: Rc<CoreProxy>,
    udp: SharedUdpLayer,
    tcp: unisock_kernel::socket::SharedTcpLayer,
    notice: Option<NoticeLine>,
    resolver: RefCell<Option<CoreResolver>>,
    /// The query ids of every resolver this core builds: a rebuilt resolver goes on with the
    /// sequence instead of repeating it from the core's secret (RFC 5452 section 9.2).
    query_ids: Rc<RefCell<QueryIds>>,
    running: RefCell<Vec<EntryKey>>,
}

impl Follower {
    fn board(&self) -> &ControlBoard {
        self.proxy.board()
    }

    fn say(&self, line: &str) {
        if let Some(notice) = &self.notice {
            notice(line.trim_end_matches('\n'));
        }
    }

    /// The resolver for `servers`, rebuilt if they changed.
    fn resolver(&self, servers: &[SocketAddrV4]) -> Rc<Resolver> {
        let mut slot = self.resolver.borrow_mut();
        if let Some(current) = slot.as_ref()
            && current.servers == servers
        {
            return current.resolver.clone();
        }
        let mut earlier = ResolverCounters::default();
        if let Some(old) = slot.as_ref() {
            add_counters(&mut earlier, &old.earlier);
            add_counters(&mut earlier, &old.resolver.counters());
        }
        let resolver = Rc::new(Resolver::with_query_ids(
            self.udp.clone(),
            self.tcp.clone(),
            self.proxy.handle().clone(),
            ResolverConfig::new(servers.to_vec()),
            self.query_ids.clone(),
        ));
        *slot = Some(CoreResolver {
            servers: servers.to_vec(),
            resolver: resolver.clone(),
            earlier,
        });
        resolver
    }

    fn publish_counters(&self) {
        if let Some(current) = self.resolver.borrow().as_ref() {
            let mut counters = current.earlier;
            add_counters(&mut counters, &current.resolver.counters());
            self.board()
                .discovery
                .set_resolver_counters(self.proxy.core_index(), counters);
        }
    }
}

/// Starts resolving, on this core, the named backend entries it owns: the `n`th named entry
/// of the configuration (pools in order) belongs to core `n % cores`, as health checks are
/// spread. `notice` gets a line when a name starts or stops serving a stale answer.
pub fn follow_names(
    proxy: Rc<CoreProxy>,
    udp: SharedUdpLayer,
    tcp: unisock_kernel::socket::SharedTcpLayer,
    notice: Option<NoticeLine>,
) {
    let handle = proxy.handle().clone();
    let query_ids = Rc::new(RefCell::new(QueryIds::from_stack(&tcp)));
    let follower = Rc::new(Follower {
        proxy,
        udp,
        tcp,
        notice,
        resolver: RefCell::new(None),
        query_ids,
        running: RefCell::new(Vec::new()),
    });
    handle.spawn(start_owned_entries(follower));
}

async fn start_owned_entries(follower: Rc<Follower>) {
    let handle = follower.proxy.handle().clone();
    loop {
        let current = follower.board().current();
        let cores = follower.board().core_count().max(1);
        let core = follower.proxy.core_index();
        for (position, key) in entry_keys(&current.configuration).enumerate() {
            if position % cores != core || follower.running.borrow().contains(&key) {
                continue;
            }
            follower.running.borrow_mut().push(key.clone());
            handle.spawn(resolve_entry(follower.clone(), key));
        }
        handle.sleep(FOLLOW_PERIOD).await;
    }
}

/// Why a resolution gave no answer to use.
enum NoAnswer {
    Failed(ResolveError),
    /// The name answered with no address (NODATA, or SRV targets without addresses).
    Empty,
    /// [`RESOLUTION_DEADLINE`] passed.
    OutOfTime,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnswer::Failed(ResolveError::NoServers) => write!(formatter, "no resolver"),
            NoAnswer::Failed(ResolveError::NameDoesNotExist) => {
                write!(formatter, "the name does not exist")
            }
            NoAnswer::Failed(ResolveError::NoServerAnswered) => {
                write!(formatter, "no resolver answered")
            }
            NoAnswer::Empty => write!(formatter, "the answer has no address"),
            NoAnswer::OutOfTime => write!(
                formatter,
                "the resolution took longer than {} s",
                RESOLUTION_DEADLINE.as_secs()
            ),
        }
    }
}

/// The backends `named` stands for now, and when to ask again; within [`RESOLUTION_DEADLINE`].
async fn resolve(
    resolver: &Resolver,
    handle: &Handle,
    named: &NamedBackend,
) -> Result<(Vec<Backend>, Duration), NoAnswer> {
    let deadline = handle.now() + RESOLUTION_DEADLINE;
    // One lookup within what is left of the deadline (none started once it has passed).
    let lookup = async |name: &Name, record_type: RecordType| {
        let left = deadline.saturating_since(handle.now());
        if left.is_zero() {
            return Err(NoAnswer::OutOfTime);
        }
        match handle
            .timeout(left, resolver.resolve(name, record_type))
            .await
        {
            Ok(outcome) => outcome.map_err(NoAnswer::Failed),
            Err(_) => Err(NoAnswer::OutOfTime),
        }
    };
    let mut backends = Vec::new();
    let refresh = match &named.lookup {
        NameLookup::Address { host, port } => {
            let name = Name::from_dotted(host).map_err(|_| NoAnswer::Empty)?;
            let resolution = lookup(&name, RecordType::A).await?;
            for record in &resolution.answer.addresses {
                backends.push(Backend {
                    address: SocketAddrV4::new(record.address, *port),
                    weight: named.weight,
                });
            }
            resolution.refresh_after
        }
        NameLookup::Service { name } => {
            let name = Name::from_dotted(name).map_err(|_| NoAnswer::Empty)?;
            let resolution = lookup(&name, RecordType::Srv).await?;
            let mut refresh = resolution.refresh_after;
            // RFC 2782: the lowest priority is used; the others are its fallbacks, which a
            // pool's own health and ejection already stand in for (Envoy's STRICT_DNS SRV
            // resolution uses every record; HAProxy's `server-template` the lowest priority).
            let lowest = resolution
                .answer
                .services
                .iter()
                .filter(|service| !service.target.is_root())
                .map(|service| service.priority)
                .min();
            let mut services: Vec<_> = resolution
                .answer
                .services
                .iter()
                .filter(|service| Some(service.priority) == lowest && !service.target.is_root())
                .collect();
            // A pool holds at most MAX_BACKENDS, so no more targets are looked up (an answer
            // over TCP may list hundreds); sorted first so that a server rotating its records
            // does not change which ones.
            services.sort_by(|one, other| {
                (one.target.wire(), one.port).cmp(&(other.target.wire(), other.port))
            });
            services.truncate(MAX_BACKENDS);
            for service in services {
                // Weight 0 is "very small chance" (RFC 2782): the smallest weight here.
                let weight = u32::from(service.weight).clamp(1, MAX_WEIGHT);
                let addresses: Vec<_> = if service.target_addresses.is_empty() {
                    match lookup(&service.target, RecordType::A).await {
                        Ok(target) => {
                            refresh = refresh.min(target.refresh_after);
                            target
                                .answer
                                .addresses
                                .iter()
                                .map(|record| record.address)
                                .collect()
                        }
                        // A target that does not resolve fails the whole resolution when
                        // there is a last good answer to keep: its addresses would otherwise
                        // leave the pool and come back at the next good lookup (flapping).
                        // Before any answer, the targets that resolved are better than none.
                        Err(reason) if !named.resolved.is_empty() => return Err(reason),
                        Err(_) => Vec::new(),
                    }
                } else {
                    service
                        .target_addresses
                        .iter()
                        .map(|record| record.address)
                        .collect()
                };
                for address in addresses {
                    backends.push(Backend {
                        address: SocketAddrV4::new(address, service.port),
                        weight,
                    });
                }
            }
            refresh
        }
    };
    // Servers rotate the order of their records: sorted, an answer that only moved records
    // around is the same membership (and publishes nothing).
    backends.sort_by_key(|backend| (*backend.address.ip(), backend.address.port()));
    backends.dedup_by_key(|backend| backend.address);
    if backends.is_empty() {
        return Err(NoAnswer::Empty);
    }
    Ok((backends, refresh))
}

/// Resolves one named entry until a configuration no longer has it.
async fn resolve_entry(follower: Rc<Follower>, key: EntryKey) {
    let handle = follower.proxy.handle().clone();
    let discovery = &follower.board().discovery;
    // A task started again on another generation waits for the answer in force to expire.
    let mut next_resolution = discovery
        .name(&key.pool, &key.name)
        .and_then(|state| state.next_resolution);
    loop {
        // Until the next resolution is due, unless a configuration removes the entry first.
        let (named, current) = loop {
            let current = follower.board().current();
            let Some((_, _, named)) = find_entry(&current.configuration, &key) else {
                follower
                    .running
                    .borrow_mut()
                    .retain(|running| *running != key);
                discovery.forget(&key.pool, &key.name);
                return;
            };
            let named = named.clone();
            // A new configuration can move the entry to another core: that core's task goes on
            // from the state on the board (when to resolve next, the answer in force).
            let cores = follower.board().core_count();
            if owner_of(&current.configuration, &key, cores) != Some(follower.proxy.core_index()) {
                follower
                    .running
                    .borrow_mut()
                    .retain(|running| *running != key);
                return;
            }
            let now = handle.now();
            match next_resolution {
                Some(at) if at > now => {
                    drop(current);
                    handle
                        .sleep(at.saturating_since(now).min(PRESENCE_PERIOD))
                        .await;
                }
                _ => break (named, current),
            }
        };
        let resolver = follower.resolver(&current.configuration.dns.resolvers);
        drop(current);
        let outcome = resolve(&resolver, &handle, &named).await;
        follower.publish_counters();
        let next = match outcome {
            Ok((backends, refresh)) => {
                let changed = publish(&follower, &key, backends.clone()).await;
                let was_stale = discovery
                    .name(&key.pool, &key.name)
                    .is_some_and(|state| state.serving_stale);
                if was_stale {
                    follower.say(&format!(
                        "dns: pool {}: {}: answered again ({} addresses)\n",
                        key.pool,
                        key.name,
                        backends.len()
                    ));
                }
                discovery.update(&key.pool, &key.name, |state| {
                    state.addresses = backends.len() as u64;
                    state.serving_stale = false;
                    if changed {
                        state.changed += 1;
                    } else {
                        state.unchanged += 1;
                    }
                });
                refresh
            }
            Err(reason) => {
                let kept = named.resolved.len();
                let was_stale = discovery
                    .name(&key.pool, &key.name)
                    .is_some_and(|state| state.serving_stale);
                if !was_stale {
                    follower.say(&format!(
                        "dns: pool {}: {}: {reason}; keeping the last good answer ({kept} \
                         addresses)\n",
                        key.pool, key.name
                    ));
                }
                discovery.update(&key.pool, &key.name, |state| {
                    state.failed += 1;
                    state.addresses = kept as u64;
                    // Stale only when there is an answer to keep.
                    state.serving_stale = kept > 0;
                });
                RETRY_AFTER_FAILURE
            }
        };
        let at = handle.now() + next;
        discovery.update(&key.pool, &key.name, |state| {
            state.next_resolution = Some(at)
        });
        next_resolution = Some(at);
    }
}

/// Puts `backends` in force for `key` as a new configuration (the `PUT /config` path: one
/// publication, health carried over for the addresses that stay); whether the pool's
/// membership changed (an answer that only changed addresses another entry also has is
/// published, to be kept, but changes no membership).
async fn publish(follower: &Follower, key: &EntryKey, backends: Vec<Backend>) -> bool {
    let board = follower.board();
    loop {
        if let Some(_change) = board.change.try_lock() {
            let current = board.current();
            let mut configuration = current.configuration.clone();
            let Some((pool_index, index, _)) = find_entry(&configuration, key) else {
                return false;
            };
            let settings = &mut configuration.pools[pool_index].settings;
            let before = settings.clone();
            settings.set_resolved(index, backends);
            if *settings == before {
                return false;
            }
            let changed = settings.backends != before.backends;
            board.publish(configuration);
            return changed;
        }
        // A `PUT /config` is being applied: its result is the base for this change.
        follower.proxy.handle().sleep(CHANGE_BUSY_WAIT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(backends: &str) -> Configuration {
        Configuration::from_sources(
            None,
            &format!("proxy=80 backends={backends} resolvers=10.0.0.53"),
            &[],
        )
        .unwrap()
    }

    fn key(name: &str) -> EntryKey {
        EntryKey {
            pool: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn named_entries_are_spread_over_the_cores_and_move_when_the_list_changes() {
        let before = configuration("10.0.0.2:80,a.example:80,b.example:80,_http._tcp.example");
        assert_eq!(owner_of(&before, &key("a.example:80"), 2), Some(0));
        assert_eq!(owner_of(&before, &key("b.example:80"), 2), Some(1));
        assert_eq!(owner_of(&before, &key("_http._tcp.example"), 2), Some(0));
        assert_eq!(owner_of(&before, &key("c.example:80"), 2), None);
        // `a` goes: `b` moves to core 0, whose task takes it over from the board's state.
        let after = configuration("b.example:80,_http._tcp.example");
        assert_eq!(owner_of(&after, &key("b.example:80"), 2), Some(0));
        assert_eq!(owner_of(&after, &key("_http._tcp.example"), 2), Some(1));
    }
}
