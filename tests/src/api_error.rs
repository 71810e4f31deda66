//! Checks that a body is an error in an API's own format, as its SDK parses it, and nothing
//! else (no extra members, no plain text).

use serde_json::{Map, Value};

fn object<'a>(value: &'a Value, what: &str, body: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {body}"))
}

fn keys(map: &Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// `body` is `{"error":{"message","type","param","code"}}` with this `type` and `code`, a
/// non-empty message and a null `param`.
pub fn openai(body: &str, kind: &str, code: Option<&str>) {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let top = object(&value, "the body", body);
    assert_eq!(keys(top), ["error"], "{body}");
    let error = object(&top["error"], "error", body);
    assert_eq!(keys(error), ["code", "message", "param", "type"], "{body}");
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(
        error["code"],
        code.map_or(Value::Null, Value::from),
        "{body}"
    );
    assert_eq!(error["param"], Value::Null, "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
}

/// `body` is `{"type":"error","error":{"type","message"}}` with this error `type` and a
/// non-empty message.
pub fn anthropic(body: &str, kind: &str) {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let top = object(&value, "the body", body);
    assert_eq!(keys(top), ["error", "type"], "{body}");
    assert_eq!(top["type"], "error", "{body}");
    let error = object(&top["error"], "error", body);
    assert_eq!(keys(error), ["message", "type"], "{body}");
    assert_eq!(error["type"], kind, "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
}
