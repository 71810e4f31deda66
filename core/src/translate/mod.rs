//! Translation between the OpenAI Chat Completions API and the Anthropic Messages API, both
//! ways: requests, whole JSON responses, streams (SSE) and errors. A target whose API shape
//! differs from the client's gets the request in its own shape, and the client gets the
//! target's answer back in the shape it asked in, so usage, quotas, cost and guardrails (which
//! run in the client's shape) see the same request and response whichever way the bytes went.
//!
//! Only Chat Completions (`ApiKind::ChatCompletions`) and Messages (`ApiKind::Messages`)
//! translate (`Shape::of`). What has no counterpart in the other API is answered with a 400
//! naming the field (`GatewayError::Untranslatable`), never silently dropped.
//!
//! # What translates
//!
//! - System prompts: OpenAI `system` and `developer` messages (all of them, in order: Anthropic
//!   has one system prompt, before the conversation) <-> Anthropic `system` (a string, or text
//!   blocks).
//! - Content: text; images (an OpenAI `image_url` `data:` URL <-> an Anthropic `base64`
//!   source, any other URL <-> a `url` source).
//! - Tools: `tools[].function{name, description, parameters}` <-> `tools[]{name, description,
//!   input_schema}` (a function without parameters gets an empty object schema); `tool_choice`
//!   `auto`/`none`/`required`/a named function <-> `auto`/`none`/`any`/`tool`;
//!   `parallel_tool_calls: false` <-> `disable_parallel_tool_use: true`.
//! - Tool calls: assistant `tool_calls` (arguments as a JSON string) <-> `tool_use` blocks
//!   (input as an object); `tool` messages <-> `tool_result` blocks of a user message
//!   (consecutive tool messages, and a user message right after them, make one user message).
//! - `max_completion_tokens` (or `max_tokens`) <-> `max_tokens` (Anthropic requires it: the
//!   target's default when the client gave none; OpenAI targets get `max_completion_tokens`);
//!   `stop` <-> `stop_sequences`; `temperature`, `top_p`; `user` (or `safety_identifier`)
//!   <-> `metadata.user_id`; `stream` (an OpenAI target streamed is asked for
//!   `stream_options.include_usage`, so the stream reports usage as Anthropic's do).
//! - Reasoning: OpenAI `reasoning_effort` `low`/`medium`/`high` -> Anthropic `thinking` with a
//!   budget of 1024/4096/16384 tokens, at most half of `max_tokens` (thinking counts against it
//!   in both APIs; below Anthropic's minimum of 1024 it is a 400), `none`/`minimal` -> no
//!   thinking; Anthropic `thinking` enabled -> the effort whose budget is nearest (below 2048
//!   `low`, below 8192 `medium`, else `high`), disabled -> none. Thinking in responses:
//!   Anthropic `thinking` blocks -> the message's `reasoning_content` (the field OpenAI-compatible
//!   servers use); OpenAI-compatible `reasoning_content` or `reasoning` -> a `thinking` block
//!   (with an empty `signature`: OpenAI signs nothing).
//! - Responses: `id` (kept as the target wrote it), `model` (the target's model: the client sees
//!   which model answered), `created` (an Anthropic response has none: the host's clock, see
//!   `response_at`), text, tool calls, stop reasons and usage with cached tokens (`mapping`);
//!   refusals: an OpenAI `message.refusal` -> a text block and stop reason `refusal`; an
//!   Anthropic `refusal` stop -> `finish_reason: content_filter` and `message.refusal`
//!   (`REFUSAL_MESSAGE`), the text written before it staying in `content`.
//! - Errors: the message is kept, the type follows the status (`error`).
//!
//! # What does not translate (a 400 naming the field)
//!
//! To Anthropic (an OpenAI client, an Anthropic target):
//! - `n` > 1; `logprobs: true`, `top_logprobs`; non-zero `presence_penalty` or
//!   `frequency_penalty`; a non-empty `logit_bias`; `seed`; `prediction`; `verbosity`.
//! - `response_format` other than `text` (`json_object`, `json_schema`).
//! - Audio: `modalities` other than `["text"]`, `audio`, `input_audio` parts, an assistant
//!   message's `audio`.
//! - `file` content parts; content parts other than text and images (text only in system,
//!   developer and tool messages).
//! - `temperature` above 1 (Anthropic's range is 0 to 1).
//! - `service_tier` other than `auto` or `default`; `web_search_options`.
//! - Tools that are not functions (`custom`), `strict: true` function schemas, `tool_choice`
//!   `allowed_tools` or `custom`; the deprecated `functions`, `function_call` and `function`
//!   role messages.
//! - A message's `name` (Anthropic has no participant names).
//! - `reasoning_effort` when half of the output budget is below Anthropic's minimum thinking
//!   budget of 1024 tokens.
//! - Any top-level field the gateway does not know (vLLM's `top_k`, `min_p`, ...).
//!
//! To OpenAI (an Anthropic client, an OpenAI target):
//! - `top_k`; `container`, `mcp_servers`, `context_management`; any top-level field the gateway
//!   does not know.
//! - `document` blocks (PDF, text); images in a `tool_result` (OpenAI tool messages hold text
//!   only); image sources other than `base64` and `url` (`file`).
//! - Server tools (`web_search_*`, `bash_*`, `text_editor_*`, `computer_*`, any tool with a
//!   `type` other than `custom`) and their blocks (`server_tool_use`, `*_tool_result`,
//!   `search_result`, `container_upload`, ...).
//! - `thinking` other than `enabled` or `disabled`.
//!
//! # Not carried, by design (no field to carry it, and the answer does not depend on it)
//!
//! - `cache_control` on Anthropic blocks and tools (OpenAI caches prompts by itself);
//!   OpenAI's `prompt_cache_key`, `prompt_cache_retention`, `store` and `metadata` (OpenAI's own
//!   bookkeeping); OpenAI `stream_options` (an Anthropic stream always reports usage: the
//!   stream translator reports it as the client asked); `service_tier` `auto`/`default`/
//!   `standard_only`; an image's `detail` (Anthropic has no such setting).
//! - Thinking and redacted-thinking blocks in an Anthropic request's earlier assistant turns
//!   (OpenAI has no field for them; Anthropic itself ignores them outside the current tool-use
//!   turn); `redacted_thinking` blocks in an Anthropic response (encrypted); thinking
//!   signatures; a `tool_result`'s `is_error` (its text, which says what failed, is sent);
//!   citations on text blocks (the text is sent).
//! - Which stop sequence matched: OpenAI does not say (`stop_sequence` is `null`, and
//!   `stop_reason` `end_turn`), and Anthropic's `stop_sequence` reads as OpenAI's `stop`.
//! - Anthropic cache writes (`cache_creation_input_tokens`) count as prompt tokens in OpenAI's
//!   usage, which has no field for them.
//!
//! Same shape on both sides: the request's `model` is replaced (every other byte kept), and
//! responses and error bodies in the client's own format pass as they are.

mod error;
mod mapping;
mod request;
mod response;
mod stream;
mod wire;

pub use error::error;
pub use mapping::{REFUSAL_MESSAGE, Shape, StopReason, UsageFigures};
pub use request::{TargetRequest, request, request_with};
pub use response::{response, response_at};
pub use stream::StreamTranslator;

#[cfg(test)]
mod tests;
