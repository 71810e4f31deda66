//! The Redis tenancy store: the quota sync's Redis, under its `key_prefix`, shared by every
//! picker of a cluster (any of them may serve the admin API and the snapshot).
//!
//! Keys: `<prefix>tenancy:version` (a number), `<prefix>tenancy:tenants` and
//! `<prefix>tenancy:keys` (hashes of JSON records by name and id), and one hash per hour of spend
//! rows, `<prefix>spend:<hour>`, whose fields are the row's dimensions and a sum's name joined
//! by `\x1f` (no name holds a control character), counted with `HINCRBY` and expiring after the
//! retention. A commit is one Lua script that checks the version and writes, so two pickers'
//! changes never interleave; a load is one MULTI/EXEC, so it reads one version.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::model::{Change, KeyRecord, TenancyState, TenantRecord};
use super::store::{StoreError, TenancyStore};
use crate::spend::row::{SpendKey, SpendValues};

/// Separates the dimensions in a spend hash's field names.
const SEP: char = '\u{1f}';

/// Hours read in one pipeline by a spend query.
const HOURS_PER_PIPELINE: u64 = 168;

/// Checks the version (KEYS[1]) against ARGV[1]; if it matches, applies the operations in
/// ARGV[3..] to the tenants (KEYS[2]) and keys (KEYS[3]) hashes and sets the version to
/// ARGV[2]. Every operation is checked before the first write, so a bad one writes nothing.
const COMMIT: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'put_tenant' or op == 'put_key' then i = i + 3
  elseif op == 'del_tenant' or op == 'del_key' then i = i + 2
  else return redis.error_reply('unknown operation ' .. tostring(op)) end
end
if i ~= #ARGV + 1 then return redis.error_reply('truncated operations') end
i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'put_tenant' then redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'put_key' then redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'del_tenant' then redis.call('HDEL', KEYS[2], ARGV[i + 1]); i = i + 2
  else redis.call('HDEL', KEYS[3], ARGV[i + 1]); i = i + 2 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

pub struct RedisStore {
    redis: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl RedisStore {
    /// Does not connect: the first call does, so the picker starts whether Redis is up or not.
    pub fn new(redis_url: &str, key_prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(redis_url).map_err(|e| format!("quota.redis_url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let redis = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("quota.redis_url: {e}"))?;
        Ok(Self {
            redis,
            prefix: key_prefix.to_owned(),
            timeout,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}tenancy:{name}", self.prefix)
    }

    fn spend_key(&self, hour: u64) -> String {
        format!("{}spend:{hour}", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut redis = self.redis.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async(&mut redis)).await {
            Err(_) => Err(StoreError(format!("Redis did not answer in time ({what})"))),
            Ok(Err(e)) => Err(StoreError(format!("Redis ({what}): {e}"))),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

/// A spend hash's field name: the row's dimensions and the sum's name.
pub fn spend_field(key: &SpendKey, sum: &str) -> String {
    let mut field = String::with_capacity(key.tenant.len() + key.model.len() + sum.len() + 64);
    for part in [
        key.tenant.as_str(),
        key.key.as_deref().unwrap_or(""),
        key.project.as_deref().unwrap_or(""),
        key.model.as_str(),
    ] {
        field.push_str(part);
        field.push(SEP);
    }
    field.push_str(sum);
    field
}

/// The dimensions (with `hour`) and the sum's index of a spend hash's field name; `None` for
/// a field this version does not know.
pub fn parse_spend_field(hour: u64, field: &str) -> Option<(SpendKey, usize)> {
    let mut parts = field.split(SEP);
    let tenant = parts.next()?;
    let key = parts.next()?;
    let project = parts.next()?;
    let model = parts.next()?;
    let sum = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let index = SpendValues::FIELDS.iter().position(|name| *name == sum)?;
    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Some((
        SpendKey {
            hour,
            tenant: tenant.to_owned(),
            key: none_if_empty(key),
            project: none_if_empty(project),
            model: model.to_owned(),
        },
        index,
    ))
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    id: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError(format!("Redis: {what} {id:?} is not readable: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("cannot encode a record: {e}")))
}

#[async_trait]
impl TenancyStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn shared(&self) -> bool {
        true
    }

    async fn version(&self) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.key("version"));
        let (version,): (Option<u64>,) = self.query("version", &pipe).await?;
        Ok(version.unwrap_or(0))
    }

    async fn load(&self) -> Result<TenancyState, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("GET")
            .arg(self.key("version"))
            .cmd("HGETALL")
            .arg(self.key("tenants"))
            .cmd("HGETALL")
            .arg(self.key("keys"));
        let (version, tenant_rows, key_rows): (
            Option<u64>,
            HashMap<String, Vec<u8>>,
            HashMap<String, Vec<u8>>,
        ) = self.query("load", &pipe).await?;
        let mut tenants = BTreeMap::new();
        for (name, bytes) in tenant_rows {
            let record: TenantRecord = decode("tenant", &name, &bytes)?;
            tenants.insert(name, record);
        }
        let mut keys = BTreeMap::new();
        for (id, bytes) in key_rows {
            let record: KeyRecord = decode("key", &id, &bytes)?;
            keys.insert(id, record);
        }
        Ok(TenancyState::new(version.unwrap_or(0), tenants, keys))
    }

    async fn commit(
        &self,
        expected: u64,
        new_version: u64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        let cmd = pipe
            .cmd("EVAL")
            .arg(COMMIT)
            .arg(3)
            .arg(self.key("version"))
            .arg(self.key("tenants"))
            .arg(self.key("keys"))
            .arg(expected.to_string())
            .arg(new_version.to_string());
        for (name, record) in &change.tenants {
            match record {
                Some(record) => cmd.arg("put_tenant").arg(name).arg(encode(record)?),
                None => cmd.arg("del_tenant").arg(name),
            };
        }
        for (id, record) in &change.keys {
            match record {
                Some(record) => cmd.arg("put_key").arg(id).arg(encode(record)?),
                None => cmd.arg("del_key").arg(id),
            };
        }
        let (written,): (i64,) = self.query("commit", &pipe).await?;
        Ok(written == 1)
    }

    async fn add_spend(
        &self,
        rows: &[(SpendKey, SpendValues)],
        retention_hours: u64,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut hours = Vec::new();
        for (key, values) in rows {
            let hash = self.spend_key(key.hour);
            for (name, value) in SpendValues::FIELDS.iter().zip(values.to_array()) {
                if value != 0 {
                    pipe.cmd("HINCRBY")
                        .arg(&hash)
                        .arg(spend_field(key, name))
                        .arg(value)
                        .ignore();
                }
            }
            if !hours.contains(&key.hour) {
                hours.push(key.hour);
            }
        }
        for hour in hours {
            // Kept for the retention after the hour ended.
            let expire_at = hour
                .saturating_add(1)
                .saturating_add(retention_hours)
                .saturating_mul(3600);
            pipe.cmd("EXPIREAT")
                .arg(self.spend_key(hour))
                .arg(expire_at)
                .ignore();
        }
        let () = self.query("spend", &pipe).await?;
        Ok(())
    }

    async fn spend(
        &self,
        from_hour: u64,
        to_hour: u64,
    ) -> Result<Vec<(SpendKey, SpendValues)>, StoreError> {
        let mut rows: BTreeMap<SpendKey, SpendValues> = BTreeMap::new();
        let mut start = from_hour;
        while start < to_hour {
            let end = start.saturating_add(HOURS_PER_PIPELINE).min(to_hour);
            let mut pipe = redis::pipe();
            for hour in start..end {
                pipe.cmd("HGETALL").arg(self.spend_key(hour));
            }
            let hashes: Vec<HashMap<String, u64>> = self.query("spend query", &pipe).await?;
            for (hour, hash) in (start..end).zip(hashes) {
                for (field, value) in hash {
                    let Some((key, index)) = parse_spend_field(hour, &field) else {
                        continue;
                    };
                    let mut sums = rows.get(&key).copied().unwrap_or_default().to_array();
                    if let Some(slot) = sums.get_mut(index) {
                        *slot = value;
                    }
                    rows.insert(key, SpendValues::from_array(sums));
                }
            }
            start = end;
        }
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_fields_round_trip() {
        let key = SpendKey {
            hour: 7,
            tenant: "acme".to_owned(),
            key: Some("key_0123456789abcdef".to_owned()),
            project: None,
            model: "meta-llama/Llama 3 (8B)".to_owned(),
        };
        let field = spend_field(&key, "cost");
        assert_eq!(
            field,
            "acme\u{1f}key_0123456789abcdef\u{1f}\u{1f}meta-llama/Llama 3 (8B)\u{1f}cost"
        );
        assert_eq!(parse_spend_field(7, &field), Some((key, 4)));
        assert_eq!(parse_spend_field(7, "a\u{1f}b"), None);
        assert_eq!(
            parse_spend_field(7, "a\u{1f}\u{1f}\u{1f}m\u{1f}bytes"),
            None
        );
        assert_eq!(
            parse_spend_field(7, "a\u{1f}\u{1f}\u{1f}m\u{1f}requests\u{1f}x"),
            None
        );
    }
}
