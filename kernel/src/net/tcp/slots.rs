//! The socket slots of a layer: what a handle points to, with generations so that a stale handle finds nothing.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::connection::Connection;
use super::listen::Listener;
use super::{CoreId, SocketError, SocketHandle};

/// What lives in a slot.
pub(crate) enum SocketEntry {
    Listener(Listener),
    Connection(Box<Connection>),
}

struct Slot {
    generation: u32,
    entry: Option<SocketEntry>,
}

/// A slab of sockets; freed slots are reused with the next generation.
#[derive(Default)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    /// Stores `entry` and returns its (slot, generation).
    pub(crate) fn insert(&mut self, entry: SocketEntry) -> (u32, u32) {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.entry = Some(entry);
            return (index, slot.generation);
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        (index, 0)
    }

    /// Empties a slot; its next occupant gets a new generation.
    pub(crate) fn remove(&mut self, index: u32) -> Option<SocketEntry> {
        let slot = self.slots.get_mut(index as usize)?;
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        Some(entry)
    }

    pub(crate) fn generation(&self, index: u32) -> u32 {
        self.slots
            .get(index as usize)
            .map_or(0, |slot| slot.generation)
    }

    pub(crate) fn get(&self, index: u32) -> Option<&SocketEntry> {
        self.slots.get(index as usize)?.entry.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut SocketEntry> {
        self.slots.get_mut(index as usize)?.entry.as_mut()
    }

    /// The entry at `index` if its generation is still `generation`.
    pub(crate) fn get_current_mut(
        &mut self,
        index: u32,
        generation: u32,
    ) -> Option<&mut SocketEntry> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_mut()
    }

    pub(crate) fn connection_mut(&mut self, index: u32) -> Option<&mut Connection> {
        match self.get_mut(index) {
            Some(SocketEntry::Connection(connection)) => Some(connection),
            _ => None,
        }
    }

    pub(crate) fn connection(&self, index: u32) -> Option<&Connection> {
        match self.get(index) {
            Some(SocketEntry::Connection(connection)) => Some(connection),
            _ => None,
        }
    }

    pub(crate) fn listener_mut(&mut self, index: u32) -> Option<&mut Listener> {
        match self.get_mut(index) {
            Some(SocketEntry::Listener(listener)) => Some(listener),
            _ => None,
        }
    }

    /// Checks that `handle` names a live socket held by the application, and returns its slot.
    pub(crate) fn resolve(&self, core: CoreId, handle: SocketHandle) -> Result<u32, SocketError> {
        if handle.core != core {
            return Err(SocketError::InvalidHandle);
        }
        let slot = self
            .slots
            .get(handle.slot as usize)
            .ok_or(SocketError::InvalidHandle)?;
        if slot.generation != handle.generation {
            return Err(SocketError::InvalidHandle);
        }
        match &slot.entry {
            Some(SocketEntry::Listener(_)) => Ok(handle.slot),
            Some(SocketEntry::Connection(connection))
                if connection.owner == super::connection::Owner::Application =>
            {
                Ok(handle.slot)
            }
            _ => Err(SocketError::InvalidHandle),
        }
    }

    /// The connection `handle` names, if it is live and held by the application: in one
    /// look-up the answer of `resolve` followed by `connection_mut` (a listener's handle is
    /// `InvalidOperation`). For the socket calls that run per request.
    pub(crate) fn application_connection_mut(
        &mut self,
        core: CoreId,
        handle: SocketHandle,
    ) -> Result<&mut Connection, SocketError> {
        if handle.core != core {
            return Err(SocketError::InvalidHandle);
        }
        let slot = self
            .slots
            .get_mut(handle.slot as usize)
            .ok_or(SocketError::InvalidHandle)?;
        if slot.generation != handle.generation {
            return Err(SocketError::InvalidHandle);
        }
        match &mut slot.entry {
            Some(SocketEntry::Listener(_)) => Err(SocketError::InvalidOperation),
            Some(SocketEntry::Connection(connection))
                if connection.owner == super::connection::Owner::Application =>
            {
                Ok(connection)
            }
            _ => Err(SocketError::InvalidHandle),
        }
    }

    /// Every occupied slot with its generation.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32, &SocketEntry)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.entry
                .as_ref()
                .map(|entry| (index as u32, slot.generation, entry))
        })
    }
}
