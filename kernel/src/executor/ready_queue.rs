//! The queue of tasks that are ready to be polled, and the wakers that fill it from any core.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::sync::atomic::{AtomicBool, Ordering};

use super::core_executor::TaskId;

/// Shared between an executor and every waker of its tasks. Wakers must be `Send + Sync`, so a
/// wake from another core is allowed; the queue is a spin lock whose critical section is one
/// `push_back` (the executor takes the whole queue at once, swapping in an empty one that keeps
/// its capacity, so after warm-up no allocation happens under the lock).
pub(super) struct ReadyQueue {
    tasks: spin::Mutex<VecDeque<TaskId>>,
}

impl ReadyQueue {
    pub(super) fn new() -> Self {
        ReadyQueue {
            tasks: spin::Mutex::new(VecDeque::new()),
        }
    }

    pub(super) fn push(&self, task: TaskId) {
        self.tasks.lock().push_back(task);
    }

    /// Moves every queued task to the (empty) `into`, in wake order.
    pub(super) fn take_all(&self, into: &mut VecDeque<TaskId>) {
        debug_assert!(into.is_empty());
        core::mem::swap(&mut *self.tasks.lock(), into);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.lock().is_empty()
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
