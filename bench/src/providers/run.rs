//! The providers section of `make bench`: the translation micro figure (`cargo bench --bench
//! translate`), then the two provider stand-ins and, for the translation runs, Envoy + Sluice
//! native and Wasm side by side; then, for each build and fault, a fresh Envoy under the steady
//! failover load. Every process is a guard held here: when this future ends or is dropped (an
//! error, a signal), they all stop.

use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use sluice_core::translate::{self, Shape, TargetRequest};

use super::failover::{
    AFTER_S, BEFORE_S, FAULT_S, POLL_MS, Poll, RATE_PER_S, Sample as FailoverSample, Scenario,
    ScenarioRun, Served, WARMUP_S,
};
use super::micro;
use super::report::{ProvidersReport, TranslationMethod};
use super::translation::{Metric, Path, Samples, Via};
use super::{
    ANTHROPIC_KEY, ANTHROPIC_MODEL, ANTHROPIC_VERSION, OPENAI_KEY, OPENAI_MODEL, OUTPUT_TOKENS,
    STANDIN_RPM, STANDIN_TPM, VIA_ANTHROPIC_MODEL, VIA_OPENAI_MODEL, client_body, failover_body,
    filter_configuration,
};
use crate::load::{self, Tools};
use crate::procs::{self, ENVOY_WORKERS, Service, release_bin, start_service};
use crate::report::{Build, fmt_us};

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
}

/// The translation runs' settings: one client, one request at a time; rounds of short
/// measurements (every setup and path in each round), so that differences are taken close in
/// time.
const CONCURRENCY: u32 = 1;
const SECONDS: u64 = 1;
const ROUNDS: usize = 16;

fn say(message: &str) {
    println!("==> {message}");
}

pub async fn run(options: &Options, dir: &FsPath) -> Result<ProvidersReport, String> {
    let started = Instant::now();
    let mut machine = crate::machine::describe().await;
    let wrk = load::which("wrk")
        .ok_or("wrk not found: `apt-get install wrk` (bench/setup.sh, run by make bench, does)")?;
    machine.tools.insert(
        1,
        (
            "wrk".to_owned(),
            crate::machine::word(load::version(&wrk, &["-v"]).await, 1),
        ),
    );
    let tools = Tools {
        wrk,
        wrk_script: procs::bench_dir().join("wrk.lua"),
        oha: None,
        curl: PathBuf::from("curl"),
    };
    let mut warnings = Vec::new();

    say("translation micro figure (native, a timed loop): cargo bench --bench translate");
    let micro = match micro_figures().await {
        Ok(figures) if figures.is_empty() => {
            warnings.push("the translation micro figure printed nothing".to_owned());
            figures
        }
        Ok(figures) => figures,
        Err(e) => {
            warnings.push(format!("translation micro figure: {e}"));
            Vec::new()
        }
    };

    say("starting the provider stand-ins (sluice-simulator --provider openai|anthropic)");
    let simulator = release_bin("sluice-simulator")?;
    let openai = start_standin(dir, &simulator, "openai", OPENAI_MODEL, OPENAI_KEY).await?;
    let anthropic =
        start_standin(dir, &simulator, "anthropic", ANTHROPIC_MODEL, ANTHROPIC_KEY).await?;
    let filter_configuration = filter_configuration();
    let yaml = |build: Build| {
        procs::render_envoy(
            build.host(),
            vec![
                ("openai_api".to_owned(), vec![openai.addr]),
                ("anthropic_api".to_owned(), vec![anthropic.addr]),
                // Unused here: pointed at a stand-in (its /health answers) rather than at ports
                // another process may hold.
                ("llama_8b".to_owned(), vec![openai.addr]),
                ("qwen_7b".to_owned(), vec![openai.addr]),
            ],
            &filter_configuration,
        )
    };
    let configs = [
        (Build::Native, yaml(Build::Native)?),
        (Build::Wasm, yaml(Build::Wasm)?),
    ];

    let rounds = if options.quick { 2 } else { ROUNDS };
    let translation = translation_runs(
        dir,
        &tools,
        &configs,
        (&openai, &anthropic),
        rounds,
        &mut warnings,
    )
    .await?;

    let mut failover = Vec::new();
    for (build, yaml) in &configs {
        for scenario in Scenario::ALL {
            say(&format!(
                "failover, Sluice {}: {} on the primary (a fresh Envoy)",
                build.name(),
                scenario.label()
            ));
            for standin in [&openai, &anthropic] {
                reset_standin(standin).await?;
            }
            let name = format!(
                "envoy-failover-{}-{}",
                build.name().to_lowercase(),
                scenario.slug()
            );
            let mut envoy = procs::start_envoy(&name, dir, yaml, ENVOY_WORKERS).await?;
            let run = scenario_run(&envoy, &openai, *build, scenario).await?;
            reset_standin(&openai).await?;
            envoy.check_running(&name)?;
            print_scenario(&run);
            let elsewhere = run.before_not_served_by_primary();
            if run.before().requests == 0 || elsewhere > 0 {
                warnings.push(format!(
                    "failover, Sluice {}, {}: {elsewhere} of the {} requests before the fault \
                     were not answered by the primary",
                    build.name(),
                    scenario.label(),
                    run.before().requests
                ));
            }
            failover.push(run);
        }
    }
    machine.load_after = crate::machine::load_average();
    drop((openai, anthropic));
    Ok(ProvidersReport {
        machine,
        translation,
        translation_method: TranslationMethod {
            envoy_workers: ENVOY_WORKERS,
            concurrency: CONCURRENCY,
            seconds: SECONDS,
            rounds,
        },
        micro,
        failover,
        filter_configuration,
        warnings,
        quick: options.quick,
        elapsed_seconds: started.elapsed().as_secs(),
    })
}

/// A provider stand-in (release build) answering at once: no prefill or decode cost, so the
/// gateway is what the runs measure; rate limits out of reach; one accepted key.
async fn start_standin(
    dir: &FsPath,
    program: &FsPath,
    api: &str,
    model: &str,
    key: &str,
) -> Result<Service, String> {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--provider",
        api,
        "--model",
        model,
        "--api-key",
        key,
        "--rpm",
        &STANDIN_RPM.to_string(),
        "--tpm",
        &STANDIN_TPM.to_string(),
        "--prefill-us-per-token",
        "0",
        "--decode-ms-per-step",
        "0",
    ]
    .map(String::from);
    start_service(&format!("standin-{api}"), dir, program, &args).await
}

/// Clears a stand-in's fault and counts.
async fn reset_standin(standin: &Service) -> Result<(), String> {
    let client = sluice_e2e::gateway::client();
    for (what, request) in [
        ("fault", client.delete(standin.url("/admin/faults"))),
        ("stats", client.delete(standin.url("/admin/stats"))),
    ] {
        let response = request
            .send()
            .await
            .map_err(|e| format!("clear the stand-in's {what}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "clear the stand-in's {what}: {}",
                response.status()
            ));
        }
    }
    Ok(())
}

/// Runs `cargo bench --bench translate` (optimized, natively) and reads its figures.
async fn micro_figures() -> Result<Vec<micro::Figure>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = tokio::process::Command::new(cargo)
        .args([
            "bench",
            "--locked",
            "-p",
            "sluice-bench",
            "--no-default-features",
            "--bench",
            "translate",
        ])
        .current_dir(sluice_e2e::paths::repo_root())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo bench failed ({})", out.status));
    }
    let figures = micro::parse(&String::from_utf8_lossy(&out.stdout));
    for figure in &figures {
        println!(
            "    {:<48} {:>10.0} ns per call ({} bytes in, {} out)",
            figure.id, figure.median_ns, figure.bytes_in, figure.bytes_out
        );
    }
    Ok(figures)
}

/// A request body on disk for wrk, with the headers it is sent with.
struct Request {
    url: String,
    body: PathBuf,
    headers: Vec<String>,
    /// The model the answer must name.
    answered_by: &'static str,
    stream: bool,
    /// The answer is in the Anthropic shape (a direct call to the Anthropic stand-in).
    anthropic_answer: bool,
}

/// What each via and path sends where.
fn requests(
    dir: &FsPath,
    via: Via,
    base: &str,
    standins: (&Service, &Service),
) -> Result<Vec<(Path, Request)>, String> {
    let mut out = Vec::new();
    for path in Path::ALL {
        let client_model = if path.anthropic() {
            VIA_ANTHROPIC_MODEL
        } else {
            VIA_OPENAI_MODEL
        };
        let client = client_body(client_model, path.stream());
        let answered_by = if path.anthropic() {
            ANTHROPIC_MODEL
        } else {
            OPENAI_MODEL
        };
        let (url, body, headers, anthropic_answer) = match via {
            Via::Gateway(_) => (
                format!("{base}/v1/chat/completions"),
                client.into_bytes(),
                vec![format!("authorization: Bearer {}", procs::API_KEY)],
                false,
            ),
            // What the upstream filter sends the target: core's own translation of the body.
            Via::Direct => {
                let target = TargetRequest {
                    shape: if path.anthropic() {
                        Shape::AnthropicMessages
                    } else {
                        Shape::OpenAiChat
                    },
                    model: answered_by,
                    default_max_tokens: u64::from(OUTPUT_TOKENS),
                };
                let body = translate::request(Shape::OpenAiChat, client.as_bytes(), &target)
                    .map_err(|e| format!("translate the benchmark's request: {e:?}"))?;
                let standin = if path.anthropic() {
                    standins.1
                } else {
                    standins.0
                };
                let headers = if path.anthropic() {
                    vec![
                        format!("x-api-key: {ANTHROPIC_KEY}"),
                        format!("anthropic-version: {ANTHROPIC_VERSION}"),
                    ]
                } else {
                    vec![format!("authorization: Bearer {OPENAI_KEY}")]
                };
                (
                    standin.url(target.shape.path()),
                    body,
                    headers,
                    path.anthropic(),
                )
            }
        };
        let file = dir.join(format!(
            "providers-{}-{}.json",
            match via {
                Via::Direct => "direct".to_owned(),
                Via::Gateway(build) => build.name().to_lowercase(),
            },
            path.label()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        ));
        std::fs::write(&file, body).map_err(|e| format!("write {}: {e}", file.display()))?;
        out.push((
            path,
            Request {
                url,
                body: file,
                headers,
                answered_by,
                stream: path.stream(),
                anthropic_answer,
            },
        ));
    }
    Ok(out)
}

/// One request of each kind must come back whole, from the right model, in the client's shape.
async fn check(via: Via, path: Path, request: &Request) -> Result<(), String> {
    let body = std::fs::read(&request.body).map_err(|e| format!("read a body: {e}"))?;
    let mut builder = sluice_e2e::gateway::client()
        .post(&request.url)
        .header("content-type", "application/json")
        .body(body);
    for header in &request.headers {
        if let Some((name, value)) = header.split_once(": ") {
            builder = builder.header(name, value);
        }
    }
    let what = format!("{}, {}", via.label(), path.label());
    let response = builder
        .send()
        .await
        .map_err(|e| format!("pre-flight {what}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let model = format!("\"model\":\"{}\"", request.answered_by);
    let whole = match (request.stream, request.anthropic_answer) {
        (true, true) => text.contains("event: message_stop"),
        (true, false) => text.trim_end().ends_with("data: [DONE]") && text.contains("\"usage\""),
        (false, true) => text.contains("\"type\":\"message\""),
        (false, false) => text.contains("\"chat.completion\""),
    };
    if status != 200 || !whole || !text.replace(": ", ":").contains(&model) {
        return Err(format!(
            "pre-flight {what}: expected a whole answer from {} in the client's shape, got \
             {status}:\n{}",
            request.answered_by,
            text.chars().take(600).collect::<String>()
        ));
    }
    Ok(())
}

/// The translation runs: rounds of every path through each build and to the stand-ins alone,
/// one after the other (the order of the setups rotates each round, and the same-shape path
/// goes first in even rounds, second in odd ones).
async fn translation_runs(
    dir: &FsPath,
    tools: &Tools,
    configs: &[(Build, String)],
    standins: (&Service, &Service),
    rounds: usize,
    warnings: &mut Vec<String>,
) -> Result<Samples, String> {
    say("translation runs: starting Envoy + Sluice native and Wasm");
    let mut gateways = Vec::new();
    for (build, yaml) in configs {
        let name = format!("envoy-translation-{}", build.name().to_lowercase());
        gateways.push((
            *build,
            procs::start_envoy(&name, dir, yaml, ENVOY_WORKERS).await?,
        ));
    }
    // Each via with the index of its Envoy in `gateways` (none for the stand-ins alone).
    let mut vias = vec![(Via::Direct, None)];
    for (i, (build, _)) in gateways.iter().enumerate() {
        vias.push((Via::Gateway(*build), Some(i)));
    }
    let mut plans = Vec::new();
    for (via, gateway) in vias {
        let base = gateway
            .and_then(|i| gateways.get(i))
            .map(|(_, s)| s.url(""))
            .unwrap_or_default();
        let requests = requests(dir, via, &base, standins)?;
        for (path, request) in &requests {
            check(via, *path, request).await?;
        }
        plans.push((via, gateway, requests));
    }
    say("warm-up: 1 s of each");
    for (_, _, requests) in &plans {
        for (_, request) in requests {
            let headers: Vec<&str> = request.headers.iter().map(String::as_str).collect();
            load::wrk_with_headers(tools, &request.url, &request.body, CONCURRENCY, 1, &headers)
                .await?;
        }
    }
    let tick_hz: f64 = load::version(FsPath::new("getconf"), &["CLK_TCK"])
        .await
        .parse()
        .unwrap_or(100.0);
    let mut samples = Samples::default();
    say(&format!(
        "translation: {rounds} rounds, each setup and path for {SECONDS} s, concurrency \
         {CONCURRENCY}"
    ));
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.rotate_left(round % plans.len().max(1));
        let paths = if round % 2 == 0 {
            [
                Path::OpenAi,
                Path::Anthropic,
                Path::OpenAiStream,
                Path::AnthropicStream,
            ]
        } else {
            [
                Path::Anthropic,
                Path::OpenAi,
                Path::AnthropicStream,
                Path::OpenAiStream,
            ]
        };
        for &i in &order {
            for path in paths {
                let Some((via, gateway, requests)) = plans.get(i) else {
                    continue;
                };
                let service = gateway.and_then(|g| gateways.get(g)).map(|(_, s)| s);
                let Some((_, request)) = requests.iter().find(|(p, _)| *p == path) else {
                    continue;
                };
                let headers: Vec<&str> = request.headers.iter().map(String::as_str).collect();
                let ticks_before = service.and_then(Service::cpu_ticks);
                let run = load::wrk_with_headers(
                    tools,
                    &request.url,
                    &request.body,
                    CONCURRENCY,
                    SECONDS,
                    &headers,
                )
                .await?;
                let ticks_after = service.and_then(Service::cpu_ticks);
                let cpu_us = ticks_before
                    .zip(ticks_after)
                    .filter(|_| run.requests > 0)
                    .map(|(a, b)| b.saturating_sub(a) as f64 * 1e6 / tick_hz / run.requests as f64);
                samples.add(round, *via, path, Metric::P50, run.p50_us);
                samples.add(round, *via, path, Metric::P99, run.p99_us);
                if let Some(cpu) = cpu_us {
                    samples.add(round, *via, path, Metric::CpuUs, cpu);
                }
                println!(
                    "    [{}/{rounds}] {:<22} {:<32} p50 {:>8}  p99 {:>8}  {:>6} requests{}",
                    round + 1,
                    via.label(),
                    path.label(),
                    fmt_us(Some(run.p50_us)),
                    fmt_us(Some(run.p99_us)),
                    run.requests,
                    cpu_us.map_or(String::new(), |c| format!("  Envoy CPU {c:.0} µs/request"))
                );
                if run.errors > 0 {
                    warnings.push(format!(
                        "translation round {}, {}, {}: {} of {} requests failed",
                        round + 1,
                        via.label(),
                        path.label(),
                        run.errors,
                        run.requests
                    ));
                }
            }
        }
        for (build, service) in &mut gateways {
            service.check_running(&format!("Envoy + Sluice {}", build.name()))?;
        }
    }
    Ok(samples)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// One scenario: the steady load through `gateway`, the fault switched on the primary stand-in
/// and off again on schedule, the primary's counts read every `POLL_MS`.
async fn scenario_run(
    gateway: &Service,
    primary: &Service,
    build: Build,
    scenario: Scenario,
) -> Result<ScenarioRun, String> {
    let client = sluice_e2e::gateway::client();
    let period = secs(1.0 / f64::from(RATE_PER_S));
    let start = Instant::now() + Duration::from_millis(100);
    let fault_at = start + secs(WARMUP_S + BEFORE_S);
    let clear_at = fault_at + secs(FAULT_S);
    let end = clear_at + secs(AFTER_S);

    let url = gateway.url("/v1/chat/completions");
    let body = failover_body();
    let load = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0u32.. {
                let at = start + period.saturating_mul(i);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {}", procs::API_KEY))
                    .body(body.clone())
                    .send();
                // Latency from the send, not the schedule: the timer fires up to a millisecond
                // late, and at this rate the client never falls behind.
                let at = Instant::now();
                sent.push((
                    at,
                    tokio::spawn(async move {
                        let (status, served) = match request.await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let text = response.text().await.unwrap_or_default();
                                (status, served_by(status, &text))
                            }
                            Err(_) => (0, Served::Neither),
                        };
                        (status, served, Instant::now())
                    }),
                ));
            }
            let mut out = Vec::with_capacity(sent.len());
            for (at, handle) in sent {
                let (status, served, done) =
                    handle.await.unwrap_or((0, Served::Neither, Instant::now()));
                out.push((at, status, served, done));
            }
            out
        })
    };
    let stats_url = primary.url("/admin/stats");
    let poller = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut polls = Vec::new();
            let stop = end + Duration::from_millis(500);
            let mut ticker = tokio::time::interval(Duration::from_millis(POLL_MS));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < stop {
                ticker.tick().await;
                let Ok(response) = client.get(&stats_url).send().await else {
                    continue;
                };
                let Ok(stats) = response.json::<serde_json::Value>().await else {
                    continue;
                };
                let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
                polls.push((
                    Instant::now(),
                    count(&stats["received"]) + count(&stats["refused"]),
                    count(&stats["answered"]["429"]),
                ));
            }
            polls
        })
    };

    tokio::time::sleep_until(fault_at.into()).await;
    let response = client
        .put(primary.url("/admin/faults"))
        .json(&scenario.fault())
        .send()
        .await
        .map_err(|e| format!("set the fault: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "set the fault: {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ));
    }
    let fault_on = Instant::now();
    tokio::time::sleep_until(clear_at.into()).await;
    client
        .delete(primary.url("/admin/faults"))
        .send()
        .await
        .map_err(|e| format!("clear the fault: {e}"))?;
    let fault_off = Instant::now();
    let sent = load.await.map_err(|e| format!("the load: {e}"))?;
    let polls = poller.await.map_err(|e| format!("the poller: {e}"))?;

    let from = |t: Instant| -> f64 {
        if t >= fault_on {
            t.duration_since(fault_on).as_secs_f64()
        } else {
            -fault_on.duration_since(t).as_secs_f64()
        }
    };
    let samples = sent
        .into_iter()
        .map(|(at, status, served, done)| FailoverSample {
            at_s: from(at),
            latency_us: done.saturating_duration_since(at).as_secs_f64() * 1e6,
            status,
            served,
        })
        .filter(|s| s.at_s >= -BEFORE_S)
        .collect();
    let polls = polls
        .into_iter()
        .map(|(at, touches, rate_limited)| Poll {
            at_s: from(at),
            touches,
            rate_limited,
        })
        .collect();
    Ok(ScenarioRun {
        build,
        scenario,
        fault_end_s: from(fault_off),
        samples,
        polls,
    })
}

/// Which target answered, by the model the answer names.
fn served_by(status: u16, text: &str) -> Served {
    if status != 200 {
        return Served::Neither;
    }
    let model = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["model"].as_str().map(str::to_owned));
    match model.as_deref() {
        Some(OPENAI_MODEL) => Served::Primary,
        Some(ANTHROPIC_MODEL) => Served::Secondary,
        _ => Served::Neither,
    }
}

fn print_scenario(run: &ScenarioRun) {
    let (errors, total) = run.errors();
    let (before, during) = (run.before(), run.during());
    let fmt_s = |s: Option<f64>| s.map_or("never".to_owned(), |s| format!("{s:.2} s"));
    println!(
        "    {} errors of {total}; p50 {} -> {}, p99 {} -> {}; primary attempts during the \
         fault {}, left alone after {}; served by it again at {}",
        errors,
        fmt_us(before.p50_us),
        fmt_us(during.p50_us),
        fmt_us(before.p99_us),
        fmt_us(during.p99_us),
        run.primary_attempts_during(),
        fmt_s(run.stopped_s()),
        fmt_s(run.first_served_by_primary_s()),
    );
}
