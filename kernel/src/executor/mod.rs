//! Per-core single-threaded async executor: tasks, wakers, timers.
