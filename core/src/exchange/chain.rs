//! A model served by chains of targets: choosing the chain for a routed request, and what
//! sends the request to it (the chain's cluster, the plan for the upstream attempts).

use super::Exchange;
use super::effects::Record;
use super::ports::{Event, Ports};
use crate::attempt::Plan;
use crate::config::Config;
use crate::pipeline::RoutedRequest;
use crate::targets::{self, Sticky};

/// The chain a request goes to.
#[derive(Debug)]
pub(super) struct Chosen {
    /// Route headers: the chain's cluster, the plan, and how many retries Envoy may make (one
    /// per target after the first: a composite cluster has no host for an attempt past its
    /// last sub-cluster).
    pub headers: [(String, String); 3],
    /// The pool of the chain's first target, when it is self-hosted (its replica is picked);
    /// `None`: a provider, no replica to pick.
    pub first_pool: Option<String>,
    /// The model the first target serves the request under, when it is a pool target that
    /// names one (a LoRA adapter or another model of the pool: a weighted rewrite).
    pub first_model: Option<String>,
    /// The first part of `sluice.failover` (the upstream attempts add theirs).
    pub record: Record,
    /// Why another chain than the weighted choice was taken (`rerouted`), if one was: the
    /// start of `sluice.fallback`.
    pub rerouted: Vec<String>,
}

impl Exchange {
    /// The chain for `routed`, if its model has chains. `tenant`: the caller, for stickiness
    /// by user when the request names no end user.
    pub(super) fn choose_chain(
        &self,
        ports: &Ports<'_>,
        config: &Config,
        routed: &RoutedRequest,
        tenant: Option<&str>,
    ) -> Option<Chosen> {
        let targets = config.targets.as_ref()?;
        let model = targets.chains_of(&routed.model)?;
        let sticky_key = match &model.sticky {
            Some(Sticky::User) => routed.user.as_deref().or(tenant),
            Some(Sticky::Header(name)) => self
                .sticky_values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            None => None,
        };
        let point = match sticky_key {
            Some(key) => xxhash_rust::xxh3::xxh3_64(key.as_bytes()),
            None => {
                let seed = (u128::from(self.tie_breaker) << 64) | u128::from(ports.clock.now_us());
                xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes())
            }
        };
        let health = ports.health.read();
        let choice = targets::choose(model, health.as_ref(), ports.clock.now_ms(), point)?;
        let rerouted = if choice.reason == targets::select::ChoiceReason::Weighted {
            Vec::new()
        } else {
            ports.telemetry.count(Event::ChainRerouted);
            vec![choice.reason.label().to_owned()]
        };
        let names = choice
            .chain
            .targets
            .iter()
            .filter_map(|&t| targets.get(t))
            .map(|t| t.name.as_str());
        let plan = Plan::header_value(routed.api, names);
        let first = choice.chain.targets.first().and_then(|&t| targets.get(t));
        let first_pool = first.and_then(|t| t.pool()).map(str::to_owned);
        let first_model = first.and_then(|t| match &t.kind {
            targets::TargetKind::Pool { model, .. } => model.clone(),
            targets::TargetKind::Provider(_) => None,
        });
        let record = Record {
            key: super::RecordKey::Failover,
            value: serde_json::json!({
                "chain": choice.chain.cluster,
                "choice": choice.reason.label(),
                "attempts": [],
            })
            .to_string(),
        };
        Some(Chosen {
            headers: [
                (
                    targets::CLUSTER_HEADER.to_owned(),
                    choice.chain.cluster.clone(),
                ),
                (targets::PLAN_HEADER.to_owned(), plan),
                (
                    targets::MAX_RETRIES_HEADER.to_owned(),
                    choice.chain.targets.len().saturating_sub(1).to_string(),
                ),
            ],
            first_pool,
            first_model,
            record,
            rerouted,
        })
    }
}
