//! The engine task: runs scheduler steps in simulated time and delivers tokens to requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::scheduler::{Emission, NewSequence, Scheduler, SeqId};
use super::stats::{EngineStats, FinishedCounts, Histogram};
use super::{EngineConfig, FinishReason, Token};

#[derive(Debug)]
pub(super) enum Command {
    Submit {
        sequence: NewSequence,
        client: Client,
    },
    Abort(SeqId),
}

/// Where a sequence's tokens go, and what the driver measures about it.
#[derive(Debug)]
pub(super) struct Client {
    tokens: mpsc::UnboundedSender<Token>,
    limit_reason: FinishReason,
    arrived: Instant,
    /// Set at the first admission; a preempted sequence keeps what its first admission found.
    cached_prompt_tokens: Option<u32>,
}

impl Client {
    pub(super) fn new(tokens: mpsc::UnboundedSender<Token>, limit_reason: FinishReason) -> Self {
        Self {
            tokens,
            limit_reason,
            arrived: Instant::now(),
            cached_prompt_tokens: None,
        }
    }
}

pub(super) struct Driver {
    config: EngineConfig,
    scheduler: Scheduler,
    clients: HashMap<SeqId, Client>,
    /// The most requests the engine held at once (running and waiting), since it started.
    peak_requests: usize,
    finished: FinishedCounts,
    time_to_first_token: Histogram,
    published: Arc<Mutex<EngineStats>>,
}

impl Driver {
    pub(super) fn new(config: EngineConfig, published: Arc<Mutex<EngineStats>>) -> Self {
        Self {
            config,
            scheduler: Scheduler::new(config.scheduler),
            clients: HashMap::new(),
            peak_requests: 0,
            finished: FinishedCounts::default(),
            time_to_first_token: Histogram::default(),
            published,
        }
    }

    /// Runs until every sender of commands (the `Engine` handles and live `Generation`s) is gone.
    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            while let Ok(command) = commands.try_recv() {
                self.handle(command);
            }
            let plan = self.scheduler.schedule();
            self.note_cache_hits(&plan.admitted);
            self.publish();

            if self.scheduler.running_len() == 0 {
                // Nothing can run: sleep until a request or an abort arrives.
                match commands.recv().await {
                    Some(command) => self.handle(command),
                    None => return,
                }
                continue;
            }

            let step = self.step_duration(plan.prefill_tokens);
            if step.is_zero() {
                // A step that costs nothing (no decode or prefill cost: a stand-in that answers
                // at once, for measuring a gateway) takes no timer, which would round it up to
                // a whole millisecond; other tasks run, and arrivals are applied at the top.
                tokio::task::yield_now().await;
            } else {
                // Requests and aborts keep arriving while the step "computes"; they are applied
                // at once so that an abort frees its blocks and the snapshot shows new arrivals
                // waiting.
                let step_end = Instant::now() + step;
                loop {
                    tokio::select! {
                        () = sleep_until(step_end) => break,
                        command = commands.recv() => match command {
                            Some(command) => {
                                self.handle(command);
                                self.publish();
                            }
                            None => return,
                        },
                    }
                }
            }
            let emissions = self.scheduler.complete_step();
            self.deliver(&emissions);
        }
    }

    /// Tokio timers fire on whole milliseconds, so a step really lasts this long rounded up to
    /// the next millisecond: close enough at the default 20 ms decode steps.
    fn step_duration(&self, prefill_tokens: u32) -> Duration {
        self.config.decode_per_step + self.config.prefill_per_token.saturating_mul(prefill_tokens)
    }

    /// Remembers how much of each newly admitted prompt the prefix cache held.
    fn note_cache_hits(&mut self, admitted: &[SeqId]) {
        for id in admitted {
            if let Some(client) = self.clients.get_mut(id) {
                if client.cached_prompt_tokens.is_none() {
                    client.cached_prompt_tokens = self.scheduler.cached_prompt_tokens(*id);
                }
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submit { sequence, client } => {
                self.clients.insert(sequence.id, client);
                self.peak_requests = self.peak_requests.max(self.clients.len());
                self.scheduler.enqueue(sequence);
            }
            Command::Abort(id) => self.abort(id),
        }
    }

    fn abort(&mut self, id: SeqId) {
        self.clients.remove(&id);
        if self.scheduler.abort(id) {
            self.finished.abort += 1;
        }
    }

    fn deliver(&mut self, emissions: &[Emission]) {
        let now = Instant::now();
        for emission in emissions {
            let Some(client) = self.clients.get(&emission.id) else {
                continue;
            };
            if emission.index == 0 {
                let waited = now.duration_since(client.arrived);
                self.time_to_first_token.observe(waited.as_secs_f64());
            }
            let finish = emission.finished.then_some(client.limit_reason);
            let token = Token {
                index: emission.index,
                finish,
                cached_prompt_tokens: client.cached_prompt_tokens.unwrap_or(0),
            };
            if client.tokens.send(token).is_err() {
                // The receiver is gone; its abort command may still be in flight.
                self.abort(emission.id);
                continue;
            }
            match finish {
                Some(FinishReason::Stop) => self.finished.stop += 1,
                Some(FinishReason::Length) => self.finished.length += 1,
                None => continue,
            }
            self.clients.remove(&emission.id);
        }
    }

    fn publish(&self) {
        let mut stats = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *stats = EngineStats {
            waiting: self.scheduler.waiting_len(),
            running: self.scheduler.running_len(),
            kv_usage: self.scheduler.kv_usage(),
            running_adapters: self.scheduler.running_adapters(),
            waiting_adapters: self.scheduler.waiting_adapters(),
            counters: self.scheduler.counters(),
            finished: self.finished,
            peak_requests: self.peak_requests,
            time_to_first_token: self.time_to_first_token.clone(),
        };
    }
}
