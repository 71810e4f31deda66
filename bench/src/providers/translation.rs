//! The translation runs' samples and what they say: each request path's latency and CPU, and
//! the added cost of translation, `(b) − (a)` for JSON and `(c) − (a, streamed)` for streams.
//!
//! A difference of two gateway runs also holds whatever the two stand-ins cost differently
//! (answering in the Anthropic shape is not answering in the OpenAI one). Each stand-in is
//! therefore also measured alone, sent the bytes the gateway would send it; the gateway's share
//! is its run minus that, and the translation's cost is the difference of the gateway's
//! shares. Envoy's CPU per request holds no stand-in work, so its difference is taken as is.

use crate::report::Build;
use crate::stats::median;

/// A request path: which target, and whether the answer streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// (a) A chain of one OpenAI target: only the model and the key are rewritten.
    OpenAi,
    /// (a, streamed)
    OpenAiStream,
    /// (b) A chain of one Anthropic target: the request and the JSON answer translated.
    Anthropic,
    /// (c) The same, streamed: the SSE answer translated event by event.
    AnthropicStream,
}

impl Path {
    pub const ALL: [Path; 4] = [
        Path::OpenAi,
        Path::OpenAiStream,
        Path::Anthropic,
        Path::AnthropicStream,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Path::OpenAi => "(a) OpenAI target, JSON",
            Path::OpenAiStream => "(a) OpenAI target, streamed",
            Path::Anthropic => "(b) Anthropic target, JSON",
            Path::AnthropicStream => "(c) Anthropic target, streamed",
        }
    }

    pub fn stream(self) -> bool {
        matches!(self, Path::OpenAiStream | Path::AnthropicStream)
    }

    pub fn anthropic(self) -> bool {
        matches!(self, Path::Anthropic | Path::AnthropicStream)
    }

    /// The same-shape path with the same kind of answer: what translation is compared with.
    pub fn baseline(self) -> Path {
        if self.stream() {
            Path::OpenAiStream
        } else {
            Path::OpenAi
        }
    }
}

/// Where the client's requests went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight to the stand-in, with the bytes the gateway would send it.
    Direct,
    Gateway(Build),
}

impl Via {
    pub fn label(self) -> String {
        match self {
            Via::Direct => "stand-in alone".into(),
            Via::Gateway(build) => format!("Envoy + Sluice {}", build.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P50,
    P99,
    /// Envoy's CPU time (user + system) per request, µs.
    CpuUs,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub repeat: usize,
    pub via: Via,
    pub path: Path,
    pub metric: Metric,
    pub value: f64,
}

/// Every sample of the translation runs.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub samples: Vec<Sample>,
}

/// The cost of translation on one build for one kind of answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cost {
    /// The gateway runs' difference, p50 and p99 (stand-ins included).
    pub raw_p50_us: Option<f64>,
    pub raw_p99_us: Option<f64>,
    /// The difference of what the gateway added over each stand-in alone, p50 and p99.
    pub added_p50_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    /// The gateway-added p50 difference of each run, in order.
    pub added_p50_per_run: Vec<f64>,
    /// Envoy's CPU per request, difference.
    pub cpu_us: Option<f64>,
}

impl Samples {
    pub fn add(&mut self, repeat: usize, via: Via, path: Path, metric: Metric, value: f64) {
        if value.is_finite() {
            self.samples.push(Sample {
                repeat,
                via,
                path,
                metric,
                value,
            });
        }
    }

    fn values(&self, via: Via, path: Path, metric: Metric) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.via == via && s.path == path && s.metric == metric)
            .map(|s| s.value)
            .collect()
    }

    /// The median over the runs.
    pub fn median(&self, via: Via, path: Path, metric: Metric) -> Option<f64> {
        median(&self.values(via, path, metric))
    }

    fn one(&self, repeat: usize, via: Via, path: Path, metric: Metric) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.repeat == repeat && s.via == via && s.path == path && s.metric == metric)
            .map(|s| s.value)
    }

    /// What the gateway added over the stand-in alone (medians).
    pub fn added(&self, build: Build, path: Path, metric: Metric) -> Option<f64> {
        Some(
            self.median(Via::Gateway(build), path, metric)?
                - self.median(Via::Direct, path, metric)?,
        )
    }

    fn repeats(&self) -> usize {
        self.samples.iter().map(|s| s.repeat + 1).max().unwrap_or(0)
    }

    /// The cost of translation for `path` (an Anthropic path) on `build`.
    pub fn cost(&self, build: Build, path: Path) -> Cost {
        let base = path.baseline();
        let gateway = Via::Gateway(build);
        let diff = |metric| {
            Some(self.median(gateway, path, metric)? - self.median(gateway, base, metric)?)
        };
        let added =
            |metric| Some(self.added(build, path, metric)? - self.added(build, base, metric)?);
        let per_run = (0..self.repeats())
            .filter_map(|r| {
                let added = |p| {
                    Some(
                        self.one(r, gateway, p, Metric::P50)?
                            - self.one(r, Via::Direct, p, Metric::P50)?,
                    )
                };
                Some(added(path)? - added(base)?)
            })
            .collect();
        Cost {
            raw_p50_us: diff(Metric::P50),
            raw_p99_us: diff(Metric::P99),
            added_p50_us: added(Metric::P50),
            added_p99_us: added(Metric::P99),
            added_p50_per_run: per_run,
            cpu_us: diff(Metric::CpuUs),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three runs: the stand-ins alone answer in 300 µs (OpenAI) and 340 µs (Anthropic), +100
    /// µs streamed; the native gateway adds 200 µs on OpenAI paths and 230 µs on Anthropic
    /// ones (+ the run's index in µs), and spends 100 µs or 120 µs of CPU.
    pub(crate) fn samples() -> Samples {
        let mut samples = Samples::default();
        for repeat in 0..3 {
            for path in Path::ALL {
                let direct = if path.anthropic() { 340.0 } else { 300.0 }
                    + if path.stream() { 100.0 } else { 0.0 };
                let added = if path.anthropic() { 230.0 } else { 200.0 } + repeat as f64;
                samples.add(repeat, Via::Direct, path, Metric::P50, direct);
                samples.add(repeat, Via::Direct, path, Metric::P99, direct * 2.0);
                let via = Via::Gateway(Build::Native);
                samples.add(repeat, via, path, Metric::P50, direct + added);
                samples.add(repeat, via, path, Metric::P99, direct * 2.0 + added);
                let cpu = if path.anthropic() { 120.0 } else { 100.0 };
                samples.add(repeat, via, path, Metric::CpuUs, cpu);
            }
        }
        samples
    }

    #[test]
    fn the_cost_leaves_out_what_the_stand_ins_differ_by() {
        let samples = samples();
        for path in [Path::Anthropic, Path::AnthropicStream] {
            let cost = samples.cost(Build::Native, path);
            assert_eq!(cost.raw_p50_us, Some(70.0), "{path:?}");
            assert_eq!(cost.added_p50_us, Some(30.0), "{path:?}");
            assert_eq!(cost.added_p99_us, Some(30.0), "{path:?}");
            assert_eq!(cost.added_p50_per_run, vec![30.0, 30.0, 30.0]);
            assert_eq!(cost.cpu_us, Some(20.0));
        }
        assert_eq!(
            samples.added(Build::Native, Path::OpenAi, Metric::P50),
            Some(201.0)
        );
        let wasm = samples.cost(Build::Wasm, Path::Anthropic);
        assert_eq!(wasm.added_p50_us, None, "not measured");
        assert!(wasm.added_p50_per_run.is_empty());
    }

    #[test]
    fn non_finite_values_are_not_samples() {
        let mut samples = Samples::default();
        samples.add(0, Via::Direct, Path::OpenAi, Metric::P50, f64::NAN);
        assert!(samples.samples.is_empty());
    }
}
