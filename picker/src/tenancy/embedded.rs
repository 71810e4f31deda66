//! The embedded tenancy store: redb (pure Rust, crash-safe, one file, no server) for one
//! machine. Tenants and keys are JSON records keyed by name and id; the version is a number in
//! `meta`; spend rows are keyed by (hour, tenant, key, project, model) with the five sums as the
//! value. redb's write transactions are serialized and atomic, so a commit's version check and
//! its writes cannot interleave with another's. redb is blocking: every call runs on tokio's
//! blocking threads.
//!
//! redb's error type is large; it only travels on failures of this cold path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::model::{Change, KeyRecord, TenancyState, TenantRecord};
use super::store::{StoreError, TenancyStore};
use crate::spend::row::{SpendKey, SpendValues};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const TENANTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tenants");
const KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("keys");
/// (hour, tenant, key or "", project or "", model) → the sums in `SpendValues::FIELDS` order.
/// Names are never empty, so "" stands for "none".
const SPEND: TableDefinition<'_, (u64, &str, &str, &str, &str), [u64; 5]> =
    TableDefinition::new("spend");
const VERSION: &str = "version";

pub struct Embedded {
    db: Arc<Database>,
    /// The hour below which spend rows were last purged.
    purged_below: Arc<AtomicU64>,
}

fn err(context: &str) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{context}: {e}"))
}

impl Embedded {
    /// Opens the file, creating it (and its tables) if needed. Fails when another process has
    /// it open.
    pub fn open(path: &Path) -> Result<Self, String> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => format!(
                "tenancy.path: {} is open in another process (one picker per file)",
                path.display()
            ),
            other => format!("tenancy.path: {}: {other}", path.display()),
        })?;
        let create = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(META)?;
            txn.open_table(TENANTS)?;
            txn.open_table(KEYS)?;
            txn.open_table(SPEND)?;
            txn.commit()?;
            Ok(())
        };
        create().map_err(|e| format!("tenancy.path: {}: {e}", path.display()))?;
        Ok(Self {
            db: Arc::new(db),
            purged_below: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs `work` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError(format!("embedded store task: {e}")))?
    }
}

fn version_of(table: &impl ReadableTable<&'static str, u64>) -> Result<u64, redb::Error> {
    Ok(table.get(VERSION)?.map_or(0, |v| v.value()))
}

type Records = Vec<(String, Vec<u8>)>;

/// Every record of a table of JSON records.
fn records(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Records, redb::Error> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (id, value) = item?;
        out.push((id.value().to_owned(), value.value().to_vec()));
    }
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    id: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError(format!(
            "embedded store: {what} {id:?} is not readable: {e}"
        ))
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("cannot encode a record: {e}")))
}

#[async_trait]
impl TenancyStore for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn shared(&self) -> bool {
        false
    }

    async fn version(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let read = || -> Result<u64, redb::Error> {
                let txn = db.begin_read()?;
                version_of(&txn.open_table(META)?)
            };
            read().map_err(err("embedded store"))
        })
        .await
    }

    async fn load(&self) -> Result<TenancyState, StoreError> {
        self.blocking(|db| {
            let read = || -> Result<(u64, Records, Records), redb::Error> {
                let txn = db.begin_read()?;
                let version = version_of(&txn.open_table(META)?)?;
                let tenants = records(&txn.open_table(TENANTS)?)?;
                let keys = records(&txn.open_table(KEYS)?)?;
                Ok((version, tenants, keys))
            };
            let (version, tenant_rows, key_rows) = read().map_err(err("embedded store"))?;
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
            Ok(TenancyState::new(version, tenants, keys))
        })
        .await
    }

    async fn commit(
        &self,
        expected: u64,
        new_version: u64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        let mut tenants = Vec::with_capacity(change.tenants.len());
        for (name, record) in &change.tenants {
            tenants.push((name.clone(), record.as_ref().map(encode).transpose()?));
        }
        let mut keys = Vec::with_capacity(change.keys.len());
        for (id, record) in &change.keys {
            keys.push((id.clone(), record.as_ref().map(encode).transpose()?));
        }
        self.blocking(move |db| {
            let write = || -> Result<bool, redb::Error> {
                let txn = db.begin_write()?;
                {
                    let mut meta = txn.open_table(META)?;
                    if version_of(&meta)? != expected {
                        return Ok(false);
                    }
                    meta.insert(VERSION, new_version)?;
                    let mut table = txn.open_table(TENANTS)?;
                    for (name, bytes) in &tenants {
                        match bytes {
                            Some(bytes) => table.insert(name.as_str(), bytes.as_slice())?,
                            None => table.remove(name.as_str())?,
                        };
                    }
                    let mut table = txn.open_table(KEYS)?;
                    for (id, bytes) in &keys {
                        match bytes {
                            Some(bytes) => table.insert(id.as_str(), bytes.as_slice())?,
                            None => table.remove(id.as_str())?,
                        };
                    }
                }
                txn.commit()?;
                Ok(true)
            };
            write().map_err(err("embedded store"))
        })
        .await
    }

    async fn add_spend(
        &self,
        rows: &[(SpendKey, SpendValues)],
        retention_hours: u64,
    ) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        let purged_below = Arc::clone(&self.purged_below);
        // Rows of hours before this one are past the retention.
        let cutoff = crate::clock::now_hour().saturating_sub(retention_hours);
        self.blocking(move |db| {
            let write = || -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(SPEND)?;
                    for (key, values) in &rows {
                        let id = (
                            key.hour,
                            key.tenant.as_str(),
                            key.key.as_deref().unwrap_or(""),
                            key.project.as_deref().unwrap_or(""),
                            key.model.as_str(),
                        );
                        let mut sum = table.get(id)?.map_or_else(SpendValues::default, |v| {
                            SpendValues::from_array(v.value())
                        });
                        sum.add(values);
                        table.insert(id, sum.to_array())?;
                    }
                    // Once an hour: drop the rows past the retention.
                    if purged_below.load(Ordering::Relaxed) < cutoff {
                        table.retain_in(..(cutoff, "", "", "", ""), |_, _| false)?;
                    }
                }
                txn.commit()?;
                purged_below.fetch_max(cutoff, Ordering::Relaxed);
                Ok(())
            };
            write().map_err(err("embedded store"))
        })
        .await
    }

    async fn spend(
        &self,
        from_hour: u64,
        to_hour: u64,
    ) -> Result<Vec<(SpendKey, SpendValues)>, StoreError> {
        self.blocking(move |db| {
            let read = || -> Result<Vec<(SpendKey, SpendValues)>, redb::Error> {
                let txn = db.begin_read()?;
                let table = txn.open_table(SPEND)?;
                let mut rows = Vec::new();
                for item in table.range((from_hour, "", "", "", "")..(to_hour, "", "", "", ""))? {
                    let (key, value) = item?;
                    let (hour, tenant, id, project, model) = key.value();
                    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
                    rows.push((
                        SpendKey {
                            hour,
                            tenant: tenant.to_owned(),
                            key: none_if_empty(id),
                            project: none_if_empty(project),
                            model: model.to_owned(),
                        },
                        SpendValues::from_array(value.value()),
                    ));
                }
                Ok(rows)
            };
            read().map_err(err("embedded store"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::model::TenantRecord;

    fn tenant(name: &str) -> Change {
        Change {
            tenants: vec![(
                name.to_owned(),
                Some(TenantRecord {
                    name: name.to_owned(),
                    ..TenantRecord::default()
                }),
            )],
            keys: Vec::new(),
            what: format!("tenant {name} created"),
        }
    }

    fn row(hour: u64, key: Option<&str>, cost: u64) -> (SpendKey, SpendValues) {
        (
            SpendKey {
                hour,
                tenant: "acme".to_owned(),
                key: key.map(str::to_owned),
                project: None,
                model: "llama".to_owned(),
            },
            SpendValues {
                requests: 1,
                cost_nano_usd: cost,
                ..SpendValues::default()
            },
        )
    }

    #[tokio::test]
    async fn commits_check_the_version_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Embedded::open(&path).unwrap();
        assert_eq!(store.version().await.unwrap(), 0);
        assert!(store.commit(0, 10, &tenant("acme")).await.unwrap());
        // A change made on top of an old version is not written.
        assert!(!store.commit(0, 11, &tenant("beta")).await.unwrap());
        assert!(store.commit(10, 11, &tenant("beta")).await.unwrap());
        let delete = Change {
            tenants: vec![("acme".to_owned(), None)],
            ..Change::default()
        };
        assert!(store.commit(11, 12, &delete).await.unwrap());
        // One process per file.
        let err = Embedded::open(&path).err().unwrap();
        assert!(err.contains("open in another process"), "{err}");
        drop(store);
        let store = Embedded::open(&path).unwrap();
        let state = store.load().await.unwrap();
        assert_eq!(state.version, 12);
        assert_eq!(state.tenants.keys().collect::<Vec<_>>(), ["beta"]);
    }

    #[tokio::test]
    async fn spend_rows_add_up_by_dimensions_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("t.redb")).unwrap();
        let now = crate::clock::now_hour();
        store
            .add_spend(
                &[
                    row(now, Some("key_a"), 5),
                    row(now, None, 7),
                    row(now - 1, None, 1),
                ],
                48,
            )
            .await
            .unwrap();
        store
            .add_spend(&[row(now, Some("key_a"), 10)], 48)
            .await
            .unwrap();
        let mut rows = store.spend(now, now + 1).await.unwrap();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0.key, None);
        assert_eq!((rows[0].1.requests, rows[0].1.cost_nano_usd), (1, 7));
        assert_eq!(rows[1].0.key.as_deref(), Some("key_a"));
        assert_eq!((rows[1].1.requests, rows[1].1.cost_nano_usd), (2, 15));
        assert_eq!(store.spend(now - 1, now + 1).await.unwrap().len(), 3);
        // Rows older than the retention are dropped by the next write.
        store
            .add_spend(&[row(now - 100, None, 1)], 48)
            .await
            .unwrap();
        store.purged_below.store(0, Ordering::Relaxed);
        store.add_spend(&[row(now, None, 1)], 48).await.unwrap();
        assert!(store.spend(now - 200, now - 48).await.unwrap().is_empty());
        assert_eq!(store.spend(now - 48, now + 1).await.unwrap().len(), 3);
    }
}
