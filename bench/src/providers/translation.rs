//! The translation runs' samples and what they say: each request path's latency and CPU, and
//! the added cost of translation, `(b) − (a)` for JSON and `(c) − (a, streamed)` for streams.
//!
//! A difference of two gateway runs also holds whatever the two stand-ins cost differently
//! (answering in the Anthropic shape is not answering in the OpenAI one). Each stand-in is
//! therefore also measured alone, sent the bytes the gateway would send it; the gateway's share
//! is its run minus that, and the translation's cost is the difference of the gateway's
//! shares. Envoy's CPU per request holds no stand-in work, so its difference is taken as is.
//!
//! The runs are short rounds with every setup and path in each: a difference is taken within
//! each round (paired, so drift in the shared machine's load between rounds drops out), and the
//! figure is the median of the rounds' differences, with the middle half of them as its spread.

use crate::report::Build;
use crate::stats::{median, percentile};

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
    pub round: usize,
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

/// The cost of translation on one build for one kind of answer: medians over the rounds of
/// each round's difference.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// The gateway runs' difference, p50 and p99 (stand-ins included).
    pub raw_p50_us: Option<f64>,
    pub raw_p99_us: Option<f64>,
    /// The difference of what the gateway added over each stand-in alone, p50 and p99.
    pub added_p50_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    /// The middle half of the rounds' `added_p50` differences: 25th and 75th percentiles.
    pub added_p50_spread: Option<(f64, f64)>,
    /// Envoy's CPU per request, difference.
    pub cpu_us: Option<f64>,
    /// Rounds that measured every setup the cost needs.
    pub rounds: usize,
}

impl Samples {
    pub fn add(&mut self, round: usize, via: Via, path: Path, metric: Metric, value: f64) {
        if value.is_finite() {
            self.samples.push(Sample {
                round,
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

    fn one(&self, round: usize, via: Via, path: Path, metric: Metric) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.round == round && s.via == via && s.path == path && s.metric == metric)
            .map(|s| s.value)
    }

    /// What the gateway added over the stand-in alone (medians).
    pub fn added(&self, build: Build, path: Path, metric: Metric) -> Option<f64> {
        Some(
            self.median(Via::Gateway(build), path, metric)?
                - self.median(Via::Direct, path, metric)?,
        )
    }

    fn rounds(&self) -> usize {
        self.samples.iter().map(|s| s.round + 1).max().unwrap_or(0)
    }

    /// Each round's value of `difference`, for the rounds where it could be taken.
    fn per_round(&self, difference: impl Fn(usize) -> Option<f64>) -> Vec<f64> {
        (0..self.rounds()).filter_map(difference).collect()
    }

    /// The cost of translation for `path` (an Anthropic path) on `build`.
    pub fn cost(&self, build: Build, path: Path) -> Cost {
        let base = path.baseline();
        let gateway = Via::Gateway(build);
        let raw = |metric| {
            self.per_round(|r| {
                Some(self.one(r, gateway, path, metric)? - self.one(r, gateway, base, metric)?)
            })
        };
        let added = |metric| {
            self.per_round(|r| {
                let added = |p| {
                    Some(self.one(r, gateway, p, metric)? - self.one(r, Via::Direct, p, metric)?)
                };
                Some(added(path)? - added(base)?)
            })
        };
        let added_p50 = added(Metric::P50);
        let spread = percentile(&added_p50, 25.0).zip(percentile(&added_p50, 75.0));
        Cost {
            raw_p50_us: median(&raw(Metric::P50)),
            raw_p99_us: median(&raw(Metric::P99)),
            added_p50_us: median(&added_p50),
            added_p99_us: median(&added(Metric::P99)),
            added_p50_spread: spread,
            cpu_us: median(&raw(Metric::CpuUs)),
            rounds: added_p50.len(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Four rounds: the stand-ins alone answer in 300 µs (OpenAI) and 340 µs (Anthropic), +100
    /// µs streamed, + 50 µs per round (the machine's load drifting); the native gateway adds
    /// 200 µs on OpenAI paths and 230 µs on Anthropic ones (+ the round's index in µs on the
    /// Anthropic paths), and spends 100 µs or 120 µs of CPU.
    pub(crate) fn samples() -> Samples {
        let mut samples = Samples::default();
        for repeat in 0..4 {
            for path in Path::ALL {
                let direct = if path.anthropic() { 340.0 } else { 300.0 }
                    + if path.stream() { 100.0 } else { 0.0 }
                    + 50.0 * repeat as f64;
                let added = if path.anthropic() {
                    230.0 + repeat as f64
                } else {
                    200.0
                };
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
            // Rounds differ by 30, 31, 32 and 33 µs: the drift of 50 µs a round drops out.
            assert_eq!(cost.raw_p50_us, Some(71.5), "{path:?}");
            assert_eq!(cost.added_p50_us, Some(31.5), "{path:?}");
            assert_eq!(cost.added_p99_us, Some(31.5), "{path:?}");
            assert_eq!(cost.added_p50_spread, Some((30.0, 32.0)));
            assert_eq!(cost.cpu_us, Some(20.0));
            assert_eq!(cost.rounds, 4);
        }
        assert_eq!(
            samples.added(Build::Native, Path::OpenAi, Metric::P50),
            Some(200.0)
        );
        let wasm = samples.cost(Build::Wasm, Path::Anthropic);
        assert_eq!(wasm.added_p50_us, None, "not measured");
        assert_eq!(wasm.rounds, 0);
    }

    #[test]
    fn non_finite_values_are_not_samples() {
        let mut samples = Samples::default();
        samples.add(0, Via::Direct, Path::OpenAi, Metric::P50, f64::NAN);
        assert!(samples.samples.is_empty());
    }
}
