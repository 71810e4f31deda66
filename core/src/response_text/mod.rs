//! Where model-produced text lives in every response shape: the one table the response
//! guardrails (what they scan and redact in place) and token accounting (what they count when
//! the upstream reports no usage) both read. The same single pass over a body or an event also
//! finds its usage objects and the model that answered, which accounting reads.
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
    /// The document is one JSON object from start to end (checked as far as the walk reads:
    /// brackets, strings and separators). Texts found in anything else are incomplete.
    pub complete: bool,
    /// The usage objects it carries, for accounting.
    pub usage: Vec<(UsageAt, Range<usize>)>,
    /// The model that answered (a string literal): the top-level `model`, else Anthropic's
    /// `message.model` or Responses' `response.model`.
    pub model: Option<Range<usize>>,
    /// A top-level `choices` array with no element (the usage chunk of an OpenAI stream).
    pub no_choices: bool,
}

/// Where a usage object sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageAt {
    /// `usage` (OpenAI, Anthropic bodies and `message_delta`, Responses bodies).
    Top,
    /// Anthropic `message_start`'s `message.usage` (its output count is a placeholder).
    MessageStart,
    /// Responses `response.usage` (`response.completed` and the like).
    Response,
}

/// Every model-produced text in `doc` (a response body or an event's JSON data), found in one
/// pass over it.
pub fn locate(doc: &[u8], mode: Mode) -> Located {
    #[cfg(test)]
    reads::count();
    let mut walk = Walk {
        doc,
        located: Located::default(),
        mode,
    };
    let start = raw::skip_ws(doc, 0);
    let end = walk.root(start);
    walk.located.complete = end.is_some_and(|end| raw::skip_ws(doc, end) == doc.len());
    walk.located.sites.sort_by_key(|s| s.value.start);
    walk.located
}

struct Walk<'a> {
    doc: &'a [u8],
    located: Located,
    mode: Mode,
}

/// A channel with no position yet (set once the object holding it is read).
const UNPLACED: Channel = Channel {
    item: 0,
    kind: Kind::Content,
    part: 0,
};

fn channel(kind: Kind) -> Channel {
    Channel { kind, ..UNPLACED }
}

impl<'a> Walk<'a> {
    fn first(&self, at: usize) -> Option<u8> {
        self.doc.get(at).copied()
    }

    fn skip(&self, at: usize) -> Option<usize> {
        raw::skip(self.doc, at)
    }

    /// Records the value at `at` as a text (a string, unless `form` says JSON); returns its end.
    fn site(
        &mut self,
        at: usize,
        form: Form,
        flow: Flow,
        channel: Channel,
        wrap: Wrap,
    ) -> Option<usize> {
        let end = self.skip(at)?;
        if form == Form::Json || self.first(at) == Some(b'"') {
            let flow = match self.mode {
                Mode::Body => Flow::Whole,
                Mode::Event => flow,
            };
            self.located.sites.push(Site {
                value: at..end,
                form,
                flow,
                channel,
                wrap,
            });
        }
        Some(end)
    }

    fn string(&mut self, at: usize, flow: Flow, channel: Channel, wrap: Wrap) -> Option<usize> {
        self.site(at, Form::String, flow, channel, wrap)
    }

    /// Sets the channel position of the sites recorded since `first`.
    fn place(&mut self, first: usize, mut set: impl FnMut(&mut Channel)) {
        for site in self.located.sites.get_mut(first..).unwrap_or_default() {
            set(&mut site.channel);
        }
    }

    fn root(&mut self, at: usize) -> Option<usize> {
        let doc = self.doc;
        let mut event_type: Option<Cow<'a, str>> = None;
        let (mut index, mut output_index, mut part_index) = (None, None, None);
        // Sites whose position comes from these top-level fields, wherever they are.
        let mut by_index: Vec<Range<usize>> = Vec::new();
        let mut by_output: Vec<Range<usize>> = Vec::new();
        let mut responses_delta = None;
        let end = raw::object(doc, at, |key, at| match key.as_ref() {
            "type" => {
                let end = self.skip(at)?;
                event_type = raw::decode_string(doc.get(at..end)?);
                Some(end)
            }
            "index" => {
                let (value, end) = raw::number(doc, at);
                index = value;
                end
            }
            "output_index" => {
                let (value, end) = raw::number(doc, at);
                output_index = value;
                end
            }
            "content_index" | "summary_index" => {
                let (value, end) = raw::number(doc, at);
                part_index = value;
                end
            }
            "choices" => {
                let mut any = false;
                let end = raw::array(doc, at, |position, at| {
                    any = true;
                    self.openai_choice(at, position)
                });
                self.located.no_choices = !any && end.is_some();
                end
            }
            "usage" => self.usage(at, UsageAt::Top),
            "model" => {
                let end = self.skip(at)?;
                if self.first(at) == Some(b'"') {
                    self.located.model = Some(at..end);
                }
                Some(end)
            }
            // Anthropic messages: the body, or `message_start`'s message.
            "content" => self.anthropic_blocks(at),
            "message" => self.members(at, |walk, key, at| match key {
                "content" => walk.anthropic_blocks(at),
                "usage" => walk.usage(at, UsageAt::MessageStart),
                "model" => walk.nested_model(at),
                _ => walk.skip(at),
            }),
            "content_block" => {
                let first = self.located.sites.len();
                let end = self.anthropic_block(at, 0);
                by_index.push(first..self.located.sites.len());
                end
            }
            "delta" if self.first(at) == Some(b'{') => {
                let first = self.located.sites.len();
                let end = self.anthropic_delta(at);
                by_index.push(first..self.located.sites.len());
                end
            }
            // The Responses API's events, placed by `output_index` and `content_index` /
            // `summary_index`.
            "delta" | "item" | "part" | "text" | "refusal" | "arguments" | "input" => {
                let first = self.located.sites.len();
                let (flow, kind) = match key.as_ref() {
                    "delta" => (Flow::Delta, Kind::Other),
                    "refusal" => (Flow::Repeat, Kind::Refusal),
                    "arguments" => (Flow::Repeat, Kind::ToolArguments),
                    "input" => (Flow::Repeat, Kind::ToolInput),
                    _ => (Flow::Repeat, Kind::Content),
                };
                let end = match key.as_ref() {
                    "item" => self.responses_item(at, 0, Flow::Repeat),
                    "part" => self.responses_part(at, 0, 0, Flow::Repeat),
                    _ => self.string(at, flow, channel(kind), Wrap::Event),
                };
                if key == "delta" {
                    responses_delta = Some(first);
                }
                by_output.push(first..self.located.sites.len());
                end
            }
            "output" => self.responses_items(at, Flow::Whole),
            "response" => self.members(at, |walk, key, at| match key {
                "output" => walk.responses_items(at, Flow::Repeat),
                "usage" => walk.usage(at, UsageAt::Response),
                "model" => walk.nested_model(at),
                _ => walk.skip(at),
            }),
            _ => self.skip(at),
        });
        // Streamed pieces are placed by the event's own numbers.
        let item = index.unwrap_or(0);
        for range in by_index {
            for site in self.located.sites.get_mut(range).unwrap_or_default() {
                site.channel.item = item;
            }
        }
        for range in by_output {
            for site in self.located.sites.get_mut(range).unwrap_or_default() {
                site.channel.item = output_index.unwrap_or(0);
                site.channel.part = part_index.unwrap_or(site.channel.part);
            }
        }
        if let Some(site) = responses_delta.and_then(|at| self.located.sites.get_mut(at)) {
            site.channel.kind = responses_delta_kind(event_type.as_deref());
        }
        end
    }

    /// A usage object (not `null`).
    fn usage(&mut self, at: usize, usage_at: UsageAt) -> Option<usize> {
        let end = self.skip(at)?;
        if self.first(at) == Some(b'{') {
            self.located.usage.push((usage_at, at..end));
        }
        Some(end)
    }

    /// A model named inside `message` or `response`: used when the top level names none.
    fn nested_model(&mut self, at: usize) -> Option<usize> {
        let end = self.skip(at)?;
        if self.first(at) == Some(b'"') && self.located.model.is_none() {
            self.located.model = Some(at..end);
        }
        Some(end)
    }

    /// Walks an object's members with `member(walk, key, value_at)` returning each value's end.
    fn members(
        &mut self,
        at: usize,
        mut member: impl FnMut(&mut Self, &str, usize) -> Option<usize>,
    ) -> Option<usize> {
        let doc = self.doc;
        if self.first(at) != Some(b'{') {
            return self.skip(at);
        }
        raw::object(doc, at, |key, at| member(self, key.as_ref(), at))
    }

    /// Walks an array's elements with `element(walk, position, value_at)`.
    fn elements(
        &mut self,
        at: usize,
        mut element: impl FnMut(&mut Self, u64, usize) -> Option<usize>,
    ) -> Option<usize> {
        let doc = self.doc;
        if self.first(at) != Some(b'[') {
            return self.skip(at);
        }
        raw::array(doc, at, |position, at| element(self, position, at))
    }

    /// `choices[i]` of an OpenAI chat or completions body or chunk.
    fn openai_choice(&mut self, at: usize, position: u64) -> Option<usize> {
        let first = self.located.sites.len();
        let mut index = None;
        let mut finished = false;
        let end = self.members(at, |walk, key, at| match key {
            "index" => {
                let (value, end) = raw::number(walk.doc, at);
                index = value;
                end
            }
            "finish_reason" => {
                finished = !raw::is_null(walk.doc, at);
                walk.skip(at)
            }
            "message" => walk.openai_message(at, Flow::Whole),
            "delta" => walk.openai_message(at, Flow::Delta),
            "text" => walk.string(at, Flow::Delta, UNPLACED, Wrap::Completions),
            _ => walk.skip(at),
        });
        // The choice's `index` may come after its text.
        let item = index.unwrap_or(position);
        self.place(first, |c| c.item = item);
        if finished && self.mode == Mode::Event {
            self.located.finished.push(item);
        }
        end
    }

    /// An OpenAI chat `message` (flow `Whole`) or chunk `delta` (flow `Delta`).
    fn openai_message(&mut self, at: usize, flow: Flow) -> Option<usize> {
        self.members(at, |walk, key, at| {
            let (field, kind): (&'static str, Kind) = match key {
                "content" => ("content", Kind::Content),
                "reasoning_content" => ("reasoning_content", Kind::Reasoning),
                "reasoning" => ("reasoning", Kind::Reasoning),
                "refusal" => ("refusal", Kind::Refusal),
                "tool_calls" => {
                    return walk.elements(at, |walk, position, at| {
                        walk.openai_tool_call(at, position, flow)
                    });
                }
                "function_call" => {
                    let first = walk.located.sites.len();
                    let end = walk.openai_function(at, flow, Wrap::OpenAiFunction);
                    walk.place(first, |c| c.part = u64::MAX);
                    return end;
                }
                _ => return walk.skip(at),
            };
            if walk.first(at) == Some(b'[') {
                // Content parts (`[{"type":"text","text":...}]`).
                return walk.elements(at, |walk, part, at| {
                    walk.members(at, |walk, key, at| match key {
                        "text" => {
                            let channel = Channel {
                                kind,
                                part,
                                item: 0,
                            };
                            walk.string(at, Flow::Whole, channel, Wrap::Event)
                        }
                        _ => walk.skip(at),
                    })
                });
            }
            walk.string(at, flow, channel(kind), Wrap::OpenAiDelta(field))
        })
    }

    /// `tool_calls[j]`: its channel is the call's own `index` (which may follow its function).
    fn openai_tool_call(&mut self, at: usize, position: u64, flow: Flow) -> Option<usize> {
        let first = self.located.sites.len();
        let mut part = position;
        let end = self.members(at, |walk, key, at| match key {
            "index" => {
                let (value, end) = raw::number(walk.doc, at);
                part = value.unwrap_or(position);
                end
            }
            "function" => walk.openai_function(at, flow, Wrap::OpenAiTool),
            _ => walk.skip(at),
        });
        self.place(first, |c| c.part = part);
        end
    }

    fn openai_function(&mut self, at: usize, flow: Flow, wrap: Wrap) -> Option<usize> {
        self.members(at, |walk, key, at| match key {
            // Names come whole, in the call's first chunk.
            "name" => walk.string(at, Flow::Whole, channel(Kind::ToolName), wrap),
            "arguments" => walk.string(at, flow, channel(Kind::ToolArguments), wrap),
            _ => walk.skip(at),
        })
    }

    /// Anthropic `content[]` blocks (a message body, `message_start`).
    fn anthropic_blocks(&mut self, at: usize) -> Option<usize> {
        self.elements(at, |walk, index, at| walk.anthropic_block(at, index))
    }

    /// One Anthropic content block, complete (a body's, or `content_block_start`'s opening).
    fn anthropic_block(&mut self, at: usize, item: u64) -> Option<usize> {
        let placed = |kind| Channel {
            item,
            kind,
            part: 0,
        };
        self.members(at, |walk, key, at| match key {
            "text" => walk.string(at, Flow::Whole, placed(Kind::Content), Wrap::Event),
            "thinking" => walk.string(at, Flow::Whole, placed(Kind::Reasoning), Wrap::Event),
            "name" => walk.string(at, Flow::Whole, placed(Kind::ToolName), Wrap::Event),
            "input" => walk.site(
                at,
                Form::Json,
                Flow::Whole,
                placed(Kind::ToolArguments),
                Wrap::Event,
            ),
            _ => walk.skip(at),
        })
    }

    /// `content_block_delta`'s delta (placed by the event's `index`).
    fn anthropic_delta(&mut self, at: usize) -> Option<usize> {
        self.members(at, |walk, key, at| {
            let kind = match key {
                "text" => Kind::Content,
                "partial_json" => Kind::ToolArguments,
                "thinking" => Kind::Reasoning,
                _ => return walk.skip(at),
            };
            walk.string(at, Flow::Delta, channel(kind), Wrap::Event)
        })
    }

    fn responses_items(&mut self, at: usize, flow: Flow) -> Option<usize> {
        self.elements(at, |walk, index, at| walk.responses_item(at, index, flow))
    }

    /// One Responses output item (message, function call, reasoning, custom tool call).
    fn responses_item(&mut self, at: usize, index: u64, flow: Flow) -> Option<usize> {
        let first = self.located.sites.len();
        let mut reasoning = false;
        let placed = |kind, part| Channel {
            item: index,
            kind,
            part,
        };
        let end = self.members(at, |walk, key, at| match key {
            "type" => {
                let end = walk.skip(at)?;
                reasoning = walk.doc.get(at..end) == Some(&b"\"reasoning\""[..]);
                Some(end)
            }
            "content" => walk.elements(at, |walk, part, at| {
                walk.responses_part(at, index, part, flow)
            }),
            "summary" => walk.elements(at, |walk, part, at| {
                walk.members(at, |walk, key, at| match key {
                    "text" => {
                        walk.string(at, flow, placed(Kind::ReasoningSummary, part), Wrap::Event)
                    }
                    _ => walk.skip(at),
                })
            }),
            "arguments" => walk.string(at, flow, placed(Kind::ToolArguments, 0), Wrap::Event),
            "name" => walk.string(at, flow, placed(Kind::ToolName, 0), Wrap::Event),
            "input" => walk.string(at, flow, placed(Kind::ToolInput, 0), Wrap::Event),
            _ => walk.skip(at),
        });
        // A reasoning item's content is reasoning (its `type` may come after it).
        if reasoning {
            for site in self.located.sites.get_mut(first..).unwrap_or_default() {
                if site.channel.kind == Kind::Content {
                    site.channel.kind = Kind::Reasoning;
                }
            }
        }
        end
    }

    /// A Responses content part (`output_text`, `refusal`, `reasoning_text`).
    fn responses_part(&mut self, at: usize, item: u64, index: u64, flow: Flow) -> Option<usize> {
        self.members(at, |walk, key, at| {
            let kind = match key {
                "text" => Kind::Content,
                "refusal" => Kind::Refusal,
                _ => return walk.skip(at),
            };
            let channel = Channel {
                item,
                kind,
                part: index,
            };
            walk.string(at, flow, channel, Wrap::Event)
        })
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

/// A whole response body read once: whether it is JSON and where its texts, usage and model
/// sit. The response guard and token accounting both read this (`response_read`).
#[derive(Debug, Default)]
pub struct BodyRead {
    /// The body is one JSON value (a body that is not is guarded as one text).
    pub json: bool,
    pub located: Located,
}

impl BodyRead {
    pub fn new(body: &[u8]) -> Self {
        let json = raw::is_json(body);
        Self {
            json,
            located: if json {
                locate(body, Mode::Body)
            } else {
                Located::default()
            },
        }
    }
}

/// The JSON of an event carrying only `text`'s piece of `site`'s channel: `(before, after)`,
/// the text's string literal goes between. `doc` is the event `site` was found in.
pub fn lone_event(doc: &[u8], site: &Site) -> Option<(Vec<u8>, Vec<u8>)> {
    lone_event_in(doc, &locate(doc, Mode::Event).sites, site)
}

/// `lone_event` with the event's texts already located (`sites`, from `locate(doc, Event)`).
pub fn lone_event_in(doc: &[u8], sites: &[Site], site: &Site) -> Option<(Vec<u8>, Vec<u8>)> {
    let channel = site.channel;
    let inner: (String, String) = match site.wrap {
        Wrap::Event => {
            // The event itself, every other text of it emptied.
            let mut before = None;
            let mut out = Vec::with_capacity(doc.len());
            let mut copied = 0usize;
            for other in sites {
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
    let mut before = b"{".to_vec();
    raw::object(doc, raw::skip_ws(doc, 0), |key, at| {
        let end = raw::skip(doc, at)?;
        if !matches!(key.as_ref(), "choices" | "usage") {
            serde_json::to_writer(&mut before, key.as_ref()).ok()?;
            before.push(b':');
            before.extend_from_slice(doc.get(at..end)?);
            before.push(b',');
        }
        Some(end)
    })?;
    before.extend_from_slice(b"\"choices\":[");
    before.extend_from_slice(inner.0.as_bytes());
    let mut after = inner.1.into_bytes();
    after.extend_from_slice(b"]}");
    Some((before, after))
}

/// How many documents `locate` read on this thread: the tests that show each response body
/// and each event is read once count with it.
#[cfg(test)]
pub(crate) mod reads {
    use std::cell::Cell;

    thread_local! {
        static READS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count() {
        READS.with(|r| r.set(r.get().saturating_add(1)));
    }

    /// Documents read on this thread so far.
    pub(crate) fn so_far() -> usize {
        READS.with(Cell::get)
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
