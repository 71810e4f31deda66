//! The same answer as one JSON body and as a stream: the same counts, the same guard.

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{CHAT, Client, Fakes, chat, configured};
use crate::exchange::{RecordKey, ResponseNext};

const ANSWER: [&str; 3] = ["Sure: write to ", "jane@example.com", " for the report."];

fn json() -> String {
    serde_json::json!({
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER.concat()}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 11}
    })
    .to_string()
}

/// The stream of the same answer, with the usage chunk the gateway asked for, split at `at`.
fn stream(at: usize) -> Vec<String> {
    let mut events: String = ANSWER
        .iter()
        .map(|text| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"model":"m","choices":[{"index":0,"delta":{"content":text}}],"usage":null})
            )
        })
        .collect();
    events.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        serde_json::json!({"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":11}})
    ));
    let at = at.min(events.len());
    vec![events[..at].to_owned(), events[at..].to_owned()]
}

fn tokens(client: &Client<'_>) -> (u64, u64, String) {
    let record = client.record(RecordKey::Tokens).unwrap();
    (
        record["input"].as_u64().unwrap(),
        record["output"].as_u64().unwrap(),
        record["source"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn json_and_stream_are_counted_alike() {
    let fakes = Fakes::default();
    let mut whole = Client::new(&fakes, Some(configured("")));
    assert!(whole.post(CHAT, &[], &chat("Hi", "")));
    whole.respond(200, "application/json", &[&json()]);
    assert_eq!(tokens(&whole), (9, 11, "reported".to_owned()));

    let full = stream(usize::MAX).concat();
    for at in 0..=full.len() {
        let fakes = Fakes::default();
        let mut streamed = Client::new(&fakes, Some(configured("")));
        assert!(streamed.post(CHAT, &[], &chat("Hi", r#","stream":true"#)));
        // The gateway asked for usage the client did not: it goes upstream, not back.
        let sent = String::from_utf8(streamed.upstream_body.clone().unwrap()).unwrap();
        assert!(sent.contains(r#""include_usage":true"#), "{sent}");
        let chunks = stream(at);
        streamed.respond(
            200,
            "text/event-stream",
            &[chunks[0].as_str(), chunks[1].as_str()],
        );
        assert_eq!(tokens(&streamed), tokens(&whole), "split at {at}");
        let text = streamed.response.text();
        assert!(!text.contains("prompt_tokens"), "split at {at}: {text}");
        assert!(!text.contains(r#""usage":null"#), "split at {at}: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "split at {at}: {text}");
    }
}

#[test]
fn json_and_stream_are_guarded_alike() {
    let guarded = || Some(configured(r#","guardrails":{}"#));
    let fakes = Fakes::default();
    let mut whole = Client::new(&fakes, guarded());
    assert!(whole.post(CHAT, &[], &chat("Hi", "")));
    whole.respond(200, "application/json", &[&json()]);
    assert_eq!(
        whole.response.nexts[0],
        ResponseNext::Hold,
        "held to be guarded"
    );
    let body: serde_json::Value = serde_json::from_slice(&whole.response.body).unwrap();
    let redacted = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!redacted.contains("jane@"), "{redacted}");
    assert_eq!(
        whole.response.header("content-length"),
        Some(whole.response.body.len().to_string().as_str())
    );
    let whole_record = whole.record(RecordKey::Guardrails).unwrap();

    let full = stream(usize::MAX).concat();
    for at in [0, 40, full.len() / 2, full.len() - 3, full.len()] {
        let fakes = Fakes::default();
        let mut streamed = Client::new(&fakes, guarded());
        assert!(streamed.post(CHAT, &[], &chat("Hi", r#","stream":true"#)));
        let chunks = stream(at);
        streamed.respond(
            200,
            "text/event-stream",
            &[chunks[0].as_str(), chunks[1].as_str()],
        );
        let text = streamed.response.text();
        assert!(!text.contains("jane@"), "split at {at}: {text}");
        let said: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .filter_map(|event| {
                event["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(said, redacted, "split at {at}");
        assert_eq!(
            streamed.record(RecordKey::Guardrails).unwrap()["response"],
            whole_record["response"],
            "split at {at}"
        );
        assert_eq!(tokens(&streamed), tokens(&whole), "split at {at}");
    }
}

/// Each response body and each event is read once (`response_text::locate`, counted under
/// `cfg(test)`), for the guard and the accounting together, JSON and streamed, guarded or not.
#[test]
fn each_body_and_each_event_is_read_once() {
    use crate::response_text::reads;
    for guardrails in ["", r#","guardrails":{}"#] {
        let fakes = Fakes::default();
        let mut whole = Client::new(&fakes, Some(configured(guardrails)));
        assert!(whole.post(CHAT, &[], &chat("Hi", "")));
        let before = reads::so_far();
        whole.respond(200, "application/json", &[&json()]);
        assert_eq!(
            reads::so_far() - before,
            1,
            "JSON, guardrails '{guardrails}'"
        );
        assert_eq!(tokens(&whole), (9, 11, "reported".to_owned()));

        let full = stream(usize::MAX).concat();
        for at in 0..=full.len() {
            let fakes = Fakes::default();
            let mut streamed = Client::new(&fakes, Some(configured(guardrails)));
            assert!(streamed.post(CHAT, &[], &chat("Hi", r#","stream":true"#)));
            let chunks = stream(at);
            let before = reads::so_far();
            streamed.respond(
                200,
                "text/event-stream",
                &[chunks[0].as_str(), chunks[1].as_str()],
            );
            // Three chunks with text and the usage chunk; `[DONE]` is not JSON to read.
            assert_eq!(
                reads::so_far() - before,
                4,
                "stream split at {at}, guardrails '{guardrails}'"
            );
            assert_eq!(tokens(&streamed), tokens(&whole), "split at {at}");
        }
    }
}
