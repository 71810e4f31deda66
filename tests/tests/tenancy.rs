//! Tenancy at run time, end to end (issue 17's first "Done when"): a cluster run of two Envoys,
//! the picker with its admin API and the tenancy store in a real Redis, driven by the
//! command-line client as an operator would. A key created through `sluice-admin` works through
//! Envoy within a sync interval; a budget set on it refuses the next request in the API's
//! format; revoked, it gets 401 on every Envoy; its spend, read back through the CLI, matches the
//! usage the responses reported; with the admin service killed, traffic goes on under the last
//! snapshot. Beside it, the configuration's keys keep working, and a model outside the key's
//! allowed list gets 403 in both API formats.
//!
//! The delays (CLI answer → first 200; revocation → first 401 on each Envoy) are measured and
//! printed, not asserted (`cargo test -p sluice-e2e --test tenancy -- --nocapture`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::admin::AdminCli;
use sluice_e2e::both_hosts;
use sluice_e2e::envoy::{Envoy, EnvoyOptions};
use sluice_e2e::gateway::{LLAMA, QWEN, client};
use sluice_e2e::host::Host;
use sluice_e2e::picker::Picker;
use sluice_e2e::redis::Redis;
use sluice_e2e::simulator::Simulator;

const ADMIN_TOKEN: &str = "e2e-admin-token";
/// A key of the plugin configuration, beside the run-time ones.
const CONFIG_KEY: &str = "sk-configured";
/// The tenancy snapshot's refresh: the sync interval a change reaches every Envoy within.
const REFRESH_MS: u64 = 1000;
/// The quota sync's (spend rows ride on it).
const SYNC_MS: u64 = 100;
/// USD per million tokens of Llama: input, output.
const PRICE: (f64, f64) = (1.0, 2.0);
/// How long a test waits for something it polls for (a timeout, not a claim about speed).
const PATIENCE: Duration = Duration::from_secs(30);

struct Run {
    // Field order is drop order: the Envoys stop first, the directory goes last.
    envoys: Vec<Envoy>,
    picker: Picker,
    cli: AdminCli,
    _redis: Redis,
    _replicas: Vec<Simulator>,
    _dir: tempfile::TempDir,
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Run {
    async fn start(host: Host) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-e2e-tenancy-{host}-"))
            .tempdir()
            .unwrap();
        let redis = Redis::start(dir.path()).await;
        let replicas = vec![
            Simulator::start(dir.path(), "llama", &["--model", LLAMA].map(String::from)).await,
            Simulator::start(dir.path(), "qwen", &["--model", QWEN].map(String::from)).await,
        ];
        // The companion service: cluster quotas and the tenancy store in Redis, the admin API
        // on a listener of its own.
        let config = format!(
            "[quota]\nredis_url = \"{}\"\nkey_prefix = \"e2e:\"\n\n[tenancy]\nstore = \"redis\"\n\n\
             [admin]\ntoken_env = \"SLUICE_ADMIN_TOKEN\"\n",
            redis.url()
        );
        let (picker, admin) = Picker::start_with_admin(dir.path(), &config, ADMIN_TOKEN).await;
        let filter = json!({
            "models": { LLAMA: { "pool": "llama_8b" }, QWEN: { "pool": "qwen_7b" } },
            "quotas": {
                "keys": [{ "sha256": sha256_hex(CONFIG_KEY), "tenant": "configured" }],
                "tenants": { "configured": { "limits": { "requests_per_minute": 1000 } } },
                "prices": { LLAMA: { "input": PRICE.0, "output": PRICE.1 } },
                "cluster": { "sync_ms": SYNC_MS, "stale_after_ms": 1000 },
                "tenancy": { "refresh_ms": REFRESH_MS }
            }
        });
        let options = EnvoyOptions {
            clusters: vec![
                ("llama_8b".into(), vec![replicas[0].addr]),
                ("qwen_7b".into(), vec![replicas[1].addr]),
                ("sluice_picker".into(), vec![picker.addr]),
            ],
            filter_configuration: Some(serde_json::to_string_pretty(&filter).unwrap()),
            ..EnvoyOptions::default()
        };
        let mut envoys = Vec::new();
        for i in 0..2 {
            let envoy_dir = dir.path().join(format!("envoy-{i}"));
            std::fs::create_dir_all(&envoy_dir).unwrap();
            envoys.push(Envoy::start(host, &envoy_dir, &options).await);
        }
        Self {
            envoys,
            picker,
            cli: AdminCli::new(admin, ADMIN_TOKEN),
            _redis: redis,
            _replicas: replicas,
            _dir: dir,
        }
    }
}

/// One answer through Envoy: status and body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// (input, output) tokens the response reported.
    fn usage(&self) -> (u64, u64) {
        let usage = &self.body["usage"];
        (
            usage["prompt_tokens"].as_u64().expect("prompt_tokens"),
            usage["completion_tokens"]
                .as_u64()
                .expect("completion_tokens"),
        )
    }
}

async fn chat(envoy: &Envoy, key: &str, model: &str) -> Answer {
    let response = client()
        .post(envoy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": model,
            "messages": [{"role": "user", "content": "Hello there"}],
            "max_tokens": 3,
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    Answer {
        status,
        body: response.json().await.unwrap_or(Value::Null),
    }
}

async fn messages(envoy: &Envoy, key: &str, model: &str) -> Answer {
    let response = client()
        .post(envoy.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": model,
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "Hello there"}],
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    Answer {
        status,
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// What the responses to the run-time key reported, to compare with its spend.
#[derive(Debug, Default)]
struct Reported {
    requests: u64,
    input: u64,
    output: u64,
}

impl Reported {
    fn add(&mut self, answer: &Answer) {
        let (input, output) = answer.usage();
        self.requests += 1;
        self.input += input;
        self.output += output;
    }
    fn merge(&mut self, other: &Reported) {
        self.requests += other.requests;
        self.input += other.input;
        self.output += other.output;
    }
}

/// How a change reached one Envoy.
struct Reached {
    /// The first answer with the awaited status, and when it came.
    first: Answer,
    first_at: Duration,
    /// When every worker answered so: the first of `STREAK` such answers in a row.
    every_worker_at: Duration,
    /// What the requests admitted meanwhile reported.
    admitted: Reported,
}

/// Answers in a row that show every worker of an Envoy has a change: each request comes on a
/// new connection, which Envoy hands to any of its workers (each has its own copy of the
/// snapshot in the Wasm build).
const STREAK: usize = 20;

/// Sends `key`'s chat requests to `envoy` until `STREAK` answers in a row have `status`.
async fn reach(envoy: &Envoy, key: &str, since: Instant, status: u16) -> Reached {
    let mut first = None;
    let mut admitted = Reported::default();
    let mut streak = 0;
    let mut streak_at = Duration::ZERO;
    while streak < STREAK {
        let answer = chat(envoy, key, LLAMA).await;
        let at = since.elapsed();
        if answer.status == 200 {
            admitted.add(&answer);
        }
        if answer.status == status {
            if streak == 0 {
                streak_at = at;
            }
            streak += 1;
            if first.is_none() {
                first = Some((answer, at));
            }
        } else {
            streak = 0;
            assert!(
                since.elapsed() < PATIENCE,
                "still {} {} after {PATIENCE:?}",
                answer.status,
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (first, first_at) = first.expect("an answer with the status");
    Reached {
        first,
        first_at,
        every_worker_at: streak_at,
        admitted,
    }
}

/// `reach` on every Envoy at once; prints when the change reached each.
async fn reach_all(
    run: &Run,
    host: Host,
    key: &str,
    since: Instant,
    status: u16,
    what: &str,
    reported: &mut Reported,
) -> Vec<Reached> {
    let reached = join_all(run.envoys.iter().map(|e| reach(e, key, since, status))).await;
    for (i, r) in reached.iter().enumerate() {
        reported.merge(&r.admitted);
        println!(
            "{host}: envoy {i}: {what}: first {status} {} ms, every worker {} ms after the \
             CLI's answer (tenancy refresh_ms {REFRESH_MS})",
            r.first_at.as_millis(),
            r.every_worker_at.as_millis()
        );
    }
    reached
}

/// Polls the spend report of `key` (by key and model, through the CLI) until it counts
/// `requests`, and returns its sums: one row per hour (two if the test straddled one).
fn spend_of(cli: &AdminCli, key: &str, requests: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let report = cli.json(&[
            "spend",
            "--key",
            key,
            "--by",
            "key,model",
            "--format",
            "json",
        ]);
        let rows = report["rows"].as_array().cloned().unwrap_or_default();
        let sum = |field: &str| -> u64 { rows.iter().map(|r| r[field].as_u64().unwrap()).sum() };
        let counted = sum("requests");
        if counted >= requests {
            assert_eq!(
                counted, requests,
                "spend counts more than was served: {report}"
            );
            assert!(
                rows.iter().all(|r| r["key"] == key && r["model"] == LLAMA),
                "{report}"
            );
            let cost: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
            return json!({
                "rows": rows.len(),
                "requests": counted,
                "input_tokens": sum("input_tokens"),
                "output_tokens": sum("output_tokens"),
                "cost_usd": cost,
            });
        }
        assert!(
            Instant::now() < deadline,
            "spend of {key}: {counted} of {requests} requests after {PATIENCE:?}: {report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[both_hosts]
async fn a_key_made_with_the_cli_works_is_limited_revoked_and_reported_on_every_envoy(host: Host) {
    let mut run = Run::start(host).await;
    let cli = &run.cli;

    // The configuration's key works from the start, on both Envoys.
    for envoy in &run.envoys {
        assert_eq!(chat(envoy, CONFIG_KEY, LLAMA).await.status, 200);
    }

    // A tenant, a project, and a key for them that may call Llama only.
    cli.json(&["tenant", "set", "acme", "--rpm", "1000"]);
    cli.json(&["project", "set", "acme", "web"]);
    let created = cli.json(&[
        "key",
        "create",
        "--tenant",
        "acme",
        "--project",
        "web",
        "--name",
        "e2e",
        "--allow-model",
        LLAMA,
    ]);
    let answered = Instant::now();
    let secret = created["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    let id = created["key"]["id"].as_str().expect("key id").to_owned();
    assert!(secret.starts_with("sk-sluice-"), "{created}");

    // It works through both Envoys within a sync interval of the CLI's answer.
    let mut reported = Reported::default();
    reach_all(&run, host, &secret, answered, 200, "new key", &mut reported).await;
    // The configuration's key keeps working alongside.
    for envoy in &run.envoys {
        assert_eq!(chat(envoy, CONFIG_KEY, LLAMA).await.status, 200);
    }

    // A model outside the key's allowed list: 403, in each API's format, naming the model.
    let envoy = &run.envoys[0];
    let openai = chat(envoy, &secret, QWEN).await;
    assert_eq!(openai.status, 403, "{}", openai.body);
    assert_eq!(
        openai.body["error"]["type"], "permission_error",
        "{}",
        openai.body
    );
    assert_eq!(openai.body["error"]["code"], "model_not_allowed");
    assert!(
        openai.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(QWEN)
    );
    let anthropic = messages(envoy, &secret, QWEN).await;
    assert_eq!(anthropic.status, 403, "{}", anthropic.body);
    assert_eq!(anthropic.body["type"], "error");
    assert_eq!(anthropic.body["error"]["type"], "permission_error");
    for answer in [&openai, &anthropic] {
        assert!(!answer.body.to_string().contains(&secret), "the key echoed");
    }
    assert_eq!(
        chat(envoy, CONFIG_KEY, QWEN).await.status,
        200,
        "no list of its own"
    );

    // A daily budget of 5 tokens: the next request (its prompt and max_tokens reserved) is
    // refused, in the API's format, once the Envoys have the change.
    cli.json(&["key", "update", &id, "--budget", "day:tokens=5"]);
    let changed = Instant::now();
    let refusals = reach_all(&run, host, &secret, changed, 429, "budget", &mut reported).await;
    for (refused, envoy) in refusals.iter().zip(&run.envoys) {
        let body = &refused.first.body;
        assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
        assert_eq!(body["error"]["type"], "insufficient_quota");
        let anthropic = messages(envoy, &secret, LLAMA).await;
        assert_eq!(anthropic.status, 429, "{}", anthropic.body);
        assert_eq!(anthropic.body["error"]["type"], "rate_limit_error");
    }

    // A second key of the tenant, to show traffic going on after the admin service dies.
    let second = cli.json(&["key", "create", "--tenant", "acme"]);
    let second_secret = second["secret"].as_str().unwrap().to_owned();

    // Revoked: 401 on every Envoy, each worker included (a run of answers all 401).
    let revoked = cli.json(&["key", "revoke", &id]);
    assert!(revoked["revoked_at_ms"].as_u64().is_some(), "{revoked}");
    let since = Instant::now();
    let revocations = reach_all(&run, host, &secret, since, 401, "revoked", &mut reported).await;
    for revoked in &revocations {
        let body = &revoked.first.body;
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    }
    for envoy in &run.envoys {
        assert_eq!(chat(envoy, CONFIG_KEY, LLAMA).await.status, 200);
        let anthropic = messages(envoy, &secret, LLAMA).await;
        assert_eq!(anthropic.status, 401);
        assert_eq!(anthropic.body["error"]["type"], "authentication_error");
    }

    // Its spend, read back through the CLI: what the responses reported, at Llama's price.
    let row = spend_of(cli, &id, reported.requests);
    assert_eq!(row["input_tokens"].as_u64(), Some(reported.input), "{row}");
    assert_eq!(
        row["output_tokens"].as_u64(),
        Some(reported.output),
        "{row}"
    );
    let cost = (reported.input as f64 * PRICE.0 + reported.output as f64 * PRICE.1) / 1e6;
    let spent = row["cost_usd"].as_f64().unwrap();
    assert!(
        (spent - cost).abs() < 1e-9,
        "spent {spent}, responses say {cost}"
    );
    println!(
        "{host}: spend of {id}: {} requests, {} in / {} out tokens, ${spent:.6} (reported by the \
         responses: {} requests, {} in / {} out)",
        row["requests"],
        row["input_tokens"],
        row["output_tokens"],
        reported.requests,
        reported.input,
        reported.output
    );
    // The CSV the CLI prints for scripts carries the same row.
    let csv = cli.run(&[
        "spend",
        "--key",
        &id,
        "--by",
        "key,model",
        "--format",
        "csv",
    ]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert!(
        csv.stdout.starts_with("period_start,key,model,requests,"),
        "{}",
        csv.stdout
    );
    assert!(
        csv.stdout.contains(&format!(",{id},{LLAMA},")),
        "{}",
        csv.stdout
    );

    // The admin service dies: every Envoy keeps its last snapshot. The second key still works,
    // the revoked one stays refused, and the failed fetches are counted.
    let version = run.envoys[0]
        .stat_now(&host.stat("sluice_tenancy_version"))
        .await;
    assert!(version > 0);
    run.picker.process.kill();
    for envoy in &run.envoys {
        envoy
            .stat_at_least(&host.stat("sluice_tenancy_fetch_failures_total"), 2)
            .await;
        for _ in 0..10 {
            assert_eq!(chat(envoy, &second_secret, LLAMA).await.status, 200);
            assert_eq!(chat(envoy, &secret, LLAMA).await.status, 401);
            assert_eq!(chat(envoy, CONFIG_KEY, LLAMA).await.status, 200);
        }
        assert_eq!(
            envoy.stat_now(&host.stat("sluice_tenancy_version")).await,
            version
        );
    }
}
