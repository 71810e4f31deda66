//! OpenAI `POST /v1/responses`: `instructions` plus `input` (a string or a list of items:
//! messages, function calls and their outputs).

use std::borrow::Cow;

use serde::Deserialize;

use super::common::read_common;
use super::content::{TextOr, WireContent, tools};
use crate::canonical::{ApiKind, CanonicalRequest, Message, Part, Role};
use crate::json::{FieldError, TopLevel};

/// `input`: a string or an array of items.
type WireInput<'a> = TextOr<'a, WireItem<'a>>;

/// One input item; only the fields the gateway reads.
#[derive(Debug, Deserialize)]
struct WireItem<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<WireContent<'a>>,
    #[serde(borrow, default)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    output: Option<WireContent<'a>>,
}

pub(crate) fn normalize<'a>(top: &TopLevel<'a>) -> Result<CanonicalRequest<'a>, FieldError> {
    let common = read_common(top)?;
    let mut messages = Vec::new();
    if let Some(instructions) = top.get::<Cow<'a, str>>("instructions")? {
        messages.push(message(Role::System, vec![Part::Text(instructions)], None));
    }
    match top.get::<WireInput<'a>>("input")? {
        None => {}
        Some(TextOr::Text(text)) => {
            messages.push(message(Role::User, vec![Part::Text(text)], None))
        }
        Some(TextOr::Items(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                messages.push(item_message(item, i)?);
            }
        }
    }
    Ok(common.into_request(
        ApiKind::Responses,
        messages,
        tools(top.get("tools")?.unwrap_or_default(), "tools")?,
        top.get("max_output_tokens")?,
    ))
}

fn message<'a>(
    role: Role,
    parts: Vec<Part<'a>>,
    tool_call_id: Option<Cow<'a, str>>,
) -> Message<'a> {
    Message {
        role,
        parts,
        tool_call_id,
    }
}

fn item_message<'a>(item: WireItem<'a>, index: usize) -> Result<Message<'a>, FieldError> {
    let path = || format!("input[{index}]");
    let invalid = |field: &str, message: &str| FieldError::Invalid {
        path: format!("{}.{field}", path()),
        message: message.to_owned(),
    };
    match item.kind.as_deref().unwrap_or("message") {
        "message" => {
            let role = match item.role.as_deref() {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                _ => {
                    return Err(invalid(
                        "role",
                        "expected system, developer, user or assistant",
                    ));
                }
            };
            let parts = match item.content {
                Some(content) => content.into_parts(&|| format!("{}.content", path()))?,
                None => Vec::new(),
            };
            Ok(message(role, parts, None))
        }
        "function_call" => {
            let name = item
                .name
                .ok_or_else(|| invalid("name", "a function_call needs `name`"))?;
            let call = Part::ToolCall {
                id: item.call_id,
                name,
                arguments: item.arguments.unwrap_or(Cow::Borrowed("")),
            };
            Ok(message(Role::Assistant, vec![call], None))
        }
        "function_call_output" => {
            let parts = match item.output {
                Some(output) => output.into_parts(&|| format!("{}.output", path()))?,
                None => Vec::new(),
            };
            Ok(message(Role::Tool, parts, item.call_id))
        }
        other => Ok(message(
            Role::Assistant,
            vec![Part::Other {
                kind: Cow::Owned(other.to_owned()),
            }],
            None,
        )),
    }
}
