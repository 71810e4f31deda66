//! Flow control through the exchange: a request past its pool's capacity is held, woken in
//! order as seats free, turned away when it waits too long or its band is full, and leaves the
//! queue when its client goes.

use std::sync::Arc;

use sluice_wire::Snapshot;

use super::{CHAT, Client, Fakes, MESSAGES, chat, configured, snapshot};
use crate::exchange::{Event, RecordKey, flow_tick};
use crate::flow::{Outcome, Woken};

/// One request at a time per replica, and only the first replica of `busy_snapshot` has room:
/// one seat.
fn flow(fields: &str) -> String {
    format!(
        r#","picking":{{}},"flow_control":{{"endpoint_capacity":1,"max_waiting_per_endpoint":0{fields}}}"#
    )
}

const COMPLETION: &str = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;

/// The test snapshot with its first replica idle and the other two serving other Envoys'
/// requests past their capacity.
fn busy_snapshot(now_ms: u64) -> Arc<Snapshot> {
    let mut snapshot = (*snapshot(now_ms)).clone();
    for (at, endpoint) in snapshot.pools[0].endpoints.iter_mut().enumerate() {
        (endpoint.running, endpoint.waiting) = if at == 0 { (0, 0) } else { (4, 2) };
    }
    Arc::new(snapshot)
}

fn fakes() -> Fakes {
    let fakes = Fakes::default();
    *fakes.snapshot.borrow_mut() = Some(busy_snapshot(fakes.now_ms.get()));
    fakes
}

fn released(ticket: u64) -> Woken {
    Woken {
        ticket,
        owner: 7,
        outcome: Outcome::Released,
    }
}

#[test]
fn requests_past_capacity_are_held_and_released_in_order_as_seats_free() {
    let fakes = fakes();
    let config = configured(&flow(""));
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("one", "")));
    assert_eq!(
        first.record(RecordKey::Flow).unwrap(),
        serde_json::json!({"band": "default", "outcome": "admitted", "held_ms": 0})
    );
    assert_eq!(
        first.destination.as_ref().unwrap().endpoints[0],
        "10.0.0.1:80"
    );
    let mut second = Client::new(&fakes, Some(config.clone()));
    assert!(!second.post(CHAT, &[], &chat("two", "")));
    assert!(second.held && second.reply.is_none() && second.destination.is_none());
    assert_eq!(
        second.exchange.held_ticket(),
        Some(2),
        "the ticket the wake-up names"
    );
    assert_eq!(first.exchange.held_ticket(), None);
    assert_eq!(
        second.upstream_header("x-sluice-model"),
        Some("m"),
        "a held request's edits are applied before it waits"
    );
    let mut third = Client::new(&fakes, Some(config));
    assert!(!third.post(CHAT, &[], &chat("three", "")));
    assert!(third.held);
    assert_eq!(fakes.counted(Event::FlowHeld), 2);
    assert!(fakes.woken.borrow().is_empty());

    first.respond(200, "application/json", &[COMPLETION]);
    first.end(Some(200));
    assert_eq!(
        *fakes.woken.borrow(),
        vec![released(2)],
        "the first held goes first"
    );
    assert!(second.woken(Outcome::Released));
    assert!(second.destination.is_some(), "released requests are picked");
    assert_eq!(
        second.exchange.held_ticket(),
        None,
        "released: no longer held"
    );
    assert_eq!(
        second.record(RecordKey::Flow).unwrap()["outcome"],
        "released"
    );
    assert!(third.held, "one seat: the third still waits");

    second.end(Some(200));
    assert_eq!(*fakes.woken.borrow(), vec![released(2), released(3)]);
    assert!(third.woken(Outcome::Released));
    assert!(
        !third.woken(Outcome::Released),
        "a second wake-up does nothing"
    );
    assert_eq!(fakes.counted(Event::FlowReleased), 2);
    assert_eq!(fakes.flow_waits.borrow().len(), 2);
    assert!(
        fakes.flow_gauges.borrow().values().all(|n| *n == 0),
        "each held request was counted in and out once: {:?}",
        fakes.flow_gauges.borrow()
    );
}

#[test]
fn a_request_that_waits_its_time_to_live_is_answered_in_its_apis_format() {
    for (status, path, kind) in [
        (429, CHAT, "requests"),
        (503, CHAT, "server_error"),
        (429, MESSAGES, "rate_limit_error"),
        (503, MESSAGES, "overloaded_error"),
    ] {
        let fakes = fakes();
        let config = configured(&flow(&format!(
            r#","reject_status":{status},"bands":[{{"name":"all","priority":0,"ttl_ms":1000}}]"#
        )));
        let mut first = Client::new(&fakes, Some(config.clone()));
        let headers = [("anthropic-version", "2023-06-01")];
        assert!(first.post(path, &headers, &chat("one", "")));
        let mut held = Client::new(&fakes, Some(config.clone()));
        assert!(!held.post(path, &headers, &chat("two", "")));

        fakes.now_ms.set(fakes.now_ms.get() + 999);
        flow_tick(&fakes.ports(), &config);
        assert!(fakes.woken.borrow().is_empty(), "not yet");
        fakes.now_ms.set(fakes.now_ms.get() + 1);
        *fakes.snapshot.borrow_mut() = Some(busy_snapshot(fakes.now_ms.get()));
        flow_tick(&fakes.ports(), &config);
        let woken = fakes.woken.borrow().clone();
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].outcome, Outcome::Expired);

        assert!(!held.woken(Outcome::Expired));
        let reply = held.reply.clone().unwrap();
        assert_eq!(reply.status, status);
        assert!(reply.headers.contains(&("retry-after", "1".to_owned())));
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        // Both formats name the kind at `error.type`.
        assert_eq!(body["error"]["type"], kind, "{path} {status}: {body}");
        assert_eq!(held.record(RecordKey::Flow).unwrap()["outcome"], "expired");
        held.end(Some(status));
        assert_eq!(fakes.counted(Event::FlowExpired), 1);

        // Its seat was never taken: when the first ends, nobody else is woken.
        first.end(Some(200));
        assert_eq!(fakes.woken.borrow().len(), 1);
        assert_eq!(fakes.flow.borrow()["p"].active(), 0);
    }
}

#[test]
fn a_full_band_turns_requests_away_at_once() {
    let fakes = fakes();
    let config = configured(&flow(
        r#","bands":[{"name":"all","priority":0,"capacity":1}]"#,
    ));
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("one", "")));
    let mut held = Client::new(&fakes, Some(config.clone()));
    assert!(!held.post(CHAT, &[], &chat("two", "")));
    assert!(held.held);
    let mut turned_away = Client::new(&fakes, Some(config));
    assert!(!turned_away.post(CHAT, &[], &chat("three", "")));
    assert!(!turned_away.held);
    let reply = turned_away.reply.clone().unwrap();
    assert_eq!(reply.status, 429);
    assert!(reply.body.contains("rate_limit_exceeded"), "{}", reply.body);
    assert_eq!(
        turned_away.record(RecordKey::Flow).unwrap()["outcome"],
        "overflow"
    );
    assert_eq!(fakes.counted(Event::FlowOverflow), 1);
}

#[test]
fn a_held_request_whose_client_leaves_gives_its_place_up() {
    let fakes = fakes();
    let config = configured(&flow(""));
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("one", "")));
    let mut gone = Client::new(&fakes, Some(config.clone()));
    assert!(!gone.post(CHAT, &[], &chat("two", "")));
    let mut next = Client::new(&fakes, Some(config));
    assert!(!next.post(CHAT, &[], &chat("three", "")));

    gone.end(None);
    assert_eq!(gone.record(RecordKey::Flow).unwrap()["outcome"], "left");
    assert_eq!(fakes.counted(Event::FlowAbandoned), 1);
    assert_eq!(fakes.flow.borrow()["p"].held(), 1);

    first.end(Some(200));
    assert_eq!(
        *fakes.woken.borrow(),
        vec![released(3)],
        "the one that left is skipped"
    );
}

#[test]
fn a_request_released_just_as_its_client_left_gives_its_seat_back() {
    let fakes = fakes();
    let config = configured(&flow(""));
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("one", "")));
    let mut gone = Client::new(&fakes, Some(config.clone()));
    assert!(!gone.post(CHAT, &[], &chat("two", "")));
    let mut next = Client::new(&fakes, Some(config));
    assert!(!next.post(CHAT, &[], &chat("three", "")));
    first.end(Some(200));
    assert_eq!(*fakes.woken.borrow(), vec![released(2)]);
    // The wake-up had not reached it when its stream ended: its seat goes to the next.
    gone.end(None);
    assert_eq!(*fakes.woken.borrow(), vec![released(2), released(3)]);
    assert!(next.woken(Outcome::Released));
    assert_eq!(fakes.flow.borrow()["p"].active(), 1);
}

#[test]
fn a_queue_that_cannot_be_updated_fails_the_request_closed() {
    let fakes = fakes();
    fakes.refuse_flow_updates.set(true);
    let mut client = Client::new(&fakes, Some(configured(&flow(""))));
    assert!(!client.post(CHAT, &[], &chat("one", "")));
    assert_eq!(client.reply.clone().unwrap().status, 500);
    assert_eq!(fakes.counted(Event::FailedClosed), 1);
    assert!(fakes.logged("flow control"));
}

#[test]
fn the_objective_header_picks_the_band_only_where_it_is_trusted() {
    let bands = r#","bands":[{"name":"interactive","priority":10},{"name":"batch","priority":0}],"objectives":{"chat":"interactive"},"default_band":"batch""#;
    for (trusted, band) in [(false, "batch"), (true, "interactive")] {
        let fakes = fakes();
        let config = configured(&flow(&format!(
            r#"{bands},"trust_objective_header":{trusted}"#
        )));
        let mut client = Client::new(&fakes, Some(config));
        let headers = [("x-gateway-inference-objective", "chat")];
        assert!(client.post(CHAT, &headers, &chat("one", "")));
        assert_eq!(client.record(RecordKey::Flow).unwrap()["band"], band);
    }
}

#[test]
fn the_queue_state_lists_each_held_request_with_its_band_and_owner() {
    let fakes = fakes();
    let config = configured(&flow(""));
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[], &chat("one", "")));
    let mut held = Vec::new();
    for prompt in ["two", "three"] {
        let mut client = Client::new(&fakes, Some(config.clone()));
        assert!(!client.post(CHAT, &[], &chat(prompt, "")));
        held.push(client);
    }
    let listed: Vec<(usize, u64, u32)> = fakes.flow.borrow()["p"]
        .held_requests()
        .map(|(band, held)| (band, held.ticket, held.owner))
        .collect();
    assert_eq!(
        listed,
        vec![(0, 2, 7), (0, 3, 7)],
        "what a host checks the requests it holds against"
    );
    first.end(Some(200));
    assert!(held[0].woken(Outcome::Released));
    let listed: Vec<u64> = fakes.flow.borrow()["p"]
        .held_requests()
        .map(|(_, held)| held.ticket)
        .collect();
    assert_eq!(listed, vec![3], "a released request is no longer listed");
}
