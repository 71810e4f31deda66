//! The targets' shared health: which target is out of rotation after a `retry-after`, and
//! which is ejected after failing attempt after attempt (circuit breaking). One table per
//! process, shared by every worker (the hosts' `TargetHealthStore`), one fixed-size entry per
//! configured target: its memory does not grow with traffic.

use serde::{Deserialize, Serialize};

use super::Failover;

/// The health of every target of one configuration, by target index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthTable {
    /// The configuration's `Targets::fingerprint`; a table of another one is read as empty.
    fingerprint: u64,
    entries: Vec<TargetHealth>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    /// Unix ms before which the target is not chosen: its last `retry-after`.
    pub retry_after_until_ms: u64,
    /// Unix ms before which the target is not chosen: ejected after repeated failures.
    pub ejected_until_ms: u64,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Ejections since the last success: each doubles the next one's length.
    pub ejections: u32,
}

/// How one attempt went, as the upstream filter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response that is not a failure of the target (2xx, 3xx, and 4xx other than 408 and
    /// 429: the request's fault, which another target would answer the same).
    Answered(u16),
    /// 429.
    RateLimited { retry_after_ms: Option<u64> },
    /// 503 or 529 (overloaded).
    Overloaded {
        status: u16,
        retry_after_ms: Option<u64>,
    },
    /// Any other 5xx, or 408.
    Failed(u16),
    /// No response: the connection failed, was reset, or the try timed out.
    NoResponse,
}

/// What recording an outcome changed, for the log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// The target is out of rotation until this time (a `retry-after`).
    OutOfRotation { until_ms: u64 },
    /// The target is ejected until this time.
    Ejected { until_ms: u64 },
}

impl AttemptOutcome {
    /// Classifies a response status; `retry_after_ms` is what its headers said, if anything
    /// (`retry_after_ms` below reads them).
    pub fn of_status(status: u16, retry_after_ms: Option<u64>) -> Self {
        match status {
            429 => Self::RateLimited { retry_after_ms },
            503 | 529 => Self::Overloaded {
                status,
                retry_after_ms,
            },
            408 | 500..=599 => Self::Failed(status),
            _ => Self::Answered(status),
        }
    }

    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::Answered(_))
    }

    /// The metric label and access-log word for it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Answered(status) if *status < 400 => "ok",
            Self::Answered(_) => "client_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded { .. } => "overloaded",
            Self::Failed(_) => "server_error",
            Self::NoResponse => "no_response",
        }
    }

    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms } | Self::Overloaded { retry_after_ms, .. } => {
                *retry_after_ms
            }
            _ => None,
        }
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds), else `retry-after` in
/// seconds (decimals allowed) or as an HTTP date (relative to `now_ms`). `None` when neither
/// is there or readable.
pub fn retry_after_ms(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_ms: u64,
) -> Option<u64> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        return finite_ms(ms);
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return finite_ms(seconds * 1000.0);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    let at_ms = u64::try_from(at_ms).ok()?;
    Some(at_ms.saturating_sub(now_ms))
}

fn finite_ms(ms: f64) -> Option<u64> {
    if ms.is_finite() && ms >= 0.0 {
        // Saturating float-to-int conversion: a huge value becomes u64::MAX, capped later.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked finite and non-negative; `as` saturates"
        )]
        Some(ms.ceil() as u64)
    } else {
        None
    }
}

impl HealthTable {
    /// An empty table for `targets` targets of the configuration `fingerprint`.
    pub fn new(fingerprint: u64, targets: usize) -> Self {
        Self {
            fingerprint,
            entries: vec![TargetHealth::default(); targets],
        }
    }

    /// Makes the table the one of `fingerprint` with `targets` entries: a table written under
    /// another configuration starts over.
    pub fn align(&mut self, fingerprint: u64, targets: usize) {
        if self.fingerprint != fingerprint || self.entries.len() != targets {
            *self = Self::new(fingerprint, targets);
        }
    }

    pub fn entry(&self, target: usize) -> Option<&TargetHealth> {
        self.entries.get(target)
    }

    /// Whether `target` may be chosen at `now_ms`. A target the table does not know is.
    pub fn available(&self, target: usize, now_ms: u64) -> bool {
        self.entries
            .get(target)
            .is_none_or(|h| now_ms >= h.retry_after_until_ms && now_ms >= h.ejected_until_ms)
    }

    /// Records an attempt's outcome for `target` at `now_ms`.
    pub fn record(
        &mut self,
        target: usize,
        outcome: AttemptOutcome,
        now_ms: u64,
        failover: &Failover,
    ) -> Option<HealthChange> {
        let entry = self.entries.get_mut(target)?;
        if !outcome.is_failure() {
            entry.consecutive_failures = 0;
            entry.ejections = 0;
            return None;
        }
        let mut change = None;
        if let Some(wait) = outcome.retry_after_ms() {
            let until = now_ms.saturating_add(wait.min(failover.max_retry_after_ms));
            if until > entry.retry_after_until_ms {
                entry.retry_after_until_ms = until;
                change = Some(HealthChange::OutOfRotation { until_ms: until });
            }
        }
        entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        if entry.consecutive_failures >= failover.eject_after_failures
            && now_ms >= entry.ejected_until_ms
        {
            let length = failover
                .ejection_ms
                .checked_shl(entry.ejections.min(16))
                .unwrap_or(u64::MAX)
                .min(failover.max_ejection_ms);
            entry.ejected_until_ms = now_ms.saturating_add(length);
            entry.ejections = entry.ejections.saturating_add(1);
            entry.consecutive_failures = 0;
            change = Some(HealthChange::Ejected {
                until_ms: entry.ejected_until_ms,
            });
        }
        change
    }

    /// The table as bytes for a host's shared store (Wasm shared data).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A table from `encode`'s bytes; unreadable bytes read as an empty table.
    pub fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn a_retry_after_takes_the_target_out_until_then_and_no_longer() {
        let mut table = HealthTable::new(7, 2);
        let change = table.record(
            0,
            AttemptOutcome::of_status(429, Some(2_000)),
            NOW,
            &Failover::default(),
        );
        assert_eq!(
            change,
            Some(HealthChange::OutOfRotation {
                until_ms: NOW + 2_000
            })
        );
        assert!(!table.available(0, NOW + 1_999));
        assert!(table.available(0, NOW + 2_000));
        assert!(table.available(1, NOW), "other targets are untouched");
    }

    #[test]
    fn a_429_without_retry_after_is_a_failure_but_keeps_the_target_in_rotation() {
        let mut table = HealthTable::new(7, 1);
        assert_eq!(
            table.record(
                0,
                AttemptOutcome::of_status(429, None),
                NOW,
                &Failover::default()
            ),
            None
        );
        assert!(table.available(0, NOW));
        assert_eq!(table.entry(0).unwrap().consecutive_failures, 1);
    }

    #[test]
    fn retry_after_is_capped() {
        let mut table = HealthTable::new(7, 1);
        let failover = Failover {
            max_retry_after_ms: 60_000,
            ..Failover::default()
        };
        table.record(
            0,
            AttemptOutcome::of_status(503, Some(u64::MAX)),
            NOW,
            &failover,
        );
        assert!(table.available(0, NOW + 60_000));
    }

    #[test]
    fn repeated_failures_eject_for_a_doubling_time_and_a_success_resets() {
        let failover = Failover {
            eject_after_failures: 3,
            ejection_ms: 1_000,
            max_ejection_ms: 3_000,
            max_retry_after_ms: 300_000,
        };
        let mut table = HealthTable::new(7, 1);
        assert_eq!(
            table.record(0, AttemptOutcome::Failed(500), NOW, &failover),
            None
        );
        assert_eq!(
            table.record(0, AttemptOutcome::NoResponse, NOW, &failover),
            None
        );
        assert_eq!(
            table.record(0, AttemptOutcome::Failed(502), NOW, &failover),
            Some(HealthChange::Ejected {
                until_ms: NOW + 1_000
            })
        );
        assert!(!table.available(0, NOW + 999));
        let later = NOW + 1_000;
        for _ in 0..2 {
            table.record(0, AttemptOutcome::Failed(500), later, &failover);
        }
        assert_eq!(
            table.record(0, AttemptOutcome::Failed(500), later, &failover),
            Some(HealthChange::Ejected {
                until_ms: later + 2_000
            })
        );
        let later = later + 2_000;
        for _ in 0..2 {
            table.record(0, AttemptOutcome::Failed(500), later, &failover);
        }
        // Capped at max_ejection_ms.
        assert_eq!(
            table.record(0, AttemptOutcome::Failed(500), later, &failover),
            Some(HealthChange::Ejected {
                until_ms: later + 3_000
            })
        );
        table.record(0, AttemptOutcome::Answered(200), later + 3_000, &failover);
        assert_eq!(
            table.entry(0),
            Some(&TargetHealth {
                ejected_until_ms: later + 3_000,
                ..TargetHealth::default()
            })
        );
    }

    #[test]
    fn client_errors_are_not_the_targets_fault() {
        for status in [200, 400, 401, 404, 413] {
            assert!(
                !AttemptOutcome::of_status(status, None).is_failure(),
                "{status}"
            );
        }
        for status in [408, 429, 500, 502, 503, 504, 529] {
            assert!(
                AttemptOutcome::of_status(status, None).is_failure(),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        assert_eq!(retry_after_ms(Some("1500"), Some("9"), NOW), Some(1_500));
        assert_eq!(retry_after_ms(None, Some("2"), NOW), Some(2_000));
        assert_eq!(retry_after_ms(None, Some("0.25"), NOW), Some(250));
        assert_eq!(retry_after_ms(None, Some("-1"), NOW), None);
        assert_eq!(retry_after_ms(None, Some("soon"), NOW), None);
        assert_eq!(retry_after_ms(None, None, NOW), None);
        // 1_700_000_000 s is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            retry_after_ms(None, Some("Tue, 14 Nov 2023 22:13:30 GMT"), NOW),
            Some(10_000)
        );
    }

    #[test]
    fn the_table_survives_encoding_and_another_configuration_starts_over() {
        let mut table = HealthTable::new(7, 2);
        table.record(
            1,
            AttemptOutcome::of_status(429, Some(5)),
            NOW,
            &Failover::default(),
        );
        let mut back = HealthTable::decode(&table.encode());
        assert_eq!(back, table);
        back.align(7, 2);
        assert_eq!(back, table);
        back.align(8, 2);
        assert_eq!(back, HealthTable::new(8, 2));
        assert_eq!(HealthTable::decode(b"\xff\xff"), HealthTable::default());
    }
}
