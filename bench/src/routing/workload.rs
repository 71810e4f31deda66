//! The two workloads of the routing benchmark, generated ahead of time from a seed so that every
//! setup replays exactly the same arrivals and the same request bodies.
//!
//! - *Prefix-heavy*: tenants with long system prompts, each with a few multi-turn conversations.
//!   A request is the next turn of one conversation: the tenant's system prompt, the history so
//!   far and a short new user turn. Requests of one tenant share the system prompt; turns of one
//!   conversation share everything but the newest turn.
//! - *Independent*: the same arrivals, message lengths and output lengths, with every message
//!   replaced by text of the same length that no other request shares: nothing to cache.
//!
//! Text is sized in the simulator's tokens (4 bytes each, see `simulator/src/tokens.rs`), so the
//! prompt lengths below are what the replicas count.

use crate::pool::arrivals::poisson_schedule;
use crate::pool::exchange::Planned;
use crate::pool::prompt::{BYTES_PER_TOKEN, Messages, chat_body, text_of_len};
use crate::pool::rng::Rng;

/// Which workload a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    PrefixHeavy,
    Independent,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::PrefixHeavy, Workload::Independent];

    pub fn label(self) -> &'static str {
        match self {
            Workload::PrefixHeavy => "prefix-heavy",
            Workload::Independent => "independent",
        }
    }
}

/// The shape of the prefix-heavy workload (the independent one copies its lengths). Lengths are
/// in tokens, inclusive ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub tenants: usize,
    pub conversations_per_tenant: usize,
    /// Turns after which a conversation ends and a new one starts in its place.
    pub max_turns: usize,
    pub system_tokens: (u32, u32),
    pub user_tokens: (u32, u32),
    /// The assistant replies in the history (written by the generator, as the model would have).
    pub assistant_tokens: (u32, u32),
    /// `max_tokens` of each request; the simulator generates exactly that many.
    pub output_tokens: (u32, u32),
}

/// Every step of one workload: `rates[i]` per second for `seconds` each. Conversations carry on
/// from one step to the next, as they would while the load rises.
pub fn generate(
    workload: Workload,
    shape: &Shape,
    rates: &[f64],
    seconds: f64,
    seed: u64,
    model: &str,
) -> Vec<Vec<Planned>> {
    let mut arrivals = Rng::derive(seed, "arrivals");
    let mut conversations = Conversations::new(shape, Rng::derive(seed, "conversations"));
    let mut fresh = Rng::derive(seed, "independent text");
    rates
        .iter()
        .map(|&rate| {
            poisson_schedule(&mut arrivals, rate, seconds)
                .into_iter()
                .map(|at| {
                    let (messages, max_tokens) = conversations.next_request();
                    let messages = match workload {
                        Workload::PrefixHeavy => messages,
                        Workload::Independent => messages
                            .into_iter()
                            .map(|(role, text)| (role, text_of_len(&mut fresh, text.len())))
                            .collect(),
                    };
                    Planned {
                        at,
                        body: chat_body(model, &messages, max_tokens),
                        max_tokens,
                        headers: Vec::new(),
                    }
                })
                .collect()
        })
        .collect()
}

struct Conversation {
    history: Messages,
    turns: usize,
}

/// The tenants' system prompts and their ongoing conversations.
struct Conversations {
    shape: Shape,
    rng: Rng,
    system_prompts: Vec<String>,
    /// `tenants × conversations_per_tenant`, tenant-major.
    open: Vec<Conversation>,
}

impl Conversations {
    fn new(shape: &Shape, mut rng: Rng) -> Self {
        let system_prompts = (0..shape.tenants)
            .map(|_| {
                let tokens = rng.between(shape.system_tokens.0, shape.system_tokens.1);
                text_of_len(&mut rng, tokens as usize * BYTES_PER_TOKEN)
            })
            .collect();
        let open = (0..shape.tenants * shape.conversations_per_tenant)
            .map(|_| Conversation {
                history: Vec::new(),
                turns: 0,
            })
            .collect();
        Self {
            shape: *shape,
            rng,
            system_prompts,
            open,
        }
    }

    /// The next turn of a random conversation: its messages and `max_tokens`. Tenants and
    /// conversations are equally likely.
    fn next_request(&mut self) -> (Messages, u32) {
        let shape = self.shape;
        let index = self.rng.below(self.open.len());
        let tenant = index / shape.conversations_per_tenant.max(1);
        let conversation = &mut self.open[index];
        if conversation.turns >= shape.max_turns {
            conversation.history.clear();
            conversation.turns = 0;
        }
        let user_tokens = self.rng.between(shape.user_tokens.0, shape.user_tokens.1);
        let user = text_of_len(&mut self.rng, user_tokens as usize * BYTES_PER_TOKEN);
        let mut messages: Messages = vec![("system", self.system_prompts[tenant].clone())];
        messages.extend(conversation.history.iter().cloned());
        messages.push(("user", user.clone()));
        // The reply joins the history for the conversation's next turn.
        let reply_tokens = self
            .rng
            .between(shape.assistant_tokens.0, shape.assistant_tokens.1);
        let reply = text_of_len(&mut self.rng, reply_tokens as usize * BYTES_PER_TOKEN);
        conversation.history.push(("user", user));
        conversation.history.push(("assistant", reply));
        conversation.turns += 1;
        let max_tokens = self
            .rng
            .between(shape.output_tokens.0, shape.output_tokens.1);
        (messages, max_tokens)
    }
}

/// Mean prompt length in tokens of `steps`, as the simulator counts it (role names included).
pub fn mean_prompt_tokens(steps: &[Vec<Planned>]) -> f64 {
    let (sum, n) = steps
        .iter()
        .flatten()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(&p.body).ok())
        .map(|body| {
            let bytes: usize = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    m["role"].as_str().map_or(0, str::len)
                        + m["content"].as_str().map_or(0, str::len)
                })
                .sum();
            bytes.div_ceil(BYTES_PER_TOKEN)
        })
        .fold((0_usize, 0_usize), |(s, n), t| (s + t, n + 1));
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        tenants: 3,
        conversations_per_tenant: 2,
        max_turns: 3,
        system_tokens: (300, 400),
        user_tokens: (10, 20),
        assistant_tokens: (20, 30),
        output_tokens: (8, 16),
    };

    fn messages(p: &Planned) -> Vec<(String, String)> {
        let body: serde_json::Value = serde_json::from_str(&p.body).expect("JSON body");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], p.max_tokens);
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().expect("role").to_owned(),
                    m["content"].as_str().expect("content").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn both_workloads_share_arrivals_and_lengths() {
        let rates = [5.0, 10.0];
        let heavy = generate(Workload::PrefixHeavy, &SHAPE, &rates, 4.0, 1, "m");
        let independent = generate(Workload::Independent, &SHAPE, &rates, 4.0, 1, "m");
        assert_eq!(heavy.len(), 2);
        for (h, i) in heavy.iter().flatten().zip(independent.iter().flatten()) {
            assert_eq!(h.at, i.at);
            assert_eq!(h.max_tokens, i.max_tokens);
            let (hm, im) = (messages(h), messages(i));
            let lengths = |m: &[(String, String)]| {
                m.iter()
                    .map(|(r, t)| (r.clone(), t.len()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(lengths(&hm), lengths(&im));
        }
        assert_eq!(
            generate(Workload::PrefixHeavy, &SHAPE, &rates, 4.0, 1, "m"),
            heavy,
            "same seed, same requests"
        );
    }

    #[test]
    fn prefix_heavy_requests_share_system_prompts_and_history() {
        let steps = generate(Workload::PrefixHeavy, &SHAPE, &[40.0], 5.0, 3, "m");
        let all: Vec<Vec<(String, String)>> = steps.iter().flatten().map(messages).collect();
        let systems: std::collections::HashSet<&str> =
            all.iter().map(|m| m[0].1.as_str()).collect();
        assert_eq!(systems.len(), SHAPE.tenants);
        for m in &all {
            assert_eq!(m[0].0, "system");
            let tokens = m[0].1.len() / BYTES_PER_TOKEN;
            assert!((300..=400).contains(&tokens));
            assert_eq!(m.last().map(|(r, _)| r.as_str()), Some("user"));
            // system + up to max_turns - 1 earlier (user, assistant) pairs + the new turn.
            assert!(m.len() <= 2 + 2 * (SHAPE.max_turns - 1), "{}", m.len());
        }
        // Some request continues an earlier one: its messages start with all of the earlier's.
        let continues = all.iter().enumerate().any(|(i, later)| {
            all[..i]
                .iter()
                .any(|earlier| later.len() > earlier.len() && later.starts_with(earlier))
        });
        assert!(continues);
    }

    #[test]
    fn independent_requests_share_nothing() {
        let steps = generate(Workload::Independent, &SHAPE, &[40.0], 5.0, 3, "m");
        let starts: std::collections::HashSet<String> = steps
            .iter()
            .flatten()
            .map(|p| messages(p)[0].1[..64].to_owned())
            .collect();
        assert_eq!(starts.len(), steps[0].len());
    }

    #[test]
    fn prompt_tokens_are_counted() {
        let steps = generate(Workload::PrefixHeavy, &SHAPE, &[20.0], 2.0, 3, "m");
        let mean = mean_prompt_tokens(&steps);
        assert!((300.0..600.0).contains(&mean), "{mean}");
    }
}
