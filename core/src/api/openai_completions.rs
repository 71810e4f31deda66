//! OpenAI `POST /v1/completions` (legacy text completions) and `POST /v1/embeddings`: a model
//! and a prompt given as text or token ids.

use super::common::read_common;
use super::content::PromptInput;
use crate::canonical::{ApiKind, CanonicalRequest, Message, Role};
use crate::json::{FieldError, TopLevel};

pub(crate) fn normalize_completions<'a>(
    top: &TopLevel<'a>,
) -> Result<CanonicalRequest<'a>, FieldError> {
    normalize(top, ApiKind::Completions, "prompt")
}

pub(crate) fn normalize_embeddings<'a>(
    top: &TopLevel<'a>,
) -> Result<CanonicalRequest<'a>, FieldError> {
    normalize(top, ApiKind::Embeddings, "input")
}

fn normalize<'a>(
    top: &TopLevel<'a>,
    api: ApiKind,
    prompt_field: &'static str,
) -> Result<CanonicalRequest<'a>, FieldError> {
    let common = read_common(top)?;
    let PromptInput(parts) = top.require(prompt_field)?;
    let max_output_tokens = match api {
        ApiKind::Embeddings => None,
        _ => top.get("max_tokens")?,
    };
    let prompt = Message {
        role: Role::User,
        parts,
        tool_call_id: None,
    };
    Ok(common.into_request(api, vec![prompt], Vec::new(), max_output_tokens))
}
