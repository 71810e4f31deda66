//! What a request holds until it ends: quota reservations replaced by the usage, in-flight
//! counts released, the prefix remembered.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{CHAT, Client, Fakes, KEY, chat, configured, quotas, snapshot};
use crate::config::quotas::Window;
use crate::exchange::RecordKey;
use crate::quota::SlotState;
use crate::telemetry::ErrorType;

const LIMITS: &str = r#"{"requests_per_minute":100,"tokens_per_minute":100000}"#;

/// What the tenant's slot counts now: (requests, tokens, in flight).
fn counted(fakes: &Fakes) -> (u64, u64, u32) {
    let slot: SlotState = fakes.slot("t|acme").unwrap();
    let now = fakes.now_ms.get();
    (
        slot.counters[0].used(Window::Minute, now),
        slot.counters[1].used(Window::Minute, now),
        slot.in_flight,
    )
}

fn admitted<'f>(fakes: &'f Fakes, body: &str) -> Client<'f> {
    let mut client = Client::new(fakes, Some(configured(&quotas(LIMITS, ""))));
    let auth = format!("Bearer {KEY}");
    assert!(client.post(CHAT, &[("authorization", &auth)], body));
    client
}

#[test]
fn the_reservation_is_replaced_by_the_usage() {
    let fakes = Fakes::default();
    let mut client = admitted(&fakes, &chat("Hello", ""));
    let (requests, reserved, in_flight) = counted(&fakes);
    assert_eq!((requests, in_flight), (1, 1));
    assert!(
        reserved >= 20,
        "the prompt's estimate and max_tokens: {reserved}"
    );
    client.respond(
        200,
        "application/json",
        &[r#"{"choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":7,"completion_tokens":5}}"#],
    );
    assert_eq!(
        counted(&fakes),
        (1, 12, 0),
        "settled when the response ended"
    );
    client.end(Some(200));
    assert_eq!(counted(&fakes), (1, 12, 0), "and not again at the end");
}

#[test]
fn a_request_that_ends_without_usage_keeps_its_request_count() {
    // Admitted, then refused before it went upstream (every replica is saturated): its tokens
    // come back, its request counts.
    let fakes = Fakes::default();
    *fakes.snapshot.borrow_mut() = Some(snapshot(fakes.now_ms.get()));
    let config = configured(&format!(
        r#","picking":{{"max_waiting_per_endpoint":0}}{}"#,
        quotas(LIMITS, "")
    ));
    let mut client = Client::new(&fakes, Some(config));
    let auth = format!("Bearer {KEY}");
    assert!(!client.post(CHAT, &[("authorization", &auth)], &chat("Hello", "")));
    assert_eq!(client.reply.clone().unwrap().status, 429);
    client.end(None);
    assert_eq!(counted(&fakes), (1, 0, 0));
    assert!(client.records.is_empty());

    // The upstream refused it: nothing was generated.
    let fakes = Fakes::default();
    let mut client = admitted(&fakes, &chat("Hello", ""));
    client.respond(503, "application/json", &[r#"{"error":"overloaded"}"#]);
    assert!(client.record(RecordKey::Tokens).is_none());
    client.end(Some(503));
    assert_eq!(counted(&fakes), (1, 0, 0));
    let observed = fakes.observed.borrow();
    assert_eq!(observed.len(), 1);
    assert_eq!(observed[0].1, None, "no counts for an upstream error");
    assert!(observed[0].2.is_some());

    // The client went away once the request had gone upstream: its prompt is charged (the
    // estimate), its output budget comes back.
    let fakes = Fakes::default();
    let mut client = admitted(&fakes, &chat("Hello", ""));
    client.end(None);
    let estimate = client.record(RecordKey::Tokens).unwrap()["input"]
        .as_u64()
        .unwrap();
    assert!(estimate > 0);
    assert_eq!(counted(&fakes), (1, estimate, 0));
}

#[test]
fn a_stream_cut_short_is_settled_from_what_was_seen() {
    let fakes = Fakes::default();
    let mut client = admitted(&fakes, &chat("Hello", r#","stream":true"#));
    let event = |text: &str| {
        format!(
            "data: {}\n\n",
            serde_json::json!({"choices":[{"index":0,"delta":{"content":text}}],"usage":null})
        )
    };
    let first = event("Once upon a time, ");
    let second = event("there was a gateway.");
    // The end never comes: the upstream cut the stream.
    client.cut = true;
    client.respond(200, "text/event-stream", &[&first, &second, "data: {"]);
    assert!(
        client.record(RecordKey::Tokens).is_none(),
        "not finished yet"
    );
    let _ = client.exchange.on_log(&fakes.ports(), &super::NoInfo);
    let observed = fakes.observed.borrow();
    let (_, counts, error) = &observed[0];
    let counts = counts.as_ref().unwrap();
    assert!(counts.estimated && counts.output > 0, "{counts:?}");
    assert_eq!(*error, Some(ErrorType::Incomplete));
    let (_, tokens, in_flight) = counted(&fakes);
    assert_eq!(tokens, counts.input + counts.output);
    assert_eq!(in_flight, 0);
}

#[test]
fn the_picked_replica_counts_the_request_until_it_ends() {
    let fakes = Fakes::default();
    *fakes.snapshot.borrow_mut() = Some(snapshot(fakes.now_ms.get()));
    let config = configured(r#","picking":{}"#);
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("Tell me a story", "")));
    let chosen = first.destination.clone().unwrap().endpoints[0].clone();
    assert_eq!(fakes.in_flight.borrow()["p"].get(&chosen), 1);
    assert_eq!(fakes.prefixes.borrow().len(), 1, "the prefix is remembered");
    // The same prompt goes where its prefix went.
    let mut second = Client::new(&fakes, Some(config.clone()));
    assert!(second.post(CHAT, &[], &chat("Tell me a story", "")));
    assert_eq!(second.destination.clone().unwrap().endpoints[0], chosen);
    assert_eq!(fakes.in_flight.borrow()["p"].get(&chosen), 2);
    first.end(Some(200));
    second.end(Some(200));
    assert_eq!(fakes.in_flight.borrow()["p"].get(&chosen), 0);
    // A stale snapshot leaves the choice to Envoy and holds nothing.
    fakes.now_ms.set(fakes.now_ms.get() + 60_000);
    let mut third = Client::new(&fakes, Some(config));
    assert!(third.post(CHAT, &[], &chat("Hi", "")));
    assert_eq!(third.destination, None);
    assert_eq!(fakes.counted(crate::exchange::Event::PickFallback), 1);
}
