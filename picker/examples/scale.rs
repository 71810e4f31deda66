//! How much CPU the picker needs for a large fleet: serves a realistic vLLM `/metrics` page
//! (about 24 KB, histograms included, generated deterministically, with queue and KV gauges that
//! change on every request) on 1,000 loopback ports, starts the real `sluice-picker` binary
//! scraping all of them every 100 ms, and reads the picker's CPU time from `/proc/<pid>/stat`
//! over a measured window. Each run starts a fresh picker; the median of the runs is printed.
//!
//! ```sh
//! cargo build --release -p sluice-picker --bin sluice-picker --example scale
//! target/release/examples/scale            # --endpoints 1000 --interval-ms 100 --seconds 20 --runs 3
//! ```
//!
//! Linux only (reads `/proc`). Needs about two file descriptors per endpoint in this process and
//! one in the picker.

use std::error::Error;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

struct Options {
    endpoints: usize,
    interval_ms: u64,
    seconds: u64,
    warmup_seconds: u64,
    runs: usize,
    pools: usize,
    server_threads: usize,
    /// Overrides the picker's default when set.
    max_concurrent_scrapes: Option<usize>,
    picker: PathBuf,
}

fn options() -> AnyResult<Options> {
    let mut options = Options {
        endpoints: 1000,
        interval_ms: 100,
        seconds: 20,
        warmup_seconds: 3,
        runs: 3,
        pools: 10,
        server_threads: 1,
        max_concurrent_scrapes: None,
        picker: default_picker_path()?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoints" => options.endpoints = value()?.parse()?,
            "--interval-ms" => options.interval_ms = value()?.parse()?,
            "--seconds" => options.seconds = value()?.parse()?,
            "--warmup-seconds" => options.warmup_seconds = value()?.parse()?,
            "--runs" => options.runs = value()?.parse()?,
            "--pools" => options.pools = value()?.parse()?,
            "--server-threads" => options.server_threads = value()?.parse()?,
            "--max-concurrent-scrapes" => options.max_concurrent_scrapes = Some(value()?.parse()?),
            "--picker" => options.picker = PathBuf::from(value()?),
            "--help" | "-h" => {
                println!(
                    "scale [--endpoints 1000] [--interval-ms 100] [--seconds 20] [--warmup-seconds 3] \
                     [--runs 3] [--pools 10] [--server-threads 1] [--max-concurrent-scrapes N] \
                     [--picker target/release/sluice-picker]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if options.endpoints == 0 || options.pools == 0 || options.runs == 0 {
        return Err("--endpoints, --pools and --runs must be positive".into());
    }
    Ok(options)
}

/// `target/<profile>/sluice-picker`, next to `target/<profile>/examples/scale`.
fn default_picker_path() -> AnyResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or("cannot locate the target directory")?;
    Ok(profile_dir.join("sluice-picker"))
}

fn main() -> AnyResult<()> {
    let options = options()?;
    if !options.picker.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p sluice-picker --bin sluice-picker` \
             or pass --picker",
            options.picker.display()
        )
        .into());
    }
    // The fleet gets its own small runtime so that it competes with the picker for as little
    // CPU as it can; the picker's CPU is read per process anyway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.server_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> AnyResult<()> {
    let page = Arc::new(PageTemplate::new());
    let addrs = start_fleet(options.endpoints, &page).await?;
    println!(
        "fleet: {} endpoints on loopback serving {} bytes of vLLM metrics each",
        addrs.len(),
        page.sample_len()
    );
    println!("machine: {} cpus, {}", nproc(), cpu_model());
    let clock_ticks = clock_ticks_per_second();
    let dir = std::env::temp_dir().join(format!("sluice-picker-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("picker.toml");
    std::fs::write(&config_path, picker_config(&addrs, &options))?;

    let mut results = Vec::new();
    for run in 1..=options.runs {
        let result = measure(&options, &config_path, &dir, clock_ticks).await?;
        println!(
            "run {run}: {:.3} cores ({:.2} s CPU in {:.2} s), {:.0} scrapes/s ({:.0} expected), \
             {:.0} µs CPU per scrape, {:.1} rounds/s, {} failed, {} skipped, picker RSS {} MB; \
             fleet used {:.3} cores",
            result.cores,
            result.cpu_seconds,
            result.wall_seconds,
            result.scrapes_per_second,
            options.endpoints as f64 * 1000.0 / options.interval_ms as f64,
            result.cpu_seconds * 1e6 / (result.scrapes_per_second * result.wall_seconds).max(1.0),
            result.rounds_per_second,
            result.failures,
            result.skipped,
            result.rss_kb / 1024,
            result.fleet_cores,
        );
        results.push(result.cores);
    }
    results.sort_by(f64::total_cmp);
    let median = results[results.len() / 2];
    println!(
        "median: {median:.3} cores for {} endpoints every {} ms ({} runs of {} s)",
        options.endpoints, options.interval_ms, options.runs, options.seconds
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct RunResult {
    cores: f64,
    cpu_seconds: f64,
    wall_seconds: f64,
    scrapes_per_second: f64,
    rounds_per_second: f64,
    failures: f64,
    skipped: f64,
    rss_kb: u64,
    fleet_cores: f64,
}

/// Kills the picker however `measure` ends.
struct PickerGuard(Child);

impl Drop for PickerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure(
    options: &Options,
    config: &std::path::Path,
    dir: &std::path::Path,
    clock_ticks: f64,
) -> AnyResult<RunResult> {
    let log = std::fs::File::create(dir.join("picker.log"))?;
    let mut child = PickerGuard(
        Command::new(&options.picker)
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?,
    );
    let pid = child.0.id();
    let stdout = child.0.stdout.take().ok_or("no picker stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let picker: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected picker output {line:?}"))?
        .parse()?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let metrics_url = format!("http://{picker}/metrics");

    // Warm up: every endpoint healthy (connections open), then a little more.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client.get(&metrics_url).send().await?.text().await?;
        let healthy = sum_of(&text, "sluice_picker_endpoints{", "state=\"healthy\"");
        if healthy as usize >= options.endpoints {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {healthy} endpoints healthy after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(options.warmup_seconds)).await;

    let before = Sample::take(&client, &metrics_url, pid).await?;
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let after = Sample::take(&client, &metrics_url, pid).await?;
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let cpu_seconds = (after.cpu_ticks - before.cpu_ticks) as f64 / clock_ticks;
    Ok(RunResult {
        cores: cpu_seconds / wall,
        cpu_seconds,
        wall_seconds: wall,
        scrapes_per_second: (after.scrapes - before.scrapes) / wall,
        rounds_per_second: (after.version - before.version) / wall,
        failures: after.failures - before.failures,
        skipped: after.skipped - before.skipped,
        rss_kb: after.rss_kb,
        fleet_cores: (after.fleet_ticks - before.fleet_ticks) as f64 / clock_ticks / wall,
    })
}

/// CPU time and counters at one moment.
struct Sample {
    at: Instant,
    cpu_ticks: u64,
    fleet_ticks: u64,
    scrapes: f64,
    failures: f64,
    skipped: f64,
    version: f64,
    rss_kb: u64,
}

impl Sample {
    async fn take(client: &reqwest::Client, metrics_url: &str, pid: u32) -> AnyResult<Self> {
        let at = Instant::now();
        let picker_ticks = cpu_ticks(&format!("/proc/{pid}/stat"))?;
        let fleet_ticks = cpu_ticks("/proc/self/stat")?;
        let text = client.get(metrics_url).send().await?.text().await?;
        Ok(Self {
            at,
            cpu_ticks: picker_ticks,
            fleet_ticks,
            scrapes: sum_of(&text, "sluice_picker_scrapes_total{", ""),
            failures: sum_of(&text, "sluice_picker_scrape_failures_total{", ""),
            skipped: sum_of(&text, "sluice_picker_scrapes_skipped_total{", ""),
            version: sum_of(&text, "sluice_picker_snapshot_version ", ""),
            rss_kb: rss_kb(pid),
        })
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(stat_path: &str) -> AnyResult<u64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) is in parentheses and may contain spaces; count after it.
    let after_name = stat.rsplit_once(')').ok_or("malformed stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); field 3 is the first after the name.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok(utime + stime)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// Sum of the values of the lines starting with `prefix` (and containing `filter`).
fn sum_of(text: &str, prefix: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn picker_config(addrs: &[SocketAddr], options: &Options) -> String {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nscrape_interval_ms = {}\nscrape_timeout_ms = 1000\n",
        options.interval_ms
    );
    if let Some(max) = options.max_concurrent_scrapes {
        let _ = writeln!(text, "max_concurrent_scrapes = {max}");
    }
    let per_pool = addrs.len().div_ceil(options.pools);
    for (i, chunk) in addrs.chunks(per_pool).enumerate() {
        let endpoints: Vec<String> = chunk.iter().map(|a| format!("\"{a}\"")).collect();
        let _ = write!(
            text,
            "\n[[pool]]\nname = \"pool_{i}\"\nmodel = \"{MODEL}-{i}\"\nendpoints = [{}]\n",
            endpoints.join(", ")
        );
    }
    text
}

/// One simulated server's state: which endpoint it is and how often it was scraped.
struct Replica {
    index: u64,
    page: Arc<PageTemplate>,
    requests: AtomicU64,
}

async fn start_fleet(count: usize, page: &Arc<PageTemplate>) -> AnyResult<Vec<SocketAddr>> {
    let mut addrs = Vec::with_capacity(count);
    for index in 0..count {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        let replica = Arc::new(Replica {
            index: index as u64,
            page: Arc::clone(page),
            requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/metrics", get(metrics_page))
            .with_state(replica);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("replica {index}: {err}");
            }
        });
    }
    Ok(addrs)
}

async fn metrics_page(State(replica): State<Arc<Replica>>) -> impl IntoResponse {
    let n = replica.requests.fetch_add(1, Ordering::Relaxed);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        replica.page.render(replica.index, n),
    )
}

/// A vLLM V1 metrics page: Python process metrics, the scheduler gauges (which change with
/// every request here), cache and LoRA info, counters with their `_created` samples, and the
/// request histograms vLLM exports, all labelled as vLLM labels them. Everything but the gauges
/// is rendered once.
struct PageTemplate {
    tail: String,
}

impl PageTemplate {
    fn new() -> Self {
        let mut rng = Lcg(0x5eed);
        let labels = format!("engine=\"0\",model_name=\"{MODEL}\"");
        let mut out = String::with_capacity(32 * 1024);
        for generation in 0..3 {
            for (name, help) in [
                (
                    "python_gc_objects_collected_total",
                    "Objects collected during gc",
                ),
                (
                    "python_gc_objects_uncollectable_total",
                    "Uncollectable objects found during GC",
                ),
                (
                    "python_gc_collections_total",
                    "Number of times this generation was collected",
                ),
            ] {
                if generation == 0 {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                }
                let _ = writeln!(
                    out,
                    "{name}{{generation=\"{generation}\"}} {}.0",
                    rng.below(100_000)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP python_info Python platform information\n# TYPE python_info gauge\n\
             python_info{{implementation=\"CPython\",major=\"3\",minor=\"12\",patchlevel=\"9\",version=\"3.12.9\"}} 1.0"
        );
        for (name, help, value) in [
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                9.8e10,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                3.1e9,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                1.76e9,
            ),
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                5321.7,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                143.0,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                1_048_576.0,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value:e}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n\
             vllm:cache_config_info{{block_size=\"16\",cache_dtype=\"auto\",calculate_kv_scales=\"False\",cpu_offload_gb=\"0\",\
             enable_prefix_caching=\"True\",engine=\"0\",gpu_memory_utilization=\"0.9\",is_attention_free=\"False\",\
             num_cpu_blocks=\"None\",num_gpu_blocks=\"27856\",num_gpu_blocks_override=\"None\",prefix_caching_hash_algo=\"builtin\",\
             sliding_window=\"None\",swap_space=\"4\",swap_space_bytes=\"4294967296\"}} 1.0"
        );
        for (name, help) in [
            (
                "vllm:num_preemptions",
                "Cumulative number of preemption from the engine.",
            ),
            ("vllm:prompt_tokens", "Number of prefill tokens processed."),
            (
                "vllm:generation_tokens",
                "Number of generation tokens processed.",
            ),
            (
                "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
            ),
            (
                "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name}_total {help}\n# TYPE {name}_total counter\n{name}_total{{{labels}}} {}.0\n\
                 # HELP {name}_created {help}\n# TYPE {name}_created gauge\n{name}_created{{{labels}}} 1.7630123e+09",
                rng.below(10_000_000)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter"
        );
        for reason in ["stop", "length", "abort"] {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{labels},finished_reason=\"{reason}\"}} {}.0",
                rng.below(100_000)
            );
        }
        let seconds = [
            0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
            10.0, 20.0, 40.0, 80.0,
        ];
        let tokens = [
            1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
        ];
        for (name, help, buckets) in [
            (
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &seconds[..],
            ),
            (
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                &seconds[..],
            ),
            (
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                &seconds[..],
            ),
            (
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                &seconds[..],
            ),
            (
                "vllm:request_prompt_tokens",
                "Number of prefill tokens processed.",
                &tokens[..],
            ),
            (
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
                &tokens[..],
            ),
            (
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                &tokens[..],
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut cumulative = 0;
            for bound in buckets {
                cumulative += rng.below(500);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{bound:?}\"}} {cumulative}.0"
                );
            }
            cumulative += rng.below(10);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}.0\n{name}_count{{{labels}}} {cumulative}.0\n\
                 {name}_sum{{{labels}}} {}.{}\n# HELP {name}_created {help}\n# TYPE {name}_created gauge\n\
                 {name}_created{{{labels}}} 1.7630123e+09",
                rng.below(1_000_000),
                rng.below(1000)
            );
        }
        Self { tail: out }
    }

    /// The page for replica `index` at its `n`th request: gauges first, as vLLM orders them
    /// after the process metrics, then the fixed rest.
    fn render(&self, index: u64, n: u64) -> String {
        let labels = format!("engine=\"0\",model_name=\"{MODEL}\"");
        let mut rng = Lcg(index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n);
        let running = rng.below(64);
        let waiting = rng.below(16);
        let kv = rng.below(1000) as f64 / 1000.0;
        let mut page = String::with_capacity(self.tail.len() + 1024);
        let _ = write!(
            page,
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
             # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{labels}}} {running}.0\n\
             # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
             # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{{labels}}} {waiting}.0\n\
             # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
             # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{{labels}}} {kv:?}\n\
             # HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n\
             vllm:lora_requests_info{{max_lora=\"4\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"}} 1.7630124e+09\n"
        );
        page.push_str(&self.tail);
        page
    }

    fn sample_len(&self) -> usize {
        self.render(0, 0).len()
    }
}

/// A tiny deterministic generator (Knuth's MMIX LCG): the same page on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}
