//! The decision fields a request leaves for the access log and traces, through the fake host:
//! who called, what quotas decided, the models, the usage and its cost, the guardrails' rule
//! ids; and never a key or the prompt.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{CHAT, Client, Fakes, KEY, chat, configured, quotas};
use crate::exchange::DecisionField as F;

const LIMITS: &str = r#"{"requests_per_minute":100}"#;
/// USD per million tokens: 2 in, 4 out.
const PRICES: &str = r#","prices":{"m":{"input":2,"output":4}}"#;

#[test]
fn an_answered_request_leaves_who_called_its_models_usage_and_cost() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured(&quotas(LIMITS, PRICES))));
    let auth = format!("Bearer {KEY}");
    assert!(client.post(CHAT, &[("authorization", &auth)], &chat("Hello there", "")));
    client.respond(
        200,
        "application/json",
        &[r#"{"model":"m-v2","choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":7,"completion_tokens":5}}"#],
    );
    client.end(Some(200));
    assert_eq!(client.decision(F::Tenant), Some("acme"));
    assert_eq!(client.decision(F::Quota), Some("admitted"));
    assert_eq!(client.decision(F::Operation), Some("chat"));
    assert_eq!(client.decision(F::Provider), Some("openai"));
    assert_eq!(client.decision(F::Api), Some("chat"));
    assert_eq!(client.decision(F::RequestModel), Some("m"));
    assert_eq!(client.decision(F::ResponseModel), Some("m-v2"));
    assert_eq!(client.decision(F::Target), Some("p"));
    assert_eq!(client.decision(F::InputTokens), Some("7"));
    assert_eq!(client.decision(F::OutputTokens), Some("5"));
    assert_eq!(client.decision(F::CachedTokens), Some("0"));
    // 7 × 2 + 5 × 4 = 34 USD per million tokens.
    assert_eq!(client.decision(F::CostUsd), Some("0.000034"));
    assert_eq!(client.decision(F::TtftMs), None, "not a stream");
    assert_eq!(client.decision(F::QueueWaitMs), None, "no flow control");
    let written: String = client.decisions.iter().map(|r| r.value.clone()).collect();
    assert!(
        !written.contains(KEY) && !written.contains("Hello there"),
        "{written}"
    );
    // Each field once.
    let mut keys: Vec<&str> = client.decisions.iter().map(|r| r.key.name()).collect();
    let count = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), count);
}

#[test]
fn a_refused_key_and_a_limit_leave_their_quota_decision() {
    let fakes = Fakes::default();
    let config = configured(&quotas(r#"{"requests_per_minute":1}"#, ""));
    let mut client = Client::new(&fakes, Some(config.clone()));
    assert!(!client.post(
        CHAT,
        &[("authorization", "Bearer sk-nobody")],
        &chat("Hi", "")
    ));
    client.end(Some(401));
    assert_eq!(client.decision(F::Quota), Some("unauthenticated"));
    assert_eq!(client.decision(F::Tenant), None);
    let auth = format!("Bearer {KEY}");
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    let mut second = Client::new(&fakes, Some(config));
    assert!(!second.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    second.end(Some(429));
    assert_eq!(second.decision(F::Quota), Some("rejected:requests"));
    assert_eq!(second.decision(F::Tenant), Some("acme"));
    assert_eq!(
        second.decision(F::InputTokens),
        None,
        "nothing was generated"
    );
}

#[test]
fn without_quotas_the_decision_says_none_and_nothing_is_priced() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    assert!(client.post(CHAT, &[], &chat("Hi", "")));
    client.respond(
        200,
        "application/json",
        &[r#"{"choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#],
    );
    client.end(Some(200));
    assert_eq!(client.decision(F::Quota), Some("none"));
    assert_eq!(client.decision(F::CostUsd), None);
    assert_eq!(client.decision(F::InputTokens), Some("3"));
}

#[test]
fn guardrail_hits_leave_rule_ids_and_actions_only() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured(r#","guardrails":{}"#)));
    assert!(client.post(CHAT, &[], &chat("mail jane@example.com", "")));
    client.respond(
        200,
        "application/json",
        &[r#"{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#],
    );
    client.end(Some(200));
    let actions = client.decision(F::Guardrails).unwrap();
    assert!(actions.contains(":redact"), "{actions}");
    assert!(!actions.contains("jane"), "{actions}");
}
