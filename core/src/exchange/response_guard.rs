//! Guarding one response as it passes: a whole JSON body (held to its end) or a stream, event
//! by event through the hold-back of `guardrails::StreamGuard`. What it decides becomes a
//! `Guarded` write (`effects`); a write the host does not take ends the response.

use std::sync::Arc;

use super::effects::Guarded;
use super::ports::{Level, Log};
use crate::error::{ApiFlavor, GatewayError};
use crate::guardrails::fail_closed::{Closure, Fallback, Outcome, Step};
use crate::guardrails::{Guardrails, Hits, JsonVerdict, StreamGuard};
use crate::response_read::StreamRead;
use crate::response_text::BodyRead;

pub(super) struct ResponseGuard {
    guardrails: Arc<Guardrails>,
    policy: usize,
    flavor: ApiFlavor,
    stream: Option<StreamGuard>,
    hits: Hits,
    /// The rule that blocked the response, for the audit record and the logs.
    blocked: Option<String>,
}

/// What to send instead of a whole JSON response.
pub(super) enum JsonOutcome {
    Unchanged,
    /// The body with the redactions.
    Redacted(Vec<u8>),
    /// This error (status and body in the API's format).
    Blocked {
        status: u16,
        body: String,
    },
}

impl ResponseGuard {
    pub(super) fn new(guardrails: Arc<Guardrails>, policy: usize, flavor: ApiFlavor) -> Self {
        Self {
            guardrails,
            policy,
            flavor,
            stream: None,
            hits: Hits::default(),
            blocked: None,
        }
    }

    /// The reply that ends a response whose guard could not be applied: 500 in the API's
    /// format.
    pub(super) fn fallback(&self) -> Fallback {
        let error = GatewayError::Internal("applying its content policy to the response failed");
        Fallback {
            status: error.status(),
            body: error.body(self.flavor),
        }
    }

    /// Ends the response because `failed` did not take: a local reply first while its headers
    /// are held, a reset first once they have left.
    pub(super) fn close(&self, failed: Step, held: bool) -> Guarded {
        Guarded::Close {
            failed,
            first: if held {
                Closure::LocalReply
            } else {
                Closure::Reset
            },
            fallback: self.fallback(),
        }
    }

    /// A guard's write failed: logs it (the policy and rule ids, never the text).
    pub(super) fn log_failure(&self, log: &dyn Log, outcome: Outcome) {
        if !outcome.failed() {
            return;
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
        let level = if outcome.stops() {
            Level::Warn
        } else {
            Level::Error
        };
        log.log(level, &outcome.describe(&what));
    }

    /// The response is a stream, read by `read`: guard it event by event from that read.
    pub(super) fn start_stream(&mut self, read: &StreamRead) {
        let mut stream = StreamGuard::new(
            self.policy,
            self.guardrails.stream_holdback_bytes,
            self.flavor,
        );
        read.guard_with(&mut stream);
        self.stream = Some(stream);
    }

    /// A whole JSON body (`read` once, shared with accounting): what to send instead, when
    /// anything matched, and the texts a redaction changed (index in `read`'s sites, new text).
    pub(super) fn json(
        &mut self,
        body: &[u8],
        read: &BodyRead,
    ) -> (JsonOutcome, Vec<(usize, String)>) {
        let Some(policy) = self.guardrails.response_policy(self.policy) else {
            return (JsonOutcome::Unchanged, Vec::new());
        };
        let guarded = self
            .guardrails
            .guard_json_read(policy, body, read, &mut self.hits);
        let outcome = match guarded.verdict {
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
        };
        (outcome, guarded.replaced)
    }

    /// The stream's guard and its rules, for `StreamRead::chunk`.
    pub(super) fn stream_parts(&mut self) -> Option<(&mut StreamGuard, &Guardrails)> {
        let rules: &Guardrails = &self.guardrails;
        self.stream.as_mut().map(|stream| (stream, rules))
    }

    /// The stream is over: its hits join the response's.
    pub(super) fn end_stream(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            self.hits.merge(&stream.hits);
            stream.hits = Hits::default();
        }
    }

    /// Hits so far (a stream's are merged at its end or here) and the rule that blocked the
    /// response, if one did.
    pub(super) fn take_hits(&mut self) -> (Hits, Option<String>) {
        if let Some(stream) = self.stream.as_mut() {
            self.hits.merge(&stream.hits);
            stream.hits = Hits::default();
            if let Some(rule) = stream.blocked_rule() {
                self.blocked
                    .get_or_insert_with(|| self.guardrails.rule_id(rule).to_owned());
            }
        }
        (std::mem::take(&mut self.hits), self.blocked.clone())
    }
}
