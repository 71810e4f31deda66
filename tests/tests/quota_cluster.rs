//! Cluster mode: several Envoy instances, one picker and a real Redis share one tenant's
//! requests-per-minute limit: no instance refuses before the cluster's total reaches it, every
//! instance refuses once its view has caught up, and Redis holds every admission once. Kills
//! Redis mid-test and checks each fail policy (closed: 503 `quota_unavailable`; open: each
//! instance enforces its local view), the metrics that show it, and that sharing resumes once
//! Redis is back on the same port.
//!
//! How far the cluster over-admits under load (the bound in docs/quotas.md) is measured by
//! `make bench` (`bench --only quota-cluster`), not asserted here.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sluice_e2e::both_hosts;
use sluice_e2e::envoy::{Envoy, EnvoyOptions};
use sluice_e2e::gateway::{LLAMA, client};
use sluice_e2e::host::Host;
use sluice_e2e::picker::Picker;
use sluice_e2e::redis::Redis;
use sluice_e2e::simulator::Simulator;

/// The shared limit: requests per minute of every tenant.
const LIMIT: usize = 100;
const SYNC_MS: u64 = 100;
const STALE_AFTER_MS: u64 = 500;

/// The gauge each instance sets to 1 while its view is synced with the cluster.
const SYNCED: &str = "sluice_quota_cluster_synced";
/// How long a test waits for something it polls for (a timeout, not a claim about speed).
const PATIENCE: Duration = Duration::from_secs(20);

struct Cluster {
    // Field order is drop order: the Envoys stop first, the directory goes last.
    envoys: Vec<Envoy>,
    picker: Picker,
    redis: Redis,
    _replica: Simulator,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(host: Host, instances: usize, fail_policy: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-cluster-")
            .tempdir()
            .unwrap();
        let redis = Redis::start(dir.path()).await;
        let args = ["--model", LLAMA].map(String::from);
        let replica = Simulator::start(dir.path(), "llama", &args).await;
        // A picker that serves only the quota sync (no pools to scrape).
        let picker = Picker::start(
            dir.path(),
            &format!("[quota]\nredis_url = \"{}\"\n", redis.url()),
        )
        .await;
        let filter = json!({
            "models": { LLAMA: { "pool": "llama_8b" } },
            "quotas": {
                "identity": { "source": "header", "tenant_header": "x-tenant" },
                "default_tenant": { "limits": { "requests_per_minute": LIMIT } },
                "fail_policy": fail_policy,
                "cluster": { "sync_ms": SYNC_MS, "stale_after_ms": STALE_AFTER_MS }
            }
        });
        let options = EnvoyOptions {
            clusters: vec![
                ("llama_8b".into(), vec![replica.addr]),
                // Unused here, but the shipped config's cluster needs an endpoint.
                ("qwen_7b".into(), vec![replica.addr]),
                ("sluice_picker".into(), vec![picker.addr]),
            ],
            filter_configuration: Some(serde_json::to_string_pretty(&filter).unwrap()),
            ..EnvoyOptions::default()
        };
        let mut envoys = Vec::with_capacity(instances);
        for i in 0..instances {
            let envoy_dir = dir.path().join(format!("envoy-{i}"));
            std::fs::create_dir_all(&envoy_dir).unwrap();
            envoys.push(Envoy::start(host, &envoy_dir, &options).await);
        }
        Self {
            envoys,
            picker,
            redis,
            _replica: replica,
            _dir: dir,
        }
    }

    /// Waits until every instance's `sluice_quota_cluster_synced` gauge reads `value`.
    async fn wait_synced(&self, value: u64) {
        let deadline = Instant::now() + PATIENCE;
        for (i, envoy) in self.envoys.iter().enumerate() {
            loop {
                let got = envoy.stat_now(&envoy.host.stat(SYNCED)).await;
                if got == value {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "envoy {i}: {SYNCED} still {got}, want {value}; picker log:\n{}",
                    self.picker.process.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn chat() -> Value {
    json!({
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    })
}

async fn send(envoy: &Envoy, tenant: &str) -> (u16, Value) {
    let response = client()
        .post(envoy.url("/v1/chat/completions"))
        .header("x-tenant", tenant)
        .json(&chat())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Minute windows start at whole minutes: keep what a test counts inside one.
async fn away_from_a_minute_boundary() {
    sluice_e2e::minute::stay_inside_one(Duration::from_secs(10)).await;
}

fn minute_now() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    (ms / 60_000) as u64
}

/// The cluster total of `tenant`'s requests-per-minute bucket `minute`, as the picker has it in
/// Redis: a sync that reports nothing reads it (the key is the filter's scope, the index of the
/// counter and the window kind).
async fn cluster_total(picker: &Picker, tenant: &str, minute: u64) -> i64 {
    let report = json!({"entries": [{"key": format!("t|{tenant}|0|0"), "window": minute,
        "delta": 0, "prev_delta": 0, "sliding": false, "ttl_ms": 120_000}]});
    let response = client()
        .post(picker.url("/quota/sync"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["totals"][0][0].as_i64().unwrap()
}

/// One tenant's limit, shared: `LIMIT` requests sent one at a time over every instance in turn
/// are all admitted (no instance's view can exceed the true total, so none refuses early).
/// Then each instance is sent requests until it refuses: at the latest once its view has
/// caught up with the total, a sync or two later. Every admission reaches Redis exactly once,
/// and the cluster never admits more than `k × LIMIT`. Returns the admissions and their
/// minute.
async fn share_one_limit(cluster: &Cluster, tenant: &str) -> (usize, u64) {
    away_from_a_minute_boundary().await;
    let minute = minute_now();
    let envoys = &cluster.envoys;
    for i in 0..LIMIT {
        let (status, body) = send_known(&envoys[i % envoys.len()], tenant).await;
        assert_eq!(status, 200, "request {i} of {LIMIT} refused: {body}");
    }
    let mut admitted = LIMIT;
    for envoy in envoys {
        admitted += until_refused(envoy, tenant).await;
    }
    assert!(admitted <= envoys.len() * LIMIT, "{admitted} admitted");
    wait_for_total(cluster, tenant, minute, admitted).await;
    (admitted, minute)
}

/// Sends `tenant`'s requests to `envoy` until it refuses one for the limit; returns how many it
/// admitted first (a view that has not caught up yet).
async fn until_refused(envoy: &Envoy, tenant: &str) -> usize {
    let deadline = Instant::now() + PATIENCE;
    let mut admitted = 0;
    loop {
        let (status, body) = send_known(envoy, tenant).await;
        match status {
            429 => {
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                return admitted;
            }
            200 => admitted += 1,
            other => panic!("unexpected status {other}: {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "{tenant} never refused: {admitted} admitted"
        );
        tokio::time::sleep(Duration::from_millis(SYNC_MS / 2)).await;
    }
}

/// `send`, again while the answer is 503 `quota_unavailable`: each Envoy worker learns on its
/// own tick (at most 100 ms apart) that the view is fresh, so a worker can still refuse for an
/// unknown state just after the synced gauge, which the first worker to tick sets, reads 1.
/// Nothing is counted for such a request.
async fn send_known(envoy: &Envoy, tenant: &str) -> (u16, Value) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = send(envoy, tenant).await;
        if status != 503 {
            return (status, body);
        }
        assert_eq!(body["error"]["code"], "quota_unavailable", "{body}");
        assert!(Instant::now() < deadline, "the view never became known");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Redis holds `admitted` for `tenant` in `minute`; fails if it holds more.
async fn wait_for_total(cluster: &Cluster, tenant: &str, minute: u64, admitted: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let total = cluster_total(&cluster.picker, tenant, minute).await;
        if total >= admitted as i64 {
            assert_eq!(total, admitted as i64, "counted more than admitted");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis has {total} of {admitted} admissions"
        );
        tokio::time::sleep(Duration::from_millis(SYNC_MS)).await;
    }
}

#[both_hosts]
async fn three_instances_share_one_limit_and_fail_closed_without_redis(host: Host) {
    let mut cluster = Cluster::start(host, 3, "closed").await;
    cluster.wait_synced(1).await;

    // Without sharing, every instance would admit up to the limit on its own. The tenant's
    // window must last until it is checked again after the outage.
    sluice_e2e::minute::stay_inside_one(Duration::from_secs(20)).await;
    let (admitted_before, minute) = share_one_limit(&cluster, "shared-before").await;

    // Redis dies: once the view is older than stale_after_ms, every request of a limited
    // tenant gets 503 quota_unavailable, on every instance, and the gauges say so.
    cluster.redis.kill();
    cluster.wait_synced(0).await;
    for envoy in &cluster.envoys {
        for tenant in ["shared-before", "new-during-outage"] {
            // Each worker finds the view stale on its own tick (at most 100 ms after the one
            // that set the gauge): until then it decides on the last view (429 or 200).
            let deadline = Instant::now() + PATIENCE;
            loop {
                let (status, body) = send(envoy, tenant).await;
                if status == 503 {
                    assert_eq!(body["error"]["code"], "quota_unavailable", "{body}");
                    break;
                }
                assert!(
                    [200, 429].contains(&status) && Instant::now() < deadline,
                    "{tenant}: {status} {body}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        envoy
            .stat_at_least(&host.stat("sluice_quota_sync_failures_total"), 1)
            .await;
        envoy
            .stat_at_least(&host.stat("sluice_quota_rejected_total.reason.unknown"), 2)
            .await;
    }
    let metrics = cluster.picker.metrics().await;
    assert!(
        metrics.contains("sluice_picker_quota_redis_up 0"),
        "{metrics}"
    );

    // Redis is back (empty) on the same port: the instances sync again, report what Redis lost
    // again and share the limit: the tenant limited before the outage is limited again. (An
    // instance whose own report is back before the others' sees only that much of theirs until
    // its next sync: it may admit in between, which the totals then count.)
    cluster.redis.restart().await;
    cluster.wait_synced(1).await;
    wait_for_total(&cluster, "shared-before", minute, admitted_before).await;
    let mut admitted = admitted_before;
    for envoy in &mut cluster.envoys {
        admitted += until_refused(envoy, "shared-before").await;
        // Each instance learned of the loss from the store's new epoch.
        envoy
            .process
            .wait_for_line_containing("quota store lost its counts", PATIENCE)
            .await;
    }
    wait_for_total(&cluster, "shared-before", minute, admitted).await;
    share_one_limit(&cluster, "shared-after").await;
}

#[both_hosts]
async fn fail_open_keeps_enforcing_each_local_view_and_reports_it_after_recovery(host: Host) {
    let mut cluster = Cluster::start(host, 2, "open").await;
    cluster.wait_synced(1).await;
    // Each instance refused once in there.
    share_one_limit(&cluster, "shared-by-two").await;

    cluster.redis.kill();
    cluster.wait_synced(0).await;
    away_from_a_minute_boundary().await;
    // Unknown cluster state admits under the open policy, but each instance still counts and
    // enforces what it sees itself: 60 of 60 admitted on each, and past the limit refused.
    let tenant = "during-outage";
    for envoy in &cluster.envoys {
        let answers = join_all((0..60).map(|_| send(envoy, tenant))).await;
        let admitted = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(admitted, 60, "{:?}", answers.first());
    }
    let (first, rest) = cluster.envoys.split_at(1);
    let answers = join_all((0..60).map(|_| send(&first[0], "alone"))).await;
    let admitted = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(admitted, 60);
    let answers = join_all((0..60).map(|_| send(&first[0], "alone"))).await;
    let admitted = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(
        admitted,
        LIMIT - 60,
        "the local view still enforces the limit"
    );
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 429).count(),
        120 - LIMIT
    );
    // Its refusals so far (one while sharing, 20 now) were all for the limit, none for the
    // unknown state: both are counted as they are decided, so they reach Envoy together.
    assert_eq!(
        first[0]
            .stat_at_least(
                &host.stat("sluice_quota_rejected_total.reason.requests"),
                21
            )
            .await,
        21
    );
    assert_eq!(
        first[0]
            .stat_now(&host.stat("sluice_quota_rejected_total.reason.unknown"))
            .await,
        0
    );
    assert_eq!(rest[0].stat_now(&host.stat(SYNCED)).await, 0);

    // Redis is back: what each instance admitted during the outage was kept and is reported
    // now, so the first instance learns the other's 60 and refuses the tenant (120 > 100) long
    // before it could reach the limit on its own (40 more).
    cluster.redis.restart().await;
    cluster.wait_synced(1).await;
    let deadline = Instant::now() + PATIENCE;
    let mut admitted_after = 0;
    loop {
        let (status, body) = send(&first[0], tenant).await;
        match status {
            429 => {
                assert_eq!(body["error"]["code"], "rate_limit_exceeded");
                break;
            }
            200 => admitted_after += 1,
            other => panic!("unexpected status {other}: {body}"),
        }
        assert!(Instant::now() < deadline, "never refused after recovery");
        tokio::time::sleep(Duration::from_millis(SYNC_MS)).await;
    }
    assert!(
        admitted_after < LIMIT - 60,
        "admitted {admitted_after} more: the other instance's share never arrived"
    );
}
