//! What one rate step measured: per request outcomes reduced to the figures the report shows.

use std::time::Duration;

use super::workload::Workload;
use crate::pool::exchange::{Outcome, Status};
use crate::stats::percentile;

/// How requests reach the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    RoundRobin,
    LeastRequest,
    Sluice,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::RoundRobin, Policy::LeastRequest, Policy::Sluice];

    pub fn label(self) -> &'static str {
        match self {
            Policy::RoundRobin => "Envoy round robin",
            Policy::LeastRequest => "Envoy least-request",
            Policy::Sluice => "Envoy + Sluice",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round robin",
            Policy::LeastRequest => "least-request",
            Policy::Sluice => "Sluice",
        }
    }
}

/// The replicas' prefix-cache counters over one step, summed over replicas (token counts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheDelta {
    pub queries: f64,
    pub hits: f64,
    pub preemptions: f64,
}

impl CacheDelta {
    /// Share of the prompt tokens admitted that were found in the prefix cache.
    pub fn hit_share(&self) -> Option<f64> {
        (self.queries > 0.0).then(|| self.hits / self.queries)
    }
}

/// One (workload, rate, policy) step, reduced. Latencies in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub workload: Workload,
    pub policy: Policy,
    pub rate: f64,
    pub sent: usize,
    pub completed: usize,
    pub failed: usize,
    pub unfinished: usize,
    pub ttft: [Option<f64>; 3],
    pub e2e: [Option<f64>; 2],
    pub output_tokens: u64,
    /// From the step's start to the last request's end.
    pub wall_seconds: f64,
    pub cache: CacheDelta,
    pub max_lateness_ms: f64,
    pub first_error: Option<String>,
}

impl Step {
    /// Reduces the outcomes. A request cancelled before its first token counts in the TTFT
    /// percentiles with the time it had waited (a lower bound), so cutting a step short never
    /// flatters the setup that fell behind; failed requests are counted, not timed.
    pub fn from_outcomes(
        workload: Workload,
        policy: Policy,
        rate: f64,
        outcomes: &[Outcome],
        cache: CacheDelta,
    ) -> Self {
        let secs = |d: Duration| d.as_secs_f64();
        let ttfts: Vec<f64> = outcomes.iter().filter_map(Outcome::ttft_seconds).collect();
        let e2es: Vec<f64> = outcomes.iter().filter_map(Outcome::e2e_seconds).collect();
        let count = |f: fn(&Status) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
        let wall_seconds = outcomes
            .iter()
            .map(|o| secs(o.scheduled + o.elapsed))
            .fold(0.0, f64::max);
        let pct = |values: &[f64], p: f64| percentile(values, p);
        Self {
            workload,
            policy,
            rate,
            sent: outcomes.len(),
            completed: count(|s| *s == Status::Ok),
            failed: count(Status::is_error),
            unfinished: count(|s| *s == Status::Unfinished),
            ttft: [pct(&ttfts, 50.0), pct(&ttfts, 90.0), pct(&ttfts, 99.0)],
            e2e: [pct(&e2es, 50.0), pct(&e2es, 90.0)],
            output_tokens: outcomes.iter().map(|o| o.output_tokens).sum(),
            wall_seconds,
            cache,
            max_lateness_ms: outcomes
                .iter()
                .map(|o| o.lateness.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max),
            first_error: outcomes
                .iter()
                .find_map(|o| o.status.error().map(str::to_owned)),
        }
    }

    /// Output tokens per second over the step's wall time.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.wall_seconds > 0.0).then(|| self.output_tokens as f64 / self.wall_seconds)
    }

    pub fn ttft_p90(&self) -> Option<f64> {
        self.ttft[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(
        scheduled_ms: u64,
        ttft_ms: Option<u64>,
        elapsed_ms: u64,
        status: Status,
    ) -> Outcome {
        Outcome {
            scheduled: Duration::from_millis(scheduled_ms),
            lateness: Duration::from_millis(1),
            ttft: ttft_ms.map(Duration::from_millis),
            elapsed: Duration::from_millis(elapsed_ms),
            output_tokens: if status == Status::Ok { 10 } else { 3 },
            token_times: Vec::new(),
            status,
        }
    }

    #[test]
    fn reduces_outcomes_with_censored_waits() {
        let mut outcomes: Vec<Outcome> = (0..8)
            .map(|i| outcome(i * 100, Some(100 + i * 10), 500, Status::Ok))
            .collect();
        outcomes.push(outcome(900, None, 4000, Status::Unfinished));
        outcomes.push(outcome(950, None, 20, Status::Failed("503".into())));
        let step = Step::from_outcomes(
            Workload::PrefixHeavy,
            Policy::Sluice,
            10.0,
            &outcomes,
            CacheDelta {
                queries: 1000.0,
                hits: 250.0,
                preemptions: 0.0,
            },
        );
        assert_eq!(
            (step.sent, step.completed, step.failed, step.unfinished),
            (10, 8, 1, 1)
        );
        // 9 timed: 100..170 ms and the cancelled one's 4 s wait, which is the slowest.
        assert_eq!(step.ttft[0], Some(0.14));
        assert_eq!(step.ttft[2], Some(4.0));
        assert_eq!(step.e2e[0], Some(0.5));
        assert_eq!(step.output_tokens, 8 * 10 + 3 + 3);
        assert!((step.wall_seconds - 4.9).abs() < 1e-9);
        assert_eq!(step.cache.hit_share(), Some(0.25));
        assert_eq!(step.first_error.as_deref(), Some("503"));
        assert!((step.max_lateness_ms - 1.0).abs() < 1e-9);
        let tps = step.tokens_per_second().expect("throughput");
        assert!((tps - 86.0 / 4.9).abs() < 1e-9);
    }

    #[test]
    fn no_queries_no_share() {
        assert_eq!(CacheDelta::default().hit_share(), None);
    }
}
