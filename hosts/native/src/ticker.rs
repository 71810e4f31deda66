//! A thread that commits an event on a scheduler right away and then every period, until it is
//! dropped. The dynamic-module ABI has schedulers (post an event to a thread Envoy owns) but no
//! timers; this is the timer, for a configuration's periodic work (the picker snapshot fetch,
//! later) on Envoy's main thread.
//!
//! Dropping the ticker stops and joins its thread before the scheduler is deleted, on the
//! dropping thread: Envoy asks that nothing commits to a scheduler once its owner is going away.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::host_api::Scheduler;

pub struct Ticker {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<Box<dyn Scheduler>>>,
}

struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Ticker {
    pub fn start(
        name: &str,
        period: Duration,
        scheduler: Box<dyn Scheduler>,
        event_id: u64,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(Stop {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                loop {
                    scheduler.commit(event_id);
                    if thread_stop.wait(period) {
                        break;
                    }
                }
                // Handed back to `drop`, which deletes it after the join.
                scheduler
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        *lock(&self.stop.stopped) = true;
        self.stop.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only commits and waits; if it panicked anyway, its scheduler was
            // dropped (deleted) as it unwound.
            if let Ok(scheduler) = thread.join() {
                drop(scheduler);
            }
        }
    }
}

impl Stop {
    /// Waits for `period` or until stopped; true once stopped.
    fn wait(&self, period: Duration) -> bool {
        let deadline = Instant::now().checked_add(period);
        let mut stopped = lock(&self.stopped);
        loop {
            if *stopped {
                return true;
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                // A period too long to add to now: only a stop ends the wait.
                None => Duration::from_secs(3600),
            };
            stopped = match self.wake.wait_timeout(stopped, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// A lock that survives a panic elsewhere: the flag it guards is always valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting(Arc<AtomicU64>);

    impl Scheduler for Counting {
        fn commit(&self, event_id: u64) {
            assert_eq!(event_id, 7);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn commits_at_once_then_each_period_and_stops_when_dropped() {
        let commits = Arc::new(AtomicU64::new(0));
        let ticker = Ticker::start(
            "test-ticker",
            Duration::from_millis(5),
            Box::new(Counting(Arc::clone(&commits))),
            7,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while commits.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "the ticker stopped committing");
            std::thread::yield_now();
        }
        drop(ticker);
        // The thread is joined: nothing can commit any more.
        let after_drop = commits.load(Ordering::SeqCst);
        std::thread::yield_now();
        assert_eq!(
            commits.load(Ordering::SeqCst),
            after_drop,
            "committed after drop"
        );
    }

    /// The drop wakes the waiting thread instead of waiting out the period (an hour: if it did
    /// not, this test would hang).
    #[test]
    fn a_long_period_does_not_delay_the_drop() {
        let commits = Arc::new(AtomicU64::new(0));
        let ticker = Ticker::start(
            "test-ticker",
            Duration::from_secs(3600),
            Box::new(Counting(Arc::clone(&commits))),
            7,
        )
        .unwrap();
        drop(ticker);
        assert!(commits.load(Ordering::SeqCst) <= 1);
    }
}
