//! The routing section of the report: a plain-text summary on stdout and the `## Routing`
//! section of `BENCHMARKS.md`, with the issue's targets checked against what was measured.

use std::fmt::Write as _;

use sluice_core::picking::Weights;

use super::results::{Policy, Step};
use super::settings::{self, REPLICAS, SHAPE};
use super::workload::Workload;
use crate::figures::{self, fmt_s, fmt_share, fmt_tps, provenance, ratio, verdict};
use crate::report::{Build, Machine, Target, fmt_ratio, table};
use crate::sections::{BEGIN, END};

/// A target's "no worse" allows this much: the spread of repeated runs of the same setup on
/// this shared machine (see docs/routing-tuning.md).
pub const NO_WORSE_TTFT: f64 = 0.10;
pub const NO_WORSE_THROUGHPUT: f64 = 0.05;

/// The rates one workload ran at.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    pub workload: Workload,
    /// Multiples of `capacity`.
    pub loads: Vec<f64>,
    pub rates: Vec<f64>,
    /// Estimated requests/s the pool sustains with nothing cached (`pool::settings::capacity`).
    pub capacity: f64,
    pub prompt_tokens: f64,
    /// Requests per step.
    pub requests: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct RoutingReport {
    pub machine: Machine,
    /// The Sluice build of the *Envoy + Sluice* setup.
    pub build: Build,
    pub plans: Vec<WorkloadPlan>,
    pub steps: Vec<Step>,
    pub step_seconds: f64,
    pub drain_seconds: f64,
    pub weights: Weights,
    pub filter_configuration: String,
    /// Per workload: requests the filter picked a replica for, and those it left to Envoy.
    pub picks: Vec<(Workload, u64, u64)>,
    pub warnings: Vec<String>,
    pub quick: bool,
    pub elapsed_seconds: u64,
}

/// One step's progress line while the benchmark runs.
pub fn progress_line(step: &Step) -> String {
    format!(
        "{:<12} {:>5.1}/s  {:<20} TTFT p50 {:>8} p90 {:>8} p99 {:>8}  e2e p90 {:>8}  {:>5} tok/s  \
         cache hits {:>4}  {}/{} done{}",
        step.workload.label(),
        step.rate,
        step.policy.label(),
        fmt_s(step.ttft[0]),
        fmt_s(step.ttft[1]),
        fmt_s(step.ttft[2]),
        fmt_s(step.e2e[1]),
        fmt_tps(step.tokens_per_second()),
        fmt_share(step.cache.hit_share()),
        step.completed,
        step.sent,
        if step.failed + step.unfinished > 0 {
            format!(" ({} failed, {} cut off)", step.failed, step.unfinished)
        } else {
            String::new()
        }
    )
}

impl RoutingReport {
    fn step(&self, workload: Workload, rate: f64, policy: Policy) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.workload == workload && s.rate == rate && s.policy == policy)
    }

    fn plan(&self, workload: Workload) -> Option<&WorkloadPlan> {
        self.plans.iter().find(|p| p.workload == workload)
    }

    /// The issue's targets, each with what was measured.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let heavy_top = self
            .plan(Workload::PrefixHeavy)
            .and_then(|p| p.rates.last().copied());
        let pair = |rate: Option<f64>, base: Policy| {
            rate.and_then(|r| {
                Some((
                    self.step(Workload::PrefixHeavy, r, Policy::Sluice)?,
                    self.step(Workload::PrefixHeavy, r, base)?,
                ))
            })
        };
        let at = heavy_top.map_or(String::new(), |r| format!(" ({r}/s)"));
        let rr = pair(heavy_top, Policy::RoundRobin);
        let speedup = rr.and_then(|(s, r)| ratio(r.ttft_p90(), s.ttft_p90()));
        targets.push(Target {
            name: format!(
                "prefix-heavy, highest rate{at}: p90 TTFT at least 2× lower than round robin"
            ),
            measured: rr.map_or("–".into(), |(s, r)| {
                format!(
                    "{} lower ({} vs {})",
                    fmt_ratio(speedup),
                    fmt_s(s.ttft_p90()),
                    fmt_s(r.ttft_p90())
                )
            }),
            verdict: verdict(speedup.map(|x| x >= 2.0)),
        });
        let gain = rr.and_then(|(s, r)| ratio(s.tokens_per_second(), r.tokens_per_second()));
        targets.push(Target {
            name: format!(
                "prefix-heavy, highest rate{at}: output tokens/s at least 1.2× round robin's"
            ),
            measured: rr.map_or("–".into(), |(s, r)| {
                format!(
                    "{} ({} vs {} tok/s)",
                    fmt_ratio(gain),
                    fmt_tps(s.tokens_per_second()),
                    fmt_tps(r.tokens_per_second())
                )
            }),
            verdict: verdict(gain.map(|x| x >= 1.2)),
        });
        let independent = self.plan(Workload::Independent);
        let rates: Vec<f64> = independent.map_or(Vec::new(), |p| p.rates.clone());
        let pairs: Vec<(f64, &Step, &Step)> = rates
            .iter()
            .filter_map(|&r| {
                Some((
                    r,
                    self.step(Workload::Independent, r, Policy::Sluice)?,
                    self.step(Workload::Independent, r, Policy::LeastRequest)?,
                ))
            })
            .collect();
        let complete = !pairs.is_empty() && pairs.len() == rates.len();
        let ttft: Vec<(f64, Option<f64>)> = pairs
            .iter()
            .map(|(r, s, l)| (*r, ratio(s.ttft_p90(), l.ttft_p90())))
            .collect();
        targets.push(Target {
            name: format!(
                "independent, every rate: p90 TTFT no worse than least-request's (within {:.0}%)",
                NO_WORSE_TTFT * 100.0
            ),
            measured: list(&ttft, "Sluice ÷ least-request"),
            verdict: verdict(complete.then(|| {
                ttft.iter()
                    .all(|(_, x)| x.is_some_and(|x| x <= 1.0 + NO_WORSE_TTFT))
            })),
        });
        let tput: Vec<(f64, Option<f64>)> = pairs
            .iter()
            .map(|(r, s, l)| (*r, ratio(s.tokens_per_second(), l.tokens_per_second())))
            .collect();
        targets.push(Target {
            name: format!(
                "independent, every rate: output tokens/s no worse than least-request's (within \
                 {:.0}%)",
                NO_WORSE_THROUGHPUT * 100.0
            ),
            measured: list(&tput, "Sluice ÷ least-request"),
            verdict: verdict(complete.then(|| {
                tput.iter()
                    .all(|(_, x)| x.is_some_and(|x| x >= 1.0 - NO_WORSE_THROUGHPUT))
            })),
        });
        targets
    }

    fn targets_table(&self) -> String {
        figures::targets_table(&self.targets())
    }

    fn missed(&self) -> Vec<String> {
        figures::missed(&self.targets())
    }

    /// One row per rate and setup.
    fn workload_table(&self, plan: &WorkloadPlan) -> String {
        let mut rows = Vec::new();
        for (load, &rate) in plan.loads.iter().zip(&plan.rates) {
            for policy in Policy::ALL {
                let Some(s) = self.step(plan.workload, rate, policy) else {
                    continue;
                };
                rows.push(vec![
                    format!("{rate}/s ({load}×)"),
                    policy.label().to_owned(),
                    fmt_s(s.ttft[0]),
                    fmt_s(s.ttft[1]),
                    fmt_s(s.ttft[2]),
                    fmt_s(s.e2e[0]),
                    fmt_s(s.e2e[1]),
                    fmt_tps(s.tokens_per_second()),
                    format!("{}/{}", s.completed, s.sent),
                    (s.failed + s.unfinished).to_string(),
                    fmt_share(s.cache.hit_share()),
                    format!("{:.0}", s.cache.preemptions),
                ]);
            }
        }
        table(
            &[
                "rate (× capacity)",
                "setup",
                "TTFT p50",
                "TTFT p90",
                "TTFT p99",
                "e2e p50",
                "e2e p90",
                "output tok/s",
                "done/sent",
                "failed or cut off",
                "prefix-cache hits",
                "preemptions",
            ],
            &rows,
        )
    }

    /// Sluice over each baseline, per rate: below 1 is better for TTFT, above 1 for throughput.
    fn ratio_table(&self, plan: &WorkloadPlan) -> String {
        let mut rows = Vec::new();
        for &rate in &plan.rates {
            let Some(sluice) = self.step(plan.workload, rate, Policy::Sluice) else {
                continue;
            };
            let mut row = vec![format!("{rate}/s")];
            for base in [Policy::RoundRobin, Policy::LeastRequest] {
                let b = self.step(plan.workload, rate, base);
                row.push(fmt_ratio(ratio(
                    sluice.ttft_p90(),
                    b.and_then(Step::ttft_p90),
                )));
                row.push(fmt_ratio(ratio(sluice.e2e[1], b.and_then(|b| b.e2e[1]))));
                row.push(fmt_ratio(ratio(
                    sluice.tokens_per_second(),
                    b.and_then(Step::tokens_per_second),
                )));
            }
            rows.push(row);
        }
        table(
            &[
                "rate",
                "TTFT p90 ÷ RR",
                "e2e p90 ÷ RR",
                "tok/s ÷ RR",
                "TTFT p90 ÷ LR",
                "e2e p90 ÷ LR",
                "tok/s ÷ LR",
            ],
            &rows,
        )
    }

    /// What `bench` prints at the end of the section.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Routing targets:\n{}", self.targets_table());
        for line in self.missed() {
            let _ = writeln!(out, "{line}");
        }
        for plan in &self.plans {
            let _ = writeln!(
                out,
                "\n{} workload:\n{}\nSluice ÷ round robin (RR) and ÷ least-request (LR):\n{}",
                plan.workload.label(),
                self.workload_table(plan),
                self.ratio_table(plan)
            );
        }
        for line in &self.warnings {
            let _ = writeln!(out, "WARNING: {line}");
        }
        let _ = writeln!(
            out,
            "Routing section took {} min {} s.",
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60
        );
        out
    }

    /// The `## Routing` section, between `BEGIN` and `END`.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n");
        let _ = writeln!(
            out,
            "## Routing: Sluice's replica picking against Envoy's\n"
        );
        provenance(
            &mut out,
            "routing",
            self.build,
            &m.date,
            self.elapsed_seconds,
            self.quick,
        );
        let _ = writeln!(
            out,
            "**Machine:** {} One run: the replicas, the three Envoys, the picker and the load \
             driver share the 2 cores with other work, so single figures are noisy (see \
             `docs/routing-tuning.md` for repeated runs).\n",
            m.sentence()
        );
        for line in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {line}\n");
        }
        let _ = writeln!(out, "### Targets\n\n{}", self.targets_table());
        let missed = self.missed();
        if missed.is_empty() {
            let _ = writeln!(out, "Every routing target was met.\n");
        } else {
            for line in missed {
                let _ = writeln!(out, "- **{line}**");
            }
            let _ = writeln!(out);
        }
        for plan in &self.plans {
            let _ = writeln!(
                out,
                "### {} workload\n\n{} requests per step ({}), mean prompt {:.0} tokens; \
                 capacity with nothing cached estimated at {:.1} requests/s.\n\n{}\n\
                 Sluice ÷ round robin (RR) and ÷ least-request (LR); TTFT and e2e below 1 and \
                 tokens/s above 1 favour Sluice:\n\n{}",
                plan.workload.label(),
                plan.requests
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.rates
                    .iter()
                    .map(|r| format!("{r}/s"))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.prompt_tokens,
                plan.capacity,
                self.workload_table(plan),
                self.ratio_table(plan)
            );
        }
        let picks: Vec<String> = self
            .picks
            .iter()
            .map(|(w, picked, fell_back)| {
                format!(
                    "{}: {picked} requests picked by the filter, {fell_back} left to Envoy",
                    w.label()
                )
            })
            .collect();
        let _ = writeln!(out, "### Method\n");
        let _ = writeln!(
            out,
            "- **Replicas:** {} `sluice-simulator` processes (release build), each one simulated \
             GPU: `--max-num-seqs {}`, `--kv-blocks {}` × `--block-size {}` ({} tokens of KV \
             cache), `--prefill-us-per-token {}`, `--decode-ms-per-step {}`, prefix caching on. \
             Why these numbers: `bench/src/routing/settings.rs`. They are restarted before each \
             setup of each workload, so every setup starts with empty queues and cold caches.\n\
             - **Setups,** all three from the shipped `{}` with `--concurrency 2`, every \
             cluster pointing at the same replicas: *Envoy round robin* = the `sluice` filter \
             removed, so the clusters' `override_host` policy always falls back to its \
             `round_robin`; *Envoy least-request* = the same with that fallback replaced by \
             `least_request` (Envoy's default: the less loaded of two random hosts); *Envoy + \
             Sluice* = the shipped file with the filter configuration below (picking on, refresh \
             {} ms) and the picker (`sluice-picker`, scraping every {} ms).\n\
             - **Prefix-heavy workload:** {} tenants, each with a system prompt of {}–{} tokens \
             and {} conversations of up to {} turns (then a new one starts); a request is the \
             next turn of a random conversation: system prompt + history ({}–{}-token user turns, \
             {}–{}-token assistant replies) + a new user turn; `max_tokens` {}–{}. **Independent \
             workload:** the same arrivals, message lengths and `max_tokens`, every message \
             replaced by text no other request shares.\n\
             - **Load:** open loop, Poisson arrivals (seeded: every setup gets the same arrival \
             times and bodies), {} s per rate, each request sent on schedule on its own task \
             whatever the earlier ones do; streaming chat completions with \
             `stream_options.include_usage`. After the last arrival a step waits up to {} s for \
             the stragglers, then cancels them (counted as cut off, their wait counted in TTFT \
             as a lower bound).\n\
             - **Figures:** TTFT = scheduled send → first content chunk; e2e = scheduled send → \
             end of stream; output tok/s = output tokens (from `usage`) of the step ÷ its wall \
             time (first arrival → last answer); prefix-cache hits = Δ \
             `vllm:prefix_cache_hits_total` ÷ Δ `vllm:prefix_cache_queries_total` summed over \
             the replicas (prompt tokens found cached, over prompt tokens admitted); preemptions = \
             Δ `vllm:num_preemptions_total`. Rates are multiples of the capacity estimated from \
             the timings with nothing cached (`pool::settings::capacity`).\n\
             - **Picking weights:** `{}`{}.\n",
            REPLICAS.replicas,
            REPLICAS.max_num_seqs,
            REPLICAS.kv_blocks,
            REPLICAS.block_size,
            REPLICAS.kv_tokens(),
            REPLICAS.prefill_us_per_token,
            REPLICAS.decode_ms_per_step,
            self.build.config_file(),
            settings::REFRESH_MS,
            settings::REFRESH_MS,
            SHAPE.tenants,
            SHAPE.system_tokens.0,
            SHAPE.system_tokens.1,
            SHAPE.conversations_per_tenant,
            SHAPE.max_turns,
            SHAPE.user_tokens.0,
            SHAPE.user_tokens.1,
            SHAPE.assistant_tokens.0,
            SHAPE.assistant_tokens.1,
            SHAPE.output_tokens.0,
            SHAPE.output_tokens.1,
            self.step_seconds,
            self.drain_seconds,
            settings::format_weights(&self.weights),
            if picks.is_empty() {
                String::new()
            } else {
                format!("; {}", picks.join("; "))
            }
        );
        let _ = writeln!(
            out,
            "Sluice filter configuration:\n\n```json\n{}\n```\n",
            self.filter_configuration.trim()
        );
        let _ = writeln!(out, "{END}");
        out
    }
}

fn list(values: &[(f64, Option<f64>)], what: &str) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let parts: Vec<String> = values
        .iter()
        .map(|(rate, x)| format!("{rate}/s: {}", fmt_ratio(*x)))
        .collect();
    format!("{what}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;
    use crate::routing::results::CacheDelta;

    fn step(workload: Workload, rate: f64, policy: Policy, p90: f64, tokens: u64) -> Step {
        Step {
            workload,
            policy,
            rate,
            sent: 10,
            completed: 10,
            failed: 0,
            unfinished: 0,
            ttft: [Some(p90 / 2.0), Some(p90), Some(p90 * 2.0)],
            e2e: [Some(1.0), Some(2.0)],
            output_tokens: tokens,
            wall_seconds: 10.0,
            cache: CacheDelta {
                queries: 100.0,
                hits: 50.0,
                preemptions: 0.0,
            },
            max_lateness_ms: 0.0,
            first_error: None,
        }
    }

    fn report(steps: Vec<Step>) -> RoutingReport {
        let plan = |workload| WorkloadPlan {
            workload,
            loads: vec![1.0, 2.0],
            rates: vec![10.0, 20.0],
            capacity: 10.0,
            prompt_tokens: 1800.0,
            requests: vec![60, 120],
        };
        RoutingReport {
            machine: Machine::default(),
            build: Build::Native,
            plans: vec![plan(Workload::PrefixHeavy), plan(Workload::Independent)],
            steps,
            step_seconds: 6.0,
            drain_seconds: 6.0,
            weights: Weights::default(),
            filter_configuration: "{}".into(),
            picks: vec![(Workload::PrefixHeavy, 100, 0)],
            warnings: Vec::new(),
            quick: false,
            elapsed_seconds: 200,
        }
    }

    #[test]
    fn targets_compare_the_right_steps() {
        use Policy::*;
        use Workload::*;
        let steps = vec![
            step(PrefixHeavy, 20.0, RoundRobin, 3.0, 1000),
            step(PrefixHeavy, 20.0, LeastRequest, 2.0, 1100),
            step(PrefixHeavy, 20.0, Sluice, 1.0, 1300),
            // A lower rate Sluice loses must not matter to the high-load targets.
            step(PrefixHeavy, 10.0, RoundRobin, 0.1, 1000),
            step(PrefixHeavy, 10.0, Sluice, 0.5, 900),
            step(Independent, 10.0, LeastRequest, 1.0, 1000),
            step(Independent, 10.0, Sluice, 1.05, 990),
            step(Independent, 20.0, LeastRequest, 1.0, 1000),
            step(Independent, 20.0, Sluice, 1.2, 1000),
        ];
        let targets = report(steps).targets();
        assert_eq!(targets[0].verdict, Verdict::Met, "{:?}", targets[0]);
        assert!(targets[0].measured.starts_with("3.00× lower"));
        assert_eq!(targets[1].verdict, Verdict::Met, "1.3× ≥ 1.2×");
        assert_eq!(targets[2].verdict, Verdict::Missed, "1.2× at 20/s");
        assert_eq!(targets[3].verdict, Verdict::Met, "0.99× is within 5%");
    }

    #[test]
    fn missing_steps_are_not_measured() {
        let targets = report(Vec::new()).targets();
        assert!(targets.iter().all(|t| t.verdict == Verdict::NotMeasured));
        let text = report(Vec::new()).markdown();
        assert!(text.starts_with(BEGIN));
        assert!(text.trim_end().ends_with(END));
        assert!(text.contains("### Targets"));
    }
}
