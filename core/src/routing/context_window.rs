use crate::canonical::CanonicalRequest;
use crate::error::GatewayError;
use crate::routing::ModelSpec;
use crate::tokens::Estimate;

/// Rejects a request whose prompt plus requested output cannot fit the model's context window.
/// The prompt is the estimate that errs high (`Estimate::prompt_tokens_high`: the family's
/// chat-format overheads for every message and tool, the text with a margin), so a request
/// the model server would refuse for its length is refused here, in the client's API format.
/// Without a requested output limit only the prompt is checked: the server then generates
/// whatever room is left.
pub fn check_context_window(
    request: &CanonicalRequest<'_>,
    estimate: &Estimate,
    spec: &ModelSpec,
) -> Result<(), GatewayError> {
    let Some(limit) = spec.context_window else {
        return Ok(());
    };
    let prompt = estimate.prompt_tokens_high;
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
