//! Translation between the OpenAI Chat Completions API and the Anthropic Messages API, both
//! ways: requests, whole JSON responses, streams (SSE) and errors. A target whose API shape
//! differs from the client's gets the request in its own shape, and the client gets the
//! target's answer back in the shape it asked in, so usage, quotas, cost and guardrails (which
//! run in the client's shape) see the same request and response whichever way the bytes went.
//!
//! Only Chat Completions (`ApiKind::ChatCompletions`) and Messages (`ApiKind::Messages`)
//! translate; any other pair is `Unsupported`. What has no counterpart in the other API is
//! answered with a 400 naming the field (`GatewayError`), never silently dropped: see
//! `request.rs` for the list.

mod mapping;
// Removed when request.rs, response.rs and error.rs land.
mod pending;
mod stream;

pub use mapping::{Shape, StopReason, UsageFigures};
pub use pending::{TargetRequest, error, request, response};
pub use stream::StreamTranslator;

// The translation functions (request, response, error, stream) live in their own files:
// `request.rs` (client body -> target body), `response.rs` (whole JSON response),
// `error.rs` (error bodies), `stream.rs` (`StreamTranslator`, SSE at any split point).
