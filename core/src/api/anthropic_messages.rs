//! Anthropic `POST /v1/messages`.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{read_common, require_non_empty};
use super::content::{WireContent, tools};
use crate::canonical::{ApiKind, CanonicalRequest, Message, Role};
use crate::json::{FieldError, TopLevel};

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: WireContent<'a>,
}

pub(crate) fn normalize<'a>(top: &TopLevel<'a>) -> Result<CanonicalRequest<'a>, FieldError> {
    let mut common = read_common(top)?;
    // Anthropic streams always carry usage; there is no option to ask for it.
    common.include_usage = false;
    let wire: Vec<WireMessage<'a>> = require_non_empty(top, "messages")?;
    let mut messages = Vec::with_capacity(wire.len().saturating_add(1));
    if let Some(system) = top.get::<WireContent<'a>>("system")? {
        messages.push(Message {
            role: Role::System,
            parts: system.into_parts(&|| "system".to_owned())?,
            tool_call_id: None,
        });
    }
    for (i, message) in wire.into_iter().enumerate() {
        let role = match message.role.as_ref() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(FieldError::Invalid {
                    path: format!("messages[{i}].role"),
                    message: format!("unknown role {other:?}; expected user or assistant"),
                });
            }
        };
        messages.push(Message {
            role,
            parts: message
                .content
                .into_parts(&|| format!("messages[{i}].content"))?,
            tool_call_id: None,
        });
    }
    Ok(common.into_request(
        ApiKind::Messages,
        messages,
        tools(top.get("tools")?.unwrap_or_default(), "tools")?,
        top.get("max_tokens")?,
    ))
}
