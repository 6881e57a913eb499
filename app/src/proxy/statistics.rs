//! The proxy's counters: one set per core, written only by that core (a plain load and store, no locked instruction), read by whoever reports them.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use unisock_kernel::sync::CachePadded;

/// A counter with one writer.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn increment(&self) {
        self.add(1);
    }

    pub fn add(&self, amount: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(amount), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! proxy_counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// One core's proxy counters.
        #[derive(Default)]
        pub struct ProxyCoreCounters {
            $($(#[$doc])* pub $name: Counter,)*
        }

        impl ProxyCoreCounters {
            /// `name=value` pairs, separated by spaces.
            fn write_fields(&self, out: &mut impl Write) -> fmt::Result {
                let mut first = true;
                $(
                    if !first {
                        out.write_char(' ')?;
                    }
                    first = false;
                    write!(out, "{}={}", stringify!($name), self.$name.get())?;
                )*
                let _ = first;
                Ok(())
            }

            fn counters(&self) -> [&Counter; { [$(stringify!($name)),*].len() }] {
                [$(&self.$name),*]
            }
        }
    };
}

proxy_counters! {
    /// Client connections accepted.
    client_connections,
    /// Requests whose head was read and accepted.
    requests,
    responses_1xx,
    responses_2xx,
    responses_3xx,
    responses_4xx,
    responses_5xx,
    /// Requests refused before any backend saw them (400, 405, 413, 414, 431, 501).
    rejected_requests,
    /// 502: a backend refused, reset, or answered something that is not HTTP.
    backend_failures,
    /// 503: no backend available.
    no_backend,
    /// 504: a backend did not connect or answer in time.
    backend_timeouts,
    /// New backend connections opened.
    backend_connects,
    /// Requests sent on a pooled keep-alive connection.
    backend_reuses,
    /// Attempts on another backend (or a new connection) after a failure.
    retries,
    /// Responses cut off because the backend closed, reset or stalled mid-body: the client
    /// connection is closed without completing the message.
    truncated_responses,
    /// Client connections that ended mid-request (closed, reset, timed out).
    client_aborts,
    /// Upgrade (101) tunnels.
    tunnels,
    /// Active health check transitions published by this core.
    health_transitions,
    /// Body bytes relayed client to backend, and backend to client.
    request_body_bytes,
    response_body_bytes,
}

/// Every core's counters.
pub struct ProxyStatistics {
    cores: Vec<CachePadded<ProxyCoreCounters>>,
}

impl ProxyStatistics {
    pub fn new(cores: usize) -> ProxyStatistics {
        ProxyStatistics {
            cores: (0..cores.max(1))
                .map(|_| CachePadded::new(ProxyCoreCounters::default()))
                .collect(),
        }
    }

    /// Core `index`'s counters (the last core's for an index out of range).
    pub fn core(&self, index: usize) -> &ProxyCoreCounters {
        &self.cores[index.min(self.cores.len() - 1)]
    }

    /// One line per core, `proxy core=<i> name=value ...`, then a total line.
    pub fn write_report(&self, out: &mut impl Write) -> fmt::Result {
        let total = ProxyCoreCounters::default();
        for (index, core) in self.cores.iter().enumerate() {
            write!(out, "proxy core={index} ")?;
            core.write_fields(out)?;
            writeln!(out)?;
            for (sum, counter) in total.counters().iter().zip(core.counters()) {
                sum.add(counter.get());
            }
        }
        write!(out, "proxy core=total ")?;
        total.write_fields(out)?;
        writeln!(out)
    }
}
