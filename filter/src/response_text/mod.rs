//! Where model-produced text lives in every response shape: the one table the response
//! guardrails (what they scan and redact in place) and token accounting (what they count when
//! the upstream reports no usage) both read.
//!
//! | shape | text (kind) |
//! |---|---|
//! | OpenAI chat, JSON | `choices[i].message.` `content` (also `content[k].text`), `reasoning_content` / `reasoning` (reasoning), `refusal`, `tool_calls[j].function.` `name` / `arguments` (tool name / tool arguments, a JSON text), legacy `function_call.` `name` / `arguments` |
//! | OpenAI chat, stream chunk | the same under `choices[i].delta` (channel per choice `index`, per tool call `index`) |
//! | OpenAI completions | `choices[i].text` |
//! | Anthropic messages, JSON (and `message_start`'s `message`) | `content[k].` `text`, `thinking` (reasoning), `name` (tool name), `input` (tool arguments: a JSON value, not a string) |
//! | Anthropic events | `content_block_start`'s `content_block` as a JSON block; `content_block_delta`'s `delta.` `text`, `partial_json` (tool arguments), `thinking` (channel per block `index`) |
//! | Responses, JSON | `output[k]`: message `content[c].text` / `.refusal`, function call `arguments` / `name`, reasoning `summary[s].text` / `content[c].text`, custom tool call `input` |
//! | Responses events | `*.delta` strings, kind from the event `type` (`output_text`, `refusal`, `function_call_arguments`, `reasoning_text`, `reasoning_summary_text`, `custom_tool_call_input`, any other), channel per `output_index` and `content_index` / `summary_index`; events that repeat streamed text whole: root `text` / `refusal` / `arguments` / `input`, `part`, `item`, `response.output` |
//!
//! Not text the model wrote, so not listed: ids, roles, finish reasons, Anthropic `signature`
//! and `redacted_thinking.data` (opaque), the Responses API's echoed `instructions`. Not
//! covered: `logprobs` (each token's text again, see docs/guardrails.md).

pub mod raw;

use std::borrow::Cow;
use std::ops::Range;

use raw::Node;

/// What a text is. Kinds are also what keeps a stream's texts apart (see `Channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The answer itself.
    Content,
    /// Reasoning (`reasoning_content`, Anthropic `thinking`, Responses reasoning text).
    Reasoning,
    /// A Responses reasoning summary.
    ReasoningSummary,
    Refusal,
    /// The name of a tool the model calls.
    ToolName,
    /// A tool call's arguments: a JSON text (as a string, or Anthropic's `input` value).
    ToolArguments,
    /// A Responses custom tool call's free-form input.
    ToolInput,
    /// Text of a Responses delta event this table does not know.
    Other,
}

impl Kind {
    /// Whether the text is itself JSON text (a redaction must keep it valid JSON).
    pub fn is_json(self) -> bool {
        self == Self::ToolArguments
    }
}

/// How a text is written in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A JSON string literal: the text is its decoded value.
    String,
    /// A JSON value (Anthropic `tool_use.input`): the text is its raw JSON text.
    Json,
}

/// How a text relates to the rest of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A piece of a text that continues in later events of its channel.
    Delta,
    /// A complete text (a whole body's texts, a tool name, a content block's opening text).
    Whole,
    /// A complete text that repeats what the deltas of its channel already carried (the
    /// Responses API's `.done` and `response.completed` events): not counted again.
    Repeat,
}

/// The text stream a piece belongs to: pieces of one channel concatenate; pieces of different
/// channels never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    /// The choice (OpenAI), content block (Anthropic) or output item (Responses).
    pub item: u64,
    pub kind: Kind,
    /// The tool call (OpenAI), content part or summary part (Responses); 0 otherwise.
    pub part: u64,
}

/// How to send text of a channel in an event of its own (when text held back must go out and
/// no event of the channel is coming): the shape of the event it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// An OpenAI chat chunk's `delta.<field>`.
    OpenAiDelta(&'static str),
    /// An OpenAI chat chunk's `delta.tool_calls[].function.arguments`.
    OpenAiTool,
    /// An OpenAI chat chunk's legacy `delta.function_call.arguments`.
    OpenAiFunction,
    /// An OpenAI completions chunk's `text`.
    Completions,
    /// The event itself with other text emptied (Anthropic and Responses events carry only
    /// the text and its position).
    Event,
}

/// One text in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The value's bytes in the document (a string literal with its quotes, or a JSON value).
    pub value: Range<usize>,
    pub form: Form,
    pub flow: Flow,
    pub channel: Channel,
    pub wrap: Wrap,
}

impl Site {
    /// The text, decoded.
    pub fn text<'a>(&self, doc: &'a [u8]) -> Option<Cow<'a, str>> {
        let bytes = doc.get(self.value.clone())?;
        match self.form {
            Form::String => raw::decode_string(bytes),
            Form::Json => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        }
    }
}

/// Whether the document is a whole response body or one stream event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Body,
    Event,
}

/// The texts of one document, in document order, and the choices whose text ends in it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Located {
    pub sites: Vec<Site>,
    /// OpenAI choices (`index`) with a finish reason here: no more text of theirs follows.
    pub finished: Vec<u64>,
}

/// Every model-produced text in `doc` (a response body or an event's JSON data).
pub fn locate(doc: &[u8], mode: Mode) -> Located {
    let mut out = Walk {
        located: Located::default(),
        mode,
    };
    if let Some(root) = Node::root(doc).filter(Node::is_object) {
        out.root(root);
    }
    out.located.sites.sort_by_key(|s| s.value.start);
    out.located
}

/// Top-level numbers some events place their text by.
#[derive(Default)]
struct Position<'a> {
    event_type: Option<Cow<'a, str>>,
    index: Option<u64>,
    output_index: Option<u64>,
    content_index: Option<u64>,
    summary_index: Option<u64>,
}

struct Walk {
    located: Located,
    mode: Mode,
}

impl Walk {
    fn push(&mut self, node: Node<'_>, form: Form, flow: Flow, channel: Channel, wrap: Wrap) {
        let flow = match self.mode {
            Mode::Body => Flow::Whole,
            Mode::Event => flow,
        };
        self.located.sites.push(Site {
            value: node.range(),
            form,
            flow,
            channel,
            wrap,
        });
    }

    /// A string value, if it is one.
    fn string(&mut self, node: Node<'_>, flow: Flow, channel: Channel, wrap: Wrap) {
        if node.is_string() {
            self.push(node, Form::String, flow, channel, wrap);
        }
    }

    fn root(&mut self, root: Node<'_>) {
        let mut at = Position::default();
        for (key, value) in root.members() {
            match key.as_ref() {
                "type" => at.event_type = value.as_str(),
                "index" => at.index = value.as_u64(),
                "output_index" => at.output_index = value.as_u64(),
                "content_index" => at.content_index = value.as_u64(),
                "summary_index" => at.summary_index = value.as_u64(),
                _ => {}
            }
        }
        let responses_item = at.output_index.unwrap_or(0);
        let responses_part = at.content_index.or(at.summary_index).unwrap_or(0);
        let channel = |kind| Channel {
            item: responses_item,
            kind,
            part: responses_part,
        };
        for (key, value) in root.members() {
            match key.as_ref() {
                "choices" => {
                    for (position, choice) in (0u64..).zip(value.elements()) {
                        self.openai_choice(choice, position);
                    }
                }
                // Anthropic messages: the body, or `message_start`'s message.
                "content" => self.anthropic_blocks(value),
                "message" => {
                    for (key, inner) in value.members() {
                        if key == "content" {
                            self.anthropic_blocks(inner);
                        }
                    }
                }
                "content_block" => self.anthropic_block(value, at.index.unwrap_or(0)),
                "delta" if value.is_object() => self.anthropic_delta(value, at.index.unwrap_or(0)),
                "delta" => {
                    let kind = responses_delta_kind(at.event_type.as_deref());
                    self.string(value, Flow::Delta, channel(kind), Wrap::Event);
                }
                "output" => self.responses_items(value, Flow::Whole),
                "response" => {
                    for (key, inner) in value.members() {
                        if key == "output" {
                            self.responses_items(inner, Flow::Repeat);
                        }
                    }
                }
                "item" => self.responses_item(value, responses_item, Flow::Repeat),
                "part" => self.responses_part(value, responses_item, responses_part, Flow::Repeat),
                "text" => {
                    let kind = match at.event_type.as_deref() {
                        Some("response.reasoning_text.done") => Kind::Reasoning,
                        Some("response.reasoning_summary_text.done") => Kind::ReasoningSummary,
                        _ => Kind::Content,
                    };
                    self.string(value, Flow::Repeat, channel(kind), Wrap::Event);
                }
                "refusal" => self.string(value, Flow::Repeat, channel(Kind::Refusal), Wrap::Event),
                "arguments" => {
                    let channel = channel(Kind::ToolArguments);
                    self.string(value, Flow::Repeat, channel, Wrap::Event);
                }
                "input" => self.string(value, Flow::Repeat, channel(Kind::ToolInput), Wrap::Event),
                _ => {}
            }
        }
    }

    /// `choices[i]` of an OpenAI chat or completions body or chunk.
    fn openai_choice(&mut self, choice: Node<'_>, position: u64) {
        let first = self.located.sites.len();
        let mut index = None;
        let mut finished = false;
        for (key, value) in choice.members() {
            match key.as_ref() {
                "index" => index = value.as_u64(),
                "finish_reason" => finished = !value.is_null(),
                "message" => self.openai_message(value, Flow::Whole),
                "delta" => self.openai_message(value, Flow::Delta),
                "text" => {
                    let channel = Channel {
                        item: 0,
                        kind: Kind::Content,
                        part: 0,
                    };
                    self.string(value, Flow::Delta, channel, Wrap::Completions);
                }
                _ => {}
            }
        }
        // The choice's `index` may come after its text.
        let item = index.unwrap_or(position);
        for site in self.located.sites.get_mut(first..).unwrap_or_default() {
            site.channel.item = item;
        }
        if finished && self.mode == Mode::Event {
            self.located.finished.push(item);
        }
    }

    /// An OpenAI chat `message` (flow `Whole`) or chunk `delta` (flow `Delta`).
    fn openai_message(&mut self, message: Node<'_>, flow: Flow) {
        let channel = |kind, part| Channel {
            item: 0,
            kind,
            part,
        };
        for (key, value) in message.members() {
            let field: &'static str = match key.as_ref() {
                "content" => "content",
                "reasoning_content" => "reasoning_content",
                "reasoning" => "reasoning",
                "refusal" => "refusal",
                "tool_calls" => {
                    for (position, call) in (0u64..).zip(value.elements()) {
                        let mut part = position;
                        let mut function = None;
                        for (key, inner) in call.members() {
                            match key.as_ref() {
                                "index" => part = inner.as_u64().unwrap_or(position),
                                "function" => function = Some(inner),
                                _ => {}
                            }
                        }
                        if let Some(function) = function {
                            self.openai_function(function, flow, part, Wrap::OpenAiTool);
                        }
                    }
                    continue;
                }
                "function_call" => {
                    self.openai_function(value, flow, u64::MAX, Wrap::OpenAiFunction);
                    continue;
                }
                _ => continue,
            };
            let kind = match field {
                "content" => Kind::Content,
                "refusal" => Kind::Refusal,
                _ => Kind::Reasoning,
            };
            if value.is_array() {
                // Content parts (`[{"type":"text","text":...}]`).
                for (part, element) in (0u64..).zip(value.elements()) {
                    for (key, text) in element.members() {
                        if key == "text" {
                            self.string(text, Flow::Whole, channel(kind, part), Wrap::Event);
                        }
                    }
                }
            } else {
                self.string(value, flow, channel(kind, 0), Wrap::OpenAiDelta(field));
            }
        }
    }

    fn openai_function(&mut self, function: Node<'_>, flow: Flow, part: u64, wrap: Wrap) {
        for (key, value) in function.members() {
            let channel = |kind| Channel {
                item: 0,
                kind,
                part,
            };
            match key.as_ref() {
                // Names come whole, in the call's first chunk.
                "name" => self.string(value, Flow::Whole, channel(Kind::ToolName), wrap),
                "arguments" => self.string(value, flow, channel(Kind::ToolArguments), wrap),
                _ => {}
            }
        }
    }

    /// Anthropic `content[]` blocks (a message body, `message_start`).
    fn anthropic_blocks(&mut self, blocks: Node<'_>) {
        for (index, block) in (0u64..).zip(blocks.elements()) {
            self.anthropic_block(block, index);
        }
    }

    /// One Anthropic content block, complete (a body's, or `content_block_start`'s opening).
    fn anthropic_block(&mut self, block: Node<'_>, item: u64) {
        let channel = |kind| Channel {
            item,
            kind,
            part: 0,
        };
        for (key, value) in block.members() {
            match key.as_ref() {
                "text" => self.string(value, Flow::Whole, channel(Kind::Content), Wrap::Event),
                "thinking" => {
                    self.string(value, Flow::Whole, channel(Kind::Reasoning), Wrap::Event);
                }
                "name" => self.string(value, Flow::Whole, channel(Kind::ToolName), Wrap::Event),
                "input" => self.push(
                    value,
                    Form::Json,
                    Flow::Whole,
                    channel(Kind::ToolArguments),
                    Wrap::Event,
                ),
                _ => {}
            }
        }
    }

    /// `content_block_delta`'s delta.
    fn anthropic_delta(&mut self, delta: Node<'_>, item: u64) {
        for (key, value) in delta.members() {
            let kind = match key.as_ref() {
                "text" => Kind::Content,
                "partial_json" => Kind::ToolArguments,
                "thinking" => Kind::Reasoning,
                _ => continue,
            };
            let channel = Channel {
                item,
                kind,
                part: 0,
            };
            self.string(value, Flow::Delta, channel, Wrap::Event);
        }
    }

    fn responses_items(&mut self, items: Node<'_>, flow: Flow) {
        for (index, item) in (0u64..).zip(items.elements()) {
            self.responses_item(item, index, flow);
        }
    }

    /// One Responses output item (message, function call, reasoning, custom tool call).
    fn responses_item(&mut self, item: Node<'_>, index: u64, flow: Flow) {
        let mut reasoning = false;
        for (key, value) in item.members() {
            if key == "type" {
                reasoning = value.as_str().as_deref() == Some("reasoning");
            }
        }
        let channel = |kind, part| Channel {
            item: index,
            kind,
            part,
        };
        for (key, value) in item.members() {
            match key.as_ref() {
                "content" => {
                    for (part, element) in (0u64..).zip(value.elements()) {
                        if reasoning {
                            for (key, text) in element.members() {
                                if key == "text" {
                                    let channel = channel(Kind::Reasoning, part);
                                    self.string(text, flow, channel, Wrap::Event);
                                }
                            }
                        } else {
                            self.responses_part(element, index, part, flow);
                        }
                    }
                }
                "summary" => {
                    for (part, element) in (0u64..).zip(value.elements()) {
                        for (key, text) in element.members() {
                            if key == "text" {
                                let channel = channel(Kind::ReasoningSummary, part);
                                self.string(text, flow, channel, Wrap::Event);
                            }
                        }
                    }
                }
                "arguments" => {
                    self.string(value, flow, channel(Kind::ToolArguments, 0), Wrap::Event);
                }
                "name" => self.string(value, flow, channel(Kind::ToolName, 0), Wrap::Event),
                "input" => self.string(value, flow, channel(Kind::ToolInput, 0), Wrap::Event),
                _ => {}
            }
        }
    }

    /// A Responses message content part (`output_text` or `refusal`).
    fn responses_part(&mut self, part: Node<'_>, item: u64, index: u64, flow: Flow) {
        for (key, value) in part.members() {
            let kind = match key.as_ref() {
                "text" => Kind::Content,
                "refusal" => Kind::Refusal,
                _ => continue,
            };
            let channel = Channel {
                item,
                kind,
                part: index,
            };
            self.string(value, flow, channel, Wrap::Event);
        }
    }
}

/// The kind of a Responses `*.delta` event's text, by the event's type.
fn responses_delta_kind(event_type: Option<&str>) -> Kind {
    match event_type {
        Some("response.output_text.delta") => Kind::Content,
        Some("response.refusal.delta") => Kind::Refusal,
        Some("response.function_call_arguments.delta") => Kind::ToolArguments,
        Some("response.reasoning_text.delta") => Kind::Reasoning,
        Some("response.reasoning_summary_text.delta") => Kind::ReasoningSummary,
        Some("response.custom_tool_call_input.delta") => Kind::ToolInput,
        _ => Kind::Other,
    }
}

/// The JSON of an event carrying only `text`'s piece of `site`'s channel: `(before, after)`,
/// the text's string literal goes between. `doc` is the event `site` was found in.
pub fn lone_event(doc: &[u8], site: &Site) -> Option<(Vec<u8>, Vec<u8>)> {
    let channel = site.channel;
    let inner: (String, String) = match site.wrap {
        Wrap::Event => {
            // The event itself, every other text of it emptied.
            let mut before = None;
            let mut out = Vec::with_capacity(doc.len());
            let mut copied = 0usize;
            for other in locate(doc, Mode::Event).sites {
                out.extend_from_slice(doc.get(copied..other.value.start)?);
                copied = other.value.end;
                if other.value == site.value {
                    before = Some(std::mem::take(&mut out));
                    continue;
                }
                out.extend_from_slice(match other.form {
                    Form::String => b"\"\"",
                    Form::Json => b"{}",
                });
            }
            out.extend_from_slice(doc.get(copied..)?);
            return before.map(|before| (before, out));
        }
        Wrap::OpenAiDelta(field) => (
            format!(r#"{{"index":{},"delta":{{"{field}":"#, channel.item),
            "},\"finish_reason\":null}".to_owned(),
        ),
        Wrap::OpenAiTool => (
            format!(
                r#"{{"index":{},"delta":{{"tool_calls":[{{"index":{},"function":{{"arguments":"#,
                channel.item, channel.part
            ),
            "}}]},\"finish_reason\":null}".to_owned(),
        ),
        Wrap::OpenAiFunction => (
            format!(
                r#"{{"index":{},"delta":{{"function_call":{{"arguments":"#,
                channel.item
            ),
            "}},\"finish_reason\":null}".to_owned(),
        ),
        Wrap::Completions => (
            format!(r#"{{"index":{},"text":"#, channel.item),
            ",\"finish_reason\":null}".to_owned(),
        ),
    };
    // An OpenAI chunk: its metadata (id, object, created, model...) and one minimal choice.
    let root = Node::root(doc).filter(Node::is_object)?;
    let mut before = b"{".to_vec();
    for (key, value) in root.members() {
        if matches!(key.as_ref(), "choices" | "usage") {
            continue;
        }
        serde_json::to_writer(&mut before, key.as_ref()).ok()?;
        before.push(b':');
        before.extend_from_slice(value.bytes());
        before.push(b',');
    }
    before.extend_from_slice(b"\"choices\":[");
    before.extend_from_slice(inner.0.as_bytes());
    let mut after = inner.1.into_bytes();
    after.extend_from_slice(b"]}");
    Some((before, after))
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
