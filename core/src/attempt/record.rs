//! `sluice.failover`: every attempt of a request, its target and how it went, for the access
//! log. Each attempt reads what the earlier ones wrote (the host passes it in) and writes the
//! list with its own entry added.

use serde::{Deserialize, Serialize};

use crate::exchange::{Record, RecordKey};
use crate::targets::AttemptOutcome;
use crate::targets::health::HealthChange;

/// Most entries kept: an attempt count past it (a misconfigured retry policy) is not logged
/// further, so the record stays small.
const MAX_ENTRIES: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// The chain the downstream filter chose, and why (it writes the record first).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    choice: Option<String>,
    #[serde(default)]
    attempts: Vec<Entry>,
    /// The last entry is this attempt's provisional one (`push_pending`).
    #[serde(skip)]
    pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    target: String,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    status: Option<u16>,
    /// `out_of_rotation` (a retry-after) or `ejected`, when this attempt did that.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    took_out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    until_ms: Option<u64>,
}

impl FailoverRecord {
    /// The record as an earlier attempt wrote it; anything unreadable starts a new one.
    pub fn continue_from(previous: Option<&str>) -> Self {
        previous
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default()
    }

    /// The attempt is on its way to `target`: its entry reads `no_response` until `push`
    /// replaces it. A host that cannot write filter state once an attempt without response
    /// ends (the native module) still logs that attempt.
    pub fn push_pending(&mut self, target: &str) {
        self.push(target, AttemptOutcome::NoResponse, None);
        self.pending = true;
    }

    pub fn push(&mut self, target: &str, outcome: AttemptOutcome, change: Option<HealthChange>) {
        if std::mem::take(&mut self.pending) {
            self.attempts.pop();
        }
        if self.attempts.len() >= MAX_ENTRIES {
            return;
        }
        let status = match outcome {
            AttemptOutcome::Answered(s) | AttemptOutcome::Failed(s) => Some(s),
            AttemptOutcome::Overloaded { status, .. } => Some(status),
            AttemptOutcome::RateLimited { .. } => Some(429),
            AttemptOutcome::NoResponse => None,
        };
        let (took_out, until_ms) = match change {
            Some(HealthChange::OutOfRotation { until_ms }) => {
                (Some("out_of_rotation".to_owned()), Some(until_ms))
            }
            Some(HealthChange::Ejected { until_ms }) => {
                (Some("ejected".to_owned()), Some(until_ms))
            }
            None => (None, None),
        };
        self.attempts.push(Entry {
            target: target.to_owned(),
            outcome: outcome.label().to_owned(),
            status,
            took_out,
            until_ms,
        });
    }

    /// Why this attempt is not the request's first choice: the chain's reroute, then every
    /// earlier attempt that failed (`<target>:<outcome>`). Empty when no earlier attempt failed
    /// (the downstream filter wrote the reroute, if any).
    pub fn fallback_reasons(&self) -> Vec<String> {
        let Some((_, earlier)) = self.attempts.split_last() else {
            return Vec::new();
        };
        let failed: Vec<String> = earlier
            .iter()
            .filter(|e| e.outcome != AttemptOutcome::Answered(200).label())
            .map(|e| format!("{}:{}", e.target, e.outcome))
            .collect();
        if failed.is_empty() {
            return failed;
        }
        let rerouted = self
            .choice
            .iter()
            .filter(|c| c.as_str() != "weighted")
            .cloned();
        rerouted.chain(failed).collect()
    }

    pub fn to_record(&self) -> Record {
        Record {
            key: RecordKey::Failover,
            value: serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_accumulate_across_attempts() {
        let mut first = FailoverRecord::continue_from(None);
        first.push(
            "primary",
            AttemptOutcome::of_status(429, Some(2000)),
            Some(HealthChange::OutOfRotation { until_ms: 5 }),
        );
        let written = first.to_record().value;
        assert_eq!(
            written,
            r#"{"attempts":[{"target":"primary","outcome":"rate_limited","status":429,"took_out":"out_of_rotation","until_ms":5}]}"#
        );
        let mut second = FailoverRecord::continue_from(Some(&written));
        second.push("secondary", AttemptOutcome::Answered(200), None);
        assert_eq!(
            second.to_record().value,
            r#"{"attempts":[{"target":"primary","outcome":"rate_limited","status":429,"took_out":"out_of_rotation","until_ms":5},{"target":"secondary","outcome":"ok","status":200}]}"#
        );
        assert_eq!(
            FailoverRecord::continue_from(Some("garbage")),
            FailoverRecord::default()
        );
    }

    #[test]
    fn the_fallback_names_the_reroute_and_every_earlier_failure() {
        let mut record = FailoverRecord::continue_from(Some(
            r#"{"chain":"c","choice":"rerouted","attempts":[]}"#,
        ));
        record.push("primary", AttemptOutcome::Answered(200), None);
        assert!(record.fallback_reasons().is_empty());
        let mut record = FailoverRecord::continue_from(Some(
            r#"{"chain":"c","choice":"rerouted","attempts":[{"target":"a","outcome":"rate_limited","status":429}]}"#,
        ));
        record.push("b", AttemptOutcome::Failed(503), None);
        record.push("c", AttemptOutcome::Answered(200), None);
        assert_eq!(
            record.fallback_reasons(),
            ["rerouted", "a:rate_limited", "b:server_error"]
        );
    }

    #[test]
    fn a_pending_entry_reads_no_response_until_the_outcome_replaces_it() {
        let earlier = r#"{"attempts":[{"target":"first","outcome":"server_error","status":500}]}"#;
        let mut record = FailoverRecord::continue_from(Some(earlier));
        record.push_pending("primary");
        assert_eq!(
            record.to_record().value,
            r#"{"attempts":[{"target":"first","outcome":"server_error","status":500},{"target":"primary","outcome":"no_response"}]}"#
        );
        record.push("primary", AttemptOutcome::Answered(200), None);
        assert_eq!(
            record.to_record().value,
            r#"{"attempts":[{"target":"first","outcome":"server_error","status":500},{"target":"primary","outcome":"ok","status":200}]}"#
        );
    }
}
