//! The upstream filter driven as Envoy drives an upstream HTTP filter, against the fake host
//! (`host_api::fake`): what reaches the target and the client, the records and the metrics.
//! (The targets' health is the process's table, shared by the tests running at once: its own
//! tests are in `state::health`, and the core's cover what an attempt records there.)

use sluice_core::exchange::RecordKey;
use sluice_core::targets::{PLAN_HEADER, SERVED_BY_HEADER};

use super::metrics::TARGET_ATTEMPTS;
use super::*;
use crate::host_api::fake::{FakeConfig, FakeStream};
use crate::host_api::{BodyStatus, HeadersStatus, Stream, StreamFilter};

const CONFIG: &str = r#"{
    "models": {
        "m": {"pool": "p"},
        "gpt": {"chains": [{"cluster": "gpt_chain", "targets": ["oai", "claude", "local"]}]}
    },
    "targets": {
        "oai": {"provider": "openai", "model": "gpt-4o", "api_key": "sk-provider"},
        "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": "ak-provider"},
        "local": {"pool": "p", "model": "m-canary"}
    }
}"#;

const CHAT_BODY: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#;

fn upstream() -> (UpstreamFactory, FakeConfig) {
    let mut init = FakeConfig::default();
    let factory = new_upstream(&mut init, CONFIG.as_bytes(), |_, _| {}).unwrap();
    (factory, init)
}

/// An attempt's request as the downstream filter planned it (`plan`: the targets, in order).
fn planned(attempt: &str, target_metadata: Option<&str>) -> FakeStream {
    let mut stream = FakeStream::request("POST", "/v1/chat/completions");
    for (name, value) in [
        ("content-type", "application/json"),
        ("authorization", "Bearer sk-client-key"),
        (PLAN_HEADER, "api=chat;targets=oai,claude,local"),
        ("x-envoy-attempt-count", attempt),
    ] {
        stream.set_request_header(name, value.as_bytes());
    }
    if let Some(target) = target_metadata {
        stream.host_metadata.insert(
            ("sluice".into(), "target".into()),
            target.as_bytes().to_vec(),
        );
    }
    stream
}

/// Runs the request phases: headers, then the body in one callback. Returns the body status.
fn send_request(filter: &mut UpstreamFilter, stream: &mut FakeStream) -> BodyStatus {
    assert_eq!(
        filter.on_request_headers(stream, false),
        HeadersStatus::StopIteration
    );
    stream.receive_request_body(CHAT_BODY.as_bytes());
    filter.on_request_body(stream, true)
}

fn header(stream: &FakeStream, name: &str) -> String {
    String::from_utf8(stream.request_header(name).unwrap_or_default().to_vec()).unwrap()
}

fn body(stream: &FakeStream) -> serde_json::Value {
    serde_json::from_slice(&stream.request_body().concat()).unwrap()
}

fn failover(stream: &FakeStream) -> serde_json::Value {
    let record = &stream.filter_state[RecordKey::Failover.name()];
    serde_json::from_slice(record).unwrap()
}

#[test]
fn an_attempt_the_downstream_filter_did_not_plan_passes_untouched() {
    let (factory, init) = upstream();
    let mut filter = factory.upstream_filter();
    let mut stream = FakeStream::request("POST", "/v1/chat/completions");
    stream.set_request_header("authorization", b"Bearer k");
    assert_eq!(
        filter.on_request_headers(&mut stream, false),
        HeadersStatus::Continue
    );
    stream.receive_request_body(CHAT_BODY.as_bytes());
    assert_eq!(
        filter.on_request_body(&mut stream, true),
        BodyStatus::Continue
    );
    assert_eq!(header(&stream, "authorization"), "Bearer k");
    stream.response_headers = vec![(":status".into(), b"503".to_vec())];
    assert_eq!(
        filter.on_response_headers(&mut stream, true),
        HeadersStatus::Continue
    );
    filter.on_destroy(&mut stream);
    assert!(stream.filter_state.is_empty());
    assert!(stream.counters.is_empty(), "nothing counted");
    let _ = init;
}

#[test]
fn a_provider_gets_its_model_and_its_own_key_never_the_clients() {
    let (factory, _) = upstream();
    let mut filter = factory.upstream_filter();
    let mut stream = planned("1", Some("oai"));
    assert_eq!(send_request(&mut filter, &mut stream), BodyStatus::Continue);
    assert_eq!(body(&stream)["model"], "gpt-4o");
    assert_eq!(header(&stream, "authorization"), "Bearer sk-provider");
    let length = stream.request_body().concat().len().to_string();
    assert_eq!(header(&stream, "content-length"), length);
    assert!(stream.replies.is_empty());
}

#[test]
fn a_retry_rewrites_the_body_it_gets_whole_in_one_callback() {
    let (factory, _) = upstream();
    let mut filter = factory.upstream_filter();
    // Attempt 3 (the pool target): nothing buffered, the client's body in one callback, the
    // headers as attempt 1 left them.
    let mut stream = planned("3", None);
    stream.set_request_header("authorization", b"Bearer sk-provider");
    assert_eq!(send_request(&mut filter, &mut stream), BodyStatus::Continue);
    assert_eq!(body(&stream)["model"], "m-canary");
    assert!(stream.buffered_request.iter().all(Vec::is_empty));
}

#[test]
fn an_answer_is_recorded_counted_and_named_for_the_downstream_filter() {
    let (factory, init) = upstream();
    let mut filter = factory.upstream_filter();
    let mut stream = planned("1", Some("oai"));
    stream.filter_state.insert(
        RecordKey::Failover.name().to_owned(),
        br#"{"chain":"gpt_chain"}"#.to_vec(),
    );
    send_request(&mut filter, &mut stream);
    stream.response_headers = vec![
        (":status".into(), b"429".to_vec()),
        ("retry-after".into(), b"3".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    assert_eq!(
        filter.on_response_headers(&mut stream, false),
        HeadersStatus::Continue,
        "same API: nothing to hold"
    );
    assert_eq!(stream.response_header(SERVED_BY_HEADER), Some(&b"oai"[..]));
    let record = failover(&stream);
    assert_eq!(record["chain"], "gpt_chain", "{record}");
    assert_eq!(record["attempts"][0]["target"], "oai");
    assert_eq!(record["attempts"][0]["outcome"], "rate_limited");
    let attempts = init.counter_id(TARGET_ATTEMPTS);
    assert_eq!(stream.counted(attempts, &["oai", "rate_limited"]), 1);
    // The body passes as it came.
    stream.received_response = vec![br#"{"error":{"message":"slow down"}}"#.to_vec()];
    assert_eq!(
        filter.on_response_body(&mut stream, true),
        BodyStatus::Continue
    );
    assert_eq!(
        stream.response_body().concat(),
        br#"{"error":{"message":"slow down"}}"#
    );
    // Recorded once: the end adds nothing.
    filter.on_destroy(&mut stream);
    assert_eq!(stream.counted(attempts, &["oai", "rate_limited"]), 1);
}

#[test]
fn an_attempt_that_got_no_response_is_counted_when_it_ends() {
    let (factory, init) = upstream();
    let mut filter = factory.upstream_filter();
    let mut stream = planned("2", Some("claude"));
    stream.filter_state.insert(
        RecordKey::Failover.name().to_owned(),
        br#"{"attempts":[{"target":"oai","outcome":"server_error","status":500}]}"#.to_vec(),
    );
    assert_eq!(
        filter.on_request_headers(&mut stream, false),
        HeadersStatus::StopIteration
    );
    // The connection was refused: Envoy destroys the filter, nothing else.
    filter.on_destroy(&mut stream);
    let attempts = init.counter_id(TARGET_ATTEMPTS);
    assert_eq!(stream.counted(attempts, &["claude", "no_response"]), 1);
    // Envoy refuses filter state there: the record stays as the earlier attempt left it.
    let record = failover(&stream);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1, "{record}");
}

#[test]
fn a_request_that_cannot_go_to_its_target_is_answered_in_the_clients_format() {
    let (factory, _) = upstream();
    let mut filter = factory.upstream_filter();
    // A chat request to the Anthropic target: it needs translation.
    let mut stream = planned("2", Some("claude"));
    let status = send_request(&mut filter, &mut stream);
    let Some((code, _, reply, details)) = stream.replies.first() else {
        // Translation landed: the request went on, rewritten for the target.
        assert_eq!(status, BodyStatus::Continue);
        assert_eq!(header(&stream, "x-api-key"), "ak-provider");
        assert_eq!(header(&stream, "authorization"), "");
        return;
    };
    assert_eq!(status, BodyStatus::StopIterationNoBuffer);
    assert_eq!(*code, 400);
    assert!(String::from_utf8_lossy(reply).contains(r#""error""#));
    assert_eq!(details, super::filter::REPLY_DETAILS);
}

#[test]
fn an_edit_that_does_not_take_answers_500_and_counts_nothing_against_the_target() {
    let (factory, _) = upstream();
    let mut filter = factory.upstream_filter();
    let mut stream = planned("1", Some("oai"));
    stream.refuse.push("set_request_header");
    send_request(&mut filter, &mut stream);
    assert_eq!(stream.replies.first().map(|r| r.0), Some(500));
    // The target was never asked: its end records nothing against it.
    filter.on_destroy(&mut stream);
    assert!(stream.counters.is_empty(), "{:?}", stream.counters);
}

#[test]
fn a_configuration_that_is_not_json_is_refused_naming_the_problem() {
    let mut init = FakeConfig::default();
    let Err(error) = new_upstream(&mut init, b"{", |_, _| {}) else {
        panic!("accepted");
    };
    assert!(error.contains("invalid plugin configuration"), "{error}");
}
