//! What happens to sockets between calls: timers re-armed after every event, connections moved to TIME_WAIT or removed, listeners closed, fired timers dispatched.

use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::connection::{Outcome, Owner};
use super::context::TimerKey;
use super::slots::SocketEntry;
use super::time_wait::TimeWaitRecord;
use super::tuple::{FourTuple, HashedTuple};
use super::{SocketError, SocketHandle, TcpLayer};
use crate::time::Instant;

impl TcpLayer {
    pub(super) fn handle(&self, slot: u32, generation: u32) -> SocketHandle {
        SocketHandle {
            core: self.context.core,
            slot,
            generation,
        }
    }

    pub(super) fn connection_total(&self) -> usize {
        self.established.len() + self.half_open.len()
    }

    pub(super) fn connection_slot(&self, handle: SocketHandle) -> Result<u32, SocketError> {
        let slot = self.slots.resolve(self.context.core, handle)?;
        match self.slots.get(slot) {
            Some(SocketEntry::Connection(_)) => Ok(slot),
            _ => Err(SocketError::InvalidOperation),
        }
    }

    /// Whether `connect` may use this 4-tuple: free, or in TIME_WAIT and reusable.
    pub(super) fn tuple_usable_for_connect(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> bool {
        if self.listeners.contains_key(&local.port()) {
            return false;
        }
        let key = self.tuples.hashed(FourTuple { local, remote });
        if self.established.contains(&key) || self.half_open.contains(&key) {
            return false;
        }
        match self.time_wait.get(&key) {
            Some(record) => record.reusable_for_connect(self.context.now),
            None => true,
        }
    }

    /// Takes a 4-tuple for a new active connection, ending its TIME_WAIT if it had one.
    pub(super) fn claim_tuple(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        if !self.tuple_usable_for_connect(local, remote) {
            return false;
        }
        self.take_checked_tuple(local, remote);
        true
    }

    /// The second half of `claim_tuple`, for a tuple `tuple_usable_for_connect` just accepted.
    pub(super) fn take_checked_tuple(&mut self, local: SocketAddrV4, remote: SocketAddrV4) {
        let key = self.tuples.hashed(FourTuple { local, remote });
        if let Some(record) = self.time_wait.remove(&key) {
            self.context
                .wheel
                .cancel(record.expires, TimerKey::TimeWait(key.tuple));
            self.context.counters.time_wait_reuses += 1;
        }
    }

    /// Applies what a connection reported after an event: re-arms its timers, or moves it to
    /// TIME_WAIT, or removes it.
    ///
    /// It runs after every segment and socket call; most of the time the connection
    /// continues and its wheel entry already stands, so that case is inlined and checked
    /// first, and the rest is out of line.
    #[inline]
    pub(super) fn settle(&mut self, slot: u32, outcome: Outcome) {
        if outcome == Outcome::Continue
            && let Some(connection) = self.slots.connection_mut(slot)
            && connection.timers.entry_stands()
        {
            return;
        }
        self.settle_changed(slot, outcome);
    }

    #[inline(never)]
    pub(super) fn settle_changed(&mut self, slot: u32, outcome: Outcome) {
        let generation = self.slots.generation(slot);
        let Some(connection) = self.slots.connection_mut(slot) else {
            return;
        };
        match outcome {
            Outcome::Continue => {
                let key = TimerKey::Connection { slot, generation };
                if let Some(earliest) = connection.timers.earliest()
                    && connection
                        .timers
                        .scheduled
                        .is_none_or(|scheduled| earliest < scheduled)
                {
                    // The later entry it replaces goes, or every request/response cycle of a
                    // keep-alive connection would leave one behind (issue 10, defect 6).
                    if let Some(scheduled) = connection.timers.scheduled {
                        self.context.wheel.cancel(scheduled, key);
                    }
                    connection.timers.scheduled = Some(earliest);
                    self.context.wheel.insert(earliest, key);
                }
            }
            Outcome::TimeWait => {
                let tuple = connection.tuple;
                let now = self.context.now;
                let record = TimeWaitRecord {
                    send_next: connection.send_next(),
                    receive_next: connection.receive_next(),
                    timestamps: connection
                        .timestamps
                        .map(|timestamps| (timestamps.offset, timestamps.recent)),
                    entered: now,
                    expires: now + self.context.config.time_wait,
                    last_ack: None,
                };
                if let Some(scheduled) = connection.timers.scheduled {
                    self.context
                        .wheel
                        .cancel(scheduled, TimerKey::Connection { slot, generation });
                }
                connection.timers = Default::default();
                connection.release_send_buffers(&mut self.context);
                let owner = connection.owner;
                let key = self.tuples.hashed(tuple);
                self.forget_tuple(&key, slot);
                if self.time_wait.len() < self.context.config.max_time_wait {
                    self.time_wait.insert(&key, record);
                    self.context
                        .wheel
                        .insert(record.expires, TimerKey::TimeWait(tuple));
                } else {
                    self.context.counters.time_wait_overflows += 1;
                }
                if owner == Owner::Orphan {
                    self.free_forgotten_connection(slot);
                }
            }
            Outcome::Closed => {
                let tuple = connection.tuple;
                if let Some(scheduled) = connection.timers.scheduled {
                    self.context
                        .wheel
                        .cancel(scheduled, TimerKey::Connection { slot, generation });
                }
                connection.timers = Default::default();
                let owner = connection.owner;
                if connection.error.is_some() {
                    connection.release_buffers(&mut self.context);
                } else {
                    connection.release_send_buffers(&mut self.context);
                }
                self.forget_tuple(&self.tuples.hashed(tuple), slot);
                if owner == Owner::Orphan {
                    self.free_forgotten_connection(slot);
                }
            }
        }
    }

    /// Under memory pressure, resets the orphans that hold data their peer has not taken,
    /// the one closed longest ago first, until the pressure ends. Linux's
    /// `tcp_out_of_resources` resets an orphan when memory is short or orphans are too many
    /// (`tcp_max_orphans`), whichever orphan's timer fires; here the oldest go first, having
    /// waited longest for a reader that does not read. Like Linux, it runs when such an
    /// orphan's retransmission or probe timer fires, so a core without such orphans never
    /// scans its table. There is no cap on the number of orphans (`tcp_max_orphans`): the
    /// connection limit and this reaping bound what they hold.
    pub(super) fn reap_orphans(&mut self) {
        if !self.context.under_memory_pressure() {
            return;
        }
        // One scan, then the oldest first: the table is not walked again for each one.
        let mut orphans: Vec<(Instant, u32)> = self
            .slots
            .iter()
            .filter_map(|(slot, _, entry)| match entry {
                SocketEntry::Connection(connection) => connection
                    .orphan_holding_data_since()
                    .map(|since| (since, slot)),
                _ => None,
            })
            .collect();
        orphans.sort_unstable();
        for (_, slot) in orphans {
            if !self.context.under_memory_pressure() {
                break;
            }
            if let Some(connection) = self.slots.connection_mut(slot) {
                let outcome = connection.reap(&mut self.context);
                self.settle(slot, outcome);
            }
        }
    }

    /// Removes the tuple from the established table if it still points to `slot`.
    pub(super) fn forget_tuple(&mut self, key: &HashedTuple, slot: u32) {
        self.established.remove_if(key, |&stored| stored == slot);
    }

    /// Frees a connection's slot and buffers (its handle becomes stale).
    pub(super) fn free_connection(&mut self, slot: u32) {
        let generation = self.slots.generation(slot);
        if let Some(connection) = self.slots.connection_mut(slot) {
            if let Some(scheduled) = connection.timers.scheduled.take() {
                self.context
                    .wheel
                    .cancel(scheduled, TimerKey::Connection { slot, generation });
            }
            let key = self.tuples.hashed(connection.tuple);
            self.forget_tuple(&key, slot);
        }
        self.free_forgotten_connection(slot);
    }

    /// The last step of `free_connection`, for an orphan that `settle` has just taken out of
    /// the wheel and the established table (hashing and probing again would find nothing).
    fn free_forgotten_connection(&mut self, slot: u32) {
        if let Some(connection) = self.slots.connection_mut(slot) {
            connection.release_buffers(&mut self.context);
        }
        self.slots.remove(slot);
    }

    pub(super) fn close_listener(&mut self, slot: u32) {
        let Some(SocketEntry::Listener(listener)) = self.slots.remove(slot) else {
            return;
        };
        if self.listeners.get(&listener.local.port()) == Some(&slot) {
            self.listeners.remove(&listener.local.port());
        }
        let wheel = &mut self.context.wheel;
        self.half_open.retain(|tuple, half_open| {
            let keep = half_open.listener != slot;
            if !keep {
                wheel.cancel(half_open.deadline, TimerKey::HalfOpen(*tuple));
            }
            keep
        });
        for accepted in listener.accept_queue {
            if let Some(connection) = self.slots.connection_mut(accepted) {
                connection.owner = Owner::Orphan;
                let outcome = connection.abort(&mut self.context);
                self.settle(accepted, outcome);
            }
        }
    }

    pub(super) fn fire_timer(&mut self, key: TimerKey) {
        let now = self.context.now;
        match key {
            TimerKey::Connection { slot, generation } => {
                let Some(SocketEntry::Connection(connection)) =
                    self.slots.get_current_mut(slot, generation)
                else {
                    return;
                };
                // A stale entry: the connection re-armed for another time since.
                if connection
                    .timers
                    .scheduled
                    .is_none_or(|scheduled| scheduled > now)
                {
                    return;
                }
                connection.timers.scheduled = None;
                let orphan_holding_data = connection.orphan_holding_data_since().is_some();
                let outcome = connection.on_timers(&mut self.context);
                self.settle(slot, outcome);
                if orphan_holding_data && self.context.under_memory_pressure() {
                    self.reap_orphans();
                }
            }
            TimerKey::HalfOpen(tuple) => self.on_half_open_timer(tuple),
            TimerKey::TimeWait(tuple) => {
                let key = self.tuples.hashed(tuple);
                self.time_wait
                    .remove_if(&key, |record| record.expires <= now);
                // A retransmitted FIN restarted it: one entry, re-armed here, not one per FIN.
                if let Some(record) = self.time_wait.get(&key) {
                    let expires = record.expires;
                    self.context
                        .wheel
                        .insert(expires, TimerKey::TimeWait(tuple));
                }
            }
        }
    }
}
