//! The HTTP surface: vLLM's OpenAI-compatible routes, its native Anthropic Messages route, health
//! and Prometheus metrics; in provider mode only the provider's API. Every API route passes the
//! gate (faults, keys, rate-limit headers, counts); /admin, /health and /metrics do not.

mod admin;
mod anthropic;
mod content;
mod error;
mod gate;
mod openai;
mod provider;
mod responses;
mod script;
mod sse;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;

use crate::config::{Config, MAX_OUTPUT_TOKENS, Provider};
use crate::connection::Connections;
use crate::engine::{Engine, FinishReason, Generation, GenerationRequest};
use crate::faults::FaultSwitch;
use crate::metrics;
use crate::tokens::Prompt;
use crate::traffic::Traffic;
use error::{ApiError, OpenAiError};
use gate::CutAfterTokens;
use provider::ProviderState;
use script::Output;

/// Names the replica that answered, so tests behind a gateway can tell replicas apart.
pub const SIMULATOR_ID_HEADER: HeaderName = HeaderName::from_static("x-simulator-id");

/// Large enough for long-context prompts; axum's default of 2 MiB is not.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// What the server shares with its listener: the fault switch, the traffic counts and the open
/// connections.
#[derive(Debug, Clone, Default)]
pub struct Plumbing {
    pub faults: Arc<FaultSwitch>,
    pub traffic: Arc<Traffic>,
    pub connections: Arc<Connections>,
}

struct AppState {
    config: Config,
    engine: Engine,
    /// Reported as the `created` time of the served models.
    started_unix: u64,
    faults: Arc<FaultSwitch>,
    traffic: Arc<Traffic>,
    connections: Arc<Connections>,
    /// Set in provider mode.
    provider: Option<ProviderState>,
}

type SharedState = Arc<AppState>;

/// All routes, answering as the replica at `address`.
pub fn router(config: Config, engine: Engine, address: SocketAddr, plumbing: Plumbing) -> Router {
    let provider = config.provider.clone().map(ProviderState::new);
    let api = provider.as_ref().map(ProviderState::api);
    let state = Arc::new(AppState {
        config,
        engine,
        started_unix: unix_seconds(),
        faults: plumbing.faults,
        traffic: plumbing.traffic,
        connections: plumbing.connections,
        provider,
    });
    let simulator_id = HeaderValue::from_str(&address.to_string())
        .expect("a socket address is a valid header value");
    let routes = Router::new();
    let routes = match api {
        None => routes
            .route("/v1/chat/completions", post(openai::chat_completions))
            .route("/v1/completions", post(openai::completions))
            .route("/v1/models", get(openai::list_models))
            .route("/v1/messages", post(anthropic::messages))
            .route("/v1/responses", post(responses::responses)),
        Some(Provider::Openai) => routes
            .route("/v1/chat/completions", post(openai::chat_completions))
            .route("/v1/models", get(openai::list_models)),
        Some(Provider::Anthropic) => routes.route("/v1/messages", post(anthropic::messages)),
    };
    routes
        .fallback(unknown_route)
        .layer(from_fn_with_state(Arc::clone(&state), gate::gate))
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .route(
            "/admin/faults",
            get(admin::get_fault)
                .put(admin::set_fault)
                .delete(admin::clear_fault),
        )
        .route("/admin/stats", get(admin::stats).delete(admin::clear_stats))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(map_response(move |mut response: Response| {
            let simulator_id = simulator_id.clone();
            async move {
                response
                    .headers_mut()
                    .insert(SIMULATOR_ID_HEADER, simulator_id);
                response
            }
        }))
        .with_state(state)
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn render_metrics(State(state): State<SharedState>) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64());
    let text = metrics::render(&state.config, &state.engine.stats(), now);
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> OpenAiError {
    ApiError::not_found(format!("Invalid URL ({method} {})", uri.path())).into()
}

impl AppState {
    /// Resolves the requested model, applies the output budget, pays the provider's rate limits
    /// and queues the request. A scripted `output` takes exactly its own tokens, whatever the
    /// client's limit, and ends as a natural stop.
    fn start_generation(
        &self,
        model: &str,
        prompt: Prompt,
        max_tokens: Option<u32>,
        output: &Output,
    ) -> Result<Generation, ApiError> {
        let adapter = if self.config.serves_model(model) {
            None
        } else if self.config.loras.iter().any(|lora| lora == model) {
            Some(Arc::from(model))
        } else {
            return Err(ApiError::unknown_model(model));
        };
        let (output_tokens, limit_reason) = match output.scripted_tokens() {
            Some(tokens) => (tokens, FinishReason::Stop),
            None => output_budget(max_tokens, self.config.output_tokens)?,
        };
        let prompt_tokens = prompt.token_count();
        let charge = match &self.provider {
            Some(provider) => Some(provider.admit(prompt_tokens.saturating_add(output_tokens))?),
            None => None,
        };
        tracing::debug!(model, prompt_tokens, output_tokens, "request queued");
        let submitted = self.engine.submit(GenerationRequest {
            prompt,
            output_tokens,
            limit_reason,
            adapter,
        });
        submitted.map_err(|error| {
            if let (Some(provider), Some(charge)) = (&self.provider, charge) {
                provider.refund(charge);
            }
            ApiError::bad_request(error.to_string())
        })
    }

    /// After how many tokens a stream is cut: a `cut_after_tokens` fault, else
    /// `--cut-streams-after`.
    fn cut_streams_after(&self, fault: Option<Extension<CutAfterTokens>>) -> Option<u32> {
        fault
            .map(|Extension(CutAfterTokens(tokens))| tokens)
            .or(self.config.cut_streams_after)
    }
}

/// How many tokens to generate, and how the end is reported: reaching the client's own limit is
/// `length`; the simulator's default length (or the server-side cap) plays the model's natural
/// stop.
fn output_budget(
    max_tokens: Option<u32>,
    default_tokens: u32,
) -> Result<(u32, FinishReason), ApiError> {
    match max_tokens {
        Some(0) => Err(ApiError::bad_request("max_tokens must be at least 1")),
        Some(limit) if limit <= MAX_OUTPUT_TOKENS => Ok((limit, FinishReason::Length)),
        Some(_) => Ok((MAX_OUTPUT_TOKENS, FinishReason::Stop)),
        None => Ok((default_tokens, FinishReason::Stop)),
    }
}

/// What a generation amounted to, once all its tokens are in.
struct Finished {
    prompt_tokens: u32,
    /// Of the prompt tokens, those the prefix cache held.
    cached_prompt_tokens: u32,
    completion_tokens: u32,
    reason: FinishReason,
}

/// Waits for every token (for non-streaming responses).
async fn run_to_completion(mut generation: Generation) -> Result<Finished, ApiError> {
    let prompt_tokens = generation.prompt_tokens();
    while let Some(token) = generation.next_token().await {
        if let Some(reason) = token.finish {
            return Ok(Finished {
                prompt_tokens,
                cached_prompt_tokens: token.cached_prompt_tokens,
                completion_tokens: token.index + 1,
                reason,
            });
        }
    }
    Err(ApiError::engine_stopped())
}

/// Request bodies are parsed by hand so that malformed JSON gets an API-shaped 400, not axum's
/// plain-text rejection.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

/// A unique response id such as `chatcmpl-<32 hex digits>`.
fn response_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process, which is all the randomness an id needs.
    let halves = [0_u64, 1].map(|half| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(half);
        hasher.finish()
    });
    format!("{prefix}{:016x}{:016x}", halves[0], halves[1])
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_budget_reports_client_limits_as_length() {
        assert_eq!(
            output_budget(Some(5), 32).unwrap(),
            (5, FinishReason::Length)
        );
        assert_eq!(output_budget(None, 32).unwrap(), (32, FinishReason::Stop));
        assert_eq!(
            output_budget(Some(100_000), 32).unwrap(),
            (MAX_OUTPUT_TOKENS, FinishReason::Stop)
        );
        assert_eq!(
            output_budget(Some(0), 32).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn response_ids_are_unique() {
        let first = response_id("msg_");
        assert!(first.starts_with("msg_") && first.len() == 36);
        assert_ne!(first, response_id("msg_"));
    }
}
