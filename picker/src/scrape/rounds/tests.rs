//! The rounds' timing on paused tokio time: every wait is virtual, so these tests assert exact
//! schedules without depending on how fast the machine is. Pages come from a scripted source
//! that answers, fails or hangs (as the HTTP client does against a server that never answers:
//! until its scrape timeout) in virtual time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use reqwest::Url;
use sluice_wire::Endpoint;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::Rounds;
use crate::config::Config;
use crate::health::HealthPolicy;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::scrape::client::{Fetch, FetchError, Page};
use crate::snapshot::{NEVER_SCRAPED_AGE_MS, Publisher};

const INTERVAL_MS: u64 = 50;
/// The client's scrape timeout, which ends a scrape of a server that never answers.
const TIMEOUT: Duration = Duration::from_millis(1_000);

const PAGE: &str = "vllm:num_requests_running{model_name=\"m\"} 3\n\
                    vllm:num_requests_waiting{model_name=\"m\"} 1\n\
                    vllm:kv_cache_usage_perc{model_name=\"m\"} 0.25\n";

const FAST: &str = "127.0.0.1:1";
const HUNG: &str = "127.0.0.1:2";

/// How an endpoint answers its scrapes.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// A good page after this many milliseconds.
    PageAfter(u64),
    /// An HTTP error status, at once.
    Status(u16),
    /// Nothing: the scrape ends at the client's timeout.
    Hang,
}

/// Each endpoint's current reply (by metrics URL), and how often each was fetched.
#[derive(Default)]
struct Script {
    replies: Mutex<HashMap<String, Reply>>,
    fetches: Mutex<HashMap<String, u32>>,
}

impl Script {
    fn set(&self, address: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(url(address), reply);
    }

    fn fetches(&self, address: &str) -> u32 {
        self.fetches
            .lock()
            .unwrap()
            .get(&url(address))
            .copied()
            .unwrap_or(0)
    }
}

fn url(address: &str) -> String {
    format!("http://{address}/metrics")
}

struct Scripted(Arc<Script>);

impl Fetch for Scripted {
    fn fetch(&self, url: &Url) -> impl Future<Output = Result<Page, FetchError>> + Send {
        let key = url.as_str().to_owned();
        let reply = self.0.replies.lock().unwrap().get(&key).copied();
        *self.0.fetches.lock().unwrap().entry(key).or_default() += 1;
        async move {
            match reply {
                Some(Reply::PageAfter(ms)) => {
                    sleep(Duration::from_millis(ms)).await;
                    Ok(Page::new(Bytes::from_static(PAGE.as_bytes())))
                }
                Some(Reply::Status(status)) => Err(FetchError::Status(status)),
                Some(Reply::Hang) | None => {
                    sleep(TIMEOUT).await;
                    Err(FetchError::Timeout)
                }
            }
        }
    }
}

/// Rounds running on one pool of scripted endpoints, from `started` on.
struct Running {
    script: Arc<Script>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    started: Instant,
    task: JoinHandle<()>,
}

impl Running {
    fn start(endpoints: &[(&str, Reply)], policy: HealthPolicy) -> Self {
        let list: Vec<String> = endpoints.iter().map(|(a, _)| format!("\"{a}\"")).collect();
        let config = Config::parse(&format!(
            "[[pool]]\nname = \"p\"\nmodel = \"m\"\nendpoints = [{}]\n",
            list.join(", ")
        ))
        .unwrap();
        let registry = Arc::new(Registry::new(&config));
        let addresses = endpoints
            .iter()
            .map(|(a, _)| a.parse::<SocketAddr>().unwrap())
            .collect();
        registry.pools()[0].replace_endpoints(&addresses);
        let script = Arc::new(Script::default());
        for (address, reply) in endpoints {
            script.set(address, *reply);
        }
        let metrics = Arc::new(Metrics::new(["p"]));
        let publisher = Arc::new(Publisher::starting_at(1));
        let rounds = Rounds::new(
            registry,
            Arc::clone(&metrics),
            Arc::clone(&publisher),
            Scripted(Arc::clone(&script)),
            policy,
            Duration::from_millis(INTERVAL_MS),
            16,
        );
        // Time stands still until this test waits, so the first round starts at `started`.
        let started = Instant::now();
        let task = tokio::spawn(rounds.run());
        Self {
            script,
            publisher,
            metrics,
            started,
            task,
        }
    }

    /// Waits until `ms` after the start (pick a moment between rounds: rounds start on multiples
    /// of the interval) and returns the latest snapshot's version and the endpoint `address`.
    async fn at(&self, ms: u64, address: &str) -> (u64, Endpoint) {
        sleep_until(self.started + Duration::from_millis(ms)).await;
        let published = self.publisher.latest().expect("a snapshot");
        let endpoint = published.snapshot.pools[0]
            .endpoints
            .iter()
            .find(|e| e.address == address)
            .expect("the endpoint")
            .clone();
        (published.snapshot.version, endpoint)
    }

    /// A sample of the picker's own metrics, 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let text = self.metrics.encode().unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const POLICY: HealthPolicy = HealthPolicy {
    unhealthy_after: 3,
    healthy_after: 2,
};

#[tokio::test(start_paused = true)]
async fn rounds_keep_their_schedule_while_a_scrape_hangs() {
    let rounds = Running::start(&[(FAST, Reply::PageAfter(5)), (HUNG, Reply::Hang)], POLICY);
    // Rounds start at 0, 50, ..., 950 ms: twenty, one per interval, although the first scrape
    // of the hung endpoint has not ended yet.
    let (version, fast) = rounds.at(975, FAST).await;
    assert_eq!(version, 20);
    // The other endpoint was scraped in every round and is as fresh as the last round: its
    // round published as soon as its page was read (the hung endpoint is not waited for).
    assert_eq!(rounds.script.fetches(FAST), 20);
    assert_eq!(fast.metrics_age_ms, 0);
    assert!(fast.healthy);
    assert_eq!((fast.waiting, fast.running), (1, 3));
    // The hung endpoint got one scrape, not one stacked per round; the others were skipped.
    assert_eq!(rounds.script.fetches(HUNG), 1);
    assert_eq!(
        rounds.metric("sluice_picker_scrapes_skipped_total{pool=\"p\"}"),
        19.0
    );
    let (_, hung) = rounds.at(975, HUNG).await;
    assert!(!hung.healthy);
    assert_eq!(hung.metrics_age_ms, NEVER_SCRAPED_AGE_MS);

    // Its scrape ends at the timeout (1 s); the next round scrapes it again.
    rounds.at(1_075, HUNG).await;
    assert_eq!(rounds.script.fetches(HUNG), 2);
    assert_eq!(
        rounds.metric("sluice_picker_scrape_failures_total{pool=\"p\",reason=\"timeout\"}"),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn health_flips_after_n_failures_and_m_successes_in_a_row() {
    let rounds = Running::start(&[(FAST, Reply::PageAfter(0))], POLICY);
    let (version, endpoint) = rounds.at(25, FAST).await;
    assert_eq!(version, 1);
    assert!(endpoint.healthy, "healthy from its first good page");
    assert_eq!(endpoint.metrics_age_ms, 0);

    // Failing from the round at 50 ms on: healthy through two failures, unhealthy at the third
    // (the round at 150 ms). The snapshot says how old the last good load is.
    rounds.script.set(FAST, Reply::Status(500));
    for (at, healthy, age) in [(75, true, 50), (125, true, 100), (175, false, 150)] {
        let (_, endpoint) = rounds.at(at, FAST).await;
        assert_eq!(endpoint.healthy, healthy, "at {at} ms");
        assert_eq!(endpoint.metrics_age_ms, age, "at {at} ms");
        assert_eq!(
            (endpoint.waiting, endpoint.running),
            (1, 3),
            "the last load"
        );
    }

    // Good again from the round at 200 ms: fresh at once, healthy at the second good page.
    rounds.script.set(FAST, Reply::PageAfter(0));
    for (at, healthy) in [(225, false), (275, true)] {
        let (_, endpoint) = rounds.at(at, FAST).await;
        assert_eq!(endpoint.healthy, healthy, "at {at} ms");
        assert_eq!(endpoint.metrics_age_ms, 0, "at {at} ms");
    }
    assert_eq!(
        rounds.metric("sluice_picker_scrape_failures_total{pool=\"p\",reason=\"status\"}"),
        3.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_page_delays_no_snapshot_and_lands_in_the_next_one() {
    // Each page takes 70 ms, longer than an interval. The first round publishes at its
    // deadline (50 ms) without it; the round at 50 ms skips the endpoint, whose scrape is still
    // running; the page arrives at 70 ms and is in the next snapshot (the round at 100 ms,
    // published at its deadline, 150 ms), 80 ms old.
    let rounds = Running::start(&[(FAST, Reply::PageAfter(70))], POLICY);
    let (first, endpoint) = rounds.at(75, FAST).await;
    assert!(!endpoint.healthy);
    assert_eq!(endpoint.metrics_age_ms, NEVER_SCRAPED_AGE_MS);
    let (later, endpoint) = rounds.at(175, FAST).await;
    assert!(later > first);
    assert!(endpoint.healthy);
    assert_eq!(endpoint.metrics_age_ms, 80);
    assert_eq!(rounds.script.fetches(FAST), 2);
    assert_eq!(
        rounds.metric("sluice_picker_scrapes_skipped_total{pool=\"p\"}"),
        2.0
    );
}
