//! The flow-control section of the report: a plain-text summary on stdout and its part of
//! `BENCHMARKS.md`, with issue 15's targets checked against what was measured. The targets are
//! for *Sluice with flow control*; the baselines' figures are given beside them.

use std::fmt::Write as _;

use super::results::{StepResult, Variant};
use super::settings::{
    self, BATCH_MIN_SHARE, BATCH_TENANT, FAIRNESS_TTFT_FACTOR, INTERACTIVE_TENANT, JAIN_MIN,
    PRIORITY_TTFT_FACTOR, REPLICAS, SHORT, THROUGHPUT_TOLERANCE, TOKEN_SHARE_TOLERANCE,
};
use super::workload::{self, LONG_PROMPT_TENANT, Scenario, Stream};
use crate::figures::{self, fmt_s, fmt_share, fmt_tps, provenance, ratio, verdict};
use crate::report::{Build, Machine, Target, fmt_ratio, table};
use crate::sections::FLOW_CONTROL;

/// One step as planned: its tenants and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    pub scenario: Scenario,
    pub streams: Vec<Stream>,
    /// Requests per second the pool sustains for this mix (estimated from the settings).
    pub capacity: f64,
    pub requests: usize,
}

#[derive(Debug, Clone)]
pub struct FlowReport {
    pub machine: Machine,
    /// The Sluice build of both Sluice setups.
    pub build: Build,
    pub plans: Vec<PlanSummary>,
    pub steps: Vec<StepResult>,
    /// Setups that could not run, and why.
    pub not_run: Vec<(Variant, String)>,
    pub step_seconds: f64,
    pub drain_seconds: f64,
    /// Sluice today's filter configuration, and flow control's.
    pub sluice_today_configuration: String,
    pub flow_control_configuration: String,
    pub warnings: Vec<String>,
    pub quick: bool,
    pub elapsed_seconds: u64,
}

/// One step's progress line while the benchmark runs.
pub fn progress_line(step: &StepResult) -> String {
    let classes: Vec<String> = step
        .groups
        .iter()
        .take(3)
        .map(|g| {
            format!(
                "{} p90 {} ({}/{} done, {} rejected)",
                g.tenant,
                fmt_s(g.ttft[1]),
                g.completed,
                g.sent,
                g.rejected
            )
        })
        .collect();
    let more = step.groups.len().saturating_sub(3);
    format!(
        "{:<12} {:<24} {:>5} tok/s  {}{}{}",
        step.scenario.label(),
        step.variant.label(),
        fmt_tps(Some(step.output_tps())),
        classes.join("; "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        step.occupancy.map_or(String::new(), |o| format!(
            "  replicas: {:.1} running, {:.1} waiting",
            o.running, o.waiting
        ))
    )
}

/// The fairness step's light tenants: all but `tenant-1`.
fn is_light(tenant: &str) -> bool {
    tenant != workload::fairness_tenant(1)
}

impl FlowReport {
    fn step(&self, scenario: Scenario, variant: Variant) -> Option<&StepResult> {
        self.steps
            .iter()
            .find(|s| s.scenario == scenario && s.variant == variant)
    }

    fn plan(&self, scenario: Scenario) -> Option<&PlanSummary> {
        self.plans.iter().find(|p| p.scenario == scenario)
    }

    fn not_run_reason(&self, variant: Variant) -> Option<&str> {
        self.not_run
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, reason)| reason.as_str())
    }

    /// The setups with at least one step, in order.
    fn variants_run(&self) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| self.steps.iter().any(|s| s.variant == *v))
            .collect()
    }

    /// The interactive class's p90 TTFT on an idle pool, through `variant`.
    fn idle_p90(&self, variant: Variant) -> Option<f64> {
        self.step(Scenario::Idle, variant)?
            .group(INTERACTIVE_TENANT)?
            .ttft[1]
    }

    /// `figure` for flow control, with the baselines' beside it: `1.2× (least-request: 3.4×,
    /// Sluice today: 2.0×)`; "not run" for flow control when it did not.
    fn with_baselines(&self, figure: impl Fn(Variant) -> Option<String>) -> String {
        let flow = match figure(Variant::FlowControl) {
            Some(text) => text,
            None if self.not_run_reason(Variant::FlowControl).is_some() => {
                "flow control not run".to_owned()
            }
            None => "–".to_owned(),
        };
        let baselines: Vec<String> = Variant::BASELINES
            .into_iter()
            .filter_map(|v| Some(format!("{}: {}", short(v), figure(v)?)))
            .collect();
        if baselines.is_empty() {
            flow
        } else {
            format!("{flow} ({})", baselines.join(", "))
        }
    }

    /// Issue 15's targets, for Sluice with flow control.
    pub fn targets(&self) -> Vec<Target> {
        let flow = Variant::FlowControl;
        let mut targets = Vec::new();

        // Priority: the interactive class's p90 TTFT beside the batch class, over idle.
        let priority_ratio = |v: Variant| {
            let loaded = self
                .step(Scenario::Priority, v)?
                .group(INTERACTIVE_TENANT)?
                .ttft[1];
            ratio(loaded, self.idle_p90(v))
        };
        targets.push(Target {
            name: format!(
                "priority: the interactive class's p90 TTFT within {PRIORITY_TTFT_FACTOR}× of its \
                 p90 on an idle pool"
            ),
            measured: self.with_baselines(|v| {
                let loaded = self
                    .step(Scenario::Priority, v)?
                    .group(INTERACTIVE_TENANT)?
                    .ttft[1];
                let x = priority_ratio(v)?;
                Some(if v == flow {
                    format!(
                        "{} ({} vs {} idle)",
                        fmt_ratio(Some(x)),
                        fmt_s(loaded),
                        fmt_s(self.idle_p90(v))
                    )
                } else {
                    fmt_ratio(Some(x))
                })
            }),
            verdict: verdict(priority_ratio(flow).map(|x| x <= PRIORITY_TTFT_FACTOR)),
        });

        // Priority: total output tokens/s against the best baseline's.
        let best = Variant::BASELINES
            .into_iter()
            .filter_map(|v| Some((v, self.step(Scenario::Priority, v)?.output_tps())))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let flow_tps = self
            .step(Scenario::Priority, flow)
            .map(StepResult::output_tps);
        let throughput = ratio(flow_tps, best.map(|(_, tps)| tps));
        targets.push(Target {
            name: format!(
                "priority: total output tokens/s within {:.0}% of the best baseline's",
                THROUGHPUT_TOLERANCE * 100.0
            ),
            measured: match (flow_tps, best) {
                (Some(tps), Some((v, base))) => format!(
                    "{} ({} vs {} tok/s, {})",
                    fmt_ratio(throughput),
                    fmt_tps(Some(tps)),
                    fmt_tps(Some(base)),
                    short(v)
                ),
                (None, Some((v, base))) => format!(
                    "flow control not run (best baseline: {}, {} tok/s)",
                    short(v),
                    fmt_tps(Some(base))
                ),
                _ => "–".to_owned(),
            },
            verdict: verdict(throughput.map(|x| x >= 1.0 - THROUGHPUT_TOLERANCE)),
        });

        // Fairness: the light tenants' p90 TTFT over idle, and Jain's index.
        let light_ratio = |v: Variant| {
            let step = self.step(Scenario::Fairness, v)?;
            ratio(
                step.pooled_ttft(|g| is_light(&g.tenant), 90.0),
                self.idle_p90(v),
            )
        };
        targets.push(Target {
            name: format!(
                "fairness: the light tenants' p90 TTFT within {FAIRNESS_TTFT_FACTOR}× of idle"
            ),
            measured: self.with_baselines(|v| {
                let step = self.step(Scenario::Fairness, v)?;
                let x = light_ratio(v)?;
                Some(if v == flow {
                    format!(
                        "{} ({} vs {} idle)",
                        fmt_ratio(Some(x)),
                        fmt_s(step.pooled_ttft(|g| is_light(&g.tenant), 90.0)),
                        fmt_s(self.idle_p90(v))
                    )
                } else {
                    fmt_ratio(Some(x))
                })
            }),
            verdict: verdict(light_ratio(flow).map(|x| x <= FAIRNESS_TTFT_FACTOR)),
        });
        let jain = |v: Variant| self.step(Scenario::Fairness, v)?.fairness_index();
        targets.push(Target {
            name: format!(
                "fairness: Jain's index of service over max-min fair share at least {JAIN_MIN}"
            ),
            measured: self.with_baselines(|v| jain(v).map(|j| format!("{j:.2}"))),
            verdict: verdict(jain(flow).map(|j| j >= JAIN_MIN)),
        });

        // Long prompts: the long-prompt tenant's share of tokens served against its fair share.
        let long = |v: Variant| {
            let step = self.step(Scenario::LongPrompts, v)?;
            let index = step
                .groups
                .iter()
                .position(|g| g.tenant == LONG_PROMPT_TENANT)?;
            let fair = *step.fair_shares().get(index)?;
            Some((step.served_share(LONG_PROMPT_TENANT)?, fair))
        };
        let equal = 1.0 / settings::LONG_PROMPT_TENANTS as f64;
        targets.push(Target {
            name: format!(
                "long prompts: the long-prompt tenant gets no more than its token share \
                 (max-min fair share of prompt + output tokens served, +{:.0}%)",
                TOKEN_SHARE_TOLERANCE * 100.0
            ),
            measured: self.with_baselines(|v| {
                let (share, fair) = long(v)?;
                Some(if v == flow {
                    format!(
                        "{} of tokens served, fair share {} (equal share {})",
                        fmt_share(Some(share)),
                        fmt_share(Some(fair)),
                        fmt_share(Some(equal))
                    )
                } else {
                    fmt_share(Some(share))
                })
            }),
            verdict: verdict(
                long(flow).map(|(share, fair)| share <= fair * (1.0 + TOKEN_SHARE_TOLERANCE)),
            ),
        });

        // Starvation: the batch band's share of tokens served while the high band saturates.
        let batch = |v: Variant| {
            self.step(Scenario::Starvation, v)?
                .served_share(BATCH_TENANT)
        };
        targets.push(Target {
            name: format!(
                "starvation: with the high band alone saturating the pool, the low band gets at \
                 least its min_share ({}) of the tokens served",
                BATCH_MIN_SHARE
            ),
            measured: self.with_baselines(|v| batch(v).map(|s| fmt_share(Some(s)))),
            verdict: verdict(batch(flow).map(|s| s >= BATCH_MIN_SHARE)),
        });
        targets
    }

    fn priority_table(&self) -> String {
        let mut rows = Vec::new();
        for variant in self.variants_run() {
            for (scenario, tenant, class) in [
                (Scenario::Idle, INTERACTIVE_TENANT, "interactive, idle pool"),
                (Scenario::Priority, INTERACTIVE_TENANT, "interactive"),
                (Scenario::Priority, BATCH_TENANT, "batch"),
            ] {
                let Some(g) = self.step(scenario, variant).and_then(|s| s.group(tenant)) else {
                    continue;
                };
                rows.push(vec![
                    variant.label().to_owned(),
                    class.to_owned(),
                    fmt_s(g.ttft[0]),
                    fmt_s(g.ttft[1]),
                    fmt_s(g.ttft[2]),
                    fmt_s(g.e2e[0]),
                    fmt_s(g.e2e[1]),
                    fmt_tps(Some(g.output_tps)),
                    format!("{}/{}", g.completed, g.sent),
                    g.rejected.to_string(),
                    (g.failed + g.unfinished).to_string(),
                ]);
            }
        }
        table(
            &[
                "setup",
                "class",
                "TTFT p50",
                "TTFT p90",
                "TTFT p99",
                "e2e p50",
                "e2e p90",
                "output tok/s",
                "done/sent",
                "rejected",
                "failed or cut off",
            ],
            &rows,
        )
    }

    fn starvation_table(&self) -> String {
        let mut rows = Vec::new();
        for variant in self.variants_run() {
            let Some(step) = self.step(Scenario::Starvation, variant) else {
                continue;
            };
            let (Some(high), Some(low)) =
                (step.group(INTERACTIVE_TENANT), step.group(BATCH_TENANT))
            else {
                continue;
            };
            rows.push(vec![
                variant.label().to_owned(),
                fmt_tps(Some(high.served_tps)),
                fmt_tps(Some(low.served_tps)),
                fmt_share(step.served_share(BATCH_TENANT)),
                fmt_share(Some(BATCH_MIN_SHARE)),
                fmt_s(high.ttft[1]),
                fmt_s(low.ttft[1]),
                format!("{} / {}", high.rejected, low.rejected),
            ]);
        }
        table(
            &[
                "setup",
                "interactive tokens/s served",
                "batch tokens/s served",
                "batch share",
                "batch min_share",
                "interactive TTFT p90",
                "batch TTFT p90",
                "rejected (interactive / batch)",
            ],
            &rows,
        )
    }

    /// One row per setup and tenant: what it asked for, got, and waited.
    fn tenants_table(&self, scenario: Scenario) -> String {
        let mut rows = Vec::new();
        let rates = self
            .plan(scenario)
            .map(|p| p.streams.clone())
            .unwrap_or_default();
        for variant in self.variants_run() {
            let Some(step) = self.step(scenario, variant) else {
                continue;
            };
            let fair = step.fair_shares();
            let normalized = step.normalized_service();
            for (i, g) in step.groups.iter().enumerate() {
                let rate = rates.iter().find(|s| s.tenant == g.tenant).map(|s| s.rate);
                rows.push(vec![
                    variant.label().to_owned(),
                    g.tenant.clone(),
                    rate.map_or("–".into(), |r| format!("{r:.2}")),
                    fmt_tps(Some(g.demand_tps)),
                    fmt_tps(Some(g.served_tps)),
                    fmt_share(step.served_share(&g.tenant)),
                    fmt_share(fair.get(i).copied()),
                    normalized
                        .get(i)
                        .copied()
                        .flatten()
                        .map_or("–".into(), |x| format!("{x:.2}")),
                    fmt_s(g.ttft[1]),
                    format!("{}/{}", g.completed, g.sent),
                    g.rejected.to_string(),
                ]);
            }
        }
        table(
            &[
                "setup",
                "tenant",
                "requests/s offered",
                "tokens/s asked",
                "tokens/s served",
                "share served",
                "fair share",
                "served ÷ fair",
                "TTFT p90",
                "done/sent",
                "rejected",
            ],
            &rows,
        )
    }

    /// Per setup: Jain's index and the light tenants' p90 TTFT over idle.
    fn fairness_lines(&self) -> Vec<String> {
        self.variants_run()
            .into_iter()
            .filter_map(|v| {
                let step = self.step(Scenario::Fairness, v)?;
                let light = step.pooled_ttft(|g| is_light(&g.tenant), 90.0);
                Some(format!(
                    "{}: Jain's index {}; light tenants' p90 TTFT {} ({} of idle {})",
                    v.label(),
                    step.fairness_index()
                        .map_or("–".into(), |j| format!("{j:.2}")),
                    fmt_s(light),
                    fmt_ratio(ratio(light, self.idle_p90(v))),
                    fmt_s(self.idle_p90(v))
                ))
            })
            .collect()
    }

    /// Per step and setup: total output tokens/s and the replicas' load.
    fn replicas_table(&self) -> String {
        let mut rows = Vec::new();
        for scenario in Scenario::ALL {
            for variant in self.variants_run() {
                let Some(step) = self.step(scenario, variant) else {
                    continue;
                };
                let occupancy = step.occupancy;
                rows.push(vec![
                    scenario.label().to_owned(),
                    variant.label().to_owned(),
                    fmt_tps(Some(step.output_tps())),
                    occupancy.map_or("–".into(), |o| format!("{:.1}", o.running)),
                    occupancy.map_or("–".into(), |o| format!("{:.2}", o.waiting)),
                    occupancy.map_or("–".into(), |o| o.samples.to_string()),
                ]);
            }
        }
        table(
            &[
                "step",
                "setup",
                "output tok/s",
                "running per replica (mean)",
                "waiting per replica (mean)",
                "samples",
            ],
            &rows,
        )
    }

    /// The targets not met, one line each; when flow control did not run, one line saying so.
    fn missed(&self, targets: &[Target]) -> Vec<String> {
        if !self.variants_run().contains(&Variant::FlowControl) {
            return vec![
                "not measured: Sluice with flow control did not run, so none of its targets was \
                 measured (the baselines' figures are in the table)."
                    .to_owned(),
            ];
        }
        figures::missed(targets)
    }

    fn not_run_lines(&self) -> Vec<String> {
        self.not_run
            .iter()
            .map(|(v, reason)| format!("{}: not run: {reason}", v.label()))
            .collect()
    }

    /// The rate the pool served while overloaded: the least-request setup's output tokens/s in
    /// the priority step over the mean output of a request.
    fn measured_capacity(&self) -> Option<f64> {
        let tps = self
            .step(Scenario::Priority, Variant::LeastRequest)?
            .output_tps();
        Some(tps / SHORT.mean_output())
    }

    fn steps_description(&self) -> String {
        self.plans
            .iter()
            .map(|plan| {
                let streams: Vec<String> = if plan.scenario == Scenario::Fairness {
                    let heavy = plan.streams.first();
                    let light = plan.streams.get(1);
                    vec![format!(
                        "{} at {:.2}/s and {} light tenants at {:.2}/s each",
                        heavy.map_or("–", |s| s.tenant.as_str()),
                        heavy.map_or(0.0, |s| s.rate),
                        plan.streams.len().saturating_sub(1),
                        light.map_or(0.0, |s| s.rate)
                    )]
                } else {
                    plan.streams
                        .iter()
                        .map(|s| format!("{} at {:.2}/s", s.tenant, s.rate))
                        .collect()
                };
                let rate: f64 = plan.streams.iter().map(|s| s.rate).sum();
                let load = if plan.capacity > 0.0 {
                    rate / plan.capacity
                } else {
                    0.0
                };
                format!(
                    "*{}*: {} ({}× the capacity of {:.1} requests/s for this mix; {} requests)",
                    plan.scenario.label(),
                    streams.join(", "),
                    fmt_multiple(load),
                    plan.capacity,
                    plan.requests
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What `bench` prints at the end of the section.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let targets = self.targets();
        let _ = writeln!(
            out,
            "Flow-control targets (for Sluice with flow control; baselines in parentheses):\n{}",
            figures::targets_table(&targets)
        );
        for line in self.missed(&targets) {
            let _ = writeln!(out, "{line}");
        }
        for line in self.not_run_lines() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "\nPriority (interactive idle, then beside batch):\n{}\nStarvation:\n{}\n\
             Fairness:\n{}{}\nLong prompts:\n{}\nReplicas:\n{}",
            self.priority_table(),
            self.starvation_table(),
            self.tenants_table(Scenario::Fairness),
            self.fairness_lines()
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            self.tenants_table(Scenario::LongPrompts),
            self.replicas_table()
        );
        for line in &self.warnings {
            let _ = writeln!(out, "WARNING: {line}");
        }
        let _ = writeln!(
            out,
            "Flow-control section took {} min {} s.",
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60
        );
        out
    }

    /// The section's part of `BENCHMARKS.md`, between its markers.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let targets = self.targets();
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", FLOW_CONTROL.begin);
        let _ = writeln!(
            out,
            "## Flow control: priority, fairness and starvation on a saturated pool\n"
        );
        provenance(
            &mut out,
            "flow-control",
            self.build,
            &m.date,
            self.elapsed_seconds,
            self.quick,
        );
        let _ = writeln!(
            out,
            "**Machine:** {} One run: the replicas, the three Envoys, the picker and the load \
             driver share the 2 cores with other work, so single figures are noisy.\n",
            m.sentence()
        );
        for line in self.not_run_lines() {
            let _ = writeln!(out, "> **{line}**\n");
        }
        for line in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {line}\n");
        }
        let _ = writeln!(
            out,
            "### Targets\n\nFor *Sluice with flow control*; the baselines' figures in \
             parentheses.\n\n{}",
            figures::targets_table(&targets)
        );
        let missed = self.missed(&targets);
        if missed.is_empty() {
            let _ = writeln!(out, "Every flow-control target was met.\n");
        } else {
            for line in missed {
                let _ = writeln!(out, "- **{line}**");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "### Priority\n\nThe interactive class (high band) alone on the pool, then beside \
             the batch class (low band), which alone overloads it {}×.\n\n{}",
            settings::BATCH_LOAD,
            self.priority_table()
        );
        let _ = writeln!(
            out,
            "### Starvation\n\nThe interactive class alone at {}× capacity, the batch class at \
             {}×; shares of the prompt + output tokens served.\n\n{}",
            settings::STARVATION_HIGH_LOAD,
            settings::STARVATION_LOW_LOAD,
            self.starvation_table()
        );
        let _ = writeln!(
            out,
            "### Fairness\n\n{} tenants in one band, `{}` sending {}× what each other sends, \
             {}× capacity in all.\n\n{}",
            settings::FAIRNESS_TENANTS,
            workload::fairness_tenant(1),
            settings::HEAVY_FACTOR,
            settings::FAIRNESS_LOAD,
            self.tenants_table(Scenario::Fairness)
        );
        for line in self.fairness_lines() {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(
            out,
            "\n### Long prompts\n\n{} tenants at the same request rate, {}× capacity in all; \
             `{LONG_PROMPT_TENANT}` sends prompts of {}–{} tokens, the others {}–{}.\n\n{}",
            settings::LONG_PROMPT_TENANTS,
            settings::LONG_PROMPT_LOAD,
            settings::LONG.prompt_tokens.0,
            settings::LONG.prompt_tokens.1,
            SHORT.prompt_tokens.0,
            SHORT.prompt_tokens.1,
            self.tenants_table(Scenario::LongPrompts)
        );
        let _ = writeln!(
            out,
            "### Replicas\n\nFrom the simulators' own metrics, sampled every {} ms during each \
             step's window: flow control should keep them busy (running near `max-num-seqs` \
             {}) without queueing on them (waiting near 0).\n\n{}",
            settings::SAMPLE_MS,
            REPLICAS.max_num_seqs,
            self.replicas_table()
        );
        let measured = self.measured_capacity().map_or(String::new(), |c| {
            format!(
                "; under overload the least-request setup served {c:.1} requests/s (its output \
                 tokens/s in the priority step over the mean output)"
            )
        });
        let (from, to) = workload::window(self.step_seconds);
        let _ = writeln!(out, "### Method\n");
        let _ = writeln!(
            out,
            "- **Replicas:** {} `sluice-simulator` processes (release build), each like an 8B \
             model in fp16 on one 24 GB GPU of the A10G class: `--max-num-seqs {}`, \
             `--kv-blocks {}` × `--block-size {}` ({} tokens of KV cache), \
             `--prefill-us-per-token {}`, `--decode-ms-per-step {}`. Why these numbers: \
             `bench/src/flow_control/settings.rs`.\n\
             - **Capacity** is derived from those settings, not calibrated: per replica a \
             request's prefill plus its share of a full batch's decode steps at the mix's mean \
             lengths (`pool::settings::capacity`: the steady state of full batches, which \
             overload keeps){measured}.\n\
             - **Setups,** from the shipped `{}` with `--concurrency 2`, every cluster pointing \
             at the same replicas: *Envoy least-request* = the `sluice` filter removed and the \
             clusters' fallback policy replaced by `least_request`; *Sluice today* = the filter \
             with the configuration below (replica picking from the picker's snapshot, tenants \
             named by the `{}` header, shedding with 429 once every replica has \
             `picking.max_waiting_per_endpoint` = {} requests waiting); *Sluice with flow \
             control* = the same without shedding, with the `flow_control` section below.\n\
             - **Steps:** {}. The tenant of each request is in the `{}` header; the \
             interactive tenant is in the high band, every other tenant in the default batch \
             band (flow control's configuration below). Short requests: prompts of {}–{} tokens, `max_tokens` {}–{}.\n\
             - **Load:** open loop, Poisson arrivals per tenant (seeded: every setup gets the \
             same arrival times and bodies), {} s per step, each request sent on schedule on \
             its own task whatever the earlier ones do; streaming chat completions with \
             `stream_options.include_usage`. After the last arrival a step waits up to {} s for \
             the stragglers, then cancels them (counted as cut off, their wait counted in TTFT \
             as a lower bound). Step by step, the setups one after the other in a rotating \
             order; the replicas idle between steps.\n\
             - **Figures,** over each step's window, from {:.1} s (the pool fills up first) to \
             the last arrival at {:.0} s: TTFT (scheduled send → first content chunk) and e2e \
             (→ end of stream) of the requests due in it; output tok/s = content chunks that \
             arrived in it ÷ its length; tokens served = a request's prompt tokens when its \
             first token arrives plus its output tokens as they arrive; tokens asked = prompt + \
             `max_tokens` of the requests due in it. Fair share = max-min fair share \
             (water-filling) of the tokens served, by what each tenant asked: a tenant asking \
             less than an equal split gets all it asks, the rest is split equally among the \
             others; Jain's index is over each tenant's tokens served ÷ its fair share. \
             Rejected = 429 or 503. Replicas' load = `vllm:num_requests_running` and \
             `vllm:num_requests_waiting` of every replica, sampled every {} ms, averaged per \
             replica. Idle = the interactive class alone at the same rate as in the priority \
             step, through the same setup.\n",
            REPLICAS.replicas,
            REPLICAS.max_num_seqs,
            REPLICAS.kv_blocks,
            REPLICAS.block_size,
            REPLICAS.kv_tokens(),
            REPLICAS.prefill_us_per_token,
            REPLICAS.decode_ms_per_step,
            self.build.config_file(),
            settings::TENANT_HEADER,
            settings::SHED_WAITING,
            self.steps_description(),
            settings::TENANT_HEADER,
            SHORT.prompt_tokens.0,
            SHORT.prompt_tokens.1,
            SHORT.output_tokens.0,
            SHORT.output_tokens.1,
            self.step_seconds,
            self.drain_seconds,
            from.as_secs_f64(),
            to.as_secs_f64(),
            settings::SAMPLE_MS,
        );
        let flow_section =
            serde_json::from_str::<serde_json::Value>(&self.flow_control_configuration)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v["flow_control"]).ok())
                .unwrap_or_default();
        let _ = writeln!(
            out,
            "Sluice today's filter configuration:\n\n```json\n{}\n```\n\nSluice with flow \
             control: the same without `picking.max_waiting_per_endpoint`, with\n\n```json\n\
             \"flow_control\": {}\n```\n",
            self.sluice_today_configuration.trim(),
            flow_section.trim()
        );
        let _ = writeln!(out, "{}", FLOW_CONTROL.end);
        out
    }
}

/// A multiple of capacity as `2`, `0.25` or `2.25`.
fn fmt_multiple(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A setup's name inside a sentence.
fn short(variant: Variant) -> &'static str {
    match variant {
        Variant::LeastRequest => "least-request",
        Variant::SluiceToday => "Sluice today",
        Variant::FlowControl => "flow control",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_control::results::Group;
    use crate::report::Verdict;

    fn group(tenant: &str, p90: f64, served: f64, demand: f64) -> Group {
        Group {
            tenant: tenant.to_owned(),
            sent: 10,
            completed: 10,
            rejected: 0,
            failed: 0,
            unfinished: 0,
            ttft: [Some(p90 / 2.0), Some(p90), Some(p90 * 2.0)],
            ttft_samples: vec![p90; 10],
            e2e: [Some(1.0), Some(2.0)],
            output_tps: served / 5.0,
            served_tps: served,
            demand_tps: demand,
        }
    }

    fn step(scenario: Scenario, variant: Variant, groups: Vec<Group>) -> StepResult {
        StepResult {
            scenario,
            variant,
            groups,
            occupancy: None,
            window: (2.0, 10.0),
            max_lateness_ms: 0.0,
            first_error: None,
        }
    }

    /// Every step of `variant`: `good` ones behave as flow control should, the others as FIFO.
    fn steps(variant: Variant, good: bool) -> Vec<StepResult> {
        let slow = if good { 1.0 } else { 5.0 };
        let mut fairness = vec![group(
            "tenant-1",
            0.2,
            if good { 1500.0 } else { 5000.0 },
            10_000.0,
        )];
        for i in 2..=8 {
            fairness.push(group(
                &format!("tenant-{i}"),
                0.2 * slow,
                if good { 1000.0 } else { 500.0 },
                1000.0,
            ));
        }
        let mut long = vec![group(
            LONG_PROMPT_TENANT,
            0.3,
            if good { 1000.0 } else { 3000.0 },
            10_000.0,
        )];
        for i in 1..=3 {
            long.push(group(&format!("steady-{i}"), 0.3, 1000.0, 3000.0));
        }
        vec![
            step(
                Scenario::Idle,
                variant,
                vec![group(INTERACTIVE_TENANT, 0.2, 100.0, 100.0)],
            ),
            step(
                Scenario::Priority,
                variant,
                vec![
                    group(INTERACTIVE_TENANT, 0.25 * slow, 100.0, 100.0),
                    group(BATCH_TENANT, 3.0, 1900.0, 4000.0),
                ],
            ),
            step(
                Scenario::Starvation,
                variant,
                vec![
                    group(
                        INTERACTIVE_TENANT,
                        1.0,
                        if good { 1800.0 } else { 1500.0 },
                        3000.0,
                    ),
                    group(BATCH_TENANT, 5.0, if good { 200.0 } else { 500.0 }, 1000.0),
                ],
            ),
            step(Scenario::Fairness, variant, fairness),
            step(Scenario::LongPrompts, variant, long),
        ]
    }

    fn report(flow: Option<bool>) -> FlowReport {
        let mut all = steps(Variant::LeastRequest, false);
        all.extend(steps(Variant::SluiceToday, false));
        let mut not_run = Vec::new();
        match flow {
            Some(good) => all.extend(steps(Variant::FlowControl, good)),
            None => not_run.push((
                Variant::FlowControl,
                "the filter rejects its configuration: flow_control: unknown field".to_owned(),
            )),
        }
        FlowReport {
            machine: Machine::default(),
            build: Build::Native,
            plans: Scenario::ALL
                .into_iter()
                .map(|scenario| {
                    let (streams, capacity) = workload::streams(scenario);
                    PlanSummary {
                        scenario,
                        streams,
                        capacity,
                        requests: 100,
                    }
                })
                .collect(),
            steps: all,
            not_run,
            step_seconds: 10.0,
            drain_seconds: 5.0,
            sluice_today_configuration: "{}".into(),
            flow_control_configuration: "{\"flow_control\": {\"bands\": []}}".into(),
            warnings: Vec::new(),
            quick: false,
            elapsed_seconds: 185,
        }
    }

    #[test]
    fn targets_are_met_when_flow_control_behaves() {
        let targets = report(Some(true)).targets();
        assert_eq!(targets.len(), 6);
        for t in &targets {
            assert_eq!(t.verdict, Verdict::Met, "{t:?}");
        }
        // Interactive p90 250 ms over 200 ms idle; the baselines' 1.25 s over 200 ms beside.
        assert!(
            targets[0].measured.starts_with(
                "1.25× (250 ms vs 200 ms idle) (least-request: 6.25×, Sluice today: 6.25×)"
            ),
            "{}",
            targets[0].measured
        );
        assert!(
            targets[1].measured.starts_with("1.00× (400 vs 400 tok/s"),
            "{}",
            targets[1].measured
        );
        assert!(
            targets[3].measured.starts_with("1.00 (least-request: 0."),
            "{}",
            targets[3].measured
        );
        // 1000 of 4000 tokens, all four asking for more than an equal split.
        assert!(
            targets[4]
                .measured
                .starts_with("25% of tokens served, fair share 25%")
        );
        assert!(
            targets[5].measured.starts_with("10% (least-request: 25%"),
            "{}",
            targets[5].measured
        );
    }

    #[test]
    fn targets_are_missed_when_it_serves_first_come_first_served() {
        let targets = report(Some(false)).targets();
        let verdicts: Vec<Verdict> = targets.iter().map(|t| t.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Missed, // 6.25× idle
                Verdict::Met,    // the same throughput
                Verdict::Missed, // light tenants 5× idle
                Verdict::Missed, // FIFO index
                Verdict::Missed, // 50% against 25%
                Verdict::Met,    // 25% ≥ 10%
            ]
        );
    }

    #[test]
    fn flow_control_not_run_is_reported_not_failed() {
        let report = report(None);
        let targets = report.targets();
        assert!(targets.iter().all(|t| t.verdict == Verdict::NotMeasured));
        assert!(
            targets[0]
                .measured
                .starts_with("flow control not run (least-request: 6.25×")
        );
        let text = report.markdown();
        assert!(text.starts_with(FLOW_CONTROL.begin));
        assert!(text.trim_end().ends_with(FLOW_CONTROL.end));
        assert!(text.contains(
            "> **Sluice with flow control: not run: the filter rejects its configuration: \
             flow_control: unknown field**"
        ));
        assert!(
            text.contains("| Envoy least-request | interactive, idle pool | 100 ms | 200 ms |")
        );
        assert!(!text.contains("| Sluice with flow control |"));
        assert!(
            text.contains("\"flow_control\": {\n  \"bands\": []\n}"),
            "{text}"
        );
        assert!(text.contains("took 3 min 5 s"));
        let summary = report.summary();
        assert!(summary.contains("Sluice with flow control: not run: the filter rejects"));
        assert!(summary.contains("not measured: Sluice with flow control did not run"));
        assert!(!summary.contains("not measured: priority:"));
        assert!(
            report
                .markdown()
                .contains("(0.25× the capacity of 13.2 requests/s")
        );
        assert_eq!(fmt_multiple(2.0), "2");
        assert_eq!(fmt_multiple(2.25), "2.25");
    }

    #[test]
    fn the_tables_have_a_row_per_setup_and_tenant() {
        let report = report(Some(true));
        let fairness = report.tenants_table(Scenario::Fairness);
        assert_eq!(fairness.lines().count(), 2 + 3 * 8);
        assert!(
            fairness.contains("| Sluice with flow control | tenant-2 |"),
            "{fairness}"
        );
        let lines = report.fairness_lines();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].starts_with("Sluice with flow control: Jain's index 1.00"),
            "{}",
            lines[2]
        );
        let replicas = report.replicas_table();
        assert_eq!(replicas.lines().count(), 2 + 5 * 3);
        assert_eq!(report.starvation_table().lines().count(), 2 + 3);
    }
}
