//! A worker's own decoded copy of the picker's snapshot. The leader worker stores the encoded
//! snapshot in shared data with its version under a separate small key; every worker checks that
//! key on its tick and decodes the snapshot only when the version changed. Requests read the
//! decoded copy through `exchange::SnapshotSource`: a shared handle, so that a request never
//! copies it and a host that keeps one copy per process (the native module) can swap it.

use std::sync::Arc;

use sluice_wire::{DecodeError, Pool, Snapshot};

pub const SNAPSHOT_KEY: &str = "sluice.snapshot";
pub const VERSION_KEY: &str = "sluice.snapshot.version";

/// Why a request cannot be picked for from the snapshot; it then goes to Envoy's own load
/// balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    NoSnapshot,
    Stale,
    UnknownPool,
}

#[derive(Debug, Default)]
pub struct LocalSnapshot {
    snapshot: Option<Arc<Snapshot>>,
}

impl LocalSnapshot {
    pub fn version(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.version)
    }

    /// Whether the version published in shared data differs from this copy's.
    pub fn is_behind(&self, published: u64) -> bool {
        self.version() != Some(published)
    }

    pub fn replace(&mut self, encoded: &[u8]) -> Result<(), DecodeError> {
        self.snapshot = Some(Arc::new(Snapshot::decode(encoded)?));
        Ok(())
    }

    /// The decoded snapshot, shared (no copy).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// `name`'s endpoints, if the snapshot is younger than `stale_after_ms`.
    pub fn pool(&self, name: &str, now_ms: u64, stale_after_ms: u64) -> Result<&Pool, Unavailable> {
        fresh_pool(self.snapshot.as_deref(), name, now_ms, stale_after_ms)
    }
}

/// `name`'s endpoints in `snapshot`, if there is one younger than `stale_after_ms`.
pub fn fresh_pool<'s>(
    snapshot: Option<&'s Snapshot>,
    name: &str,
    now_ms: u64,
    stale_after_ms: u64,
) -> Result<&'s Pool, Unavailable> {
    let snapshot = snapshot.ok_or(Unavailable::NoSnapshot)?;
    if now_ms.saturating_sub(snapshot.taken_at_unix_ms) > stale_after_ms {
        return Err(Unavailable::Stale);
    }
    snapshot.pool(name).ok_or(Unavailable::UnknownPool)
}

/// The version key's value: the version, little-endian.
pub fn encode_version(version: u64) -> [u8; 8] {
    version.to_le_bytes()
}

pub fn decode_version(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use sluice_wire::{FORMAT, Pool, Snapshot};

    use super::{LocalSnapshot, Unavailable, decode_version, encode_version};

    #[test]
    fn replaced_on_new_versions_and_stale_when_old() {
        let mut local = LocalSnapshot::default();
        assert!(local.is_behind(1));
        assert_eq!(
            local.pool("p", 0, 100).unwrap_err(),
            Unavailable::NoSnapshot
        );
        let snapshot = Snapshot {
            format: FORMAT,
            version: 3,
            taken_at_unix_ms: 1000,
            scrape_interval_ms: 50,
            pools: vec![Pool {
                name: "p".into(),
                model: "m".into(),
                endpoints: vec![],
            }],
        };
        local.replace(&snapshot.encode().unwrap()).unwrap();
        assert!(!local.is_behind(3));
        assert!(local.pool("p", 1100, 100).is_ok());
        assert_eq!(local.pool("p", 1101, 100).unwrap_err(), Unavailable::Stale);
        assert_eq!(
            local.pool("q", 1000, 100).unwrap_err(),
            Unavailable::UnknownPool
        );
        assert!(local.replace(b"junk").is_err());
        assert_eq!(
            local.version(),
            Some(3),
            "a bad snapshot keeps the last good one"
        );
        assert_eq!(decode_version(&encode_version(9)), Some(9));
        assert_eq!(decode_version(b"short"), None);
    }
}
