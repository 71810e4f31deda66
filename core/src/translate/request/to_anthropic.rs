//! An OpenAI Chat Completions request as an Anthropic Messages request.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    MIN_THINKING_BUDGET, OneOrMany, TargetRequest, budget_for_effort, is_zero, only_no_op,
    untranslatable,
};
use crate::api::content::{TextOr, WireTool};
use crate::error::GatewayError;
use crate::json::TopLevel;
use crate::translate::mapping::arguments_object;

const API: &str = "the Anthropic Messages API";

pub(super) fn translate(
    top: &TopLevel<'_>,
    target: &TargetRequest<'_>,
) -> Result<Vec<u8>, GatewayError> {
    check_fields(top)?;
    let wire: Vec<WireMessage<'_>> = top.require("messages")?;
    let (system, messages) = conversation(wire)?;
    let max_tokens = match top.get::<u64>("max_completion_tokens")? {
        Some(tokens) => tokens,
        None => top
            .get::<u64>("max_tokens")?
            .unwrap_or(target.default_max_tokens),
    };
    let temperature = top.raw("temperature").filter(|raw| raw.get() != "null");
    if let Some(raw) = temperature {
        match serde_json::from_str::<f64>(raw.get()) {
            Ok(t) if t <= 1.0 => {}
            Ok(_) => {
                return Err(untranslatable(
                    "temperature",
                    format!("{API} accepts a temperature from 0 to 1"),
                ));
            }
            Err(_) => {
                return Err(GatewayError::InvalidField {
                    param: "temperature".into(),
                    message: "must be a number".into(),
                });
            }
        }
    }
    let tools = tools(top.get("tools")?.unwrap_or_default())?;
    let tool_choice = tool_choice(
        top.get("tool_choice")?,
        top.get::<bool>("parallel_tool_calls")? == Some(false),
        !tools.is_empty(),
    )?;
    let user = match top.get::<Cow<'_, str>>("user")? {
        Some(user) => Some(user),
        None => top.get("safety_identifier")?,
    };
    let body = Body {
        model: target.model,
        max_tokens,
        system,
        messages,
        temperature,
        top_p: top.raw("top_p").filter(|raw| raw.get() != "null"),
        stop_sequences: top
            .get::<OneOrMany<'_>>("stop")?
            .map(OneOrMany::into_vec)
            .filter(|stops| !stops.is_empty()),
        stream: top.get("stream")?,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        metadata: user.map(|user_id| Metadata { user_id }),
        thinking: thinking(top, max_tokens)?,
    };
    serde_json::to_vec(&body).map_err(|_| GatewayError::Internal("writing the translated request"))
}

/// Every top-level member is translated below, a no-op value of something Anthropic lacks, or
/// a 400 naming it.
fn check_fields(top: &TopLevel<'_>) -> Result<(), GatewayError> {
    for key in top.keys() {
        match key {
            // Translated.
            "model"
            | "messages"
            | "max_tokens"
            | "max_completion_tokens"
            | "temperature"
            | "top_p"
            | "stop"
            | "stream"
            | "tools"
            | "tool_choice"
            | "parallel_tool_calls"
            | "user"
            | "safety_identifier"
            | "reasoning_effort" => {}
            // Not needed (Anthropic streams always report usage) or about OpenAI's own
            // bookkeeping (stored completions, their tags, its prompt-cache routing), not the
            // answer: not sent.
            "stream_options"
            | "store"
            | "metadata"
            | "prompt_cache_key"
            | "prompt_cache_retention" => {}
            "n" => only_no_op(
                top,
                key,
                |v| v.as_u64() == Some(1),
                &format!("{API} returns one choice per request"),
            )?,
            "logprobs" => only_no_op(
                top,
                key,
                |v| *v == Value::Bool(false),
                &format!("{API} does not return log probabilities"),
            )?,
            "top_logprobs" => only_no_op(
                top,
                key,
                is_zero,
                &format!("{API} does not return log probabilities"),
            )?,
            "presence_penalty" | "frequency_penalty" => only_no_op(
                top,
                key,
                is_zero,
                &format!("{API} has no presence or frequency penalty"),
            )?,
            "logit_bias" => only_no_op(
                top,
                key,
                |v| v.as_object().is_some_and(serde_json::Map::is_empty),
                &format!("{API} has no logit bias"),
            )?,
            "response_format" => only_no_op(
                top,
                key,
                |v| v.get("type").and_then(Value::as_str) == Some("text"),
                &format!("{API} has no JSON mode or response schema"),
            )?,
            "modalities" => only_no_op(
                top,
                key,
                |v| *v == Value::Array(vec![Value::String("text".into())]),
                &format!("{API} answers in text only"),
            )?,
            "service_tier" => only_no_op(
                top,
                key,
                |v| matches!(v.as_str(), Some("auto" | "default")),
                &format!("{API} has no such service tier"),
            )?,
            // No value but `null` (absent) of these has a counterpart.
            "seed" => refuse(top, key, &format!("{API} has no sampling seed"))?,
            "audio" => refuse(top, key, &format!("{API} answers in text only"))?,
            "prediction" => refuse(top, key, &format!("{API} has no predicted outputs"))?,
            "web_search_options" => refuse(
                top,
                key,
                &format!("{API} has no web search option (its web search is a server tool)"),
            )?,
            "functions" | "function_call" => refuse(
                top,
                key,
                "it is deprecated: use `tools` and `tool_choice`, which translate",
            )?,
            "verbosity" => refuse(top, key, &format!("{API} has no verbosity setting"))?,
            _ => refuse(
                top,
                key,
                &format!("the gateway does not know a counterpart in {API}"),
            )?,
        }
    }
    Ok(())
}

/// A field with no counterpart at all: only `null` (as good as absent) passes.
fn refuse(top: &TopLevel<'_>, key: &str, reason: &str) -> Result<(), GatewayError> {
    only_no_op(top, key, |_| false, reason)
}

// The client's request, as far as it is read.

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<TextOr<'a, WirePart<'a>>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    /// Read only to refuse: a participant name, an assistant's audio, a legacy function call.
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    audio: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct WirePart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<WireImageUrl<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireImageUrl<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<WireFunctionCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(#[serde(borrow)] Cow<'a, str>),
    Named {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        function: Option<WireName<'a>>,
    },
}

#[derive(Debug, Deserialize)]
struct WireName<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

// The Anthropic request written.

#[derive(Debug, Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Content<'a>>,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
}

/// Message content (and `system`, and a tool result's content): a string or blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

impl<'a> Content<'a> {
    fn into_blocks(self) -> Vec<Block<'a>> {
        match self {
            Self::Text(text) => vec![Block::Text { text }],
            Self::Blocks(blocks) => blocks,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: ImageSource<'a>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        content: Content<'a>,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url {
        url: Cow<'a, str>,
    },
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: Schema<'a>,
}

/// A tool's parameters schema as sent, or (OpenAI lets a function take none) an empty object's.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Schema<'a> {
    Given(&'a RawValue),
    NoParameters {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: NoProperties,
    },
}

#[derive(Debug, Serialize)]
struct NoProperties {}

#[derive(Debug, Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    user_id: Cow<'a, str>,
}

#[derive(Debug, Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u64,
}

/// The system prompt (every system and developer message, in order: Anthropic has one, before
/// the conversation) and the messages, tool messages turned into `tool_result` blocks of a user
/// message (consecutive ones, and a user message after them, merged into one).
fn conversation(
    wire: Vec<WireMessage<'_>>,
) -> Result<(Option<Content<'_>>, Vec<Message<'_>>), GatewayError> {
    let mut system: Vec<Content<'_>> = Vec::new();
    let mut messages: Vec<Message<'_>> = Vec::with_capacity(wire.len());
    for (i, message) in wire.into_iter().enumerate() {
        let path = |field: &str| format!("messages[{i}].{field}");
        if message.name.is_some_and(|raw| raw.get() != "null") {
            return Err(untranslatable(
                path("name"),
                format!("{API} has no participant names"),
            ));
        }
        if message.function_call.is_some_and(|raw| raw.get() != "null") {
            return Err(untranslatable(
                path("function_call"),
                "it is deprecated: use `tool_calls`, which translate",
            ));
        }
        match message.role.as_ref() {
            "system" | "developer" => system.push(text_content(message.content, i)?),
            "user" => push_user(&mut messages, user_content(message.content, i)?),
            "assistant" => {
                if message.audio.is_some_and(|raw| raw.get() != "null") {
                    return Err(untranslatable(path("audio"), format!("{API} has no audio")));
                }
                messages.push(Message {
                    role: "assistant",
                    content: assistant_content(message, i)?,
                });
            }
            "tool" => {
                let tool_use_id =
                    message
                        .tool_call_id
                        .ok_or_else(|| GatewayError::InvalidField {
                            param: path("tool_call_id"),
                            message: "a tool message needs the id of the call it answers".into(),
                        })?;
                let content = text_content(message.content, i)?;
                push_user(
                    &mut messages,
                    Content::Blocks(vec![Block::ToolResult {
                        tool_use_id,
                        content,
                    }]),
                );
            }
            "function" => {
                return Err(untranslatable(
                    path("role"),
                    "`function` messages are deprecated: use `tool` messages, which translate",
                ));
            }
            other => {
                return Err(GatewayError::InvalidField {
                    param: path("role"),
                    message: format!(
                        "unknown role {other:?}; expected system, developer, user, assistant or tool"
                    ),
                });
            }
        }
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop(),
        _ => Some(Content::Blocks(
            system.into_iter().flat_map(Content::into_blocks).collect(),
        )),
    };
    Ok((system, messages))
}

/// A user turn: appended to the previous message when that is a user turn too (tool results,
/// then what the user said after them: Anthropic wants them in one message, results first).
fn push_user<'a>(messages: &mut Vec<Message<'a>>, content: Content<'a>) {
    match messages.last_mut() {
        Some(last) if last.role == "user" => {
            let earlier = std::mem::replace(&mut last.content, Content::Blocks(Vec::new()));
            let mut blocks = earlier.into_blocks();
            blocks.extend(content.into_blocks());
            last.content = Content::Blocks(blocks);
        }
        _ => messages.push(Message {
            role: "user",
            content,
        }),
    }
}

/// Content that may only be text (system, developer and tool messages).
fn text_content<'a>(
    content: Option<TextOr<'a, WirePart<'a>>>,
    i: usize,
) -> Result<Content<'a>, GatewayError> {
    match content {
        None => Ok(Content::Text(Cow::Borrowed(""))),
        Some(TextOr::Text(text)) => Ok(Content::Text(text)),
        Some(TextOr::Items(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| match (part.kind.as_ref(), part.text) {
                ("text", Some(text)) => Ok(Block::Text { text }),
                ("text", None) => Err(incomplete(i, j, "text")),
                (kind, _) => Err(bad_part(kind, i, j)),
            })
            .collect::<Result<_, _>>()
            .map(Content::Blocks),
    }
}

fn user_content<'a>(
    content: Option<TextOr<'a, WirePart<'a>>>,
    i: usize,
) -> Result<Content<'a>, GatewayError> {
    let parts = match content {
        None => return Ok(Content::Text(Cow::Borrowed(""))),
        Some(TextOr::Text(text)) => return Ok(Content::Text(text)),
        Some(TextOr::Items(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        blocks.push(match (part.kind.as_ref(), part.text, part.image_url) {
            ("text", Some(text), _) => Block::Text { text },
            ("text", None, _) => return Err(incomplete(i, j, "text")),
            ("image_url", _, Some(image)) => Block::Image {
                source: image_source(image.url, i, j)?,
            },
            ("image_url", _, None) => return Err(incomplete(i, j, "image_url")),
            ("input_audio", _, _) => {
                return Err(untranslatable(
                    format!("messages[{i}].content[{j}]"),
                    format!("{API} takes no audio input"),
                ));
            }
            ("file", _, _) => {
                return Err(untranslatable(
                    format!("messages[{i}].content[{j}]"),
                    format!("the gateway does not translate file parts to {API}"),
                ));
            }
            (kind, _, _) => return Err(bad_part(kind, i, j)),
        });
    }
    Ok(Content::Blocks(blocks))
}

/// A part of a known kind without the field that kind needs.
fn incomplete(i: usize, j: usize, field: &str) -> GatewayError {
    GatewayError::InvalidField {
        param: format!("messages[{i}].content[{j}].{field}"),
        message: format!("a `{field}` part needs `{field}`"),
    }
}

fn bad_part(kind: &str, i: usize, j: usize) -> GatewayError {
    untranslatable(
        format!("messages[{i}].content[{j}]"),
        format!(
            "a `{}` part here has no counterpart in {API}",
            kind.chars().take(40).collect::<String>()
        ),
    )
}

/// An `image_url`'s URL as an Anthropic image source: a base64 `data:` URL inline, any other
/// URL by reference.
fn image_source(url: Cow<'_, str>, i: usize, j: usize) -> Result<ImageSource<'_>, GatewayError> {
    if !url.starts_with("data:") {
        return Ok(ImageSource::Url { url });
    }
    let parsed = {
        let text: &str = &url;
        text.find(',').and_then(|comma| {
            let header = text.get("data:".len()..comma)?;
            let media_type = header.strip_suffix(";base64")?;
            let media_type = media_type.split(';').next().filter(|m| !m.is_empty())?;
            let start = comma.checked_add(1)?;
            let media_start = "data:".len();
            Some((
                media_start..media_start.checked_add(media_type.len())?,
                start..text.len(),
            ))
        })
    };
    let Some((media_type, data)) = parsed else {
        return Err(GatewayError::InvalidField {
            param: format!("messages[{i}].content[{j}].image_url.url"),
            message: "an inline image must be a base64 data URL (data:<media type>;base64,<data>)"
                .into(),
        });
    };
    Ok(ImageSource::Base64 {
        media_type: part_of(&url, media_type),
        data: part_of(&url, data),
    })
}

/// A range of `text`, borrowed when `text` is.
fn part_of<'a>(text: &Cow<'a, str>, range: std::ops::Range<usize>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.get(range).unwrap_or_default()),
        Cow::Owned(text) => Cow::Owned(text.get(range).unwrap_or_default().to_owned()),
    }
}

/// An assistant turn: its text (and refusal), then its tool calls as `tool_use` blocks.
fn assistant_content<'a>(message: WireMessage<'a>, i: usize) -> Result<Content<'a>, GatewayError> {
    let calls = message.tool_calls.unwrap_or_default();
    let refusal = message.refusal;
    let mut blocks = match message.content {
        Some(TextOr::Text(text)) if calls.is_empty() && refusal.is_none() => {
            return Ok(Content::Text(text));
        }
        Some(TextOr::Text(text)) => vec![Block::Text { text }],
        Some(TextOr::Items(parts)) => parts
            .into_iter()
            .enumerate()
            .map(
                |(j, part)| match (part.kind.as_ref(), part.text, part.refusal) {
                    ("text", Some(text), _) | ("refusal", _, Some(text)) => {
                        Ok(Block::Text { text })
                    }
                    ("text", None, _) => Err(incomplete(i, j, "text")),
                    ("refusal", _, None) => Err(incomplete(i, j, "refusal")),
                    (kind, _, _) => Err(bad_part(kind, i, j)),
                },
            )
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    // Anthropic refuses empty text blocks; an assistant turn with only tool calls often has
    // `content: ""`.
    blocks.retain(|block| !matches!(block, Block::Text { text } if text.is_empty()));
    if let Some(text) = refusal.filter(|text| !text.is_empty()) {
        blocks.push(Block::Text { text });
    }
    for (j, call) in calls.into_iter().enumerate() {
        let path = |field: &str| format!("messages[{i}].tool_calls[{j}]{field}");
        if call.kind.as_deref().is_some_and(|kind| kind != "function") {
            return Err(untranslatable(
                path(".type"),
                format!("only function tool calls have a counterpart in {API}"),
            ));
        }
        let (Some(id), Some(function)) = (call.id, call.function) else {
            return Err(GatewayError::InvalidField {
                param: path(""),
                message: "a tool call needs an `id` and a `function`".into(),
            });
        };
        blocks.push(Block::ToolUse {
            id,
            name: function.name,
            input: arguments_object(function.arguments.as_deref()).ok_or_else(|| {
                GatewayError::InvalidField {
                    param: path(".function.arguments"),
                    message: format!("must be a JSON object to be sent to {API}"),
                }
            })?,
        });
    }
    if blocks.is_empty() {
        return Ok(Content::Text(Cow::Borrowed("")));
    }
    Ok(Content::Blocks(blocks))
}

fn tools(wire: Vec<WireTool<'_>>) -> Result<Vec<Tool<'_>>, GatewayError> {
    wire.into_iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind.as_deref().is_some_and(|kind| kind != "function") {
                return Err(untranslatable(
                    format!("tools[{i}].type"),
                    format!("only function tools have a counterpart in {API}"),
                ));
            }
            let function = tool.function.ok_or_else(|| GatewayError::InvalidField {
                param: format!("tools[{i}].function"),
                message: "a function tool needs `function`".into(),
            })?;
            if function.strict == Some(true) {
                return Err(untranslatable(
                    format!("tools[{i}].function.strict"),
                    format!("{API} does not enforce tool schemas strictly"),
                ));
            }
            Ok(Tool {
                name: function.name,
                description: function.description,
                input_schema: match function.parameters.filter(|raw| raw.get() != "null") {
                    Some(schema) => Schema::Given(schema),
                    None => Schema::NoParameters {
                        kind: "object",
                        properties: NoProperties {},
                    },
                },
            })
        })
        .collect()
}

/// OpenAI's `tool_choice` and `parallel_tool_calls: false` as Anthropic's `tool_choice`.
fn tool_choice<'a>(
    wire: Option<WireToolChoice<'a>>,
    sequential: bool,
    has_tools: bool,
) -> Result<Option<ToolChoice<'a>>, GatewayError> {
    let choice = |kind, name| ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: None,
    };
    let mut choice = match wire {
        None if sequential && has_tools => choice("auto", None),
        None => return Ok(None),
        Some(WireToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => choice("auto", None),
            "required" => choice("any", None),
            // Anthropic's `none` takes no parallelism setting.
            "none" => return Ok(Some(choice("none", None))),
            _ => {
                return Err(GatewayError::InvalidField {
                    param: "tool_choice".into(),
                    message: "expected none, auto, required or a named function".into(),
                });
            }
        },
        Some(WireToolChoice::Named { kind, function }) => match (kind.as_ref(), function) {
            ("function", Some(function)) => choice("tool", Some(function.name)),
            _ => {
                return Err(untranslatable(
                    "tool_choice",
                    format!("only none, auto, required or one named function translate to {API}"),
                ));
            }
        },
    };
    if sequential {
        choice.disable_parallel_tool_use = Some(true);
    }
    Ok(Some(choice))
}

/// OpenAI's `reasoning_effort` as Anthropic extended thinking: a budget per level (at most half
/// the output budget: thinking counts against `max_tokens` in both APIs); `none` and `minimal`
/// ask for no thinking.
fn thinking(top: &TopLevel<'_>, max_tokens: u64) -> Result<Option<Thinking>, GatewayError> {
    let Some(effort) = top.get::<Cow<'_, str>>("reasoning_effort")? else {
        return Ok(None);
    };
    if matches!(effort.as_ref(), "none" | "minimal") {
        return Ok(None);
    }
    let Some(budget) = budget_for_effort(&effort) else {
        return Err(untranslatable(
            "reasoning_effort",
            format!("only none, minimal, low, medium and high translate to {API}"),
        ));
    };
    let budget = budget.min(max_tokens / 2);
    if budget < MIN_THINKING_BUDGET {
        return Err(untranslatable(
            "reasoning_effort",
            format!(
                "{API} needs a thinking budget of at least {MIN_THINKING_BUDGET} tokens, and the \
                 gateway gives thinking at most half of max_completion_tokens: ask for {} or more",
                MIN_THINKING_BUDGET.saturating_mul(2)
            ),
        ));
    }
    Ok(Some(Thinking {
        kind: "enabled",
        budget_tokens: budget,
    }))
}
