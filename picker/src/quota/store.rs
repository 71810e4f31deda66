//! The Redis side of the quota sync: one multiplexed connection, reconnected by the connection
//! manager after Redis went away, and a deadline on every sync so that a dead or slow Redis
//! answers quickly (503) instead of holding the filter's sync call, which would delay its next
//! report and leave its view stale for longer than needed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sluice_wire::quota_sync::{SyncRequest, SyncResponse};

use crate::config::QuotaConfig;

pub struct Store {
    redis: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Whether the last sync reached Redis, to log changes rather than every failed sync (every
    /// Envoy calls ten times a second).
    reachable: AtomicBool,
}

/// Why a sync did not reach Redis: the filter keeps its local view and tries again next tick.
#[derive(Debug)]
pub enum Unavailable {
    Timeout,
    Redis(redis::RedisError),
    Reply(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => write!(f, "Redis did not answer in time"),
            Self::Redis(err) => write!(f, "Redis: {err}"),
            Self::Reply(why) => write!(f, "Redis reply: {why}"),
        }
    }
}

impl Store {
    /// Does not connect: the first sync does, so the picker starts whether Redis is up or not.
    pub fn new(config: &QuotaConfig) -> Result<Self, String> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|err| format!("quota.redis_url: {err}"))?;
        // No retries inside one sync: the filter calls again on its next tick, which is the
        // retry. Each attempt is bounded by the same timeout as the whole sync.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout));
        let redis = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|err| format!("quota.redis_url: {err}"))?;
        Ok(Self {
            redis,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            reachable: AtomicBool::new(true),
        })
    }

    /// Adds the request's deltas and reads back the totals, in one round trip. Logs when Redis
    /// stops or starts answering.
    pub async fn sync(&self, request: &SyncRequest) -> Result<SyncResponse, Unavailable> {
        let result = self.run(request).await;
        let was = self.reachable.swap(result.is_ok(), Ordering::Relaxed);
        match &result {
            Err(why) if was => tracing::warn!("quota sync: Redis unavailable: {why}"),
            Ok(_) if !was => tracing::info!("quota sync: Redis reachable again"),
            _ => {}
        }
        result
    }

    async fn run(&self, request: &SyncRequest) -> Result<SyncResponse, Unavailable> {
        // An empty report still runs the epoch commands: the answer tells the filter its view
        // is fresh, which it is only if Redis is there.
        let pipe = super::pipeline(&self.prefix, request, epoch_candidate());
        let mut redis = self.redis.clone();
        let replies: Vec<Option<i64>> =
            match tokio::time::timeout(self.timeout, pipe.query_async(&mut redis)).await {
                Err(_) => return Err(Unavailable::Timeout),
                Ok(Err(err)) => return Err(Unavailable::Redis(err)),
                Ok(Ok(replies)) => replies,
            };
        super::response(request, &replies).map_err(Unavailable::Reply)
    }
}

/// A random positive epoch for an empty Redis (std's hasher keys are random per process).
fn epoch_candidate() -> i64 {
    use std::hash::BuildHasher;
    let random =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    i64::try_from(random >> 1).unwrap_or(1).max(1)
}
