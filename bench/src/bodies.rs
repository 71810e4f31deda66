//! Realistic OpenAI chat-completion request bodies of a given size, generated deterministically
//! (same bytes on every run and machine): a system prompt and alternating user and assistant
//! turns of English-like text with the escapes and non-ASCII characters real prompts have.

/// The model every benchmark request names.
pub const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The tokens of a streamed answer of prose, one per event, in a loop (the response-side
/// benchmarks and the profiling driver stream these).
pub const STREAM_WORDS: [&str; 18] = [
    " the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " a",
    " lazy",
    " dog",
    ",",
    " while",
    " simulated",
    " tokens",
    " stream",
    " from",
    " the",
    " server",
    ".",
];

/// The body sizes the gateway benchmarks use (bytes, label).
pub const GATEWAY_SIZES: &[(usize, &str)] = &[(1024, "1 KB"), (16 * 1024, "16 KB")];

/// The body sizes the micro-benchmarks use (bytes, label).
pub const MICRO_SIZES: &[(usize, &str)] =
    &[(1024, "1KB"), (16 * 1024, "16KB"), (256 * 1024, "256KB")];

const WORDS: &[&str] = &[
    "the",
    "model",
    "request",
    "please",
    "summarize",
    "following",
    "document",
    "and",
    "list",
    "three",
    "key",
    "points",
    "about",
    "latency",
    "throughput",
    "cache",
    "token",
    "budget",
    "customer",
    "invoice",
    "quarterly",
    "report",
    "shows",
    "revenue",
    "growth",
    "of",
    "in",
    "Europe",
    "while",
    "costs",
    "remained",
    "flat",
    "explain",
    "why",
    "this",
    "matters",
    "for",
    "engineers",
    "who",
    "deploy",
    "inference",
    "servers",
    "at",
    "scale",
    "résumé",
    "naïve",
    "café",
    "東京",
    "données",
    "straße",
];

/// A tiny deterministic generator (64-bit LCG, high bits), so bodies never depend on a crate's
/// or platform's random numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn sentence(&mut self, words: usize) -> String {
        let mut out = String::new();
        for i in 0..words {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(WORDS[self.next() % WORDS.len()]);
        }
        match self.next() % 8 {
            0 => out.push_str(".\n"),
            1 => out.push_str(" \"quoted\"."),
            2 => out.push_str("?\t"),
            _ => out.push('.'),
        }
        out
    }

    fn paragraph(&mut self, sentences: usize) -> String {
        (0..sentences)
            .map(|_| {
                let words = 6 + self.next() % 12;
                self.sentence(words)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn message(role: &str, content: &str) -> String {
    format!(
        r#"{{"role":"{role}","content":{}}}"#,
        serde_json::Value::from(content)
    )
}

fn assemble(messages: &[String], stream: bool) -> String {
    let stream = if stream {
        r#","stream":true,"stream_options":{"include_usage":true}"#
    } else {
        ""
    };
    format!(
        r#"{{"model":"{MODEL}","messages":[{}],"max_tokens":256,"temperature":0.7{stream}}}"#,
        messages.join(",")
    )
}

/// A chat-completion request of exactly `target` bytes (at least a few hundred), streaming or
/// not. The last user turn is trimmed or padded with plain ASCII to land on the size.
pub fn chat_body(target: usize, stream: bool) -> String {
    let mut rng = Lcg(0x5eed_0000 ^ target as u64);
    let mut messages = vec![message(
        "system",
        "You are a careful assistant. Answer concisely, cite the document, and say when you are unsure.",
    )];
    let mut role = "user";
    loop {
        let sentences = 2 + rng.next() % 6;
        let candidate = message(role, &rng.paragraph(sentences));
        // Leave room for the final user turn that lands the size.
        if assemble(&messages, stream).len() + candidate.len() + 200 > target {
            break;
        }
        messages.push(candidate);
        role = if role == "user" { "assistant" } else { "user" };
    }
    let filler = "Answer with the three key points only, one line each, no preamble at all. ";
    let fixed = assemble(&messages, stream).len() + message("user", "").len() + 1;
    let room = target.saturating_sub(fixed);
    let content: String = filler.chars().cycle().take(room).collect();
    messages.push(message("user", &content));
    assemble(&messages, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_exact_size_and_are_valid_chat_requests() {
        for &(size, _) in GATEWAY_SIZES.iter().chain(MICRO_SIZES) {
            for stream in [false, true] {
                let body = chat_body(size, stream);
                assert_eq!(body.len(), size, "size {size} stream {stream}");
                let value: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
                assert_eq!(value["model"], MODEL);
                assert_eq!(value["stream"].as_bool().unwrap_or(false), stream);
                let messages = value["messages"].as_array().expect("messages");
                assert!(messages.len() >= 2);
                assert_eq!(messages.last().expect("last")["role"], "user");
            }
        }
    }

    #[test]
    fn bodies_are_deterministic() {
        assert_eq!(chat_body(16 * 1024, false), chat_body(16 * 1024, false));
        assert!(chat_body(16 * 1024, false).contains("\\n"));
    }
}
