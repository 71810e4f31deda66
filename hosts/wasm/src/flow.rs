//! Flow control across this process's VMs (`sluice_core::exchange::FlowQueues`).
//!
//! - **One queue order per process.** Each pool's `FlowState` lives in Envoy's shared data under
//!   `sluice.flow.<pool>` (pools come from the configuration's catalog: the key space is
//!   bounded), changed by get, decode, change, encode and a compare-and-swap set, retried a
//!   bounded number of times on a conflict; after that the update fails and the request fails
//!   closed.
//! - **Back to the right worker.** Each VM takes a number from a shared-data counter once and
//!   registers a shared queue of its own under it (`sluice.flow.wake.<n>`); the queue's id is
//!   the VM's `owner` token, and its tickets are the number in the high 32 bits and a local
//!   count in the low ones. A wake-up is enqueued on the owner's queue; Envoy then calls
//!   `on_queue_ready` on the root context of the VM that registered it, on that VM's worker
//!   thread, where `FlowHub::resume` finds the held stream by its ticket and resumes it as
//!   that stream (the effective context).
//! - **Lost wake-ups.** The root's tick runs `flow_tick` (expiry, and release after a fresh
//!   snapshot), and while it does, every update reports what it saw: a request this VM holds
//!   whose ticket is in no pool's queue for two ticks in a row, without a wake-up, is resumed
//!   as released (or expired, past its band's time to live). The same pass counts the waiting
//!   requests for the gauges.
//!
//! Bounded: the registry has one entry per request this VM holds (the bands' capacities bound
//! those), a pass's counts one per band and fairness id held.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use proxy_wasm::hostcalls;

use super::http::Stream;
use super::{clock, ffi, log, shared};
use sluice_core::flow::{FlowControl, FlowState, Outcome, Woken};

/// The shared-data counter that numbers this process's VMs.
const VM_COUNTER_KEY: &str = "sluice.flow.vms";
/// Compare-and-swap attempts on a pool's state before the update fails (flow control then
/// fails closed for that request).
const MAX_ATTEMPTS: usize = 16;
/// Wake-ups taken from the queue in one `on_queue_ready` (Envoy calls it again per enqueue).
const MAX_DEQUEUE: usize = 1024;
/// Flow passes in a row that must miss a held ticket before it counts as lost: one pass may
/// run between the release on another worker and the dispatch of its wake-up.
const MISSING_PASSES: u8 = 2;

/// The shared-data key of `pool`'s flow state.
pub fn state_key(pool: &str) -> String {
    format!("sluice.flow.{pool}")
}

/// A wake-up as it crosses the shared queue: the ticket (little-endian), then 1 for released,
/// 2 for expired.
fn encode_wake(woken: &Woken) -> [u8; 9] {
    let mut bytes = [0u8; 9];
    for (slot, byte) in bytes.iter_mut().zip(woken.ticket.to_le_bytes()) {
        *slot = byte;
    }
    if let Some(last) = bytes.last_mut() {
        *last = match woken.outcome {
            Outcome::Released => 1,
            Outcome::Expired => 2,
        };
    }
    bytes
}

fn decode_wake(bytes: &[u8]) -> Option<(u64, Outcome)> {
    let ticket = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let outcome = match bytes.get(8..)? {
        [1] => Outcome::Released,
        [2] => Outcome::Expired,
        _ => return None,
    };
    Some((ticket, outcome))
}

/// A request this VM holds.
struct HeldStream {
    context_id: u32,
    stream: Weak<RefCell<Stream>>,
    /// When it was held (the cached clock).
    since_ms: u64,
    /// Its band, once a pass saw it in a queue.
    band: Option<usize>,
    /// Passes in a row that did not see it.
    missing: u8,
}

/// What the updates of one flow pass saw.
#[derive(Default)]
struct Pass {
    /// This VM's tickets found waiting, with their band and since when.
    present: HashMap<u64, (usize, u64)>,
    /// Requests waiting per band and fairness hash, summed over pools.
    waiting: HashMap<(usize, u64), u64>,
    /// An update failed: what this pass saw is not the whole picture.
    incomplete: bool,
}

/// The VM's side of flow control: its identity, its held streams and the shared-data queue
/// states. One per VM, shared by every configuration the VM loads.
#[derive(Default)]
pub struct FlowHub {
    /// This VM's number in the process; `None` until `start` got one.
    vm: Cell<Option<u32>>,
    /// The id of this VM's wake-up queue (its `owner` token).
    queue: Cell<Option<u32>>,
    next_ticket: Cell<u32>,
    held: RefCell<HashMap<u64, HeldStream>>,
    /// Set while the root's tick runs `flow_tick`.
    pass: RefCell<Option<Pass>>,
}

impl FlowHub {
    /// Numbers this VM and registers its wake-up queue, once. Returns whether flow control can
    /// run here; if not, every update fails and requests that need it fail closed.
    pub fn start(&self) -> bool {
        if self.queue.get().is_some() {
            return true;
        }
        if self.vm.get().is_none() {
            let mut number = None;
            let counted = shared::update(VM_COUNTER_KEY, |current| {
                let previous = current
                    .and_then(|bytes| bytes.get(..4))
                    .and_then(|bytes| bytes.try_into().ok())
                    .map_or(0, u32::from_le_bytes);
                let next = previous.wrapping_add(1);
                number = Some(next);
                next.to_le_bytes().to_vec()
            });
            if !counted {
                log::error("flow control: cannot number this VM in shared data");
                return false;
            }
            self.vm.set(number);
        }
        let Some(vm) = self.vm.get() else {
            return false;
        };
        // Envoy answers Ok to any name: the SDK's panic on another status cannot fire.
        match hostcalls::register_shared_queue(&format!("sluice.flow.wake.{vm}")) {
            Ok(queue) => {
                self.queue.set(Some(queue));
                true
            }
            Err(status) => {
                log::error(&format!(
                    "flow control: cannot register the wake-up queue: {status:?}"
                ));
                false
            }
        }
    }

    /// Creates `pool`'s state if it is missing, so that every later write can compare and swap
    /// (a missing key has no token to compare against).
    pub fn create_state(pool: &str) {
        let key = state_key(pool);
        if shared::get(&key).0.is_none() {
            shared::set(&key, &FlowState::default().encode(), None);
        }
    }

    /// `FlowQueues::update` over shared data.
    pub fn update(&self, pool: &str, change: &mut dyn FnMut(&mut FlowState)) -> bool {
        if self.queue.get().is_none() {
            // No way to be woken: holding a request here would strand it.
            return false;
        }
        let key = state_key(pool);
        for _ in 0..MAX_ATTEMPTS {
            let (current, cas) = shared::get(&key);
            let mut state = current
                .as_deref()
                .and_then(FlowState::decode)
                .unwrap_or_default();
            change(&mut state);
            let next = state.encode();
            if current.as_deref() == Some(next.as_slice()) || shared::set(&key, &next, cas) {
                self.saw(&state);
                return true;
            }
        }
        if let Ok(mut pass) = self.pass.try_borrow_mut() {
            if let Some(pass) = pass.as_mut() {
                pass.incomplete = true;
            }
        }
        log::warn(&format!(
            "flow control: {pool}'s queue kept changing under {MAX_ATTEMPTS} attempts"
        ));
        false
    }

    /// A ticket no other request held in this process has: this VM's number, then its count.
    pub fn new_ticket(&self) -> u64 {
        let local = self.next_ticket.get().wrapping_add(1);
        self.next_ticket.set(local);
        let vm = u64::from(self.vm.get().unwrap_or(0));
        vm.checked_shl(32).unwrap_or(0) | u64::from(local)
    }

    /// This VM's token: the id of its wake-up queue.
    pub fn owner(&self) -> u32 {
        self.queue.get().unwrap_or(0)
    }

    /// Hands `woken` to its owner's queue. A wake-up lost here is found by the owner's pass.
    pub fn wake(&self, woken: &Woken) {
        // Envoy answers Ok or NotFound (a queue of a VM that is gone), both passed on.
        if let Err(status) = hostcalls::enqueue_shared_queue(woken.owner, Some(&encode_wake(woken)))
        {
            log::warn(&format!(
                "flow control: cannot wake a held request on queue {}: {status:?}",
                woken.owner
            ));
        }
    }

    /// `context_id`'s stream waits under `ticket` until it is woken or ends.
    pub fn hold(&self, ticket: u64, context_id: u32, stream: &Rc<RefCell<Stream>>) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.entry(ticket).or_insert_with(|| HeldStream {
                context_id,
                stream: Rc::downgrade(stream),
                since_ms: clock::now_ms(),
                band: None,
                missing: 0,
            });
        }
    }

    /// The stream held under `ticket` ended.
    pub fn forget(&self, ticket: u64) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.remove(&ticket);
        }
    }

    /// Envoy says `queue` has wake-ups: resumes each stream they name (on this worker: Envoy
    /// calls the root of the VM that registered the queue, on its own thread).
    pub fn on_queue_ready(&self, queue: u32) {
        let mut wakes = Vec::new();
        for _ in 0..MAX_DEQUEUE {
            match hostcalls::dequeue_shared_queue(queue) {
                Ok(Some(bytes)) => match decode_wake(&bytes) {
                    Some(wake) => wakes.push(wake),
                    None => log::warn("flow control: a wake-up that is not one was dropped"),
                },
                Ok(None) => break,
                Err(status) => {
                    log::warn(&format!(
                        "flow control: cannot read wake-up queue {queue}: {status:?}"
                    ));
                    break;
                }
            }
        }
        for (ticket, outcome) in wakes {
            self.resume(ticket, outcome);
        }
    }

    /// Resumes the stream held under `ticket` as that stream: its exchange decides (a pick and
    /// on upstream, or a reply) and the effects are applied there. Nothing when it is gone.
    fn resume(&self, ticket: u64, outcome: Outcome) {
        let entry = self
            .held
            .try_borrow_mut()
            .ok()
            .and_then(|mut held| held.remove(&ticket));
        let Some(entry) = entry else {
            // Ended meanwhile (its seat was given back then), or another VM's (a reload).
            return;
        };
        let Some(stream) = entry.stream.upgrade() else {
            return;
        };
        if let Err(status) = ffi::set_effective_context(entry.context_id) {
            log::warn(&format!(
                "flow control: held stream {} is gone: {status:?}",
                entry.context_id
            ));
            return;
        }
        let Ok(mut stream) = stream.try_borrow_mut() else {
            log::error("flow control: a held stream was busy when woken");
            return;
        };
        stream.woken(outcome);
    }

    /// The root's tick starts a flow pass: the updates of `flow_tick` report what they see.
    pub fn begin_pass(&self) {
        if let Ok(mut pass) = self.pass.try_borrow_mut() {
            *pass = Some(Pass::default());
        }
    }

    /// An update succeeded with `state` as the pool's state now.
    fn saw(&self, state: &FlowState) {
        let Ok(mut pass) = self.pass.try_borrow_mut() else {
            return;
        };
        let Some(pass) = pass.as_mut() else {
            return;
        };
        let me = self.owner();
        for (band, held) in state.held_requests() {
            let count = pass.waiting.entry((band, held.fairness)).or_default();
            *count = count.saturating_add(1);
            if held.owner == me {
                pass.present.insert(held.ticket, (band, held.since_ms));
            }
        }
    }

    /// Ends the pass: resumes the held requests it found lost, and returns the waiting counts
    /// (band, fairness hash) for the gauges; `None` when an update failed (the pass saw only
    /// part of the queues).
    pub fn end_pass(&self, flow: &FlowControl) -> Option<HashMap<(usize, u64), u64>> {
        let pass = self.pass.try_borrow_mut().ok().and_then(|mut p| p.take())?;
        if pass.incomplete {
            return None;
        }
        let mut lost = Vec::new();
        {
            let now_ms = clock::now_ms();
            if let Ok(mut held) = self.held.try_borrow_mut() {
                held.retain(|_, entry| entry.stream.strong_count() > 0);
                for (ticket, entry) in held.iter_mut() {
                    if let Some((band, since_ms)) = pass.present.get(ticket) {
                        entry.band = Some(*band);
                        entry.since_ms = *since_ms;
                        entry.missing = 0;
                        continue;
                    }
                    entry.missing = entry.missing.saturating_add(1);
                    if entry.missing >= MISSING_PASSES {
                        let ttl_ms = entry
                            .band
                            .and_then(|band| flow.bands.get(band))
                            .map_or(u64::MAX, |band| band.ttl_ms);
                        let outcome = if now_ms.saturating_sub(entry.since_ms) >= ttl_ms {
                            Outcome::Expired
                        } else {
                            Outcome::Released
                        };
                        lost.push((*ticket, outcome));
                    }
                }
            }
        }
        for (ticket, outcome) in lost {
            log::warn("flow control: a held request's wake-up was lost; resuming it");
            self.resume(ticket, outcome);
        }
        Some(pass.waiting)
    }
}
