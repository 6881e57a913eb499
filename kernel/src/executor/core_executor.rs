//! One core's executor: its tasks, the order they are polled in, and the clock its timers read.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};
use core::time::Duration;

use super::ready_queue::{ReadyQueue, TaskWaker, WakeNotifier};
use super::sleep::{Sleep, Timeout};
use super::timer_queue::TimerQueue;
use crate::time::Instant;

/// A task's future: it stays on the core that spawned it, so it need not be `Send`.
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A task of one executor: a slot and the generation of the slot's current occupant, so a
/// waker that outlives its task never polls the task that reuses the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId {
    slot: u32,
    generation: u32,
}

/// What tasks reach through a [`Handle`] while the executor polls them.
pub(super) struct CoreState {
    pub(super) now: Cell<Instant>,
    pub(super) timers: RefCell<TimerQueue>,
    /// Futures spawned from inside tasks, adopted by the executor between polls.
    spawned: RefCell<Vec<LocalBoxFuture>>,
}

struct Task {
    future: LocalBoxFuture,
    wake_state: Arc<TaskWaker>,
    waker: Waker,
}

struct TaskSlot {
    generation: u32,
    task: Option<Task>,
}

/// A single-threaded executor; one per core, never shared.
pub struct Executor {
    slots: Vec<TaskSlot>,
    free_slots: Vec<u32>,
    live_tasks: usize,
    ready: Arc<ReadyQueue>,
    /// The batch being polled; kept to reuse its allocation.
    polling: VecDeque<TaskId>,
    state: Rc<CoreState>,
}

/// A task's way to its executor: spawn more tasks, read the clock, sleep, time out.
#[derive(Clone)]
pub struct Handle {
    state: Rc<CoreState>,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor {
    pub fn new() -> Self {
        Self::build(None)
    }

    /// An executor whose tasks, when woken while this core is halted (see
    /// [`Executor::prepare_to_halt`]), call `notifier`, typically to send the core an IPI.
    pub fn with_wake_notifier(notifier: WakeNotifier) -> Self {
        Self::build(Some(notifier))
    }

    fn build(notifier: Option<WakeNotifier>) -> Self {
        Executor {
            slots: Vec::new(),
            free_slots: Vec::new(),
            live_tasks: 0,
            ready: Arc::new(ReadyQueue::new(notifier)),
            polling: VecDeque::new(),
            state: Rc::new(CoreState {
                now: Cell::new(Instant::ZERO),
                timers: RefCell::new(TimerQueue::default()),
                spawned: RefCell::new(Vec::new()),
            }),
        }
    }

    pub fn handle(&self) -> Handle {
        Handle {
            state: self.state.clone(),
        }
    }

    /// The clock as of the last `run_ready` or `fire_timers`.
    pub fn now(&self) -> Instant {
        self.state.now.get()
    }

    /// Adds a task; it is polled by the next `run_ready`.
    pub fn spawn(&mut self, future: impl Future<Output = ()> + 'static) -> TaskId {
        self.spawn_boxed(Box::pin(future))
    }

    pub fn spawn_boxed(&mut self, future: LocalBoxFuture) -> TaskId {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(TaskSlot {
                    generation: 0,
                    task: None,
                });
                // More than 4 billion live tasks would exhaust memory long before.
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        let id = TaskId {
            slot,
            generation: entry.generation,
        };
        let wake_state = Arc::new(TaskWaker::new_queued(id, self.ready.clone()));
        entry.task = Some(Task {
            future,
            waker: Waker::from(wake_state.clone()),
            wake_state,
        });
        self.live_tasks += 1;
        id
    }

    /// Tasks spawned and not yet completed (including those spawned through a [`Handle`] and
    /// not yet adopted).
    pub fn live_tasks(&self) -> usize {
        self.live_tasks + self.state.spawned.borrow().len()
    }

    pub fn is_alive(&self, task: TaskId) -> bool {
        self.slots
            .get(task.slot as usize)
            .is_some_and(|entry| entry.generation == task.generation && entry.task.is_some())
    }

    /// True if some task waits to be polled: the core must not halt.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.state.spawned.borrow().is_empty()
    }

    /// Called by the core loop when it found nothing to do and wants to halt until an
    /// interrupt or [`Executor::next_deadline`]: true if it may, false if a task became ready
    /// meanwhile. From this call to [`Executor::resumed`], a wake calls the wake notifier once.
    pub fn prepare_to_halt(&self) -> bool {
        self.state.spawned.borrow().is_empty() && self.ready.prepare_to_halt()
    }

    /// Called by the core loop when it comes out of a halt.
    pub fn resumed(&self) {
        self.ready.resumed();
    }

    /// The earliest timer deadline, if any: when nothing is ready, the core may halt until then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state.timers.borrow().next_deadline()
    }

    /// Pending timers (for counters and tests).
    pub fn pending_timers(&self) -> usize {
        self.state.timers.borrow().len()
    }

    /// Advances the clock; time never goes backwards for the tasks.
    fn advance_clock(&self, now: Instant) {
        if now > self.state.now.get() {
            self.state.now.set(now);
        }
    }

    /// Wakes the tasks whose timers are due at `now`; returns how many timers fired.
    pub fn fire_timers(&mut self, now: Instant) -> usize {
        self.advance_clock(now);
        // The borrow ends before any waker runs.
        let due = self.state.timers.borrow_mut().expire(now);
        let fired = due.len();
        for waker in due {
            waker.wake();
        }
        fired
    }

    /// Polls, once each, the tasks that were ready when it was called; tasks woken or spawned
    /// meanwhile wait for the next call, so one call's work is bounded. Returns the number of
    /// polls.
    pub fn run_ready(&mut self, now: Instant) -> usize {
        self.advance_clock(now);
        self.adopt_spawned();
        self.ready.take_all(&mut self.polling);
        let mut polls = 0;
        while let Some(id) = self.polling.pop_front() {
            let Some(entry) = self.slots.get_mut(id.slot as usize) else {
                continue;
            };
            if entry.generation != id.generation {
                continue;
            }
            let Some(task) = entry.task.as_mut() else {
                continue;
            };
            task.wake_state.unqueue();
            let mut context = Context::from_waker(&task.waker);
            polls += 1;
            if task.future.as_mut().poll(&mut context).is_ready() {
                self.finish(id);
            }
        }
        self.adopt_spawned();
        polls
    }

    /// Drops a completed task's future now (its resources go with it) and frees its slot.
    fn finish(&mut self, id: TaskId) {
        let entry = &mut self.slots[id.slot as usize];
        let task = entry.task.take();
        entry.generation = entry.generation.wrapping_add(1);
        self.free_slots.push(id.slot);
        self.live_tasks -= 1;
        drop(task);
    }

    fn adopt_spawned(&mut self) {
        loop {
            let spawned = core::mem::take(&mut *self.state.spawned.borrow_mut());
            if spawned.is_empty() {
                break;
            }
            for future in spawned {
                self.spawn_boxed(future);
            }
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Futures waiting for adoption may hold a `Handle`, which holds the state that holds
        // them: drop them explicitly or the cycle would leak. The tasks go first, since a
        // task's future may spawn more of them while it is dropped.
        drop(core::mem::take(&mut self.slots));
        loop {
            let spawned = core::mem::take(&mut *self.state.spawned.borrow_mut());
            if spawned.is_empty() {
                break;
            }
            drop(spawned);
        }
    }
}

impl Handle {
    /// Adds a task to this core's executor; it is polled by the next `run_ready`.
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) {
        self.state.spawned.borrow_mut().push(Box::pin(future));
    }

    /// The executor's clock as of its last `run_ready` or `fire_timers`.
    pub fn now(&self) -> Instant {
        self.state.now.get()
    }

    /// Completes `duration` after now.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now() + duration)
    }

    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self.state.clone(), deadline)
    }

    /// `future`'s output, or `Elapsed` if `duration` passes first.
    pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout::new(future, self.sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::executor::Elapsed;
    use alloc::vec;
    use core::future::poll_fn;
    use core::task::Poll;

    fn at_millis(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    /// A future that stays pending until `open` is set, counting its polls and keeping the
    /// latest waker where the test can reach it (as a socket would).
    struct Gate {
        open: Cell<bool>,
        polls: Cell<usize>,
        waker: RefCell<Option<Waker>>,
    }

    impl Gate {
        fn new() -> Rc<Gate> {
            Rc::new(Gate {
                open: Cell::new(false),
                polls: Cell::new(0),
                waker: RefCell::new(None),
            })
        }

        fn wait(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
            let gate = self.clone();
            poll_fn(move |context| {
                gate.polls.set(gate.polls.get() + 1);
                if gate.open.get() {
                    Poll::Ready(())
                } else {
                    *gate.waker.borrow_mut() = Some(context.waker().clone());
                    Poll::Pending
                }
            })
        }

        fn take_waker(&self) -> Waker {
            self.waker
                .borrow_mut()
                .take()
                .expect("the task registered a waker")
        }
    }

    #[test]
    fn spawned_task_runs_to_completion_and_is_dropped() {
        let mut executor = Executor::new();
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        let id = executor.spawn(async move { flag.set(true) });
        assert!(executor.is_alive(id));
        assert!(executor.has_ready());
        assert_eq!(executor.live_tasks(), 1);
        assert_eq!(executor.run_ready(Instant::ZERO), 1);
        assert!(done.get());
        assert_eq!(
            Rc::strong_count(&done),
            1,
            "the finished future was dropped"
        );
        assert_eq!(executor.live_tasks(), 0);
        assert!(!executor.is_alive(id));
        assert!(!executor.has_ready());
        assert_eq!(executor.run_ready(Instant::ZERO), 0);
    }

    #[test]
    fn a_pending_task_is_polled_again_only_when_woken() {
        let mut executor = Executor::new();
        let gate = Gate::new();
        executor.spawn(gate.wait());
        executor.run_ready(Instant::ZERO);
        executor.run_ready(Instant::ZERO);
        assert_eq!(gate.polls.get(), 1, "not woken, not polled");
        let waker = gate.take_waker();
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(executor.run_ready(Instant::ZERO), 1, "two wakes, one poll");
        assert_eq!(gate.polls.get(), 2);
        gate.open.set(true);
        gate.take_waker().wake();
        executor.run_ready(Instant::ZERO);
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn a_wake_during_the_poll_queues_the_task_again() {
        let mut executor = Executor::new();
        let polls = Rc::new(Cell::new(0));
        let counter = polls.clone();
        executor.spawn(poll_fn(move |context| {
            counter.set(counter.get() + 1);
            if counter.get() == 3 {
                return Poll::Ready(());
            }
            context.waker().wake_by_ref();
            Poll::Pending
        }));
        assert_eq!(executor.run_ready(Instant::ZERO), 1, "one poll per call");
        assert!(executor.has_ready());
        executor.run_ready(Instant::ZERO);
        executor.run_ready(Instant::ZERO);
        assert_eq!(polls.get(), 3);
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn a_waker_is_usable_from_another_thread() {
        let mut executor = Executor::new();
        let gate = Gate::new();
        executor.spawn(gate.wait());
        executor.run_ready(Instant::ZERO);
        let waker = gate.take_waker();
        gate.open.set(true);
        std::thread::spawn(move || waker.wake()).join().unwrap();
        assert!(executor.has_ready());
        executor.run_ready(Instant::ZERO);
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn a_stale_waker_does_not_poll_the_slots_next_task() {
        let mut executor = Executor::new();
        let first = Gate::new();
        let first_id = executor.spawn(first.wait());
        executor.run_ready(Instant::ZERO);
        let stale = first.take_waker();
        first.open.set(true);
        stale.wake_by_ref();
        executor.run_ready(Instant::ZERO);
        assert!(!executor.is_alive(first_id));
        let second = Gate::new();
        let second_id = executor.spawn(second.wait());
        assert_eq!(second_id.slot, first_id.slot, "the slot is reused");
        executor.run_ready(Instant::ZERO);
        assert_eq!(second.polls.get(), 1);
        stale.wake();
        assert_eq!(executor.run_ready(Instant::ZERO), 0);
        assert_eq!(second.polls.get(), 1);
    }

    #[test]
    fn tasks_spawn_tasks() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let log = Rc::new(RefCell::new(Vec::new()));
        let parent_log = log.clone();
        executor.spawn(async move {
            for child in 0..3 {
                let child_log = parent_log.clone();
                let grandchild_handle = handle.clone();
                handle.spawn(async move {
                    child_log.borrow_mut().push(child);
                    let grandchild_log = child_log.clone();
                    grandchild_handle.spawn(async move {
                        grandchild_log.borrow_mut().push(10 + child);
                    });
                });
            }
            parent_log.borrow_mut().push(99);
        });
        assert_eq!(executor.run_ready(Instant::ZERO), 1);
        assert_eq!(*log.borrow(), vec![99]);
        assert_eq!(executor.live_tasks(), 3);
        assert_eq!(executor.run_ready(Instant::ZERO), 3);
        assert_eq!(executor.run_ready(Instant::ZERO), 3);
        assert_eq!(*log.borrow(), vec![99, 0, 1, 2, 10, 11, 12]);
        assert_eq!(executor.live_tasks(), 0);
        assert_eq!(Rc::strong_count(&log), 1);
    }

    #[test]
    fn timers_fire_in_deadline_order() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let order = Rc::new(RefCell::new(Vec::new()));
        for millis in [30u64, 10, 20, 10] {
            let handle = handle.clone();
            let order = order.clone();
            executor.spawn(async move {
                handle.sleep(Duration::from_millis(millis)).await;
                order.borrow_mut().push((millis, handle.now().as_millis()));
            });
        }
        executor.run_ready(at_millis(0));
        assert_eq!(executor.pending_timers(), 4);
        let mut now = 0;
        while let Some(deadline) = executor.next_deadline() {
            assert!(deadline.as_millis() > now);
            now = deadline.as_millis();
            executor.fire_timers(deadline);
            executor.run_ready(deadline);
        }
        assert_eq!(
            *order.borrow(),
            vec![(10, 10), (10, 10), (20, 20), (30, 30)]
        );
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn a_timer_does_not_fire_early() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        executor.spawn(async move {
            handle.sleep(Duration::from_millis(5)).await;
            flag.set(true);
        });
        executor.run_ready(at_millis(100));
        assert_eq!(executor.next_deadline(), Some(at_millis(105)));
        assert_eq!(executor.fire_timers(at_millis(104)), 0);
        executor.run_ready(at_millis(104));
        assert!(!done.get());
        assert_eq!(executor.fire_timers(at_millis(105)), 1);
        executor.run_ready(at_millis(105));
        assert!(done.get());
        assert_eq!(executor.next_deadline(), None);
    }

    #[test]
    fn timeout_elapses_when_the_future_is_late() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let gate = Gate::new();
        let result = Rc::new(Cell::new(None));
        let slot = result.clone();
        let never = gate.wait();
        executor.spawn(async move {
            slot.set(Some(handle.timeout(Duration::from_millis(50), never).await));
        });
        executor.run_ready(at_millis(0));
        assert_eq!(result.get(), None);
        executor.fire_timers(at_millis(50));
        executor.run_ready(at_millis(50));
        assert_eq!(
            result.get(),
            Some(Err(Elapsed {
                deadline: at_millis(50)
            }))
        );
        assert_eq!(
            Rc::strong_count(&gate),
            1,
            "the abandoned future was dropped"
        );
    }

    #[test]
    fn timeout_passes_the_output_and_cancels_its_timer() {
        let mut executor = Executor::new();
        let handle = executor.handle();
        let gate = Gate::new();
        let result = Rc::new(Cell::new(None));
        let slot = result.clone();
        let waiting = gate.clone();
        executor.spawn(async move {
            let output = handle
                .timeout(Duration::from_millis(50), async move {
                    waiting.wait().await;
                    7
                })
                .await;
            slot.set(Some(output));
        });
        executor.run_ready(at_millis(0));
        assert_eq!(executor.pending_timers(), 1);
        gate.open.set(true);
        gate.take_waker().wake();
        executor.run_ready(at_millis(10));
        assert_eq!(result.get(), Some(Ok(7)));
        assert_eq!(executor.pending_timers(), 0);
        assert_eq!(executor.next_deadline(), None);
    }

    #[test]
    fn dropping_the_executor_drops_every_task_and_timer() {
        let tracker = Rc::new(());
        {
            let mut executor = Executor::new();
            let handle = executor.handle();
            for _ in 0..3 {
                let tracker = tracker.clone();
                let handle = handle.clone();
                executor.spawn(async move {
                    let _keep = tracker;
                    handle.sleep(Duration::from_secs(1)).await;
                });
            }
            executor.run_ready(Instant::ZERO);
            let held = tracker.clone();
            let pending_handle = handle.clone();
            handle.spawn(async move {
                let _keep = (held, pending_handle);
            });
            assert_eq!(executor.live_tasks(), 4);
            assert_eq!(executor.pending_timers(), 3);
            assert_eq!(Rc::strong_count(&tracker), 5);
        }
        assert_eq!(Rc::strong_count(&tracker), 1, "no task leaked");
    }

    #[test]
    fn a_task_that_spawns_while_it_is_dropped_leaks_nothing() {
        /// Spawns a clean-up task when dropped, as a connection might on its way out.
        struct SpawnsOnDrop {
            handle: Handle,
            tracker: Rc<()>,
        }
        impl Drop for SpawnsOnDrop {
            fn drop(&mut self) {
                let (handle, tracker) = (self.handle.clone(), self.tracker.clone());
                self.handle.spawn(async move {
                    let _keep = (handle, tracker);
                });
            }
        }
        let tracker = Rc::new(());
        {
            let mut executor = Executor::new();
            let guard = SpawnsOnDrop {
                handle: executor.handle(),
                tracker: tracker.clone(),
            };
            executor.spawn(async move {
                let _guard = guard;
                core::future::pending::<()>().await;
            });
            executor.run_ready(Instant::ZERO);
        }
        assert_eq!(Rc::strong_count(&tracker), 1, "the clean-up task leaked");
    }

    #[test]
    fn many_tasks_reuse_slots() {
        let mut executor = Executor::new();
        for round in 0..100u32 {
            for _ in 0..50 {
                executor.spawn(async {});
            }
            assert_eq!(
                executor.run_ready(Instant::from_millis(u64::from(round))),
                50
            );
            assert_eq!(executor.live_tasks(), 0);
        }
        assert_eq!(executor.slots.len(), 50);
    }

    #[test]
    fn a_wake_notifies_a_halted_core_once() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        let notifications = Arc::new(AtomicUsize::new(0));
        let counter = notifications.clone();
        let mut executor = Executor::with_wake_notifier(Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
        let gate = Gate::new();
        executor.spawn(gate.wait());
        assert!(!executor.prepare_to_halt(), "a new task is ready");
        executor.run_ready(Instant::ZERO);
        // Awake: a wake queues the task and notifies no one.
        gate.take_waker().wake();
        assert_eq!(notifications.load(Ordering::Relaxed), 0);
        executor.run_ready(Instant::ZERO);
        // Halted: the first wake notifies, from any thread; a second one does not.
        assert!(executor.prepare_to_halt());
        let waker = gate.take_waker();
        let remote = waker.clone();
        std::thread::spawn(move || remote.wake()).join().unwrap();
        waker.wake();
        assert_eq!(notifications.load(Ordering::Relaxed), 1);
        executor.resumed();
        assert!(executor.has_ready());
        executor.run_ready(Instant::ZERO);
        // A spawn through a handle keeps the core up.
        executor.handle().spawn(async {});
        assert!(!executor.prepare_to_halt());
    }

    proptest::proptest! {
        /// Whatever the sleeps and however coarsely the loop samples the clock, every sleeper
        /// wakes at the first loop turn at or after its deadline, never before, and sleepers
        /// finish in deadline order (ties in spawn order).
        #[test]
        fn sleepers_wake_at_the_first_turn_after_their_deadline(
            sleeps in proptest::collection::vec(0u64..100, 1..20),
            step in 1u64..30,
        ) {
            let mut executor = Executor::new();
            let handle = executor.handle();
            let finished = Rc::new(RefCell::new(Vec::new()));
            for (index, &millis) in sleeps.iter().enumerate() {
                let handle = handle.clone();
                let finished = finished.clone();
                executor.spawn(async move {
                    handle.sleep(Duration::from_millis(millis)).await;
                    finished.borrow_mut().push((index, handle.now().as_millis()));
                });
            }
            let mut now = 0;
            while executor.live_tasks() > 0 {
                executor.run_ready(at_millis(now));
                executor.fire_timers(at_millis(now));
                executor.run_ready(at_millis(now));
                now += step;
                proptest::prop_assert!(now < 1_000);
            }
            let mut expected: Vec<(usize, u64)> = sleeps
                .iter()
                .enumerate()
                .map(|(index, &millis)| (index, millis.div_ceil(step) * step))
                .collect();
            expected.sort_by_key(|&(index, woke)| (sleeps[index], woke, index));
            proptest::prop_assert_eq!(&*finished.borrow(), &expected);
            proptest::prop_assert_eq!(executor.pending_timers(), 0);
        }
    }

    #[test]
    fn the_clock_never_goes_backwards() {
        let mut executor = Executor::new();
        executor.run_ready(at_millis(10));
        executor.fire_timers(at_millis(5));
        assert_eq!(executor.now(), at_millis(10));
        assert_eq!(executor.handle().now(), at_millis(10));
    }
}
