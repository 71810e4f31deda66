//! What both directions agree on: the two shapes, stop reasons and usage figures in a neutral
//! form. Request, response and stream translation all map through these, so a stop reason or
//! a cached-token count reads the same whether the answer came whole or streamed.

use serde_json::value::RawValue;

use crate::canonical::ApiKind;

/// An API shape a body can be translated from or to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI `POST /v1/chat/completions`.
    OpenAiChat,
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
}

impl Shape {
    /// The shape of an API, if it translates.
    pub fn of(api: ApiKind) -> Option<Self> {
        match api {
            ApiKind::ChatCompletions => Some(Self::OpenAiChat),
            ApiKind::Messages => Some(Self::AnthropicMessages),
            ApiKind::Completions | ApiKind::Embeddings | ApiKind::Responses => None,
        }
    }

    /// The request path the shape is served on.
    pub fn path(self) -> &'static str {
        match self {
            Self::OpenAiChat => "/v1/chat/completions",
            Self::AnthropicMessages => "/v1/messages",
        }
    }
}

/// Why a generation stopped, in neither API's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model finished (OpenAI `stop`, Anthropic `end_turn`).
    EndTurn,
    /// A stop sequence matched (OpenAI `stop`, Anthropic `stop_sequence`).
    StopSequence,
    /// The output budget ran out (OpenAI `length`, Anthropic `max_tokens`).
    MaxTokens,
    /// The model called tools (OpenAI `tool_calls` or `function_call`, Anthropic `tool_use`).
    ToolUse,
    /// The model refused or was filtered (OpenAI `content_filter`, Anthropic `refusal`).
    Refusal,
    /// Anthropic `pause_turn` (a long server-tool turn paused); OpenAI has no such reason and
    /// gets `stop`.
    Paused,
}

impl StopReason {
    pub fn from_openai(reason: &str) -> Option<Self> {
        match reason {
            "stop" => Some(Self::EndTurn),
            "length" => Some(Self::MaxTokens),
            "tool_calls" | "function_call" => Some(Self::ToolUse),
            "content_filter" => Some(Self::Refusal),
            _ => None,
        }
    }

    pub fn from_anthropic(reason: &str) -> Option<Self> {
        match reason {
            "end_turn" => Some(Self::EndTurn),
            "stop_sequence" => Some(Self::StopSequence),
            "max_tokens" | "model_context_window_exceeded" => Some(Self::MaxTokens),
            "tool_use" => Some(Self::ToolUse),
            "refusal" => Some(Self::Refusal),
            "pause_turn" => Some(Self::Paused),
            _ => None,
        }
    }

    pub fn openai(self) -> &'static str {
        match self {
            Self::EndTurn | Self::StopSequence | Self::Paused => "stop",
            Self::MaxTokens => "length",
            Self::ToolUse => "tool_calls",
            Self::Refusal => "content_filter",
        }
    }

    pub fn anthropic(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::StopSequence => "stop_sequence",
            Self::MaxTokens => "max_tokens",
            Self::ToolUse => "tool_use",
            Self::Refusal => "refusal",
            Self::Paused => "pause_turn",
        }
    }
}

/// Token figures of one response in a neutral form.
///
/// OpenAI's `prompt_tokens` counts every input token, cached ones included
/// (`prompt_tokens_details.cached_tokens` says how many were read from the cache); Anthropic's
/// `input_tokens` counts only the uncached ones, with `cache_read_input_tokens` and
/// `cache_creation_input_tokens` beside it. Both convert through this without losing a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageFigures {
    /// Input tokens neither read from nor written to a prompt cache.
    pub uncached_input: u64,
    /// Input tokens read from a prompt cache.
    pub cache_read: u64,
    /// Input tokens written to a prompt cache (Anthropic only; OpenAI counts them as input).
    pub cache_write: u64,
    pub output: u64,
}

impl UsageFigures {
    /// From OpenAI's `prompt_tokens`, `cached_tokens` and `completion_tokens`.
    pub fn from_openai(prompt: u64, cached: u64, completion: u64) -> Self {
        Self {
            uncached_input: prompt.saturating_sub(cached),
            cache_read: cached.min(prompt),
            cache_write: 0,
            output: completion,
        }
    }

    /// From Anthropic's `input_tokens` (uncached only), `cache_read_input_tokens`,
    /// `cache_creation_input_tokens` and `output_tokens`.
    pub fn from_anthropic(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Self {
        Self {
            uncached_input: input,
            cache_read,
            cache_write,
            output,
        }
    }

    /// OpenAI's `prompt_tokens`: every input token.
    pub fn openai_prompt(&self) -> u64 {
        self.uncached_input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// OpenAI's `total_tokens`.
    pub fn openai_total(&self) -> u64 {
        self.openai_prompt().saturating_add(self.output)
    }
}

/// What an OpenAI client reads in `message.refusal` when an Anthropic model stopped with
/// `refusal` (Anthropic gives no refusal text of its own; what the model wrote before stopping
/// stays in `content`).
pub const REFUSAL_MESSAGE: &str =
    "The model declined to continue this response (Anthropic stop_reason `refusal`).";

/// An OpenAI tool call's `arguments` (JSON text inside a string) as an Anthropic `tool_use`
/// `input`, which must be an object: `None` when it is not one. No arguments, or an empty
/// string (some OpenAI-compatible servers' way of saying none), are `{}`.
pub fn arguments_object(arguments: Option<&str>) -> Option<Box<RawValue>> {
    let text = arguments
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("{}");
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Box<RawValue>>(text).ok()
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn stop_reasons_round_trip_where_both_apis_have_them() {
        for reason in [
            "end_turn",
            "stop_sequence",
            "max_tokens",
            "tool_use",
            "refusal",
        ] {
            let neutral = StopReason::from_anthropic(reason).unwrap();
            assert_eq!(neutral.anthropic(), reason);
            let back = StopReason::from_openai(neutral.openai()).unwrap();
            assert_eq!(back.openai(), neutral.openai());
        }
    }

    #[test]
    fn tool_arguments_become_an_object_or_nothing() {
        let input = |a: Option<&str>| arguments_object(a).map(|raw| raw.get().to_owned());
        assert_eq!(input(None).as_deref(), Some("{}"));
        assert_eq!(input(Some("  ")).as_deref(), Some("{}"));
        assert_eq!(
            input(Some(" {\"city\": \"Paris\"} ")).as_deref(),
            Some("{\"city\": \"Paris\"}")
        );
        assert_eq!(input(Some("[1]")), None);
        assert_eq!(input(Some("\"x\"")), None);
        assert_eq!(input(Some("{\"city\": ")), None);
        assert_eq!(input(Some("{} trailing")), None);
    }

    #[test]
    fn anthropic_input_tokens_exclude_the_cached_ones() {
        let usage = UsageFigures::from_anthropic(200, 1000, 50, 30);
        assert_eq!(usage.openai_prompt(), 1250);
        assert_eq!(usage.openai_total(), 1280);
        assert_eq!(usage.cache_read, 1000);
    }

    #[test]
    fn openai_prompt_tokens_include_the_cached_ones() {
        let usage = UsageFigures::from_openai(1200, 1000, 30);
        assert_eq!(usage.uncached_input, 200);
        assert_eq!(usage.cache_read, 1000);
        assert_eq!(usage.openai_prompt(), 1200);
        assert_eq!(usage.openai_total(), 1230);
        // A cached count above the prompt (a broken upstream) is capped, not underflowed.
        assert_eq!(UsageFigures::from_openai(5, 9, 0).openai_prompt(), 5);
    }
}
