//! Envoy's shared data (one map per VM id, shared by every worker). Failures read as "nothing
//! there": shared data steers routing and must never fail a request.

use proxy_wasm::hostcalls;

use sluice_core::picking::Lease;
use sluice_core::quota::Store;

/// The value under `key` and its compare-and-swap token.
pub fn get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

/// Writes `value`; with `cas`, only if nobody wrote since it was read. Returns whether it did.
pub fn set(key: &str, value: &[u8], cas: Option<u32>) -> bool {
    hostcalls::set_shared_data(key, Some(value), cas).is_ok()
}

/// Takes or renews the lease under `key` for the VM `me` at `now_ms`, for `ttl_ms`. Returns
/// whether this VM holds it: the one worker per Envoy that does a periodic job (fetching the
/// snapshot, syncing quotas) while the others skip it.
pub fn hold_lease(key: &str, me: u64, now_ms: u64, ttl_ms: u64) -> bool {
    let (current, cas) = get(key);
    let Some(lease) = Lease::next(
        current.as_deref().and_then(Lease::decode),
        me,
        now_ms,
        ttl_ms,
    ) else {
        return false;
    };
    set(key, &lease.encode(), cas)
}

/// Read-modify-write of `key`, retried against concurrent writers from other workers. Returns
/// whether the update landed.
pub fn update(key: &str, mut change: impl FnMut(Option<&[u8]>) -> Vec<u8>) -> bool {
    for _ in 0..8 {
        let (current, cas) = get(key);
        let next = change(current.as_deref());
        // A missing key has no token; creating it is then a plain write.
        if set(key, &next, cas) {
            return true;
        }
    }
    false
}

/// Shared data as the quota ledger's store, for the root's periodic work (the requests reach it
/// through `ports::Host`).
pub struct SharedStore;

impl Store for SharedStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        set(key, value, cas)
    }
}
