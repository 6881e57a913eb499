//! A core's drain as its client connections see it: whether they should end, and the wake-up of the connections idle between two requests when a drain (or a listener's removal) begins, so that they close at once instead of at their idle timeout.

use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::{Poll, Waker};

use hashbrown::HashMap;

/// One core's drain (shared by the core's workers of every listener and configuration).
#[derive(Default)]
pub struct CoreDrain {
    draining: Cell<bool>,
    /// Wakers of the client connections waiting for their next request, by waiter number.
    idle: RefCell<HashMap<u64, Waker>>,
    next_waiter: Cell<u64>,
}

impl CoreDrain {
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Follows the operator's drain of the core; when it begins, the idle connections wake
    /// and close.
    pub fn set_draining(&self, draining: bool) {
        let began = draining && !self.draining.get();
        self.draining.set(draining);
        if began {
            self.wake_idle();
        }
    }

    /// Wakes every connection waiting in [`CoreDrain::unless`]; each looks at its own reason
    /// to end (the core's drain, its listener's removal) and waits again if it has none.
    pub fn wake_idle(&self) {
        let wakers: alloc::vec::Vec<Waker> = self
            .idle
            .borrow_mut()
            .drain()
            .map(|(_, waker)| waker)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Runs `future` until it completes (`Some`) or, woken by [`CoreDrain::wake_idle`],
    /// `ends()` holds first (`None`).
    pub async fn unless<F: Future>(&self, ends: impl Fn() -> bool, future: F) -> Option<F::Output> {
        let waiter = self.next_waiter.get();
        self.next_waiter.set(waiter.wrapping_add(1));
        let _registered = Registered {
            drain: self,
            waiter,
        };
        let mut future = pin!(future);
        poll_fn(|context| {
            if let Poll::Ready(output) = future.as_mut().poll(context) {
                return Poll::Ready(Some(output));
            }
            if ends() {
                return Poll::Ready(None);
            }
            let mut idle = self.idle.borrow_mut();
            match idle.get(&waiter) {
                Some(known) if known.will_wake(context.waker()) => {}
                _ => {
                    idle.insert(waiter, context.waker().clone());
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// A waiter's entry in [`CoreDrain::idle`], removed when the wait ends either way.
struct Registered<'a> {
    drain: &'a CoreDrain,
    waiter: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.drain.idle.borrow_mut().remove(&self.waiter);
    }
}

#[cfg(test)]
mod tests {
    use alloc::rc::Rc;
    use core::time::Duration;

    use unisock_kernel::executor::Executor;

    use super::*;

    #[test]
    fn a_drain_ends_the_waits_that_have_a_reason_and_only_those() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let drain = Rc::new(CoreDrain::default());
        let outcomes = Rc::new(RefCell::new(alloc::vec::Vec::new()));
        for (name, ends_on_drain) in [("idle", true), ("kept", false)] {
            let drain = drain.clone();
            let outcomes = outcomes.clone();
            let handle = handle.clone();
            executor.spawn(async move {
                let never = handle.sleep(Duration::from_secs(3600));
                let outcome = drain
                    .unless(|| ends_on_drain && drain.is_draining(), never)
                    .await;
                outcomes.borrow_mut().push((name, outcome.is_some()));
            });
        }
        let now = handle.now();
        executor.run_ready(now);
        assert!(outcomes.borrow().is_empty());
        assert_eq!(drain.idle.borrow().len(), 2);
        drain.set_draining(true);
        executor.run_ready(now);
        assert_eq!(*outcomes.borrow(), [("idle", false)]);
        // The other woke, had no reason to end, and waits again.
        assert_eq!(drain.idle.borrow().len(), 1);
    }
}
