//! `POST /v1/responses` without a script: generated text, JSON and streamed, with usage.

mod common;

use common::{MODEL, Reply, post, sse_events, start};
use hyper::StatusCode;
use serde_json::{Value, json};

/// The events of a Responses stream as (name, data), checking that each data's `type` is its
/// event name and that sequence numbers count up from 0.
fn response_events(reply: &Reply) -> Vec<(String, Value)> {
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/event-stream");
    let events: Vec<(String, Value)> = sse_events(&reply.body)
        .into_iter()
        .map(|(name, data)| (name, serde_json::from_str(&data).unwrap()))
        .collect();
    for (sequence, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], sequence);
    }
    events
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn string_input_json_with_instructions_and_a_token_limit() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "instructions": "Be brief.",
        "input": "Hello there!",
        "max_output_tokens": 3,
    });
    let reply = post(address, "/v1/responses", request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/json");
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(body["object"], "response");
    assert!(body["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["max_output_tokens"], 3);
    // Reaching the client's limit leaves the response incomplete, as OpenAI reports it.
    assert_eq!(body["status"], "incomplete");
    assert_eq!(
        body["incomplete_details"],
        json!({ "reason": "max_output_tokens" })
    );
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    let message = &output[0];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "incomplete");
    assert_eq!(
        message["content"],
        json!([{ "type": "output_text", "text": " the quick brown", "annotations": [] }])
    );
    // "system" "Be brief." "user" "Hello there!" = 31 bytes = 8 tokens.
    assert_eq!(
        body["usage"],
        json!({
            "input_tokens": 8,
            "input_tokens_details": { "cached_tokens": 0 },
            "output_tokens": 3,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": 11,
        })
    );
}

#[tokio::test]
async fn message_list_input_stops_at_the_default_length() {
    let address = start().await;
    let request = json!({
        "model": MODEL,
        "input": [
            { "role": "developer", "content": "Be brief." },
            { "type": "message", "role": "user", "content": [
                { "type": "input_text", "text": "Look:" },
                { "type": "input_image", "image_url": "data:," },
            ] },
            { "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}" },
            { "type": "function_call_output", "call_id": "call_1", "output": "42" },
        ],
    });
    let body = post(address, "/v1/responses", request).await.json();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["incomplete_details"], Value::Null);
    assert_eq!(body["output"][0]["status"], "completed");
    // "developer" "Be brief." "user" "Look:" "{}" "42" = 31 bytes = 8 tokens; --fast generates 8.
    assert_eq!(body["usage"]["input_tokens"], 8);
    assert_eq!(body["usage"]["output_tokens"], 8);
    assert_eq!(body["usage"]["total_tokens"], 16);
    let text = body["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with(" the quick brown fox"));
}

#[tokio::test]
async fn stream_events_in_order_with_usage_at_the_end() {
    let address = start().await;
    let request = json!({ "model": MODEL, "input": "Hi", "stream": true });
    let events = response_events(&post(address, "/v1/responses", request).await);
    let names = names(&events);
    let deltas = names
        .iter()
        .filter(|name| **name == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 8, "one delta per token");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", 8));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);

    let created = &events[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    let added = &events[2].1;
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["content"], json!([]));
    let item_id = added["item"]["id"].as_str().unwrap();

    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| {
            assert_eq!(data["item_id"], item_id);
            assert_eq!(data["output_index"], 0);
            assert_eq!(data["content_index"], 0);
            data["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    let done = &events[names.len() - 4].1;
    assert_eq!(done["text"], streamed.as_str());

    let (_, completed) = events.last().unwrap();
    let response = &completed["response"];
    assert_eq!(response["id"], created["id"]);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["id"], item_id);
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        streamed.as_str()
    );
    // "user" "Hi" = 6 bytes = 2 tokens.
    assert_eq!(response["usage"]["input_tokens"], 2);
    assert_eq!(response["usage"]["output_tokens"], 8);
    assert_eq!(response["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn stream_that_reaches_the_limit_ends_incomplete() {
    let address = start().await;
    let request = json!({ "model": MODEL, "input": "Hi", "stream": true, "max_output_tokens": 2 });
    let events = response_events(&post(address, "/v1/responses", request).await);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    let item_done = &events[events.len() - 2].1;
    assert_eq!(item_done["item"]["status"], "incomplete");
}

#[tokio::test]
async fn errors_use_the_openai_shape() {
    let address = start().await;
    let missing_input = post(address, "/v1/responses", json!({ "model": MODEL })).await;
    assert_eq!(missing_input.status, StatusCode::BAD_REQUEST);
    let error = &missing_input.json()["error"];
    assert_eq!(error["type"], "BadRequestError");
    assert!(error["message"].as_str().unwrap().contains("input"));

    let no_tokens = json!({ "model": MODEL, "input": "Hi", "max_output_tokens": 0 });
    let reply = post(address, "/v1/responses", no_tokens).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_output_tokens")
    );

    let unknown = post(
        address,
        "/v1/responses",
        json!({ "model": "nope", "input": "Hi" }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["type"], "NotFoundError");
}
