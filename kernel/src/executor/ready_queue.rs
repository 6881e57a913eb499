//! The queue of tasks that are ready to be polled, and the wakers that fill it from any core.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::sync::atomic::{AtomicBool, Ordering};

use super::core_executor::TaskId;

/// Called when a task of a halted core is woken, typically to send that core an IPI.
pub type WakeNotifier = Arc<dyn Fn() + Send + Sync>;

/// Shared between an executor and every waker of its tasks. Wakers must be `Send + Sync`, so a
/// wake from another core is allowed; the queue is a spin lock whose critical section is one
/// `push_back` (the executor takes the whole queue at once, swapping in an empty one that keeps
/// its capacity, so after warm-up no allocation happens under the lock).
pub(super) struct ReadyQueue {
    state: spin::Mutex<ReadyState>,
    notifier: Option<WakeNotifier>,
}

struct ReadyState {
    tasks: VecDeque<TaskId>,
    /// Set by the owning core while it halts waiting for an interrupt. Read and written under
    /// the same lock as `tasks`, so a wake either lands before the core decides to halt (and
    /// the core stays up) or sees the core halted (and notifies it): no wake is lost.
    halted: bool,
}

impl ReadyQueue {
    pub(super) fn new(notifier: Option<WakeNotifier>) -> Self {
        ReadyQueue {
            state: spin::Mutex::new(ReadyState {
                tasks: VecDeque::new(),
                halted: false,
            }),
            notifier,
        }
    }

    pub(super) fn push(&self, task: TaskId) {
        let was_halted = {
            let mut state = self.state.lock();
            state.tasks.push_back(task);
            core::mem::replace(&mut state.halted, false)
        };
        if was_halted && let Some(notify) = &self.notifier {
            notify();
        }
    }

    /// Moves every queued task to the (empty) `into`, in wake order.
    pub(super) fn take_all(&self, into: &mut VecDeque<TaskId>) {
        debug_assert!(into.is_empty());
        core::mem::swap(&mut self.state.lock().tasks, into);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.state.lock().tasks.is_empty()
    }

    /// Marks the core halted unless a task is ready; true if it may halt.
    pub(super) fn prepare_to_halt(&self) -> bool {
        let mut state = self.state.lock();
        state.halted = state.tasks.is_empty();
        state.halted
    }

    pub(super) fn resumed(&self) {
        self.state.lock().halted = false;
    }
}

/// The waker of one task.
pub(super) struct TaskWaker {
    task: TaskId,
    /// Set while the task is in the ready queue, so a burst of wakes queues it once.
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl TaskWaker {
    /// A waker for a task that starts out queued (a new task is polled once at least).
    pub(super) fn new_queued(task: TaskId, ready: Arc<ReadyQueue>) -> Self {
        ready.push(task);
        TaskWaker {
            task,
            queued: AtomicBool::new(true),
            ready,
        }
    }

    /// Called just before the task is polled: a wake from now on queues it again.
    pub(super) fn unqueue(&self) {
        // AcqRel pairs with the swap in `wake_by_ref`: a wake that follows this store sees
        // `false` and queues the task; one that preceded it was already served by this poll.
        self.queued.swap(false, Ordering::AcqRel);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.task);
        }
    }
}
