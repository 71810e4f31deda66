//! Criterion micro-benchmarks of the filter's request path, compiled natively. `make bench` runs
//! them (briefly: 2 s of measurement each) and copies the medians into BENCHMARKS.md.
//!
//! One function per hot path, each listed in `criterion_group!` at the bottom. When a new stage
//! lands in the filter (token estimation, guardrail scan, replica scoring...), add one function
//! that calls it, on the same bodies (`chat_body`) where it reads a request, and list it there:
//!
//! ```ignore
//! fn token_estimate(c: &mut Criterion) {
//!     for_each_body(c, "token_estimate", |b, body| {
//!         let parsed = api::parse(ApiKind::ChatCompletions, body).expect("valid body");
//!         b.iter(|| sluice_core::tokens::estimate(black_box(&parsed.request)))
//!     });
//! }
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Bencher, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_bench::bodies::{MICRO_SIZES, STREAM_WORDS, chat_body};
use sluice_bench::sluice_config::FILTER_CONFIGURATION;
use sluice_core::api;
use sluice_core::canonical::ApiKind;
use sluice_core::config::Config;
use sluice_core::error::{ApiFlavor, GatewayError};
use sluice_core::pipeline::{self, ModelsList, RequestHead};
use sluice_core::tokens::{self, Family};
use sluice_core::usage;

/// The configuration `make bench` runs Envoy + Sluice with.
fn config() -> Config {
    match Config::from_json(FILTER_CONFIGURATION.as_bytes()) {
        Ok(config) => config,
        Err(error) => panic!("bench/src/sluice_config.rs is rejected: {error}"),
    }
}

/// Runs `bench` on the OpenAI chat body of every micro-benchmark size (1 KB, 16 KB, 256 KB), as
/// `group/openai_chat/<size>`, with throughput in bytes.
fn for_each_body(c: &mut Criterion, group: &str, mut bench: impl FnMut(&mut Bencher<'_>, &[u8])) {
    let mut group = c.benchmark_group(group);
    group.sample_size(20);
    for &(size, label) in MICRO_SIZES {
        let body = chat_body(size, false);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("openai_chat", label),
            body.as_bytes(),
            |b, body| bench(b, body),
        );
    }
    group.finish();
}

/// BASELINE, not Sluice code: `serde_json::from_slice::<serde_json::Value>` of the same bodies,
/// for scale beside `parse_normalize`.
fn parse_baseline(c: &mut Criterion) {
    for_each_body(c, "parse_baseline_serde_json_value", |b, body| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)))
    });
}

/// Parse + normalize: the body into the canonical request every later stage reads.
fn parse_normalize(c: &mut Criterion) {
    for_each_body(c, "parse_normalize", |b, body| {
        b.iter(|| api::parse(ApiKind::ChatCompletions, black_box(body)).map(|p| p.request.model))
    });
}

/// The whole body phase: parse + normalize, resolve the model in the catalog, check the context
/// window (the model is not rewritten).
fn route_request(c: &mut Criterion) {
    let config = config();
    for_each_body(c, "route_request", |b, body| {
        b.iter(|| pipeline::route_request(&config, ApiKind::ChatCompletions, black_box(body)))
    });
}

/// The body phase for a request naming an alias (`gpt-4o`): the body is re-serialized with the
/// served model's name, the costliest routing case.
fn route_request_alias(c: &mut Criterion) {
    let config = config();
    let mut group = c.benchmark_group("route_request_alias_rewrite");
    group.sample_size(20);
    for &(size, label) in MICRO_SIZES {
        let body = chat_body(size, false).replacen(
            r#""model":"meta-llama/Llama-3.1-8B-Instruct""#,
            r#""model":"gpt-4o""#,
            1,
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("openai_chat", label),
            body.as_bytes(),
            |b, body| {
                b.iter(|| {
                    pipeline::route_request(&config, ApiKind::ChatCompletions, black_box(body))
                })
            },
        );
    }
    group.finish();
}

/// The benchmark's chat body with numbers, times and a date in its prose: the PII detectors
/// that need a digit or a colon (cards, phones, IBANs, IP addresses...) then run, which the
/// plain body, all words, lets the guardrails skip.
fn numbers_body(size: usize) -> String {
    chat_body(size, false)
        .replace(" three ", " 3 ")
        .replace(" quarterly ", " Q3 2024: ")
        .replace(" latency ", " latency at 10:30 was 42.7 ms ")
}

/// `route_request` on `numbers_body`, 1 KB and 16 KB.
fn route_request_numbers(c: &mut Criterion) {
    let config = config();
    let mut group = c.benchmark_group("route_request_numbers");
    group.sample_size(20);
    for &(size, label) in MICRO_SIZES.iter().filter(|(size, _)| *size <= 16 * 1024) {
        let body = numbers_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("openai_chat", label),
            body.as_bytes(),
            |b, body| {
                b.iter(|| {
                    pipeline::route_request(&config, ApiKind::ChatCompletions, black_box(body))
                })
            },
        );
    }
    group.finish();
}

/// The headers phase: classify the path, check method, content type and declared length.
fn headers_phase(c: &mut Criterion) {
    let config = config();
    let models = ModelsList::new(&config.catalog, 0);
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        content_length: Some("16384"),
        anthropic_version: false,
        end_of_stream: false,
    };
    c.bench_function("request_path/decide_on_headers", |b| {
        b.iter(|| pipeline::decide_on_headers(&config, &models, black_box(&head)))
    });
}

/// A rejected request: rendering the error body in the client's API format.
fn error_body(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_path");
    let error = GatewayError::ModelNotFound("no-such-model".into());
    for (name, path) in [
        ("error_body_openai", "/v1/chat/completions"),
        ("error_body_anthropic", "/v1/messages"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(&error).body(ApiFlavor::from_path(black_box(path))))
        });
    }
    group.finish();
}

/// Replica scoring for one request: rank the healthy endpoints of a pool by queue, KV cache,
/// running and in-flight requests, prefix and LoRA affinity (what the filter does per request
/// once a fresh snapshot is at hand), for pools of 4, 16 and 64 replicas.
fn replica_scoring(c: &mut Criterion) {
    use sluice_core::picking::{InFlight, PickRequest, Picking, destination, rank};
    use sluice_wire::{Endpoint, Lora, Pool};
    let picking = Picking::default();
    let mut group = c.benchmark_group("replica_scoring");
    for replicas in [4u32, 16, 64] {
        let endpoints: Vec<Endpoint> = (0..replicas)
            .map(|i| Endpoint {
                address: format!("10.0.{}.{}:8000", i / 200, i % 200 + 1),
                healthy: i % 13 != 5,
                waiting: (i * 7) % 5,
                running: (i * 11) % 17,
                kv_cache_usage: ((i * 37) % 100) as f32 / 100.0,
                block_size: 16,
                lora: Lora {
                    max: 4,
                    running: if i % 3 == 0 {
                        vec!["sql-lora".into()]
                    } else {
                        vec![]
                    },
                    waiting: vec![],
                },
                metrics_age_ms: 20,
            })
            .collect();
        let mut in_flight = InFlight::default();
        for endpoint in endpoints.iter().step_by(2) {
            in_flight.add(&endpoint.address, 3, 1_000);
        }
        let prefix_endpoint = endpoints.get(1).map(|e| e.address.clone());
        let pool = Pool {
            name: "llama_8b".into(),
            model: "meta-llama/Llama-3.1-8B-Instruct".into(),
            endpoints,
        };
        let mut tie_breaker = 0u64;
        group.bench_function(BenchmarkId::new("rank", replicas), |b| {
            b.iter(|| {
                tie_breaker = tie_breaker.wrapping_add(1);
                let request = PickRequest {
                    adapter: Some("sql-lora"),
                    prefix_endpoint: prefix_endpoint.as_deref(),
                    tie_breaker,
                    eligible: None,
                };
                match rank(
                    black_box(&pool),
                    &in_flight,
                    &request,
                    &picking.weights,
                    picking.max_waiting_per_endpoint,
                ) {
                    sluice_core::picking::Pick::Ranked(ranked) => {
                        destination(&ranked, picking.fallbacks)
                    }
                    _ => String::new(),
                }
            })
        });
    }
    group.finish();
}

/// Token estimation of the whole request (text, chat overheads, output budget), on the parsed
/// request: what `route_request` adds for token accounting.
fn token_estimate(c: &mut Criterion) {
    let budget = tokens::Budget {
        default_max_output_tokens: 4096,
        context_window: Some(131_072),
    };
    for_each_body(c, "token_estimate", |b, body| {
        let parsed = api::parse(ApiKind::ChatCompletions, body).expect("valid body");
        b.iter(|| tokens::estimate_request(black_box(&parsed.request), Family::Llama3, budget))
    });
}

/// Raw estimator throughput per tokenizer family, on 64 KiB of mixed prose, code and JSON.
fn token_count(c: &mut Criterion) {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 64 * 1024 {
        let body = chat_body(1024, i % 2 == 0);
        text.push_str(&body);
        text.push_str("\nfn main() { let total: u64 = items.iter().map(|x| x.cost * 2).sum(); }\n");
        text.push_str("The quick brown fox jumps over the lazy dog, again and again. ");
        i += 1;
    }
    let mut group = c.benchmark_group("token_count");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    for family in [Family::O200k, Family::Cl100k, Family::Qwen, Family::Claude] {
        group.bench_function(family.name(), |b| {
            b.iter(|| tokens::count(black_box(&text), family))
        });
    }
    group.finish();
}

/// Reading usage from a streamed response as it passes, with the injected usage removed: the
/// per-chunk work on the response path, for a 64-token stream.
fn usage_stream(c: &mut Criterion) {
    let mut stream = String::new();
    for i in 0..64 {
        stream.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}}}}],\"usage\":null}}\n\n"
        ));
    }
    stream.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":64}}\n\ndata: [DONE]\n\n");
    let chunks: Vec<&str> = stream.split_inclusive("\n\n").collect();
    let mut group = c.benchmark_group("usage_stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("openai_64_chunks_strip", |b| {
        b.iter(|| {
            let mut reader = usage::StreamReader::new(Family::O200k, true);
            for (i, chunk) in chunks.iter().enumerate() {
                black_box(reader.chunk(chunk.as_bytes(), i + 1 == chunks.len()));
            }
            reader.finish(0)
        })
    });
    group.finish();
}

/// The guardrails of the benchmark's configuration (the default rule set).
fn default_guardrails() -> std::sync::Arc<sluice_core::guardrails::Guardrails> {
    match config().guardrails.as_ref() {
        Some(g) => std::sync::Arc::clone(&g.0),
        None => panic!("bench/src/sluice_config.rs has no guardrails"),
    }
}

/// Guardrails with the default rule set (what `guardrails: {}` turns on) on the user text of
/// 1 KB and 16 KB chat prompts: the scan a request pays beside parsing and routing.
fn guardrail_scan(c: &mut Criterion) {
    let guardrails = default_guardrails();
    let mut group = c.benchmark_group("guardrail_scan");
    group.sample_size(20);
    for &(size, label) in MICRO_SIZES {
        if size > 16 * 1024 {
            continue;
        }
        for (name, body) in [
            ("default_rules", chat_body(size, false)),
            ("default_rules_numbers", numbers_body(size)),
        ] {
            let parsed = api::parse(ApiKind::ChatCompletions, body.as_bytes())
                .unwrap_or_else(|e| panic!("{e:?}"));
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| guardrails.check_request(None, None, "m", black_box(&parsed.request), 0))
            });
        }
    }
    group.finish();
}

/// The response stream guard (default rule set, responses on) over a 256-token OpenAI chat
/// stream of prose, and of tool-call arguments, one event per token fed as Envoy hands chunks
/// over: what a streamed response pays per token for the hold-back, the scans and the event
/// rewriting.
fn guardrail_stream(c: &mut Criterion) {
    let guardrails = default_guardrails();
    let policy = guardrails.policy_for(None, None, "m");
    let words = STREAM_WORDS;
    let events: Vec<String> = (0..256)
        .map(|i| {
            let word = words[i % words.len()];
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect();
    // The same length of tool-call arguments (JSON text, read decoded), one piece per token.
    let arguments = r#"{"city": "Paris", "unit": "celsius", "days": 3, "note": "line\nbreak"}, "#;
    let pieces: Vec<String> = arguments
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect();
    let tool_events: Vec<String> = (0..256)
        .map(|i| {
            let call = serde_json::json!({"index": 0, "function": {"arguments": pieces[i % pieces.len()]}});
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{call}]}},\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect();
    let mut group = c.benchmark_group("guardrail_stream");
    group.sample_size(20);
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, events) in [
        ("default_rules/256_tokens", &events),
        ("default_rules/256_tokens_tool_arguments", &tool_events),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut guard = sluice_core::guardrails::StreamGuard::new(
                    policy,
                    guardrails.stream_holdback_bytes,
                    ApiFlavor::OpenAi,
                );
                for (i, event) in events.iter().enumerate() {
                    black_box(guard.chunk(&guardrails, event.as_bytes(), i + 1 == events.len()));
                }
            })
        });
    }
    group.finish();
}

/// Configure time, not per request (once per VM and configuration push): for scale only.
fn configure(c: &mut Criterion) {
    let json = FILTER_CONFIGURATION.as_bytes();
    c.bench_function("configure_time/config_from_json", |b| {
        b.iter(|| Config::from_json(black_box(json)))
    });
}

/// Shared data in a map with compare-and-swap, as Envoy's (the host calls themselves, ~2-3 µs
/// each, are measured by `make bench-host-cost`; this is the guest-side work).
#[derive(Default)]
struct MapStore {
    map: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
}

impl sluice_core::quota::Store for MapStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], _cas: Option<u32>) -> bool {
        let mut map = self.map.borrow_mut();
        let next = map.get(key).map_or(0, |(_, c)| c + 1);
        map.insert(key.to_owned(), (value.to_vec(), next));
        true
    }
}

/// A quota check as one request makes it: identify the key (SHA-256 + lookup), reserve in the
/// tenant, tenant + model and model scopes (rpm, tpm, a daily token and USD budget, max
/// concurrent), then settle with the real usage.
fn quota_check(c: &mut Criterion) {
    use sluice_core::quota::{self, Usage, identity};
    let key_hash: String = identity::sha256("sk-bench")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let limits = r#"{"requests_per_minute":1000000000,"tokens_per_minute":1000000000,
        "max_concurrent":100000,"budgets":[{"period":"day","tokens":1000000000000,"usd":1000000}]}"#;
    let json = format!(
        r#"{{"models":{{"m":{{}}}},"quotas":{{"keys":[{{"sha256":"{key_hash}","tenant":"acme"}}],
        "tenants":{{"acme":{{"limits":{limits},"models":{{"m":{limits}}}}}}},
        "models":{{"m":{limits}}},"prices":{{"m":{{"input":1,"output":2}}}}}}}}"#
    );
    let config = Config::from_json(json.as_bytes()).expect("quota configuration");
    let quotas = config.quotas.expect("quotas");
    let store = MapStore::default();
    let mut now = 1_709_208_000_000u64;
    c.bench_function("quota/identify_reserve_settle_3_scopes", |b| {
        b.iter(|| {
            now += 1;
            let caller = identity::identify(&quotas.identity, None, now, |name| {
                (name == "authorization").then_some("Bearer sk-bench")
            })
            .expect("known key");
            let request = quota::Request {
                quotas: &quotas,
                tenancy: None,
                who: quota::Who {
                    tenant: &caller.tenant,
                    project: caller.project.as_deref(),
                    key: caller.key.as_deref(),
                },
                charge: quota::Charge::Inference {
                    model: "m",
                    prompt_tokens: 300,
                    output_budget: 500,
                },
                now_ms: now,
                state_known: true,
            };
            let admitted = quota::reserve(&store, black_box(&request)).expect("admitted");
            let usage = Usage {
                input: 310,
                output: 120,
                cached: 0,
            };
            quota::settle(&store, &admitted.ticket, usage, now);
        })
    });
}

criterion_group! {
    name = hot_path;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots();
    targets = parse_baseline, parse_normalize, route_request, route_request_alias,
        route_request_numbers, headers_phase,
        replica_scoring, error_body, token_estimate, token_count, usage_stream, guardrail_scan,
        guardrail_stream, quota_check, configure
}
criterion_main!(hot_path);
