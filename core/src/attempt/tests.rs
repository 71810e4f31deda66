//! The attempt's phases against in-memory ports.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::exchange::{Clock, Configured, HeaderView, Level, Log, RecordKey, TelemetrySink};
use crate::targets::{AttemptOutcome, HealthTable, PLAN_HEADER, SERVED_BY_HEADER};

const NOW: u64 = 1_700_000_000_000;

struct Ports {
    health: RefCell<HealthTable>,
    attempts: RefCell<Vec<(String, &'static str)>>,
    logs: RefCell<Vec<(Level, String)>>,
    now_ms: Cell<u64>,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            health: RefCell::default(),
            attempts: RefCell::default(),
            logs: RefCell::default(),
            now_ms: Cell::new(NOW),
        }
    }
}

impl Clock for Ports {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn now_us(&self) -> u64 {
        self.now_ms.get() * 1000
    }
    fn lag_ms(&self) -> u64 {
        0
    }
}

impl TargetHealthStore for Ports {
    fn update(&self, change: &mut dyn FnMut(&mut HealthTable)) -> bool {
        change(&mut self.health.borrow_mut());
        true
    }
    fn read(&self) -> Option<HealthTable> {
        Some(self.health.borrow().clone())
    }
}

impl TelemetrySink for Ports {
    fn count(&self, _: crate::exchange::Event) {}
    fn quota_standing(&self, _: &str, _: &crate::quota::Standing) {}
    fn guardrail_hits(
        &self,
        _: &crate::guardrails::Guardrails,
        _: crate::guardrails::Direction,
        _: &crate::guardrails::Hits,
    ) {
    }
    fn observe(&self, _: &crate::telemetry::Observation<'_>) {}
    fn flow_held(&self, _: &str, _: &str) {}
    fn flow_waited(&self, _: &str, _: &str, _: u64) {}
    fn count_request(&self, _: crate::telemetry::ApiLabel, _: Option<u16>, _: Option<&str>) {}
    fn target_attempt(&self, target: &str, outcome: &'static str) {
        self.attempts
            .borrow_mut()
            .push((target.to_owned(), outcome));
    }
}

impl Log for Ports {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

impl Ports {
    fn ports(&self) -> AttemptPorts<'_> {
        AttemptPorts {
            clock: self,
            health: self,
            telemetry: self,
            log: self,
        }
    }
}

struct Headers(HashMap<&'static str, String>);

impl HeaderView for Headers {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> Headers {
    Headers(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

fn configured() -> Arc<Configured> {
    let json = r#"{
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
    Arc::new(Configured::new(
        Config::from_json(json.as_bytes()).unwrap(),
        0,
    ))
}

/// A target's index (targets are indexed in name order).
fn index(name: &str) -> usize {
    configured()
        .config
        .targets
        .as_ref()
        .unwrap()
        .index_of(name)
        .unwrap()
}

const CHAT_BODY: &[u8] = br#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#;

fn planned(api: &str, attempt: &str) -> Headers {
    headers(&[
        (PLAN_HEADER, &format!("api={api};targets=oai,claude,local")),
        ("x-envoy-attempt-count", attempt),
        ("authorization", "Bearer sk-client-key"),
    ])
}

#[test]
fn a_request_the_downstream_filter_did_not_plan_passes_untouched() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    let effects = attempt.on_request_headers(
        &ports.ports(),
        &headers(&[("authorization", "Bearer k")]),
        &AttemptInfo::default(),
    );
    assert_eq!(effects, AttemptRequestEffects::default());
    let response = attempt.on_response_headers(&ports.ports(), 503, &headers(&[]));
    assert_eq!(response, AttemptResponseEffects::default());
    assert!(ports.attempts.borrow().is_empty(), "nothing recorded");
}

#[test]
fn a_provider_of_the_clients_api_gets_its_model_and_its_own_key_never_the_clients() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    let effects = attempt.on_request_headers(
        &ports.ports(),
        &planned("chat", "1"),
        &AttemptInfo::default(),
    );
    assert_eq!(effects.next, AttemptNext::ReadBody);
    let effects = attempt.on_request_body(&ports.ports(), CHAT_BODY, true);
    assert_eq!(effects.next, AttemptNext::Continue);
    let body: serde_json::Value = serde_json::from_slice(&effects.body.unwrap()).unwrap();
    assert_eq!(body["model"], "gpt-4o");
    assert!(effects.remove_headers.contains(&"authorization".to_owned()));
    assert!(effects.remove_headers.contains(&"x-api-key".to_owned()));
    assert!(
        effects
            .remove_headers
            .contains(&"accept-encoding".to_owned())
    );
    assert!(
        effects
            .set_headers
            .contains(&("authorization".to_owned(), "Bearer sk-provider".to_owned()))
    );
    assert!(
        effects
            .set_headers
            .contains(&(":path".to_owned(), "/v1/chat/completions".to_owned())),
        "every attempt sets its path: an earlier attempt's stays in the headers otherwise"
    );
}

#[test]
fn the_hosts_metadata_names_the_target_before_the_attempt_number() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    attempt.on_request_headers(
        &ports.ports(),
        &planned("chat", "1"),
        &AttemptInfo {
            host_target: Some("local"),
            previous_record: None,
        },
    );
    let effects = attempt.on_request_body(&ports.ports(), CHAT_BODY, true);
    let body: serde_json::Value = serde_json::from_slice(&effects.body.unwrap()).unwrap();
    assert_eq!(
        body["model"], "m-canary",
        "the pool target's own model (a canary adapter)"
    );
    // What an earlier attempt (a provider) may have left goes: its key, its path.
    assert_eq!(effects.remove_headers, ["authorization", "x-api-key"]);
    assert_eq!(
        effects.set_headers,
        [(":path".to_owned(), "/v1/chat/completions".to_owned())]
    );
}

#[test]
fn without_metadata_the_attempt_number_picks_the_plans_target() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    attempt.on_request_headers(
        &ports.ports(),
        &planned("chat", "3"),
        &AttemptInfo::default(),
    );
    let effects = attempt.on_request_body(&ports.ports(), CHAT_BODY, true);
    let body: serde_json::Value = serde_json::from_slice(&effects.body.unwrap()).unwrap();
    assert_eq!(body["model"], "m-canary");
}

#[test]
fn a_target_the_configuration_does_not_have_is_answered_500_in_the_clients_format() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    let effects = attempt.on_request_headers(
        &ports.ports(),
        &headers(&[(PLAN_HEADER, "api=messages;targets=gone")]),
        &AttemptInfo::default(),
    );
    let AttemptNext::Reply(reply) = effects.next else {
        panic!("expected a reply, got {:?}", effects.next)
    };
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains(r#""type":"error""#), "{}", reply.body);
}

#[test]
fn an_api_that_does_not_translate_is_a_400_naming_it() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    attempt.on_request_headers(
        &ports.ports(),
        &planned("embeddings", "2"),
        &AttemptInfo::default(),
    );
    let effects = attempt.on_request_body(&ports.ports(), br#"{"model":"gpt","input":"x"}"#, true);
    let AttemptNext::Reply(reply) = effects.next else {
        panic!("expected a reply")
    };
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("Embeddings API does not translate"),
        "{}",
        reply.body
    );
}

#[test]
fn a_429_with_retry_after_takes_the_target_out_and_is_recorded() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    attempt.on_request_headers(
        &ports.ports(),
        &planned("chat", "1"),
        &AttemptInfo::default(),
    );
    attempt.on_request_body(&ports.ports(), CHAT_BODY, true);
    let effects =
        attempt.on_response_headers(&ports.ports(), 429, &headers(&[("retry-after", "3")]));
    assert!(
        effects
            .set_headers
            .contains(&(SERVED_BY_HEADER.to_owned(), "oai".to_owned()))
    );
    let record = effects
        .records
        .iter()
        .find(|r| r.key == RecordKey::Failover)
        .unwrap();
    assert!(
        record.value.contains(r#""outcome":"rate_limited""#),
        "{}",
        record.value
    );
    assert!(record.value.contains("out_of_rotation"), "{}", record.value);
    let oai = index("oai");
    let health = ports.health.borrow();
    assert!(!health.available(oai, NOW + 2_999));
    assert!(health.available(oai, NOW + 3_000));
    assert_eq!(
        ports.attempts.borrow().as_slice(),
        &[("oai".to_owned(), "rate_limited")]
    );
    drop(health);
    assert_eq!(
        attempt.on_complete(&ports.ports()),
        Vec::new(),
        "recorded once"
    );
}

#[test]
fn an_attempt_that_got_no_response_is_a_failure_of_its_target() {
    let ports = Ports::default();
    let mut attempt = Attempt::new(configured());
    attempt.on_request_headers(
        &ports.ports(),
        &planned("chat", "2"),
        &AttemptInfo {
            host_target: None,
            previous_record: Some(
                r#"{"attempts":[{"target":"oai","outcome":"server_error","status":500}]}"#,
            ),
        },
    );
    let records = attempt.on_complete(&ports.ports());
    assert_eq!(
        records[0].value,
        r#"{"attempts":[{"target":"oai","outcome":"server_error","status":500},{"target":"claude","outcome":"no_response"}]}"#
    );
    assert_eq!(
        ports
            .health
            .borrow()
            .entry(index("claude"))
            .unwrap()
            .consecutive_failures,
        1
    );
    let _ = AttemptOutcome::NoResponse;
}
