//! The preview filter's `filter_config`: JSON, unknown fields refused, validated once.

use std::time::Duration;

use serde::Deserialize;

use super::probe::AttemptProbe;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    panic_on_path: Option<String>,
    #[serde(default)]
    override_host_header: Option<String>,
    #[serde(default)]
    resume_from_scheduler: bool,
    #[serde(default)]
    probe: Option<WireProbe>,
    #[serde(default)]
    replace_in_body: Option<WireReplace>,
    #[serde(default)]
    attempt_probe: Option<AttemptProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReplace {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireProbe {
    cluster: String,
    path: String,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_interval_ms() -> u64 {
    1000
}

fn default_timeout_ms() -> u64 {
    1000
}

/// The validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewConfig {
    /// TEST ONLY. A request to exactly this `:path` panics inside the request-headers callback,
    /// to prove the host answers it with a 500 and Envoy keeps serving.
    pub panic_on_path: Option<String>,
    /// TEST ONLY. A request header (removed before the request goes on) naming the upstream
    /// host, `ip:port`, the request must go to (`set_upstream_override_host`, not strict).
    pub override_host_header: Option<String>,
    /// TEST ONLY. Finish the request from a stream-scheduler event instead of the body callback
    /// (the request is held until then, and resumed with `continue_decoding`).
    pub resume_from_scheduler: bool,
    /// TEST ONLY. A periodic GET from the configuration to a cluster, counted by status in
    /// `sluice_native_probe_responses` (label `result`), the last status in the gauge
    /// `sluice_native_probe_last_status`.
    pub probe: Option<Probe>,
    /// TEST ONLY. Every occurrence of the first string in a request body is replaced by the
    /// second before the request goes on (the way a redaction rewrites a body).
    pub replace_in_body: Option<(String, String)>,
    /// TEST ONLY. Replaces the whole filter with the attempt probe (`probe.rs`).
    pub attempt_probe: Option<AttemptProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub cluster: String,
    pub path: String,
    pub interval: Duration,
    pub timeout_ms: u64,
}

impl PreviewConfig {
    /// Parses and validates `filter_config`; empty means every default. Errors name the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let wire: Wire = if bytes.iter().all(u8::is_ascii_whitespace) {
            Wire::default()
        } else {
            let mut json = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(&mut json).map_err(|error| {
                let path = error.path().to_string();
                if path == "." {
                    error.inner().to_string()
                } else {
                    format!("{path}: {}", error.inner())
                }
            })?
        };
        if let Some(path) = &wire.panic_on_path {
            if !path.starts_with('/') {
                return Err(format!("panic_on_path: {path:?} must start with '/'"));
            }
        }
        if let Some(header) = &wire.override_host_header {
            if !is_header_name(header) {
                return Err(format!(
                    "override_host_header: {header:?} is not a lowercase header name"
                ));
            }
        }
        let probe = wire.probe.map(Probe::validate).transpose()?;
        let replace_in_body = match wire.replace_in_body {
            Some(replace) if replace.from.is_empty() => {
                return Err("replace_in_body.from: must not be empty".into());
            }
            Some(replace) => Some((replace.from, replace.to)),
            None => None,
        };
        Ok(Self {
            panic_on_path: wire.panic_on_path,
            override_host_header: wire.override_host_header,
            resume_from_scheduler: wire.resume_from_scheduler,
            probe,
            replace_in_body,
            attempt_probe: wire.attempt_probe,
        })
    }
}

impl Probe {
    fn validate(wire: WireProbe) -> Result<Self, String> {
        if wire.cluster.is_empty() {
            return Err("probe.cluster: must name an Envoy cluster".into());
        }
        if !wire.path.starts_with('/') {
            return Err(format!("probe.path: {:?} must start with '/'", wire.path));
        }
        if !(10..=3_600_000).contains(&wire.interval_ms) {
            return Err(format!(
                "probe.interval_ms: {} is outside 10..=3600000",
                wire.interval_ms
            ));
        }
        if !(1..=60_000).contains(&wire.timeout_ms) {
            return Err(format!(
                "probe.timeout_ms: {} is outside 1..=60000",
                wire.timeout_ms
            ));
        }
        Ok(Self {
            cluster: wire.cluster,
            path: wire.path,
            interval: Duration::from_millis(wire.interval_ms),
            timeout_ms: wire.timeout_ms,
        })
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        assert_eq!(PreviewConfig::parse(b"").unwrap(), PreviewConfig::default());
        assert_eq!(
            PreviewConfig::parse(b" {} ").unwrap(),
            PreviewConfig::default()
        );
    }

    #[test]
    fn every_field_parses() {
        let config = PreviewConfig::parse(
            br#"{"panic_on_path": "/__panic", "override_host_header": "x-test-override-host",
                 "resume_from_scheduler": true,
                 "probe": {"cluster": "replicas", "path": "/health", "interval_ms": 50},
                 "replace_in_body": {"from": "secret", "to": "[redacted]"}}"#,
        )
        .unwrap();
        assert_eq!(config.panic_on_path.as_deref(), Some("/__panic"));
        assert_eq!(
            config.override_host_header.as_deref(),
            Some("x-test-override-host")
        );
        assert!(config.resume_from_scheduler);
        let probe = config.probe.unwrap();
        assert_eq!(probe.interval, Duration::from_millis(50));
        assert_eq!(probe.timeout_ms, 1000);
        assert_eq!(
            config.replace_in_body,
            Some(("secret".to_owned(), "[redacted]".to_owned()))
        );
    }

    #[test]
    fn the_attempt_probe_parses() {
        let config = PreviewConfig::parse(
            br#"{"attempt_probe": {"label": "up", "rewrite_path": "/x", "local_reply_on_attempt": 1}}"#,
        )
        .unwrap();
        let probe = config.attempt_probe.unwrap();
        assert_eq!(probe.label, "up");
        assert_eq!(probe.rewrite_path.as_deref(), Some("/x"));
        assert_eq!(probe.local_reply_on_attempt, Some(1));
        let error =
            PreviewConfig::parse(br#"{"attempt_probe": {"label": "up", "x": 1}}"#).unwrap_err();
        assert!(error.contains("attempt_probe"), "{error}");
    }

    #[test]
    fn errors_name_the_field() {
        for (json, field) in [
            (r#"{"panic_on_pat": "/x"}"#, "panic_on_pat"),
            (r#"{"panic_on_path": "x"}"#, "panic_on_path"),
            (
                r#"{"override_host_header": "X-Host"}"#,
                "override_host_header",
            ),
            (
                r#"{"probe": {"cluster": "c", "path": "/", "interval_ms": "1"}}"#,
                "probe.interval_ms",
            ),
            (
                r#"{"probe": {"cluster": "c", "path": "/", "interval_ms": 1}}"#,
                "probe.interval_ms",
            ),
            (
                r#"{"probe": {"cluster": "", "path": "/"}}"#,
                "probe.cluster",
            ),
            (
                r#"{"probe": {"cluster": "c", "path": "health"}}"#,
                "probe.path",
            ),
        ] {
            let error = PreviewConfig::parse(json.as_bytes()).unwrap_err();
            assert!(error.contains(field), "{json}: {error}");
        }
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(PreviewConfig::parse(b"{").is_err());
        assert!(PreviewConfig::parse(&[0xff]).is_err());
    }
}
