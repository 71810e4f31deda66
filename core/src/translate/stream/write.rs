//! Writing server-sent events: one `data:` line of JSON (and an `event:` line for Anthropic's
//! named events), then the blank line that ends the event.

use serde::Serialize;

/// Appends `event: {name}` (when named) and `data: {value}` as one event.
pub(super) fn event(out: &mut Vec<u8>, name: Option<&str>, value: &impl Serialize) {
    let start = out.len();
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Plain structs of strings and numbers always serialize; should one ever fail, no half
    // event is left behind.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

/// OpenAI's last event.
pub(super) fn done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}
