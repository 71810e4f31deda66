//! The failover runs: the schedule, the faults, and what each run's samples say (errors,
//! latency before and during the fault, when the primary stopped getting attempts and when it
//! served again). The load itself is in `run`.
//!
//! Times are seconds from the moment the fault was switched on (the primary stand-in
//! acknowledged it): requests by when they were sent, the primary's counts by when they were
//! read. A request sent in the last `GUARD_S` before that may already have met the fault, so it
//! belongs to neither the baseline nor the fault (its errors still count).

use crate::report::Build;
use crate::stats::percentile;

/// Requests per second, sent on schedule whatever the answers do (an open loop).
pub const RATE_PER_S: u32 = 50;
/// Seconds of load before the measured stretch (connections, VMs and caches warm up).
pub const WARMUP_S: f64 = 2.0;
/// Seconds of load measured before the fault: the baseline.
pub const BEFORE_S: f64 = 5.0;
/// How long the fault lasts.
pub const FAULT_S: f64 = 6.0;
/// Seconds of load after the fault is cleared: long enough for an ejected primary to come back
/// (Sluice's and Envoy's ejections last 10 s from the fault's first seconds).
pub const AFTER_S: f64 = 10.0;
/// How often the primary stand-in's counts are read.
pub const POLL_MS: u64 = 50;
/// The primary counts as left alone once its count stands still this long (or until the
/// fault ends).
pub const QUIET_S: f64 = 1.0;
/// Requests sent this close before the fault was acknowledged are left out of the baseline.
pub const GUARD_S: f64 = 0.05;
/// `retry-after` of the 429 scenario, in seconds.
pub const RETRY_AFTER_S: u64 = 5;

/// A fault on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Every request answered 500 (no `retry-after`).
    ServerErrors,
    /// Every request answered 429 with `retry-after: 5`.
    RateLimited,
    /// The host plays dead: open connections closed, new ones refused.
    Dead,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::ServerErrors,
        Scenario::RateLimited,
        Scenario::Dead,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Scenario::ServerErrors => "500s",
            Scenario::RateLimited => "429 + retry-after 5 s",
            Scenario::Dead => "dead host",
        }
    }

    /// For file names.
    pub fn slug(self) -> &'static str {
        match self {
            Scenario::ServerErrors => "500",
            Scenario::RateLimited => "429",
            Scenario::Dead => "dead",
        }
    }

    /// The body of `PUT /admin/faults`.
    pub fn fault(self) -> serde_json::Value {
        match self {
            Scenario::ServerErrors => serde_json::json!({ "status": 500 }),
            Scenario::RateLimited => {
                serde_json::json!({ "status": 429, "retry_after_s": RETRY_AFTER_S })
            }
            Scenario::Dead => serde_json::json!({ "dead": true }),
        }
    }

    /// What takes the primary out of rotation, for the report.
    pub fn mechanism(self) -> &'static str {
        match self {
            Scenario::ServerErrors => {
                "ejection after consecutive failures (Sluice's `failover.eject_after_failures`, \
                 and Envoy's outlier detection, `consecutive_5xx: 5`)"
            }
            Scenario::RateLimited => "`retry-after` (the target is out of rotation until then)",
            Scenario::Dead => {
                "ejection after consecutive failures (Sluice's, and Envoy's outlier detection, \
                 two connection failures)"
            }
        }
    }
}

/// Which target answered a request, by the `model` its answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Primary,
    Secondary,
    /// No answer, an error, or a model neither target serves.
    Neither,
}

/// One request of the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was sent.
    pub at_s: f64,
    /// From its sending to the whole answer.
    pub latency_us: f64,
    /// 0: no HTTP answer.
    pub status: u16,
    pub served: Served,
}

/// The primary stand-in's counts, as read at `at_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Poll {
    pub at_s: f64,
    /// Requests received plus connections refused: every attempt that reached it.
    pub touches: u64,
    /// Answers with status 429.
    pub rate_limited: u64,
}

/// One scenario on one build.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub build: Build,
    pub scenario: Scenario,
    /// When the fault was cleared (about `FAULT_S`).
    pub fault_end_s: f64,
    /// Every request scheduled from `-BEFORE_S` on (the warm-up's are left out).
    pub samples: Vec<Sample>,
    pub polls: Vec<Poll>,
}

/// Latency percentiles of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    pub requests: usize,
}

impl ScenarioRun {
    fn in_phase(&self, from: f64, to: f64) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.at_s >= from && s.at_s < to)
    }

    /// Requests that did not get a 200, and all requests measured.
    pub fn errors(&self) -> (usize, usize) {
        let failed = self.samples.iter().filter(|s| s.status != 200).count();
        (failed, self.samples.len())
    }

    /// The statuses of the failed requests, e.g. `503 ×2, no answer ×1`.
    pub fn error_statuses(&self) -> String {
        let mut counts: std::collections::BTreeMap<u16, usize> = Default::default();
        for sample in self.samples.iter().filter(|s| s.status != 200) {
            *counts.entry(sample.status).or_default() += 1;
        }
        counts
            .iter()
            .map(|(status, n)| match status {
                0 => format!("no answer ×{n}"),
                s => format!("{s} ×{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn latency(&self, from: f64, to: f64) -> Latency {
        let values: Vec<f64> = self.in_phase(from, to).map(|s| s.latency_us).collect();
        Latency {
            p50_us: percentile(&values, 50.0),
            p99_us: percentile(&values, 99.0),
            max_us: percentile(&values, 100.0),
            requests: values.len(),
        }
    }

    /// The baseline: requests sent before the fault (and not just before it).
    pub fn before(&self) -> Latency {
        self.latency(f64::NEG_INFINITY, -GUARD_S)
    }

    /// Requests of the baseline the primary did not answer (none should be).
    pub fn before_not_served_by_primary(&self) -> usize {
        self.in_phase(f64::NEG_INFINITY, -GUARD_S)
            .filter(|s| s.served != Served::Primary)
            .count()
    }

    /// Requests sent while the fault was on.
    pub fn during(&self) -> Latency {
        self.latency(0.0, self.fault_end_s)
    }

    /// Requests sent after the fault was cleared.
    pub fn after(&self) -> Latency {
        self.latency(self.fault_end_s, f64::INFINITY)
    }

    /// During minus before: (p50, p99) in µs.
    pub fn extra_us(&self) -> (Option<f64>, Option<f64>) {
        let (before, during) = (self.before(), self.during());
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        (
            diff(during.p50_us, before.p50_us),
            diff(during.p99_us, before.p99_us),
        )
    }

    /// The primary's count at the last read at or before `at_s` (0 before the first read).
    fn touches_at(&self, at_s: f64) -> u64 {
        self.polls
            .iter()
            .take_while(|p| p.at_s <= at_s)
            .last()
            .map_or(0, |p| p.touches)
    }

    /// Attempts that reached the primary while the fault was on.
    pub fn primary_attempts_during(&self) -> u64 {
        self.touches_at(self.fault_end_s)
            .saturating_sub(self.touches_at(0.0))
    }

    /// How long after the fault started the primary stopped getting attempts: the first read
    /// during the fault after which its count stood still for `QUIET_S`. `None`: it never did.
    /// Accurate to a poll interval.
    pub fn stopped_s(&self) -> Option<f64> {
        let from = self.polls.iter().position(|p| p.at_s >= 0.0)?;
        let polls = self.polls.get(from..)?;
        polls
            .iter()
            .enumerate()
            .take_while(|(_, p)| p.at_s < self.fault_end_s)
            .find_map(|(i, poll)| {
                let rest = polls.get(i..)?;
                let until = poll.at_s + QUIET_S;
                let still = rest
                    .iter()
                    .take_while(|p| p.at_s <= until)
                    .all(|p| p.touches == poll.touches);
                let covered = rest.iter().any(|p| p.at_s >= until);
                (still && covered).then_some(poll.at_s)
            })
    }

    /// Attempts that reached the primary during the fault after it was first left alone (a
    /// probe once a `retry-after` or an ejection ran out while the fault was still on).
    pub fn primary_attempts_after_stop(&self) -> Option<u64> {
        let stopped = self.stopped_s()?;
        Some(
            self.touches_at(self.fault_end_s)
                .saturating_sub(self.touches_at(stopped)),
        )
    }

    /// Requests sent once the fault was on that the primary answered (none can, while it
    /// fails: a success there means it was used again).
    pub fn first_served_by_primary_s(&self) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.at_s >= 0.0 && s.served == Served::Primary)
            .map(|s| s.at_s)
            .min_by(f64::total_cmp)
    }

    /// When the primary last answered 429, as read (the `retry-after` runs from then).
    pub fn last_rate_limited_s(&self) -> Option<f64> {
        let first = self.polls.first()?.rate_limited;
        let mut last = None;
        let mut seen = first;
        for poll in &self.polls {
            if poll.rate_limited > seen {
                last = Some(poll.at_s);
                seen = poll.rate_limited;
            }
        }
        last
    }

    /// Requests served by each target after the fault was cleared: (primary, secondary).
    pub fn served_after(&self) -> (usize, usize) {
        let after: Vec<&Sample> = self.in_phase(self.fault_end_s, f64::INFINITY).collect();
        (
            after.iter().filter(|s| s.served == Served::Primary).count(),
            after
                .iter()
                .filter(|s| s.served == Served::Secondary)
                .count(),
        )
    }

    /// For the 429 scenario: whether the primary served again, and not before the
    /// `retry-after` of its last 429 ran out (allowing two poll intervals for when the 429
    /// was read).
    pub fn honours_retry_after(&self) -> Option<bool> {
        let back = self.first_served_by_primary_s()?;
        let last = self.last_rate_limited_s()?;
        let slack = 2.0 * POLL_MS as f64 / 1000.0;
        Some(back + slack >= last + RETRY_AFTER_S as f64)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run: requests every 20 ms from -5 s to 16 s, served by the secondary from 0 s to
    /// `back_s`, the primary otherwise; the primary's count rises every poll until `stop_s`
    /// (and again from `back_s`); 429s counted until `stop_s`.
    pub(crate) fn run(stop_s: f64, back_s: f64) -> ScenarioRun {
        let samples = (0..1050)
            .map(|i| {
                let at_s = -5.0 + f64::from(i) * 0.02;
                let primary = !(0.0..back_s).contains(&at_s);
                Sample {
                    at_s,
                    latency_us: if primary { 1000.0 } else { 1500.0 },
                    status: 200,
                    served: if primary {
                        Served::Primary
                    } else {
                        Served::Secondary
                    },
                }
            })
            .collect();
        let (mut touches, mut rate_limited) = (0, 0);
        let polls = (0..320)
            .map(|i| {
                let at_s = -5.0 + f64::from(i) * 0.05;
                if at_s < stop_s || at_s >= back_s {
                    touches += 2;
                }
                if (0.0..stop_s).contains(&at_s) {
                    rate_limited += 2;
                }
                Poll {
                    at_s,
                    touches,
                    rate_limited,
                }
            })
            .collect();
        ScenarioRun {
            build: Build::Native,
            scenario: Scenario::RateLimited,
            fault_end_s: 6.0,
            samples,
            polls,
        }
    }

    #[test]
    fn phases_and_extra_latency() {
        let run = run(0.2, 10.0);
        // -5 s to -0.05 s.
        assert_eq!(run.before().requests, 248);
        assert_eq!(run.during().requests, 300);
        assert_eq!(run.before().p50_us, Some(1000.0));
        assert_eq!(run.during().p50_us, Some(1500.0));
        assert_eq!(run.extra_us(), (Some(500.0), Some(500.0)));
        assert_eq!(run.errors(), (0, 1050));
    }

    #[test]
    fn the_primary_stops_at_the_first_quiet_read() {
        let run = run(0.2, 10.0);
        let stopped = run.stopped_s().expect("stopped");
        assert!((stopped - 0.15).abs() < 1e-9, "{stopped}");
        assert_eq!(run.primary_attempts_after_stop(), Some(0));
        // Reads at 0.05, 0.1 and 0.15 s saw 2 more each.
        assert_eq!(run.primary_attempts_during(), 6);
        let back = run.first_served_by_primary_s().expect("back");
        assert!((back - 10.0).abs() < 1e-9, "{back}");
        assert_eq!(run.served_after().0, 300);
    }

    #[test]
    fn a_primary_tried_throughout_never_stops() {
        let run = run(7.0, 10.0);
        assert_eq!(run.stopped_s(), None);
        assert_eq!(run.primary_attempts_after_stop(), None);
    }

    #[test]
    fn retry_after_is_honoured_only_when_the_primary_waits_it_out() {
        // The last 429 read at 0.15 s: back at 10 s is after 5.15 s.
        assert_eq!(run(0.2, 10.0).honours_retry_after(), Some(true));
        // Back at 3 s: too early.
        let early = run(0.2, 3.0);
        assert_eq!(early.honours_retry_after(), Some(false));
        // Never back: not honoured either way (reported as not measured).
        let mut never = run(0.2, 10.0);
        never.samples.iter_mut().for_each(|s| {
            if s.at_s >= 0.0 {
                s.served = Served::Secondary;
            }
        });
        assert_eq!(never.honours_retry_after(), None);
    }

    #[test]
    fn error_statuses_are_counted() {
        let mut run = run(0.2, 10.0);
        run.samples[300].status = 503;
        run.samples[301].status = 503;
        run.samples[302].status = 0;
        assert_eq!(run.errors(), (3, 1050));
        assert_eq!(run.error_statuses(), "no answer ×1, 503 ×2");
    }
}
