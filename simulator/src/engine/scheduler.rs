//! The step scheduler: which sequences run in the next engine step, and what each step produces.
//!
//! It is pure bookkeeping with no clock; the driver decides how long a step takes from the
//! `StepPlan` and calls `complete_step` when that time has passed.
//!
//! Admission order is FIFO with one exception, as in vLLM: a request whose LoRA adapter cannot get
//! a slot is skipped over (it keeps its place) so that it does not block requests for the base
//! model or for already-active adapters. Running out of sequence slots or KV blocks stops admission
//! at the first request that does not fit.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::kv_cache::{BlockId, KvCache};
use super::lora::LoraSlots;
use crate::tokens::BlockHash;

pub type SeqId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub max_num_seqs: usize,
    pub num_blocks: u32,
    pub block_size: u32,
    pub max_loras: usize,
    pub prefix_caching: bool,
}

impl SchedulerConfig {
    /// The longest prompt plus output a single sequence may reach: it must fit the whole cache
    /// with the one spare block that admission demands.
    pub fn max_model_len(&self) -> u32 {
        self.num_blocks.saturating_sub(1) * self.block_size
    }
}

/// What the scheduler needs to know about a request.
#[derive(Debug, Clone)]
pub struct NewSequence {
    pub id: SeqId,
    pub prompt_tokens: u32,
    pub prompt_blocks: Vec<BlockHash>,
    pub output_tokens: u32,
    pub adapter: Option<Arc<str>>,
}

#[derive(Debug)]
struct Sequence {
    request: NewSequence,
    generated: u32,
    blocks: Vec<BlockId>,
    /// Prompt tokens are counted once, even if the sequence is preempted and admitted again.
    prompt_counted: bool,
    /// Prompt tokens found in the prefix cache when the sequence was last admitted.
    cached_tokens: u32,
}

impl Sequence {
    fn tokens_in_cache(&self) -> u32 {
        self.request.prompt_tokens + self.generated
    }
}

/// Monotonic counters, named after the vLLM metrics they feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerCounters {
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    pub preemptions: u64,
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
}

/// The work admitted for the coming step.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepPlan {
    pub admitted: Vec<SeqId>,
    /// Tokens that must be computed for the admitted sequences (prompt and, after a preemption,
    /// already generated tokens), excluding those found in the prefix cache.
    pub prefill_tokens: u32,
}

/// One output token of one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emission {
    pub id: SeqId,
    /// 0 for the first token of the sequence.
    pub index: u32,
    pub finished: bool,
}

#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCache,
    loras: LoraSlots,
    waiting: VecDeque<Sequence>,
    /// In admission order: the last one is the first to be preempted.
    running: Vec<Sequence>,
    counters: SchedulerCounters,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            config,
            kv: KvCache::new(config.num_blocks, config.prefix_caching),
            loras: LoraSlots::new(config.max_loras),
            waiting: VecDeque::new(),
            running: Vec::new(),
            counters: SchedulerCounters::default(),
        }
    }

    pub fn enqueue(&mut self, request: NewSequence) {
        self.waiting.push_back(Sequence {
            request,
            generated: 0,
            blocks: Vec::new(),
            prompt_counted: false,
            cached_tokens: 0,
        });
    }

    /// Admits waiting sequences for the next step.
    pub fn schedule(&mut self) -> StepPlan {
        let mut plan = StepPlan::default();
        let mut still_waiting = VecDeque::with_capacity(self.waiting.len());
        while let Some(sequence) = self.waiting.pop_front() {
            if !self.loras.can_start(sequence.request.adapter.as_ref()) {
                still_waiting.push_back(sequence);
                continue;
            }
            if self.running.len() >= self.config.max_num_seqs {
                still_waiting.push_back(sequence);
                break;
            }
            match self.try_admit(sequence) {
                Ok((id, prefill_tokens)) => {
                    plan.admitted.push(id);
                    plan.prefill_tokens += prefill_tokens;
                }
                Err(sequence) => {
                    still_waiting.push_back(sequence);
                    break;
                }
            }
        }
        still_waiting.append(&mut self.waiting);
        self.waiting = still_waiting;
        plan
    }

    /// Allocates the sequence's KV blocks, reusing cached prefix blocks, if the cache can take it
    /// with one block to spare. Returns the tokens that need computing.
    fn try_admit(&mut self, mut sequence: Sequence) -> Result<(SeqId, u32), Sequence> {
        let block_size = self.config.block_size;
        let tokens = sequence.tokens_in_cache();
        let mut reused = self.kv.cached_prefix(&sequence.request.prompt_blocks);
        // At least one token must be computed to produce the next one, so a fully cached
        // sequence recomputes its last block.
        if reused.len() as u32 * block_size >= tokens {
            reused.pop();
        }
        let needed = tokens.div_ceil(block_size) as usize;
        let fresh = needed - reused.len();
        if self.kv.allocatable_after_reuse(&reused) < fresh + 1 {
            return Err(sequence);
        }

        for &id in &reused {
            self.kv.reuse(id);
        }
        let mut blocks = reused;
        let cached_blocks = blocks.len();
        blocks.extend((0..fresh).map_while(|_| self.kv.allocate()));
        for (&id, &hash) in blocks
            .iter()
            .zip(&sequence.request.prompt_blocks)
            .skip(cached_blocks)
        {
            self.kv.publish(id, hash);
        }
        sequence.blocks = blocks;

        let cached_tokens = cached_blocks as u32 * block_size;
        sequence.cached_tokens = cached_tokens;
        self.counters.prefix_cache_queries += u64::from(sequence.request.prompt_tokens);
        self.counters.prefix_cache_hits += u64::from(cached_tokens);
        if !sequence.prompt_counted {
            sequence.prompt_counted = true;
            self.counters.prompt_tokens += u64::from(sequence.request.prompt_tokens);
        }
        self.loras.start(sequence.request.adapter.as_ref());
        let id = sequence.request.id;
        self.running.push(sequence);
        Ok((id, tokens - cached_tokens))
    }

    /// Ends a step: every running sequence emits one token, finished ones leave, and the others
    /// get a block for their next token, preempting the newest sequences if the cache is full.
    pub fn complete_step(&mut self) -> Vec<Emission> {
        let emissions: Vec<Emission> = self
            .running
            .iter_mut()
            .map(|sequence| {
                let index = sequence.generated;
                sequence.generated += 1;
                Emission {
                    id: sequence.request.id,
                    index,
                    finished: sequence.generated >= sequence.request.output_tokens,
                }
            })
            .collect();
        self.counters.generation_tokens += emissions.len() as u64;

        for finished in emissions.iter().filter(|emission| emission.finished) {
            self.remove_running(finished.id);
        }
        self.grow_running();
        emissions
    }

    /// Oldest first, so that under pressure the newest sequences are the ones preempted.
    fn grow_running(&mut self) {
        let block_size = self.config.block_size;
        let mut index = 0;
        while index < self.running.len() {
            let needed = self.running[index].tokens_in_cache().div_ceil(block_size) as usize;
            while index < self.running.len() && self.running[index].blocks.len() < needed {
                match self.kv.allocate() {
                    Some(block) => self.running[index].blocks.push(block),
                    None => self.preempt_newest(),
                }
            }
            index += 1;
        }
    }

    /// Frees the newest running sequence and puts it at the front of the queue. It keeps what it
    /// generated; on readmission it recomputes its KV (prompt blocks may come from the cache).
    fn preempt_newest(&mut self) {
        let Some(mut sequence) = self.running.pop() else {
            return;
        };
        self.release(&mut sequence);
        self.counters.preemptions += 1;
        self.waiting.push_front(sequence);
    }

    /// Drops a sequence wherever it is. Returns whether it was known.
    pub fn abort(&mut self, id: SeqId) -> bool {
        if let Some(position) = self.waiting.iter().position(|s| s.request.id == id) {
            self.waiting.remove(position);
            return true;
        }
        self.remove_running(id)
    }

    fn remove_running(&mut self, id: SeqId) -> bool {
        let Some(position) = self.running.iter().position(|s| s.request.id == id) else {
            return false;
        };
        let mut sequence = self.running.remove(position);
        self.release(&mut sequence);
        true
    }

    fn release(&mut self, sequence: &mut Sequence) {
        // Tail first, so that the deepest prefix blocks are evicted before the shared heads.
        for block in sequence.blocks.drain(..).rev() {
            self.kv.release(block);
        }
        self.loras.stop(sequence.request.adapter.as_ref());
    }

    /// How many prompt tokens of running sequence `id` came from the prefix cache when it was
    /// last admitted.
    pub fn cached_prompt_tokens(&self, id: SeqId) -> Option<u32> {
        self.running
            .iter()
            .find(|s| s.request.id == id)
            .map(|s| s.cached_tokens)
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Fraction of KV blocks held by running sequences (cached, unheld blocks are free to take).
    pub fn kv_usage(&self) -> f64 {
        f64::from(self.kv.held_blocks()) / f64::from(self.kv.total_blocks())
    }

    pub fn running_adapters(&self) -> Vec<String> {
        self.loras.active()
    }

    pub fn waiting_adapters(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self
            .waiting
            .iter()
            .filter_map(|s| s.request.adapter.as_deref())
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    pub fn counters(&self) -> SchedulerCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Prompt;

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            max_num_seqs: 8,
            num_blocks: 16,
            block_size: 4,
            max_loras: 1,
            prefix_caching: true,
        }
    }

    fn sequence(id: SeqId, text: &str, output_tokens: u32) -> NewSequence {
        let prompt = Prompt::from_text(text);
        NewSequence {
            id,
            prompt_tokens: prompt.token_count(),
            prompt_blocks: prompt.block_hashes(4),
            output_tokens,
            adapter: None,
        }
    }

    /// Runs steps until nothing is left, returning the ids in the order they finished.
    fn drain(scheduler: &mut Scheduler) -> Vec<SeqId> {
        let mut finished = Vec::new();
        while scheduler.running_len() + scheduler.waiting_len() > 0 {
            scheduler.schedule();
            let emissions = scheduler.complete_step();
            finished.extend(emissions.iter().filter(|e| e.finished).map(|e| e.id));
        }
        finished
    }

    #[test]
    fn admits_in_arrival_order_up_to_the_sequence_cap() {
        let mut scheduler = Scheduler::new(SchedulerConfig {
            max_num_seqs: 2,
            ..config()
        });
        for id in 0..4 {
            scheduler.enqueue(sequence(id, "hello", 2));
        }
        assert_eq!(scheduler.schedule().admitted, vec![0, 1]);
        assert_eq!(scheduler.waiting_len(), 2);
        assert_eq!(drain(&mut scheduler), vec![0, 1, 2, 3]);
        assert_eq!(scheduler.kv_usage(), 0.0);
    }

    #[test]
    fn admission_keeps_one_block_spare_and_stops_at_the_first_misfit() {
        let mut scheduler = Scheduler::new(SchedulerConfig {
            num_blocks: 4,
            ..config()
        });
        // 12 tokens = 3 blocks, plus the spare: exactly the whole cache.
        scheduler.enqueue(sequence(0, &"a".repeat(48), 1));
        scheduler.enqueue(sequence(1, "b", 1));
        let plan = scheduler.schedule();
        assert_eq!(plan.admitted, vec![0]);
        assert_eq!(plan.prefill_tokens, 12);
        assert_eq!(scheduler.kv_usage(), 0.75);
    }

    #[test]
    fn repeated_prompt_hits_the_prefix_cache() {
        let mut scheduler = Scheduler::new(config());
        let text = "x".repeat(4 * 4 * 3 + 2); // three full blocks and a partial one
        scheduler.enqueue(sequence(0, &text, 1));
        assert_eq!(scheduler.schedule().prefill_tokens, 13);
        drain(&mut scheduler);

        scheduler.enqueue(sequence(1, &text, 1));
        assert_eq!(scheduler.schedule().prefill_tokens, 1);
        let counters = scheduler.counters();
        assert_eq!(counters.prefix_cache_queries, 26);
        assert_eq!(counters.prefix_cache_hits, 12);
    }

    #[test]
    fn fully_cached_prompt_recomputes_its_last_block() {
        let mut scheduler = Scheduler::new(config());
        let text = "y".repeat(4 * 4 * 2);
        scheduler.enqueue(sequence(0, &text, 1));
        drain(&mut scheduler);
        scheduler.enqueue(sequence(1, &text, 1));
        assert_eq!(scheduler.schedule().prefill_tokens, 4);
    }

    #[test]
    fn preempts_the_newest_sequence_when_blocks_run_out() {
        let mut scheduler = Scheduler::new(SchedulerConfig {
            num_blocks: 5,
            ..config()
        });
        // Each holds one block after prefill and needs a second after its fourth token.
        scheduler.enqueue(sequence(0, "aaaa", 8));
        scheduler.enqueue(sequence(1, "bbbb", 8));
        scheduler.enqueue(sequence(2, "cccc", 8));
        assert_eq!(scheduler.schedule().admitted, vec![0, 1, 2]);

        let mut steps = 0;
        while scheduler.counters().preemptions == 0 {
            scheduler.complete_step();
            steps += 1;
            assert!(steps < 8, "expected a preemption");
        }
        assert_eq!(scheduler.running_len(), 2);
        assert_eq!(scheduler.waiting_len(), 1);

        // The preempted sequence resumes and still emits exactly its remaining tokens.
        let mut emitted = vec![0; 3];
        let mut finished = Vec::new();
        while scheduler.running_len() + scheduler.waiting_len() > 0 {
            scheduler.schedule();
            for emission in scheduler.complete_step() {
                emitted[emission.id as usize] = emission.index + 1;
                if emission.finished {
                    finished.push(emission.id);
                }
            }
        }
        assert_eq!(emitted, vec![8, 8, 8]);
        assert_eq!(finished.last(), Some(&2));
        assert_eq!(scheduler.kv_usage(), 0.0);
    }

    #[test]
    fn lora_requests_wait_for_a_slot_without_blocking_others() {
        let mut scheduler = Scheduler::new(config());
        let adapter = |id, name: &str| NewSequence {
            adapter: Some(name.into()),
            ..sequence(id, "prompt", 2)
        };
        scheduler.enqueue(adapter(0, "a"));
        scheduler.enqueue(adapter(1, "b"));
        scheduler.enqueue(sequence(2, "base", 2));
        scheduler.enqueue(adapter(3, "a"));

        assert_eq!(scheduler.schedule().admitted, vec![0, 2, 3]);
        assert_eq!(scheduler.running_adapters(), vec!["a"]);
        assert_eq!(scheduler.waiting_adapters(), vec!["b"]);

        scheduler.complete_step();
        scheduler.complete_step();
        assert_eq!(scheduler.schedule().admitted, vec![1]);
        assert_eq!(scheduler.running_adapters(), vec!["b"]);
    }

    #[test]
    fn abort_frees_blocks_and_queue_places() {
        let mut scheduler = Scheduler::new(SchedulerConfig {
            max_num_seqs: 1,
            ..config()
        });
        scheduler.enqueue(sequence(0, "running", 100));
        scheduler.enqueue(sequence(1, "waiting", 100));
        scheduler.schedule();
        assert!(scheduler.kv_usage() > 0.0);

        assert!(scheduler.abort(0));
        assert!(scheduler.abort(1));
        assert!(!scheduler.abort(1));
        assert_eq!(scheduler.kv_usage(), 0.0);
        assert_eq!((scheduler.running_len(), scheduler.waiting_len()), (0, 0));
    }
}
