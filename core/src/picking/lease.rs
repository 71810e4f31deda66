//! The lease that makes one worker per Envoy the snapshot fetcher. Every worker's root context
//! ticks; the one holding an unexpired lease fetches, and any worker takes the lease over once
//! it expires (its holder stopped ticking), so exactly one fetch runs per interval.

use serde::{Deserialize, Serialize};

pub const LEASE_KEY: &str = "sluice.picker.lease";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Random id of the holding worker's VM.
    pub owner: u64,
    pub expires_at_ms: u64,
}

impl Lease {
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// The lease `me` should write now, if it holds or may take the lease: renewed when `me`
    /// holds it, taken when there is none or it has expired, `None` when another worker holds
    /// an unexpired one. The write must be a compare-and-swap against what was read.
    pub fn next(current: Option<Self>, me: u64, now_ms: u64, ttl_ms: u64) -> Option<Self> {
        let ours = Self {
            owner: me,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        match current {
            Some(lease) if lease.owner != me && lease.expires_at_ms > now_ms => None,
            _ => Some(ours),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::Lease;

    #[test]
    fn one_holder_until_it_lapses() {
        let taken = Lease::next(None, 1, 1000, 300).unwrap();
        assert_eq!(
            taken,
            Lease {
                owner: 1,
                expires_at_ms: 1300
            }
        );
        assert_eq!(Lease::next(Some(taken), 2, 1200, 300), None);
        assert_eq!(
            Lease::next(Some(taken), 1, 1200, 300)
                .unwrap()
                .expires_at_ms,
            1500
        );
        assert_eq!(Lease::next(Some(taken), 2, 1300, 300).unwrap().owner, 2);
        assert_eq!(Lease::decode(&taken.encode()), Some(taken));
        assert_eq!(Lease::decode(b""), None);
    }
}
