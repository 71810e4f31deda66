//! The gateway filter driven as Envoy drives it, against the fake host (`host_api::fake`):
//! what reaches the upstream and the client, the metrics and the filter state.

use sluice_core::quota::identity::sha256;
use sluice_wire::{Endpoint, FORMAT, Lora, Pool, Snapshot};

use super::*;
use crate::host_api::fake::{FakeConfig, FakeStream};
use crate::host_api::{BodyStatus, HeadersStatus, Stream};
use crate::state::now_us;

const KEY: &str = "sk-acme";
const CHAT: &str = "/v1/chat/completions";

/// Model `m` in pool `p`, plus `extra` top-level fields.
fn gateway(extra: &str) -> (GatewayFactory, FakeConfig) {
    let json = format!(r#"{{"models":{{"m":{{"pool":"p","context_window":100000}}}}{extra}}}"#);
    let mut init = FakeConfig::default();
    let factory = new_gateway(&mut init, json.as_bytes(), |_, _| {}).unwrap();
    (factory, init)
}

/// `quotas` for tenant `acme` (key `KEY`) with `limits`.
fn quotas(limits: &str) -> String {
    let key: String = sha256(KEY).iter().map(|b| format!("{b:02x}")).collect();
    format!(
        r#","quotas":{{"keys":[{{"sha256":"{key}","tenant":"acme"}}],"tenants":{{"acme":{{"limits":{limits}}}}}}}"#
    )
}

fn chat(content: &str, extra: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}}}],"max_tokens":20{extra}}}"#,
        serde_json::to_string(content).unwrap()
    )
}

/// One stream through the filter, as Envoy runs it.
struct Exchange {
    filter: GatewayFilter,
    stream: FakeStream,
    /// What the client received of the upstream's response body.
    delivered: Vec<u8>,
}

impl Exchange {
    fn new(factory: &GatewayFactory) -> Self {
        Self {
            filter: factory.gateway_filter(),
            stream: FakeStream::default(),
            delivered: Vec::new(),
        }
    }

    /// Sends the request; true when it went upstream (not answered by the filter).
    fn post(&mut self, path: &str, body: &str) -> bool {
        self.post_as(KEY, path, body)
    }

    /// `post` with the API key `key`.
    fn post_as(&mut self, key: &str, path: &str, body: &str) -> bool {
        let s = &mut self.stream;
        s.set_request_header(":method", b"POST");
        s.set_request_header(":path", path.as_bytes());
        s.set_request_header("content-type", b"application/json");
        s.set_request_header("authorization", format!("Bearer {key}").as_bytes());
        if self.filter.on_request_headers(s, false) != HeadersStatus::StopIteration {
            return s.replies.is_empty();
        }
        if !s.replies.is_empty() {
            return false;
        }
        s.receive_request_body(body.as_bytes());
        let status = self.filter.on_request_body(s, true);
        status == BodyStatus::Continue && s.replies.is_empty()
    }

    /// The upstream answers with `chunks`, one body callback each.
    fn respond(&mut self, content_type: &str, chunks: &[&str]) {
        let s = &mut self.stream;
        s.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), content_type.as_bytes().to_vec()),
        ];
        self.filter.on_response_headers(s, false);
        for (i, chunk) in chunks.iter().enumerate() {
            let end = i + 1 == chunks.len();
            s.received_response = vec![chunk.as_bytes().to_vec()];
            match self.filter.on_response_body(s, end) {
                BodyStatus::Continue => {
                    for part in s
                        .buffered_response
                        .drain(..)
                        .chain(s.received_response.drain(..))
                    {
                        self.delivered.extend(part);
                    }
                }
                BodyStatus::StopIterationAndBuffer => {
                    let received = std::mem::take(&mut s.received_response);
                    s.buffered_response.extend(received);
                }
                BodyStatus::StopIterationNoBuffer => break,
            }
        }
        self.filter.on_stream_complete(s);
    }

    fn counted(&self, config: &FakeConfig, metric: &str) -> u64 {
        let (_, id, _) = &config.metrics[metric];
        self.stream
            .counters
            .iter()
            .filter(|((metric, _), _)| metric == id)
            .map(|(_, n)| n)
            .sum()
    }

    fn state(&self, key: &str) -> serde_json::Value {
        serde_json::from_slice(&self.stream.filter_state[key]).unwrap()
    }
}

fn snapshot() -> Snapshot {
    let endpoint = |address: &str, waiting| Endpoint {
        address: address.into(),
        healthy: true,
        waiting,
        running: 1,
        kv_cache_usage: 0.2,
        block_size: 16,
        lora: Lora::default(),
        metrics_age_ms: 10,
    };
    Snapshot {
        format: FORMAT,
        version: 1,
        taken_at_unix_ms: now_us() / 1000,
        scrape_interval_ms: 50,
        pools: vec![Pool {
            name: "p".into(),
            model: "m".into(),
            endpoints: vec![endpoint("10.0.0.1:80", 0), endpoint("10.0.0.2:80", 5)],
        }],
    }
}

#[test]
fn a_chat_request_is_routed_to_the_picked_replica_and_counted() {
    let (factory, config) = gateway(r#","picking":{"fallbacks":1}"#);
    factory.shared.state.set_snapshot(snapshot());
    let mut exchange = Exchange::new(&factory);
    exchange
        .stream
        .set_request_header("x-sluice-model", b"spoofed");
    assert!(exchange.post(CHAT, &chat("Hi", "")));
    let s = &exchange.stream;
    assert_eq!(s.request_header("x-sluice-model"), Some(&b"m"[..]));
    assert_eq!(s.route_cache_clears, 1);
    assert_eq!(s.override_host, Some(("10.0.0.1:80".to_owned(), false)));
    assert_eq!(
        s.request_header(filter::DESTINATION_ENDPOINT_HEADER),
        Some(&b"10.0.0.1:80,10.0.0.2:80"[..]),
        "the ranked fallbacks stay in the header for retries"
    );
    exchange.respond(
        "application/json",
        &[r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"}}],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#],
    );
    assert!(String::from_utf8_lossy(&exchange.delivered).contains("Hello"));
    let tokens = exchange.state("sluice.tokens");
    assert_eq!(tokens["input"], 9);
    assert_eq!(tokens["output"], 2);
    assert_eq!(tokens["source"], "reported");
    assert_eq!(exchange.counted(&config, "sluice_picks_total"), 1);
    assert_eq!(
        exchange.counted(&config, "sluice_internal_headers_removed_total"),
        1
    );
    assert_eq!(exchange.counted(&config, "sluice_tokens_total"), 11);
    let (_, requests, labels) = &config.metrics["sluice_requests_total"];
    assert_eq!(
        labels,
        &[
            "sluice_api",
            "sluice_http_status_class",
            "gen_ai_request_model"
        ]
    );
    let key = (
        *requests,
        vec!["chat".to_owned(), "2xx".to_owned(), "m".to_owned()],
    );
    assert_eq!(
        exchange.stream.counters.get(&key),
        Some(&1),
        "{:?}",
        exchange.stream.counters
    );
    let (_, duration, _) = &config.metrics["gen_ai_server_request_duration_microseconds"];
    assert!(
        exchange
            .stream
            .histograms
            .keys()
            .any(|(id, _)| id == duration)
    );
}

#[test]
fn the_request_over_the_tenants_limit_gets_a_429_and_is_counted_across_workers() {
    let (factory, config) = gateway(&quotas(r#"{"requests_per_minute":1}"#));
    let mut first = Exchange::new(&factory);
    assert!(first.post(CHAT, &chat("Hi", "")));
    // Another worker thread, same process memory.
    let second = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut second = Exchange::new(&factory);
                assert!(!second.post(CHAT, &chat("Hi", "")));
                second.stream.replies.clone()
            })
            .join()
            .unwrap()
    });
    let (status, headers, body, _) = &second[0];
    assert_eq!(*status, 429);
    assert!(
        headers.iter().any(|(name, _)| name == "retry-after"),
        "{headers:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    let mut third = Exchange::new(&factory);
    assert!(!third.post(CHAT, &chat("Hi", "")));
    let (_, rejected, labels) = &config.metrics["sluice_quota_rejected_total"];
    assert_eq!(labels, &["reason"]);
    assert_eq!(
        third
            .stream
            .counters
            .get(&(*rejected, vec!["requests".to_owned()])),
        Some(&1)
    );
}

fn sse(content: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"model":"m","choices":[{"index":0,"delta":{"content":content}}]})
    )
}

#[test]
fn a_guardrail_redacts_an_address_split_across_stream_chunks() {
    let (factory, config) = gateway(r#","guardrails":{}"#);
    let mut exchange = Exchange::new(&factory);
    assert!(exchange.post(CHAT, &chat("Hi", r#","stream":true"#)));
    let (first, second) = (sse("Write to jane@exa"), sse("mple.com today."));
    let done = "data: [DONE]\n\n";
    exchange.respond("text/event-stream", &[&first, &second, done]);
    let text = String::from_utf8(exchange.delivered.clone()).unwrap();
    assert!(!text.contains("jane@"), "{text}");
    assert!(!text.contains("example.com"), "{text}");
    assert!(text.contains("today."), "{text}");
    assert!(text.ends_with(done), "{text}");
    let record = exchange.state("sluice.guardrails");
    assert_eq!(record["policy"], "default");
    assert!(
        record["response"]
            .as_object()
            .is_some_and(|r| !r.is_empty()),
        "{record}"
    );
    assert!(exchange.counted(&config, "sluice_guardrail_hits_total") >= 1);
}

#[test]
fn a_redaction_the_host_refuses_fails_the_response_closed() {
    let (factory, config) = gateway(r#","guardrails":{}"#);
    let mut exchange = Exchange::new(&factory);
    assert!(exchange.post(CHAT, &chat("Hi", "")));
    exchange.stream.refuse.push("response_body");
    exchange.respond(
        "application/json",
        &[r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"Write to jane@example.com today."}}],"usage":{"prompt_tokens":7,"completion_tokens":6}}"#],
    );
    assert!(
        exchange.delivered.is_empty(),
        "nothing of the upstream's body went out"
    );
    let (status, _, body, details) = exchange.stream.replies.last().unwrap();
    assert_eq!(*status, 500);
    assert_eq!(details, "sluice_guard_failed_closed");
    let body = String::from_utf8_lossy(body);
    assert!(!body.contains("jane@"), "{body}");
    assert_eq!(
        exchange.counted(&config, "sluice_guardrail_block_failures_total"),
        1
    );
    assert_eq!(
        exchange.counted(&config, "sluice_requests_failed_closed_total"),
        1
    );
}

#[test]
fn a_request_edit_the_host_refuses_fails_the_request_closed() {
    let (factory, config) = gateway("");
    let mut exchange = Exchange::new(&factory);
    let s = &mut exchange.stream;
    s.set_request_header(":method", b"POST");
    s.set_request_header(":path", CHAT.as_bytes());
    s.set_request_header("content-type", b"application/json");
    let held = exchange.filter.on_request_headers(s, false);
    assert_eq!(held, HeadersStatus::StopIteration);
    // The model header cannot be set: the request must not go on unrouted.
    s.refuse.push("set_request_header");
    s.receive_request_body(chat("Hi", "").as_bytes());
    let status = exchange.filter.on_request_body(s, true);
    assert_eq!(status, BodyStatus::StopIterationNoBuffer);
    let (status, _, body, _) = s.replies.last().unwrap();
    assert_eq!(*status, 500);
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert_eq!(
        exchange.counted(&config, "sluice_requests_failed_closed_total"),
        1
    );
}

#[test]
fn a_configuration_with_an_unknown_field_is_rejected_naming_it() {
    let mut init = FakeConfig::default();
    let error = new_gateway(&mut init, br#"{"routing":{"modle_header":"x"}}"#, |_, _| {})
        .err()
        .unwrap();
    assert!(error.contains("routing.modle_header"), "{error}");
}

#[test]
fn the_picker_snapshot_is_fetched_on_the_tick_and_shared() {
    let (factory, mut config) = gateway(r#","picking":{"picker_cluster":"sluice_picker"}"#);
    factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
    let (id, cluster, headers) = config.callouts[0].clone();
    assert_eq!(cluster, "sluice_picker");
    assert!(headers.contains(&(":path".to_owned(), sluice_wire::PATH.as_bytes().to_vec())));
    let encoded = snapshot().encode().unwrap();
    let answer = CalloutResponse {
        outcome: crate::host_api::CalloutOutcome::Success,
        headers: vec![(&b":status"[..], &b"200"[..])],
        body: vec![&encoded[..]],
    };
    factory.on_http_callout_done(&mut config, id, &answer);
    let held = sluice_core::exchange::SnapshotSource::snapshot(factory.shared.state.as_ref());
    assert_eq!(held.unwrap().pools[0].endpoints.len(), 2);
}

/// Flow control with one seat: one request at a time per replica, and of the snapshot's two
/// replicas only the first is idle (the second serves other Envoys' requests past its
/// capacity). `extra` adds fields to `flow_control`.
fn flow_gateway(extra: &str) -> (GatewayFactory, FakeConfig) {
    let (factory, config) = gateway(&format!(
        r#","picking":{{}},"flow_control":{{"endpoint_capacity":1,"max_waiting_per_endpoint":0{extra}}}"#
    ));
    let mut snapshot = snapshot();
    snapshot.pools[0].endpoints[0].running = 0;
    factory.shared.state.set_snapshot(snapshot);
    (factory, config)
}

const COMPLETION: &str = r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"}}],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#;

/// Sends the request and checks it is held: stopped with its body buffered, no reply, not
/// resumed, registered for its wake-up.
fn post_held(factory: &GatewayFactory, content: &str) -> Exchange {
    let mut exchange = Exchange::new(factory);
    let s = &mut exchange.stream;
    s.set_request_header(":method", b"POST");
    s.set_request_header(":path", CHAT.as_bytes());
    s.set_request_header("content-type", b"application/json");
    assert_eq!(
        exchange.filter.on_request_headers(s, false),
        HeadersStatus::StopIteration
    );
    s.receive_request_body(chat(content, "").as_bytes());
    assert_eq!(
        exchange.filter.on_request_body(s, true),
        BodyStatus::StopIterationAndBuffer,
        "held: headers and body stay buffered"
    );
    assert!(s.replies.is_empty(), "{:?}", s.replies);
    assert_eq!(s.decoding_continued, 0);
    assert_eq!(s.override_host, None, "picked only when released");
    assert_eq!(
        s.request_header("x-sluice-model"),
        Some(&b"m"[..]),
        "its edits are applied before it waits"
    );
    assert!(s.scheduled().is_empty());
    exchange
}

#[test]
fn a_held_request_is_released_on_its_own_scheduler_when_another_worker_frees_the_seat() {
    let (factory, config) = flow_gateway("");
    let mut first = Exchange::new(&factory);
    assert!(first.post(CHAT, &chat("one", "")));
    assert_eq!(first.state("sluice.flow")["outcome"], "admitted");
    let mut second = post_held(&factory, "two");
    assert_eq!(second.counted(&config, "sluice_flow_held_total"), 1);
    let (_, waiting, labels) = &config.metrics["sluice_flow_waiting"];
    assert_eq!(labels, &["band", "fairness_id"]);
    let series = (*waiting, vec!["default".to_owned(), "_".to_owned()]);
    assert_eq!(second.stream.gauges.get(&series), Some(&1));
    assert_eq!(factory.shared.state.flow.registered(), (1, 0));

    // The first request ends on another worker: its seat goes to the held one, whose own
    // scheduler is committed (from that worker).
    std::thread::scope(|scope| {
        scope
            .spawn(|| first.respond("application/json", &[COMPLETION]))
            .join()
            .unwrap();
    });
    assert_eq!(
        second.stream.scheduled(),
        vec![crate::state::RELEASED_EVENT]
    );

    // Envoy runs the event on the held stream's worker: it is picked and resumed.
    second
        .filter
        .on_scheduled(&mut second.stream, crate::state::RELEASED_EVENT);
    let s = &second.stream;
    assert_eq!(s.decoding_continued, 1);
    assert!(s.replies.is_empty());
    assert_eq!(s.override_host, Some(("10.0.0.1:80".to_owned(), false)));
    assert!(
        s.request_header(filter::DESTINATION_ENDPOINT_HEADER)
            .is_some()
    );
    let record = second.state("sluice.flow");
    assert_eq!(record["outcome"], "released", "{record}");
    assert_eq!(record["band"], "default");
    assert_eq!(second.counted(&config, "sluice_flow_released_total"), 1);
    assert_eq!(s.gauges.get(&series), Some(&0), "no longer waiting");
    let (_, wait_time, _) = &config.metrics["sluice_flow_wait_time_microseconds"];
    assert_eq!(s.histograms[&(*wait_time, series.1.clone())].len(), 1);
    assert_eq!(factory.shared.state.flow.registered(), (0, 0));

    // A second event (none is sent, but Envoy could deliver a stale one) does nothing.
    second
        .filter
        .on_scheduled(&mut second.stream, crate::state::RELEASED_EVENT);
    assert_eq!(second.stream.decoding_continued, 1);
    second.respond("application/json", &[COMPLETION]);
    let state = factory.shared.state.flow.state("p").unwrap();
    assert_eq!(
        (state.active(), state.held()),
        (0, 0),
        "every seat given back"
    );
}

#[test]
fn a_stream_that_ends_while_held_leaves_the_queue_and_is_never_woken() {
    let (factory, config) = flow_gateway("");
    let mut first = Exchange::new(&factory);
    assert!(first.post(CHAT, &chat("one", "")));
    let mut gone = post_held(&factory, "two");
    let mut third = post_held(&factory, "three");
    assert_eq!(factory.shared.state.flow.registered(), (2, 0));

    // The second's client disconnects: Envoy completes (then destroys) its stream.
    gone.filter.on_stream_complete(&mut gone.stream);
    assert_eq!(gone.state("sluice.flow")["outcome"], "left");
    assert_eq!(gone.counted(&config, "sluice_flow_abandoned_total"), 1);
    assert_eq!(factory.shared.state.flow.registered(), (1, 0));
    let scheduled = gone.stream.scheduled();
    drop(gone);

    first.respond("application/json", &[COMPLETION]);
    assert!(scheduled.is_empty());
    assert_eq!(
        third.stream.scheduled(),
        vec![crate::state::RELEASED_EVENT],
        "the seat goes to the next held request"
    );
    third
        .filter
        .on_scheduled(&mut third.stream, crate::state::RELEASED_EVENT);
    assert_eq!(third.stream.decoding_continued, 1);
}

#[test]
fn a_stream_destroyed_while_held_unregisters_before_its_scheduler_goes() {
    let (factory, _config) = flow_gateway("");
    let mut first = Exchange::new(&factory);
    assert!(first.post(CHAT, &chat("one", "")));
    let held = post_held(&factory, "two");
    assert_eq!(factory.shared.state.flow.registered(), (1, 0));
    // Destroyed without a completion callback (never seen from Envoy): the registry must not
    // keep its scheduler.
    drop(held);
    assert_eq!(factory.shared.state.flow.registered(), (0, 0));
}

#[test]
fn a_wake_up_that_comes_before_the_stream_registers_is_committed_at_registration() {
    use crate::host_api::fake::FakeScheduler;
    use sluice_core::flow::{Outcome, Woken};
    use std::sync::{Arc, Mutex};

    let (factory, _config) = flow_gateway("");
    let flow = &factory.shared.state.flow;
    // Another worker released ticket 9 between the exchange's queue update and the stream's
    // registration.
    flow.wake(&Woken {
        ticket: 9,
        owner: 0,
        outcome: Outcome::Expired,
    });
    assert_eq!(flow.registered(), (0, 1));
    let committed = Arc::new(Mutex::new(Vec::new()));
    flow.register(9, Box::new(FakeScheduler(Arc::clone(&committed))));
    assert_eq!(
        *committed.lock().unwrap(),
        vec![crate::state::EXPIRED_EVENT]
    );
    assert_eq!(flow.registered(), (1, 0));
    drop(flow.unregister(9));

    // Wake-ups whose stream never registers (it ended first) are bounded.
    for ticket in 100..5000 {
        flow.wake(&Woken {
            ticket,
            owner: 0,
            outcome: Outcome::Released,
        });
    }
    assert_eq!(flow.registered(), (0, 1024));
}

#[test]
fn a_held_request_past_its_time_to_live_is_answered_from_the_tick() {
    let (factory, mut config) =
        flow_gateway(r#","bands":[{"name":"all","priority":0,"ttl_ms":1}]"#);
    let mut first = Exchange::new(&factory);
    assert!(first.post(CHAT, &chat("one", "")));
    let mut held = post_held(&factory, "two");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while held.stream.scheduled().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never expired");
        factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
        std::thread::yield_now();
    }
    assert_eq!(held.stream.scheduled(), vec![crate::state::EXPIRED_EVENT]);
    held.filter
        .on_scheduled(&mut held.stream, crate::state::EXPIRED_EVENT);
    let s = &held.stream;
    assert_eq!(s.decoding_continued, 0);
    let (status, headers, body, _) = s.replies.last().unwrap();
    assert_eq!(*status, 429);
    assert!(headers.iter().any(|(name, _)| name == "retry-after"));
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(held.state("sluice.flow")["outcome"], "expired");
    assert_eq!(held.counted(&config, "sluice_flow_expired_total"), 1);
}

fn answer<'a>(status: &'a [u8], body: &'a [u8]) -> CalloutResponse<'a> {
    CalloutResponse {
        outcome: crate::host_api::CalloutOutcome::Success,
        headers: vec![(&b":status"[..], status)],
        body: vec![body],
    }
}

/// One callout as sent: (id, headers, body).
type Sent = (u64, Vec<(String, Vec<u8>)>, Vec<u8>);

/// The callouts sent so far to `path`.
fn callouts_to(config: &FakeConfig, path: &str) -> Vec<Sent> {
    config
        .callouts
        .iter()
        .zip(&config.callout_bodies)
        .filter(|((_, _, headers), _)| {
            headers.contains(&(":path".to_owned(), path.as_bytes().to_vec()))
        })
        .map(|((id, _, headers), body)| (*id, headers.clone(), body.clone()))
        .collect()
}

fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fn tenancy_snapshot(version: u64, run_time_key: &str) -> Vec<u8> {
    let hash: String = sha256(run_time_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({"version": version, "tenants": [],
        "keys": [{"id": "key_1", "sha256": hash, "tenant": "acme"}]})
    .to_string()
    .into_bytes()
}

#[test]
fn the_tenancy_snapshot_is_pulled_with_its_version_and_the_last_one_stays_on_failure() {
    let (factory, mut config) = gateway(
        &quotas(r#"{"requests_per_minute":100}"#)
            .replace(r#""tenants""#, r#""tenancy":{"refresh_ms":100},"tenants""#),
    );
    let sync = factory.sync.as_ref().unwrap();
    let tenancy = || sluice_core::exchange::TenancySource::tenancy(factory.shared.state.as_ref());
    let gauge = |config: &FakeConfig| {
        let (_, id, _) = config.metrics["sluice_tenancy_version"];
        config.gauges.get(&(id, Vec::new())).copied()
    };
    let failures = |config: &FakeConfig| {
        config.counted(
            config.counter_id("sluice_tenancy_fetch_failures_total"),
            &[],
        )
    };

    factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
    let calls = callouts_to(&config, sluice_core::tenancy::PATH);
    let (id, headers, _) = &calls[0];
    assert_eq!(header(headers, "if-none-match"), None, "nothing held yet");
    assert_eq!(config.callouts[0].1, "sluice_picker");
    let body = tenancy_snapshot(5, "sk-run-time");
    factory.on_http_callout_done(&mut config, *id, &answer(b"200", &body));
    assert_eq!(tenancy().unwrap().version(), 5);
    assert_eq!(gauge(&config), Some(5));

    // Asked again with the version held: unchanged (304), a failure, a refused snapshot: the
    // one in force stays.
    for (status, body, failed) in [
        (&b"304"[..], &b""[..], 0),
        (b"503", b"", 1),
        (b"200", b"{\"version\":6}", 2),
    ] {
        sync.due_now();
        factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
        let calls = callouts_to(&config, sluice_core::tenancy::PATH);
        let (id, headers, _) = calls.last().unwrap();
        assert_eq!(header(headers, "if-none-match"), Some(&b"\"5\""[..]));
        factory.on_http_callout_done(&mut config, *id, &answer(status, body));
        assert_eq!(tenancy().unwrap().version(), 5);
        assert_eq!(failures(&config), failed);
    }
    // A key of the snapshot in force works, beside the configuration's.
    assert!(Exchange::new(&factory).post_as("sk-run-time", CHAT, &chat("Hi", "")));
    assert!(Exchange::new(&factory).post(CHAT, &chat("Hi", "")));
    assert!(!Exchange::new(&factory).post_as("sk-other", CHAT, &chat("Hi", "")));
}

#[test]
fn spend_rows_are_reported_on_the_sync_and_put_back_until_stored() {
    let (factory, mut config) = gateway(&quotas(r#"{"requests_per_minute":100}"#).replace(
        r#""tenants""#,
        r#""tenancy":{"refresh_ms":100},"prices":{"m":{"input":1.0,"output":2.0}},"tenants""#,
    ));
    let sync = factory.sync.as_ref().unwrap();
    // Nothing settled: no sync is sent (only the tenancy fetch).
    factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
    assert!(callouts_to(&config, QUOTA_SYNC).is_empty());

    let mut exchange = Exchange::new(&factory);
    assert!(exchange.post(CHAT, &chat("Hi", "")));
    exchange.respond(
        "application/json",
        &[r#"{"model":"m","choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":1000,"completion_tokens":500}}"#],
    );

    let mut reported = Vec::new();
    for stored in [false, true] {
        sync.due_now();
        factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
        let calls = callouts_to(&config, QUOTA_SYNC);
        let (id, _, body) = calls.last().unwrap().clone();
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(request["entries"], serde_json::json!([]), "no cluster mode");
        reported.push(request["spend"].clone());
        let answer_body =
            serde_json::json!({"totals": [], "epoch": 0, "spend_stored": stored}).to_string();
        factory.on_http_callout_done(&mut config, id, &answer(b"200", answer_body.as_bytes()));
    }
    // Not stored the first time: the same row again the second.
    assert_eq!(reported[0], reported[1]);
    let row = &reported[0][0];
    assert_eq!(row["tenant"], "acme");
    assert!(row["key"].as_str().unwrap().starts_with("config:"));
    assert_eq!(row["model"], "m");
    assert_eq!(
        (row["requests"].as_u64(), row["input_tokens"].as_u64()),
        (Some(1), Some(1000))
    );
    assert_eq!(row["cost_nano_usd"], 2_000_000);
    // Stored: nothing left to report.
    sync.due_now();
    let before = callouts_to(&config, QUOTA_SYNC).len();
    factory.on_scheduled(&mut config, picker_sync::TICK_EVENT);
    assert_eq!(callouts_to(&config, QUOTA_SYNC).len(), before);
}

const QUOTA_SYNC: &str = sluice_core::config::quotas::QUOTA_SYNC_PATH;
