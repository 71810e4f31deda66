//! What flow control is configured to do, validated (`config::flow_control` reads it from the
//! JSON): when a pool counts as saturated, the priority bands, how a request finds its band and
//! fairness id, and the bounds on what is held.

use std::collections::BTreeMap;

/// Most bands a configuration may define.
pub const MAX_BANDS: usize = 8;
/// Most requests one band may hold, per pool.
pub const MAX_BAND_CAPACITY: u32 = 100_000;

/// Who shares a band's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fairness {
    Tenant,
    /// The `x-gateway-inference-fairness-id` header (an earlier layer sets it), else the tenant.
    Header,
}

/// One priority band, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub name: String,
    pub priority: i32,
    /// In thousandths of the released tokens.
    pub min_share_permille: u32,
    pub ttl_ms: u64,
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTenant {
    pub band: Option<usize>,
    pub objectives: Vec<String>,
}

/// The validated `flow_control` section. Bands are sorted highest priority first; a band is
/// named by its index from here on.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowControl {
    pub endpoint_capacity: u32,
    pub max_waiting_per_endpoint: u32,
    pub max_kv_cache_usage: f64,
    pub fallback_endpoints: u32,
    pub max_held_bytes: u64,
    pub reject_status: u16,
    pub fairness: Fairness,
    /// Tokens an id that used less than its share may go ahead of the ids always waiting.
    pub fairness_burst_tokens: u64,
    pub trust_objective_header: bool,
    pub default_band: usize,
    pub bands: Vec<Band>,
    pub objectives: BTreeMap<String, usize>,
    pub tenants: BTreeMap<String, FlowTenant>,
    /// `fingerprint_of(&bands)`.
    pub(crate) fingerprint: u64,
}

/// The fingerprint of a band layout (`FlowControl::fingerprint`).
pub(crate) fn fingerprint_of(bands: &[Band]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for band in bands {
        hasher.update(band.name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&band.priority.to_le_bytes());
    }
    hasher.digest()
}

impl FlowControl {
    /// Identifies the band layout a queue state was built for: a state left by a configuration
    /// with other bands is not read as this one's. Computed once, at configure time.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The band of a request: the objective header's, when it may choose (trusted, or an
    /// objective the tenant is allowed), else the tenant's, else the default band.
    pub fn band_of(&self, tenant: Option<&str>, objective: Option<&str>) -> usize {
        let tenant_config = tenant.and_then(|t| self.tenants.get(t));
        let chosen = objective.and_then(|objective| {
            let allowed = self.trust_objective_header
                || tenant_config.is_some_and(|t| t.objectives.iter().any(|o| o == objective));
            allowed
                .then(|| self.objectives.get(objective).copied())
                .flatten()
        });
        chosen
            .or_else(|| tenant_config.and_then(|t| t.band))
            .unwrap_or(self.default_band)
    }

    /// The fairness id of a request: the tenant's, or the header's in `header` mode (falling
    /// back to the tenant's). Requests with neither share one id.
    pub fn fairness_id<'a>(&self, tenant: Option<&'a str>, header: Option<&'a str>) -> &'a str {
        let from_header = match self.fairness {
            Fairness::Header => header.filter(|h| !h.is_empty()),
            Fairness::Tenant => None,
        };
        from_header.or(tenant).unwrap_or("")
    }
}
