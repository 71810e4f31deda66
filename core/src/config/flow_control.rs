//! The `flow_control` section as written (unknown fields are errors), validated into
//! `flow::FlowControl`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::ConfigError;
use crate::flow::{
    Band, Fairness, FlowControl, FlowTenant, MAX_BAND_CAPACITY, MAX_BANDS, fingerprint_of,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WireFlowControl {
    /// Requests one replica serves at once without queueing them (vLLM's `max_num_seqs`).
    pub endpoint_capacity: u32,
    /// Requests a replica may also have waiting, beyond `endpoint_capacity` (headroom that
    /// keeps its batch full between steps; 0: none).
    pub max_waiting_per_endpoint: u32,
    /// A replica whose KV cache is at least this full (0..1) has no room.
    pub max_kv_cache_usage: f64,
    /// Replicas a pool is assumed to have before any snapshot named them.
    pub fallback_endpoints: u32,
    /// Bound on the request bodies held per pool, in an Envoy process (every worker shares it:
    /// the queue is one per process, whichever host).
    pub max_held_bytes: u64,
    /// What expiry and overflow answer: 429 (rate-limit style) or 503.
    pub reject_status: u16,
    /// Who shares a band's capacity: `tenant` or `header` (`x-gateway-inference-fairness-id`).
    pub fairness: WireFairness,
    /// Tokens (prompt + output) a fairness id that used less than its share may be served
    /// ahead of the ids that are always waiting: occasional senders go first.
    pub fairness_burst_tokens: u64,
    /// `x-gateway-inference-objective` picks any caller's band (an earlier layer sets it).
    /// Otherwise it is honoured only for tenants whose `objectives` list its value.
    pub trust_objective_header: bool,
    /// The band of a request nothing else places.
    pub default_band: Option<String>,
    /// Highest priority first, or in any order: `priority` orders them.
    pub bands: Vec<WireBand>,
    /// Objective names (the header's values) and the band each maps to.
    pub objectives: BTreeMap<String, String>,
    pub tenants: BTreeMap<String, WireFlowTenant>,
}

impl Default for WireFlowControl {
    fn default() -> Self {
        Self {
            endpoint_capacity: 16,
            max_waiting_per_endpoint: 0,
            max_kv_cache_usage: 0.95,
            fallback_endpoints: 1,
            max_held_bytes: 64 * 1024 * 1024,
            reject_status: 429,
            fairness: WireFairness::Tenant,
            fairness_burst_tokens: 8192,
            trust_objective_header: false,
            default_band: None,
            bands: Vec::new(),
            objectives: BTreeMap::new(),
            tenants: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireFairness {
    #[default]
    Tenant,
    Header,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireBand {
    pub name: String,
    /// Higher is served first.
    pub priority: i32,
    /// The share (0..1) of released tokens this band keeps while it has requests waiting,
    /// whatever the higher bands want.
    #[serde(default)]
    pub min_share: f64,
    /// How long a request may wait here before it is answered with `reject_status`.
    #[serde(default = "default_ttl_ms")]
    pub ttl_ms: u64,
    /// Most requests this band holds per pool; more are answered with `reject_status`.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

fn default_ttl_ms() -> u64 {
    60_000
}

fn default_capacity() -> u32 {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireFlowTenant {
    /// The tenant's band.
    pub band: Option<String>,
    /// Objectives the tenant may ask for with `x-gateway-inference-objective`.
    #[serde(default)]
    pub objectives: Vec<String>,
}

impl WireFlowControl {
    pub(crate) fn validate(self) -> Result<FlowControl, ConfigError> {
        let field = |name: &str| format!("flow_control.{name}");
        if self.endpoint_capacity == 0 {
            return Err(ConfigError::new(
                field("endpoint_capacity"),
                "must be at least 1",
            ));
        }
        if !(self.max_kv_cache_usage > 0.0 && self.max_kv_cache_usage <= 1.0) {
            return Err(ConfigError::new(
                field("max_kv_cache_usage"),
                "must be above 0 and at most 1",
            ));
        }
        if self.fallback_endpoints == 0 {
            return Err(ConfigError::new(
                field("fallback_endpoints"),
                "must be at least 1",
            ));
        }
        if self.max_held_bytes == 0 {
            return Err(ConfigError::new(field("max_held_bytes"), "must be above 0"));
        }
        if !matches!(self.reject_status, 429 | 503) {
            return Err(ConfigError::new(
                field("reject_status"),
                "must be 429 or 503",
            ));
        }
        let bands = validate_bands(self.bands)?;
        let band_of = |name: &str, at: String| {
            bands
                .iter()
                .position(|band| band.name == name)
                .ok_or_else(|| ConfigError::new(at, format!("no band is named {name:?}")))
        };
        let default_band = match &self.default_band {
            Some(name) => band_of(name, field("default_band"))?,
            // The lowest band: a request nobody placed never outranks one that was.
            None => bands.len().saturating_sub(1),
        };
        let mut objectives = BTreeMap::new();
        for (objective, band) in &self.objectives {
            objectives.insert(
                objective.clone(),
                band_of(band, field(&format!("objectives.{objective}")))?,
            );
        }
        let mut tenants = BTreeMap::new();
        for (tenant, wire) in self.tenants {
            let band = wire
                .band
                .as_deref()
                .map(|name| band_of(name, field(&format!("tenants.{tenant}.band"))))
                .transpose()?;
            for objective in &wire.objectives {
                if !objectives.contains_key(objective) {
                    return Err(ConfigError::new(
                        field(&format!("tenants.{tenant}.objectives")),
                        format!("{objective:?} is not in flow_control.objectives"),
                    ));
                }
            }
            tenants.insert(
                tenant,
                FlowTenant {
                    band,
                    objectives: wire.objectives,
                },
            );
        }
        Ok(FlowControl {
            endpoint_capacity: self.endpoint_capacity,
            max_waiting_per_endpoint: self.max_waiting_per_endpoint,
            max_kv_cache_usage: self.max_kv_cache_usage,
            fallback_endpoints: self.fallback_endpoints,
            max_held_bytes: self.max_held_bytes,
            reject_status: self.reject_status,
            fairness: match self.fairness {
                WireFairness::Tenant => Fairness::Tenant,
                WireFairness::Header => Fairness::Header,
            },
            fairness_burst_tokens: self.fairness_burst_tokens,
            trust_objective_header: self.trust_objective_header,
            default_band,
            fingerprint: fingerprint_of(&bands),
            bands,
            objectives,
            tenants,
        })
    }
}

/// Bands sorted highest priority first; with none configured, one band for everything.
fn validate_bands(wire: Vec<WireBand>) -> Result<Vec<Band>, ConfigError> {
    if wire.is_empty() {
        return Ok(vec![Band {
            name: "default".to_owned(),
            priority: 0,
            min_share_permille: 0,
            ttl_ms: default_ttl_ms(),
            capacity: default_capacity(),
        }]);
    }
    if wire.len() > MAX_BANDS {
        return Err(ConfigError::new(
            "flow_control.bands",
            format!("at most {MAX_BANDS} bands"),
        ));
    }
    let mut bands = Vec::with_capacity(wire.len());
    let mut share_total = 0.0;
    for (index, band) in wire.into_iter().enumerate() {
        let at = |name: &str| format!("flow_control.bands[{index}].{name}");
        if band.name.trim().is_empty() {
            return Err(ConfigError::new(at("name"), "must not be empty"));
        }
        if bands.iter().any(|b: &Band| b.name == band.name) {
            return Err(ConfigError::new(
                at("name"),
                format!("{:?} is defined twice", band.name),
            ));
        }
        if !(0.0..1.0).contains(&band.min_share) {
            return Err(ConfigError::new(
                at("min_share"),
                "must be at least 0 and below 1",
            ));
        }
        share_total += band.min_share;
        if band.ttl_ms == 0 {
            return Err(ConfigError::new(at("ttl_ms"), "must be above 0"));
        }
        if !(1..=MAX_BAND_CAPACITY).contains(&band.capacity) {
            return Err(ConfigError::new(
                at("capacity"),
                format!("must be 1 to {MAX_BAND_CAPACITY}"),
            ));
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "min_share is checked to be in 0..1 just above"
        )]
        let min_share_permille = (band.min_share * 1000.0).round() as u32;
        bands.push(Band {
            name: band.name,
            priority: band.priority,
            min_share_permille,
            ttl_ms: band.ttl_ms,
            capacity: band.capacity,
        });
    }
    if share_total >= 1.0 {
        return Err(ConfigError::new(
            "flow_control.bands",
            "the min_share values must add up to less than 1",
        ));
    }
    // Stable: bands of equal priority keep the order they were written in.
    bands.sort_by_key(|band| std::cmp::Reverse(band.priority));
    Ok(bands)
}
