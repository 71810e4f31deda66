//! The canonical request: what every later stage (routing, token counting, quotas, guardrails,
//! replica picking) reads, whatever API the client spoke. Built once per request by `api/`,
//! borrowing text from the body.
//!
//! It keeps each API's structure in a shared vocabulary (messages of typed parts, tool
//! definitions, output budget) rather than flattening to text, so that translating a request
//! between OpenAI and Anthropic shapes later needs no reshaping.

mod prefix;

use std::borrow::Cow;

pub use prefix::PREFIX_WINDOW_BYTES;

/// The API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// OpenAI `POST /v1/chat/completions`
    ChatCompletions,
    /// OpenAI `POST /v1/completions`
    Completions,
    /// OpenAI `POST /v1/embeddings`
    Embeddings,
    /// OpenAI `POST /v1/responses`
    Responses,
    /// Anthropic `POST /v1/messages`
    Messages,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// System or developer instructions (OpenAI `system`/`developer` messages, Anthropic
    /// `system`, Responses `instructions`).
    System,
    User,
    Assistant,
    /// A tool's output sent back to the model (OpenAI `tool`/`function` messages).
    Tool,
}

/// An image part: what the providers' image-token conventions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Image {
    /// OpenAI's `detail`: `low` is priced flat.
    pub detail: ImageDetail,
    /// Width and height in pixels, when the image is inline and its header could be read.
    pub size: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageDetail {
    #[default]
    Auto,
    Low,
    High,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    Text(Cow<'a, str>),
    /// Prompt given as token ids (completions, embeddings); only their number matters here.
    TokenIds(u64),
    Image(Image),
    /// The model asked to call a tool (OpenAI `tool_calls`, Anthropic `tool_use`, Responses
    /// `function_call`). `arguments` is JSON text.
    ToolCall {
        id: Option<Cow<'a, str>>,
        name: Cow<'a, str>,
        arguments: Cow<'a, str>,
    },
    /// A tool's output inside a message (Anthropic `tool_result`, Responses
    /// `function_call_output`).
    ToolResult {
        call_id: Option<Cow<'a, str>>,
        parts: Vec<Part<'a>>,
    },
    /// Audio, files, documents, reasoning and kinds not known yet: kept so they are counted,
    /// never silently dropped.
    Other {
        kind: Cow<'a, str>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub role: Role,
    pub parts: Vec<Part<'a>>,
    /// OpenAI `tool` messages: the call this answers.
    pub tool_call_id: Option<Cow<'a, str>>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool<'a> {
    pub name: Cow<'a, str>,
    pub description: Option<Cow<'a, str>>,
    /// JSON schema of the arguments, as sent (JSON text).
    pub schema: Option<&'a str>,
}

/// Whose text a segment is, for stages that scan or count text by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRole {
    System,
    User,
    Assistant,
    ToolResult,
    ToolDefinition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalRequest<'a> {
    pub api: ApiKind,
    /// The model as the client asked for it.
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    pub messages: Vec<Message<'a>>,
    pub tools: Vec<Tool<'a>>,
    /// `max_completion_tokens`, `max_tokens` or `max_output_tokens`, when given.
    pub max_output_tokens: Option<u64>,
    /// End-user id: OpenAI `user` / `safety_identifier`, Anthropic `metadata.user_id`.
    pub user: Option<Cow<'a, str>>,
    /// Stable hash of the first `PREFIX_WINDOW_BYTES` of the prompt, for prefix affinity.
    pub prefix_hash: u64,
}

/// Text of a request in reading order, with whose text it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'r> {
    pub role: SegmentRole,
    pub text: &'r str,
}

impl<'a> CanonicalRequest<'a> {
    /// Every text segment: tool definitions first (providers put them before the messages),
    /// then each message's text parts, tool-call arguments and tool results.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        let tools = self.tools.iter().flat_map(|tool| {
            let name = Some(tool.name.as_ref());
            let description = tool.description.as_deref();
            let schema = tool.schema;
            [name, description, schema]
                .into_iter()
                .flatten()
                .map(|text| Segment {
                    role: SegmentRole::ToolDefinition,
                    text,
                })
        });
        let messages = self.messages.iter().flat_map(|message| {
            let role = match message.role {
                Role::System => SegmentRole::System,
                Role::User => SegmentRole::User,
                Role::Assistant => SegmentRole::Assistant,
                Role::Tool => SegmentRole::ToolResult,
            };
            message
                .parts
                .iter()
                .flat_map(move |part| PartSegments::of(part, role))
        });
        tools.chain(messages)
    }

    /// Parts that carry no text (images, token ids, audio...), counted not dropped.
    pub fn non_text_parts(&self) -> usize {
        fn count(parts: &[Part<'_>]) -> usize {
            parts
                .iter()
                .map(|part| match part {
                    Part::Text(_) | Part::ToolCall { .. } => 0,
                    Part::ToolResult { parts, .. } => count(parts),
                    Part::TokenIds(_) | Part::Image(_) | Part::Other { .. } => 1,
                })
                .fold(0, usize::saturating_add)
        }
        self.messages
            .iter()
            .map(|message| count(&message.parts))
            .fold(0, usize::saturating_add)
    }
}

/// The segments of one part: none, its text, a tool call's name and arguments, or (boxed, since
/// they nest) a tool result's parts. No allocation but for tool results.
enum PartSegments<'r> {
    Flat(std::iter::Flatten<std::array::IntoIter<Option<Segment<'r>>, 2>>),
    Nested(Box<dyn Iterator<Item = Segment<'r>> + 'r>),
}

impl<'r> PartSegments<'r> {
    fn of(part: &'r Part<'_>, role: SegmentRole) -> Self {
        let flat = |a: Option<&'r str>, b: Option<&'r str>| {
            let segment = |text| Segment { role, text };
            Self::Flat([a.map(segment), b.map(segment)].into_iter().flatten())
        };
        match part {
            Part::Text(text) => flat(Some(text), None),
            Part::ToolCall {
                name, arguments, ..
            } => flat(Some(name), Some(arguments)),
            Part::ToolResult { parts, .. } => Self::Nested(Box::new(
                parts
                    .iter()
                    .flat_map(|inner| PartSegments::of(inner, SegmentRole::ToolResult)),
            )),
            Part::TokenIds(_) | Part::Image(_) | Part::Other { .. } => flat(None, None),
        }
    }
}

impl<'r> Iterator for PartSegments<'r> {
    type Item = Segment<'r>;

    fn next(&mut self) -> Option<Segment<'r>> {
        match self {
            Self::Flat(segments) => segments.next(),
            Self::Nested(segments) => segments.next(),
        }
    }
}
