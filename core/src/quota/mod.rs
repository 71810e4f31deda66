//! Quotas: reserve before the request goes upstream, settle with the real usage after it.
//!
//! Every scope a request falls under (its tenant, its project and key when the run-time
//! tenancy gives them limits, the tenant on its model, the model over all tenants) lives in one
//! of a fixed number of shared-data slots, `sluice.q.<n>`, chosen by a hash of the scope and up
//! to `PROBES` neighbours. Each slot is read and written with compare-and-swap, so the counters
//! are exact across Envoy's workers. The key space is fixed by configuration (`quotas.slots`),
//! whatever the number of tenants or keys seen.
//!
//! Collisions: a slot stores its scope's full identity. A scope takes the first of its probe
//! slots that it already owns, else the first that is free or whose occupant has nothing left
//! that matters (no request in flight, nothing counted in its current windows). When every probe
//! slot is held by other live scopes, the request's state is unknown and `fail_policy` decides:
//! admit without counting it in that scope (open) or reject (closed).
//!
//! Everything here is plain Rust over a `Store`, the quota ledger's port: the proxy-wasm host's
//! shared data, a native host's process memory and the unit tests' map run the same code.

pub mod headers;
pub mod identity;
pub mod state;
pub mod sync;
pub mod window;

use crate::config::quotas::{
    FailPolicy, Limit, Measure, Price, Quotas, ScopeLimits, TokenKind, Window,
};
use crate::tenancy::Tenancy;
pub use state::SlotState;

/// Probe slots per scope.
pub const PROBES: u32 = 4;
/// Compare-and-swap attempts before a scope's state counts as unknown.
const ATTEMPTS: usize = 32;

/// A read-modify-write of one stored value (see `Store::update`).
pub type Change<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

/// The slot store as the quota code sees it: values with a compare-and-swap token, shared by
/// every worker. The key space is `slot_key(0..slots)`, fixed by the configuration.
pub trait Store {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value` if nobody wrote since `cas` was read (any time without `cas`).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;

    /// Read-modify-write of `key`: `change` gets the current value and returns the value to
    /// write, or `None` to leave it as it is. Returns whether the change landed (or needed no
    /// write). The default retries a compare-and-swap against concurrent writers, up to
    /// `ATTEMPTS` times; a store that can lock the key instead (process memory) may apply
    /// `change` once under its lock.
    fn update(&self, key: &str, change: &mut Change<'_>) -> bool {
        for _ in 0..ATTEMPTS {
            let (bytes, cas) = self.get(key);
            let Some(next) = change(bytes.as_deref()) else {
                return true;
            };
            if self.set(key, &next, cas) {
                return true;
            }
        }
        false
    }
}

pub fn slot_key(slot: u32) -> String {
    format!("sluice.q.{slot}")
}

/// Tokens of a request: estimated at admission, reported (or estimated) at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

impl Usage {
    fn amount(&self, measure: Measure, price: Price) -> u64 {
        match measure {
            Measure::Requests => 1,
            Measure::Tokens(TokenKind::Total) => self.input.saturating_add(self.output),
            Measure::Tokens(TokenKind::Input) => self.input,
            Measure::Tokens(TokenKind::Output) => self.output,
            Measure::Cost => {
                let cached = self.cached.min(self.input);
                self.input
                    .saturating_sub(cached)
                    .saturating_mul(price.input)
                    .saturating_add(cached.saturating_mul(price.cached_input))
                    .saturating_add(self.output.saturating_mul(price.output))
            }
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A requests-per-minute limit.
    Requests,
    /// A tokens-per-minute limit.
    Tokens,
    /// Too many requests in flight.
    Concurrency,
    /// An hourly, daily or monthly budget (requests, tokens or USD) is spent.
    Budget,
    /// The state is unknown (cluster view stale, no free slot) and the policy is fail-closed.
    Unknown,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Concurrency => "concurrency",
            Self::Budget => "budget",
            Self::Unknown => "unknown",
        }
    }
}

/// A limit's standing after a decision, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// Until `remaining` next rises (ms from now; 0 when nothing is counted).
    pub reset_ms: u64,
}

/// The tightest requests limit and the tightest tokens limit that apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

impl Standing {
    fn note(&mut self, measure: Measure, r: Remaining) {
        let slot = match measure {
            Measure::Requests => &mut self.requests,
            Measure::Tokens(_) => &mut self.tokens,
            Measure::Cost => return,
        };
        if slot.is_none_or(|old| r.remaining < old.remaining) {
            *slot = Some(r);
        }
    }

    fn merge(&mut self, other: Standing) {
        if let Some(r) = other.requests {
            self.note(Measure::Requests, r);
        }
        if let Some(r) = other.tokens {
            self.note(Measure::Tokens(TokenKind::Total), r);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub retry_after_ms: u64,
    pub standing: Standing,
}

/// What one admitted request holds in one scope, to settle at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    slot: u32,
    scope: String,
    /// Per counter: the bucket charged and the amount reserved (`None`: the request was not
    /// held to that limit).
    charged: Vec<(u64, Option<u64>)>,
    measures: Vec<Measure>,
    /// Whether the scope counts this request as in flight and must be settled at its end. A
    /// scope that limits only requests, without a concurrency limit, has nothing to settle: its
    /// request count stands whatever the usage. Skipping it saves a shared-data read and write
    /// per such scope and request.
    settles: bool,
}

/// The reservations of an admitted request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    held: Vec<Held>,
    price: Price,
}

impl Ticket {
    /// What `usage` costs at the price the request settles at, in nano-USD (as a cost budget
    /// counts it).
    pub fn cost(&self, usage: Usage) -> u64 {
        usage.amount(Measure::Cost, self.price)
    }

    /// Settles at `price` instead of the price the request was admitted at: the target that
    /// answered (a failover, a canary) has its own.
    pub fn reprice(&mut self, price: Price) {
        self.price = price;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub ticket: Ticket,
    pub standing: Standing,
    /// Scopes that had no slot and were passed under the fail-open policy.
    pub uncounted: u32,
}

/// Who a request is charged to: its tenant, and the project and key it came with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Who<'a> {
    pub tenant: &'a str,
    pub project: Option<&'a str>,
    /// The key's id (`Caller::key`): a run-time key with limits of its own has a scope.
    pub key: Option<&'a str>,
}

/// The scopes a request falls under: (identity, limits), in this order: the tenant (`t|`), its
/// project (`p|tenant|project`) and its key (`k|id`) when the tenancy gives them limits, the
/// tenant on the model (`tm|`), the model over every tenant (`m|`). A tenant of the run-time
/// `tenancy` replaces the configuration's entry of that name; the configuration's
/// `default_tenant` still applies to a tenant neither names. Without a model (a request that was
/// not read), only the tenant's, project's and key's own.
pub fn scopes<'q>(
    quotas: &'q Quotas,
    tenancy: Option<&'q Tenancy>,
    who: Who<'_>,
    model: Option<&str>,
) -> Vec<(String, &'q ScopeLimits)> {
    let mut out = Vec::with_capacity(3);
    let tenant = who.tenant;
    let run_time = tenancy.and_then(|t| t.tenant(tenant));
    let tenant_limits = run_time
        .map(|t| &t.limits)
        .or_else(|| quotas.tenants.get(tenant))
        .or(quotas.default_tenant.as_ref());
    if let Some(limits) = tenant_limits.filter(|l| !l.own.is_empty()) {
        out.push((format!("t|{tenant}"), &limits.own));
    }
    if let Some((project, limits)) = who
        .project
        .and_then(|p| Some((p, &run_time?.project(p)?.limits)))
        .filter(|(_, l)| !l.is_empty())
    {
        out.push((format!("p|{tenant}|{project}"), limits));
    }
    if let Some(key) = who
        .key
        .and_then(|id| tenancy?.key_by_id(id))
        .filter(|k| k.tenant == tenant && !k.limits.is_empty())
    {
        out.push((format!("k|{}", key.id), &key.limits));
    }
    if let Some((model, on_model)) = model
        .and_then(|m| Some((m, tenant_limits?.models.get(m)?)))
        .filter(|(_, l)| !l.is_empty())
    {
        out.push((format!("tm|{tenant}|{model}"), on_model));
    }
    if let Some((model, limits)) = model
        .and_then(|m| Some((m, quotas.models.get(m)?)))
        .filter(|(_, l)| !l.is_empty())
    {
        out.push((format!("m|{model}"), limits));
    }
    out
}

/// Where one scope is, or why it has no slot.
enum Located {
    Found {
        slot: u32,
        state: SlotState,
        cas: Option<u32>,
    },
    NoSlot,
}

fn home(scope: &str, slots: u32) -> u32 {
    let hash = xxhash_rust::xxh3::xxh3_64(scope.as_bytes());
    u32::try_from(hash.checked_rem(u64::from(slots)).unwrap_or(0)).unwrap_or(0)
}

/// The slot `scope` owns among its probes, else the first it may take.
fn locate<S: Store + ?Sized>(
    store: &S,
    scope: &str,
    limits: &[Limit],
    slots: u32,
    now_ms: u64,
) -> Located {
    let start = home(scope, slots);
    let mut free: Option<(u32, Option<u32>)> = None;
    for i in 0..PROBES.min(slots) {
        let slot = start.saturating_add(i).checked_rem(slots).unwrap_or(0);
        let (bytes, cas) = store.get(&slot_key(slot));
        let state = bytes.as_deref().map(SlotState::decode).unwrap_or_default();
        if state.scope == scope {
            let state = if state.matches(limits) {
                state
            } else {
                let in_flight = state.in_flight;
                let mut fresh = SlotState::fresh(scope, limits, now_ms);
                fresh.in_flight = in_flight;
                fresh
            };
            return Located::Found { slot, state, cas };
        }
        if free.is_none() && state.evictable(now_ms) {
            free = Some((slot, cas));
        }
    }
    match free {
        Some((slot, cas)) => Located::Found {
            slot,
            state: SlotState::fresh(scope, limits, now_ms),
            cas,
        },
        None => Located::NoSlot,
    }
}

enum ScopeDecision {
    Held(Held, Standing),
    Rejected(Rejection),
    /// No slot, or no write landed: the state is unknown.
    Unknown,
}

/// The refusal reason a limit gives.
fn reason_of(limit: &Limit) -> Reason {
    match (limit.window, limit.measure) {
        (Window::Minute, Measure::Requests) => Reason::Requests,
        (Window::Minute, _) => Reason::Tokens,
        _ => Reason::Budget,
    }
}

/// `amounts` has one entry per limit of `limits`: what the request needs under it, or `None`
/// for a limit this request is not held to (a tokens or cost limit of a request whose tokens
/// are unknown).
fn reserve_scope<S: Store + ?Sized>(
    store: &S,
    scope: &str,
    limits: &ScopeLimits,
    amounts: &[Option<u64>],
    slots: u32,
    now_ms: u64,
) -> ScopeDecision {
    for _ in 0..ATTEMPTS {
        let Located::Found {
            slot,
            mut state,
            cas,
        } = locate(store, scope, &limits.limits, slots, now_ms)
        else {
            return ScopeDecision::Unknown;
        };
        let mut refused: Option<(Reason, u64)> = None;
        for ((limit, counter), amount) in limits.limits.iter().zip(&mut state.counters).zip(amounts)
        {
            counter.roll(limit.window, now_ms);
            let Some(amount) = *amount else {
                continue;
            };
            if counter.used(limit.window, now_ms).saturating_add(amount) <= limit.max {
                continue;
            }
            let reason = reason_of(limit);
            let wait = counter.wait_ms(limit, now_ms, amount);
            // The budget reason wins (retrying soon will not help), then the longest wait.
            if refused.is_none_or(|(r, w)| {
                (reason == Reason::Budget && r != Reason::Budget) || (r == reason && wait > w)
            }) {
                refused = Some((reason, wait));
            }
        }
        if let Some(max) = limits.max_concurrent {
            if state.in_flight >= max && refused.is_none() {
                refused = Some((Reason::Concurrency, 1000));
            }
        }
        if let Some((reason, retry_after_ms)) = refused {
            return ScopeDecision::Rejected(Rejection {
                reason,
                retry_after_ms,
                standing: standing_of(limits, &state, amounts, now_ms),
            });
        }
        let mut charged = Vec::with_capacity(amounts.len());
        for (counter, amount) in state.counters.iter_mut().zip(amounts) {
            if let Some(amount) = amount {
                counter.add(counter.window, i64::try_from(*amount).unwrap_or(i64::MAX));
            }
            charged.push((counter.window, *amount));
        }
        let settles = limits.max_concurrent.is_some()
            || limits.limits.iter().any(|l| l.measure != Measure::Requests);
        if settles {
            state.in_flight = state.in_flight.saturating_add(1);
        }
        if store.set(&slot_key(slot), &state.encode(), cas) {
            return ScopeDecision::Held(
                Held {
                    slot,
                    scope: scope.to_owned(),
                    charged,
                    measures: limits.limits.iter().map(|l| l.measure).collect(),
                    settles,
                },
                standing_of(limits, &state, amounts, now_ms),
            );
        }
    }
    ScopeDecision::Unknown
}

/// Where the scope's limits stand in `state` (after the request was charged, or as it was
/// refused), for the rate-limit headers. Limits the request is not held to are left out.
fn standing_of(
    limits: &ScopeLimits,
    state: &SlotState,
    amounts: &[Option<u64>],
    now_ms: u64,
) -> Standing {
    let mut standing = Standing::default();
    for ((limit, counter), amount) in limits.limits.iter().zip(&state.counters).zip(amounts) {
        if amount.is_none() {
            continue;
        }
        standing.note(
            limit.measure,
            Remaining {
                limit: limit.max,
                remaining: limit.max.saturating_sub(counter.used(limit.window, now_ms)),
                reset_ms: counter.reset_ms(limit, now_ms),
            },
        );
    }
    standing
}

/// What a request is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge<'a> {
    /// An inference request routed to `model`: its estimated prompt tokens and requested
    /// output budget are reserved in every scope it falls under.
    Inference {
        model: &'a str,
        prompt_tokens: u64,
        output_budget: u64,
    },
    /// A request forwarded without being read (a passthrough path): its model and tokens are
    /// unknown, so it counts only in the caller's own scope and only against the limits that
    /// count requests (per minute, request budgets) and concurrency.
    RequestOnly,
}

/// What admission needs to know besides the store.
pub struct Request<'a> {
    pub quotas: &'a Quotas,
    /// The run-time tenancy, when there is one (`quotas.tenancy`, once a snapshot arrived).
    pub tenancy: Option<&'a Tenancy>,
    pub who: Who<'a>,
    pub charge: Charge<'a>,
    pub now_ms: u64,
    /// False when cluster mode is on and the global view is stale.
    pub state_known: bool,
}

/// Reserves the request in every scope it falls under, or refuses it. A refusal in one scope
/// gives back what the earlier scopes reserved.
pub fn reserve<S: Store + ?Sized>(store: &S, request: &Request<'_>) -> Result<Admitted, Rejection> {
    let quotas = request.quotas;
    let (model, reserved) = match request.charge {
        Charge::Inference {
            model,
            prompt_tokens,
            output_budget,
        } => (
            Some(model),
            Some(Usage {
                input: prompt_tokens,
                output: output_budget.min(quotas.max_reserved_output_tokens),
                cached: 0,
            }),
        ),
        Charge::RequestOnly => (None, None),
    };
    let price = model
        .and_then(|m| quotas.prices.get(m))
        .copied()
        .unwrap_or_default();
    let unknown = || Rejection {
        reason: Reason::Unknown,
        retry_after_ms: 1000,
        standing: Standing::default(),
    };
    let scopes = scopes(quotas, request.tenancy, request.who, model);
    if !request.state_known && quotas.fail_policy == FailPolicy::Closed && !scopes.is_empty() {
        return Err(unknown());
    }
    let mut ticket = Ticket {
        held: Vec::with_capacity(scopes.len()),
        price,
    };
    let mut standing = Standing::default();
    let mut uncounted = 0u32;
    for (scope, limits) in &scopes {
        let amounts: Vec<Option<u64>> = limits
            .limits
            .iter()
            .map(|l| match (reserved, l.measure) {
                (_, Measure::Requests) => Some(1),
                (Some(usage), measure) => Some(usage.amount(measure, price)),
                (None, _) => None,
            })
            .collect();
        match reserve_scope(store, scope, limits, &amounts, quotas.slots, request.now_ms) {
            ScopeDecision::Held(held, scope_standing) => {
                ticket.held.push(held);
                standing.merge(scope_standing);
            }
            ScopeDecision::Rejected(mut rejection) => {
                cancel(store, &ticket, request.now_ms);
                rejection.standing.merge(standing);
                return Err(rejection);
            }
            ScopeDecision::Unknown => {
                if quotas.fail_policy == FailPolicy::Closed {
                    cancel(store, &ticket, request.now_ms);
                    return Err(unknown());
                }
                uncounted = uncounted.saturating_add(1);
            }
        }
    }
    Ok(Admitted {
        ticket,
        standing,
        uncounted,
    })
}

/// Gives back every reservation of `ticket` (the request did not go upstream after all).
/// Returns false when some scope could not be written (see `settle`).
pub fn cancel<S: Store + ?Sized>(store: &S, ticket: &Ticket, now_ms: u64) -> bool {
    finish(store, ticket, None, now_ms)
}

/// Replaces the reservations with the request's real usage. Returns false when some scope's
/// slot could not be written after every attempt: its reservation then stands instead of the
/// usage (and its in-flight count is not given back), which the caller logs and counts.
pub fn settle<S: Store + ?Sized>(store: &S, ticket: &Ticket, usage: Usage, now_ms: u64) -> bool {
    finish(store, ticket, Some(usage), now_ms)
}

fn finish<S: Store + ?Sized>(
    store: &S,
    ticket: &Ticket,
    usage: Option<Usage>,
    now_ms: u64,
) -> bool {
    let mut written = true;
    for held in &ticket.held {
        if usage.is_some() && !held.settles {
            continue;
        }
        let landed = store.update(&slot_key(held.slot), &mut |bytes| {
            let mut state = bytes.map(SlotState::decode).unwrap_or_default();
            if state.scope != held.scope || state.counters.len() != held.charged.len() {
                // The configuration changed (or the VM was reloaded): nothing to give back.
                return None;
            }
            for ((counter, (bucket, reserved)), measure) in state
                .counters
                .iter_mut()
                .zip(&held.charged)
                .zip(&held.measures)
            {
                counter.roll(state::kind(counter.kind), now_ms);
                // A limit the request was not held to (its tokens were unknown) has nothing
                // to settle.
                let Some(reserved) = reserved else {
                    continue;
                };
                let actual = usage.map_or(0, |u| u.amount(*measure, ticket.price));
                let delta = i128::from(actual).saturating_sub(i128::from(*reserved));
                let delta = i64::try_from(delta.clamp(i128::from(i64::MIN), i128::from(i64::MAX)))
                    .unwrap_or(0);
                counter.add(*bucket, delta);
            }
            if held.settles {
                state.in_flight = state.in_flight.saturating_sub(1);
            }
            Some(state.encode())
        });
        written &= landed;
    }
    written
}

#[cfg(test)]
mod tests;
