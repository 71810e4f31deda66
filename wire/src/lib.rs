//! The snapshot the picker serves and the filter routes on: every pool's endpoints with their
//! load. One definition, compiled into both, so the two sides cannot drift apart.
//!
//! Encoded with postcard (compact, about 40 bytes per endpoint): the filter's leader worker copies
//! it into Envoy's shared data and every worker decodes it when its version changes. The encoding
//! starts with `FORMAT`, so a filter meets a picker of another format with a clean error, not a
//! misread.
//!
//! This crate is compiled into the filter, where a panic traps the Wasm VM: it must not panic.
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::string_slice,
        clippy::cast_possible_truncation,
        clippy::unreachable,
        reason = "test code: a panic fails the test (the no-panic policy is in the workspace Cargo.toml)"
    )
)]

pub mod admin;
pub mod quota_sync;
pub mod tenancy;

use serde::{Deserialize, Serialize};

/// Format of the encoding; bump on any incompatible change.
pub const FORMAT: u16 = 1;

/// Largest encoded snapshot a reader accepts (about 25,000 endpoints). Bounds the memory a
/// snapshot can take in every worker's VM.
pub const MAX_ENCODED_BYTES: usize = 1 << 20;

/// HTTP path the picker serves the encoded snapshot on.
pub const PATH: &str = "/snapshot";

/// Media type of the encoded snapshot.
pub const CONTENT_TYPE: &str = "application/x-sluice-snapshot";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `FORMAT` of the writer.
    pub format: u16,
    /// Grows with every snapshot the picker publishes. Readers re-decode only when it changes.
    pub version: u64,
    /// Unix time, in milliseconds, when this snapshot was assembled.
    pub taken_at_unix_ms: u64,
    /// How often the picker scrapes, so readers can tell a stale snapshot.
    pub scrape_interval_ms: u32,
    pub pools: Vec<Pool>,
}

/// The replicas that serve one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Matches the filter's `models.<model>.pool`.
    pub name: String,
    /// The base model the replicas serve.
    pub model: String,
    pub endpoints: Vec<Endpoint>,
}

/// One model-server replica and its load at the last successful scrape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ip:port`, as Envoy's `override_host` load balancer expects it.
    pub address: String,
    /// False after repeated failed scrapes, until it recovers.
    pub healthy: bool,
    /// Requests queued, not yet running.
    pub waiting: u32,
    pub running: u32,
    /// KV-cache use, 0.0 to 1.0.
    pub kv_cache_usage: f32,
    /// Tokens per KV-cache block; 0 when the server does not say.
    pub block_size: u32,
    pub lora: Lora,
    /// How old the metrics were when the snapshot was assembled, in milliseconds.
    pub metrics_age_ms: u32,
}

/// LoRA adapter state (vLLM's `lora_requests_info`); empty for servers without adapters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lora {
    /// Adapters that can be loaded at once; 0 when unknown.
    pub max: u32,
    pub running: Vec<String>,
    pub waiting: Vec<String>,
}

/// Why bytes are not a snapshot this reader can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    TooLarge(usize),
    /// Written in another `FORMAT`.
    Format(u16),
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(size) => {
                write!(
                    f,
                    "snapshot of {size} bytes is over the {MAX_ENCODED_BYTES}-byte limit"
                )
            }
            Self::Format(format) => write!(f, "snapshot format {format}, expected {FORMAT}"),
            Self::Malformed(why) => write!(f, "malformed snapshot: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Snapshot {
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENCODED_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        // The format comes first, so it can be checked before the rest is trusted.
        let (format, _) = postcard::take_from_bytes::<u16>(bytes)
            .map_err(|err| DecodeError::Malformed(err.to_string()))?;
        if format != FORMAT {
            return Err(DecodeError::Format(format));
        }
        postcard::from_bytes(bytes).map_err(|err| DecodeError::Malformed(err.to_string()))
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|pool| pool.name == name)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{DecodeError, Endpoint, FORMAT, Lora, MAX_ENCODED_BYTES, Pool, Snapshot};

    fn sample() -> Snapshot {
        Snapshot {
            format: FORMAT,
            version: 42,
            taken_at_unix_ms: 1_795_000_000_000,
            scrape_interval_ms: 50,
            pools: vec![Pool {
                name: "llama_8b".into(),
                model: "meta-llama/Llama-3.1-8B-Instruct".into(),
                endpoints: vec![Endpoint {
                    address: "10.0.0.7:8000".into(),
                    healthy: true,
                    waiting: 3,
                    running: 12,
                    kv_cache_usage: 0.62,
                    block_size: 16,
                    lora: Lora {
                        max: 2,
                        running: vec!["sql-lora".into()],
                        waiting: vec![],
                    },
                    metrics_age_ms: 20,
                }],
            }],
        }
    }

    #[test]
    fn round_trips_compactly() {
        let snapshot = sample();
        let bytes = snapshot.encode().unwrap();
        assert!(bytes.len() < 120, "{} bytes", bytes.len());
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snapshot);
        assert_eq!(snapshot.pool("llama_8b").unwrap().endpoints.len(), 1);
        assert!(snapshot.pool("nope").is_none());
    }

    #[test]
    fn other_formats_and_garbage_are_errors_not_panics() {
        let mut other = sample();
        other.format = FORMAT + 1;
        let bytes = other.encode().unwrap();
        assert_eq!(
            Snapshot::decode(&bytes),
            Err(DecodeError::Format(FORMAT + 1))
        );

        let good = sample().encode().unwrap();
        for cut in 0..good.len() {
            assert!(
                Snapshot::decode(&good[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
        assert!(Snapshot::decode(&[0xff; 64]).is_err());
        assert!(matches!(
            Snapshot::decode(&vec![0; MAX_ENCODED_BYTES + 1]),
            Err(DecodeError::TooLarge(_))
        ));
    }
}
