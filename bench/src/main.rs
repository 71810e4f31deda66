//! `make bench`: the overhead section starts a mock upstream, plain Envoy, Envoy + Sluice (the
//! native module and the Wasm build, the same configuration) and LiteLLM side by side, measures
//! each with wrk, oha and curl (repeated, interleaved) and runs the criterion micro-benchmarks;
//! the routing section (`sluice_bench::routing`) measures replica picking against Envoy's load
//! balancing on simulated replicas; the cluster quota section (`sluice_bench::quota_cluster`)
//! measures how far Envoys sharing a limit over-admit; the flow-control section
//! (`sluice_bench::flow_control`) measures priority, fairness and starvation on an overloaded pool;
//! the providers section (`sluice_bench::providers`, `--only providers`: not in the default run)
//! measures what per-attempt translation costs and how a chain of providers fails over.
//! Prints a summary of each and writes `BENCHMARKS.md`.
//!
//! Every process it starts is stopped when it ends: normally, on an error, on a panic (this
//! binary is built in the dev profile, which unwinds) and on SIGINT, SIGTERM or SIGHUP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use sluice_bench::bodies::{self, GATEWAY_SIZES, MODEL};
use sluice_bench::flow_control;
use sluice_bench::load::{self, Run, Tools};
use sluice_bench::machine::{load_average, word};
use sluice_bench::procs::{self, API_KEY, ENVOY_WORKERS, LITELLM_VERSION, Service};
use sluice_bench::providers;
use sluice_bench::quota_cluster;
use sluice_bench::report::{
    Build, Machine, Method, Metric, Micro, Report, Results, Rss, Setup, fmt_rps, fmt_us,
};
use sluice_bench::routing::{self, workload::Workload};
use sluice_bench::sections::{self, Part, compose};
use sluice_bench::sluice_config;
use sluice_core::picking::Weights;

const USAGE: &str = "\
usage: bench [--only overhead|routing|quota-cluster|flow-control|providers] [--quick] [--repeats N]
             [--skip-litellm] [--skip-micro] [--host native|wasm] [--weights LIST]
             [--workload NAME] [--flow-step-seconds S] [--flow-drain-seconds S] [--output FILE]

  --only SECTION  run one section: `overhead` (gateways against a mock upstream, micro-benchmarks),
                  `routing` (replica picking against Envoy's load balancing), `quota-cluster`
                  (over-admission of Envoys sharing a limit through the picker and Redis) or
                  `flow-control` (priority, fairness and starvation on an overloaded pool); the
                  other sections of the report are kept as they were. `providers` (translation
                  cost per request and failover under steady load, both builds) runs only when
                  named here: it takes about 7 minutes
  --quick         short runs: checks that everything works; the rough report goes to
                  .bench/BENCHMARKS-quick.md unless --output says otherwise
  --output FILE   where to write the report (default BENCHMARKS.md in the repository)
  --host BUILD    the Sluice build the routing, cluster quota and flow-control sections run:
                  `native` (the default, the shipped envoy.yaml) or `wasm` (envoy.wasm.yaml); the
                  overhead section always measures both

overhead section:
  --repeats N     runs of every measurement; the report gives their median (default 3)
  --skip-litellm  do not start LiteLLM
  --skip-micro    do not run the criterion micro-benchmarks

routing section:
  --weights LIST  Sluice's picking weights over the defaults, e.g. prefix=4,queue=1 (names:
                  queue, kv_cache, running, in_flight, prefix, lora)
  --workload NAME only `prefix-heavy` or `independent` (default both)

flow-control section:
  --flow-step-seconds S   seconds of arrivals per step (default 12, 3 with --quick)
  --flow-drain-seconds S  the most a step waits for its last requests (default 6, 2 with --quick)";

/// The sections of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Overhead,
    Routing,
    QuotaCluster,
    FlowControl,
    /// Not in the default run (`--only providers`).
    Providers,
}

/// The canned answer the mock upstream gives; every setup must pass it through.
const CANNED_CONTENT: &str =
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.";

#[derive(Debug, Clone)]
struct Options {
    repeats: usize,
    c1_seconds: u64,
    rate_rps: u32,
    rate_seconds: u64,
    saturation_connections: u32,
    saturation_seconds: u64,
    warmup_seconds: u64,
    ttfb_requests: usize,
    litellm: bool,
    micro: bool,
    output: Option<PathBuf>,
    quick: bool,
    only: Option<Section>,
    routing: routing::run::Options,
    flow_step_seconds: Option<f64>,
    flow_drain_seconds: Option<f64>,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            repeats: 3,
            c1_seconds: 5,
            // Low enough for every setup, LiteLLM with 16 KB bodies included, to keep up with.
            rate_rps: 10,
            // 8 s (80 requests a run, 240 over the repeats) leaves room for the routing section
            // in the 15 minutes `make bench` may take.
            rate_seconds: 8,
            saturation_connections: 32,
            saturation_seconds: 5,
            warmup_seconds: 2,
            ttfb_requests: 30,
            litellm: true,
            micro: true,
            output: None,
            quick: false,
            only: None,
            routing: routing::run::Options {
                quick: false,
                weights: Weights::default(),
                workloads: Workload::ALL.to_vec(),
                build: Build::Native,
            },
            flow_step_seconds: None,
            flow_drain_seconds: None,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => {
                    options.quick = true;
                    options.repeats = 1;
                    options.c1_seconds = 1;
                    options.rate_seconds = 2;
                    options.saturation_seconds = 1;
                    options.warmup_seconds = 1;
                    options.ttfb_requests = 5;
                    options.routing.quick = true;
                }
                "--only" => {
                    options.only = Some(match args.next().as_deref() {
                        Some("overhead") => Section::Overhead,
                        Some("routing") => Section::Routing,
                        Some("quota-cluster") => Section::QuotaCluster,
                        Some("flow-control") => Section::FlowControl,
                        Some("providers") => Section::Providers,
                        _ => {
                            return Err("--only needs `overhead`, `routing`, `quota-cluster`, \
                                        `flow-control` or `providers`"
                                .into());
                        }
                    });
                }
                "--host" => {
                    options.routing.build = args
                        .next()
                        .as_deref()
                        .and_then(Build::parse)
                        .ok_or("--host needs `native` or `wasm`")?;
                }
                "--weights" => {
                    let list = args.next().ok_or("--weights needs a list")?;
                    options.routing.weights = routing::settings::parse_weights(&list)?;
                }
                "--workload" => {
                    let name = args.next().unwrap_or_default();
                    let workload = Workload::ALL
                        .into_iter()
                        .find(|w| w.label() == name)
                        .ok_or("--workload needs `prefix-heavy` or `independent`")?;
                    options.routing.workloads = vec![workload];
                }
                "--repeats" => {
                    options.repeats = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--repeats needs a positive number")?;
                }
                "--flow-step-seconds" => {
                    options.flow_step_seconds = Some(seconds(args.next(), "--flow-step-seconds")?);
                }
                "--flow-drain-seconds" => {
                    options.flow_drain_seconds =
                        Some(seconds(args.next(), "--flow-drain-seconds")?);
                }
                "--skip-litellm" => options.litellm = false,
                "--skip-micro" => options.micro = false,
                "--output" => {
                    options.output = Some(args.next().ok_or("--output needs a file")?.into());
                }
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }

    /// Whether `section` runs: every section but the providers one, or the one `--only` names.
    fn runs(&self, section: Section) -> bool {
        match self.only {
            Some(only) => only == section,
            None => section != Section::Providers,
        }
    }

    /// Where the report goes: a quick run must not overwrite the real BENCHMARKS.md.
    fn output(&self) -> PathBuf {
        match &self.output {
            Some(path) => path.clone(),
            None if self.quick => procs::work_dir().join("BENCHMARKS-quick.md"),
            None => sluice_e2e::paths::repo_root().join("BENCHMARKS.md"),
        }
    }
}

/// A positive number of seconds given to `flag`.
fn seconds(value: Option<String>, flag: &str) -> Result<f64, String> {
    value
        .as_deref()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("{flag} needs a positive number of seconds"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if cfg!(panic = "abort") {
        eprintln!(
            "bench: warning: built with panic = \"abort\"; a failure would leave processes \
             running. Build it in the dev profile, as `make bench` does."
        );
    }
    // When a signal wins, `run` is dropped, and with it every process guard it holds.
    tokio::select! {
        result = run(options) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("bench: {message}");
                eprintln!("bench: stopped every process it started");
                ExitCode::FAILURE
            }
        },
        signal = interrupted() => {
            eprintln!("\nbench: {signal}: stopping every process it started");
            ExitCode::from(130)
        }
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "hung up",
    }
}

fn say(message: &str) {
    println!("==> {message}");
}

/// Request bodies on disk, for the load generators: (size, JSON body, streaming body).
struct BodyFiles {
    files: Vec<(usize, PathBuf, PathBuf)>,
}

impl BodyFiles {
    fn write(dir: &Path) -> Result<Self, String> {
        let mut files = Vec::new();
        for &(size, _) in GATEWAY_SIZES {
            let json = dir.join(format!("chat-{size}.json"));
            let stream = dir.join(format!("chat-stream-{size}.json"));
            std::fs::write(&json, bodies::chat_body(size, false))
                .and_then(|()| std::fs::write(&stream, bodies::chat_body(size, true)))
                .map_err(|e| format!("write request bodies: {e}"))?;
            files.push((size, json, stream));
        }
        Ok(Self { files })
    }
}

/// Checks that `base` answers the canned completion and stream for every body size. Returns the
/// sizes of the last answers: completion bytes, stream bytes and SSE events.
async fn check_setup(
    setup: Setup,
    base: &str,
    bodies: &BodyFiles,
) -> Result<(usize, usize, usize), String> {
    let mut sizes = (0, 0, 0);
    let client = sluice_e2e::gateway::client();
    let url = format!("{base}/v1/chat/completions");
    for (size, json, stream) in &bodies.files {
        for (path, streaming) in [(json, false), (stream, true)] {
            let body = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {API_KEY}"))
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{}: POST {url}: {e}", setup.label()))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let what = format!(
                "{} ({size} bytes, stream {streaming}): status {status}, body {:.300}",
                setup.label(),
                text
            );
            if status != 200 {
                return Err(format!("pre-flight check failed: {what}"));
            }
            let good = if streaming {
                let events = text.lines().filter(|l| l.starts_with("data: ")).count();
                sizes.1 = text.len();
                sizes.2 = events;
                text.contains("data: [DONE]") && text.contains("jugs.") && events >= 18
            } else {
                sizes.0 = text.len();
                serde_json::from_str::<serde_json::Value>(&text)
                    .map(|v| v["choices"][0]["message"]["content"] == CANNED_CONTENT)
                    .unwrap_or(false)
            };
            if !good {
                return Err(format!("pre-flight check: unexpected answer from {what}"));
            }
        }
    }
    Ok(sizes)
}

async fn machine(tools: &Tools) -> Machine {
    let mut machine = sluice_bench::machine::describe().await;
    // The load generators after Envoy, before rustc.
    let mut tools_list = vec![(
        "wrk".to_owned(),
        word(load::version(&tools.wrk, &["-v"]).await, 1),
    )];
    if let Some(oha) = &tools.oha {
        tools_list.push((
            "oha".into(),
            word(load::version(oha, &["--version"]).await, 1),
        ));
    }
    tools_list.push((
        "curl".into(),
        word(load::version(&tools.curl, &["--version"]).await, 1),
    ));
    let at = machine.tools.len().min(1);
    machine.tools.splice(at..at, tools_list);
    machine
}

fn find_tools() -> Result<(Tools, Vec<String>), String> {
    let mut unavailable = Vec::new();
    let wrk = load::which("wrk")
        .ok_or("wrk not found: `apt-get install wrk` (bench/setup.sh, run by make bench, does)")?;
    let curl = load::which("curl").ok_or("curl not found")?;
    let oha = std::env::var_os("OHA_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(procs::work_dir().join("bin/oha")))
        .filter(|p| p.is_file())
        .or_else(|| load::which("oha"));
    if oha.is_none() {
        unavailable.push(
            "fixed-rate (open-loop) latency: oha is not installed (bench/setup.sh builds it with \
             cargo install; see .bench/setup.log)"
                .to_owned(),
        );
    }
    let tools = Tools {
        wrk,
        wrk_script: procs::bench_dir().join("wrk.lua"),
        oha,
        curl,
    };
    Ok((tools, unavailable))
}

/// Runs `cargo bench` for the criterion benches and reads back what this run measured.
async fn micro_benchmarks(work: &Path) -> Result<Vec<Micro>, String> {
    let home = work.join("criterion");
    let started = SystemTime::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = tokio::process::Command::new(cargo)
        .args([
            "bench",
            "--locked",
            "-p",
            "sluice-bench",
            // Without the orchestrator's dependencies: only what the benches measure.
            "--no-default-features",
            "--bench",
            "hot_path",
        ])
        .env("CRITERION_HOME", &home)
        .current_dir(sluice_e2e::paths::repo_root())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed ({status})"));
    }
    let mut found = Vec::new();
    collect_criterion(&home, started, &mut found);
    // In the order they ran, which is the order of benches/hot_path.rs.
    found.sort_by_key(|(modified, _)| *modified);
    let found = found.into_iter().map(|(_, micro)| micro).collect();
    Ok(found)
}

/// Every `<id>/new/{benchmark,estimates}.json` under `dir` written since `since`.
fn collect_criterion(dir: &Path, since: SystemTime, out: &mut Vec<(SystemTime, Micro)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let estimates = path.join("estimates.json");
            let modified = std::fs::metadata(&estimates).and_then(|m| m.modified());
            let fresh = modified.as_ref().is_ok_and(|t| *t >= since);
            let read = |name: &str| {
                std::fs::read_to_string(path.join(name))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            };
            if let (true, Some(bench), Some(est)) =
                (fresh, read("benchmark.json"), read("estimates.json"))
            {
                if let (Some(id), Some(median)) = (
                    bench["full_id"].as_str(),
                    est["median"]["point_estimate"].as_f64(),
                ) {
                    out.push((
                        modified.unwrap_or(since),
                        Micro {
                            id: id.to_owned(),
                            median_ns: median,
                            bytes: bench["throughput"]["Bytes"].as_u64(),
                        },
                    ));
                }
            }
        } else {
            collect_criterion(&path, since, out);
        }
    }
}

/// One measurement's progress line.
fn progress(repeat: usize, repeats: usize, label: &str, setup: Setup, what: &str, run: &Run) {
    let rps = if run.rps.is_nan() {
        String::new()
    } else {
        format!("  {}", fmt_rps(Some(run.rps)))
    };
    println!(
        "    [{}/{repeats}] {label:>5} {:<20} {what:<12} p50 {:>8}  p90 {:>8}  p99 {:>8}{rps}",
        repeat + 1,
        setup.label(),
        fmt_us(Some(run.p50_us)),
        fmt_us(Some(run.p90_us)),
        fmt_us(Some(run.p99_us)),
    );
}

struct Running {
    upstream: Service,
    /// Keeps the snapshot fresh for Envoy + Sluice; a process of its own, outside the CPU and
    /// memory measured for Envoy (as a picker runs beside the proxy in production).
    picker: Service,
    envoy: Service,
    native: Service,
    wasm: Service,
    litellm: Option<Service>,
}

impl Running {
    fn base(&self, setup: Setup) -> Option<String> {
        let service = match setup {
            Setup::Direct => &self.upstream,
            Setup::Envoy => &self.envoy,
            Setup::Native => &self.native,
            Setup::Wasm => &self.wasm,
            Setup::LiteLlm => self.litellm.as_ref()?,
        };
        Some(service.url(""))
    }

    /// The gateway process of `setup` (none when going direct).
    fn gateway(&self, setup: Setup) -> Option<&Service> {
        match setup {
            Setup::Direct => None,
            Setup::Envoy => Some(&self.envoy),
            Setup::Native => Some(&self.native),
            Setup::Wasm => Some(&self.wasm),
            Setup::LiteLlm => self.litellm.as_ref(),
        }
    }

    fn setups(&self) -> Vec<Setup> {
        Setup::ALL
            .into_iter()
            .filter(|s| self.base(*s).is_some())
            .collect()
    }

    fn check_alive(&mut self) -> Result<(), String> {
        self.upstream.check_running("the mock upstream")?;
        self.picker.check_running("the picker")?;
        self.envoy.check_running("plain Envoy")?;
        self.native.check_running(Setup::Native.label())?;
        self.wasm.check_running(Setup::Wasm.label())?;
        Ok(())
    }
}

async fn run(options: Options) -> Result<(), String> {
    let started = Instant::now();
    let work = procs::work_dir();
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    // Keeps everything under .bench/ out of git without touching the repository's .gitignore.
    let _ = std::fs::write(work.join(".gitignore"), "*\n");
    let output = options.output();
    // Each section is written as soon as it is done, so a later failure keeps it.
    let write = |overhead: Option<&str>, parts: &[(Part, &str)]| {
        let existing = std::fs::read_to_string(&output).unwrap_or_default();
        std::fs::write(&output, compose(&existing, overhead, parts))
            .map_err(|e| format!("write {}: {e}", output.display()))
    };
    if options.runs(Section::Overhead) {
        let report = run_overhead(&options).await?;
        write(Some(&report.markdown()), &[])?;
        println!("\n{}", report.summary());
        say(&format!(
            "overhead section written to {} (raw samples in {}); it took {:?}",
            output.display(),
            work.join("results.json").display(),
            Duration::from_secs(report.elapsed_seconds)
        ));
    }
    if options.runs(Section::Routing) {
        let dir = work.join("routing");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let report = routing::run::run(&options.routing, &dir).await?;
        write(None, &[(sections::ROUTING, &report.markdown())])?;
        println!("\n{}", report.summary());
        say(&format!(
            "routing section written to {} (logs in {})",
            output.display(),
            dir.display()
        ));
    }
    if options.runs(Section::QuotaCluster) {
        let dir = work.join("quota-cluster");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let quota_options = quota_cluster::run::Options {
            quick: options.quick,
            build: options.routing.build,
        };
        let report = quota_cluster::run::run(&quota_options, &dir).await?;
        write(None, &[(sections::QUOTA_CLUSTER, &report.markdown())])?;
        println!("\n{}", report.summary());
        say(&format!(
            "cluster quota section written to {} (logs in {})",
            output.display(),
            dir.display()
        ));
    }
    if options.runs(Section::FlowControl) {
        let dir = work.join("flow-control");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let flow_options = flow_control::run::Options {
            quick: options.quick,
            build: options.routing.build,
            step_seconds: options.flow_step_seconds,
            drain_seconds: options.flow_drain_seconds,
        };
        let report = flow_control::run::run(&flow_options, &dir).await?;
        write(None, &[(sections::FLOW_CONTROL, &report.markdown())])?;
        println!("\n{}", report.summary());
        say(&format!(
            "flow-control section written to {} (logs in {})",
            output.display(),
            dir.display()
        ));
    }
    if options.runs(Section::Providers) {
        let dir = work.join("providers");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let providers_options = providers::run::Options {
            quick: options.quick,
        };
        let report = providers::run::run(&providers_options, &dir).await?;
        write(None, &[(sections::PROVIDERS, &report.markdown())])?;
        println!("\n{}", report.summary());
        say(&format!(
            "providers section written to {} (logs in {})",
            output.display(),
            dir.display()
        ));
    }
    say(&format!(
        "bench took {:?}",
        Duration::from_secs(started.elapsed().as_secs())
    ));
    Ok(())
}

/// The overhead section: every gateway against the mock upstream, and the micro-benchmarks.
async fn run_overhead(options: &Options) -> Result<Report, String> {
    let started = Instant::now();
    sluice_core::config::Config::from_json(sluice_config::FILTER_CONFIGURATION.as_bytes())
        .map_err(|e| {
            format!("bench/src/sluice_config.rs: the filter rejects the configuration: {e}")
        })?;
    let (tools, mut unavailable) = find_tools()?;
    let mut warnings = Vec::new();
    let mut machine = machine(&tools).await;
    let work = procs::work_dir();

    let mut micro = Vec::new();
    if options.micro {
        say("micro-benchmarks (criterion, native): cargo bench -p sluice-bench");
        match micro_benchmarks(&work).await {
            Ok(found) => micro = found,
            Err(e) => warnings.push(format!("micro-benchmarks: {e}")),
        }
    }

    let dir = work.join("run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let body_files = BodyFiles::write(&dir)?;

    let module_bytes = |build: Build| {
        std::fs::metadata(build.host().module())
            .ok()
            .map(|m| m.len())
    };
    say(&format!(
        "starting the mock upstream, plain Envoy and Envoy + Sluice native ({}) and Wasm ({})",
        Build::Native.host().module().display(),
        Build::Wasm.host().module().display()
    ));
    let upstream = procs::start_envoy("upstream", &dir, &procs::upstream_config()?, 1).await?;
    let picker = procs::start_picker(
        &dir,
        upstream.addr,
        sluice_config::FILTER_CONFIGURATION,
        MODEL,
    )
    .await?;
    // Both builds from their shipped configs with the same filter configuration; plain Envoy is
    // the native one's (the shipped envoy.yaml) without the filter.
    let yaml = |build: Build| {
        procs::sluice_config(
            build.host(),
            upstream.addr,
            Some(picker.addr),
            sluice_config::FILTER_CONFIGURATION,
        )
    };
    let native_yaml = yaml(Build::Native)?;
    let wasm_yaml = yaml(Build::Wasm)?;
    let plain_yaml = procs::without_filter(&native_yaml, "sluice")?;
    let native =
        procs::start_envoy("envoy-sluice-native", &dir, &native_yaml, ENVOY_WORKERS).await?;
    let wasm = procs::start_envoy("envoy-sluice-wasm", &dir, &wasm_yaml, ENVOY_WORKERS).await?;
    let envoy = procs::start_envoy("envoy-plain", &dir, &plain_yaml, ENVOY_WORKERS).await?;

    let mut litellm = None;
    if !options.litellm {
        unavailable.push("LiteLLM: skipped (--skip-litellm)".into());
    } else if !procs::litellm_bin().is_file() {
        let reason = std::fs::read_to_string(work.join("litellm-unavailable"))
            .unwrap_or_else(|_| "not installed (bench/setup.sh installs it)".into());
        unavailable.push(format!(
            "LiteLLM: could not be installed here: {}",
            reason.trim()
        ));
    } else {
        say("starting LiteLLM (one worker; its start-up takes a while)");
        match procs::start_litellm(&dir, upstream.addr, MODEL).await {
            Ok(service) => litellm = Some(service),
            Err(e) => unavailable.push(format!("LiteLLM: could not be started here: {e}")),
        }
    }
    if litellm.is_some() {
        let version = load::version(
            &procs::work_dir().join("litellm-venv/bin/python"),
            &[
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ],
        )
        .await;
        if version != LITELLM_VERSION {
            warnings.push(format!(
                "LiteLLM {version} measured, bench/setup.sh pins {LITELLM_VERSION}"
            ));
        }
        machine.tools.push(("LiteLLM".into(), version));
    }
    let mut running = Running {
        upstream,
        picker,
        envoy,
        native,
        wasm,
        litellm,
    };

    say("pre-flight: every setup returns the canned completion and stream");
    let mut canned = (0, 0, 0);
    for setup in running.setups() {
        let base = running.base(setup).unwrap_or_default();
        match check_setup(setup, &base, &body_files).await {
            Ok(sizes) if setup == Setup::Direct => canned = sizes,
            Ok(_) => {}
            Err(e) if setup == Setup::LiteLlm => {
                unavailable.push(format!("LiteLLM: {e}"));
                running.litellm = None;
            }
            Err(e) => return Err(e),
        }
    }

    // Each build really ran and picked replicas from the picker's snapshot: it counted the
    // pre-flight requests (the Wasm build's counters reach Envoy on its tick, so allow a moment).
    for build in Build::ALL {
        let host = build.host();
        let service = running.gateway(build.setup()).ok_or("no gateway")?;
        // Successful chat requests to the model (the counter's labels are in the stat name).
        let requests = host.stat(&format!(
            "sluice_requests_total.sluice_api.chat.sluice_http_status_class.2xx.gen_ai_request_model.{MODEL}"
        ));
        let picks = host.stat("sluice_picks_total");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let seen = service.envoy_stat(&requests).await.unwrap_or(0);
            let picked = service.envoy_stat(&picks).await.unwrap_or(0);
            if seen > 0 && picked > 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: of the pre-flight requests the filter counted {seen} ({requests}) and \
                     picked a replica for {picked} ({picks})",
                    build.setup().label()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Resident memory of every gateway process: idle now, again after all the load.
    let mut rss: Vec<(Setup, Rss)> = running
        .setups()
        .into_iter()
        .filter_map(|setup| {
            let service = running.gateway(setup)?;
            Some((
                setup,
                Rss {
                    idle_kib: service.memory_kib().0,
                    ..Rss::default()
                },
            ))
        })
        .collect();

    say(&format!("warm-up: {} s per setup", options.warmup_seconds));
    for setup in running.setups() {
        let url = format!(
            "{}/v1/chat/completions",
            running.base(setup).unwrap_or_default()
        );
        for (_, json, _) in &body_files.files {
            load::wrk(&tools, &url, json, 8, options.warmup_seconds).await?;
        }
    }

    let tick_hz: f64 = load::version(Path::new("getconf"), &["CLK_TCK"])
        .await
        .parse()
        .unwrap_or(100.0);
    let mut results = Results::default();
    let repeats = options.repeats;
    for repeat in 0..repeats {
        say(&format!("run {}/{repeats}", repeat + 1));
        // Rotate the order each run, so drift in the machine's load does not favour one setup.
        let mut setups = running.setups();
        let len = setups.len();
        setups.rotate_left(repeat % len.max(1));
        for ((size, label), (_, json, stream)) in GATEWAY_SIZES.iter().zip(&body_files.files) {
            for &setup in &setups {
                running.check_alive()?;
                let Some(base) = running.base(setup) else {
                    continue;
                };
                let url = format!("{base}/v1/chat/completions");
                let mut record = |what: &str, run: &Run, metrics: &[(Metric, f64)]| {
                    progress(repeat, repeats, label, setup, what, run);
                    if run.errors > 0 {
                        warnings.push(format!(
                            "{} {label} {what}, run {}: {} of {} requests failed",
                            setup.label(),
                            repeat + 1,
                            run.errors,
                            run.requests
                        ));
                    }
                    for &(metric, value) in metrics {
                        results.add(setup, *size, metric, value);
                    }
                };
                let c1 = load::wrk(&tools, &url, json, 1, options.c1_seconds).await?;
                record(
                    "c=1",
                    &c1,
                    &[
                        (Metric::C1P50, c1.p50_us),
                        (Metric::C1P90, c1.p90_us),
                        (Metric::C1P99, c1.p99_us),
                    ],
                );
                if let Some(oha) = &tools.oha {
                    let rate =
                        load::oha(oha, &url, json, options.rate_rps, options.rate_seconds).await?;
                    record(
                        &format!("{}/s", options.rate_rps),
                        &rate,
                        &[
                            (Metric::RateP50, rate.p50_us),
                            (Metric::RateP90, rate.p90_us),
                            (Metric::RateP99, rate.p99_us),
                        ],
                    );
                }
                let ticks_before = running.gateway(setup).and_then(Service::cpu_ticks);
                let sat = load::wrk(
                    &tools,
                    &url,
                    json,
                    options.saturation_connections,
                    options.saturation_seconds,
                )
                .await?;
                let ticks_after = running.gateway(setup).and_then(Service::cpu_ticks);
                let cpu_us = ticks_before
                    .zip(ticks_after)
                    .filter(|_| sat.requests > 0)
                    .map(|(a, b)| b.saturating_sub(a) as f64 * 1e6 / tick_hz / sat.requests as f64);
                let mut metrics = vec![
                    (Metric::SatRps, sat.rps),
                    (Metric::SatP50, sat.p50_us),
                    (Metric::SatP99, sat.p99_us),
                ];
                metrics.extend(cpu_us.map(|us| (Metric::SatCpuUs, us)));
                record("saturation", &sat, &metrics);
                let ttfb = load::ttfb(&tools, &url, stream, options.ttfb_requests).await?;
                record(
                    "stream TTFB",
                    &ttfb,
                    &[
                        (Metric::TtfbP50, ttfb.p50_us),
                        (Metric::TtfbP90, ttfb.p90_us),
                    ],
                );
            }
        }
    }

    running.check_alive()?;
    for (setup, memory) in &mut rss {
        if let Some(service) = running.gateway(*setup) {
            let (now, peak) = service.memory_kib();
            memory.loaded_kib = now;
            memory.peak_kib = peak;
        }
    }
    machine.load_after = load_average();
    // Stop everything before writing the report.
    drop(running);

    let report = Report {
        machine,
        method: Method {
            repeats,
            c1_seconds: options.c1_seconds,
            rate_rps: options.rate_rps,
            rate_seconds: options.rate_seconds,
            saturation_connections: options.saturation_connections,
            saturation_seconds: options.saturation_seconds,
            ttfb_requests: options.ttfb_requests,
            envoy_workers: ENVOY_WORKERS,
            warmup_seconds: options.warmup_seconds,
            completion_bytes: canned.0,
            stream_bytes: canned.1,
            stream_events: canned.2,
        },
        results,
        sizes: GATEWAY_SIZES
            .iter()
            .map(|(s, l)| (*s, (*l).to_owned()))
            .collect(),
        module_bytes: Build::ALL
            .into_iter()
            .map(|build| (build, module_bytes(build)))
            .collect(),
        rss,
        micro,
        unavailable,
        warnings,
        sluice_configuration: sluice_config::FILTER_CONFIGURATION.to_owned(),
        sluice_features: sluice_config::FEATURES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        elapsed_seconds: started.elapsed().as_secs(),
    };
    let raw = serde_json::json!({
        "date": report.machine.date,
        "samples": report.results.to_json(),
    });
    let _ = std::fs::write(
        work.join("results.json"),
        serde_json::to_string_pretty(&raw).unwrap_or_default(),
    );
    Ok(report)
}
