//! Models served by chains of targets: the chain chosen (weights, stickiness, rotation), what
//! sends the request to it, and the answer settled against the target that gave it.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::Arc;

use super::{CHAT, Client, Fakes, KEY, quotas, snapshot};
use crate::config::Config;
use crate::exchange::{Configured, RecordKey};
use crate::targets::{AttemptOutcome, CLUSTER_HEADER, Failover, PLAN_HEADER, SERVED_BY_HEADER};

fn configured(extra: &str) -> Arc<Configured> {
    let json = format!(
        r#"{{
        "models": {{
            "m": {{"pool": "p"}},
            "gpt": {{"chains": [
                {{"cluster": "gpt_primary", "targets": ["oai", "claude"], "weight": 3}},
                {{"cluster": "gpt_canary", "targets": ["local", "oai"], "weight": 1}},
                {{"cluster": "claude", "targets": ["claude"], "weight": 0}}
            ], "sticky": "user"}}
        }},
        "targets": {{
            "oai": {{"provider": "openai", "model": "gpt-4o"}},
            "claude": {{"provider": "anthropic", "model": "claude-sonnet-4-5"}},
            "local": {{"pool": "p"}}
        }},
        "picking": {{"picker_cluster": "picker"}}
        {extra}}}"#
    );
    Arc::new(Configured::new(
        Config::from_json(json.as_bytes()).unwrap(),
        0,
    ))
}

fn gpt(user: &str) -> String {
    format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"hi"}}],"max_tokens":20,"user":"{user}"}}"#
    )
}

fn target_index(configured: &Configured, name: &str) -> usize {
    configured
        .config
        .targets
        .as_ref()
        .unwrap()
        .index_of(name)
        .unwrap()
}

#[test]
fn a_request_goes_to_its_chains_cluster_with_the_plan() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    assert!(client.post(CHAT, &[], &gpt("alice")));
    let cluster = client.upstream_header(CLUSTER_HEADER).unwrap().to_owned();
    let plan = client.upstream_header(PLAN_HEADER).unwrap();
    match cluster.as_str() {
        "gpt_primary" => assert_eq!(plan, "api=chat;targets=oai,claude"),
        "gpt_canary" => assert_eq!(plan, "api=chat;targets=local,oai"),
        other => panic!("a standby was chosen: {other}"),
    }
    let record = client.record(RecordKey::Failover).unwrap();
    assert_eq!(record["chain"], cluster.as_str());
    assert_eq!(record["choice"], "weighted");
}

#[test]
fn a_user_stays_on_one_chain_and_users_spread_by_weight() {
    let fakes = Fakes::default();
    let configured = configured("");
    let mut primary = 0;
    for user in 0..400 {
        let user = format!("user-{user}");
        let mut first = None;
        for _ in 0..3 {
            let mut client = Client::new(&fakes, Some(configured.clone()));
            assert!(client.post(CHAT, &[], &gpt(&user)));
            let cluster = client.upstream_header(CLUSTER_HEADER).unwrap().to_owned();
            assert_eq!(
                *first.get_or_insert_with(|| cluster.clone()),
                cluster,
                "{user} moved"
            );
        }
        if first.as_deref() == Some("gpt_primary") {
            primary += 1;
        }
    }
    // Weights 3:1 over 400 users: 300 expected.
    assert!(
        (260..=340).contains(&primary),
        "{primary} of 400 on the primary"
    );
}

#[test]
fn a_chain_whose_first_target_is_out_of_rotation_is_not_chosen() {
    let fakes = Fakes::default();
    let configured = configured("");
    let now = fakes.now_ms.get();
    let targets = configured.config.targets.as_ref().unwrap();
    for name in ["oai", "local"] {
        let mut table = fakes.health.borrow_mut();
        table.align(targets.fingerprint, targets.targets.len());
        table.record(
            target_index(&configured, name),
            AttemptOutcome::of_status(429, Some(10_000)),
            now,
            &Failover::default(),
        );
    }
    let mut client = Client::new(&fakes, Some(configured.clone()));
    assert!(client.post(CHAT, &[], &gpt("alice")));
    assert_eq!(
        client.upstream_header(CLUSTER_HEADER),
        Some("claude"),
        "the standby"
    );
    assert_eq!(
        client.record(RecordKey::Failover).unwrap()["choice"],
        "rerouted"
    );
    assert_eq!(fakes.counted(crate::exchange::Event::ChainRerouted), 1);
    // Its wait over, the weighted choice is back.
    fakes.now_ms.set(now + 10_000);
    let mut client = Client::new(&fakes, Some(configured));
    assert!(client.post(CHAT, &[], &gpt("alice")));
    assert_ne!(client.upstream_header(CLUSTER_HEADER), Some("claude"));
}

#[test]
fn a_provider_first_chain_picks_no_replica_and_a_pool_first_chain_does() {
    let fakes = Fakes::default();
    *fakes.snapshot.borrow_mut() = Some(snapshot(fakes.now_ms.get()));
    let configured = configured("");
    let mut seen = std::collections::HashSet::new();
    for user in 0..40 {
        let mut client = Client::new(&fakes, Some(configured.clone()));
        assert!(client.post(CHAT, &[], &gpt(&format!("u{user}"))));
        let cluster = client.upstream_header(CLUSTER_HEADER).unwrap().to_owned();
        let picked = client.destination.is_some();
        assert_eq!(
            picked,
            cluster == "gpt_canary",
            "{cluster}: picked {picked}"
        );
        seen.insert(cluster);
    }
    assert_eq!(seen.len(), 2, "both weighted chains were chosen");
}

#[test]
fn client_copies_of_the_chain_headers_are_removed() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    assert!(client.post(
        CHAT,
        &[
            (CLUSTER_HEADER, "admin_cluster"),
            (PLAN_HEADER, "api=chat;targets=x")
        ],
        &gpt("alice"),
    ));
    let cluster = client.upstream_header(CLUSTER_HEADER).unwrap();
    assert!(cluster.starts_with("gpt_"), "{cluster}");
    assert!(
        !client
            .upstream_header(PLAN_HEADER)
            .unwrap()
            .contains("targets=x")
    );
}

/// Sends one admitted request for `gpt` answered with 1 + 1 tokens by `served_by` (if named),
/// then says whether a second request is admitted under a $1 budget.
fn second_admitted_after(served_by: Option<&str>) -> bool {
    let fakes = Fakes::default();
    let limits = r#"{"budgets":[{"period":"day","usd":1}]}"#;
    let prices = r#","prices":{"gpt":{"input":1,"output":1},"claude-sonnet-4-5":{"input":1000000,"output":1000000}}"#;
    let configured = configured(&quotas(limits, prices));
    let auth = format!("Bearer {KEY}");
    let mut client = Client::new(&fakes, Some(configured.clone()));
    assert!(client.post(CHAT, &[("authorization", &auth)], &gpt("alice")));
    if let Some(target) = served_by {
        client.upstream_response_headers = vec![(SERVED_BY_HEADER.to_owned(), target.to_owned())];
    }
    client.respond(
        200,
        "application/json",
        &[r#"{"choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#],
    );
    assert_eq!(
        client.response.header(SERVED_BY_HEADER),
        None,
        "never reaches the client"
    );
    let mut next = Client::new(&fakes, Some(configured));
    next.post(CHAT, &[("authorization", &auth)], &gpt("alice"))
}

#[test]
fn the_answer_settles_at_the_price_of_the_target_that_gave_it_and_the_header_goes() {
    // At the requested model's price two tokens cost next to nothing; at the price of the
    // target that answered ($1 per token) they spend the $1 budget.
    assert!(second_admitted_after(None));
    assert!(!second_admitted_after(Some("claude")));
}

#[test]
fn a_pool_target_under_its_own_model_rewrites_the_request_to_it() {
    let fakes = Fakes::default();
    let json = r#"{
        "models": {
            "m": {"pool": "p"},
            "canary": {"chains": [{"cluster": "p", "targets": ["adapter"]}]}
        },
        "targets": {"adapter": {"pool": "p", "model": "m-lora-v2"}}
    }"#;
    let configured = Arc::new(Configured::new(
        Config::from_json(json.as_bytes()).unwrap(),
        0,
    ));
    let mut client = Client::new(&fakes, Some(configured));
    let body = r#"{"model":"canary","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#;
    assert!(client.post(CHAT, &[], body));
    let sent: serde_json::Value =
        serde_json::from_slice(client.upstream_body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["model"], "m-lora-v2");
    assert_eq!(client.upstream_header(CLUSTER_HEADER), Some("p"));
}
