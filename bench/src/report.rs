//! The results of one `make bench` and how they are reported: a plain-text summary on stdout and
//! `BENCHMARKS.md`. Every figure is the median over the repeats of one measurement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::median;

/// The two builds of Sluice, each loaded by its own shipped Envoy config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Build {
    /// `libsluice_native.so`, an Envoy dynamic module (`envoy.yaml`).
    Native,
    /// `sluice_wasm.wasm` in V8 (`envoy.wasm.yaml`).
    Wasm,
}

impl Build {
    pub const ALL: [Build; 2] = [Build::Native, Build::Wasm];

    pub fn name(self) -> &'static str {
        match self {
            Build::Native => "native",
            Build::Wasm => "Wasm",
        }
    }

    /// The shipped Envoy config that loads this build.
    pub fn config_file(self) -> &'static str {
        match self {
            Build::Native => "envoy.yaml",
            Build::Wasm => "envoy.wasm.yaml",
        }
    }

    /// For a report's method: which build and from which file.
    pub fn describe(self) -> String {
        match self {
            Build::Native => format!(
                "the native dynamic module (`libsluice_native.so`, the shipped `{}`)",
                self.config_file()
            ),
            Build::Wasm => format!(
                "the proxy-wasm build in V8 (`sluice_wasm.wasm`, the shipped `{}`)",
                self.config_file()
            ),
        }
    }

    /// The overhead section's setup for this build.
    pub fn setup(self) -> Setup {
        match self {
            Build::Native => Setup::Native,
            Build::Wasm => Setup::Wasm,
        }
    }

    /// `Native` or `Wasm`, to start a sentence.
    pub fn name_capitalized(self) -> &'static str {
        match self {
            Build::Native => "Native",
            Build::Wasm => "Wasm",
        }
    }

    /// `native` or `wasm`, as a command-line option names it.
    pub fn parse(name: &str) -> Option<Build> {
        match name {
            "native" => Some(Build::Native),
            "wasm" => Some(Build::Wasm),
            _ => None,
        }
    }

    /// The test harness's host for this build.
    #[cfg(feature = "orchestrator")]
    pub fn host(self) -> sluice_e2e::host::Host {
        match self {
            Build::Native => sluice_e2e::host::Host::Native,
            Build::Wasm => sluice_e2e::host::Host::Wasm,
        }
    }
}

/// What sits between the client and the mock upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setup {
    Direct,
    Envoy,
    /// Envoy + Sluice, the native module.
    Native,
    /// Envoy + Sluice, the Wasm build.
    Wasm,
    LiteLlm,
}

impl Setup {
    pub const ALL: [Setup; 5] = [
        Setup::Direct,
        Setup::Envoy,
        Setup::Native,
        Setup::Wasm,
        Setup::LiteLlm,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Setup::Direct => "direct (no gateway)",
            Setup::Envoy => "plain Envoy",
            Setup::Native => "Envoy + Sluice native",
            Setup::Wasm => "Envoy + Sluice Wasm",
            Setup::LiteLlm => "LiteLLM",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::Envoy => "envoy",
            Setup::Native => "sluice_native",
            Setup::Wasm => "sluice_wasm",
            Setup::LiteLlm => "litellm",
        }
    }

    /// The Sluice build this setup runs, if any.
    pub fn build(self) -> Option<Build> {
        match self {
            Setup::Native => Some(Build::Native),
            Setup::Wasm => Some(Build::Wasm),
            _ => None,
        }
    }
}

/// One reported quantity. Latencies are in microseconds, throughputs in requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Closed loop, one connection, one request at a time.
    C1P50,
    C1P90,
    C1P99,
    /// Open loop at a fixed low rate (latency measured from each request's scheduled start).
    RateP50,
    RateP90,
    RateP99,
    /// Closed loop with many connections: the most the setup serves.
    SatRps,
    SatP50,
    SatP99,
    /// CPU time (user + system) the gateway process used per request during the saturation run.
    SatCpuUs,
    /// Streaming (SSE): time to the first response byte.
    TtfbP50,
    TtfbP90,
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::C1P50,
        Metric::C1P90,
        Metric::C1P99,
        Metric::RateP50,
        Metric::RateP90,
        Metric::RateP99,
        Metric::SatRps,
        Metric::SatP50,
        Metric::SatP99,
        Metric::SatCpuUs,
        Metric::TtfbP50,
        Metric::TtfbP90,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Metric::C1P50 => "c1_p50_us",
            Metric::C1P90 => "c1_p90_us",
            Metric::C1P99 => "c1_p99_us",
            Metric::RateP50 => "rate_p50_us",
            Metric::RateP90 => "rate_p90_us",
            Metric::RateP99 => "rate_p99_us",
            Metric::SatRps => "saturation_rps",
            Metric::SatP50 => "saturation_p50_us",
            Metric::SatP99 => "saturation_p99_us",
            Metric::SatCpuUs => "gateway_cpu_us_per_request",
            Metric::TtfbP50 => "ttfb_p50_us",
            Metric::TtfbP90 => "ttfb_p90_us",
        }
    }

    pub fn is_throughput(self) -> bool {
        self == Metric::SatRps
    }
}

/// Every sample, by setup, body size (bytes) and metric: one value per repeat.
#[derive(Debug, Clone, Default)]
pub struct Results {
    samples: BTreeMap<(Setup, usize, Metric), Vec<f64>>,
}

impl Results {
    pub fn add(&mut self, setup: Setup, size: usize, metric: Metric, value: f64) {
        self.samples
            .entry((setup, size, metric))
            .or_default()
            .push(value);
    }

    pub fn samples(&self, setup: Setup, size: usize, metric: Metric) -> &[f64] {
        self.samples
            .get(&(setup, size, metric))
            .map_or(&[], Vec::as_slice)
    }

    pub fn median(&self, setup: Setup, size: usize, metric: Metric) -> Option<f64> {
        median(self.samples(setup, size, metric))
    }

    /// `setup`'s median over `base`'s: latencies and throughputs alike.
    pub fn ratio(&self, setup: Setup, base: Setup, size: usize, metric: Metric) -> Option<f64> {
        let a = self.median(setup, size, metric)?;
        let b = self.median(base, size, metric)?;
        (b > 0.0).then(|| a / b)
    }

    /// All samples as JSON, for `.bench/results.json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for ((setup, size, metric), values) in &self.samples {
            let key = format!("{}/{}/{}", setup.key(), size, metric.key());
            out.insert(key, serde_json::json!(values));
        }
        serde_json::Value::Object(out)
    }
}

/// Resident memory of one process, in KiB, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub idle_kib: Option<u64>,
    pub loaded_kib: Option<u64>,
    pub peak_kib: Option<u64>,
}

/// A criterion result: the id and the median time per iteration.
#[derive(Debug, Clone)]
pub struct Micro {
    pub id: String,
    pub median_ns: f64,
    pub bytes: Option<u64>,
}

impl Micro {
    /// Throughput in MiB/s, for the benchmarks that declare their bytes.
    pub fn mib_per_s(&self) -> Option<f64> {
        let bytes = self.bytes?;
        (self.median_ns > 0.0).then(|| bytes as f64 / (self.median_ns / 1e9) / 1_048_576.0)
    }
}

/// How the gateway runs were made, for the report.
#[derive(Debug, Clone)]
pub struct Method {
    pub repeats: usize,
    pub c1_seconds: u64,
    pub rate_rps: u32,
    pub rate_seconds: u64,
    pub saturation_connections: u32,
    pub saturation_seconds: u64,
    pub ttfb_requests: usize,
    pub envoy_workers: u32,
    pub warmup_seconds: u64,
    /// The mock upstream's canned answers: completion bytes, stream bytes and SSE events.
    pub completion_bytes: usize,
    pub stream_bytes: usize,
    pub stream_events: usize,
}

/// Where and with what the benchmark ran.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub date: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    /// The repository's revision (`git describe --always --dirty`).
    pub revision: String,
    pub load_before: String,
    pub load_after: String,
    pub tools: Vec<(String, String)>,
}

impl Machine {
    /// The machine, its load around the run, the revision and the tools, as the sections that
    /// load simulated replicas state them: `2 cores, <cpu>, 24 GiB RAM, Linux <kernel>. Load
    /// average before / after: <1 5 15> / <1 5 15>. Sluice at `<rev>`; Envoy 1.40.0; ...`
    pub fn sentence(&self) -> String {
        format!(
            "{} cores, {}, {} RAM, Linux {}. Load average before / after: {} / {}. Sluice at \
             `{}`; {}.",
            self.cores,
            self.cpu_model,
            self.memory,
            self.kernel,
            self.load_before,
            self.load_after,
            self.revision,
            self.tools
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub method: Method,
    pub results: Results,
    pub sizes: Vec<(usize, String)>,
    /// Each build's module file size in bytes.
    pub module_bytes: Vec<(Build, Option<u64>)>,
    /// Each gateway process's resident memory (plain Envoy, both builds, LiteLLM).
    pub rss: Vec<(Setup, Rss)>,
    pub micro: Vec<Micro>,
    /// Setups or measurements that could not be made, and why: stated in the report.
    pub unavailable: Vec<String>,
    /// Anything odd seen while measuring (errors, non-2xx answers).
    pub warnings: Vec<String>,
    pub sluice_configuration: String,
    pub sluice_features: Vec<String>,
    pub elapsed_seconds: u64,
}

/// One of the issue's targets, checked against the medians.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub measured: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// The issue's targets for the native build, per body size where they depend on it.
pub mod native_targets {
    /// Added latency over plain Envoy at concurrency 1 (1 KB chat), µs: p50 and p99.
    pub const ADDED_P50_US: f64 = 50.0;
    pub const ADDED_P99_US: f64 = 150.0;
    /// Share of plain Envoy's saturation throughput, by body size.
    pub const THROUGHPUT: [(usize, f64); 2] = [(1024, 0.85), (16 * 1024, 0.75)];
    /// Resident memory added per Envoy process, MiB.
    pub const ADDED_RSS_MIB: f64 = 8.0;
    /// The whole request body phase (`route_request`) on the 16 KB chat body, natively.
    pub const ROUTE_REQUEST_BENCH: &str = "route_request/openai_chat/16KB";
    pub const ROUTE_REQUEST_MIB_S: f64 = 1024.0;
}

/// "The Wasm build must not get slower than today's figures": `BENCHMARKS.md` as committed
/// before issue 14 (`make bench` of 2026-11-22 08:50 UTC, Sluice at `a42b04d`), the one
/// Sluice build it measured, with every feature on (the same configuration).
pub mod wasm_before {
    pub const SOURCE: &str = "BENCHMARKS.md of 2026-11-22 (Sluice at a42b04d)";
    /// Added c=1 p50 over plain Envoy, 1 KB chat, µs.
    pub const ADDED_P50_US: f64 = 225.0;
    /// Share of plain Envoy's saturation throughput, by body size.
    pub const THROUGHPUT: [(usize, f64); 2] = [(1024, 0.57), (16 * 1024, 0.45)];
    /// Gateway CPU per request added over plain Envoy at saturation, µs, by body size.
    pub const ADDED_CPU_US: [(usize, f64); 2] = [(1024, 199.0), (16 * 1024, 510.0)];
}

/// The value for `size` in a per-size table.
fn for_size(table: &[(usize, f64)], size: usize) -> Option<f64> {
    table.iter().find(|(s, _)| *s == size).map(|(_, v)| *v)
}

/// `measured` against a limit: met when `ok`.
fn verdict(measured: Option<f64>, ok: impl Fn(f64) -> bool) -> Verdict {
    match measured {
        None => Verdict::NotMeasured,
        Some(v) if ok(v) => Verdict::Met,
        Some(_) => Verdict::Missed,
    }
}

/// `1234.5` µs as `1.23 ms`, `87.2` as `87 µs`.
pub fn fmt_us(us: Option<f64>) -> String {
    match us {
        None => "–".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1} ms", v / 1000.0),
        Some(v) if v >= 1000.0 => format!("{:.2} ms", v / 1000.0),
        Some(v) => format!("{v:.0} µs"),
    }
}

/// A signed difference in microseconds.
pub fn fmt_delta_us(us: Option<f64>) -> String {
    match us {
        None => "–".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{:+.2} ms", v / 1000.0),
        Some(v) => format!("{v:+.0} µs"),
    }
}

pub fn fmt_rps(rps: Option<f64>) -> String {
    match rps {
        None => "–".into(),
        Some(v) => {
            let whole = v.round() as u64;
            let digits = whole.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            format!("{out}/s")
        }
    }
}

pub fn fmt_ratio(ratio: Option<f64>) -> String {
    match ratio {
        None => "–".into(),
        Some(v) if v >= 10.0 => format!("{v:.0}×"),
        Some(v) if v >= 0.1 => format!("{v:.2}×"),
        Some(v) => format!("{v:.3}×"),
    }
}

/// A signed difference in MiB.
fn fmt_delta_mib(mib: Option<f64>) -> String {
    mib.map_or("–".into(), |v| format!("{v:+.1} MiB"))
}

fn fmt_kib(kib: Option<u64>) -> String {
    match kib {
        None => "–".into(),
        Some(v) => format!("{:.1} MiB", v as f64 / 1024.0),
    }
}

/// Nanoseconds as `87.2 ns`, `1.23 µs` or `4.56 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A Markdown table (also readable as plain text).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

const SUMMARY_METRICS: [(Metric, &str); 8] = [
    (Metric::C1P50, "c=1 p50"),
    (Metric::C1P99, "c=1 p99"),
    (Metric::RateP50, "fixed-rate p50"),
    (Metric::RateP99, "fixed-rate p99"),
    (Metric::SatRps, "max throughput"),
    (Metric::SatP50, "p50 at max"),
    (Metric::SatCpuUs, "gateway CPU/request"),
    (Metric::TtfbP50, "stream TTFB p50"),
];

impl Report {
    fn fmt_metric(&self, setup: Setup, size: usize, metric: Metric) -> String {
        let value = self.results.median(setup, size, metric);
        if metric.is_throughput() {
            fmt_rps(value)
        } else {
            fmt_us(value)
        }
    }

    fn has(&self, setup: Setup) -> bool {
        Metric::ALL.iter().any(|&m| {
            self.sizes
                .iter()
                .any(|(s, _)| self.results.median(setup, *s, m).is_some())
        })
    }

    fn first_size(&self) -> usize {
        self.sizes.first().map_or(1024, |(s, _)| *s)
    }

    /// `f(a, b)` for each run, `a` and `b` measured in the same run (setups are interleaved).
    fn per_run(
        &self,
        a: Setup,
        b: Setup,
        size: usize,
        metric: Metric,
        f: impl Fn(f64, f64) -> String,
    ) -> String {
        let runs: Vec<String> = self
            .results
            .samples(a, size, metric)
            .iter()
            .zip(self.results.samples(b, size, metric))
            .map(|(x, y)| f(*x, *y))
            .collect();
        if runs.len() < 2 {
            String::new()
        } else {
            format!("; per run: {}", runs.join(", "))
        }
    }

    /// The issue's targets, each with what was measured: the native build's, then "not slower
    /// than before" for the Wasm build, then both against LiteLLM.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let size = self.first_size();
        let label = self
            .sizes
            .first()
            .map_or("1 KB".to_owned(), |(_, l)| l.clone());
        let native = Setup::Native;
        for (metric, limit, pct) in [
            (Metric::C1P50, native_targets::ADDED_P50_US, "p50"),
            (Metric::C1P99, native_targets::ADDED_P99_US, "p99"),
        ] {
            targets.push(self.added_target(
                native,
                size,
                metric,
                limit,
                format!(
                    "Native: adds ≤ {limit:.0} µs at {pct} over plain Envoy (c=1, {label} chat)"
                ),
            ));
        }
        for (size, label) in &self.sizes {
            if let Some(share) = for_size(&native_targets::THROUGHPUT, *size) {
                targets.push(self.throughput_target(
                    native,
                    *size,
                    share,
                    format!(
                        "Native: saturation throughput ≥ {:.0}% of plain Envoy's ({label})",
                        share * 100.0
                    ),
                ));
            }
        }
        targets.push(self.rss_target(native, native_targets::ADDED_RSS_MIB));
        targets.push(self.route_request_target());

        let wasm = Setup::Wasm;
        targets.push(self.added_target(
            wasm,
            size,
            Metric::C1P50,
            wasm_before::ADDED_P50_US,
            format!(
                "Wasm, not slower: adds ≤ {:.0} µs at p50 over plain Envoy (c=1, {label} chat)",
                wasm_before::ADDED_P50_US
            ),
        ));
        for (size, label) in &self.sizes {
            if let Some(share) = for_size(&wasm_before::THROUGHPUT, *size) {
                targets.push(self.throughput_target(
                    wasm,
                    *size,
                    share,
                    format!(
                        "Wasm, not slower: saturation throughput ≥ {:.0}% of plain Envoy's \
                         ({label})",
                        share * 100.0
                    ),
                ));
            }
        }
        for (size, label) in &self.sizes {
            if let Some(limit) = for_size(&wasm_before::ADDED_CPU_US, *size) {
                targets.push(self.cpu_target(
                    wasm,
                    *size,
                    limit,
                    format!(
                        "Wasm, not slower: gateway CPU ≤ +{limit:.0} µs per {label} request over \
                         plain Envoy"
                    ),
                ));
            }
        }

        for setup in [native, wasm] {
            for (size, label) in &self.sizes {
                targets.push(self.litellm_target(setup, *size, label));
            }
        }
        targets
    }

    /// `setup` adds at most `limit` µs of `metric` over plain Envoy.
    fn added_target(
        &self,
        setup: Setup,
        size: usize,
        metric: Metric,
        limit: f64,
        name: String,
    ) -> Target {
        let delta = self.delta(setup, Setup::Envoy, size, metric);
        Target {
            name,
            measured: format!(
                "{} ({} vs {}{})",
                fmt_delta_us(delta),
                fmt_us(self.results.median(setup, size, metric)),
                fmt_us(self.results.median(Setup::Envoy, size, metric)),
                self.per_run(setup, Setup::Envoy, size, metric, |a, b| {
                    fmt_delta_us(Some(a - b))
                }),
            ),
            verdict: verdict(delta, |d| d <= limit),
        }
    }

    /// `setup` keeps at least `share` of plain Envoy's saturation throughput.
    fn throughput_target(&self, setup: Setup, size: usize, share: f64, name: String) -> Target {
        let ratio = self
            .results
            .ratio(setup, Setup::Envoy, size, Metric::SatRps);
        Target {
            name,
            measured: format!(
                "{} ({} vs {}{})",
                ratio.map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                self.fmt_metric(setup, size, Metric::SatRps),
                self.fmt_metric(Setup::Envoy, size, Metric::SatRps),
                self.per_run(setup, Setup::Envoy, size, Metric::SatRps, |a, b| {
                    format!("{:.0}%", a / b * 100.0)
                }),
            ),
            // Compared as the report shows it, in whole percent.
            verdict: verdict(ratio, |r| (r * 100.0).round() >= (share * 100.0).round()),
        }
    }

    /// `setup`'s gateway process uses at most `limit` µs of CPU per request more than plain
    /// Envoy's at saturation.
    fn cpu_target(&self, setup: Setup, size: usize, limit: f64, name: String) -> Target {
        let delta = self.delta(setup, Setup::Envoy, size, Metric::SatCpuUs);
        Target {
            name,
            measured: format!(
                "{} ({} vs {}{})",
                fmt_delta_us(delta),
                fmt_us(self.results.median(setup, size, Metric::SatCpuUs)),
                fmt_us(self.results.median(Setup::Envoy, size, Metric::SatCpuUs)),
                self.per_run(setup, Setup::Envoy, size, Metric::SatCpuUs, |a, b| {
                    fmt_delta_us(Some(a - b))
                }),
            ),
            verdict: verdict(delta, |d| d <= limit),
        }
    }

    /// `setup`'s Envoy process holds at most `limit_mib` more resident memory than plain
    /// Envoy's after the load.
    fn rss_target(&self, setup: Setup, limit_mib: f64) -> Target {
        let loaded = |s: Setup| self.rss_of(s).and_then(|r| r.loaded_kib);
        let idle = |s: Setup| self.rss_of(s).and_then(|r| r.idle_kib);
        let mib =
            |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| (a as f64 - b as f64) / 1024.0);
        let added = mib(loaded(setup), loaded(Setup::Envoy));
        Target {
            name: format!(
                "{}: adds ≤ {limit_mib:.0} MiB RSS per Envoy process",
                setup.build().map_or("?", Build::name_capitalized)
            ),
            measured: format!(
                "{} after the load ({} vs {}; idle: {})",
                fmt_delta_mib(added),
                fmt_kib(loaded(setup)),
                fmt_kib(loaded(Setup::Envoy)),
                fmt_delta_mib(mib(idle(setup), idle(Setup::Envoy)))
            ),
            verdict: verdict(added, |a| a <= limit_mib),
        }
    }

    /// The criterion run's `route_request` on the 16 KB chat body, in MiB/s.
    fn route_request_target(&self) -> Target {
        let id = native_targets::ROUTE_REQUEST_BENCH;
        let found = self.micro.iter().find(|m| m.id == id);
        let mib_s = found.and_then(Micro::mib_per_s);
        Target {
            name: format!("Native: the whole request body phase (`{id}`, criterion) at ≥ 1 GiB/s"),
            measured: match (found, mib_s) {
                (Some(m), Some(rate)) => {
                    format!("{rate:.0} MiB/s ({} per call)", fmt_ns(m.median_ns))
                }
                _ => "micro-benchmarks not run".to_owned(),
            },
            verdict: verdict(mib_s, |r| r >= native_targets::ROUTE_REQUEST_MIB_S),
        }
    }

    /// `setup` serves at least 30 times LiteLLM's saturation throughput.
    fn litellm_target(&self, setup: Setup, size: usize, label: &str) -> Target {
        let ratio = self
            .results
            .ratio(setup, Setup::LiteLlm, size, Metric::SatRps);
        Target {
            name: format!(
                "{}: saturation throughput ≥ 30× LiteLLM's ({label})",
                setup.build().map_or("?", Build::name_capitalized)
            ),
            measured: format!(
                "{} ({} vs {}{})",
                fmt_ratio(ratio),
                self.fmt_metric(setup, size, Metric::SatRps),
                self.fmt_metric(Setup::LiteLlm, size, Metric::SatRps),
                self.per_run(setup, Setup::LiteLlm, size, Metric::SatRps, |a, b| {
                    fmt_ratio(Some(a / b))
                }),
            ),
            verdict: verdict(ratio, |r| r >= 30.0),
        }
    }

    /// The difference of `a`'s and `b`'s medians.
    fn delta(&self, a: Setup, b: Setup, size: usize, metric: Metric) -> Option<f64> {
        self.results
            .median(a, size, metric)
            .zip(self.results.median(b, size, metric))
            .map(|(x, y)| x - y)
    }

    fn rss_of(&self, setup: Setup) -> Option<Rss> {
        self.rss.iter().find(|(s, _)| *s == setup).map(|(_, r)| *r)
    }

    /// Each build's CPU cost per request, the figure least moved by the shared machine's noise.
    fn cpu_line(&self) -> Option<String> {
        let builds: Vec<String> = Build::ALL
            .into_iter()
            .filter_map(|build| {
                let parts: Vec<String> = self
                    .sizes
                    .iter()
                    .filter_map(|(size, label)| {
                        let a = self
                            .results
                            .median(build.setup(), *size, Metric::SatCpuUs)?;
                        let b = self.results.median(Setup::Envoy, *size, Metric::SatCpuUs)?;
                        Some(format!(
                            "{} per {label} request ({} vs {})",
                            fmt_delta_us(Some(a - b)),
                            fmt_us(Some(a)),
                            fmt_us(Some(b))
                        ))
                    })
                    .collect();
                (!parts.is_empty()).then(|| format!("{} {}", build.name(), parts.join(", ")))
            })
            .collect();
        (!builds.is_empty()).then(|| {
            format!(
                "Sluice's CPU cost, Envoy + Sluice minus plain Envoy at saturation: {}.",
                builds.join("; ")
            )
        })
    }

    /// One plain sentence per missed target.
    fn missed(&self) -> Vec<String> {
        self.targets()
            .into_iter()
            .filter(|t| t.verdict == Verdict::Missed)
            .map(|t| format!("MISSED: {} — measured {}.", t.name, t.measured))
            .collect()
    }

    fn targets_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .targets()
            .into_iter()
            .map(|t| vec![t.name, t.measured, t.verdict.text().to_owned()])
            .collect();
        table(&["target", "measured (medians)", "verdict"], &rows)
    }

    fn absolute_table(&self, size: usize) -> String {
        let mut header = vec!["setup"];
        header.extend(SUMMARY_METRICS.iter().map(|(_, h)| *h));
        let rows: Vec<Vec<String>> = Setup::ALL
            .iter()
            .filter(|s| self.has(**s))
            .map(|&setup| {
                let mut row = vec![setup.label().to_owned()];
                row.extend(
                    SUMMARY_METRICS
                        .iter()
                        .map(|(m, _)| self.fmt_metric(setup, size, *m)),
                );
                row
            })
            .collect();
        table(&header, &rows)
    }

    fn ratio_table(&self, size: usize, base: Setup) -> String {
        let mut header = vec!["setup"];
        header.extend(SUMMARY_METRICS.iter().map(|(_, h)| *h));
        let rows: Vec<Vec<String>> = Setup::ALL
            .iter()
            .filter(|s| **s != base && self.has(**s))
            .map(|&setup| {
                let mut row = vec![setup.label().to_owned()];
                row.extend(
                    SUMMARY_METRICS
                        .iter()
                        .map(|(m, _)| fmt_ratio(self.results.ratio(setup, base, size, *m))),
                );
                row
            })
            .collect();
        table(&header, &rows)
    }

    /// Latency each gateway adds over going direct, and Sluice over plain Envoy.
    fn added_table(&self, size: usize) -> String {
        let metrics = [
            (Metric::C1P50, "c=1 p50"),
            (Metric::C1P90, "c=1 p90"),
            (Metric::C1P99, "c=1 p99"),
            (Metric::RateP50, "fixed-rate p50"),
            (Metric::RateP99, "fixed-rate p99"),
            (Metric::TtfbP50, "stream TTFB p50"),
            (Metric::SatCpuUs, "CPU/request"),
        ];
        let mut header = vec!["added"];
        header.extend(metrics.iter().map(|(_, h)| *h));
        let delta = |a: Setup, b: Setup, m: Metric| {
            self.results
                .median(a, size, m)
                .zip(self.results.median(b, size, m))
                .map(|(x, y)| x - y)
        };
        let mut rows = Vec::new();
        for (a, b, name) in [
            (Setup::Envoy, Setup::Direct, "plain Envoy − direct"),
            (
                Setup::Native,
                Setup::Direct,
                "Envoy + Sluice native − direct",
            ),
            (Setup::Wasm, Setup::Direct, "Envoy + Sluice Wasm − direct"),
            (
                Setup::Native,
                Setup::Envoy,
                "**Sluice native − plain Envoy**",
            ),
            (Setup::Wasm, Setup::Envoy, "**Sluice Wasm − plain Envoy**"),
            (Setup::LiteLlm, Setup::Direct, "LiteLLM − direct"),
        ] {
            if !self.has(a) || !self.has(b) {
                continue;
            }
            let mut row = vec![name.to_owned()];
            row.extend(metrics.iter().map(|(m, _)| fmt_delta_us(delta(a, b, *m))));
            rows.push(row);
        }
        table(&header, &rows)
    }

    fn memory_table(&self) -> String {
        let workers = u64::from(self.method.envoy_workers.max(1));
        let per_worker = |kib: Option<u64>| kib.map(|k| k / workers);
        let diff = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.saturating_sub(b));
        let row = |name: String, r: Rss, per: Option<u64>| {
            vec![
                name,
                fmt_kib(r.idle_kib),
                fmt_kib(r.loaded_kib),
                fmt_kib(r.peak_kib),
                fmt_kib(per),
            ]
        };
        let mut rows = Vec::new();
        let envoy = self.rss_of(Setup::Envoy).unwrap_or_default();
        rows.push(row(
            Setup::Envoy.label().to_owned(),
            envoy,
            per_worker(envoy.loaded_kib),
        ));
        for build in Build::ALL {
            let Some(sluice) = self.rss_of(build.setup()) else {
                continue;
            };
            rows.push(row(
                build.setup().label().to_owned(),
                sluice,
                per_worker(sluice.loaded_kib),
            ));
            let share = Rss {
                idle_kib: diff(sluice.idle_kib, envoy.idle_kib),
                loaded_kib: diff(sluice.loaded_kib, envoy.loaded_kib),
                peak_kib: diff(sluice.peak_kib, envoy.peak_kib),
            };
            rows.push(row(
                format!("**Sluice {}'s share** (difference)", build.name()),
                share,
                per_worker(share.loaded_kib),
            ));
        }
        if let Some(litellm) = self.rss_of(Setup::LiteLlm) {
            rows.push(row(
                "LiteLLM (1 worker process)".to_owned(),
                litellm,
                litellm.loaded_kib,
            ));
        }
        table(
            &[
                "process",
                "idle RSS",
                "RSS after load",
                "peak RSS",
                "per worker (after load ÷ workers)",
            ],
            &rows,
        )
    }

    fn micro_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .micro
            .iter()
            .map(|m| {
                let throughput = m
                    .mib_per_s()
                    .map_or("–".into(), |r| format!("{r:.0} MiB/s"));
                vec![format!("`{}`", m.id), fmt_ns(m.median_ns), throughput]
            })
            .collect();
        table(&["benchmark", "median time", "throughput"], &rows)
    }

    fn modules_line(&self) -> String {
        let files: Vec<String> = self
            .module_bytes
            .iter()
            .map(|(build, bytes)| {
                let file = match build {
                    Build::Native => "libsluice_native.so",
                    Build::Wasm => "sluice_wasm.wasm",
                };
                match bytes {
                    Some(b) => format!("`{file}`: {b} bytes ({:.0} KiB)", *b as f64 / 1024.0),
                    None => format!("`{file}`: not found"),
                }
            })
            .collect();
        files.join("; ")
    }

    /// What `bench` prints at the end: targets, then per body size the medians and ratios.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Targets:\n{}", self.targets_table());
        for line in self.missed() {
            let _ = writeln!(out, "{line}");
        }
        if let Some(line) = self.cpu_line() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
        for (size, label) in &self.sizes {
            let _ = writeln!(
                out,
                "{label} chat request — medians of {} runs:\n{}",
                self.method.repeats,
                self.absolute_table(*size)
            );
            let _ = writeln!(
                out,
                "÷ plain Envoy:\n{}",
                self.ratio_table(*size, Setup::Envoy)
            );
            if self.has(Setup::LiteLlm) {
                let _ = writeln!(
                    out,
                    "÷ LiteLLM:\n{}",
                    self.ratio_table(*size, Setup::LiteLlm)
                );
            }
            let _ = writeln!(out, "{}", self.added_table(*size));
        }
        let _ = writeln!(out, "Memory:\n{}", self.memory_table());
        let _ = writeln!(out, "{}", self.modules_line());
        for line in &self.unavailable {
            let _ = writeln!(out, "NOT MEASURED: {line}");
        }
        for line in &self.warnings {
            let _ = writeln!(out, "WARNING: {line}");
        }
        out
    }

    /// The whole `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let m = &self.method;
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `make bench` ({}). Do not edit by hand: run `make bench` again. \
             The run took {} min {} s.\n",
            self.machine.date,
            self.elapsed_seconds / 60,
            self.elapsed_seconds % 60
        );
        let _ = writeln!(
            out,
            "**Machine:** {} cores, {}, {} RAM, Linux {}. Load average before / after: {} / {}. \
             The machine is shared (another engineer builds and tests on it), so absolute \
             figures are noisy; every figure is the median of {} runs, setups interleaved within \
             each run.\n",
            self.machine.cores,
            self.machine.cpu_model,
            self.machine.memory,
            self.machine.kernel,
            self.machine.load_before,
            self.machine.load_after,
            m.repeats
        );
        let tools: Vec<String> = self
            .machine
            .tools
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "**Software:** Sluice at `{}`; {}.\n",
            self.machine.revision,
            tools.join("; ")
        );
        for line in &self.unavailable {
            let _ = writeln!(out, "> **Not measured:** {line}\n");
        }
        for line in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {line}\n");
        }

        let _ = writeln!(
            out,
            "## Targets\n\nFrom the issue; reported, not asserted. Each compares the medians of \
             the runs; \"per run\" pairs the two setups as measured in the same run. The native \
             build's targets are issue 14's; the Wasm build must not be slower than its figures \
             before the native module ({}, with the same configuration), on a machine whose \
             load differs from run to run.\n\n{}",
            wasm_before::SOURCE,
            self.targets_table()
        );
        let missed = self.missed();
        if missed.is_empty() {
            let _ = writeln!(out, "Every measured target was met.\n");
        } else {
            for line in missed {
                let _ = writeln!(out, "- **{line}**");
            }
            let _ = writeln!(out);
        }
        if let Some(line) = self.cpu_line() {
            let _ = writeln!(out, "{line}\n");
        }

        for (size, label) in &self.sizes {
            let _ = writeln!(out, "## {label} chat request\n");
            let _ = writeln!(
                out,
                "Medians of {} runs.\n\n{}",
                m.repeats,
                self.absolute_table(*size)
            );
            let _ = writeln!(
                out,
                "Ratios to plain Envoy (latency: lower is better; throughput: higher is better):\n\n{}",
                self.ratio_table(*size, Setup::Envoy)
            );
            if self.has(Setup::LiteLlm) {
                let _ = writeln!(
                    out,
                    "Ratios to LiteLLM:\n\n{}",
                    self.ratio_table(*size, Setup::LiteLlm)
                );
            }
            let _ = writeln!(
                out,
                "Latency added (differences of medians):\n\n{}",
                self.added_table(*size)
            );
        }

        let _ = writeln!(out, "## Memory and module size\n");
        let _ = writeln!(
            out,
            "{}\nRSS is VmRSS of each Envoy process from `/proc/<pid>/status` (not the admin's \
             `server.memory_allocated`: a Wasm VM's memory is outside Envoy's allocator), idle \
             after the pre-flight requests and again after all the load; peak is VmHWM. Envoy \
             runs {} workers, so \"per worker\" is the process RSS divided by {} (a rough \
             figure: it spreads the main thread's share too). A build's share is its Envoy's RSS \
             minus plain Envoy's: for the Wasm build mostly one V8 VM per worker, for the native \
             module the loaded library and its process-wide state (shared by the workers).\n\n{}\n",
            self.memory_table(),
            m.envoy_workers,
            m.envoy_workers,
            self.modules_line()
        );

        let _ = writeln!(out, "## Micro-benchmarks (criterion, native)\n");
        if self.micro.is_empty() {
            let _ = writeln!(out, "Not run.\n");
        } else {
            let _ = writeln!(
                out,
                "The filter's request-path code compiled natively (x86-64, as the native module \
                 runs it; the Wasm build runs it in V8, slower by a factor that the gateway runs \
                 above include), median time \
                 per call on the same deterministic chat bodies. `parse_normalize` is the body \
                 parsed into the canonical request; `route_request` adds the model lookup and the \
                 context-window check (the whole body phase); `route_request_alias_rewrite` also \
                 re-serializes the body for an alias. `replica_scoring/rank/N` ranks a pool of N \
                 replicas for one request (queue, KV cache, running, in-flight, prefix and LoRA \
                 affinity). `parse_baseline_serde_json_value` is NOT \
                 Sluice code: `serde_json::from_slice::<serde_json::Value>` of the same bodies, for \
                 scale. `configure_time` runs once per configuration, not per request.\n\n{}",
                self.micro_table()
            );
        }

        let _ = writeln!(out, "## Method\n");
        let features = self.sluice_features.join(", ");
        let _ = writeln!(
            out,
            "- **Upstream:** one mock OpenAI server, an Envoy with one worker and a small Lua \
             filter (`bench/upstream.yaml`) that reads the whole request and answers a canned chat \
             completion ({} bytes), or a canned SSE stream ({} events, {} bytes) when the body \
             asks for `\"stream\": true`. Every setup talks to this same process.\n\
             - **Setups:** *direct* = client → upstream; *plain Envoy* = the shipped `envoy.yaml` \
             with the `sluice` filter block removed (same listener, access log, route, cluster, \
             health checks); *Envoy + Sluice native* = the shipped `envoy.yaml` (the native \
             dynamic module `libsluice_native.so`, found through \
             `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`) and *Envoy + Sluice Wasm* = the shipped \
             `envoy.wasm.yaml` (`sluice_wasm.wasm` in V8), both with the same filter \
             configuration from `bench/src/sluice_config.rs` (features on: {features}); the \
             three Envoys run with `--concurrency {}` as `make run` does, side by side, measured \
             one after the other in each run; *LiteLLM* = `litellm --config \
             … --num_workers 1` from PyPI in `.bench/litellm-venv`, the upstream as an \
             OpenAI-compatible provider, with a master key (every setup gets the same \
             `authorization` header), no database, logging at ERROR, no network calls out.\n\
             - **Requests:** `POST /v1/chat/completions` with deterministic chat bodies of \
             exactly 1 KiB and 16 KiB (`bench/src/bodies.rs`).\n\
             - **c=1:** wrk, 1 thread, 1 connection, {} s, closed loop.\n\
             - **Fixed rate:** oha at {} requests/s for {} s, open loop with latency correction \
             (each latency runs from the request's scheduled start, so stalls are not hidden).\n\
             - **Max throughput:** wrk, 1 thread, {} connections, {} s. Load generator, gateway \
             and upstream share the 2 cores, so this is the throughput of the whole box, which \
             is what the ratios compare. *Gateway CPU/request* is the user + system time of the \
             gateway process (`/proc/<pid>/stat`) over that run divided by the requests served: \
             a figure the shared machine's noise barely moves.\n\
             - **Stream TTFB:** curl `%{{time_starttransfer}}` over {} streaming requests on one \
             kept-alive connection (first request dropped).\n\
             - Before measuring, every setup is checked to return the canned completion and \
             stream (and each build's own request and pick counters must have moved), then warmed up for \
             {} s per body size.\n",
            m.completion_bytes,
            m.stream_events,
            m.stream_bytes,
            m.envoy_workers,
            m.c1_seconds,
            m.rate_rps,
            m.rate_seconds,
            m.saturation_connections,
            m.saturation_seconds,
            m.ttfb_requests,
            m.warmup_seconds
        );
        let _ = writeln!(
            out,
            "Sluice filter configuration measured:\n\n```json\n{}\n```\n",
            self.sluice_configuration.trim()
        );

        let _ = writeln!(out, "## Every run\n");
        let _ = writeln!(
            out,
            "Each cell lists the {} runs in order; the tables above show their medians.\n",
            m.repeats
        );
        for (size, label) in &self.sizes {
            let _ = writeln!(out, "### {label}\n");
            let mut header = vec!["metric"];
            let setups: Vec<Setup> = Setup::ALL.into_iter().filter(|s| self.has(*s)).collect();
            header.extend(setups.iter().map(|s| s.label()));
            let rows: Vec<Vec<String>> = Metric::ALL
                .iter()
                .map(|&metric| {
                    let mut row = vec![metric.key().to_owned()];
                    row.extend(setups.iter().map(|&setup| {
                        self.results
                            .samples(setup, *size, metric)
                            .iter()
                            .map(|v| format!("{v:.0}"))
                            .collect::<Vec<_>>()
                            .join(" · ")
                    }));
                    row
                })
                .collect();
            let _ = writeln!(out, "{}", table(&header, &rows));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(results: Results) -> Report {
        Report {
            machine: Machine::default(),
            method: Method {
                repeats: 3,
                c1_seconds: 5,
                rate_rps: 50,
                rate_seconds: 5,
                saturation_connections: 32,
                saturation_seconds: 5,
                ttfb_requests: 30,
                envoy_workers: 2,
                warmup_seconds: 2,
                completion_bytes: 378,
                stream_bytes: 4000,
                stream_events: 21,
            },
            results,
            sizes: vec![(1024, "1 KB".into()), (16384, "16 KB".into())],
            module_bytes: vec![(Build::Native, Some(2_000_000)), (Build::Wasm, None)],
            rss: Vec::new(),
            micro: Vec::new(),
            unavailable: Vec::new(),
            warnings: Vec::new(),
            sluice_configuration: "{}".into(),
            sluice_features: Vec::new(),
            elapsed_seconds: 0,
        }
    }

    fn target<'a>(targets: &'a [Target], name: &str) -> &'a Target {
        targets
            .iter()
            .find(|t| t.name.starts_with(name))
            .unwrap_or_else(|| panic!("no target {name:?} in {targets:#?}"))
    }

    #[test]
    fn targets_compare_medians() {
        let mut results = Results::default();
        for v in [300.0, 310.0, 900.0] {
            results.add(Setup::Envoy, 1024, Metric::C1P50, v);
        }
        for v in [340.0, 350.0, 360.0] {
            results.add(Setup::Native, 1024, Metric::C1P50, v);
        }
        for v in [500.0, 530.0, 560.0] {
            results.add(Setup::Wasm, 1024, Metric::C1P50, v);
        }
        results.add(Setup::Envoy, 1024, Metric::SatRps, 5000.0);
        results.add(Setup::Native, 1024, Metric::SatRps, 4000.0);
        results.add(Setup::Wasm, 1024, Metric::SatRps, 2900.0);
        results.add(Setup::LiteLlm, 1024, Metric::SatRps, 100.0);
        results.add(Setup::Envoy, 16384, Metric::SatRps, 4000.0);
        results.add(Setup::Native, 16384, Metric::SatRps, 3000.0);
        results.add(Setup::Envoy, 1024, Metric::SatCpuUs, 120.0);
        results.add(Setup::Wasm, 1024, Metric::SatCpuUs, 320.0);
        let targets = report(results).targets();
        let p50 = target(&targets, "Native: adds ≤ 50 µs at p50");
        assert_eq!(p50.verdict, Verdict::Met, "{p50:?}");
        assert!(p50.measured.starts_with("+40 µs"));
        let p99 = target(&targets, "Native: adds ≤ 150 µs at p99");
        assert_eq!(p99.verdict, Verdict::NotMeasured);
        let t = target(
            &targets,
            "Native: saturation throughput ≥ 85% of plain Envoy's (1 KB)",
        );
        assert_eq!(t.verdict, Verdict::Missed, "80% < 85%");
        let t = target(
            &targets,
            "Native: saturation throughput ≥ 75% of plain Envoy's (16 KB)",
        );
        assert_eq!(t.verdict, Verdict::Met, "75% is enough");
        let t = target(
            &targets,
            "Native: saturation throughput ≥ 30× LiteLLM's (1 KB)",
        );
        assert_eq!(t.verdict, Verdict::Met, "40× LiteLLM");
        let t = target(&targets, "Native: adds ≤ 8 MiB RSS");
        assert_eq!(t.verdict, Verdict::NotMeasured);
        let t = target(&targets, "Native: the whole request body phase");
        assert_eq!(t.verdict, Verdict::NotMeasured, "no criterion run");
        // The Wasm build against the figures from before issue 14.
        let t = target(&targets, "Wasm, not slower: adds ≤ 225 µs at p50");
        assert_eq!(t.verdict, Verdict::Met, "+220 µs: {t:?}");
        let t = target(&targets, "Wasm, not slower: saturation throughput ≥ 57%");
        assert_eq!(t.verdict, Verdict::Met, "58%");
        let t = target(&targets, "Wasm, not slower: saturation throughput ≥ 45%");
        assert_eq!(t.verdict, Verdict::NotMeasured, "16 KB absent");
        let t = target(&targets, "Wasm, not slower: gateway CPU ≤ +199 µs per 1 KB");
        assert_eq!(t.verdict, Verdict::Missed, "+200 µs");
        let t = target(
            &targets,
            "Wasm: saturation throughput ≥ 30× LiteLLM's (1 KB)",
        );
        assert_eq!(t.verdict, Verdict::Missed, "29×");
    }

    #[test]
    fn rss_and_criterion_targets() {
        let mut report = report(Results::default());
        let rss = |idle, loaded| Rss {
            idle_kib: Some(idle),
            loaded_kib: Some(loaded),
            peak_kib: Some(loaded),
        };
        report.rss = vec![
            (Setup::Envoy, rss(60 * 1024, 64 * 1024)),
            (Setup::Native, rss(62 * 1024, 71 * 1024)),
            (Setup::Wasm, rss(120 * 1024, 124 * 1024)),
        ];
        report.micro = vec![Micro {
            id: native_targets::ROUTE_REQUEST_BENCH.to_owned(),
            median_ns: 20_000.0,
            bytes: Some(16 * 1024),
        }];
        let targets = report.targets();
        let t = target(&targets, "Native: adds ≤ 8 MiB RSS");
        assert_eq!(t.verdict, Verdict::Met, "{t:?}");
        assert!(t.measured.starts_with("+7.0 MiB"), "{t:?}");
        let t = target(&targets, "Native: the whole request body phase");
        // 16 KiB in 20 µs: 781 MiB/s.
        assert_eq!(t.verdict, Verdict::Missed, "{t:?}");
        assert!(t.measured.starts_with("781 MiB/s"), "{t:?}");
        let memory = report.memory_table();
        assert!(memory.contains("Sluice native's share"));
        assert!(memory.contains("| **Sluice Wasm's share** (difference) | 60.0 MiB | 60.0 MiB"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(Some(87.4)), "87 µs");
        assert_eq!(fmt_us(Some(1234.0)), "1.23 ms");
        assert_eq!(fmt_us(Some(12_345.0)), "12.3 ms");
        assert_eq!(fmt_rps(Some(4912.4)), "4,912/s");
        assert_eq!(fmt_rps(Some(98.0)), "98/s");
        assert_eq!(fmt_rps(Some(1_234_567.0)), "1,234,567/s");
        assert_eq!(fmt_ratio(Some(1.084)), "1.08×");
        assert_eq!(fmt_ratio(Some(38.4)), "38×");
        assert_eq!(fmt_ratio(Some(0.021)), "0.021×");
        assert_eq!(fmt_delta_us(Some(-12.2)), "-12 µs");
    }

    #[test]
    fn markdown_mentions_every_section() {
        let mut results = Results::default();
        results.add(Setup::Envoy, 1024, Metric::C1P50, 300.0);
        let text = report(results).markdown();
        for section in [
            "## Targets",
            "Native: adds ≤ 50 µs",
            "Wasm, not slower",
            "`libsluice_native.so`: 2000000 bytes",
            "## 1 KB chat request",
            "## Memory",
            "## Method",
        ] {
            assert!(text.contains(section), "{section}");
        }
    }
}
