//! Engine behaviour over simulated time. Every test runs on a paused clock, so the tests take no
//! real time and step durations are exact (costs are whole milliseconds, the timer resolution).

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::*;

const DECODE: Duration = Duration::from_millis(10);
const PREFILL_PER_TOKEN: Duration = Duration::from_millis(1);

fn config() -> EngineConfig {
    EngineConfig {
        scheduler: SchedulerConfig {
            max_num_seqs: 4,
            num_blocks: 64,
            block_size: 4,
            max_loras: 1,
            prefix_caching: true,
        },
        decode_per_step: DECODE,
        prefill_per_token: PREFILL_PER_TOKEN,
    }
}

fn request(text: &str, output_tokens: u32) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::from_text(text),
        output_tokens,
        limit_reason: FinishReason::Length,
        adapter: None,
    }
}

fn with_adapter(name: &str, request: GenerationRequest) -> GenerationRequest {
    GenerationRequest {
        adapter: Some(name.into()),
        ..request
    }
}

/// Reads a generation to its end; returns its tokens and when the first one arrived.
async fn finish(mut generation: Generation) -> (Vec<Token>, Instant) {
    let mut tokens = Vec::new();
    let mut first = None;
    while let Some(token) = generation.next_token().await {
        first.get_or_insert_with(Instant::now);
        tokens.push(token);
    }
    (tokens, first.expect("at least one token"))
}

/// Lets the engine task run until it sleeps inside a step.
async fn settle() {
    sleep(Duration::from_micros(1)).await;
}

#[tokio::test(start_paused = true)]
async fn step_time_is_decode_plus_prefill_of_admitted_tokens() {
    let engine = Engine::start(config());
    let start = Instant::now();
    // 40 bytes = 10 tokens: the first step takes 10 ms + 10 × 1 ms.
    let generation = engine.submit(request(&"p".repeat(40), 3)).unwrap();
    let (tokens, first) = finish(generation).await;

    assert_eq!(first - start, Duration::from_millis(20));
    assert_eq!(Instant::now() - start, Duration::from_millis(40));
    let indexes: Vec<u32> = tokens.iter().map(|t| t.index).collect();
    assert_eq!(indexes, vec![0, 1, 2]);
    assert_eq!(tokens[2].finish, Some(FinishReason::Length));
    assert!(tokens[..2].iter().all(|t| t.finish.is_none()));
}

#[tokio::test(start_paused = true)]
async fn steps_without_cost_take_no_time() {
    let engine = Engine::start(EngineConfig {
        decode_per_step: Duration::ZERO,
        prefill_per_token: Duration::ZERO,
        ..config()
    });
    let start = Instant::now();
    let (tokens, _) = finish(engine.submit(request("hello there", 16)).unwrap()).await;
    assert_eq!(tokens.len(), 16);
    // A timer, even of zero length, would have cost a whole millisecond per step.
    assert_eq!(Instant::now() - start, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn requests_start_in_arrival_order_when_the_server_is_full() {
    let engine = Engine::start(EngineConfig {
        scheduler: SchedulerConfig {
            max_num_seqs: 1,
            ..config().scheduler
        },
        ..config()
    });
    let handles: Vec<_> = (0..3)
        .map(|_| tokio::spawn(finish(engine.submit(request("same", 2)).unwrap())))
        .collect();
    let mut first_tokens = Vec::new();
    for handle in handles {
        first_tokens.push(handle.await.unwrap().1);
    }
    assert!(first_tokens.windows(2).all(|pair| pair[0] < pair[1]));
}

#[tokio::test(start_paused = true)]
async fn waiting_rises_past_the_sequence_cap_and_drains() {
    let engine = Engine::start(config());
    let generations: Vec<_> = (0..10)
        .map(|i| engine.submit(request(&format!("prompt {i}"), 5)).unwrap())
        .collect();
    settle().await;
    let busy = engine.stats();
    assert_eq!((busy.running, busy.waiting), (4, 6));
    assert!(busy.kv_usage > 0.0);

    for generation in generations {
        finish(generation).await;
    }
    settle().await;
    let idle = engine.stats();
    assert_eq!((idle.running, idle.waiting), (0, 0));
    assert_eq!(idle.kv_usage, 0.0);
    assert_eq!(idle.finished.length, 10);
    assert_eq!(idle.counters.generation_tokens, 50);
    assert_eq!(idle.time_to_first_token.count, 10);
}

#[tokio::test(start_paused = true)]
async fn kv_usage_grows_with_concurrent_load() {
    let engine = Engine::start(config());
    let one = engine.submit(request(&"a".repeat(64), 50)).unwrap();
    settle().await;
    let light = engine.stats().kv_usage;
    let more: Vec<_> = (0..3)
        .map(|i| {
            engine
                .submit(request(&format!("{i}").repeat(64), 50))
                .unwrap()
        })
        .collect();
    sleep(DECODE * 5).await;
    let heavy = engine.stats().kv_usage;
    assert!(light > 0.0 && heavy > light, "{light} then {heavy}");

    drop((one, more));
    settle().await;
    assert_eq!(engine.stats().kv_usage, 0.0);
}

#[tokio::test(start_paused = true)]
async fn repeated_prompt_skips_prefill_through_the_prefix_cache() {
    let engine = Engine::start(config());
    let prompt = "shared system prompt ".repeat(40); // 840 bytes = 210 tokens
    let start = Instant::now();
    let (cold_tokens, cold_first) = finish(engine.submit(request(&prompt, 2)).unwrap()).await;
    let cold = cold_first - start;

    let start = Instant::now();
    let (warm_tokens, warm_first) = finish(engine.submit(request(&prompt, 2)).unwrap()).await;
    let warm = warm_first - start;

    // Every token tells how much of the prompt the cache held: 52 full blocks of 4 the second time.
    let cached =
        |tokens: &[Token]| -> Vec<u32> { tokens.iter().map(|t| t.cached_prompt_tokens).collect() };
    assert_eq!(cached(&cold_tokens), [0, 0]);
    assert_eq!(cached(&warm_tokens), [208, 208]);

    // Cold: 210 tokens of prefill. Warm: only the 2 tokens past the last full block.
    assert_eq!(cold, DECODE + PREFILL_PER_TOKEN * 210);
    assert_eq!(warm, DECODE + PREFILL_PER_TOKEN * 2);
    let counters = engine.stats().counters;
    assert_eq!(counters.prefix_cache_queries, 420);
    assert_eq!(counters.prefix_cache_hits, 208);
    assert_eq!(counters.prompt_tokens, 420);
}

#[tokio::test(start_paused = true)]
async fn disabled_prefix_cache_prefills_every_time() {
    let mut config = config();
    config.scheduler.prefix_caching = false;
    let engine = Engine::start(config);
    let prompt = "x".repeat(400);
    finish(engine.submit(request(&prompt, 1)).unwrap()).await;
    let start = Instant::now();
    let (_, first) = finish(engine.submit(request(&prompt, 1)).unwrap()).await;
    assert_eq!(first - start, DECODE + PREFILL_PER_TOKEN * 100);
    assert_eq!(engine.stats().counters.prefix_cache_hits, 0);
}

#[tokio::test(start_paused = true)]
async fn kv_pressure_preempts_and_every_request_still_completes() {
    let engine = Engine::start(EngineConfig {
        scheduler: SchedulerConfig {
            num_blocks: 12,
            ..config().scheduler
        },
        ..config()
    });
    // Four sequences of 1 prompt block grow to 9 blocks each: far more than the cache holds.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let generation = engine
                .submit(request(&format!("{i}").repeat(16), 32))
                .unwrap();
            tokio::spawn(finish(generation))
        })
        .collect();
    for handle in handles {
        let (tokens, _) = handle.await.unwrap();
        let indexes: Vec<u32> = tokens.iter().map(|t| t.index).collect();
        assert_eq!(indexes, (0..32).collect::<Vec<_>>());
    }
    settle().await;
    let stats = engine.stats();
    assert!(stats.counters.preemptions > 0);
    assert_eq!(stats.kv_usage, 0.0);
    assert_eq!(stats.finished.length, 4);
}

#[tokio::test(start_paused = true)]
async fn lora_slots_hold_back_a_second_adapter() {
    let engine = Engine::start(config());
    let a = engine
        .submit(with_adapter("adapter-a", request("one", 4)))
        .unwrap();
    let b = engine
        .submit(with_adapter("adapter-b", request("two", 4)))
        .unwrap();
    let base = engine.submit(request("three", 4)).unwrap();
    settle().await;

    let stats = engine.stats();
    assert_eq!((stats.running, stats.waiting), (2, 1));
    assert_eq!(stats.running_adapters, vec!["adapter-a"]);
    assert_eq!(stats.waiting_adapters, vec!["adapter-b"]);

    let (_, a_first) = finish(a).await;
    let (_, b_first) = finish(b).await;
    finish(base).await;
    assert!(b_first - a_first >= DECODE * 4, "b starts once a is done");
    assert!(engine.stats().running_adapters.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_generation_aborts_it_and_frees_its_blocks() {
    let engine = Engine::start(config());
    let mut generation = engine.submit(request(&"z".repeat(100), 100)).unwrap();
    generation.next_token().await.unwrap();
    assert!(engine.stats().kv_usage > 0.0);

    drop(generation);
    settle().await;
    let stats = engine.stats();
    assert_eq!((stats.running, stats.kv_usage), (0, 0.0));
    assert_eq!(stats.finished.abort, 1);
}

#[tokio::test(start_paused = true)]
async fn rejects_requests_longer_than_the_cache() {
    let engine = Engine::start(config());
    // 63 usable blocks of 4 tokens: 252 tokens in all.
    assert!(engine.submit(request(&"q".repeat(4 * 250), 2)).is_ok());
    let error = engine.submit(request(&"q".repeat(4 * 250), 3)).unwrap_err();
    assert_eq!(
        error,
        SubmitError::ContextTooLong {
            requested: 253,
            max_model_len: 252
        }
    );
}
