//! A round of requests that moves every panel of the dashboard: streamed and whole chat
//! completions and an Anthropic message (tokens, time to first token, time per output token,
//! duration), a burst to one pool past its capacity (held requests, wait time), a card number
//! and an e-mail address (guardrail hits), requests without a key and over a tenant's limit
//! (quota rejections) and an unknown model (a 4xx).

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::gateway::client;

/// Who sends the round, to which gateway, for which models.
#[derive(Debug, Clone)]
pub struct TrafficMix {
    /// The gateway's base URL (`http://127.0.0.1:10000`).
    pub gateway: String,
    /// A key with room for the whole round.
    pub key: String,
    /// A key whose tenant is over its limit after a request or two.
    pub limited_key: String,
    /// Models to stream from and to ask whole answers of.
    pub models: Vec<String>,
    /// The model whose pool gets `burst` requests at once.
    pub burst_model: String,
    pub burst: usize,
    /// Requests sent with `limited_key`.
    pub limited_requests: usize,
}

impl TrafficMix {
    /// Sends one round and returns how many answers had each status. Panics only when the
    /// gateway cannot be reached.
    pub async fn round(&self) -> BTreeMap<u16, usize> {
        let key = Auth::Bearer(&self.key);
        let first = self.models.first().map_or("", String::as_str);
        let mut sent = Vec::new();
        for model in &self.models {
            sent.push(self.post(CHAT, key, chat(model, true, 12)));
            sent.push(self.post(CHAT, key, chat(model, false, 6)));
        }
        sent.push(self.post(
            MESSAGES,
            Auth::ApiKey(&self.key),
            json!({"model": first, "max_tokens": 8, "stream": true,
                "messages": [{"role": "user", "content": "Name a lighthouse."}]}),
        ));
        // The default guardrail rules redact both before the model sees them.
        sent.push(self.post(
            CHAT,
            key,
            json!({"model": first, "max_tokens": 8, "messages": [{"role": "user",
                "content": "[[echo]]Card 4111 1111 1111 1111, mail jane@example.com"}]}),
        ));
        sent.push(self.post(CHAT, Auth::None, chat(first, false, 2)));
        sent.push(self.post(CHAT, key, chat("no-such-model", false, 2)));
        let mut statuses: Vec<u16> = join_all(sent).await;
        // The burst at once, then the limited tenant's requests one after another.
        let burst =
            (0..self.burst).map(|_| self.post(CHAT, key, chat(&self.burst_model, false, 16)));
        statuses.extend(join_all(burst).await);
        for _ in 0..self.limited_requests {
            let limited = Auth::Bearer(&self.limited_key);
            statuses.push(self.post(CHAT, limited, chat(first, false, 2)).await);
        }
        let mut counts = BTreeMap::new();
        for status in statuses {
            *counts.entry(status).or_default() += 1;
        }
        counts
    }

    /// POSTs `body` to `path` and reads the whole answer (a stream's end is when its metrics
    /// are recorded); returns its status.
    async fn post(&self, path: &str, auth: Auth<'_>, body: Value) -> u16 {
        let mut request = client().post(format!("{}{path}", self.gateway)).json(&body);
        request = match auth {
            Auth::None => request,
            Auth::Bearer(key) => request.bearer_auth(key),
            Auth::ApiKey(key) => request
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01"),
        };
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        status
    }
}

const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/v1/messages";

/// How a request carries its key.
#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
    None,
    /// `Authorization: Bearer` (OpenAI's).
    Bearer(&'a str),
    /// `x-api-key` (Anthropic's).
    ApiKey(&'a str),
}

fn chat(model: &str, stream: bool, max_tokens: u64) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "Tell me about lighthouses."}],
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}
