//! Fields every API shape has in common.

use std::borrow::Cow;

use serde::Deserialize;

use crate::canonical::{ApiKind, CanonicalRequest, Message, Tool};
use crate::json::{FieldError, TopLevel};

pub(crate) struct Common<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    pub include_usage: bool,
    pub user: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata<'a> {
    /// Anthropic's end-user id.
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

pub(crate) fn read_common<'a>(top: &TopLevel<'a>) -> Result<Common<'a>, FieldError> {
    let model: Cow<'a, str> = top.require("model")?;
    if model.trim().is_empty() {
        return Err(FieldError::Invalid {
            path: "model".into(),
            message: "must not be empty".into(),
        });
    }
    let stream = top.get("stream")?.unwrap_or(false);
    let include_usage = top
        .get::<StreamOptions>("stream_options")?
        .unwrap_or_default()
        .include_usage;
    let metadata_user = match top.raw("metadata") {
        // OpenAI's `metadata` is a free-form string map; only Anthropic's `user_id` is read.
        Some(_) => top
            .get::<Metadata<'a>>("metadata")
            .ok()
            .flatten()
            .and_then(|m| m.user_id),
        None => None,
    };
    let user = match top.get("user")? {
        Some(user) => Some(user),
        None => match top.get("safety_identifier")? {
            Some(id) => Some(id),
            None => metadata_user,
        },
    };
    Ok(Common {
        model,
        stream,
        include_usage,
        user,
    })
}

impl<'a> Common<'a> {
    /// The canonical request from these common fields plus the API-specific ones.
    pub(crate) fn into_request(
        self,
        api: ApiKind,
        messages: Vec<Message<'a>>,
        tools: Vec<Tool<'a>>,
        max_output_tokens: Option<u64>,
    ) -> CanonicalRequest<'a> {
        CanonicalRequest {
            api,
            model: self.model,
            stream: self.stream,
            include_usage: self.include_usage,
            messages,
            tools,
            max_output_tokens,
            user: self.user,
            prefix_hash: 0,
        }
    }
}

/// A required array field that must not be empty (`messages`).
pub(crate) fn require_non_empty<'a, T: Deserialize<'a>>(
    top: &TopLevel<'a>,
    key: &'static str,
) -> Result<Vec<T>, FieldError> {
    let items: Vec<T> = top.require(key)?;
    if items.is_empty() {
        return Err(FieldError::Invalid {
            path: key.into(),
            message: "must contain at least one message".into(),
        });
    }
    Ok(items)
}
