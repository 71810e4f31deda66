use crate::api;
use crate::canonical::ApiKind;
use crate::config::Config;
use crate::error::GatewayError;
use crate::routing::check_context_window;

/// Where a request goes, decided from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRequest {
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
    let parsed = api::parse(api, body)?;
    let requested = parsed.request.model.as_ref();
    if !is_header_safe(requested) {
        return Err(GatewayError::InvalidField {
            param: "model".into(),
            message: "must be printable ASCII".into(),
        });
    }
    let resolution = config
        .catalog
        .resolve(requested)
        .ok_or_else(|| GatewayError::ModelNotFound(requested.to_owned()))?;
    check_context_window(&parsed.request, resolution.spec)?;
    let body = if resolution.rewritten {
        let value = serde_json::to_string(resolution.model.as_ref())
            .map_err(|_| GatewayError::Internal("encoding the model name failed"))?;
        Some(parsed.top.with_replaced("model", &value))
    } else {
        None
    };
    Ok(RoutedRequest {
        model: resolution.model.into_owned(),
        base_model: resolution.base_model.into_owned(),
        body,
        pool: resolution.spec.pool.clone(),
        prefix_hash: parsed.request.prefix_hash,
    })
}

/// Model names become header values: visible ASCII and spaces only, so no client can smuggle
/// control characters or line breaks into a header.
fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
