//! The providers section of the report: a plain-text summary on stdout and its part of
//! `BENCHMARKS.md`.

use std::fmt::Write as _;

use super::failover::{
    AFTER_S, BEFORE_S, FAULT_S, GUARD_S, POLL_MS, QUIET_S, RATE_PER_S, RETRY_AFTER_S, Scenario,
    ScenarioRun, WARMUP_S,
};
use super::micro::{self, Figure};
use super::translation::{Cost, Metric, Path, Samples, Via};
use super::{EJECT_AFTER_FAILURES, EJECTION_MS, OUTPUT_TOKENS};
use crate::figures;
use crate::report::{Build, Machine, Target, Verdict, fmt_delta_us, fmt_ns, fmt_us, table};
use crate::sections::PROVIDERS;

/// The issue's target for the native build: what translation may add per request at p50, µs.
pub const TRANSLATION_P50_US: f64 = 50.0;

/// How the translation runs were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TranslationMethod {
    pub envoy_workers: u32,
    pub concurrency: u32,
    /// Seconds of each measurement.
    pub seconds: u64,
    pub rounds: usize,
}

#[derive(Debug, Clone)]
pub struct ProvidersReport {
    pub machine: Machine,
    pub translation: Samples,
    pub translation_method: TranslationMethod,
    pub micro: Vec<Figure>,
    pub failover: Vec<ScenarioRun>,
    pub filter_configuration: String,
    pub warnings: Vec<String>,
    pub quick: bool,
    pub elapsed_seconds: u64,
}

/// `+12 µs (middle half of 10 rounds: +4 µs to +20 µs)`.
fn with_spread(cost: &Cost) -> String {
    match cost.added_p50_spread {
        Some((low, high)) if cost.rounds > 1 => format!(
            "{} (middle half of {} rounds: {} to {})",
            fmt_delta_us(cost.added_p50_us),
            cost.rounds,
            fmt_delta_us(Some(low)),
            fmt_delta_us(Some(high))
        ),
        _ => fmt_delta_us(cost.added_p50_us),
    }
}

/// Whether the rounds' spread is wider than the target itself: the latency verdict then says
/// less than the machine's noise.
fn within_noise(cost: &Cost) -> bool {
    cost.added_p50_spread
        .is_some_and(|(low, high)| high - low > TRANSLATION_P50_US)
}

fn fmt_secs(s: Option<f64>) -> String {
    s.map_or("never".into(), |s| format!("{s:.2} s"))
}

impl ProvidersReport {
    fn builds(&self) -> Vec<Build> {
        Build::ALL
            .into_iter()
            .filter(|b| {
                self.translation
                    .samples
                    .iter()
                    .any(|s| s.via == Via::Gateway(*b))
                    || self.failover.iter().any(|r| r.build == *b)
            })
            .collect()
    }

    fn scenario(&self, build: Build, scenario: Scenario) -> Option<&ScenarioRun> {
        self.failover
            .iter()
            .find(|r| r.build == build && r.scenario == scenario)
    }

    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for (path, what) in [
            (Path::Anthropic, "JSON: (b) − (a)"),
            (Path::AnthropicStream, "streamed: (c) − (a, streamed)"),
        ] {
            let cost = self.translation.cost(Build::Native, path);
            targets.push(Target {
                name: format!(
                    "Native: translation adds < {TRANSLATION_P50_US:.0} µs at p50 per request \
                     ({what}, each over its stand-in alone)"
                ),
                measured: format!(
                    "{}; the gateway runs alone differ by {}; Envoy CPU {} per request{}",
                    with_spread(&cost),
                    fmt_delta_us(cost.raw_p50_us),
                    fmt_delta_us(cost.cpu_us),
                    if within_noise(&cost) {
                        "; **within noise**: the middle half of the rounds spans more than the \
                         target"
                    } else {
                        ""
                    }
                ),
                verdict: figures::verdict(cost.added_p50_us.map(|v| v < TRANSLATION_P50_US)),
            });
        }
        for build in self.builds() {
            for scenario in Scenario::ALL {
                let Some(run) = self.scenario(build, scenario) else {
                    continue;
                };
                let (errors, total) = run.errors();
                targets.push(Target {
                    name: format!(
                        "{}, primary fails before the first byte ({}): zero client-visible \
                         errors",
                        build.name_capitalized(),
                        scenario.label()
                    ),
                    measured: if errors == 0 {
                        format!("0 of {total}")
                    } else {
                        format!("{errors} of {total} ({})", run.error_statuses())
                    },
                    verdict: if errors == 0 {
                        Verdict::Met
                    } else {
                        Verdict::Missed
                    },
                });
            }
            if let Some(run) = self.scenario(build, Scenario::RateLimited) {
                let back = run.first_served_by_primary_s();
                let last = run.last_rate_limited_s();
                targets.push(Target {
                    name: format!(
                        "{}: after a 429 with retry-after {RETRY_AFTER_S} s the primary serves \
                         again, and not before the retry-after has passed",
                        build.name_capitalized()
                    ),
                    measured: match (back, last) {
                        (Some(back), Some(last)) => format!(
                            "served again {back:.2} s after the fault started, {:.2} s after \
                             its last 429",
                            back - last
                        ),
                        (None, _) => format!(
                            "not served by the primary again within {AFTER_S:.0} s of the \
                             fault's end"
                        ),
                        (Some(back), None) => {
                            format!("served again at {back:.2} s; no 429 was counted")
                        }
                    },
                    verdict: figures::verdict(run.honours_retry_after()),
                });
            }
        }
        targets
    }

    fn translation_table(&self, build: Build) -> String {
        let s = &self.translation;
        let gateway = Via::Gateway(build);
        let rows: Vec<Vec<String>> = Path::ALL
            .into_iter()
            .map(|path| {
                vec![
                    path.label().to_owned(),
                    fmt_us(s.median(Via::Direct, path, Metric::P50)),
                    fmt_us(s.median(Via::Direct, path, Metric::P99)),
                    fmt_us(s.median(gateway, path, Metric::P50)),
                    fmt_us(s.median(gateway, path, Metric::P99)),
                    fmt_delta_us(s.added(build, path, Metric::P50)),
                    fmt_delta_us(s.added(build, path, Metric::P99)),
                    fmt_us(s.median(gateway, path, Metric::CpuUs)),
                ]
            })
            .collect();
        table(
            &[
                "request",
                "stand-in alone p50",
                "alone p99",
                &format!("Envoy + Sluice {} p50", build.name()),
                "p99",
                "added by the gateway p50",
                "added p99",
                "Envoy CPU/request",
            ],
            &rows,
        )
    }

    fn cost_table(&self) -> String {
        let mut rows = Vec::new();
        for build in self.builds() {
            for (path, what) in [
                (Path::Anthropic, "JSON: (b) − (a)"),
                (Path::AnthropicStream, "streamed: (c) − (a, streamed)"),
            ] {
                let cost = self.translation.cost(build, path);
                rows.push(vec![
                    format!("**{}**, {what}", build.name_capitalized()),
                    format!("**{}**", with_spread(&cost)),
                    fmt_delta_us(cost.added_p99_us),
                    fmt_delta_us(cost.raw_p50_us),
                    fmt_delta_us(cost.raw_p99_us),
                    fmt_delta_us(cost.cpu_us),
                ]);
            }
        }
        table(
            &[
                "translation's cost",
                "p50, over the stand-ins",
                "p99, over the stand-ins",
                "p50, gateway runs alone",
                "p99, gateway runs alone",
                "Envoy CPU/request",
            ],
            &rows,
        )
    }

    fn micro_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .micro
            .iter()
            .map(|f| {
                vec![
                    format!("`{}`", f.id),
                    fmt_ns(f.median_ns),
                    format!("{} → {}", f.bytes_in, f.bytes_out),
                ]
            })
            .collect();
        table(&["case", "median time per call", "bytes in → out"], &rows)
    }

    /// `request + JSON answer` and `request + stream`, from the micro figures.
    fn micro_sums(&self) -> Option<(f64, f64)> {
        let ns = |id| micro::find(&self.micro, id).map(|f| f.median_ns);
        let request = ns(micro::REQUEST_TO_ANTHROPIC)?;
        Some((
            request + ns(micro::RESPONSE_TO_OPENAI)?,
            request + ns(micro::STREAM_TO_OPENAI)?,
        ))
    }

    fn failover_table(&self, build: Build) -> String {
        let rows: Vec<Vec<String>> = Scenario::ALL
            .into_iter()
            .filter_map(|scenario| self.scenario(build, scenario))
            .map(|run| {
                let (errors, total) = run.errors();
                let (before, during) = (run.before(), run.during());
                let (extra_p50, extra_p99) = run.extra_us();
                let back = run.first_served_by_primary_s();
                vec![
                    run.scenario.label().to_owned(),
                    format!(
                        "{errors} of {total} ({})",
                        figures::fmt_share(Some(errors as f64 / total.max(1) as f64))
                    ),
                    format!(
                        "{} → {} ({})",
                        fmt_us(before.p50_us),
                        fmt_us(during.p50_us),
                        fmt_delta_us(extra_p50)
                    ),
                    format!(
                        "{} → {} ({})",
                        fmt_us(before.p99_us),
                        fmt_us(during.p99_us),
                        fmt_delta_us(extra_p99)
                    ),
                    fmt_us(during.max_us),
                    run.primary_attempts_during().to_string(),
                    fmt_secs(run.stopped_s()),
                    run.primary_attempts_after_stop()
                        .map_or("–".into(), |n| n.to_string()),
                    match back {
                        Some(back) => format!(
                            "{back:.2} s ({:+.2} s after the fault)",
                            back - run.fault_end_s
                        ),
                        None => "not within the run".to_owned(),
                    },
                ]
            })
            .collect();
        table(
            &[
                "fault on the primary",
                "client errors",
                "p50 before → during (extra)",
                "p99 before → during (extra)",
                "max during",
                "primary attempts during the fault",
                "primary left alone after",
                "later probes during the fault",
                "primary serves again at",
            ],
            &rows,
        )
    }

    /// What `bench` prints at the end of the section.
    pub fn summary(&self) -> String {
        let targets = self.targets();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Providers targets:\n{}",
            figures::targets_table(&targets)
        );
        for line in figures::missed(&targets) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "\nTranslation's cost:\n{}", self.cost_table());
        for build in self.builds() {
            let _ = writeln!(
                out,
                "Failover, Sluice {}:\n{}",
                build.name(),
                self.failover_table(build)
            );
        }
        for line in &self.warnings {
            let _ = writeln!(out, "WARNING: {line}");
        }
        let _ = writeln!(
            out,
            "Providers section took {} min {} s.",
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60
        );
        out
    }

    /// The section's part of `BENCHMARKS.md`, between its markers.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let t = self.translation_method;
        let targets = self.targets();
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", PROVIDERS.begin);
        let _ = writeln!(out, "## Providers: translation cost and failover\n");
        let _ = writeln!(
            out,
            "Written by `make bench BENCH_ARGS=\"--only providers\"` ({}); not part of `make \
             bench`'s default run, which it would lengthen by its {} min {} s{}. Both builds, \
             the native module and the Wasm build, from their shipped configs.\n",
            m.date,
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60,
            if self.quick {
                "; **a --quick run: translation runs too short to trust**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "**Machine:** {} Envoy, the two provider stand-ins and the load share the 2 cores \
             with other work.\n",
            m.sentence()
        );
        for line in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {line}\n");
        }
        let _ = writeln!(out, "### Targets\n\n{}", figures::targets_table(&targets));
        let missed = figures::missed(&targets);
        if missed.is_empty() {
            let _ = writeln!(out, "Every providers target was met.\n");
        } else {
            for line in missed {
                let _ = writeln!(out, "- **{line}**");
            }
            let _ = writeln!(out);
        }

        let _ = writeln!(out, "### Translation: added cost per request\n");
        let _ = writeln!(
            out,
            "One OpenAI-shaped client (wrk, concurrency {}) sends the overhead section's 1 KB \
             chat request \
             asking for {OUTPUT_TOKENS} tokens: (a) to a model on a chain of one OpenAI target \
             (the same shape: only the model and the key are rewritten), (b) to a model on a \
             chain of one Anthropic target (the request translated, the JSON answer translated \
             back), (c) the same streamed (the SSE answer translated event by event), beside (a) \
             streamed. Each stand-in is also called alone with the bytes the upstream filter \
             sends it, so that what the two stand-ins cost differently drops out: the \
             translation's cost is the difference of what the gateway adds to each. {} rounds; \
             in each, every setup and path for {} s, one after the other (the order changes \
             from round to round). A difference is taken within each round, so that drift in \
             the shared machine's load between rounds drops out; the figure is the median of \
             the rounds' differences, with the middle half of them (25th to 75th percentile) \
             as its spread. Envoy's CPU per request is its process's user + system time over a \
             measurement divided by the requests (as the overhead section measures it, here at \
             concurrency 1). The per-setup tables give medians over the rounds.\n",
            t.concurrency, t.rounds, t.seconds,
        );
        let _ = writeln!(out, "{}", self.cost_table());
        let _ = writeln!(
            out,
            "The latency differences are small beside this machine's noise: each setup's p50 \
             moves by 100 µs or more from one 1-second measurement to the next as other work \
             comes and goes, and a row whose middle half spans more than {TRANSLATION_P50_US:.0} \
             µs cannot settle the target either way. Envoy's CPU per request is steadier, and \
             the timed loop below bounds what the translation functions themselves cost. For \
             streams the stand-in correction is approximate: through the gateway the stand-in's \
             sending and the gateway's translating overlap, so (c) − (a, streamed) of the \
             gateway runs alone is the other reading.\n"
        );
        for build in self.builds() {
            let _ = writeln!(
                out,
                "{}:\n\n{}",
                build.name_capitalized(),
                self.translation_table(build)
            );
        }
        let _ = writeln!(out, "### Translation alone (native, a timed loop)\n");
        let _ = writeln!(
            out,
            "Core's translation functions on the same request and on the answer the Anthropic \
             stand-in gives ({OUTPUT_TOKENS} tokens of text), compiled optimized as the native \
             module is, in a plain loop (`cargo bench -p sluice-bench --no-default-features \
             --bench translate`: median of 400 batches of 2 ms). The stream is fed one event per \
             chunk, as the upstream filter receives it.\n"
        );
        if self.micro.is_empty() {
            let _ = writeln!(out, "Not measured (see the warnings).\n");
        } else {
            let _ = writeln!(out, "{}", self.micro_table());
            if let Some((json, stream)) = self.micro_sums() {
                let _ = writeln!(
                    out,
                    "Translating the request and its JSON answer: {}; the request and its \
                     stream: {}.\n",
                    fmt_ns(json),
                    fmt_ns(stream)
                );
            }
        }

        let _ = writeln!(out, "### Failover under steady load\n");
        let _ = writeln!(
            out,
            "`gpt-4.1` on the chain [`openai`, `anthropic`] (the composite cluster \
             `gpt41_openai_first`), with the chain [`anthropic`, `openai`] as its standby \
             (weight 0, taken while `openai` is out of rotation). A steady open loop of {RATE_PER_S} \
             requests per second (each sent on schedule on its own task, whatever the earlier \
             ones do; a one-line question, 8 tokens of answer, not streamed; latency from the \
             send to the whole answer, by the bench's own HTTP client, whose overhead is the \
             same in every phase); {WARMUP_S:.0} s \
             of warm-up, {BEFORE_S:.0} s measured as the baseline, then a fault on the primary \
             stand-in for {FAULT_S:.0} s, then {AFTER_S:.0} s more. A fresh Envoy for each fault, \
             so no health carries over. Client errors count every measured request that did not \
             get a 200. The primary's attempts are its own counts (requests received and \
             connections refused), read every {POLL_MS} ms: it is left alone from the first read \
             after which its count stood still for {QUIET_S:.0} s (from then on, further attempts during the fault are counted as probes). \
             It serves again when an answer names its model. Times are from the moment the \
             primary acknowledged the fault; requests sent in the {:.0} ms before it may already \
             meet it and belong to neither phase.\n",
            GUARD_S * 1000.0
        );
        for build in self.builds() {
            let _ = writeln!(
                out,
                "{}:\n\n{}",
                build.name_capitalized(),
                self.failover_table(build)
            );
        }
        let _ = writeln!(
            out,
            "What takes the primary out: for 500s, {}; for 429s, {}; for a dead host, {}. \
             Sluice's settings here: `failover.eject_after_failures` {EJECT_AFTER_FAILURES}, \
             `ejection_ms` {EJECTION_MS} (doubled on each further ejection); Envoy's outlier \
             detection on the provider clusters ejects for 10 s. So after 500s or a dead host the \
             primary serves again once both ejections have ended (about 10 s after the fault \
             started, however short the fault), and after 429s once the `retry-after` of its \
             last 429 has passed. The route retries once on connect failure, reset, 5xx and 429, \
             on the chain's next target.\n",
            Scenario::ServerErrors.mechanism(),
            Scenario::RateLimited.mechanism(),
            Scenario::Dead.mechanism(),
        );
        let _ = writeln!(out, "### Method\n");
        let _ = writeln!(
            out,
            "- **Stand-ins:** `sluice-simulator --provider openai --model gpt-4.1` and \
             `--provider anthropic --model claude-sonnet-4-5` (release builds), each checking \
             its own key (the targets carry them) and Anthropic's version header, with no \
             prefill or decode cost (`--prefill-us-per-token 0 --decode-ms-per-step 0`: every \
             token at once) and rate limits out of reach; faults through `PUT /admin/faults`, \
             counts from `GET /admin/stats`."
        );
        let _ = writeln!(
            out,
            "- **Gateways:** the shipped `envoy.yaml` (native) and `envoy.wasm.yaml` (Wasm), {} \
             workers, with the filter configuration below in both roles (the gateway's filter \
             and `sluice.upstream` in the provider clusters), the provider clusters pointed at \
             the stand-ins. Envoy CPU per request: the Envoy process's user + system time over \
             the measurement divided by its requests.",
            t.envoy_workers
        );
        let _ = writeln!(
            out,
            "- **Reading the translation figures:** at concurrency 1 a request's latency is its \
             whole path, so the difference between (b) and (a) is what translating its request \
             and its answer adds to one request, on top of what both paths share (the gateway's \
             filter, the upstream filter's own work, Envoy). Beyond core's translation functions \
             (the timed loop), a translated path costs Envoy more work: the upstream filter holds \
             a translated JSON answer whole (Envoy buffers it) and replaces it, and rewrites \
             every event of a translated stream, where a same-shape answer passes untouched. The \
             CPU difference is that work seen on the Envoy process alone, without the \
             stand-ins.\n"
        );
        let _ = writeln!(
            out,
            "Sluice filter configuration:\n\n```json\n{}\n```\n",
            self.filter_configuration.trim()
        );
        let _ = writeln!(out, "{}", PROVIDERS.end);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::failover;
    use crate::providers::translation;

    fn report() -> ProvidersReport {
        let mut rate_limited = failover::tests::run(0.2, 10.0);
        rate_limited.scenario = Scenario::RateLimited;
        let mut errors = failover::tests::run(0.3, 11.0);
        errors.scenario = Scenario::ServerErrors;
        errors.samples[400].status = 503;
        ProvidersReport {
            machine: Machine::default(),
            translation: translation::tests::samples(),
            translation_method: TranslationMethod {
                envoy_workers: 2,
                concurrency: 1,
                seconds: 1,
                rounds: 4,
            },
            micro: vec![
                Figure {
                    id: micro::REQUEST_TO_ANTHROPIC.into(),
                    median_ns: 4000.0,
                    bytes_in: 1000,
                    bytes_out: 900,
                },
                Figure {
                    id: micro::RESPONSE_TO_OPENAI.into(),
                    median_ns: 1500.0,
                    bytes_in: 400,
                    bytes_out: 500,
                },
                Figure {
                    id: micro::STREAM_TO_OPENAI.into(),
                    median_ns: 9000.0,
                    bytes_in: 3000,
                    bytes_out: 4000,
                },
            ],
            failover: vec![errors, rate_limited],
            filter_configuration: "{}".into(),
            warnings: Vec::new(),
            quick: false,
            elapsed_seconds: 300,
        }
    }

    #[test]
    fn targets_hold_translation_errors_and_retry_after() {
        let targets = report().targets();
        let verdicts: Vec<(String, Verdict)> = targets
            .iter()
            .map(|t| (t.name.clone(), t.verdict))
            .collect();
        assert_eq!(verdicts.len(), 5, "{verdicts:?}");
        assert_eq!(verdicts[0].1, Verdict::Met, "32 µs < 50 µs");
        assert_eq!(
            targets[0].measured,
            "+32 µs (middle half of 4 rounds: +30 µs to +32 µs); the gateway runs alone differ \
             by +72 µs; Envoy CPU +20 µs per request"
        );
        assert_eq!(verdicts[1].1, Verdict::Met);
        assert_eq!(verdicts[2].1, Verdict::Missed, "one 503 in the 500s run");
        assert!(
            targets[2].measured.contains("503 ×1"),
            "{}",
            targets[2].measured
        );
        assert_eq!(verdicts[3].1, Verdict::Met);
        assert_eq!(
            verdicts[4].1,
            Verdict::Met,
            "back at 10 s, last 429 at 0.15 s"
        );
    }

    #[test]
    fn a_spread_wider_than_the_target_is_called_noise() {
        let narrow = Cost {
            added_p50_spread: Some((10.0, 40.0)),
            ..Cost::default()
        };
        let wide = Cost {
            added_p50_spread: Some((-10.0, 60.0)),
            ..Cost::default()
        };
        assert!(!within_noise(&narrow) && within_noise(&wide));
        assert!(!within_noise(&Cost::default()));
        assert!(!report().targets()[0].measured.contains("within noise"));
    }

    #[test]
    fn the_markdown_is_one_marked_part_with_every_table() {
        let text = report().markdown();
        assert!(text.starts_with(PROVIDERS.begin));
        assert!(text.trim_end().ends_with(PROVIDERS.end));
        assert!(
            text.contains(
                "| **Native**, JSON: (b) − (a) | **+32 µs (middle half of 4 rounds: +30 µs to \
                 +32 µs)** | +32 µs | +72 µs | +112 µs | +20 µs |"
            ),
            "{text}"
        );
        assert!(text.contains("| 500s | 1 of 1050 (0%) |"), "{text}");
        assert!(
            text.contains("Translating the request and its JSON answer: 5.50 µs; the request and its stream: 13.00 µs."),
            "{text}"
        );
        assert!(text.contains("MISSED: Native, primary fails before the first byte (500s)"));
        assert!(text.contains("not part of `make bench`'s default run"));
    }
}
