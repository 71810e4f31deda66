//! Targets: where a model's requests can go, and in which order.
//!
//! A target is a self-hosted pool (its replica picked as for any pool) or a hosted provider
//! (an Envoy cluster speaking the OpenAI or the Anthropic API, with its own model name and
//! credential). Targets are grouped in **chains**: an Envoy cluster whose attempts go to a
//! list of targets in order, the first try to the first, each retry to the next (an Envoy
//! composite cluster; a chain of one target is that target's own cluster). A model lists its
//! chains with weights: the traffic split behind canaries and A/B tests, sticky per user or
//! session when asked.
//!
//! Per request the downstream filter chooses a chain (`select`), skipping chains whose first
//! target is out of rotation (`health`: a `retry-after` not yet passed, or ejected after
//! failing again and again). Failover within the chain is Envoy's retry; the upstream filter
//! (`crate::attempt`) translates each attempt for its target and records how it went.

pub mod health;
pub mod select;

use std::collections::BTreeMap;
use std::fmt;

use crate::translate::Shape;

pub use health::{AttemptOutcome, HealthTable, TargetHealth};
pub use select::{Choice, choose};

/// The request header naming the Envoy cluster of the chain the filter chose (routes use
/// `cluster_header` on it).
pub const CLUSTER_HEADER: &str = "x-sluice-cluster";
/// The request header listing the chain's targets in attempt order, for the upstream filter
/// when the attempt's host metadata does not name its target.
pub const PLAN_HEADER: &str = "x-sluice-plan";
/// Envoy's request header bounding the retries of one request (the router reads it when the
/// request arrives, before any attempt): set to the chain's length minus one.
pub const MAX_RETRIES_HEADER: &str = "x-envoy-max-retries";
/// The response header by which the upstream filter tells the downstream filter which target
/// answered (removed before the client sees the response).
pub const SERVED_BY_HEADER: &str = "x-sluice-target";

/// Most targets a configuration may declare: the health table has one entry per target, so
/// this bounds it.
pub const MAX_TARGETS: usize = 64;
/// Most targets in one chain (Envoy attempts per request).
pub const MAX_CHAIN_LENGTH: usize = 8;

/// Every configured target, chain and failover setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// By index: chains and the health table refer to targets by their position here.
    pub targets: Vec<Target>,
    /// The chains of each model that has them, by the model's name as resolved (after aliases).
    pub models: BTreeMap<String, ModelChains>,
    pub failover: Failover,
    /// Every header a model's `sticky` names, read with the request headers.
    pub sticky_headers: Vec<String>,
    /// Identifies this list of targets, so a health table written under another configuration
    /// is not read as this one's.
    pub fingerprint: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A self-hosted pool: its replica is picked (when picking is on); it speaks the OpenAI API.
    /// `model`: the name the pool serves this target under (an adapter for a LoRA canary);
    /// `None`: the requested model.
    Pool { pool: String, model: Option<String> },
    /// A hosted provider behind an Envoy cluster.
    Provider(Provider),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub shape: Shape,
    /// The model name the provider is asked for. It is also the target's price entry: the
    /// request is settled at `quotas.prices[model]` when this target answers.
    pub model: String,
    /// Sent as `authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic); `None`: no key.
    pub api_key: Option<String>,
    /// `anthropic-version` (Anthropic only).
    pub anthropic_version: String,
    /// Anthropic requires `max_tokens`: used when the client set none.
    pub default_max_tokens: u64,
}

/// Never prints the key.
impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("shape", &self.shape)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("anthropic_version", &self.anthropic_version)
            .field("default_max_tokens", &self.default_max_tokens)
            .finish()
    }
}

/// A model's chains and how requests spread over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChains {
    pub chains: Vec<Chain>,
    pub sticky: Option<Sticky>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The Envoy cluster the request is routed to.
    pub cluster: String,
    /// Indexes into `Targets::targets`, in attempt order; never empty.
    pub targets: Vec<usize>,
    /// Share of the model's traffic; 0: only when no weighted chain's first target is in
    /// rotation (a standby).
    pub weight: u32,
}

/// What keeps one user's (or one session's) requests on the same chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// The request's end user (OpenAI `user`, Anthropic `metadata.user_id`), else the tenant.
    User,
    /// A request header's value (a session id).
    Header(String),
}

/// Rotation and ejection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    /// Consecutive failed attempts after which a target is ejected.
    pub eject_after_failures: u32,
    /// First ejection's length; each further ejection doubles it, up to `max_ejection_ms`.
    pub ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// Longest `retry-after` honoured (a larger one is capped).
    pub max_retry_after_ms: u64,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            eject_after_failures: 5,
            ejection_ms: 10_000,
            max_ejection_ms: 300_000,
            max_retry_after_ms: 300_000,
        }
    }
}

impl Targets {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    pub fn get(&self, index: usize) -> Option<&Target> {
        self.targets.get(index)
    }

    /// The chains of `model` (as resolved), if it has any.
    pub fn chains_of(&self, model: &str) -> Option<&ModelChains> {
        self.models.get(model)
    }
}

impl Target {
    /// The pool this target sends to, if it is self-hosted.
    pub fn pool(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Pool { pool, .. } => Some(pool),
            TargetKind::Provider(_) => None,
        }
    }
}
