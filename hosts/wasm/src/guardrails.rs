//! Guardrails on the host side: guarding response bodies as they pass (whole JSON bodies,
//! held until the end; streams through the hold-back of `guardrails::StreamGuard`), the hit
//! counters, and the audit record in filter state.
//!
//! Host calls: none for a request without hits (the scan is guest-only; the response body is
//! read once by token accounting and rewritten only when something changed); one filter-state
//! write per request with hits. Counters are gathered in guest memory until the root tick.
//!
//! The guard's writes go through `EnvoyResponse` (`ffi`, which reports a failed call instead of
//! trapping the VM) and `guardrails::fail_closed`: a write the host did not take ends the
//! response, is logged (rule ids only) and counted in `sluice_guardrail_block_failures_total`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use super::ffi;
use super::metrics::Counter;
use sluice_core::error::{ApiFlavor, GatewayError};
use sluice_core::guardrails::fail_closed::{Fallback, HostError, Outcome, ResponseHost};
use sluice_core::guardrails::{Action, Direction, Guardrails, Hits, JsonVerdict, StreamGuard};

/// Distinct (rule, action, direction) counters at most; rules come from the configuration, so
/// this only guards against a configuration with very many deny rules.
const MAX_COUNTERS: usize = 512;

/// Guards one response.
pub struct ResponseGuard {
    guardrails: Arc<Guardrails>,
    policy: usize,
    flavor: ApiFlavor,
    stream: Option<StreamGuard>,
    pub hits: Hits,
    /// The rule that blocked the response, for the audit record.
    pub blocked: Option<String>,
    /// Host calls of the guard that failed (each ended the response, or tried to).
    pub failures: u32,
    /// Of those, the ones after which the response was ended (failed closed).
    pub closed: u32,
}

/// The response as Envoy holds it in the current body callback (`size` bytes of body).
pub struct EnvoyResponse {
    pub size: usize,
}

impl ResponseHost for EnvoyResponse {
    fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        ffi::set_response_body(0, self.size, body).map_err(|_| HostError)
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        ffi::set_response_header(name, value).map_err(|_| HostError)
    }

    fn local_reply(&mut self, status: u16, body: &str) -> Result<(), HostError> {
        let headers = [("content-type", "application/json")];
        ffi::send_local_response(status, &headers, body.as_bytes()).map_err(|_| HostError)
    }

    fn reset(&mut self) -> Result<(), HostError> {
        ffi::reset_response().map_err(|_| HostError)
    }
}

/// What to do with a whole JSON response.
pub enum JsonOutcome {
    Unchanged,
    /// Send this body instead.
    Redacted(Vec<u8>),
    /// Send this error (status and body in the API's format) instead.
    Blocked {
        status: u16,
        body: String,
    },
}

impl ResponseGuard {
    pub fn new(guardrails: Arc<Guardrails>, policy: usize, flavor: ApiFlavor) -> Self {
        Self {
            guardrails,
            policy,
            flavor,
            stream: None,
            hits: Hits::default(),
            blocked: None,
            failures: 0,
            closed: 0,
        }
    }

    /// The reply that ends a response whose guard could not be applied: 500 in the API's
    /// format.
    pub fn fallback(&self) -> Fallback {
        let error = GatewayError::Internal("applying its content policy to the response failed");
        Fallback {
            status: error.status(),
            body: error.body(self.flavor),
        }
    }

    /// A guard's host call failed: logs it (the policy and rule ids, never the text) and
    /// remembers it for the counter.
    pub fn failed(&mut self, outcome: Outcome) {
        if !outcome.failed() {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if outcome.stops() {
            self.closed = self.closed.saturating_add(1);
        }
        let policy = self
            .guardrails
            .policy(self.policy)
            .map_or("?", |p| p.name.as_str());
        let rule = self.blocked.clone().or_else(|| {
            self.stream
                .as_ref()
                .and_then(StreamGuard::blocked_rule)
                .map(|r| self.guardrails.rule_id(r).to_owned())
        });
        let what = match rule {
            Some(rule) => format!("a block (policy '{policy}', rule '{rule}')"),
            None => format!("policy '{policy}'"),
        };
        let line = outcome.describe(&what);
        if outcome.stops() {
            super::log::warn(&line);
        } else {
            super::log::error(&line);
        }
    }

    /// The response is a stream: guard it event by event.
    pub fn start_stream(&mut self) {
        self.stream = Some(StreamGuard::new(
            self.policy,
            self.guardrails.stream_holdback_bytes,
            self.flavor,
        ));
    }

    /// A whole JSON body: what to send instead, when anything matched.
    pub fn json(&mut self, body: &[u8]) -> JsonOutcome {
        let Some(policy) = self.guardrails.response_policy(self.policy) else {
            return JsonOutcome::Unchanged;
        };
        match self
            .guardrails
            .guard_json_response(policy, body, &mut self.hits)
        {
            JsonVerdict::Unchanged => JsonOutcome::Unchanged,
            JsonVerdict::Redacted(body) => JsonOutcome::Redacted(body),
            JsonVerdict::Blocked(rule) => {
                let error = GatewayError::ResponseContentPolicy { rule: rule.clone() };
                self.blocked = Some(rule);
                JsonOutcome::Blocked {
                    status: error.status(),
                    body: error.body(self.flavor),
                }
            }
        }
    }

    /// Whether a block rule ended the stream (what the upstream still sends is dropped).
    pub fn stream_blocked(&self) -> bool {
        self.stream.as_ref().is_some_and(StreamGuard::is_blocked)
    }

    /// One chunk of a stream: the bytes to send on instead.
    pub fn stream_chunk(&mut self, chunk: &[u8], end: bool) -> Vec<u8> {
        let Some(stream) = self.stream.as_mut() else {
            return chunk.to_vec();
        };
        let out = stream.chunk(&self.guardrails, chunk, end);
        if end {
            self.hits.merge(&stream.hits);
            stream.hits = Hits::default();
        }
        out
    }

    /// Hits so far (a stream's are merged at its end or here).
    pub fn take_hits(&mut self) -> Hits {
        if let Some(stream) = self.stream.as_mut() {
            self.hits.merge(&stream.hits);
            stream.hits = Hits::default();
            if let Some(rule) = stream.blocked_rule() {
                self.blocked
                    .get_or_insert_with(|| self.guardrails.rule_id(rule).to_owned());
            }
        }
        std::mem::take(&mut self.hits)
    }
}

/// Writes the audit record `wasm.sluice.guardrails` (rule ids, actions and counts; never the
/// matched text), e.g. `{"policy":"default","blocked":"aws_access_key","request":{"email":
/// {"redact":1}},"response":{}}`. One host call, only for requests with hits.
pub fn record(
    guardrails: &Guardrails,
    policy: Option<usize>,
    blocked: Option<&str>,
    request: &Hits,
    response: &Hits,
) {
    if request.is_empty() && response.is_empty() && blocked.is_none() {
        return;
    }
    let render = |hits: &Hits| {
        let mut map = serde_json::Map::new();
        for ((rule, action), count) in &hits.0 {
            let entry = map
                .entry(guardrails.rule_id(*rule).to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(actions) = entry {
                actions.insert(action.as_str().to_owned(), (*count).into());
            }
        }
        serde_json::Value::Object(map)
    };
    let value = serde_json::json!({
        "policy": policy.and_then(|p| guardrails.policy(p)).map(|p| p.name.as_str()),
        "blocked": blocked,
        "request": render(request),
        "response": render(response),
    })
    .to_string();
    let _ = hostcalls::set_property(vec!["sluice.guardrails"], Some(value.as_bytes()));
}

/// `sluice_guardrail_hits_total` per rule, action and direction. Envoy stat names carry no
/// labels: they are in the name (`.guardrail_rule.<id>.guardrail_action.<a>
/// .guardrail_direction.<d>`) and `envoy.yaml`'s `stats_tags` turn them into labels.
#[derive(Debug)]
pub struct GuardrailMetrics {
    ids: RefCell<HashMap<(String, Action, Direction), Option<u32>>>,
    pending: RefCell<HashMap<u32, u64>>,
    /// Guard decisions (a redaction or a block) the host did not take: each response was
    /// ended instead, or could not be.
    pub block_failures: Counter,
}

impl GuardrailMetrics {
    pub fn define() -> Self {
        Self {
            ids: RefCell::default(),
            pending: RefCell::default(),
            block_failures: Counter::define("sluice_guardrail_block_failures_total"),
        }
    }

    pub fn count(&self, guardrails: &Guardrails, direction: Direction, hits: &Hits) {
        let (Ok(mut ids), Ok(mut pending)) =
            (self.ids.try_borrow_mut(), self.pending.try_borrow_mut())
        else {
            return;
        };
        for ((rule, action), count) in &hits.0 {
            let key = (guardrails.rule_id(*rule).to_owned(), *action, direction);
            if !ids.contains_key(&key) && ids.len() >= MAX_COUNTERS {
                continue;
            }
            let id = *ids.entry(key).or_insert_with_key(|(rule, action, direction)| {
                let name = format!(
                    "sluice_guardrail_hits_total.guardrail_rule.{rule}.guardrail_action.{}.guardrail_direction.{}",
                    action.as_str(),
                    direction.as_str()
                );
                hostcalls::define_metric(MetricType::Counter, &name).ok()
            });
            if let Some(id) = id {
                let slot = pending.entry(id).or_default();
                *slot = slot.saturating_add(u64::from(*count));
            }
        }
    }

    /// Hands what gathered to Envoy; called on the root tick.
    pub fn flush(&self) {
        self.block_failures.flush();
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            for (id, value) in pending.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}
