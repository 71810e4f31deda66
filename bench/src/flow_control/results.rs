//! What one step measured for one setup: per tenant (class) figures over the step's window, the
//! replicas' load, and the shares the targets need.

use std::time::Duration;

use super::fairness;
use super::workload::{Scenario, StepPlan};
use crate::pool::exchange::{Outcome, Status};
use crate::pool::occupancy::{self, Occupancy, Sample};
use crate::stats::percentile;

/// The three setups side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Plain Envoy (no filter), `least_request` over the replicas.
    LeastRequest,
    /// Envoy + Sluice as it is without flow control: picking, shedding with 429 when every
    /// replica queues.
    SluiceToday,
    /// Envoy + Sluice with `flow_control`.
    FlowControl,
}

impl Variant {
    pub const ALL: [Variant; 3] = [
        Variant::LeastRequest,
        Variant::SluiceToday,
        Variant::FlowControl,
    ];
    pub const BASELINES: [Variant; 2] = [Variant::LeastRequest, Variant::SluiceToday];

    pub fn label(self) -> &'static str {
        match self {
            Variant::LeastRequest => "Envoy least-request",
            Variant::SluiceToday => "Sluice today",
            Variant::FlowControl => "Sluice with flow control",
        }
    }
}

/// One tenant's (class's) requests in one step. Latencies in seconds, rates per second of the
/// window.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub tenant: String,
    /// Requests due in the window, and what became of them.
    pub sent: usize,
    pub completed: usize,
    /// Refused with 429 or 503.
    pub rejected: usize,
    pub failed: usize,
    /// Cancelled when the step's drain ran out.
    pub unfinished: usize,
    pub ttft: [Option<f64>; 3],
    /// Every timed TTFT, for percentiles over several tenants together.
    pub ttft_samples: Vec<f64>,
    pub e2e: [Option<f64>; 2],
    /// Output tokens that arrived during the window.
    pub output_tps: f64,
    /// Prompt + output tokens served during the window: a request's prompt when its first token
    /// came, its output tokens as they came.
    pub served_tps: f64,
    /// Prompt + `max_tokens` of the requests due in the window.
    pub demand_tps: f64,
}

/// One (scenario, setup) step, reduced.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub scenario: Scenario,
    pub variant: Variant,
    /// One per stream of the plan, in its order.
    pub groups: Vec<Group>,
    pub occupancy: Option<Occupancy>,
    /// The measurement window, seconds from the step's start.
    pub window: (f64, f64),
    pub max_lateness_ms: f64,
    pub first_error: Option<String>,
}

impl StepResult {
    /// Reduces the outcomes (`outcomes[i]` answers `plan.requests[i]`) over the window `[from,
    /// to)` of the step. TTFT and e2e are over the requests due in the window; a request
    /// cancelled before its first token counts with the time it had waited (a lower bound), so
    /// cutting a step short never flatters the setup that fell behind; rejected and failed
    /// requests are counted, not timed.
    pub fn from_outcomes(
        plan: &StepPlan,
        variant: Variant,
        outcomes: &[Outcome],
        samples: &[Sample],
        (from, to): (Duration, Duration),
    ) -> Self {
        let seconds = to.saturating_sub(from).as_secs_f64();
        let per_second = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        let due = |o: &Outcome| (from..to).contains(&o.scheduled);
        let groups = plan
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                let mine: Vec<(&Outcome, u32, u32)> = outcomes
                    .iter()
                    .zip(&plan.meta)
                    .zip(&plan.requests)
                    .filter(|((_, meta), _)| meta.stream == index)
                    .map(|((o, meta), planned)| (o, meta.prompt_tokens, planned.max_tokens))
                    .collect();
                let timed: Vec<&Outcome> =
                    mine.iter().map(|(o, _, _)| *o).filter(|o| due(o)).collect();
                let ttfts: Vec<f64> = timed.iter().filter_map(|o| o.ttft_seconds()).collect();
                let e2es: Vec<f64> = timed.iter().filter_map(|o| o.e2e_seconds()).collect();
                let count = |f: fn(&Status) -> bool| timed.iter().filter(|o| f(&o.status)).count();
                let output: u64 = mine
                    .iter()
                    .map(|(o, _, _)| o.tokens_between(from, to))
                    .sum();
                let prompts: u64 = mine
                    .iter()
                    .filter(|(o, _, _)| o.first_token_at().is_some_and(|t| (from..to).contains(&t)))
                    .map(|(_, prompt, _)| u64::from(*prompt))
                    .sum();
                let demand: u64 = mine
                    .iter()
                    .filter(|(o, _, _)| due(o))
                    .map(|(_, prompt, max_tokens)| u64::from(*prompt) + u64::from(*max_tokens))
                    .sum();
                Group {
                    tenant: stream.tenant.clone(),
                    sent: timed.len(),
                    completed: count(|s| *s == Status::Ok),
                    rejected: count(|s| matches!(s, Status::Rejected { .. })),
                    failed: count(|s| matches!(s, Status::Failed(_))),
                    unfinished: count(|s| *s == Status::Unfinished),
                    ttft: [
                        percentile(&ttfts, 50.0),
                        percentile(&ttfts, 90.0),
                        percentile(&ttfts, 99.0),
                    ],
                    ttft_samples: ttfts,
                    e2e: [percentile(&e2es, 50.0), percentile(&e2es, 90.0)],
                    output_tps: per_second(output as f64),
                    served_tps: per_second((output + prompts) as f64),
                    demand_tps: per_second(demand as f64),
                }
            })
            .collect();
        Self {
            scenario: plan.scenario,
            variant,
            groups,
            occupancy: occupancy::mean_per_replica(samples, from, to),
            window: (from.as_secs_f64(), to.as_secs_f64()),
            max_lateness_ms: outcomes
                .iter()
                .map(|o| o.lateness.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max),
            first_error: outcomes.iter().find_map(|o| match &o.status {
                Status::Failed(e) => Some(e.clone()),
                _ => None,
            }),
        }
    }

    pub fn group(&self, tenant: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.tenant == tenant)
    }

    /// Output tokens per second of every tenant together.
    pub fn output_tps(&self) -> f64 {
        self.groups.iter().map(|g| g.output_tps).sum()
    }

    pub fn served_tps(&self) -> f64 {
        self.groups.iter().map(|g| g.served_tps).sum()
    }

    /// `tenant`'s share of the prompt + output tokens served.
    pub fn served_share(&self, tenant: &str) -> Option<f64> {
        let total = self.served_tps();
        let group = self.group(tenant)?;
        (total > 0.0).then(|| group.served_tps / total)
    }

    /// Each tenant's max-min fair share of the tokens served, as a share of them.
    pub fn fair_shares(&self) -> Vec<f64> {
        let total = self.served_tps();
        let demands: Vec<f64> = self.groups.iter().map(|g| g.demand_tps).collect();
        fairness::max_min_shares(&demands, total)
            .into_iter()
            .map(|share| if total > 0.0 { share / total } else { 0.0 })
            .collect()
    }

    /// Each tenant's service over its fair share (1 is exactly fair).
    pub fn normalized_service(&self) -> Vec<Option<f64>> {
        let (served, demands) = self.served_and_demands();
        fairness::normalized_service(&served, &demands)
    }

    /// Jain's index of the normalized service.
    pub fn fairness_index(&self) -> Option<f64> {
        let (served, demands) = self.served_and_demands();
        fairness::fairness_index(&served, &demands)
    }

    fn served_and_demands(&self) -> (Vec<f64>, Vec<f64>) {
        self.groups
            .iter()
            .map(|g| (g.served_tps, g.demand_tps))
            .unzip()
    }

    /// The `p`-th percentile TTFT of the requests of the tenants `which` picks, together.
    pub fn pooled_ttft(&self, which: impl Fn(&Group) -> bool, p: f64) -> Option<f64> {
        let all: Vec<f64> = self
            .groups
            .iter()
            .filter(|g| which(g))
            .flat_map(|g| g.ttft_samples.iter().copied())
            .collect();
        percentile(&all, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_control::settings::SHORT;
    use crate::flow_control::workload::{Meta, Stream};
    use crate::pool::exchange::Planned;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn plan(requests: &[(u64, usize, u32, u32)]) -> StepPlan {
        StepPlan {
            scenario: Scenario::Priority,
            streams: ["a", "b"]
                .iter()
                .map(|t| Stream {
                    tenant: (*t).to_owned(),
                    rate: 1.0,
                    shape: SHORT,
                })
                .collect(),
            capacity: 1.0,
            requests: requests
                .iter()
                .map(|&(at, _, _, max_tokens)| Planned {
                    at: ms(at),
                    body: String::new(),
                    max_tokens,
                    headers: Vec::new(),
                })
                .collect(),
            meta: requests
                .iter()
                .map(|&(_, stream, prompt_tokens, _)| Meta {
                    stream,
                    prompt_tokens,
                })
                .collect(),
        }
    }

    fn done(at: u64, ttft: u64, tokens: u64) -> Outcome {
        Outcome {
            scheduled: ms(at),
            lateness: ms(0),
            ttft: Some(ms(ttft)),
            elapsed: ms(ttft + 10 * tokens),
            output_tokens: tokens,
            token_times: (0..tokens).map(|i| ms(ttft + 10 * i)).collect(),
            status: Status::Ok,
        }
    }

    #[test]
    fn groups_count_tokens_inside_the_window() {
        // Window [1 s, 3 s).
        let plan = plan(&[
            (500, 0, 100, 10),  // a, due before the window: served in it, not timed
            (1000, 0, 100, 10), // a
            (1500, 1, 300, 10), // b, rejected
            (2900, 1, 50, 20),  // b, first token at 3 s: outside
            (2950, 0, 100, 10), // a, cancelled
        ]);
        let mut cancelled = done(2950, 0, 0);
        cancelled.ttft = None;
        cancelled.elapsed = ms(2000);
        cancelled.status = Status::Unfinished;
        let outcomes = vec![
            done(500, 600, 10),
            done(1000, 100, 10),
            Outcome {
                status: Status::Rejected {
                    status: 429,
                    message: "status 429".into(),
                },
                ttft: None,
                token_times: Vec::new(),
                output_tokens: 0,
                ..done(1500, 0, 0)
            },
            done(2900, 100, 20),
            cancelled,
        ];
        let samples = vec![Sample {
            at: ms(2000),
            replicas: vec![(16.0, 1.0), (8.0, 0.0)],
        }];
        let step = StepResult::from_outcomes(
            &plan,
            Variant::FlowControl,
            &outcomes,
            &samples,
            (ms(1000), ms(3000)),
        );
        let a = step.group("a").expect("a");
        assert_eq!((a.sent, a.completed, a.unfinished), (2, 1, 1));
        // Output in the window: 10 of the first (1.1–1.19 s), 10 of the second; prompts of both.
        assert!((a.output_tps - 20.0 / 2.0).abs() < 1e-9, "{a:?}");
        assert!((a.served_tps - 220.0 / 2.0).abs() < 1e-9, "{a:?}");
        // Due in the window: the second and the cancelled one.
        assert!((a.demand_tps - 220.0 / 2.0).abs() < 1e-9);
        // TTFT: 100 ms and the cancelled one's 2 s wait.
        assert_eq!(a.ttft[0], Some(0.1));
        assert_eq!(a.ttft[1], Some(2.0));
        let b = step.group("b").expect("b");
        assert_eq!((b.sent, b.rejected, b.completed), (2, 1, 1));
        assert_eq!(b.ttft[0], Some(0.1), "the rejected one is not timed");
        assert_eq!(b.served_tps, 0.0, "its tokens came after the window");
        assert!((b.demand_tps - (310.0 + 70.0) / 2.0).abs() < 1e-9);
        assert!((step.output_tps() - 10.0).abs() < 1e-9);
        assert_eq!(step.served_share("a"), Some(1.0));
        let occupancy = step.occupancy.expect("sampled");
        assert_eq!((occupancy.running, occupancy.waiting), (12.0, 0.5));
    }

    #[test]
    fn shares_and_fairness_follow_service() {
        let step = StepResult {
            scenario: Scenario::Fairness,
            variant: Variant::LeastRequest,
            groups: [("heavy", 500.0, 1000.0), ("light", 50.0, 100.0)]
                .iter()
                .map(|&(tenant, served, demand)| Group {
                    tenant: tenant.into(),
                    sent: 1,
                    completed: 1,
                    rejected: 0,
                    failed: 0,
                    unfinished: 0,
                    ttft: [None, Some(1.0), None],
                    ttft_samples: vec![served / 500.0, 1.0],
                    e2e: [None, None],
                    output_tps: served / 2.0,
                    served_tps: served,
                    demand_tps: demand,
                })
                .collect(),
            occupancy: None,
            window: (1.0, 3.0),
            max_lateness_ms: 0.0,
            first_error: None,
        };
        // 550 served: light's fair share is its demand (100), heavy's the rest (450).
        let fair = step.fair_shares();
        assert!((fair[1] - 100.0 / 550.0).abs() < 1e-9);
        let normalized = step.normalized_service();
        assert_eq!(normalized[1], Some(0.5));
        assert!((normalized[0].expect("x") - 500.0 / 450.0).abs() < 1e-9);
        let index = step.fairness_index().expect("index");
        assert!(index < 0.9, "{index}");
        assert_eq!(step.pooled_ttft(|g| g.tenant == "light", 50.0), Some(0.1));
        // [0.1, 1, 1, 1] together.
        assert_eq!(step.pooled_ttft(|_| true, 25.0), Some(0.1));
        assert_eq!(step.pooled_ttft(|_| true, 50.0), Some(1.0));
    }
}
