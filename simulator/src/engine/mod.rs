//! The simulated inference engine of one GPU server.
//!
//! One tokio task (the driver) owns the scheduler and runs it in steps, sleeping for as long as a
//! real step would take: a fixed decode time plus a per-token prefill time for newly admitted,
//! uncached tokens. Requests talk to it through a command channel and receive their tokens on a
//! channel of their own; the driver publishes an `EngineStats` snapshot for the metrics endpoint.

mod driver;
mod kv_cache;
mod lora;
mod scheduler;
mod stats;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

pub use scheduler::SchedulerConfig;
pub use stats::{EngineStats, FinishedCounts, Histogram, TTFT_BUCKETS_SECONDS};

use crate::tokens::Prompt;
use driver::{Client, Command, Driver};
use scheduler::{NewSequence, SeqId};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    pub scheduler: SchedulerConfig,
    pub decode_per_step: Duration,
    pub prefill_per_token: Duration,
}

/// Why a sequence stopped generating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model "chose" to stop: the simulator's default output length was reached.
    Stop,
    /// The client's token limit was reached.
    Length,
}

#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub output_tokens: u32,
    /// Reported when `output_tokens` have been generated.
    pub limit_reason: FinishReason,
    /// The LoRA adapter to serve the request with; None for the base model.
    pub adapter: Option<Arc<str>>,
}

/// One generated token, delivered when the engine step that produced it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub index: u32,
    /// Set on the last token.
    pub finish: Option<FinishReason>,
    /// Prompt tokens whose KV came from the prefix cache when the request was first admitted
    /// (the same on every token): what providers report as cached input tokens.
    pub cached_prompt_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// Prompt plus output would not fit the KV cache even with the server to itself.
    ContextTooLong { requested: u64, max_model_len: u32 },
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ContextTooLong {
                requested,
                max_model_len,
            } => write!(
                f,
                "This model's maximum context length is {max_model_len} tokens. However, you \
                 requested {requested} tokens (prompt plus output). Please reduce the length of \
                 the messages or the maximum output tokens."
            ),
        }
    }
}

impl std::error::Error for SubmitError {}

/// A handle to the engine task. Cheap to clone; the task ends when every handle and every
/// `Generation` is gone.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<EngineStats>>,
    next_id: Arc<AtomicU64>,
}

impl Engine {
    /// Spawns the engine task on the current tokio runtime.
    pub fn start(config: EngineConfig) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(EngineStats::default()));
        tokio::spawn(Driver::new(config, Arc::clone(&stats)).run(receiver));
        Self {
            config,
            commands,
            stats,
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues a request. Its tokens arrive on the returned `Generation`; dropping that aborts it.
    pub fn submit(&self, request: GenerationRequest) -> Result<Generation, SubmitError> {
        let scheduler = self.config.scheduler;
        let prompt_tokens = request.prompt.token_count();
        let requested = u64::from(prompt_tokens) + u64::from(request.output_tokens);
        if requested > u64::from(scheduler.max_model_len()) {
            return Err(SubmitError::ContextTooLong {
                requested,
                max_model_len: scheduler.max_model_len(),
            });
        }

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tokens, receiver) = mpsc::unbounded_channel();
        let sequence = NewSequence {
            id,
            prompt_tokens,
            prompt_blocks: request.prompt.block_hashes(scheduler.block_size),
            output_tokens: request.output_tokens,
            adapter: request.adapter,
        };
        let client = Client::new(tokens, request.limit_reason);
        // If the engine task is gone the receiver just ends, which callers treat as a failure.
        let _ = self.commands.send(Command::Submit { sequence, client });
        Ok(Generation {
            id,
            prompt_tokens,
            tokens: receiver,
            commands: self.commands.clone(),
            finished: false,
        })
    }

    /// The latest snapshot published by the engine task.
    pub fn stats(&self) -> EngineStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The receiving end of one request. Dropping it before the last token aborts the sequence,
/// which is how a client disconnect frees its KV blocks.
#[derive(Debug)]
pub struct Generation {
    id: SeqId,
    prompt_tokens: u32,
    tokens: mpsc::UnboundedReceiver<Token>,
    commands: mpsc::UnboundedSender<Command>,
    finished: bool,
}

impl Generation {
    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// The next token, or None after the last one (or if the engine stopped).
    pub async fn next_token(&mut self) -> Option<Token> {
        if self.finished {
            return None;
        }
        let token = self.tokens.recv().await?;
        self.finished = token.finish.is_some();
        Some(token)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(Command::Abort(self.id));
        }
    }
}

#[cfg(test)]
mod tests;
