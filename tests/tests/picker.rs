//! The picker against real simulator processes (and a scripted server for what the simulator
//! cannot play): it serves a snapshot of every pool's endpoints with their load and health,
//! follows load as it changes, drops dead replicas, and refuses a bad configuration.
//!
//! Behaviour only: how soon things happen (rounds on schedule, health after N scrapes, fresh
//! metrics beside a hung endpoint) is tested on paused time in `picker/src/scrape/rounds/`.
//! Deadlines here are timeouts for waiting, never assertions.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_e2e::gateway::{LLAMA, QWEN, client};
use sluice_e2e::picker::Picker;
use sluice_e2e::picker::{
    PoolConfig, SNAPSHOT_CONTENT_TYPE, SNAPSHOT_FORMAT, Script, ScriptedServer, config, endpoint,
    is_healthy, pool,
};
use sluice_e2e::simulator::Simulator;

const FAST: &str = "scrape_interval_ms = 50\nunhealthy_after = 3\nhealthy_after = 2";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

fn llama_pool(endpoints: Vec<SocketAddr>) -> PoolConfig<'static> {
    PoolConfig {
        name: "llama_8b",
        model: LLAMA,
        endpoints,
        extra: "",
    }
}

#[tokio::test]
async fn picker_serves_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker::start(
        dir.path(),
        "[[pool]]\nmodel = \"llama\"\nendpoints = [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]\n",
    )
    .await;
    let response = client().get(picker.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn picker_refuses_a_bad_configuration() {
    for (text, key) in [
        (
            "[[pool]]\nmodel = \"llama\"\nendpoints = [\"not-an-address\"]\n",
            "pool[0].endpoints[0]",
        ),
        (
            "scrape_interval_ms = 1\n[[pool]]\nmodel = \"llama\"\nendpoints = [\"127.0.0.1:1\"]\n",
            "scrape_interval_ms",
        ),
        (
            "[[pool]]\nmodel = \"llama\"\ndns = \"svc:80\"\nserver = \"tgi\"\n",
            "pool[0].server",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut picker = Picker::spawn(dir.path(), text);
        let status = picker.wait_exit(Duration::from_secs(20)).await;
        assert!(matches!(status, Some(s) if !s.success()), "{status:?}");
        assert!(picker.log().contains(key), "{key}: {}", picker.log());
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn snapshot_lists_the_pools_with_their_healthy_endpoints() {
    let test_started_ms = unix_ms();
    let dir = tempfile::tempdir().unwrap();
    let llama_args = args(&["--model", LLAMA, "--lora", "sql-lora"]);
    let llama = [
        Simulator::start(dir.path(), "llama-0", &llama_args).await,
        Simulator::start(dir.path(), "llama-1", &llama_args).await,
    ];
    let qwen = Simulator::start(dir.path(), "qwen-0", &args(&["--model", QWEN])).await;
    let text = config(
        FAST,
        &[
            llama_pool(llama.iter().map(|s| s.addr).collect()),
            PoolConfig {
                name: "qwen_7b",
                model: QWEN,
                endpoints: vec![qwen.addr],
                extra: "",
            },
        ],
    );
    let mut picker = Picker::start(dir.path(), &text).await;
    let all = [
        ("llama_8b", llama[0].addr),
        ("llama_8b", llama[1].addr),
        ("qwen_7b", qwen.addr),
    ];
    let snapshot = picker
        .wait_for("every endpoint healthy", Duration::from_secs(10), |s| {
            all.iter().all(|(name, addr)| is_healthy(s, name, *addr))
        })
        .await;

    assert_eq!(snapshot["format"], u64::from(SNAPSHOT_FORMAT));
    assert_eq!(snapshot["scrape_interval_ms"], 50);
    // Taken in this run, by the wall clock.
    let taken = snapshot["taken_at_unix_ms"].as_u64().unwrap();
    let now_ms = unix_ms();
    assert!(
        (test_started_ms..=now_ms).contains(&taken),
        "{taken} not in {test_started_ms}..={now_ms}"
    );
    let names: Vec<&str> = snapshot["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["llama_8b", "qwen_7b"]);
    assert_eq!(pool(&snapshot, "llama_8b").unwrap()["model"], LLAMA);
    assert_eq!(pool(&snapshot, "qwen_7b").unwrap()["model"], QWEN);
    for (name, addr) in all {
        let e = endpoint(&snapshot, name, addr).unwrap();
        assert_eq!(e["waiting"], 0, "{e}");
        assert_eq!(e["running"], 0, "{e}");
        assert_eq!(e["block_size"], 16, "{e}");
        assert_eq!(e["lora"]["max"], 2, "{e}");
        // Scraped (an endpoint never scraped has the largest age there is).
        assert!(
            e["metrics_age_ms"].as_u64().unwrap() < u64::from(u32::MAX),
            "{e}"
        );
    }

    // Each round publishes a new version.
    let first = snapshot["version"].as_u64().unwrap();
    let later = picker
        .wait_for("newer snapshots", Duration::from_secs(5), |s| {
            s["version"].as_u64().unwrap() >= first + 3
        })
        .await;
    assert!(later["version"].as_u64().unwrap() > first);

    // The encoded form, for the filter.
    let (content_type, bytes) = picker.snapshot_bytes().await;
    assert_eq!(content_type, SNAPSHOT_CONTENT_TYPE);
    assert_eq!(
        bytes.first(),
        Some(&SNAPSHOT_FORMAT),
        "postcard varint of FORMAT"
    );
    assert!(bytes.windows(8).any(|w| w == b"llama_8b"));

    // Its own metrics.
    let metrics = picker.metrics().await;
    for expected in [
        "sluice_picker_endpoints{pool=\"llama_8b\",state=\"healthy\"} 2",
        "sluice_picker_endpoints{pool=\"qwen_7b\",state=\"healthy\"} 1",
        "sluice_picker_scrape_duration_seconds_count{pool=\"llama_8b\"}",
        "sluice_picker_snapshot_version ",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    let bad = client()
        .get(picker.url("/snapshot?format=yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn waiting_rises_in_the_snapshot_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(
        dir.path(),
        "busy",
        &args(&["--max-num-seqs", "1", "--decode-ms-per-step", "30"]),
    )
    .await;
    let mut picker = Picker::start(dir.path(), &config(FAST, &[llama_pool(vec![sim.addr])])).await;
    picker
        .wait_for("endpoint healthy", Duration::from_secs(10), |s| {
            is_healthy(s, "llama_8b", sim.addr)
        })
        .await;

    // Six requests of 20 tokens at 30 ms a token, one at a time: the queue holds up to five for
    // a few seconds.
    let url = sim.url("/v1/completions");
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                client()
                    .post(url)
                    .json(&serde_json::json!({"model": LLAMA, "prompt": "hi", "max_tokens": 20}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let loaded = picker
        .wait_for("waiting >= 3", Duration::from_secs(5), |s| {
            endpoint(s, "llama_8b", sim.addr).is_some_and(|e| e["waiting"].as_u64() >= Some(3))
        })
        .await;
    let e = endpoint(&loaded, "llama_8b", sim.addr).unwrap();
    assert_eq!(e["running"], 1, "{e}");
    assert!(e["kv_cache_usage"].as_f64().unwrap() > 0.0, "{e}");
    assert!(e["healthy"] == true, "{e}");

    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    picker
        .wait_for("queue drained", Duration::from_secs(5), |s| {
            endpoint(s, "llama_8b", sim.addr)
                .is_some_and(|e| e["waiting"] == 0 && e["running"] == 0)
        })
        .await;
}

#[tokio::test]
async fn a_killed_simulator_turns_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let mut doomed = Simulator::start(dir.path(), "doomed", &[]).await;
    let survivor = Simulator::start(dir.path(), "survivor", &[]).await;
    let mut picker = Picker::start(
        dir.path(),
        &config(FAST, &[llama_pool(vec![doomed.addr, survivor.addr])]),
    )
    .await;
    picker
        .wait_for("both healthy", Duration::from_secs(10), |s| {
            is_healthy(s, "llama_8b", doomed.addr) && is_healthy(s, "llama_8b", survivor.addr)
        })
        .await;

    doomed.process.kill();
    let snapshot = picker
        .wait_for("killed replica unhealthy", Duration::from_secs(10), |s| {
            endpoint(s, "llama_8b", doomed.addr).is_some_and(|e| e["healthy"] == false)
        })
        .await;
    assert!(is_healthy(&snapshot, "llama_8b", survivor.addr));
    let metrics = picker.metrics().await;
    assert!(
        metrics
            .contains("sluice_picker_scrape_failures_total{pool=\"llama_8b\",reason=\"connect\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_picker_endpoints{pool=\"llama_8b\",state=\"unhealthy\"} 1"));
}

#[tokio::test]
async fn a_dns_name_brings_every_address_it_resolves_to() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), "by-name", &[]).await;
    let dns = format!("dns = \"localhost:{}\"", sim.addr.port());
    let text = config(
        &format!("{FAST}\ndns_refresh_ms = 200"),
        &[PoolConfig {
            name: "llama_8b",
            model: LLAMA,
            endpoints: Vec::new(),
            extra: &dns,
        }],
    );
    let mut picker = Picker::start(dir.path(), &text).await;
    // localhost may also resolve to ::1, where nothing listens: only 127.0.0.1 must be healthy.
    picker
        .wait_for("resolved endpoint healthy", Duration::from_secs(10), |s| {
            is_healthy(s, "llama_8b", sim.addr)
        })
        .await;
}

/// SGLang names, read end to end, and the recovery path: errors turn the endpoint unhealthy,
/// `healthy_after` good pages bring it back.
#[tokio::test]
async fn other_dialects_failures_and_recovery() {
    let sglang_page = "# TYPE sglang:num_queue_reqs gauge\n\
                       sglang:num_queue_reqs{model_name=\"q\"} 4\n\
                       sglang:num_running_reqs{model_name=\"q\"} 9\n\
                       sglang:token_usage{model_name=\"q\"} 0.5\n\
                       sglang:cache_config_info{model_name=\"q\",page_size=\"1\"} 1\n";
    let server = ScriptedServer::start(Script::Respond(200, sglang_page.to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        "scrape_interval_ms = 50\nunhealthy_after = 3\nhealthy_after = 4",
        &[PoolConfig {
            name: "qwen_7b",
            model: QWEN,
            endpoints: vec![server.addr],
            extra: "",
        }],
    );
    let mut picker = Picker::start(dir.path(), &text).await;
    let snapshot = picker
        .wait_for("SGLang endpoint healthy", Duration::from_secs(10), |s| {
            is_healthy(s, "qwen_7b", server.addr)
        })
        .await;
    let e = endpoint(&snapshot, "qwen_7b", server.addr).unwrap();
    assert_eq!(
        (e["waiting"].as_u64(), e["running"].as_u64()),
        (Some(4), Some(9))
    );
    assert_eq!(e["kv_cache_usage"], 0.5);
    assert_eq!(e["block_size"], 1);

    server.set(Script::Respond(500, "oops".to_owned()));
    picker
        .wait_for("unhealthy after errors", Duration::from_secs(5), |s| {
            endpoint(s, "qwen_7b", server.addr).is_some_and(|e| e["healthy"] == false)
        })
        .await;

    // A 200 with garbage is no better than an error: more unreadable pages than the four good
    // ones that would bring it back, and it is still unhealthy in a snapshot taken after them.
    server.set(Script::Respond(200, "<html>hello</html>".to_owned()));
    let metrics = picker
        .wait_for_metric(
            "sluice_picker_scrape_failures_total{pool=\"qwen_7b\",reason=\"unreadable\"}",
            Duration::from_secs(10),
            |count| count >= 5.0,
        )
        .await;
    assert!(metrics.contains("reason=\"status\""), "{metrics}");
    let seen = picker.snapshot().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    let snapshot = picker
        .wait_for("a later snapshot", Duration::from_secs(5), |s| {
            s["version"].as_u64().unwrap() > seen
        })
        .await;
    assert!(!is_healthy(&snapshot, "qwen_7b", server.addr));

    server.set(Script::Respond(200, sglang_page.to_owned()));
    picker
        .wait_for("healthy again", Duration::from_secs(10), |s| {
            is_healthy(s, "qwen_7b", server.addr)
        })
        .await;
}

/// A scrape that never ends is skipped by later rounds, not waited for: the other endpoint
/// stays healthy and snapshots keep coming.
#[tokio::test]
async fn a_hanging_endpoint_is_skipped_while_the_others_are_scraped() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), "prompt", &[]).await;
    let hung = ScriptedServer::start(Script::Hang(Duration::from_secs(30)));
    let text = config(
        "scrape_interval_ms = 50\nscrape_timeout_ms = 1000",
        &[llama_pool(vec![sim.addr, hung.addr])],
    );
    let mut picker = Picker::start(dir.path(), &text).await;
    let first = picker
        .wait_for("simulator healthy", Duration::from_secs(10), |s| {
            is_healthy(s, "llama_8b", sim.addr)
        })
        .await;
    picker
        .wait_for_metric(
            "sluice_picker_scrapes_skipped_total{pool=\"llama_8b\"}",
            Duration::from_secs(10),
            |skipped| skipped >= 5.0,
        )
        .await;
    let later = picker.snapshot().await.unwrap();
    assert!(later["version"].as_u64().unwrap() > first["version"].as_u64().unwrap());
    assert!(is_healthy(&later, "llama_8b", sim.addr));
    let stuck = endpoint(&later, "llama_8b", hung.addr).unwrap();
    assert_eq!(stuck["healthy"], false, "{stuck}");
}
