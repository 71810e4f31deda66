use crate::canonical::CanonicalRequest;
use crate::error::GatewayError;
use crate::routing::ModelSpec;

/// Rejects a request whose prompt plus requested output cannot fit the model's context window.
/// Without a requested output limit only the prompt is checked: the server then generates
/// whatever room is left.
pub fn check_context_window(
    request: &CanonicalRequest<'_>,
    spec: &ModelSpec,
) -> Result<(), GatewayError> {
    let Some(limit) = spec.context_window else {
        return Ok(());
    };
    let prompt = request.rough_prompt_tokens();
    let output = request.max_output_tokens.unwrap_or(0);
    if prompt.saturating_add(output) > limit {
        return Err(GatewayError::ContextLengthExceeded {
            limit,
            prompt,
            output,
        });
    }
    Ok(())
}
