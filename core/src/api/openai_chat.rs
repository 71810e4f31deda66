//! OpenAI `POST /v1/chat/completions`.

use std::borrow::Cow;

use serde::Deserialize;

use super::common::{read_common, require_non_empty};
use super::content::{WireContent, WireTool, tools};
use crate::canonical::{ApiKind, CanonicalRequest, Message, Part, Role};
use crate::json::{FieldError, TopLevel};

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<WireContent<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Cow<'a, str>>,
    /// Deprecated single function call of older clients.
    #[serde(borrow, default)]
    function_call: Option<WireFunctionCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

pub(crate) fn normalize<'a>(top: &TopLevel<'a>) -> Result<CanonicalRequest<'a>, FieldError> {
    let common = read_common(top)?;
    let wire: Vec<WireMessage<'a>> = require_non_empty(top, "messages")?;
    let mut messages = Vec::with_capacity(wire.len());
    for (i, message) in wire.into_iter().enumerate() {
        messages.push(message_of(message, i)?);
    }
    let mut tool_defs = tools(top.get("tools")?.unwrap_or_default(), "tools")?;
    let legacy: Vec<WireTool<'a>> = top.get("functions")?.unwrap_or_default();
    tool_defs.extend(tools(legacy, "functions")?);
    let max_output_tokens = match top.get("max_completion_tokens")? {
        Some(tokens) => Some(tokens),
        None => top.get("max_tokens")?,
    };
    Ok(common.into_request(
        ApiKind::ChatCompletions,
        messages,
        tool_defs,
        max_output_tokens,
    ))
}

fn message_of<'a>(wire: WireMessage<'a>, index: usize) -> Result<Message<'a>, FieldError> {
    let role = match wire.role.as_ref() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        other => {
            return Err(FieldError::Invalid {
                path: format!("messages[{index}].role"),
                message: format!(
                    "unknown role {other:?}; expected system, developer, user, assistant or tool"
                ),
            });
        }
    };
    let mut parts = match wire.content {
        Some(content) => content.into_parts(&|| format!("messages[{index}].content"))?,
        None => Vec::new(),
    };
    let calls = wire
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| (call.id, call.function))
        .chain(wire.function_call.map(|call| (None, call)));
    for (id, function) in calls {
        parts.push(Part::ToolCall {
            id,
            name: function.name,
            arguments: function.arguments.unwrap_or(Cow::Borrowed("")),
        });
    }
    Ok(Message {
        role,
        parts,
        tool_call_id: wire.tool_call_id,
    })
}
