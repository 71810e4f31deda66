use crate::api;
use crate::canonical::ApiKind;
use crate::config::Config;
use crate::error::GatewayError;
use crate::guardrails::{Hits, RequestVerdict, Violation};
use crate::routing::check_context_window;
use crate::tokens::{Budget, Estimate, Family, estimate_request};

/// Where a request goes, decided from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRequest {
    /// The model as the client named it (an alias, before any rewrite).
    pub requested_model: String,
    /// Value for the model header: the model the upstream serves.
    pub model: String,
    /// Value for the base-model header: the model whose pool serves `model`.
    pub base_model: String,
    /// The body to send instead of the client's, when the model was rewritten.
    pub body: Option<Vec<u8>>,
    /// The replica pool that serves `base_model`.
    pub pool: String,
    /// Stable hash of the prompt's start, for prefix affinity.
    pub prefix_hash: u64,
    pub api: ApiKind,
    pub stream: bool,
    /// Tokenizer family of the model, for estimates.
    pub family: Family,
    /// Prompt tokens and output budget, before the request goes upstream.
    pub estimate: Estimate,
    /// The gateway asked the upstream for stream usage the client did not ask for: remove it
    /// from the response.
    pub strip_usage: bool,
    /// What the guardrails found and decided, when they are on.
    pub guardrails: Option<RequestVerdict>,
    /// The end user the request names (OpenAI `user`, Anthropic `metadata.user_id`): what
    /// keeps a user on one chain when its model is sticky by user.
    pub user: Option<String>,
}

impl RoutedRequest {
    /// The LoRA adapter the request is for: the model, when it is not its own base model.
    pub fn adapter(&self) -> Option<&str> {
        (self.model != self.base_model).then_some(self.model.as_str())
    }
}

/// Rejects a body, or a body so far, that is over the configured limit.
pub fn check_body_size(config: &Config, size: usize) -> Result<(), GatewayError> {
    let limit = config.limits.max_request_body_bytes;
    if u64::try_from(size).unwrap_or(u64::MAX) > limit {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// Parses the body once, resolves its model and checks it fits the model's context window.
pub fn route_request(
    config: &Config,
    api: ApiKind,
    body: &[u8],
) -> Result<RoutedRequest, GatewayError> {
    route_request_for(config, api, body, PolicyKeys::default()).map_err(|(error, _)| error)
}

/// What, besides the model, chooses a request's guardrail policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyKeys<'a> {
    /// The Envoy route name, read only when a policy is chosen by route.
    pub route: Option<&'a str>,
    /// The tenant quotas identified.
    pub tenant: Option<&'a str>,
}

/// `route_request` for a known route and tenant. A rejection comes with the guardrail hits
/// that led to it, for metrics and audit.
pub fn route_request_for(
    config: &Config,
    api: ApiKind,
    body: &[u8],
    keys: PolicyKeys<'_>,
) -> Result<RoutedRequest, (GatewayError, Hits)> {
    let no_hits = |error: GatewayError| (error, Hits::default());
    let parsed = api::parse(api, body).map_err(no_hits)?;
    let requested = parsed.request.model.as_ref();
    if !is_header_safe(requested) {
        return Err(no_hits(GatewayError::InvalidField {
            param: "model".into(),
            message: "must be printable ASCII".into(),
        }));
    }
    let resolution = config
        .catalog
        .resolve(requested)
        .ok_or_else(|| no_hits(GatewayError::ModelNotFound(requested.to_owned())))?;
    let (routed, changes) = route_parsed(config, api, &parsed, &resolution).map_err(no_hits)?;
    check_context_window(&parsed.request, &routed.estimate, resolution.spec).map_err(no_hits)?;
    let verdict = match &config.guardrails {
        Some(guardrails) => Some(
            guardrails
                .0
                .check_request(
                    keys.route,
                    keys.tenant,
                    &routed.model,
                    &parsed.request,
                    routed.estimate.prompt_tokens,
                )
                .map_err(|(violation, hits)| (violation_error(violation), hits))?,
        ),
        None => None,
    };
    apply_edits(routed, verdict, body, &parsed.top, &changes).map_err(no_hits)
}

fn violation_error(violation: Violation) -> GatewayError {
    match violation {
        Violation::Blocked(rule) => GatewayError::ContentPolicy { rule },
        Violation::ModelNotAllowed(model) => GatewayError::ModelNotAllowed(model),
        Violation::Limit {
            field,
            limit,
            requested,
        } => GatewayError::PolicyLimit {
            field,
            limit,
            requested,
        },
    }
}

/// The body going upstream, from the routing `changes` (top-level members) and the guardrails'
/// redactions, built in one pass (`edits`): only the affected values change.
fn apply_edits(
    mut routed: RoutedRequest,
    verdict: Option<RequestVerdict>,
    original: &[u8],
    top: &crate::json::TopLevel<'_>,
    changes: &[(&str, String)],
) -> Result<RoutedRequest, GatewayError> {
    let replacements = verdict
        .as_ref()
        .map_or(&[][..], |v| v.replacements.as_slice());
    routed.body = edits::rewrite(original, top, changes, replacements).map_err(|_| {
        GatewayError::ContentPolicy {
            // The text to redact is not a plain string value (an Anthropic tool_use input
            // object): block rather than let it through.
            rule: "unredactable".into(),
        }
    })?;
    routed.guardrails = verdict;
    Ok(routed)
}

/// Top-level members the body going upstream needs changed: (key, raw JSON value).
type TopChanges = Vec<(&'static str, String)>;

/// The routing decision for a parsed, resolved request (before guardrails), and the top-level
/// members the body going upstream needs changed.
fn route_parsed(
    config: &Config,
    api: ApiKind,
    parsed: &api::ParsedRequest<'_>,
    resolution: &crate::routing::Resolution<'_>,
) -> Result<(RoutedRequest, TopChanges), GatewayError> {
    let request = &parsed.request;
    let family = resolution
        .spec
        .tokenizer
        .unwrap_or_else(|| Family::guess(&resolution.base_model));
    let estimate = estimate_request(
        request,
        family,
        Budget {
            default_max_output_tokens: resolution
                .spec
                .default_max_output_tokens
                .unwrap_or(config.tokens.default_max_output_tokens),
            context_window: resolution.spec.context_window,
        },
    );
    let mut changes: TopChanges = Vec::new();
    if resolution.rewritten {
        let value = serde_json::to_string(resolution.model.as_ref())
            .map_err(|_| GatewayError::Internal("encoding the model name failed"))?;
        changes.push(("model", value));
    }
    // OpenAI streams carry usage only when asked; ask for it, and take it out again.
    let strip_usage = config.tokens.stream_usage
        && request.stream
        && !request.include_usage
        && matches!(api, ApiKind::ChatCompletions | ApiKind::Completions);
    if strip_usage {
        changes.push(("stream_options", stream_options_with_usage(&parsed.top)));
    }
    let routed = RoutedRequest {
        requested_model: request.model.to_string(),
        model: resolution.model.to_string(),
        base_model: resolution.base_model.to_string(),
        body: None,
        pool: resolution.spec.pool.clone(),
        prefix_hash: request.prefix_hash,
        api,
        stream: request.stream,
        family,
        estimate,
        strip_usage,
        guardrails: None,
        user: request.user.as_deref().map(str::to_owned),
    };
    Ok((routed, changes))
}

/// The client's `stream_options` (if an object) with `include_usage: true`.
fn stream_options_with_usage(top: &crate::json::TopLevel<'_>) -> String {
    const ONLY_USAGE: &str = r#"{"include_usage":true}"#;
    let Some(mut options) = top.raw("stream_options").and_then(|raw| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get()).ok()
    }) else {
        // The common case (no options, or not an object): nothing to merge.
        return ONLY_USAGE.to_owned();
    };
    options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    serde_json::to_string(&options).unwrap_or_else(|_| ONLY_USAGE.to_owned())
}

/// Model names become header values: visible ASCII and spaces only, so no client can smuggle
/// control characters or line breaks into a header.
fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

mod edits;

#[cfg(test)]
mod tests;
