//! The flow-control benchmark's steps, generated ahead of time from a seed so that every setup
//! replays exactly the same arrivals and bodies. Each step is a few tenants (classes), each
//! sending its own Poisson stream of chat requests of one shape, named by the tenant header.

use std::time::Duration;

use super::settings::{self, LONG, REPLICAS, SHORT, Shape};
use crate::pool::arrivals::poisson_schedule;
use crate::pool::exchange::Planned;
use crate::pool::prompt::{BYTES_PER_TOKEN, Messages, chat_body, text_of_len};
use crate::pool::rng::Rng;
use crate::pool::settings::capacity;

/// The steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// The interactive class alone: the idle reference of its latency.
    Idle,
    /// The interactive class beside a batch class that alone overloads the pool 2×.
    Priority,
    /// The interactive class alone saturates the pool; the batch class asks for more than its
    /// minimum share.
    Starvation,
    /// Eight tenants in one band, one of them heavy.
    Fairness,
    /// Tenants at the same request rate, one with long prompts.
    LongPrompts,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Idle,
        Scenario::Priority,
        Scenario::Starvation,
        Scenario::Fairness,
        Scenario::LongPrompts,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Priority => "priority",
            Scenario::Starvation => "starvation",
            Scenario::Fairness => "fairness",
            Scenario::LongPrompts => "long prompts",
        }
    }
}

/// One tenant's requests in a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub tenant: String,
    /// Requests per second.
    pub rate: f64,
    pub shape: Shape,
}

/// What is known of each planned request beside its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Index into the step's streams.
    pub stream: usize,
    /// Prompt tokens as the simulator counts them.
    pub prompt_tokens: u32,
}

/// One step: its tenants, and every request in order of arrival (`requests[i]` is `meta[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    pub scenario: Scenario,
    pub streams: Vec<Stream>,
    /// Requests per second the pool sustains for this mix (`pool::settings::capacity`).
    pub capacity: f64,
    pub requests: Vec<Planned>,
    pub meta: Vec<Meta>,
}

impl StepPlan {
    /// Offered load over capacity.
    pub fn load(&self) -> f64 {
        let rate: f64 = self.streams.iter().map(|s| s.rate).sum();
        if self.capacity > 0.0 {
            rate / self.capacity
        } else {
            0.0
        }
    }
}

/// The pool's capacity in requests per second for streams mixed in proportion to `weights`
/// (relative rates) of `shapes`.
fn mixed_capacity(mix: &[(f64, Shape)]) -> f64 {
    let total: f64 = mix.iter().map(|(w, _)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let prompt = mix.iter().map(|(w, s)| w * s.mean_prompt()).sum::<f64>() / total;
    let output = mix.iter().map(|(w, s)| w * s.mean_output()).sum::<f64>() / total;
    capacity(&REPLICAS, prompt, output)
}

/// The tenants of `scenario` with their rates: each its share of the step's load, as multiples
/// of the capacity for the step's mix.
pub fn streams(scenario: Scenario) -> (Vec<Stream>, f64) {
    let stream = |tenant: &str, weight: f64, shape: Shape| (tenant.to_owned(), weight, shape);
    // (tenant, weight within the step, shape) and the step's load over capacity.
    let (tenants, load): (Vec<(String, f64, Shape)>, f64) = match scenario {
        Scenario::Idle => (
            vec![stream(settings::INTERACTIVE_TENANT, 1.0, SHORT)],
            settings::INTERACTIVE_LOAD,
        ),
        Scenario::Priority => (
            vec![
                stream(
                    settings::INTERACTIVE_TENANT,
                    settings::INTERACTIVE_LOAD,
                    SHORT,
                ),
                stream(settings::BATCH_TENANT, settings::BATCH_LOAD, SHORT),
            ],
            settings::INTERACTIVE_LOAD + settings::BATCH_LOAD,
        ),
        Scenario::Starvation => (
            vec![
                stream(
                    settings::INTERACTIVE_TENANT,
                    settings::STARVATION_HIGH_LOAD,
                    SHORT,
                ),
                stream(settings::BATCH_TENANT, settings::STARVATION_LOW_LOAD, SHORT),
            ],
            settings::STARVATION_HIGH_LOAD + settings::STARVATION_LOW_LOAD,
        ),
        Scenario::Fairness => (
            (1..=settings::FAIRNESS_TENANTS)
                .map(|i| {
                    let weight = if i == 1 { settings::HEAVY_FACTOR } else { 1.0 };
                    stream(&fairness_tenant(i), weight, SHORT)
                })
                .collect(),
            settings::FAIRNESS_LOAD,
        ),
        Scenario::LongPrompts => (
            (1..=settings::LONG_PROMPT_TENANTS)
                .map(|i| {
                    if i == settings::LONG_PROMPT_TENANTS {
                        stream(LONG_PROMPT_TENANT, 1.0, LONG)
                    } else {
                        stream(&format!("steady-{i}"), 1.0, SHORT)
                    }
                })
                .collect(),
            settings::LONG_PROMPT_LOAD,
        ),
    };
    let mix: Vec<(f64, Shape)> = tenants.iter().map(|(_, w, s)| (*w, *s)).collect();
    let capacity = mixed_capacity(&mix);
    let total_weight: f64 = mix.iter().map(|(w, _)| w).sum();
    let streams = tenants
        .into_iter()
        .map(|(tenant, weight, shape)| Stream {
            tenant,
            rate: load * capacity * weight / total_weight,
            shape,
        })
        .collect();
    (streams, capacity)
}

/// The fairness step's tenants: `tenant-1` is the heavy one.
pub fn fairness_tenant(i: usize) -> String {
    format!("tenant-{i}")
}

/// The long-prompt step's tenant with long prompts.
pub const LONG_PROMPT_TENANT: &str = "long-prompts";

/// Every request of `scenario` for `seconds`: each tenant's Poisson arrivals and prompts from its
/// own generator (so adding a tenant leaves the others' requests as they were), merged in order
/// of arrival.
pub fn generate(scenario: Scenario, seconds: f64, seed: u64, model: &str) -> StepPlan {
    let (streams, capacity) = streams(scenario);
    let mut all: Vec<(Planned, Meta)> = Vec::new();
    for (index, stream) in streams.iter().enumerate() {
        let purpose = format!("{}/{}", scenario.label(), stream.tenant);
        let mut arrivals = Rng::derive(seed, &format!("{purpose}/arrivals"));
        let mut text = Rng::derive(seed, &format!("{purpose}/text"));
        for at in poisson_schedule(&mut arrivals, stream.rate, seconds) {
            let shape = stream.shape;
            let prompt_tokens = text.between(shape.prompt_tokens.0, shape.prompt_tokens.1);
            let max_tokens = text.between(shape.output_tokens.0, shape.output_tokens.1);
            // One user message; its role counts one token.
            let bytes = (prompt_tokens as usize).saturating_sub(1) * BYTES_PER_TOKEN;
            let messages: Messages = vec![("user", text_of_len(&mut text, bytes))];
            all.push((
                Planned {
                    at,
                    body: chat_body(model, &messages, max_tokens),
                    max_tokens,
                    headers: vec![(settings::TENANT_HEADER.to_owned(), stream.tenant.clone())],
                },
                Meta {
                    stream: index,
                    prompt_tokens: crate::pool::prompt::prompt_tokens(&messages),
                },
            ));
        }
    }
    all.sort_by_key(|(planned, meta)| (planned.at, meta.stream));
    let (requests, meta) = all.into_iter().unzip();
    StepPlan {
        scenario,
        streams,
        capacity,
        requests,
        meta,
    }
}

/// The end of the step's warm-up and of its arrivals: the measurement window.
pub fn window(seconds: f64) -> (Duration, Duration) {
    (
        Duration::from_secs_f64(seconds * settings::WARMUP_SHARE),
        Duration::from_secs_f64(seconds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_of(p: &Planned) -> &str {
        p.headers
            .iter()
            .find(|(name, _)| name == settings::TENANT_HEADER)
            .map(|(_, value)| value.as_str())
            .expect("a tenant header")
    }

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        for scenario in Scenario::ALL {
            let a = generate(scenario, 4.0, 7, "m");
            assert_eq!(a, generate(scenario, 4.0, 7, "m"), "{}", scenario.label());
            assert_ne!(
                a.requests,
                generate(scenario, 4.0, 8, "m").requests,
                "{}",
                scenario.label()
            );
            assert_eq!(a.requests.len(), a.meta.len());
            assert!(a.requests.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(a.requests.iter().all(|p| p.at.as_secs_f64() < 4.0));
        }
    }

    #[test]
    fn requests_have_their_tenant_and_shape() {
        let plan = generate(Scenario::LongPrompts, 20.0, 3, "m");
        for (p, meta) in plan.requests.iter().zip(&plan.meta) {
            let stream = &plan.streams[meta.stream];
            assert_eq!(tenant_of(p), stream.tenant);
            let (low, high) = stream.shape.prompt_tokens;
            assert!((low..=high).contains(&meta.prompt_tokens), "{meta:?}");
            let (low, high) = stream.shape.output_tokens;
            assert!((low..=high).contains(&p.max_tokens));
            let body: serde_json::Value = serde_json::from_str(&p.body).expect("JSON");
            assert_eq!(body["max_tokens"], p.max_tokens);
            assert_eq!(body["stream"], true);
            let content = body["messages"][0]["content"].as_str().expect("text");
            assert_eq!(
                (content.len() + "user".len()) / 4,
                meta.prompt_tokens as usize
            );
        }
        let long = plan
            .meta
            .iter()
            .filter(|m| plan.streams[m.stream].tenant == LONG_PROMPT_TENANT)
            .count();
        assert!(long > 0 && long < plan.meta.len());
    }

    #[test]
    fn rates_are_the_issue_s_multiples_of_capacity() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
        let (idle, c) = streams(Scenario::Idle);
        // 512-token prompts, 128 output tokens: 102.4 ms of prefill + 128 × 25 ms / 16 of
        // decode per request and replica.
        assert!(close(c, 4.0 / (0.1024 + 0.2)), "{c}");
        assert!(close(idle[0].rate, settings::INTERACTIVE_LOAD * c));
        let (priority, _) = streams(Scenario::Priority);
        assert!(
            close(priority[0].rate, idle[0].rate),
            "the same interactive class"
        );
        assert!(close(priority[1].rate, settings::BATCH_LOAD * c));
        let (fair, c) = streams(Scenario::Fairness);
        assert_eq!(fair.len(), 8);
        assert!(close(fair[0].rate, 10.0 * fair[1].rate));
        let total: f64 = fair.iter().map(|s| s.rate).sum();
        assert!(close(total, 2.0 * c));
        let (long, c_long) = streams(Scenario::LongPrompts);
        assert!(c_long < c, "long prompts cost more");
        assert!(long.windows(2).all(|w| close(w[0].rate, w[1].rate)));
        let plan = generate(Scenario::Fairness, 10.0, 1, "m");
        assert!((plan.load() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_window_skips_the_warm_up() {
        let (from, to) = window(15.0);
        assert_eq!(from, Duration::from_secs(5));
        assert_eq!(to, Duration::from_secs(15));
    }
}
