//! Per-core single-threaded async executor: tasks, wakers, timers.
//!
//! Each core runs one [`Executor`]; its loop calls [`Executor::run_ready`] and
//! [`Executor::fire_timers`] with the current time and, when [`Executor::prepare_to_halt`]
//! agrees, may halt until [`Executor::next_deadline`] or until a remote wake notifies it.
//! Tasks reach the executor through a [`Handle`] (spawn, sleep, timeout) they are given when
//! created; wakers are plain `core::task::Waker`s, safe to wake from any core.

mod core_executor;
mod ready_queue;
mod sleep;
mod timer_queue;

pub use core_executor::{Executor, Handle, LocalBoxFuture, TaskId};
pub use ready_queue::WakeNotifier;
pub use sleep::{Elapsed, Sleep, Timeout};
