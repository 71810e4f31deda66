//! Prompts sized in the simulator's tokens (4 bytes each, `simulator/src/tokens.rs`), and the
//! streaming chat request that carries them.

use super::rng::Rng;

/// Bytes per simulated token.
pub const BYTES_PER_TOKEN: usize = 4;

/// Chat messages before serialization: (role, text).
pub type Messages = Vec<(&'static str, String)>;

/// Random words, exactly `bytes` long (ASCII).
pub fn text_of_len(rng: &mut Rng, bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "request", "replica", "token", "prefix", "cache", "tenant", "policy", "latency", "model",
        "answer", "account", "invoice", "order", "customer", "refund", "shipping", "support",
        "context", "summary", "document", "section", "table", "value", "result", "user", "system",
        "detail", "status", "update", "review", "report", "number", "field", "record", "query",
        "the", "a", "of", "to", "and", "in", "for", "with", "on", "is", "be", "as", "by", "at",
        "when", "which", "please", "always", "never", "only", "each", "every", "first", "last",
    ];
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        text.push_str(WORDS[rng.below(WORDS.len())]);
        text.push(' ');
    }
    text.truncate(bytes);
    text
}

/// The prompt tokens the simulator counts for `messages`: each message's role and text, 4 bytes
/// a token.
pub fn prompt_tokens(messages: &Messages) -> u32 {
    let bytes: usize = messages
        .iter()
        .map(|(role, text)| role.len() + text.len())
        .sum();
    u32::try_from(bytes.div_ceil(BYTES_PER_TOKEN).max(1)).unwrap_or(u32::MAX)
}

/// A chat completion request body: streaming, with the usage chunk at the end.
pub fn chat_body(model: &str, messages: &Messages, max_tokens: u32) -> String {
    let messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|(role, text)| serde_json::json!({ "role": role, "content": text }))
        .collect();
    serde_json::json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_the_exact_length() {
        let mut rng = Rng::new(9);
        for n in [0, 1, 7, 100, 4096] {
            assert_eq!(text_of_len(&mut rng, n).len(), n);
        }
    }

    #[test]
    fn prompt_tokens_count_roles_and_text_as_the_simulator_does() {
        let messages: Messages = vec![("system", "a".repeat(94)), ("user", "b".repeat(4))];
        // 6 + 94 + 4 + 4 = 108 bytes.
        assert_eq!(prompt_tokens(&messages), 27);
        assert_eq!(prompt_tokens(&Vec::new()), 1);
        let body: serde_json::Value =
            serde_json::from_str(&chat_body("m", &messages, 7)).expect("JSON");
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][1]["role"], "user");
    }
}
