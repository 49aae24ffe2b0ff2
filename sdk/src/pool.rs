//! A rayon pool that takes work from threads outside it without allocating per call.
//!
//! `ThreadPool::install` from an outside thread (ONNX Runtime's, for every DySample node and
//! frame) pushes a job onto rayon's global injector queue, which allocates a new 1.5 KB block
//! every 63 pushes. Here one long-lived job, started in the pool on first use, takes each call
//! through a mutex-guarded slot instead and runs it inside the pool, where the call's own
//! parallel work goes to worker-local queues (which keep their buffers). The driver is one of
//! the pool's workers and computes with the others, so a pool of N threads still computes on N.

use std::any::Any;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The call being handed over: a borrowed closure with its lifetime erased. Only the caller
/// that put it there frees the slot's borrow, after the driver has reported it done.
struct Task(*mut (dyn FnMut() + Send + 'static));

// SAFETY: the closure is `Send`; the pointer is only dereferenced by the driver while the
// caller that owns the closure waits for it (see `Pool::run`).
unsafe impl Send for Task {}

#[derive(Default)]
struct Slot {
    /// A call is waiting to run or running.
    task: Option<Task>,
    /// The call in the slot has finished (with its panic, if any).
    done: bool,
    panic: Option<Box<dyn Any + Send>>,
    /// The driver is running (started once, on the first call).
    started: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    /// Signals every change of the slot (few waiters: the driver and the callers).
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Slot>) -> MutexGuard<'a, Slot> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// The driver's loop: runs each call put in the slot until shutdown.
    fn drive(&self) {
        let mut g = self.lock();
        loop {
            if g.shutdown {
                return;
            }
            let Some(task) = g.task.as_ref().filter(|_| !g.done).map(|t| t.0) else {
                g = self.wait(g);
                continue;
            };
            drop(g);
            // SAFETY: the caller that put `task` in the slot keeps the closure alive and
            // unaliased until it sees `done` (set below, after the last use).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*task)() }));
            g = self.lock();
            g.done = true;
            g.panic = r.err();
            self.changed.notify_all();
        }
    }
}

/// A rayon pool plus its driver.
pub(crate) struct Pool {
    pool: rayon::ThreadPool,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(pool: rayon::ThreadPool) -> Self {
        Self {
            pool,
            shared: Arc::default(),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` inside the pool (like `ThreadPool::install`) and returns when it has finished;
    /// a panic in `f` resumes in the caller. Calls from several threads take turns.
    pub(crate) fn run(&self, f: &mut (dyn FnMut() + Send)) {
        if self.pool.current_thread_index().is_some() {
            // Already one of this pool's workers (the driver itself, or nested use).
            return f();
        }
        let s = &*self.shared;
        let mut g = s.lock();
        if !g.started {
            g.started = true;
            let shared = self.shared.clone();
            // One allocation, once: the job that stays in the pool.
            self.pool.spawn(move || shared.drive());
        }
        while g.task.is_some() {
            g = s.wait(g);
        }
        // SAFETY: only the lifetime is erased. `f` outlives its use: this function does not
        // return (nor unwind: nothing below panics) before the driver has set `done` after
        // its last use of the pointer, and it clears the slot before returning.
        let task: *mut (dyn FnMut() + Send + 'static) = unsafe {
            std::mem::transmute::<*mut (dyn FnMut() + Send + '_), *mut (dyn FnMut() + Send + 'static)>(
                f,
            )
        };
        g.task = Some(Task(task));
        g.done = false;
        s.changed.notify_all();
        while !g.done {
            g = s.wait(g);
        }
        g.task = None;
        g.done = false;
        let panic = g.panic.take();
        s.changed.notify_all();
        drop(g);
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Ends the driver's job, so the pool's threads can exit once it is dropped.
        let mut g = self.shared.lock();
        g.shutdown = true;
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn pool(n: usize) -> Pool {
        Pool::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn calls_from_many_threads_run_inside_the_pool_one_at_a_time() {
        let p = pool(2);
        let (running, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (p, running, done) = (&p, &running, &done);
                s.spawn(move || {
                    for k in 0..50 {
                        let mut sum = 0u64;
                        p.run(&mut || {
                            assert_eq!(
                                running.fetch_add(1, Ordering::SeqCst),
                                0,
                                "two calls at once"
                            );
                            assert!(rayon::current_thread_index().is_some(), "not in the pool");
                            assert_eq!(rayon::current_num_threads(), 2);
                            sum = (0..1000u64).into_par_iter().map(|i| i * (t + k)).sum();
                            running.fetch_sub(1, Ordering::SeqCst);
                        });
                        assert_eq!(sum, 499_500 * (t + k));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 200);
    }

    #[test]
    fn a_panic_resumes_in_the_caller_and_the_pool_keeps_working() {
        let p = pool(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.run(&mut || panic!("boom"))
        }));
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"boom"));
        let mut ran = false;
        p.run(&mut || ran = true);
        assert!(ran);
    }

    #[test]
    fn dropping_the_pool_ends_the_driver() {
        let p = pool(2);
        p.run(&mut || {});
        let shared = Arc::downgrade(&p.shared);
        drop(p);
        // The driver's job holds the other reference until it returns.
        let t0 = Instant::now();
        while shared.upgrade().is_some() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the driver did not stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
