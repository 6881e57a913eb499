//! Futures that wait for the executor's clock: `sleep` and `timeout`.

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::core_executor::CoreState;
use super::timer_queue::TimerKey;
use crate::time::Instant;

/// Completes once the executor's clock reaches `deadline`. Dropping it cancels its timer.
pub struct Sleep {
    state: Rc<CoreState>,
    deadline: Instant,
    timer: Option<TimerKey>,
}

impl Sleep {
    pub(super) fn new(state: Rc<CoreState>, deadline: Instant) -> Self {
        Sleep {
            state,
            deadline,
            timer: None,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn cancel(&mut self) {
        if let Some(key) = self.timer.take() {
            self.state.timers.borrow_mut().cancel(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.state.now.get() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        let mut timers = this.state.timers.borrow_mut();
        let still_pending = this
            .timer
            .is_some_and(|key| timers.update(key, context.waker()));
        if !still_pending {
            this.timer = Some(timers.register(this.deadline, context.waker().clone()));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The error of a [`Timeout`] whose deadline passed before its future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    pub deadline: Instant,
}

/// Runs a future with a deadline: `Ok(output)` if it completes first, `Err(Elapsed)` otherwise.
/// The inner future is boxed so that `Timeout` needs no pin projection (and no `unsafe`).
pub struct Timeout<F: Future> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Timeout<F> {
    pub(super) fn new(future: F, sleep: Sleep) -> Self {
        Timeout {
            future: Box::pin(future),
            sleep,
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The future first: if it is ready at the deadline, its result wins.
        if let Poll::Ready(output) = this.future.as_mut().poll(context) {
            this.sleep.cancel();
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut this.sleep).poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed {
                deadline: this.sleep.deadline,
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}
