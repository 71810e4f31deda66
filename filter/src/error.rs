//! Errors the filter answers itself, each rendered in the error format of the API the client
//! called, so every SDK surfaces it like an error from the provider.

use serde::Serialize;

/// The API family a client speaks, which decides the shape of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFlavor {
    OpenAi,
    Anthropic,
}

impl ApiFlavor {
    /// Anthropic's Messages API lives under `/v1/messages`; everything else is answered the
    /// OpenAI way, which is what most clients (and OpenAI-compatible servers) expect.
    pub fn from_path(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }
}

/// A request the filter ends itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The plugin has no valid configuration, so it cannot apply its policies. Failing closed
    /// keeps quotas and guardrails from being bypassed silently.
    NotConfigured,
    /// A host call the request depends on failed; the request cannot be handled safely.
    Internal(&'static str),
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotConfigured => 503,
            Self::Internal(_) => 500,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::NotConfigured => "The gateway is not configured to serve this request.".into(),
            Self::Internal(what) => format!("The gateway failed to process the request: {what}."),
        }
    }

    /// The response body, in `api`'s error format.
    pub fn body(&self, api: ApiFlavor) -> String {
        let message = self.message();
        let rendered = match api {
            ApiFlavor::OpenAi => serde_json::to_string(&OpenAiErrorBody {
                error: OpenAiError {
                    message: &message,
                    kind: "server_error",
                    param: None,
                    code: None,
                },
            }),
            ApiFlavor::Anthropic => serde_json::to_string(&AnthropicErrorBody {
                kind: "error",
                error: AnthropicError {
                    kind: "api_error",
                    message: &message,
                },
            }),
        };
        // Serializing plain strings cannot fail; the fallback only keeps this total.
        rendered.unwrap_or_default()
    }
}

/// `{"error":{"message","type","param","code"}}`, in OpenAI's field order.
#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{"type":"error","error":{"type","message"}}`, in Anthropic's field order.
#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: AnthropicError<'a>,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{ApiFlavor, GatewayError};

    #[test]
    fn flavor_follows_the_path() {
        assert_eq!(ApiFlavor::from_path("/v1/messages"), ApiFlavor::Anthropic);
        assert_eq!(
            ApiFlavor::from_path("/v1/messages?beta=true"),
            ApiFlavor::Anthropic
        );
        assert_eq!(
            ApiFlavor::from_path("/v1/messages/count_tokens"),
            ApiFlavor::Anthropic
        );
        assert_eq!(ApiFlavor::from_path("/v1/messagesx"), ApiFlavor::OpenAi);
        assert_eq!(
            ApiFlavor::from_path("/v1/chat/completions"),
            ApiFlavor::OpenAi
        );
        assert_eq!(ApiFlavor::from_path(""), ApiFlavor::OpenAi);
    }

    #[test]
    fn openai_error_body_is_exact() {
        let body = GatewayError::NotConfigured.body(ApiFlavor::OpenAi);
        assert_eq!(
            body,
            r#"{"error":{"message":"The gateway is not configured to serve this request.","type":"server_error","param":null,"code":null}}"#
        );
        assert_eq!(GatewayError::NotConfigured.status(), 503);
    }

    #[test]
    fn anthropic_error_body_is_exact() {
        let body = GatewayError::Internal("header update failed").body(ApiFlavor::Anthropic);
        assert_eq!(
            body,
            r#"{"type":"error","error":{"type":"api_error","message":"The gateway failed to process the request: header update failed."}}"#
        );
        assert_eq!(GatewayError::Internal("x").status(), 500);
    }
}
