//! The cluster quota sync (`POST /quota/sync`): every Envoy's leader worker reports what it
//! consumed per counter bucket since its last report and gets back every instance's totals.
//!
//! The totals live in Redis, one integer key per scope, counter and bucket
//! (`<prefix><scope>|<counter>|<kind>|<bucket>`). Buckets are plain counts, so merging instances is
//! `INCRBY`; the reply to `INCRBY` is the new total, so a report and its read are one command.
//! One sync is one pipeline (one round trip, whatever the number of entries); no transaction is
//! needed because each command stands alone. Keys expire `ttl_ms` (two windows) after their last
//! write, so Redis holds no more than the live buckets. Each pipeline also reads the store's epoch
//! (see `epoch_key`), by which the filters learn that Redis came back empty.
//!
//! This module is the plain part (checking a request, the commands, reading the replies); `store`
//! talks to Redis.

pub mod store;

use sluice_wire::quota_sync::{MAX_ENTRIES, MAX_KEY_BYTES, SyncEntry, SyncRequest, SyncResponse};

/// Longest a bucket may be kept: two months and then some (budgets are monthly at most, and the
/// filter keeps two windows).
const MAX_TTL_MS: u64 = 100 * 24 * 3600 * 1000;

/// Why a sync request is refused (400): the filter sent something it never should.
pub fn check(request: &SyncRequest) -> Result<(), String> {
    if request.entries.len() > MAX_ENTRIES {
        return Err(format!(
            "entries: {} entries, at most {MAX_ENTRIES} per sync",
            request.entries.len()
        ));
    }
    for (i, entry) in request.entries.iter().enumerate() {
        if entry.key.is_empty() || entry.key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "entries[{i}].key: must be 1 to {MAX_KEY_BYTES} bytes"
            ));
        }
        if !(1..=MAX_TTL_MS).contains(&entry.ttl_ms) {
            return Err(format!("entries[{i}].ttl_ms: must be 1 to {MAX_TTL_MS}"));
        }
    }
    Ok(())
}

/// The Redis key of `entry`'s bucket `window`.
pub fn bucket_key(prefix: &str, entry: &SyncEntry, window: u64) -> String {
    format!("{prefix}{}|{window}", entry.key)
}

/// What the pipeline reads for one entry besides the current bucket's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// Not asked for and not written: its total is reported as 0.
    Skip,
    /// `GET` (nil when the bucket does not exist).
    Read,
    /// `INCRBY` with the late report.
    Add,
}

pub fn previous(entry: &SyncEntry) -> Previous {
    if entry.window == 0 {
        Previous::Skip
    } else if entry.prev_delta != 0 {
        Previous::Add
    } else if entry.sliding {
        Previous::Read
    } else {
        Previous::Skip
    }
}

/// The key of the store's epoch: a random number written once into an empty Redis. A Redis that
/// restarted without its data gets a new one, which tells every instance to report its counts
/// again.
pub fn epoch_key(prefix: &str) -> String {
    format!("{prefix}epoch")
}

/// The commands of one sync, in order. First `SET NX` of the epoch (`candidate`, kept only if
/// there is none; reply ignored) and `GET` of it. Per entry: `INCRBY` of the current bucket (its
/// reply is the total) and `PEXPIRE` (reply ignored), then for the previous bucket `INCRBY` +
/// `PEXPIRE` when there is a late report, or `GET` when the window slides.
pub fn pipeline(prefix: &str, request: &SyncRequest, candidate: i64) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    let epoch = epoch_key(prefix);
    pipe.cmd("SET")
        .arg(&epoch)
        .arg(candidate)
        .arg("NX")
        .ignore();
    pipe.cmd("GET").arg(&epoch);
    for entry in &request.entries {
        let current = bucket_key(prefix, entry, entry.window);
        pipe.cmd("INCRBY").arg(&current).arg(entry.delta);
        pipe.cmd("PEXPIRE").arg(&current).arg(entry.ttl_ms).ignore();
        let before = entry.window.saturating_sub(1);
        match previous(entry) {
            Previous::Skip => {}
            Previous::Read => {
                pipe.cmd("GET").arg(bucket_key(prefix, entry, before));
            }
            Previous::Add => {
                let key = bucket_key(prefix, entry, before);
                pipe.cmd("INCRBY").arg(&key).arg(entry.prev_delta);
                pipe.cmd("PEXPIRE").arg(&key).arg(entry.ttl_ms).ignore();
            }
        }
    }
    pipe
}

/// Reads the pipeline's replies (ignored ones left out): the epoch, then per entry
/// `[current, previous]`.
pub fn response(request: &SyncRequest, replies: &[Option<i64>]) -> Result<SyncResponse, String> {
    let mut replies = replies.iter();
    let mut next = || {
        replies
            .next()
            .ok_or_else(|| "Redis sent fewer replies than commands".to_owned())
    };
    let epoch = next()?
        .and_then(|e| u64::try_from(e).ok())
        .ok_or_else(|| "no epoch".to_owned())?;
    let mut out = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        let current = next()?.unwrap_or(0);
        let before = match previous(entry) {
            Previous::Skip => 0,
            Previous::Read | Previous::Add => next()?.unwrap_or(0),
        };
        out.push([current, before]);
    }
    Ok(SyncResponse {
        totals: out,
        epoch,
        spend_stored: false,
    })
}

#[cfg(test)]
mod tests {
    use sluice_wire::quota_sync::{MAX_ENTRIES, SyncEntry, SyncRequest};

    use super::{Previous, bucket_key, check, pipeline, previous, response};

    fn entry(key: &str, window: u64, delta: i64, prev_delta: i64, sliding: bool) -> SyncEntry {
        SyncEntry {
            key: key.to_owned(),
            window,
            delta,
            prev_delta,
            sliding,
            ttl_ms: 120_000,
        }
    }

    #[test]
    fn keys_carry_the_prefix_and_the_bucket() {
        let e = entry("t|acme|0|0", 29_000_000, 1, 0, true);
        assert_eq!(bucket_key("sluice:q:", &e, 7), "sluice:q:t|acme|0|0|7");
    }

    #[test]
    fn the_previous_bucket_is_read_written_or_skipped() {
        assert_eq!(previous(&entry("k", 5, 1, 0, true)), Previous::Read);
        assert_eq!(previous(&entry("k", 5, 1, 2, true)), Previous::Add);
        assert_eq!(previous(&entry("k", 5, 1, -2, false)), Previous::Add);
        assert_eq!(previous(&entry("k", 5, 1, 0, false)), Previous::Skip);
        // No bucket before the first one.
        assert_eq!(previous(&entry("k", 0, 1, 3, true)), Previous::Skip);
    }

    #[test]
    fn one_pipeline_with_the_commands_of_every_entry() {
        let request = SyncRequest {
            entries: vec![
                entry("a", 10, 3, 0, true),
                entry("b", 10, -1, 2, true),
                entry("c", 4, 0, 0, false),
            ],
            ..SyncRequest::default()
        };
        let packed = String::from_utf8(pipeline("p:", &request, 77).get_packed_pipeline()).unwrap();
        assert!(packed.starts_with("*4\r\n$3\r\nSET\r\n$7\r\np:epoch\r\n$2\r\n77\r\n$2\r\nNX"));
        assert_eq!(packed.matches("INCRBY").count(), 4);
        assert_eq!(packed.matches("PEXPIRE").count(), 4);
        assert_eq!(packed.matches("\r\nGET\r\n").count(), 2);
        for key in ["p:a|10", "p:a|9", "p:b|10", "p:b|9", "p:c|4"] {
            assert!(packed.contains(key), "{key} in {packed:?}");
        }
        assert!(!packed.contains("p:c|3"));
    }

    #[test]
    fn replies_pair_with_their_entries() {
        let request = SyncRequest {
            entries: vec![
                entry("a", 10, 3, 0, true),
                entry("b", 10, -1, 2, true),
                entry("c", 4, 0, 0, false),
            ],
            ..SyncRequest::default()
        };
        let replies = [Some(42), Some(7), None, Some(4), Some(9), Some(0)];
        let answer = response(&request, &replies).unwrap();
        assert_eq!(answer.epoch, 42);
        assert_eq!(answer.totals, vec![[7, 0], [4, 9], [0, 0]]);
        assert!(response(&request, &replies[..4]).is_err());
        assert!(response(&request, &[None]).is_err());
    }

    #[test]
    fn requests_are_bounded() {
        let ok = SyncRequest {
            entries: vec![entry("k", 1, 1, 0, true)],
            ..SyncRequest::default()
        };
        assert_eq!(check(&ok), Ok(()));
        let many = SyncRequest {
            entries: vec![entry("k", 1, 1, 0, true); MAX_ENTRIES + 1],
            ..SyncRequest::default()
        };
        assert!(check(&many).unwrap_err().starts_with("entries:"));
        let long = SyncRequest {
            entries: vec![entry(&"k".repeat(2000), 1, 1, 0, true)],
            ..SyncRequest::default()
        };
        assert!(check(&long).unwrap_err().starts_with("entries[0].key:"));
        let mut no_ttl = entry("k", 1, 1, 0, true);
        no_ttl.ttl_ms = 0;
        let err = check(&SyncRequest {
            entries: vec![ok.entries[0].clone(), no_ttl],
            ..SyncRequest::default()
        })
        .unwrap_err();
        assert!(err.starts_with("entries[1].ttl_ms:"), "{err}");
    }
}
