//! An Anthropic Messages request as an OpenAI Chat Completions request.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{TargetRequest, effort_for_budget, only_no_op, untranslatable};
use crate::api::content::{TextOr, WireTool};
use crate::error::GatewayError;
use crate::json::TopLevel;
use crate::translate::wire::{OpenAiFunctionCall, OpenAiToolCall};

const API: &str = "the OpenAI Chat Completions API";

pub(super) fn translate(
    top: &TopLevel<'_>,
    target: &TargetRequest<'_>,
) -> Result<Vec<u8>, GatewayError> {
    check_fields(top)?;
    let mut messages = Vec::new();
    if let Some(system) = top.get::<TextOr<'_, WireBlock<'_>>>("system")? {
        messages.push(Message::new("system", Some(system_content(system)?)));
    }
    let wire: Vec<WireMessage<'_>> = top.require("messages")?;
    for (i, message) in wire.into_iter().enumerate() {
        match message.role.as_ref() {
            "user" => user_messages(message.content, i, &mut messages)?,
            "assistant" => messages.push(assistant_message(message.content, i)?),
            other => {
                return Err(GatewayError::InvalidField {
                    param: format!("messages[{i}].role"),
                    message: format!("unknown role {other:?}; expected user or assistant"),
                });
            }
        }
    }
    let stream = top.get::<bool>("stream")?;
    let (tool_choice, parallel_tool_calls) = match top.get("tool_choice")? {
        Some(choice) => tool_choice(choice)?,
        None => (None, None),
    };
    let tools = tools(top.get("tools")?.unwrap_or_default())?;
    let body = Body {
        model: target.model,
        messages,
        max_completion_tokens: top.get("max_tokens")?,
        temperature: top.raw("temperature").filter(|raw| raw.get() != "null"),
        top_p: top.raw("top_p").filter(|raw| raw.get() != "null"),
        stop: top
            .get::<Vec<Cow<'_, str>>>("stop_sequences")?
            .filter(|stops| !stops.is_empty()),
        stream,
        // Usage is reported in a stream's last chunk only when asked for; Anthropic streams
        // always report it, so it is asked for.
        stream_options: (stream == Some(true)).then_some(StreamOptions {
            include_usage: true,
        }),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls,
        user: top
            .get::<WireMetadata<'_>>("metadata")?
            .and_then(|metadata| metadata.user_id),
        reasoning_effort: reasoning_effort(top)?,
    };
    serde_json::to_vec(&body).map_err(|_| GatewayError::Internal("writing the translated request"))
}

/// Every top-level member is translated below, a no-op value of something OpenAI lacks, or a
/// 400 naming it.
fn check_fields(top: &TopLevel<'_>) -> Result<(), GatewayError> {
    for key in top.keys() {
        match key {
            "model" | "messages" | "system" | "max_tokens" | "temperature" | "top_p"
            | "stop_sequences" | "stream" | "tools" | "tool_choice" | "metadata" | "thinking" => {}
            "service_tier" => only_no_op(
                top,
                key,
                |v| matches!(v.as_str(), Some("auto" | "standard_only")),
                &format!("{API} has no such service tier"),
            )?,
            // No value but `null` (absent) of these has a counterpart.
            "top_k" => only_no_op(top, key, |_| false, &format!("{API} has no top_k"))?,
            "container" | "mcp_servers" | "context_management" => only_no_op(
                top,
                key,
                |_| false,
                &format!("it configures Anthropic's server-side tools, which {API} lacks"),
            )?,
            _ => only_no_op(
                top,
                key,
                |_| false,
                &format!("the gateway does not know a counterpart in {API}"),
            )?,
        }
    }
    Ok(())
}

// The client's request, as far as it is read.

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: TextOr<'a, WireBlock<'a>>,
}

/// A content block of any kind (cache_control and citations are not read: they do not travel).
#[derive(Debug, Deserialize)]
struct WireBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    /// Read as an image source only in image blocks (a `search_result`'s is a string).
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<TextOr<'a, WireBlock<'a>>>,
}

#[derive(Debug, Deserialize)]
struct WireSource<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireMetadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct WireThinking {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    budget_tokens: Option<u64>,
}

// The OpenAI request written.

#[derive(Debug, Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    /// `null` for an assistant turn with only tool calls.
    content: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OpenAiToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    fn new(role: &'static str, content: Option<Content<'a>>) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Debug, Serialize)]
struct ImageUrl<'a> {
    url: Cow<'a, str>,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Debug, Serialize)]
struct Function<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ToolChoice<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'a>,
    },
}

#[derive(Debug, Serialize)]
struct Named<'a> {
    name: Cow<'a, str>,
}

/// Anthropic's `system`, a string or text blocks, as a system message's content.
fn system_content<'a>(system: TextOr<'a, WireBlock<'a>>) -> Result<Content<'a>, GatewayError> {
    match system {
        TextOr::Text(text) => Ok(Content::Text(text)),
        TextOr::Items(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(j, block)| match (block.kind.as_ref(), block.text) {
                ("text", Some(text)) => Ok(Part::Text { text }),
                (kind, _) => Err(bad_block(format!("system[{j}]"), kind)),
            })
            .collect::<Result<_, _>>()
            .map(Content::Parts),
    }
}

/// A user turn: its `tool_result` blocks as `tool` messages (first: OpenAI wants them right
/// after the assistant turn that called), then the rest as a user message.
fn user_messages<'a>(
    content: TextOr<'a, WireBlock<'a>>,
    i: usize,
    messages: &mut Vec<Message<'a>>,
) -> Result<(), GatewayError> {
    let blocks = match content {
        TextOr::Text(text) => {
            messages.push(Message::new("user", Some(Content::Text(text))));
            return Ok(());
        }
        TextOr::Items(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let had_blocks = !blocks.is_empty();
    for (j, block) in blocks.into_iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        match block.kind.as_ref() {
            "text" => parts.push(text_part(block.text, &path)?),
            "image" => parts.push(image_part(block.source, &path)?),
            "tool_result" => {
                let call_id = block
                    .tool_use_id
                    .ok_or_else(|| GatewayError::InvalidField {
                        param: format!("{}.tool_use_id", path()),
                        message: "a tool result needs the id of the call it answers".into(),
                    })?;
                let content = tool_result_content(block.content, &path)?;
                let mut message = Message::new("tool", Some(content));
                message.tool_call_id = Some(call_id);
                messages.push(message);
            }
            "document" => {
                return Err(untranslatable(
                    path(),
                    format!("documents (PDF, text) are not translated to {API}"),
                ));
            }
            kind => return Err(bad_block(path(), kind)),
        }
    }
    if !parts.is_empty() || !had_blocks {
        messages.push(Message::new("user", Some(Content::Parts(parts))));
    }
    Ok(())
}

fn text_part<'a>(
    text: Option<Cow<'a, str>>,
    path: &dyn Fn() -> String,
) -> Result<Part<'a>, GatewayError> {
    let text = text.ok_or_else(|| GatewayError::InvalidField {
        param: format!("{}.text", path()),
        message: "a text block needs `text`".into(),
    })?;
    Ok(Part::Text { text })
}

/// An image block as an `image_url` part: base64 data as a `data:` URL, a URL as it is.
fn image_part<'a>(
    source: Option<&'a RawValue>,
    path: &dyn Fn() -> String,
) -> Result<Part<'a>, GatewayError> {
    let invalid = |message: &str| GatewayError::InvalidField {
        param: format!("{}.source", path()),
        message: message.to_owned(),
    };
    let source = source.ok_or_else(|| invalid("an image block needs a `source`"))?;
    let source: WireSource<'a> = serde_json::from_str(source.get())
        .map_err(|_| invalid("an image source is an object with a `type`"))?;
    let url = match (
        source.kind.as_ref(),
        source.media_type,
        source.data,
        source.url,
    ) {
        ("base64", Some(media_type), Some(data), _) => {
            Cow::Owned(format!("data:{media_type};base64,{data}"))
        }
        ("url", _, _, Some(url)) => url,
        ("base64" | "url", _, _, _) => {
            return Err(invalid(
                "a base64 source needs `media_type` and `data`, a url source `url`",
            ));
        }
        _ => {
            return Err(untranslatable(
                format!("{}.source", path()),
                format!("only base64 and url image sources translate to {API}"),
            ));
        }
    };
    Ok(Part::ImageUrl {
        image_url: ImageUrl { url },
    })
}

/// A tool result's content as a `tool` message's: OpenAI takes only text there.
fn tool_result_content<'a>(
    content: Option<TextOr<'a, WireBlock<'a>>>,
    path: &dyn Fn() -> String,
) -> Result<Content<'a>, GatewayError> {
    match content {
        None => Ok(Content::Text(Cow::Borrowed(""))),
        Some(TextOr::Text(text)) => Ok(Content::Text(text)),
        Some(TextOr::Items(blocks)) => blocks
            .into_iter()
            .enumerate()
            .map(|(k, block)| match (block.kind.as_ref(), block.text) {
                ("text", Some(text)) => Ok(Part::Text { text }),
                (kind, _) => Err(untranslatable(
                    format!("{}.content[{k}]", path()),
                    format!(
                        "a tool result's `{}` block has no counterpart in {API}, whose tool \
                         messages hold text only",
                        truncate_kind(kind)
                    ),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Content::Parts),
    }
}

/// An assistant turn: its text, and its `tool_use` blocks as tool calls. Thinking blocks of
/// earlier turns are not sent: OpenAI has no field for them (and Anthropic itself ignores
/// them outside the current tool-use turn).
fn assistant_message<'a>(
    content: TextOr<'a, WireBlock<'a>>,
    i: usize,
) -> Result<Message<'a>, GatewayError> {
    let blocks = match content {
        TextOr::Text(text) => return Ok(Message::new("assistant", Some(Content::Text(text)))),
        TextOr::Items(blocks) => blocks,
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        match block.kind.as_ref() {
            "text" => texts.push(text_part(block.text, &path)?),
            "tool_use" => {
                let (Some(id), Some(name)) = (block.id, block.name) else {
                    return Err(GatewayError::InvalidField {
                        param: path(),
                        message: "a tool_use block needs `id` and `name`".into(),
                    });
                };
                calls.push(OpenAiToolCall {
                    id,
                    kind: "function",
                    function: OpenAiFunctionCall {
                        name,
                        arguments: block.input.map_or("{}", RawValue::get),
                    },
                });
            }
            "thinking" | "redacted_thinking" => {}
            kind => return Err(bad_block(path(), kind)),
        }
    }
    let content = match texts.len() {
        0 => None,
        1 => texts.pop().map(|part| match part {
            Part::Text { text } => Content::Text(text),
            image @ Part::ImageUrl { .. } => Content::Parts(vec![image]),
        }),
        _ => Some(Content::Parts(texts)),
    };
    let mut message = Message::new("assistant", content);
    message.tool_calls = calls;
    Ok(message)
}

fn bad_block(param: String, kind: &str) -> GatewayError {
    untranslatable(
        param,
        format!(
            "a `{}` block here has no counterpart in {API}",
            truncate_kind(kind)
        ),
    )
}

/// A block type as an error repeats it: the client's text, so bounded.
fn truncate_kind(kind: &str) -> String {
    kind.chars().take(40).collect()
}

fn tools(wire: Vec<WireTool<'_>>) -> Result<Vec<Tool<'_>>, GatewayError> {
    wire.into_iter()
        .enumerate()
        .map(|(i, tool)| {
            if let Some(kind) = tool.kind.as_deref().filter(|kind| *kind != "custom") {
                return Err(untranslatable(
                    format!("tools[{i}]"),
                    format!(
                        "`{}` is a tool Anthropic runs itself; {API} has no counterpart",
                        truncate_kind(kind)
                    ),
                ));
            }
            let name = tool.name.ok_or_else(|| GatewayError::InvalidField {
                param: format!("tools[{i}].name"),
                message: "a tool needs a `name`".into(),
            })?;
            Ok(Tool {
                kind: "function",
                function: Function {
                    name,
                    description: tool.description,
                    parameters: tool.input_schema,
                },
            })
        })
        .collect()
}

/// Anthropic's `tool_choice` as OpenAI's, with `disable_parallel_tool_use` as
/// `parallel_tool_calls: false`.
fn tool_choice(
    wire: WireToolChoice<'_>,
) -> Result<(Option<ToolChoice<'_>>, Option<bool>), GatewayError> {
    let choice = match (wire.kind.as_ref(), wire.name) {
        ("auto", _) => ToolChoice::Mode("auto"),
        ("any", _) => ToolChoice::Mode("required"),
        ("none", _) => ToolChoice::Mode("none"),
        ("tool", Some(name)) => ToolChoice::Named {
            kind: "function",
            function: Named { name },
        },
        _ => {
            return Err(GatewayError::InvalidField {
                param: "tool_choice".into(),
                message: "expected auto, any, none, or tool with a name".into(),
            });
        }
    };
    let parallel = (wire.disable_parallel_tool_use == Some(true)).then_some(false);
    Ok((Some(choice), parallel))
}

/// Extended thinking as OpenAI's `reasoning_effort` (the level whose budget is nearest).
fn reasoning_effort(top: &TopLevel<'_>) -> Result<Option<&'static str>, GatewayError> {
    let Some(thinking) = top.get::<WireThinking>("thinking")? else {
        return Ok(None);
    };
    match (thinking.kind.as_str(), thinking.budget_tokens) {
        ("disabled", _) => Ok(None),
        ("enabled", Some(budget)) => Ok(Some(effort_for_budget(budget))),
        ("enabled", None) => Err(GatewayError::InvalidField {
            param: "thinking.budget_tokens".into(),
            message: "enabled thinking needs a budget".into(),
        }),
        _ => Err(untranslatable(
            "thinking.type",
            format!("only enabled and disabled thinking translate to {API}"),
        )),
    }
}
