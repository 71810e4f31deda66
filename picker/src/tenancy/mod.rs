//! Tenancy at run time: tenants, projects and virtual keys managed through the admin API, kept
//! in a store (embedded or Redis), and served to every Envoy as a versioned snapshot.

pub mod embedded;
pub mod model;
pub mod ops;
pub mod redis;
pub mod secret;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod validation;

use std::sync::Arc;

use crate::config::{StoreConfig, TenancyConfig};

/// Opens the configured store. The embedded one opens its file now (and fails if another
/// process has it); the Redis one connects on first use.
pub fn open_store(config: &TenancyConfig) -> Result<Arc<dyn store::TenancyStore>, String> {
    Ok(match &config.store {
        StoreConfig::Embedded { path } => Arc::new(embedded::Embedded::open(path)?),
        StoreConfig::Redis {
            redis_url,
            key_prefix,
            timeout,
        } => Arc::new(redis::RedisStore::new(redis_url, key_prefix, *timeout)?),
    })
}
