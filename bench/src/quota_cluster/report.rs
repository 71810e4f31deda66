//! The cluster quota section of the report: a plain-text summary on stdout and its part of
//! `BENCHMARKS.md`, each run's over-admission beside the bound.

use std::fmt::Write as _;

use super::{LIMIT, PACE_MS, PER_ENVOY, RTT_ALLOWANCE_MS, STALE_AFTER_MS, SYNC_MS, bound};
use crate::figures;
use crate::report::{Build, Machine, Target, Verdict, table};
use crate::sections::QUOTA_CLUSTER;

/// What one run of paced load got from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    pub instances: usize,
    /// 200
    pub admitted: u64,
    /// 429
    pub limited: u64,
    /// 503: a worker did not know its view to be fresh (the closed policy refuses).
    pub unavailable: u64,
    /// Any other status, or no answer.
    pub other: u64,
}

impl Run {
    pub fn over(&self) -> u64 {
        self.admitted.saturating_sub(LIMIT)
    }
}

/// The over-admission the average lag predicts: `(k − 1) · r · S`.
fn typical(instances: usize) -> u64 {
    (instances as u64).saturating_sub(1) * SYNC_MS / PACE_MS
}

#[derive(Debug, Clone)]
pub struct QuotaReport {
    pub machine: Machine,
    /// The Sluice build every Envoy ran.
    pub build: Build,
    pub runs: Vec<Run>,
    pub filter_configuration: String,
    pub warnings: Vec<String>,
    pub quick: bool,
    pub elapsed_seconds: u64,
}

impl QuotaReport {
    /// The cluster sizes measured, largest first.
    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.runs.iter().map(|r| r.instances).collect();
        sizes.sort_unstable_by_key(|k| std::cmp::Reverse(*k));
        sizes.dedup();
        sizes
    }

    fn runs_of(&self, instances: usize) -> Vec<Run> {
        self.runs
            .iter()
            .copied()
            .filter(|r| r.instances == instances)
            .collect()
    }

    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for k in self.sizes() {
            let runs = self.runs_of(k);
            let overs: Vec<String> = runs.iter().map(|r| r.over().to_string()).collect();
            let worst = runs.iter().map(Run::over).max().unwrap_or(0);
            targets.push(Target {
                name: format!(
                    "{k} instances: over-admission ≤ (k − 1) · r · (2·S + {RTT_ALLOWANCE_MS} ms) \
                     = {}",
                    bound(k)
                ),
                measured: format!(
                    "{} ({} run{})",
                    overs.join(", "),
                    runs.len(),
                    if runs.len() == 1 { "" } else { "s" }
                ),
                verdict: if worst <= bound(k) {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
            });
        }
        let early: Vec<&Run> = self.runs.iter().filter(|r| r.admitted < LIMIT).collect();
        targets.push(Target {
            name: format!("no instance refuses before the cluster reaches the limit ({LIMIT})"),
            measured: if early.is_empty() {
                format!("every run admitted at least {LIMIT}")
            } else {
                format!("{} runs admitted fewer", early.len())
            },
            verdict: if early.is_empty() {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        });
        targets
    }

    fn targets_table(&self) -> String {
        figures::targets_table(&self.targets())
    }

    fn missed(&self) -> Vec<String> {
        figures::missed(&self.targets())
    }

    fn runs_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .sizes()
            .into_iter()
            .map(|k| {
                let runs = self.runs_of(k);
                let list = |f: fn(&Run) -> u64| {
                    runs.iter()
                        .map(|r| f(r).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    format!("{k} ({} offered)", k as u64 * PER_ENVOY),
                    list(|r| r.admitted),
                    list(Run::over),
                    bound(k).to_string(),
                    list(|r| r.limited),
                    list(|r| r.unavailable),
                    list(|r| r.other),
                ]
            })
            .collect();
        table(
            &[
                "instances",
                "admitted (runs)",
                "over-admission",
                "bound",
                "refused (429)",
                "stale view (503)",
                "other",
            ],
            &rows,
        )
    }

    /// What `bench` prints at the end of the section.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Cluster quota targets:\n{}", self.targets_table());
        for line in self.missed() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "\n{}", self.runs_table());
        for line in &self.warnings {
            let _ = writeln!(out, "WARNING: {line}");
        }
        let _ = writeln!(
            out,
            "Cluster quota section took {} min {} s.",
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60
        );
        out
    }

    /// The section's part of `BENCHMARKS.md`, between its markers.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", QUOTA_CLUSTER.begin);
        let _ = writeln!(out, "## Cluster quotas: over-admission\n");
        let _ = writeln!(
            out,
            "Written by `make bench` ({}; `bench --only quota-cluster` rewrites just this \
             section). The section took {} min {} s{}.\n",
            m.date,
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60,
            if self.quick {
                "; **a --quick run: one run per cluster size**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "**Machine:** {} The Envoys, the picker, Redis, the replica and the load driver \
             share the 2 cores with other work.\n",
            m.sentence()
        );
        for line in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {line}\n");
        }
        let _ = writeln!(out, "### Targets\n\n{}", self.targets_table());
        let missed = self.missed();
        if missed.is_empty() {
            let _ = writeln!(out, "Every cluster quota target was met.\n");
        } else {
            for line in missed {
                let _ = writeln!(out, "- **{line}**");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "### Runs\n\n{}", self.runs_table());
        let typical: Vec<String> = self
            .sizes()
            .into_iter()
            .map(|k| format!("{} for {k} instances", typical(k)))
            .collect();
        let _ = writeln!(
            out,
            "Without sharing, every instance would admit all it is offered. The bound is \
             docs/quotas.md's: an instance's view of the others lags by at most two sync \
             intervals and a round trip, in which each other instance admits at most `r` per \
             second; the average lag, one interval, predicts about `(k − 1) · r · S` ({}).\n",
            typical.join(", ")
        );
        let _ = writeln!(out, "### Method\n");
        let _ = writeln!(
            out,
            "- **Cluster:** Envoy instances (2 workers each) running {}, with the \
             filter configuration below, one picker (release build) with `[quota]` on a local \
             `redis-server` (no persistence), one simulator replica (release build, `--fast`) \
             behind every Envoy. Limit {LIMIT} requests per minute per tenant (`x-tenant`), \
             `sync_ms` {SYNC_MS}, `stale_after_ms` {STALE_AFTER_MS}, fail policy closed \
             (`bench --only quota-cluster --host wasm` or `native` picks the build).",
            self.build.describe()
        );
        let _ = writeln!(
            out,
            "- **Load:** every instance is offered {PER_ENVOY} chat requests at one per \
             {PACE_MS} ms ({} per second, an open loop: each request is sent on schedule on its \
             own task, whatever the earlier ones do), all instances at once; a fresh tenant per \
             run, inside one minute window. Admitted = 200, refused = 429; 503 \
             `quota_unavailable` when an Envoy worker does not know its view to be fresh (no \
             sync for `stale_after_ms`).",
            1000 / PACE_MS
        );
        let _ = writeln!(
            out,
            "- **Bound:** `(k − 1) · r · (2·S + RTT)` with `r` = {} per second, `S` = \
             {SYNC_MS} ms and {RTT_ALLOWANCE_MS} ms allowed for the sync round trip and a late \
             tick, counted in whole requests.\n",
            1000 / PACE_MS
        );
        let _ = writeln!(
            out,
            "Sluice filter configuration:\n\n```json\n{}\n```\n",
            self.filter_configuration.trim()
        );
        let _ = writeln!(out, "{}", QUOTA_CLUSTER.end);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(runs: Vec<Run>) -> QuotaReport {
        QuotaReport {
            machine: Machine::default(),
            build: Build::Native,
            runs,
            filter_configuration: "{}".into(),
            warnings: Vec::new(),
            quick: false,
            elapsed_seconds: 61,
        }
    }

    fn run(instances: usize, admitted: u64) -> Run {
        Run {
            instances,
            admitted,
            limited: instances as u64 * PER_ENVOY - admitted,
            unavailable: 0,
            other: 0,
        }
    }

    #[test]
    fn each_cluster_size_is_held_to_its_bound() {
        let met = report(vec![run(3, 111), run(3, 126), run(2, 105)]);
        let verdicts: Vec<Verdict> = met.targets().iter().map(|t| t.verdict).collect();
        assert_eq!(verdicts, [Verdict::Met, Verdict::Met, Verdict::Met]);
        assert!(met.targets()[0].measured.starts_with("11, 26 (2 runs)"));

        let missed = report(vec![run(3, 127), run(2, 99)]);
        let verdicts: Vec<Verdict> = missed.targets().iter().map(|t| t.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Missed, Verdict::Met, Verdict::Missed],
            "27 > 26; fewer than the limit"
        );
        assert_eq!(missed.missed().len(), 2);
    }

    #[test]
    fn the_markdown_is_one_marked_part_with_every_run() {
        let text = report(vec![run(3, 110), run(3, 112), run(2, 105)]).markdown();
        assert!(text.starts_with(QUOTA_CLUSTER.begin));
        assert!(text.trim_end().ends_with(QUOTA_CLUSTER.end));
        assert!(
            text.contains("| 3 (240 offered) | 110, 112 | 10, 12 | 26 | 130, 128 | 0, 0 | 0, 0 |"),
            "{text}"
        );
        assert!(
            text.contains("| 2 (160 offered) | 105 | 5 | 13 |"),
            "{text}"
        );
        assert!(text.contains("Every cluster quota target was met."));
        assert!(text.contains("took 1 min 1 s"));
        assert!(
            text.contains("(10 for 3 instances, 5 for 2 instances)"),
            "{text}"
        );
    }
}
