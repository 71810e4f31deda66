//! Provider mode (`--provider openai|anthropic`): what makes the simulator behave like
//! api.openai.com or api.anthropic.com rather than a vLLM server.
//!
//! - **Routes**: only the provider's API (OpenAI `/v1/chat/completions` and `/v1/models`,
//!   Anthropic `/v1/messages`); anything else is a 404 in the provider's error format.
//! - **Models**: the `--model` names; another model is a 404 (`model_not_found`,
//!   `not_found_error`). Responses carry the requested name in `model`.
//! - **Keys** (`--api-key`, repeatable; none given: not checked): OpenAI reads
//!   `authorization: Bearer KEY` (else 401 `invalid_api_key`), Anthropic `x-api-key: KEY` or,
//!   as its official Python SDK (2.x) sends it, `authorization: Bearer KEY` (else 401
//!   `authentication_error`), and requires an `anthropic-version` header (else 400
//!   `invalid_request_error`). A key is never echoed.
//! - **Rate limits** (`--rpm`, `--tpm`, per minute, counted for real: see `rate_limit`): every
//!   answer carries the provider's headers (OpenAI `x-ratelimit-{limit,remaining,reset}-
//!   {requests,tokens}`, resets as Go durations; Anthropic `anthropic-ratelimit-{requests,
//!   tokens,input-tokens,output-tokens}-{limit,remaining,reset}`, resets as RFC 3339 times, the
//!   three token groups all reporting the one token bucket). Past a limit: 429 with
//!   `retry-after` (OpenAI also `retry-after-ms`).
//! - **Usage** in the provider's fields. Cached input tokens are the prompt tokens the engine's
//!   prefix cache held (whole 16-token blocks of a repeated prompt prefix, per process): OpenAI
//!   `usage.prompt_tokens_details.cached_tokens`; Anthropic `cache_read_input_tokens`, with
//!   `cache_creation_input_tokens` the rest of the prompt's whole blocks when the request marks
//!   anything `cache_control` (else 0), and `input_tokens` the remainder.
//! - **Errors** from the handlers are rendered again in the provider's format by the API gate.

mod rate_limit;
mod time_text;

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::error::{ApiError, Reason};
use crate::config::{Provider, ProviderConfig};
pub use rate_limit::Charge;
use rate_limit::{Gauge, Limited, RateLimits};

/// The Anthropic API version header every request must carry.
const ANTHROPIC_VERSION: &str = "anthropic-version";

/// Provider mode's state.
#[derive(Debug)]
pub struct ProviderState {
    pub config: ProviderConfig,
    limits: RateLimits,
}

impl ProviderState {
    pub fn new(config: ProviderConfig) -> Self {
        let limits = RateLimits::new(config.requests_per_minute, config.tokens_per_minute);
        Self { config, limits }
    }

    pub fn api(&self) -> Provider {
        self.config.api
    }

    /// Checks the API key (and Anthropic's version header) of a request.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let keys = &self.config.keys;
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, message).with_reason(Reason::BadApiKey)
        };
        match self.config.api {
            Provider::Openai => {
                let key = header("authorization").and_then(|value| value.strip_prefix("Bearer "));
                match key {
                    _ if !keys.checked() => Ok(()),
                    Some(key) if keys.accepts(key) => Ok(()),
                    Some(_) => Err(unauthorized("Incorrect API key provided.")),
                    None => Err(unauthorized(
                        "You didn't provide an API key. Provide it in the Authorization header \
                         (Authorization: Bearer YOUR_KEY).",
                    )),
                }
            }
            Provider::Anthropic => {
                // The official SDK sends its API key as a bearer token; other clients use
                // x-api-key. The API takes either.
                let key = header("x-api-key").or_else(|| {
                    header("authorization").and_then(|value| value.strip_prefix("Bearer "))
                });
                match key {
                    _ if !keys.checked() => {}
                    Some(key) if keys.accepts(key) => {}
                    Some(_) => return Err(unauthorized("invalid x-api-key")),
                    None => return Err(unauthorized("x-api-key header is required")),
                }
                if header(ANTHROPIC_VERSION).is_none() {
                    return Err(ApiError::bad_request(
                        "anthropic-version: header is required",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Pays a request of `tokens` (prompt plus output) into the rate limits.
    pub fn admit(&self, tokens: u32) -> Result<Charge, ApiError> {
        self.limits.admit(tokens).map_err(|limited| {
            let (reason, retry_after, message) = match limited {
                Limited::Requests { retry_after } => (
                    Reason::RequestLimit,
                    retry_after,
                    format!(
                        "Rate limit reached for requests: limit {} per minute.",
                        self.config.requests_per_minute
                    ),
                ),
                Limited::Tokens { retry_after, asked } => (
                    Reason::TokenLimit,
                    retry_after,
                    format!(
                        "Rate limit reached for tokens: limit {} per minute, requested {asked}.",
                        self.config.tokens_per_minute
                    ),
                ),
            };
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
                .with_reason(reason)
                .with_retry_after(Some(retry_after))
        })
    }

    /// Gives back what an admitted request paid when it could not be served after all.
    pub fn refund(&self, charge: Charge) {
        self.limits.refund(charge);
    }

    /// Adds the provider's rate-limit headers, as of now.
    pub fn add_rate_limit_headers(&self, headers: &mut HeaderMap) {
        let snapshot = self.limits.snapshot();
        match self.config.api {
            Provider::Openai => {
                for (kind, gauge) in [("requests", snapshot.requests), ("tokens", snapshot.tokens)]
                {
                    let reset = time_text::go_duration(gauge.until_full);
                    for (field, value) in [
                        ("limit", gauge.limit.to_string()),
                        ("remaining", gauge.remaining.to_string()),
                        ("reset", reset),
                    ] {
                        insert(headers, &format!("x-ratelimit-{field}-{kind}"), &value);
                    }
                }
            }
            Provider::Anthropic => {
                let now = SystemTime::now();
                let groups = [
                    ("requests", snapshot.requests),
                    ("tokens", snapshot.tokens),
                    ("input-tokens", snapshot.tokens),
                    ("output-tokens", snapshot.tokens),
                ];
                for (kind, gauge) in groups {
                    let Gauge {
                        limit,
                        remaining,
                        until_full,
                    } = gauge;
                    for (field, value) in [
                        ("limit", limit.to_string()),
                        ("remaining", remaining.to_string()),
                        ("reset", time_text::rfc3339(now + until_full)),
                    ] {
                        insert(
                            headers,
                            &format!("anthropic-ratelimit-{kind}-{field}"),
                            &value,
                        );
                    }
                }
            }
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeys;

    fn state(api: Provider, keys: &[&str]) -> ProviderState {
        ProviderState::new(ProviderConfig {
            api,
            keys: ApiKeys::new(keys.iter().map(|key| (*key).to_owned()).collect()),
            requests_per_minute: 2,
            tokens_per_minute: 100,
        })
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[tokio::test]
    async fn openai_wants_a_bearer_key_it_knows() {
        let openai = state(Provider::Openai, &["sk-good"]);
        assert_eq!(
            openai.authenticate(&headers(&[("authorization", "Bearer sk-good")])),
            Ok(())
        );
        for sent in [
            headers(&[]),
            headers(&[("authorization", "Bearer sk-bad")]),
            headers(&[("authorization", "sk-good")]),
        ] {
            let error = openai.authenticate(&sent).unwrap_err();
            assert_eq!(
                (error.status, error.reason),
                (StatusCode::UNAUTHORIZED, Reason::BadApiKey)
            );
            assert!(!error.message.contains("sk-"), "{}", error.message);
        }
        let open = state(Provider::Openai, &[]);
        assert_eq!(open.authenticate(&headers(&[])), Ok(()));
    }

    #[tokio::test]
    async fn anthropic_wants_its_key_then_a_version() {
        let anthropic = state(Provider::Anthropic, &["k"]);
        let good = headers(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]);
        assert_eq!(anthropic.authenticate(&good), Ok(()));
        let wrong = anthropic
            .authenticate(&headers(&[
                ("x-api-key", "nope"),
                ("anthropic-version", "x"),
            ]))
            .unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(!wrong.message.contains("nope"));
        let bearer = headers(&[("authorization", "Bearer k"), ("anthropic-version", "x")]);
        assert_eq!(
            anthropic.authenticate(&bearer),
            Ok(()),
            "as the SDK sends it"
        );
        let bare = headers(&[("authorization", "k"), ("anthropic-version", "x")]);
        assert_eq!(
            anthropic.authenticate(&bare).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let unversioned = anthropic
            .authenticate(&headers(&[("x-api-key", "k")]))
            .unwrap_err();
        assert_eq!(unversioned.status, StatusCode::BAD_REQUEST);
        assert!(unversioned.message.contains("anthropic-version"));
    }

    #[tokio::test(start_paused = true)]
    async fn limits_answer_429_with_retry_after_and_show_in_headers() {
        let openai = state(Provider::Openai, &[]);
        let _ = openai.admit(30).unwrap();
        let mut sent = HeaderMap::new();
        openai.add_rate_limit_headers(&mut sent);
        assert_eq!(sent["x-ratelimit-limit-requests"], "2");
        assert_eq!(sent["x-ratelimit-remaining-requests"], "1");
        assert_eq!(sent["x-ratelimit-reset-requests"], "30s");
        assert_eq!(sent["x-ratelimit-limit-tokens"], "100");
        assert_eq!(sent["x-ratelimit-remaining-tokens"], "70");
        assert_eq!(sent["x-ratelimit-reset-tokens"], "18s");

        let error = openai.admit(80).unwrap_err();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.reason, Reason::TokenLimit);
        assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(6)));
        let _ = openai.admit(1).unwrap();
        let error = openai.admit(1).unwrap_err();
        assert_eq!(error.reason, Reason::RequestLimit);

        let anthropic = state(Provider::Anthropic, &[]);
        let mut sent = HeaderMap::new();
        anthropic.add_rate_limit_headers(&mut sent);
        for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
            for field in ["limit", "remaining", "reset"] {
                let name = format!("anthropic-ratelimit-{kind}-{field}");
                assert!(sent.contains_key(name.as_str()), "{name}");
            }
        }
        assert_eq!(sent["anthropic-ratelimit-input-tokens-remaining"], "100");
        let reset = sent["anthropic-ratelimit-requests-reset"].to_str().unwrap();
        assert!(reset.ends_with('Z') && reset.len() == 20, "{reset}");
    }
}
