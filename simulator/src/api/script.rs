//! What a response says, token by token: generated filler words, or text the request chose.
//!
//! A request chooses its answer ("echo") with markers in its last user message, the same in every
//! API, so that tests can put known text into each part of a response that a gateway must read
//! (response guardrails, usage):
//!
//! - `[[echo]]` starts ordinary content (text outside any other section is content too);
//! - `[[reasoning]]` starts reasoning (OpenAI `reasoning_content`, Anthropic `thinking`,
//!   Responses `reasoning` items);
//! - `[[tool]]` starts the arguments of a new tool call, named after the first tool the request
//!   offers (`echo` when it offers none). A section that is a JSON object is sent as written;
//!   any other text as `{"text": "<the text>"}`.
//!
//! A section runs to the next marker. The answer is its reasoning, then its content, then its tool
//! calls in order, split a few characters per token so that a word spans several stream events.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::words::token_text;

pub const ECHO_MARKER: &str = "[[echo]]";
pub const REASONING_MARKER: &str = "[[reasoning]]";
pub const TOOL_MARKER: &str = "[[tool]]";

/// The tool name used when the request offers no tools.
pub const DEFAULT_TOOL_NAME: &str = "echo";

/// Characters per token of chosen text: small, so a word spans several events.
const CHARS_PER_TOKEN: usize = 3;

/// Which part of the answer a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Reasoning,
    Content,
    /// The arguments of tool call number `n` (0-based).
    Tool(usize),
}

/// The chosen answer, already split into tokens.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Script {
    pieces: Vec<(Part, String)>,
    tool_calls: usize,
}

impl Script {
    /// The answer `text` asks for, or None when it holds no marker.
    pub fn parse(text: &str) -> Option<Self> {
        let markers = [ECHO_MARKER, REASONING_MARKER, TOOL_MARKER];
        if !markers.iter().any(|marker| text.contains(marker)) {
            return None;
        }
        let mut reasoning = String::new();
        let mut content = String::new();
        let mut tools: Vec<String> = Vec::new();
        let mut current = Part::Content;
        let mut rest = text;
        loop {
            let next = markers
                .iter()
                .filter_map(|marker| rest.find(marker).map(|at| (at, *marker)))
                .min_by_key(|(at, _)| *at);
            let (before, after) = match next {
                Some((at, _)) => rest.split_at(at),
                None => (rest, ""),
            };
            let section = match current {
                Part::Reasoning => &mut reasoning,
                Part::Content => &mut content,
                Part::Tool(_) => tools.last_mut().unwrap_or(&mut content),
            };
            section.push_str(before);
            let Some((_, marker)) = next else {
                break;
            };
            rest = after.strip_prefix(marker).unwrap_or(after);
            current = match marker {
                REASONING_MARKER => Part::Reasoning,
                TOOL_MARKER => {
                    tools.push(String::new());
                    Part::Tool(tools.len() - 1)
                }
                _ => Part::Content,
            };
        }

        let mut pieces = Vec::new();
        split_into(&mut pieces, Part::Reasoning, &reasoning);
        split_into(&mut pieces, Part::Content, &content);
        for (index, arguments) in tools.iter().enumerate() {
            split_into(&mut pieces, Part::Tool(index), &tool_arguments(arguments));
        }
        Some(Self {
            pieces,
            tool_calls: tools.len(),
        })
    }
}

fn split_into(pieces: &mut Vec<(Part, String)>, part: Part, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    pieces.extend(
        chars
            .chunks(CHARS_PER_TOKEN)
            .map(|chunk| (part, chunk.iter().collect())),
    );
}

/// A tool call's arguments: a JSON object as written, other text wrapped as `{"text": ...}`.
fn tool_arguments(section: &str) -> String {
    if serde_json::from_str::<Map<String, Value>>(section).is_ok() {
        section.to_owned()
    } else {
        json!({ "text": section }).to_string()
    }
}

/// The output of one request: generated words, or a script.
#[derive(Debug, Clone)]
pub enum Output {
    Generated,
    Scripted(Arc<Script>),
}

impl Output {
    /// The script in `text` (a request's last user message), else generated words.
    pub fn from_last_user_text(text: Option<&str>) -> Self {
        text.and_then(Script::parse)
            .map_or(Self::Generated, |script| Self::Scripted(Arc::new(script)))
    }

    /// How many tokens a script takes (at least one, even when it is empty); None when generated.
    pub fn scripted_tokens(&self) -> Option<u32> {
        match self {
            Self::Generated => None,
            Self::Scripted(script) => Some(
                u32::try_from(script.pieces.len())
                    .unwrap_or(u32::MAX)
                    .max(1),
            ),
        }
    }

    /// How many tool calls the answer makes.
    pub fn tool_calls(&self) -> usize {
        match self {
            Self::Generated => 0,
            Self::Scripted(script) => script.tool_calls,
        }
    }

    /// The part and text of token `index`. An empty script answers with one empty content token.
    pub fn piece(&self, index: u32) -> (Part, &str) {
        match self {
            Self::Generated => (Part::Content, token_text(index)),
            Self::Scripted(script) => script
                .pieces
                .get(index as usize)
                .map_or((Part::Content, ""), |(part, text)| (*part, text.as_str())),
        }
    }

    /// The part token `index` starts, if it is the first token of its part.
    pub fn opens(&self, index: u32) -> Option<Part> {
        let (part, _) = self.piece(index);
        let previous = index.checked_sub(1).map(|before| self.piece(before).0);
        (previous != Some(part)).then_some(part)
    }

    /// The part token `index` ends because the next token belongs to another part (or the answer
    /// ends after it, when `last`).
    pub fn closes(&self, index: u32, last: bool) -> Option<Part> {
        let (part, _) = self.piece(index);
        (last || self.piece(index.saturating_add(1)).0 != part).then_some(part)
    }

    /// Everything the first `tokens` tokens said, by part.
    pub fn transcript(&self, tokens: u32) -> Transcript {
        let mut transcript = Transcript::default();
        for index in 0..tokens {
            let (part, text) = self.piece(index);
            match part {
                Part::Reasoning => {
                    transcript.reasoning.push_str(text);
                    transcript.reasoning_tokens += 1;
                }
                Part::Content => {
                    transcript.content.push_str(text);
                    transcript.has_content = true;
                }
                Part::Tool(call) => {
                    if transcript.tool_arguments.len() <= call {
                        transcript.tool_arguments.resize(call + 1, String::new());
                    }
                    if let Some(arguments) = transcript.tool_arguments.get_mut(call) {
                        arguments.push_str(text);
                    }
                }
            }
        }
        transcript
    }
}

/// A finished (or partial) answer, by part, for JSON bodies and the closing stream events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub reasoning: String,
    /// Tokens of reasoning, which usage reports within the output tokens.
    pub reasoning_tokens: u32,
    pub content: String,
    /// Whether any token was content (an empty script still answers with empty content).
    pub has_content: bool,
    pub tool_arguments: Vec<String>,
}

impl Transcript {
    pub fn has_reasoning(&self) -> bool {
        self.reasoning_tokens > 0
    }
}

/// The name of the tool calls: the first tool the request offers, found at `name_pointer` within
/// each entry of `tools` (`/function/name` in chat completions, `/name` elsewhere).
pub fn tool_name(tools: Option<&[Value]>, name_pointer: &str) -> String {
    tools
        .into_iter()
        .flatten()
        .find_map(|tool| tool.pointer(name_pointer).and_then(Value::as_str))
        .unwrap_or(DEFAULT_TOOL_NAME)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripted(text: &str) -> Output {
        Output::from_last_user_text(Some(text))
    }

    fn all(output: &Output) -> Transcript {
        output.transcript(output.scripted_tokens().unwrap())
    }

    #[test]
    fn text_without_markers_is_generated() {
        let output = Output::from_last_user_text(Some("Hello [echo]"));
        assert!(matches!(output, Output::Generated));
        assert_eq!(output.piece(1), (Part::Content, " quick"));
        assert_eq!(output.scripted_tokens(), None);
    }

    #[test]
    fn echo_marker_anywhere_makes_the_rest_content() {
        let output = scripted("Say [[echo]]hello world");
        let transcript = all(&output);
        assert_eq!(transcript.content, "Say hello world");
        assert!(!transcript.has_reasoning());
        assert!(transcript.tool_arguments.is_empty());
        assert_eq!(output.scripted_tokens(), Some(5));
        assert_eq!(output.piece(0), (Part::Content, "Say"));
    }

    #[test]
    fn sections_go_to_their_parts_in_answer_order() {
        let output = scripted("[[tool]]{\"q\": 1}[[echo]]Hi there[[reasoning]]Think.[[tool]]a\"b");
        let transcript = all(&output);
        assert_eq!(transcript.reasoning, "Think.");
        assert_eq!(transcript.reasoning_tokens, 2);
        assert_eq!(transcript.content, "Hi there");
        assert_eq!(
            transcript.tool_arguments,
            vec!["{\"q\": 1}".to_owned(), r#"{"text":"a\"b"}"#.to_owned()]
        );
        assert_eq!(output.tool_calls(), 2);
        assert_eq!(output.piece(0), (Part::Reasoning, "Thi"));
        assert_eq!(output.opens(0), Some(Part::Reasoning));
        assert_eq!(output.opens(1), None);
        assert_eq!(output.closes(1, false), Some(Part::Reasoning));
        assert_eq!(output.opens(2), Some(Part::Content));
        let last = output.scripted_tokens().unwrap() - 1;
        assert_eq!(output.piece(last).0, Part::Tool(1));
        assert_eq!(output.closes(last, true), Some(Part::Tool(1)));
    }

    #[test]
    fn an_empty_script_is_one_empty_content_token() {
        let output = scripted("[[echo]]");
        assert_eq!(output.scripted_tokens(), Some(1));
        assert_eq!(output.piece(0), (Part::Content, ""));
        let transcript = output.transcript(1);
        assert!(transcript.has_content);
        assert_eq!(transcript.content, "");
    }

    #[test]
    fn characters_not_bytes_make_tokens() {
        let output = scripted("[[reasoning]]héllo");
        assert_eq!(output.piece(0), (Part::Reasoning, "hél"));
        assert_eq!(output.piece(1), (Part::Reasoning, "lo"));
    }

    #[test]
    fn tool_name_is_the_first_offered() {
        let tools = [json!({"type": "function", "function": {"name": "lookup"}})];
        assert_eq!(tool_name(Some(&tools), "/function/name"), "lookup");
        assert_eq!(tool_name(Some(&tools), "/name"), DEFAULT_TOOL_NAME);
        assert_eq!(tool_name(None, "/name"), DEFAULT_TOOL_NAME);
    }
}
