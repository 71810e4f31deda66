//! Phases in every order a stream allows.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::host::Map;
use super::{CHAT, Client, Fakes, KEY, NoInfo, Unread, chat, configured, quotas, snapshot};
use crate::exchange::{
    BodyNext, Event, Exchange, RecordKey, RequestNext, ResponseEffects, ResponseNext,
};
use crate::telemetry::ApiLabel;

const JSON_OK: &str = r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"Hi there."}}],"usage":{"prompt_tokens":7,"completion_tokens":5}}"#;

#[test]
fn a_request_goes_through_every_phase_in_order() {
    let fakes = Fakes::default();
    *fakes.snapshot.borrow_mut() = Some(snapshot(fakes.now_ms.get()));
    let config = configured(&format!(
        r#","picking":{{}},"guardrails":{{}}{}"#,
        quotas(
            r#"{"requests_per_minute":10,"tokens_per_minute":10000}"#,
            ""
        )
    ));
    let mut client = Client::new(&fakes, Some(config));
    let auth = format!("Bearer {KEY}");
    assert!(client.post(CHAT, &[("authorization", &auth)], &chat("Hello", "")));
    // Routed: the key is gone, the model headers and the least loaded replica are set.
    assert_eq!(client.upstream_header("authorization"), None);
    assert_eq!(client.upstream_header("x-sluice-model"), Some("m"));
    assert_eq!(client.upstream_header("x-sluice-base-model"), Some("m"));
    let destination = client.destination.clone().unwrap();
    assert_eq!(destination.endpoints[0], "10.0.0.1:80");
    assert_eq!(
        destination.endpoints.len(),
        3,
        "the first choice and 2 fallbacks"
    );
    assert_eq!(
        destination.header_value(),
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80"
    );
    assert_eq!(fakes.counted(Event::Picked), 1);
    assert_eq!(fakes.counted(Event::QuotaAdmitted), 1);

    client.respond(200, "application/json", &[JSON_OK]);
    // Held whole for the response guard, then passed as it came (nothing to redact).
    assert_eq!(
        client.response.nexts,
        [ResponseNext::Hold, ResponseNext::Continue]
    );
    assert_eq!(client.response.text(), JSON_OK);
    assert_eq!(
        client.response.header("x-ratelimit-limit-requests"),
        Some("10")
    );
    assert_eq!(
        client.response.header("x-ratelimit-remaining-requests"),
        Some("9")
    );
    let tokens = client.record(RecordKey::Tokens).unwrap();
    assert_eq!(
        (&tokens["input"], &tokens["output"], &tokens["source"]),
        (&7.into(), &5.into(), &"reported".into())
    );
    assert_eq!(tokens["tenant"], "acme");

    client.end(Some(200));
    assert_eq!(
        *fakes.requests.borrow(),
        [(ApiLabel::Chat, Some(200), Some("m".to_owned()))]
    );
    assert_eq!(fakes.observed.borrow().len(), 1);
    assert_eq!(
        fakes.in_flight.borrow()["p"].get("10.0.0.1:80"),
        0,
        "released"
    );
}

#[test]
fn a_body_or_a_response_before_the_headers_changes_nothing() {
    let fakes = Fakes::default();
    let ports = fakes.ports();
    let mut exchange = Exchange::new(Some(configured("")), 1);
    assert_eq!(exchange.on_request_body(&ports, 10, false), BodyNext::Pass);
    assert_eq!(exchange.on_request_trailers(), BodyNext::Pass);
    let effects = exchange.on_request_body_complete(&ports, &NoInfo, Ok(b"{}"));
    assert_eq!(effects, Default::default());
    let response = exchange.on_response_headers(&ports, &Map(vec![]), false);
    assert_eq!(
        response
            .records
            .iter()
            .map(|r| (r.key.name(), r.value.as_str()))
            .collect::<Vec<_>>(),
        [("sluice.quota", "none")],
        "only the decision record, written with the response: nothing more will be decided"
    );
    assert_eq!(
        response,
        ResponseEffects {
            records: response.records.clone(),
            ..Default::default()
        }
    );
    let response = exchange.on_response_body(&ports, &mut Unread, true);
    assert_eq!(response, Default::default());
    assert_eq!(exchange.on_log(&ports, &NoInfo), [], "written once");
    assert_eq!(
        *fakes.requests.borrow(),
        [(ApiLabel::Other, Some(503), None)],
        "still counted, with what Envoy sent"
    );
    assert!(fakes.events.borrow().is_empty());
}

#[test]
fn trailers_end_a_body_that_did_not_end() {
    let fakes = Fakes::default();
    let ports = fakes.ports();
    let mut exchange = Exchange::new(Some(configured("")), 1);
    let head = Map(vec![
        (":method".into(), "POST".into()),
        (":path".into(), CHAT.into()),
    ]);
    let effects = exchange.on_request_headers(&ports, Ok(&head), false);
    assert_eq!(effects.next, RequestNext::ReadBody);
    let body = chat("Hello", "");
    assert_eq!(
        exchange.on_request_body(&ports, body.len(), false),
        BodyNext::Buffer
    );
    assert_eq!(
        exchange.on_request_trailers(),
        BodyNext::Complete { size: body.len() }
    );
    let effects = exchange.on_request_body_complete(&ports, &NoInfo, Ok(body.as_bytes()));
    assert_eq!(effects.next, RequestNext::Continue);
    assert_eq!(
        effects.route_headers[0],
        ("x-sluice-model".into(), "m".into())
    );
    // Read once: later body callbacks and trailers pass.
    assert_eq!(exchange.on_request_body(&ports, 1, true), BodyNext::Pass);
    assert_eq!(exchange.on_request_trailers(), BodyNext::Pass);
}

#[test]
fn a_response_before_the_body_was_read_passes_untouched() {
    // Envoy answers a stalled upload itself (408) while the filter still holds the headers.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    let ports = fakes.ports();
    let head = Map(vec![
        (":method".into(), "POST".into()),
        (":path".into(), CHAT.into()),
    ]);
    let effects = client.exchange.on_request_headers(&ports, Ok(&head), false);
    assert_eq!(effects.next, RequestNext::ReadBody);
    client.respond(408, "text/plain", &["request timeout"]);
    assert_eq!(
        client.response.nexts,
        [ResponseNext::Continue, ResponseNext::Continue]
    );
    assert_eq!(client.response.text(), "request timeout");
    client.end(Some(408));
    assert!(client.records.is_empty());
    assert_eq!(
        *fakes.requests.borrow(),
        [(ApiLabel::Chat, Some(408), None)]
    );
    assert!(fakes.observed.borrow().is_empty(), "nothing went upstream");
}

#[test]
fn a_body_over_the_limit_is_refused_while_it_is_buffered() {
    let fakes = Fakes::default();
    let mut client = Client::new(
        &fakes,
        Some(configured(r#","limits":{"max_request_body_bytes":64}"#)),
    );
    let body = chat(&"x".repeat(200), "");
    assert!(!client.post("/v1/messages", &[], &body));
    let reply = client.reply.clone().unwrap();
    assert_eq!(reply.status, 413);
    assert!(
        reply.body.starts_with(r#"{"type":"error""#),
        "{}",
        reply.body
    );
    assert_eq!(fakes.counted(Event::Rejected), 1);
}

#[test]
fn a_local_reply_runs_the_response_phase_without_repeating_its_headers() {
    let fakes = Fakes::default();
    let config = configured(&quotas(r#"{"requests_per_minute":1}"#, ""));
    let auth = format!("Bearer {KEY}");
    let mut first = Client::new(&fakes, Some(config.clone()));
    assert!(first.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    let mut second = Client::new(&fakes, Some(config));
    assert!(!second.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    let reply = second.reply.clone().unwrap();
    assert_eq!(reply.status, 429);
    for (name, _) in &reply.headers {
        let copies = reply.headers.iter().filter(|(n, _)| n == name).count();
        assert_eq!(copies, 1, "{name} in {:?}", reply.headers);
    }
    let header = |name| {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(header("content-type"), Some("application/json"));
    // The wait is rounded up past the clock's lag (100 ms here): never under a minute's end.
    let wait: u64 = header("retry-after-ms").unwrap().parse().unwrap();
    assert!(wait > 100, "{wait}");
    assert!(reply.body.contains("rate_limit_exceeded"), "{}", reply.body);

    // Envoy runs the reply through the filter's response phase: nothing is added twice.
    let effects = second
        .exchange
        .on_response_headers(&fakes.ports(), &Map(vec![]), false);
    assert!(effects.set_headers.is_empty(), "{:?}", effects.set_headers);
    second.respond(0, "", &[]);
    let names: Vec<&str> = second
        .response
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names.len(), reply.headers.len(), "{names:?}");
    assert_eq!(fakes.counted(Event::QuotaRejected("requests")), 1);
}

#[test]
fn passthrough_requests_are_admitted_in_the_headers_phase() {
    let fakes = Fakes::default();
    let config = configured(&format!(
        r#","routing":{{"passthrough_paths":["/tokenize"]}}{}"#,
        quotas(r#"{"requests_per_minute":5}"#, "")
    ));
    let mut client = Client::new(&fakes, Some(config));
    let auth = format!("Bearer {KEY}");
    assert!(client.send("GET", "/tokenize", &[("authorization", &auth)], None));
    assert_eq!(
        client.upstream_header("authorization"),
        None,
        "the key stays here"
    );
    client.respond(200, "application/json", &["{}"]);
    assert_eq!(
        client.response.header("x-ratelimit-remaining-requests"),
        Some("4")
    );
    client.end(Some(200));
    assert!(client.records.is_empty(), "nothing to account");
    assert_eq!(fakes.slot("t|acme").unwrap().in_flight, 0);
}

#[test]
fn models_are_listed_by_the_filter_in_the_callers_format() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    assert!(!client.send(
        "GET",
        "/v1/models",
        &[("anthropic-version", "2023-06-01")],
        None
    ));
    let reply = client.reply.clone().unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.starts_with(r#"{"data":[{"type":"model""#),
        "{}",
        reply.body
    );
    assert_eq!(fakes.counted(Event::Rejected), 0);
    client.end(None);
    assert_eq!(
        *fakes.requests.borrow(),
        [(ApiLabel::Models, Some(200), None)],
        "the reply's status, without asking Envoy"
    );
}

#[test]
fn an_exchange_can_move_between_threads_and_its_configuration_be_shared() {
    // A native host runs streams on several worker threads under one configuration.
    fn send<T: Send>() {}
    fn share<T: Send + Sync>() {}
    send::<Exchange>();
    share::<std::sync::Arc<crate::exchange::Configured>>();
}
