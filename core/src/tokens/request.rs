//! The estimate of a whole request: its text priced by the family's table, plus what the
//! family's chat format adds around messages, tool definitions, tool calls and images, plus the
//! output budget quotas reserve.
//!
//! The chat-format overheads were measured (`make token-accuracy`, "Whole conversations") by
//! rendering long conversations with each family's chat template and counting them with the
//! reference tokenizers; docs/token-accuracy.md has the figures.

use super::count::{Tables, UNIT, to_tokens};
use super::family::Family;
use crate::canonical::{ApiKind, CanonicalRequest, Image, ImageDetail, Part, Role};

/// What a request is expected to cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Estimated prompt tokens, as the upstream will count them.
    pub prompt_tokens: u64,
    /// The prompt estimate erring high, for checks that must not let a too-large request
    /// through (the context window): the text's estimate plus `TEXT_MARGIN_PERCENT`, the
    /// overheads as they are.
    pub prompt_tokens_high: u64,
    /// The output the request may produce: its `max_tokens` (or equivalent), else the model's
    /// configured default, capped by what is left of the context window.
    pub output_budget: u64,
}

impl Estimate {
    /// What quotas reserve before the request goes upstream.
    pub fn reserve(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.output_budget)
    }
}

/// How to size the output budget when the request does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub default_max_output_tokens: u64,
    pub context_window: Option<u64>,
}

/// How much higher than the text's estimate `Estimate::prompt_tokens_high` prices it, in
/// percent. On long conversations the text estimate is within about ±1.5% of the reference
/// tokenizers (docs/token-accuracy.md); this keeps the context-window check above the real
/// count there, at the price of refusing a request that would have fit by less than 5% of its
/// text.
pub const TEXT_MARGIN_PERCENT: u64 = 5;

/// Tokens a chat format adds, per family. Llama 3.1 and Qwen 2.5: measured from their chat
/// templates (see the module comment). OpenAI: its published counting recipe (3 per message
/// plus the role, 3 to prime the reply); it does not publish how it renders tools, so tool
/// schemas are priced as their JSON text, which is longer than the signatures it writes (errs
/// high). Claude: Anthropic's published tool-use system prompt size (346 tokens with
/// `tool_choice` auto); its message framing is not published.
struct Format {
    /// Each message: role markers and separators (the role word included).
    per_message: u64,
    /// Once per request: reply priming, BOS, preambles.
    per_request: u64,
    /// Added when the request has no system message (a default system prompt).
    without_system: u64,
    /// Once when tools are defined: the tool-use instructions.
    tools: u64,
    /// Each tool definition, beside its name, description and schema text.
    per_tool: u64,
    /// Each `{`, `}`, `[`, `]` and `,` of a tool's schema, in table units (1/256 token):
    /// templates that write schemas as indented (Llama) or spaced (Qwen) JSON add a line or a
    /// separator per item.
    per_schema_punct: u64,
    /// Each tool call inside a message, beside its name and arguments.
    per_tool_call: u64,
    /// Each tool result (an OpenAI `tool` message, an Anthropic `tool_result` block), beside
    /// its text (and its message's `per_message`).
    per_tool_result: u64,
}

fn format(family: Family) -> Format {
    match family {
        Family::O200k | Family::Cl100k => Format {
            per_message: 4,
            per_request: 3,
            without_system: 0,
            tools: 12,
            per_tool: 8,
            per_schema_punct: 0,
            per_tool_call: 4,
            per_tool_result: 0,
        },
        Family::Claude => Format {
            per_message: 4,
            per_request: 3,
            without_system: 0,
            tools: 346,
            per_tool: 10,
            per_schema_punct: 0,
            per_tool_call: 10,
            per_tool_result: 10,
        },
        // `<|start_header_id|>role<|end_header_id|>` + "\n\n" + content + `<|eot_id|>` per
        // message; BOS, the system header's knowledge-date preamble (20) and the generation
        // prompt (4) per request, the system header even without a system message; tools as
        // indented JSON in the first user message after a fixed instruction; a tool call as
        // `{"name": .., "parameters": ..}`, a result as an `ipython` message.
        Family::Llama3 => Format {
            per_message: 5,
            per_request: 25,
            without_system: 5,
            tools: 56,
            per_tool: 29,
            per_schema_punct: 704,
            per_tool_call: 8,
            per_tool_result: 2,
        },
        // `<|im_start|>role\n` + content + `<|im_end|>\n` per message; Qwen's default system
        // prompt when there is none; tools as JSON lines in the system message between fixed
        // instructions; tool calls in `<tool_call>` tags, results in `<tool_response>` tags.
        Family::Qwen => Format {
            per_message: 5,
            per_request: 3,
            without_system: 21,
            tools: 86,
            per_tool: 20,
            per_schema_punct: 320,
            per_tool_call: 16,
            per_tool_result: 8,
        },
    }
}

/// Image tokens by the family's provider convention.
fn image_tokens(image: &Image, family: Family) -> u64 {
    let (width, height) = image.size.unwrap_or((1024, 1024));
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    match family {
        Family::Claude => {
            // Anthropic: width * height / 750 after scaling the long edge down to 1568 px and
            // the area to about 1.15 megapixels, so at most about 1600 tokens.
            let (w, h) = scale_to_fit(w, h, 1568);
            (w.saturating_mul(h) / 750).clamp(1, 1600)
        }
        Family::Qwen => {
            // Qwen2-VL / 2.5-VL: one token per 28x28 patch, between 4 and 16384 tokens.
            (w.div_ceil(28).saturating_mul(h.div_ceil(28))).clamp(4, 16384)
        }
        Family::O200k | Family::Cl100k | Family::Llama3 => {
            if image.detail == ImageDetail::Low {
                return 85;
            }
            // OpenAI: fit in 2048x2048, shortest side down to 768, then 170 per 512 px tile
            // plus 85.
            let (w, h) = scale_to_fit(w, h, 2048);
            let short = w.min(h);
            let (w, h) = if short > 768 {
                (scaled(w, 768, short), scaled(h, 768, short))
            } else {
                (w, h)
            };
            let tiles = w.div_ceil(512).saturating_mul(h.div_ceil(512));
            tiles.saturating_mul(170).saturating_add(85)
        }
    }
}

/// `value * to / from`, rounded down (`from` 0 counts as 1).
fn scaled(value: u64, to: u64, from: u64) -> u64 {
    value
        .saturating_mul(to)
        .checked_div(from.max(1))
        .unwrap_or(value)
}

/// Scales `(w, h)` down, keeping its aspect, so that neither side exceeds `max`.
fn scale_to_fit(w: u64, h: u64, max: u64) -> (u64, u64) {
    let long = w.max(h);
    if long <= max {
        return (w, h);
    }
    (scaled(w, max, long), scaled(h, max, long))
}

/// Audio, files, documents and other non-text parts: priced like a low-detail image (the
/// gateway cannot see inside them).
const OTHER_PART_TOKENS: u64 = 85;

struct Counter<'t> {
    tables: &'t Tables,
    family: Family,
    format: Format,
    /// Text in table units, rounded once at the end.
    units: u64,
    /// Overheads that scale with text structure (tool schemas), in table units.
    overhead_units: u64,
    /// Whole tokens: overheads, images, token ids.
    tokens: u64,
}

impl Counter<'_> {
    fn text(&mut self, text: &str) {
        self.units = self.units.saturating_add(self.tables.units(text));
    }

    fn add(&mut self, tokens: u64) {
        self.tokens = self.tokens.saturating_add(tokens);
    }

    fn parts(&mut self, parts: &[Part<'_>]) {
        for part in parts {
            match part {
                Part::Text(text) => self.text(text),
                Part::TokenIds(count) => self.add(*count),
                Part::Image(image) => self.add(image_tokens(image, self.family)),
                Part::ToolCall {
                    name, arguments, ..
                } => {
                    self.add(self.format.per_tool_call);
                    self.text(name);
                    self.text(arguments);
                }
                Part::ToolResult { parts, .. } => {
                    self.add(self.format.per_tool_result);
                    self.parts(parts);
                }
                Part::Other { .. } => self.add(OTHER_PART_TOKENS),
            }
        }
    }

    /// A tool schema's structure: its brackets and commas.
    fn schema(&mut self, schema: &str) {
        let punct = schema
            .bytes()
            .filter(|b| matches!(b, b'{' | b'}' | b'[' | b']' | b','))
            .count();
        let punct = u64::try_from(punct).unwrap_or(u64::MAX);
        self.overhead_units = self
            .overhead_units
            .saturating_add(punct.saturating_mul(self.format.per_schema_punct));
    }

    fn total(&self) -> u64 {
        to_tokens(self.units.saturating_add(self.overhead_units)).saturating_add(self.tokens)
    }

    /// The total with the text priced `TEXT_MARGIN_PERCENT` higher, rounded up.
    fn total_high(&self) -> u64 {
        let text = self
            .units
            .saturating_mul(100 + TEXT_MARGIN_PERCENT)
            .div_ceil(100)
            .saturating_add(self.overhead_units);
        text.div_ceil(UNIT).saturating_add(self.tokens)
    }
}

/// Estimates `request`'s prompt tokens for `family` and its output budget.
pub fn estimate_request(
    request: &CanonicalRequest<'_>,
    family: Family,
    budget: Budget,
) -> Estimate {
    let mut counter = Counter {
        tables: family.tables(),
        family,
        format: format(family),
        units: 0,
        overhead_units: 0,
        tokens: 0,
    };
    let chat = matches!(
        request.api,
        ApiKind::ChatCompletions | ApiKind::Responses | ApiKind::Messages
    );
    if chat {
        counter.add(counter.format.per_request);
        if !request.messages.iter().any(|m| m.role == Role::System) {
            counter.add(counter.format.without_system);
        }
        if !request.tools.is_empty() {
            counter.add(counter.format.tools);
        }
        for tool in &request.tools {
            counter.add(counter.format.per_tool);
            counter.text(&tool.name);
            if let Some(description) = &tool.description {
                counter.text(description);
            }
            if let Some(schema) = tool.schema {
                counter.text(schema);
                counter.schema(schema);
            }
        }
    }
    for message in &request.messages {
        if chat {
            counter.add(counter.format.per_message);
            if message.role == Role::Tool {
                counter.add(counter.format.per_tool_result);
            }
        }
        counter.parts(&message.parts);
    }
    let mut prompt_tokens = counter.total();
    if prompt_tokens == 0 && counter.units > 0 {
        // A prompt with any text is at least one token.
        prompt_tokens = 1;
    }
    let prompt_tokens_high = counter.total_high().max(prompt_tokens);
    let output_budget = match request.api {
        ApiKind::Embeddings => 0,
        _ => {
            let asked = request
                .max_output_tokens
                .unwrap_or(budget.default_max_output_tokens);
            match budget.context_window {
                Some(window) => asked.min(window.saturating_sub(prompt_tokens)),
                None => asked,
            }
        }
    };
    Estimate {
        prompt_tokens,
        prompt_tokens_high,
        output_budget,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Budget, estimate_request, image_tokens};
    use crate::api::parse;
    use crate::canonical::{ApiKind, Image, ImageDetail};
    use crate::tokens::{Family, count};

    const BUDGET: Budget = Budget {
        default_max_output_tokens: 4096,
        context_window: None,
    };

    fn estimate(api: ApiKind, body: &str, family: Family) -> (u64, u64) {
        let parsed = parse(api, body.as_bytes()).unwrap();
        let e = estimate_request(&parsed.request, family, BUDGET);
        (e.prompt_tokens, e.output_budget)
    }

    #[test]
    fn openai_chat_adds_openai_message_overheads() {
        // OpenAI's recipe: "Hello!" is 2 tokens; 3 + 1 (role) per message; 3 for the reply.
        let body =
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}],"max_tokens":50}"#;
        let text = count("Hello!", Family::O200k);
        assert_eq!(
            estimate(ApiKind::ChatCompletions, body, Family::O200k),
            (text + 4 + 3, 50)
        );
    }

    /// A chat of `n` messages "ok", alternating user and assistant, with no system message.
    fn oks(n: usize) -> String {
        let messages: Vec<String> = (0..n)
            .map(|i| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                format!(r#"{{"role":"{role}","content":"ok"}}"#)
            })
            .collect();
        format!(r#"{{"model":"m","messages":[{}]}}"#, messages.join(","))
    }

    #[test]
    fn a_fifty_thousand_message_prompt_is_not_underestimated() {
        // The real counts, from each template's rules ("ok", "user", "assistant", "system" and
        // "\n\n" are one token in every vocabulary here):
        // Llama 3.1: <|begin_of_text|>; the system header, written even without a system
        // message (<|start_header_id|> "system" <|end_header_id|> "\n\n", the 20-token date
        // preamble, <|eot_id|>); per message <|start_header_id|>, the role, <|end_header_id|>,
        // "\n\n", "ok", <|eot_id|>; the generation prompt (<|start_header_id|> "assistant"
        // <|end_header_id|> "\n\n").
        let llama = 1 + (4 + 20 + 1) + 50_000 * 6 + 4;
        // Qwen 2.5: its default system message (<|im_start|>, "system", "\n", 16 tokens of
        // text, <|im_end|>, "\n"); per message <|im_start|>, the role, "\n", "ok", <|im_end|>,
        // "\n"; the generation prompt (<|im_start|> "assistant" "\n").
        let qwen = 21 + 50_000 * 6 + 3;
        // OpenAI's recipe: 3 per message plus its role and content; 3 to prime the reply.
        let openai = 50_000 * (3 + 1 + 1) + 3;
        let body = oks(50_000);
        let parsed = parse(ApiKind::ChatCompletions, body.as_bytes()).unwrap();
        for (family, truth) in [
            (Family::Llama3, llama),
            (Family::Qwen, qwen),
            (Family::O200k, openai),
            (Family::Cl100k, openai),
        ] {
            let e = estimate_request(&parsed.request, family, BUDGET);
            assert!(
                e.prompt_tokens_high >= truth,
                "{family:?}: the check's {} < {truth}",
                e.prompt_tokens_high
            );
            assert!(
                e.prompt_tokens.abs_diff(truth) * 100 <= truth,
                "{family:?}: {} is not within 1% of {truth}",
                e.prompt_tokens
            );
        }
    }

    #[test]
    fn tool_overheads_follow_the_templates() {
        // One tool with a one-property schema, one call and its result, for Qwen 2.5: the
        // fixed tool instructions, the tool's JSON line, <tool_call> and <tool_response>
        // framing, each beside the text the estimator prices from the table.
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":"weather in Oslo?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\": \"Oslo\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"{\"temp\": 3}"}],
          "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
        let (with_tools, _) = estimate(ApiKind::ChatCompletions, body, Family::Qwen);
        let text: u64 = ["weather in Oslo?", "get_weather", r#"{"city": "Oslo"}"#]
            .iter()
            .chain(&[r#"{"temp": 3}"#, "get_weather", "Current weather"])
            .map(|t| count(t, Family::Qwen))
            .sum();
        let schema = r#"{"type":"object","properties":{"city":{"type":"string"}}}"#;
        // 3 messages of 5, the tool result's 8 and the call's 16, the default system message
        // (21), the generation prompt (3), the tool instructions (86), the tool (20) and its
        // schema's 7 brackets and commas at 1.25 tokens each.
        let overheads = 3 * 5 + 8 + 16 + 21 + 3 + 86 + 20;
        let expected = text + count(schema, Family::Qwen) + overheads + 7 * 5 / 4;
        assert!(
            with_tools.abs_diff(expected) <= 2,
            "{with_tools} vs {expected}"
        );
    }

    #[test]
    fn output_budget_defaults_and_is_capped_by_the_context_window() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#;
        let parsed = parse(ApiKind::ChatCompletions, body.as_bytes()).unwrap();
        let e = estimate_request(&parsed.request, Family::O200k, BUDGET);
        assert_eq!(e.output_budget, 4096);
        let small = Budget {
            default_max_output_tokens: 4096,
            context_window: Some(100),
        };
        let e = estimate_request(&parsed.request, Family::O200k, small);
        assert_eq!(e.output_budget, 100 - e.prompt_tokens);
        assert_eq!(e.reserve(), 100);
        let embeddings = r#"{"model":"m","input":["a","b"]}"#;
        assert_eq!(
            estimate(ApiKind::Embeddings, embeddings, Family::Cl100k),
            (2, 0)
        );
    }

    #[test]
    fn tools_tool_calls_and_system_prompts_count() {
        let plain = r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"weather in Oslo?"}]}"#;
        let with_tools = r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"weather in Oslo?"}],
            "tools":[{"name":"get_weather","description":"Current weather for a city",
                      "input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#;
        let (a, _) = estimate(ApiKind::Messages, plain, Family::Claude);
        let (b, _) = estimate(ApiKind::Messages, with_tools, Family::Claude);
        assert!(b > a + 346 + 10, "{a} {b}");
        // Qwen adds its default system prompt when there is none.
        let system = r#"{"model":"m","max_tokens":1,"system":"Be brief.","messages":[{"role":"user","content":"weather in Oslo?"}]}"#;
        let (q_plain, _) = estimate(ApiKind::Messages, plain, Family::Qwen);
        let (q_system, _) = estimate(ApiKind::Messages, system, Family::Qwen);
        assert!(q_plain > q_system, "{q_plain} {q_system}");
    }

    #[test]
    fn images_follow_each_providers_convention() {
        let low = Image {
            detail: ImageDetail::Low,
            size: Some((4000, 3000)),
        };
        assert_eq!(image_tokens(&low, Family::O200k), 85);
        let big = Image {
            detail: ImageDetail::High,
            size: Some((2048, 4096)),
        };
        // 2048x4096 -> 1024x2048 -> 768x1536: 2x3 tiles.
        assert_eq!(image_tokens(&big, Family::O200k), 85 + 170 * 6);
        let unknown = Image::default();
        assert_eq!(image_tokens(&unknown, Family::O200k), 765);
        let photo = Image {
            detail: ImageDetail::Auto,
            size: Some((1000, 1000)),
        };
        assert_eq!(image_tokens(&photo, Family::Claude), 1333);
        assert_eq!(image_tokens(&unknown, Family::Claude), 1398);
        assert_eq!(image_tokens(&photo, Family::Qwen), 36 * 36);
    }
}
