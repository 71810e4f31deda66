//! Flow control's process memory: one `FlowState` per configured pool behind its own lock (one
//! queue order for the whole process, whichever worker holds a request), tickets from a
//! counter, and the registry that wakes a held stream on its own worker.
//!
//! Waking: a held stream registers its ticket with a scheduler made on its worker. `wake`
//! (from any worker, or the main thread's tick) commits that scheduler with an event naming the
//! outcome, under the registry's lock; Envoy then runs the stream's `on_scheduled` on its
//! worker. Two races are closed here:
//! - a wake that comes before the stream registered (another worker released the request
//!   between the exchange's queue update and the registration) is kept as "woken early" and
//!   committed when the stream registers;
//! - a stream that ends while held takes its entry out under the same lock before its
//!   scheduler is deleted, so no commit ever targets a deleted scheduler.
//!
//! Bounded: one state per configured pool (each bounded by its bands' capacities), one registry
//! entry per held stream (removed when the stream ends), `MAX_EARLY` early wakes (the oldest
//! dropped: one whose stream never registers is only a leftover).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::flow::{FlowState, Outcome, Woken};

use super::lock;
use crate::host_api::Scheduler;

/// The stream scheduler's event for a released request.
pub const RELEASED_EVENT: u64 = 1;
/// The stream scheduler's event for a request that waited its band's time to live.
pub const EXPIRED_EVENT: u64 = 2;

/// Wake-ups kept for streams that have not registered yet.
const MAX_EARLY: usize = 1024;

/// The event that carries `outcome` to the held stream.
pub fn event_of(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::Released => RELEASED_EVENT,
        Outcome::Expired => EXPIRED_EVENT,
    }
}

/// The outcome a stream scheduler's event carries; `None` for an event that is not one.
pub fn outcome_of(event_id: u64) -> Option<Outcome> {
    match event_id {
        RELEASED_EVENT => Some(Outcome::Released),
        EXPIRED_EVENT => Some(Outcome::Expired),
        _ => None,
    }
}

pub struct Flow {
    pools: HashMap<String, Mutex<FlowState>>,
    tickets: AtomicU64,
    held: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Ticket → the held stream's scheduler.
    streams: HashMap<u64, Box<dyn Scheduler>>,
    /// Wake-ups for tickets not registered yet, oldest first.
    early: VecDeque<(u64, Outcome)>,
}

impl Flow {
    pub fn new<'a>(pools: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            pools: pools
                .into_iter()
                .map(|pool| (pool.to_owned(), Mutex::new(FlowState::default())))
                .collect(),
            // 0 is never a ticket.
            tickets: AtomicU64::new(1),
            held: Mutex::new(Registry::default()),
        }
    }

    /// Applies `change` to `pool`'s state under its lock (once: no retries). False for a pool
    /// the configuration does not have.
    pub fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool {
        match self.pools.get(pool) {
            Some(state) => {
                change(&mut lock(state));
                true
            }
            None => false,
        }
    }

    /// `pool`'s state as it is now (tests, diagnostics).
    pub fn state(&self, pool: &str) -> Option<FlowState> {
        self.pools.get(pool).map(|state| lock(state).clone())
    }

    pub fn new_ticket(&self) -> u64 {
        // Wraps after 2^64 tickets, long after any ticket of the first round has ended.
        self.tickets.fetch_add(1, Ordering::Relaxed)
    }

    /// Commits the held stream's scheduler with the outcome's event, or keeps the wake-up until
    /// the stream registers.
    pub fn wake(&self, woken: &Woken) {
        let mut registry = lock(&self.held);
        if let Some(scheduler) = registry.streams.get(&woken.ticket) {
            scheduler.commit(event_of(woken.outcome));
            return;
        }
        if registry.early.len() >= MAX_EARLY {
            registry.early.pop_front();
        }
        registry.early.push_back((woken.ticket, woken.outcome));
    }

    /// A held stream's way back to its worker: a wake-up that came first is committed now.
    pub fn register(&self, ticket: u64, scheduler: Box<dyn Scheduler>) {
        let mut registry = lock(&self.held);
        if let Some(at) = registry.early.iter().position(|(t, _)| *t == ticket) {
            if let Some((_, outcome)) = registry.early.remove(at) {
                scheduler.commit(event_of(outcome));
            }
        }
        registry.streams.insert(ticket, scheduler);
    }

    /// Takes `ticket` out of the registry (and any early wake-up for it): no wake-up reaches
    /// its scheduler once this returns. The caller drops the scheduler on the stream's worker.
    pub fn unregister(&self, ticket: u64) -> Option<Box<dyn Scheduler>> {
        let mut registry = lock(&self.held);
        registry.early.retain(|(t, _)| *t != ticket);
        registry.streams.remove(&ticket)
    }

    /// Streams registered and early wake-ups kept (tests, bounds).
    pub fn registered(&self) -> (usize, usize) {
        let registry = lock(&self.held);
        (registry.streams.len(), registry.early.len())
    }
}
