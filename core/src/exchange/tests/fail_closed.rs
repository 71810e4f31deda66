//! A host call a policy depends on that fails: the request or response fails closed, in the
//! API's format, logged and counted.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::host::Map;
use super::{CHAT, Client, Fakes, KEY, MESSAGES, chat, configured, quotas, snapshot};
use crate::exchange::{
    Event, Exchange, HeaderView, HostError, Level, RecordKey, RequestNext, RequestWrite,
    ResponseNext, StreamInfo,
};

const MAIL_JSON: &str = r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"Write to jane@example.com today."}}],"usage":{"prompt_tokens":7,"completion_tokens":6}}"#;

fn sse(content: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"model":"m","choices":[{"index":0,"delta":{"content":content}}]})
    )
}

fn json_error(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[test]
fn unknown_quota_state_with_fail_policy_closed_is_a_503_in_the_apis_format() {
    let fakes = Fakes::default();
    fakes.cluster_fresh.set(false);
    let config = configured(&quotas(
        r#"{"requests_per_minute":100}"#,
        r#","fail_policy":"closed","cluster":{}"#,
    ));
    let auth = format!("Bearer {KEY}");
    let mut openai = Client::new(&fakes, Some(config.clone()));
    assert!(!openai.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    let reply = openai.reply.clone().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(
        json_error(&reply.body)["error"]["code"],
        "quota_unavailable"
    );

    let mut anthropic = Client::new(&fakes, Some(config.clone()));
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}"#;
    assert!(!anthropic.post(MESSAGES, &[("x-api-key", KEY)], body));
    let reply = anthropic.reply.clone().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(json_error(&reply.body)["error"]["type"], "api_error");
    assert_eq!(fakes.counted(Event::QuotaRejected("unknown")), 2);

    // The same when the slots cannot be written (no state can be kept), cluster mode or not.
    let fakes = Fakes::default();
    fakes.refuse_slot_writes.set(true);
    let config = configured(&quotas(
        r#"{"requests_per_minute":100}"#,
        r#","fail_policy":"closed""#,
    ));
    let mut client = Client::new(&fakes, Some(config));
    assert!(!client.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    assert_eq!(client.reply.unwrap().status, 503);

    // Open: admitted, and counted as admitted without being counted.
    let fakes = Fakes::default();
    fakes.refuse_slot_writes.set(true);
    let config = configured(&quotas(r#"{"requests_per_minute":100}"#, ""));
    let mut client = Client::new(&fakes, Some(config));
    assert!(client.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    assert_eq!(fakes.counted(Event::QuotaUncounted), 1);
}

#[test]
fn a_request_edit_the_host_refuses_fails_the_request_closed() {
    let with_all = format!(
        r#","aliases":{{"gpt-4o":"m"}},"picking":{{}}{}"#,
        quotas(
            r#"{"requests_per_minute":100}"#,
            r#","upstream_credentials":{"p":{"header":"authorization","prefix":"Bearer ","value":"sk-pool"}}"#
        )
    );
    let auth = format!("Bearer {KEY}");
    for (write, step) in [
        (
            RequestWrite::RemoveHeader,
            "removing a request header failed",
        ),
        (
            RequestWrite::Credential,
            "setting the upstream credential failed",
        ),
        (RequestWrite::Body, "updating the request failed"),
        (RequestWrite::RouteHeader, "updating the request failed"),
        (RequestWrite::Destination, "updating the request failed"),
    ] {
        let fakes = Fakes::default();
        *fakes.snapshot.borrow_mut() = Some(snapshot(fakes.now_ms.get()));
        let mut client = Client::new(&fakes, Some(configured(&with_all)));
        client.refuse_request = vec![write];
        let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#;
        assert!(
            !client.post(CHAT, &[("authorization", &auth)], body),
            "{write:?}"
        );
        let reply = client.reply.clone().unwrap();
        assert_eq!(reply.status, 500, "{write:?}");
        assert_eq!(json_error(&reply.body)["error"]["type"], "server_error");
        assert!(reply.body.contains(step), "{write:?}: {}", reply.body);
        assert_eq!(fakes.counted(Event::FailedClosed), 1, "{write:?}");
        assert!(fakes.logged(&format!("failing the request closed: {step}")));
        // What the request held is given back when it ends.
        client.end(Some(500));
        if let Some(slot) = fakes.slot("t|acme") {
            assert_eq!(slot.in_flight, 0);
        }
        assert!(
            fakes
                .in_flight
                .borrow()
                .values()
                .all(|map| map.counts().next().is_none()),
            "{write:?}"
        );
    }
}

#[test]
fn unreadable_request_headers_body_or_route_fail_closed() {
    struct Route;
    impl StreamInfo for Route {
        fn route_name(&self) -> Result<Option<String>, HostError> {
            Err(HostError)
        }
        fn response_code(&self) -> Option<u16> {
            None
        }
    }
    let fakes = Fakes::default();
    let ports = fakes.ports();
    let config = configured(r#","guardrails":{"routes":{"r":"default"}}"#);
    let mut exchange = Exchange::new(Some(config.clone()), 1);
    let effects = exchange.on_request_headers(&ports, Err(HostError), false);
    let RequestNext::Reply(reply) = effects.next else {
        panic!("{effects:?}")
    };
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("reading request headers failed"));

    let head = Map(vec![
        (":method".into(), "POST".into()),
        (":path".into(), MESSAGES.into()),
    ]);
    for (route, body, step) in [
        (false, Err(HostError), "reading the body failed"),
        (true, Ok(&b"{}"[..]), "reading the route name failed"),
    ] {
        let mut exchange = Exchange::new(Some(config.clone()), 1);
        let view: &dyn HeaderView = &head;
        exchange.on_request_headers(&ports, Ok(view), false);
        let info: &dyn StreamInfo = if route { &Route } else { &super::NoInfo };
        let effects = exchange.on_request_body_complete(&ports, info, body);
        let RequestNext::Reply(reply) = effects.next else {
            panic!("{effects:?}")
        };
        assert_eq!(reply.status, 500, "{step}");
        assert!(
            reply.body.starts_with(r#"{"type":"error""#),
            "Anthropic's format"
        );
        assert!(reply.body.contains(step), "{}", reply.body);
    }
    assert_eq!(fakes.counted(Event::FailedClosed), 3);
}

#[test]
fn client_sent_routing_headers_are_refused_under_route_policies() {
    // The route was matched with the client's copy: removing it would not change the policy.
    let fakes = Fakes::default();
    let mut client = Client::new(
        &fakes,
        Some(configured(r#","guardrails":{"routes":{"r":"default"}}"#)),
    );
    assert!(!client.post(CHAT, &[("x-sluice-model", "m")], &chat("Hi", "")));
    let reply = client.reply.unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("x-sluice-model"), "{}", reply.body);
    // Without route policies the copy is removed and counted.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    assert!(client.post(CHAT, &[("x-sluice-model", "evil")], &chat("Hi", "")));
    assert_eq!(client.upstream_header("x-sluice-model"), Some("m"));
    assert_eq!(fakes.counted(Event::InternalHeaderRemoved), 1);
}

#[test]
fn without_a_configuration_every_request_is_refused() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, None);
    assert!(!client.post(CHAT, &[], &chat("Hi", "")));
    let reply = client.reply.clone().unwrap();
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("server_error"), "{}", reply.body);
    client.respond(0, "", &[]);
    client.end(None);
    assert_eq!(fakes.requests.borrow()[0].1, Some(503));
}

#[test]
fn a_reply_that_cannot_be_sent_is_logged_and_counted() {
    let fakes = Fakes::default();
    let mut exchange = Exchange::new(None, 1);
    exchange.on_reply_failed(&fakes.ports(), "InternalFailure");
    assert_eq!(fakes.counted(Event::FailedClosed), 1);
    assert!(fakes.logged("sending a local reply failed (InternalFailure): resetting the request"));
}

fn guarded(usage_header: bool) -> std::sync::Arc<crate::exchange::Configured> {
    configured(&format!(
        r#","guardrails":{{}},"tokens":{{"usage_header":{usage_header}}}"#
    ))
}

#[test]
fn a_guardrail_write_the_host_refuses_ends_a_held_response() {
    // The redaction of a held JSON response does not take: a 500 local reply instead.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(guarded(true)));
    client.refuse_response = vec!["body"];
    assert!(client.post(CHAT, &[], &chat("Hi", "")));
    client.respond(200, "application/json", &[MAIL_JSON]);
    assert_eq!(client.response.ended_by, Some("reply"));
    assert_eq!(client.response.status, 500);
    assert!(
        !client.response.text().contains("jane@"),
        "{}",
        client.response.text()
    );
    assert!(
        client
            .response
            .text()
            .contains("content policy to the response failed")
    );
    assert_eq!(client.response.nexts.last(), Some(&ResponseNext::Stop));
    assert_eq!(
        client.response.header("x-sluice-usage"),
        None,
        "no header on a response that was replaced"
    );
    assert_eq!(fakes.counted(Event::GuardrailBlockFailure), 1);
    assert_eq!(fakes.counted(Event::FailedClosed), 1);
    assert!(
        fakes
            .logs
            .borrow()
            .iter()
            .any(|(level, line)| *level == Level::Warn
                && line.contains("policy 'default'")
                && line.contains("500 local reply"))
    );
    // The usage is still accounted and the hits recorded.
    assert_eq!(client.record(RecordKey::Tokens).unwrap()["output"], 6);
    assert!(client.record(RecordKey::Guardrails).is_some());
    client.end(Some(500));

    // The reply cannot be sent either: the stream is reset.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(guarded(false)));
    client.refuse_response = vec!["body", "reply"];
    assert!(client.post(CHAT, &[], &chat("Hi", "")));
    client.respond(200, "application/json", &[MAIL_JSON]);
    assert_eq!(client.response.ended_by, Some("reset"));

    // Nothing can end it: logged as an error, counted, not counted as failed closed.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(guarded(false)));
    client.refuse_response = vec!["body", "reply", "reset"];
    assert!(client.post(CHAT, &[], &chat("Hi", "")));
    client.respond(200, "application/json", &[MAIL_JSON]);
    assert_eq!(client.response.ended_by, None);
    assert_eq!(fakes.counted(Event::GuardrailBlockFailure), 1);
    assert_eq!(fakes.counted(Event::FailedClosed), 0);
    assert!(
        fakes
            .logs
            .borrow()
            .iter()
            .any(|(level, line)| *level == Level::Error && line.contains("unguarded"))
    );
}

#[test]
fn a_guardrail_write_the_host_refuses_resets_a_stream() {
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(guarded(false)));
    client.refuse_response = vec!["body"];
    assert!(client.post(CHAT, &[], &chat("Hi", r#","stream":true"#)));
    let chunks = [
        sse("Write to jane@example.com"),
        sse(" today."),
        "data: [DONE]\n\n".to_owned(),
    ];
    let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
    client.respond(200, "text/event-stream", &chunks);
    assert_eq!(client.response.ended_by, Some("reset"));
    assert!(!client.response.text().contains("jane@"));
    assert_eq!(fakes.counted(Event::FailedClosed), 1);
    // Anything Envoy still hands over is stopped, not read.
    let effects = client
        .exchange
        .on_response_body(&fakes.ports(), &mut super::Unread, false);
    assert_eq!(effects.next, ResponseNext::Stop);
    assert_eq!(effects.write, None);
    client.end(None);
    let observed = fakes.observed.borrow();
    assert_eq!(
        observed[0].2,
        Some(crate::telemetry::ErrorType::Incomplete),
        "a stream the filter ended is not a success"
    );
}

#[test]
fn an_unreadable_guarded_body_ends_the_response() {
    for (content_type, chunk, ended_by) in [
        ("application/json", MAIL_JSON.to_owned(), "reply"),
        ("text/event-stream", sse("Hello"), "reset"),
    ] {
        let fakes = Fakes::default();
        let mut client = Client::new(&fakes, Some(guarded(false)));
        client.unreadable_response = true;
        let stream = if content_type == "text/event-stream" {
            r#","stream":true"#
        } else {
            ""
        };
        assert!(client.post(CHAT, &[], &chat("Hi", stream)));
        client.respond(200, content_type, &[&chunk]);
        assert_eq!(client.response.ended_by, Some(ended_by), "{content_type}");
        assert!(client.response.body.is_empty() || ended_by == "reply");
        assert!(
            fakes.logged("reading the response body failed"),
            "{content_type}"
        );
    }
    // Without a guard nothing is protected by the read: the response passes, usage estimated.
    let fakes = Fakes::default();
    let mut client = Client::new(&fakes, Some(configured("")));
    client.unreadable_response = true;
    assert!(client.post(CHAT, &[], &chat("Hi", "")));
    client.respond(200, "application/json", &[MAIL_JSON]);
    assert_eq!(client.response.ended_by, None);
    assert_eq!(
        client.record(RecordKey::Tokens).unwrap()["source"],
        "estimated"
    );
}

#[test]
fn a_settle_that_cannot_be_written_is_logged_and_counted() {
    let fakes = Fakes::default();
    let config = configured(&quotas(r#"{"tokens_per_minute":100000}"#, ""));
    let mut client = Client::new(&fakes, Some(config));
    let auth = format!("Bearer {KEY}");
    assert!(client.post(CHAT, &[("authorization", &auth)], &chat("Hi", "")));
    fakes.refuse_slot_writes.set(true);
    client.respond(200, "application/json", &[MAIL_JSON]);
    assert_eq!(fakes.counted(Event::QuotaWriteFailure), 1);
    assert!(fakes.logged("the reservation stands"));
}
