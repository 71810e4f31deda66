//! One upstream attempt of a request, for the Sluice **upstream filter**: the same module
//! configured a second time in a cluster's upstream HTTP filters, where Envoy runs it once per
//! attempt (the first try and each retry), after the attempt's host is chosen.
//!
//! Per attempt it learns its target (the upstream host's metadata, else the plan the
//! downstream filter wrote and the attempt number), rewrites the request for that target
//! (path, model, credential, API shape), translates the response back into the client's shape
//! (whole JSON, stream, error), records how the attempt went in the targets' shared health
//! (a `retry-after` takes the target out of rotation; repeated failures eject it) and in the
//! access log's `sluice.failover`, and tells the downstream filter which target answered
//! (`targets::SERVED_BY_HEADER`). The downstream filter (`crate::exchange`) therefore always
//! sees the client's own shape: usage, quotas and guardrails read the same bytes whichever way
//! they were translated.
//!
//! | phase | method | returns |
//! |---|---|---|
//! | request headers | `on_request_headers` | `AttemptRequestEffects`: continue untouched (not an attempt Sluice manages), read the body, or reply |
//! | each request body callback | `on_request_body` | `AttemptRequestEffects`: keep buffering, or (whole body) the headers and body for the target, or reply |
//! | response headers | `on_response_headers` | `AttemptResponseEffects`: headers, then continue or read the whole body |
//! | each response body callback | `on_response_body` | `AttemptResponseEffects`: this chunk's replacement (streams), or the whole body's (JSON, errors) |
//! | the attempt is over | `on_complete` | records (an attempt that got no response is recorded as failed here) |
//!
//! Envoy retries on the status this filter lets through, and never once the client got a byte
//! of the response: translation never changes an attempt's status.

mod plan;
mod record;
mod request;
mod response;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::exchange::{Clock, Configured, Log, Record, Reply, TelemetrySink};
use crate::targets::{AttemptOutcome, HealthTable};
use crate::translate::{Shape, StreamTranslator};

pub use plan::Plan;

/// The targets' shared health, process-wide (every worker and both filters read it): the
/// native host keeps one table behind a lock, the proxy-wasm host one shared-data entry
/// written with compare-and-swap.
pub trait TargetHealthStore {
    /// Applies `change` to the table as one atomic step (it may run more than once: a
    /// compare-and-swap retry). False: it could not be read or written (the outcome is then
    /// not recorded: best effort).
    fn update(&self, change: &mut dyn FnMut(&mut HealthTable)) -> bool;
    /// The table now; `None` when it could not be read.
    fn read(&self) -> Option<HealthTable>;
}

/// The ports of one attempt phase call.
#[derive(Clone, Copy)]
pub struct AttemptPorts<'a> {
    pub clock: &'a dyn Clock,
    pub health: &'a dyn TargetHealthStore,
    pub telemetry: &'a dyn TelemetrySink,
    pub log: &'a dyn Log,
}

/// What the host read about the attempt beyond its headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptInfo<'a> {
    /// The `target` key of the upstream host's metadata (namespace `sluice`), if set.
    pub host_target: Option<&'a str>,
    /// `sluice.failover` as an earlier attempt of the same request wrote it.
    pub previous_record: Option<&'a str>,
}

/// What happens to the attempt's request after a phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AttemptNext {
    /// Send it on (continue).
    #[default]
    Continue,
    /// Hold the headers and buffer the body; `on_request_body` gets the whole body at its end.
    ReadBody,
    /// Answer the attempt with this reply (Envoy does not retry a reply of the filter's own).
    Reply(Reply),
}

/// Request edits, applied in field order, then `next`. Every edit must take: when one does
/// not, the host answers 500 (`Attempt::write_failed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRequestEffects {
    pub records: Vec<Record>,
    pub remove_headers: Vec<String>,
    /// Set (replace) each header; `:path` included.
    pub set_headers: Vec<(String, String)>,
    /// Replaces the whole buffered body; the host sets `content-length` to its length.
    pub body: Option<Vec<u8>>,
    pub next: AttemptNext,
}

/// What happens to the attempt's response after a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttemptResponseNext {
    /// Let it through (this callback's bytes, as replaced by `body`).
    #[default]
    Continue,
    /// Hold the headers and buffer the body; `on_response_body` gets the whole body at its end.
    ReadBody,
}

/// Response edits: `records` (best effort), header removals, then sets, then `body`, then
/// `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptResponseEffects {
    pub records: Vec<Record>,
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
    /// Replaces what the callback holds: this chunk (a stream), or the whole buffered body
    /// at its end (`ReadBody`).
    pub body: Option<Vec<u8>>,
    pub next: AttemptResponseNext,
}

/// One attempt, from its request headers to its end.
#[derive(Debug)]
pub struct Attempt {
    configured: Arc<Configured>,
    /// Set once the request headers showed a Sluice-managed attempt.
    managed: Option<Managed>,
    /// The response's status, once its headers came.
    status: Option<u16>,
    /// How the response body is handled.
    body: ResponseBody,
    /// Whether the outcome was recorded (once per attempt).
    recorded: bool,
}

#[derive(Debug)]
struct Managed {
    target: usize,
    /// The client's API (the downstream filter's plan says).
    client: crate::canonical::ApiKind,
    /// (target's shape, client's shape) when they differ: the response is translated.
    translate: Option<(Shape, Shape)>,
    record: record::FailoverRecord,
}

#[derive(Debug, Default)]
enum ResponseBody {
    #[default]
    Pass,
    /// A whole body to translate at its end: a successful JSON answer, or an error.
    Whole {
        error: bool,
    },
    Stream(Box<StreamTranslator>),
}

impl Attempt {
    pub fn new(configured: Arc<Configured>) -> Self {
        Self {
            configured,
            managed: None,
            status: None,
            body: ResponseBody::Pass,
            recorded: false,
        }
    }

    /// A request edit did not take: the attempt is answered 500 in the client's API format
    /// (a half-rewritten request must not reach a provider).
    pub fn write_failed(&mut self, ports: &AttemptPorts<'_>) -> Reply {
        ports.log.log(
            crate::exchange::Level::Error,
            "attempt: rewriting the request for its target failed; answered 500",
        );
        let flavor = self
            .managed
            .as_ref()
            .map_or(crate::error::ApiFlavor::OpenAi, |m| m.client.flavor());
        request::reply(
            &crate::error::GatewayError::Internal("rewriting the request for its target failed"),
            flavor,
        )
    }

    fn record_outcome(&mut self, ports: &AttemptPorts<'_>, outcome: AttemptOutcome) -> Vec<Record> {
        if self.recorded {
            return Vec::new();
        }
        self.recorded = true;
        let Some(managed) = &mut self.managed else {
            return Vec::new();
        };
        let Some(targets) = &self.configured.config.targets else {
            return Vec::new();
        };
        let now_ms = ports.clock.now_ms();
        let mut change = None;
        let (fingerprint, count, failover) =
            (targets.fingerprint, targets.targets.len(), targets.failover);
        let target = managed.target;
        let stored = ports.health.update(&mut |table| {
            table.align(fingerprint, count);
            change = table.record(target, outcome, now_ms, &failover);
        });
        if !stored {
            ports.log.log(
                crate::exchange::Level::Warn,
                "attempt: the targets' health could not be updated",
            );
        }
        let name = targets.get(target).map_or("", |t| t.name.as_str());
        ports.telemetry.target_attempt(name, outcome.label());
        if let Some(change) = change {
            let message = match change {
                crate::targets::health::HealthChange::OutOfRotation { .. } => {
                    format!("attempt: target {name} out of rotation (retry-after)")
                }
                crate::targets::health::HealthChange::Ejected { .. } => {
                    format!("attempt: target {name} ejected after repeated failures")
                }
            };
            ports.log.log(crate::exchange::Level::Warn, &message);
        }
        managed.record.push(name, outcome, change);
        let mut records = vec![managed.record.to_record()];
        records.extend(crate::exchange::fallback_record(
            &managed.record.fallback_reasons(),
        ));
        records
    }
}
