//! Every request the filter ends itself, as one error type rendered in the error format of the
//! API the client called, so each SDK surfaces it like an error from the provider.
//!
//! Messages never echo request content beyond what identifies the problem (a field path, a
//! model name, a content type), and never credentials.

use serde::Serialize;

use crate::json::FieldError;

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

/// Longest client-supplied text (a path, a content type) an error message repeats.
const MAX_ECHO: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The plugin has no valid configuration, so it cannot apply its policies. Failing closed
    /// keeps quotas and guardrails from being bypassed silently.
    NotConfigured,
    /// A host call the request depends on failed; the request cannot be handled safely.
    Internal(&'static str),
    /// The body is not a JSON object.
    InvalidJson(String),
    /// A field is present but wrong; `param` is its path (`messages[2].content`).
    InvalidField {
        param: String,
        message: String,
    },
    MissingField(&'static str),
    /// An inference request without a body.
    MissingBody,
    ModelNotFound(String),
    ContextLengthExceeded {
        limit: u64,
        prompt: u64,
        output: u64,
    },
    PayloadTooLarge {
        limit: u64,
    },
    UnsupportedContentType(String),
    MethodNotAllowed {
        method: String,
        allow: &'static str,
    },
    UnknownPath {
        method: String,
        path: String,
    },
    /// Every replica of the model's pool is past the configured queue bound: load is shed.
    Overloaded,
    /// The model's pool has no healthy replica.
    NoHealthyEndpoint,
    /// Flow control turned the request away: its band's queue was full (`expired` false) or it
    /// waited its band's time to live. `status` is the configured 429 or 503.
    QueueRefused {
        status: u16,
        expired: bool,
    },
    /// No API key (or tenant), or one the gateway does not know. Never echoes the key.
    Unauthenticated {
        missing: bool,
    },
    /// A quota refused the request.
    QuotaExceeded(crate::quota::Reason),
    /// A guardrail rule blocked the request; the rule id (never the matched text).
    ContentPolicy {
        rule: String,
    },
    /// A guardrail rule blocked the model's response; the rule id (never the matched text).
    ResponseContentPolicy {
        rule: String,
    },
    /// The guardrail policy that applies does not allow this model.
    ModelNotAllowed(String),
    /// The caller's key, project or tenant (the run-time tenancy's allowed models) does not
    /// allow this model; the model as the client named it. Never names the key.
    ModelNotPermitted(String),
    /// A guardrail policy limit (`max_prompt_tokens`, `max_output_tokens`) was exceeded.
    PolicyLimit {
        field: &'static str,
        limit: u64,
        requested: u64,
    },
    /// The request uses a field that has no counterpart in the API of the target serving it
    /// (translation between OpenAI and Anthropic shapes); `param` is its path, `reason` says
    /// why, naming the target's API.
    Untranslatable {
        param: String,
        reason: String,
    },
    /// A model provider's successful response could not be read (translating it into the
    /// client's API shape); what was wrong, never the response's content.
    BadUpstreamResponse(String),
}

impl From<FieldError> for GatewayError {
    fn from(err: FieldError) -> Self {
        match err {
            FieldError::Body(detail) => Self::InvalidJson(detail),
            FieldError::Invalid { path, message } => Self::InvalidField {
                param: path,
                message,
            },
            FieldError::Missing(field) => Self::MissingField(field),
        }
    }
}

/// How one error shows in each API's format.
struct Rendering {
    status: u16,
    message: String,
    openai_type: &'static str,
    openai_code: Option<&'static str>,
    param: Option<String>,
    anthropic_type: &'static str,
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        self.rendering().status
    }

    /// Extra response headers the status calls for.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::MethodNotAllowed { allow, .. } => vec![("allow", *allow)],
            // Clients (and the OpenAI and Anthropic SDKs) retry after this; one second lets the
            // replicas drain a little before the next attempt.
            Self::Overloaded | Self::QueueRefused { .. } => {
                vec![("retry-after", "1"), ("retry-after-ms", "1000")]
            }
            _ => Vec::new(),
        }
    }

    fn rendering(&self) -> Rendering {
        let invalid = |status: u16, message: String, code, param| Rendering {
            status,
            message,
            openai_type: "invalid_request_error",
            openai_code: code,
            param,
            anthropic_type: "invalid_request_error",
        };
        match self {
            Self::NotConfigured => Rendering {
                status: 503,
                message: "The gateway is not configured to serve this request.".into(),
                openai_type: "server_error",
                openai_code: None,
                param: None,
                anthropic_type: "api_error",
            },
            Self::Internal(what) => Rendering {
                status: 500,
                message: format!("The gateway failed to process the request: {what}."),
                openai_type: "server_error",
                openai_code: None,
                param: None,
                anthropic_type: "api_error",
            },
            Self::InvalidJson(detail) => invalid(
                400,
                format!("The request body is not valid JSON: {detail}."),
                Some("invalid_json"),
                None,
            ),
            Self::InvalidField { param, message } => invalid(
                400,
                format!("Invalid value for '{param}': {message}."),
                Some("invalid_value"),
                Some(param.clone()),
            ),
            Self::MissingField(field) => invalid(
                400,
                format!("Missing required parameter: '{field}'."),
                Some("missing_required_parameter"),
                Some((*field).to_owned()),
            ),
            Self::MissingBody => invalid(
                400,
                "The request needs a JSON body.".into(),
                Some("missing_body"),
                None,
            ),
            Self::ModelNotFound(model) => Rendering {
                status: 404,
                message: format!(
                    "The model '{}' does not exist or you do not have access to it.",
                    truncate(model)
                ),
                openai_type: "invalid_request_error",
                openai_code: Some("model_not_found"),
                param: Some("model".into()),
                anthropic_type: "not_found_error",
            },
            Self::ContextLengthExceeded {
                limit,
                prompt,
                output,
            } => invalid(
                400,
                format!(
                    "This model's maximum context length is {limit} tokens, but the request \
                     needs about {} tokens ({prompt} in the prompt, {output} for the output). \
                     Shorten the prompt or lower the output limit.",
                    prompt.saturating_add(*output)
                ),
                Some("context_length_exceeded"),
                Some("messages".into()),
            ),
            Self::PayloadTooLarge { limit } => Rendering {
                status: 413,
                message: format!(
                    "The request body is larger than the gateway's limit of {limit} bytes."
                ),
                openai_type: "invalid_request_error",
                openai_code: Some("request_too_large"),
                param: None,
                anthropic_type: "request_too_large",
            },
            Self::UnsupportedContentType(content_type) => invalid(
                415,
                format!(
                    "Unsupported content type '{}'; send 'application/json'.",
                    truncate(content_type)
                ),
                Some("unsupported_content_type"),
                None,
            ),
            Self::MethodNotAllowed { method, allow } => invalid(
                405,
                format!(
                    "Method {} is not allowed here; use {allow}.",
                    truncate(method)
                ),
                Some("method_not_allowed"),
                None,
            ),
            Self::Overloaded => Rendering {
                status: 429,
                message: "Every replica serving this model is at capacity; retry shortly.".into(),
                openai_type: "server_error",
                openai_code: Some("overloaded"),
                param: None,
                anthropic_type: "overloaded_error",
            },
            Self::QueueRefused { status, expired } => Rendering {
                status: *status,
                message: if *expired {
                    "The request waited as long as its priority allows for a free replica; \
                     retry later."
                        .into()
                } else {
                    "Too many requests are waiting for this model at this priority; retry later."
                        .into()
                },
                openai_type: if *status == 429 {
                    "requests"
                } else {
                    "server_error"
                },
                openai_code: Some(if *status == 429 {
                    "rate_limit_exceeded"
                } else {
                    "overloaded"
                }),
                param: None,
                anthropic_type: if *status == 429 {
                    "rate_limit_error"
                } else {
                    "overloaded_error"
                },
            },
            Self::NoHealthyEndpoint => Rendering {
                status: 503,
                message: "No healthy replica serves this model right now.".into(),
                openai_type: "server_error",
                openai_code: Some("no_healthy_upstream"),
                param: None,
                anthropic_type: "api_error",
            },
            Self::Unauthenticated { missing } => Rendering {
                status: 401,
                message: if *missing {
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or \
                     'x-api-key: <key>'."
                        .into()
                } else {
                    "Incorrect API key provided.".into()
                },
                openai_type: "invalid_request_error",
                openai_code: Some("invalid_api_key"),
                param: None,
                anthropic_type: "authentication_error",
            },
            Self::QuotaExceeded(reason) => quota_rendering(*reason),
            Self::ContentPolicy { rule } => invalid(
                400,
                format!(
                    "The request was blocked by the gateway's content policy (rule '{}').",
                    truncate(rule)
                ),
                Some("content_policy_violation"),
                None,
            ),
            // 400 as for a blocked request: the SDKs do not retry it (the same prompt would
            // likely produce the same content again, and the tokens are spent).
            Self::ResponseContentPolicy { rule } => invalid(
                400,
                format!(
                    "The model's response was blocked by the gateway's content policy (rule '{}').",
                    truncate(rule)
                ),
                Some("content_policy_violation"),
                None,
            ),
            Self::ModelNotAllowed(model) => Rendering {
                status: 403,
                message: format!(
                    "The gateway's policy does not allow the model '{}' for this request.",
                    truncate(model)
                ),
                openai_type: "invalid_request_error",
                openai_code: Some("model_not_allowed"),
                param: Some("model".into()),
                anthropic_type: "permission_error",
            },
            // 403 `permission_error`, Anthropic's type for it, which OpenAI's SDKs map to
            // their PermissionDeniedError by the status.
            Self::ModelNotPermitted(model) => Rendering {
                status: 403,
                message: format!(
                    "You are not allowed to use the model '{}': the API key, its project or its \
                     tenant does not include it in its allowed models.",
                    truncate(model)
                ),
                openai_type: "permission_error",
                openai_code: Some("model_not_allowed"),
                param: Some("model".into()),
                anthropic_type: "permission_error",
            },
            Self::PolicyLimit {
                field,
                limit,
                requested,
            } => invalid(
                400,
                format!(
                    "The request exceeds the gateway's policy limit {field} of {limit} tokens \
                     (about {requested} requested)."
                ),
                Some("policy_limit_exceeded"),
                None,
            ),
            Self::Untranslatable { param, reason } => invalid(
                400,
                format!(
                    "'{}' cannot be sent to the provider serving this model: {reason}.",
                    truncate(param)
                ),
                Some("unsupported_parameter"),
                Some(param.clone()),
            ),
            Self::BadUpstreamResponse(detail) => Rendering {
                status: 502,
                message: format!(
                    "The model provider's response could not be translated: {}.",
                    truncate(detail)
                ),
                openai_type: "server_error",
                openai_code: Some("bad_upstream_response"),
                param: None,
                anthropic_type: "api_error",
            },
            Self::UnknownPath { method, path } => Rendering {
                status: 404,
                message: format!("Invalid URL ({} {}).", truncate(method), truncate(path)),
                openai_type: "invalid_request_error",
                openai_code: Some("unknown_url"),
                param: None,
                anthropic_type: "not_found_error",
            },
        }
    }

    /// The response body, in `api`'s error format.
    pub fn body(&self, api: ApiFlavor) -> String {
        let r = self.rendering();
        match api {
            ApiFlavor::OpenAi => {
                openai_error_body(&r.message, r.openai_type, r.param.as_deref(), r.openai_code)
            }
            ApiFlavor::Anthropic => anthropic_error_body(r.anthropic_type, &r.message),
        }
    }
}

/// `{"error":{"message","type","param","code"}}`: OpenAI's error body, whoever writes it (the
/// gateway's own errors, a translated provider error).
pub(crate) fn openai_error_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> String {
    let body = OpenAiErrorBody {
        error: OpenAiError {
            message,
            kind,
            param,
            code,
        },
    };
    // Serializing plain strings cannot fail; the fallback only keeps this total.
    serde_json::to_string(&body).unwrap_or_default()
}

/// `{"type":"error","error":{"type","message"}}`: Anthropic's error body, whoever writes it.
pub(crate) fn anthropic_error_body(kind: &str, message: &str) -> String {
    let body = AnthropicErrorBody {
        kind: "error",
        error: AnthropicError { kind, message },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

fn quota_rendering(reason: crate::quota::Reason) -> Rendering {
    use crate::quota::Reason;
    let limited = |message: &str, openai_type| Rendering {
        status: 429,
        message: message.to_owned(),
        openai_type,
        openai_code: Some("rate_limit_exceeded"),
        param: None,
        anthropic_type: "rate_limit_error",
    };
    match reason {
        Reason::Requests => limited(
            "Rate limit reached for requests per minute. Retry after the time in retry-after.",
            "requests",
        ),
        Reason::Concurrency => limited(
            "Too many requests in flight at once. Retry when one has finished.",
            "requests",
        ),
        Reason::Tokens => limited(
            "Rate limit reached for tokens per minute. Retry after the time in retry-after.",
            "tokens",
        ),
        Reason::Budget => Rendering {
            status: 429,
            message: "You exceeded your current quota: the budget for this period is spent.".into(),
            openai_type: "insufficient_quota",
            openai_code: Some("insufficient_quota"),
            param: None,
            anthropic_type: "rate_limit_error",
        },
        Reason::Unknown => Rendering {
            status: 503,
            message: "The gateway cannot check quotas right now; retry shortly.".into(),
            openai_type: "server_error",
            openai_code: Some("quota_unavailable"),
            param: None,
            anthropic_type: "api_error",
        },
    }
}

/// At most `MAX_ECHO` characters of client-supplied text.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_owned(),
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
mod tests;
