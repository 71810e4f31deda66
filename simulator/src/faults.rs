//! Faults injected at run time (`PUT /admin/faults`), so that a gateway's failover can be tested
//! against a real process: error statuses with `retry-after`, connections reset before the first
//! byte, a slow first byte, streams cut midway, and a dead host.
//!
//! A fault applies to the API paths only (never to /admin, /health or /metrics), to the next
//! `count` requests or until it is cleared. The switch is shared by the HTTP layer, which asks
//! it once per request what to do, and by the listener, which refuses connections while the host
//! plays dead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// A fault as `PUT /admin/faults` takes it and `GET /admin/faults` shows it (`count` then says
/// how many requests it still applies to).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Answer with this status (400 to 599; 429, 500, 503 and 529 are the usual ones) and an
    /// error body in the API's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `status`: send `retry-after` (and, OpenAI-shaped, `retry-after-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The next `count` requests only; absent: until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Close the connection without a response (a TCP reset before the first byte).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    /// Hold the response (status line included) this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_delay_ms: Option<u64>,
    /// Streams fail after this many tokens: the connection closes mid-response. A JSON response
    /// is cut after half its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after_tokens: Option<u32>,
    /// Play a dead host: every connection is closed at once (open ones too), except those whose
    /// first request is for /admin, /health or /metrics. Lasts until cleared.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dead: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What a fault does to the response of a request it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The response is only delayed (`first_byte_delay_ms` alone).
    None,
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    Reset,
    CutAfterTokens(u32),
    Dead,
}

/// The fault for one request, as the HTTP layer applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub effect: Effect,
    pub first_byte_delay: Option<Duration>,
}

impl FaultSpec {
    /// Checks that the fields make one coherent fault; the error names the offending field.
    pub fn validate(&self) -> Result<Fault, String> {
        let effects = [
            self.status.is_some(),
            self.reset,
            self.cut_after_tokens.is_some(),
            self.dead,
        ];
        if effects.iter().filter(|&&set| set).count() > 1 {
            return Err(
                "status, reset, cut_after_tokens and dead exclude one another: give one".into(),
            );
        }
        if self.retry_after_s.is_some() && self.status.is_none() {
            return Err("retry_after_s: only with status".into());
        }
        if self.count == Some(0) {
            return Err("count: must be at least 1 (absent: until cleared)".into());
        }
        if self.dead && (self.count.is_some() || self.first_byte_delay_ms.is_some()) {
            return Err("dead: lasts until cleared and takes no count or delay".into());
        }
        let effect = if let Some(code) = self.status {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|status| status.is_client_error() || status.is_server_error())
                .ok_or_else(|| format!("status: {code} is not an error status (400 to 599)"))?;
            Effect::Status {
                status,
                retry_after: self.retry_after_s.map(Duration::from_secs),
            }
        } else if self.reset {
            Effect::Reset
        } else if let Some(tokens) = self.cut_after_tokens {
            Effect::CutAfterTokens(tokens)
        } else if self.dead {
            Effect::Dead
        } else if self.first_byte_delay_ms.is_some() {
            Effect::None
        } else {
            return Err("no fault given (DELETE /admin/faults clears the fault)".into());
        };
        Ok(Fault {
            effect,
            first_byte_delay: self.first_byte_delay_ms.map(Duration::from_millis),
        })
    }
}

#[derive(Debug)]
struct Armed {
    spec: FaultSpec,
    fault: Fault,
    /// Requests it still applies to; None: until cleared.
    remaining: Option<u64>,
}

/// The current fault, shared by every connection.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    armed: Mutex<Option<Armed>>,
    /// Mirrors `armed` being a dead fault, for the listener's check on every connection.
    dead: AtomicBool,
}

impl FaultSwitch {
    /// Replaces the current fault. Returns it as `current` would show it.
    pub fn set(&self, spec: FaultSpec) -> Result<FaultSpec, String> {
        let fault = spec.validate()?;
        let mut armed = self.lock();
        self.dead
            .store(fault.effect == Effect::Dead, Ordering::SeqCst);
        *armed = Some(Armed {
            remaining: spec.count,
            spec: spec.clone(),
            fault,
        });
        Ok(spec)
    }

    pub fn clear(&self) {
        let mut armed = self.lock();
        self.dead.store(false, Ordering::SeqCst);
        *armed = None;
    }

    /// The current fault, `count` being how many requests it still applies to.
    pub fn current(&self) -> Option<FaultSpec> {
        self.lock().as_ref().map(|armed| FaultSpec {
            count: armed.remaining,
            ..armed.spec.clone()
        })
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// The fault for the request that just arrived, if any, counting it against `count`: the
    /// fault is cleared once it has applied to its last request.
    pub fn next_request(&self) -> Option<Fault> {
        let mut guard = self.lock();
        let armed = guard.as_mut()?;
        let fault = armed.fault;
        if let Some(remaining) = armed.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *guard = None;
            }
        }
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parses_and_validates_each_kind() {
        assert_eq!(
            spec(r#"{"status": 429, "retry_after_s": 7}"#).validate(),
            Ok(Fault {
                effect: Effect::Status {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    retry_after: Some(Duration::from_secs(7)),
                },
                first_byte_delay: None,
            })
        );
        assert_eq!(
            spec(r#"{"status": 529}"#).validate().unwrap().effect,
            Effect::Status {
                status: StatusCode::from_u16(529).unwrap(),
                retry_after: None
            }
        );
        assert_eq!(
            spec(r#"{"reset": true}"#).validate().unwrap().effect,
            Effect::Reset
        );
        assert_eq!(
            spec(r#"{"cut_after_tokens": 2}"#)
                .validate()
                .unwrap()
                .effect,
            Effect::CutAfterTokens(2)
        );
        assert_eq!(
            spec(r#"{"dead": true}"#).validate().unwrap().effect,
            Effect::Dead
        );
        let slow = spec(r#"{"first_byte_delay_ms": 250}"#).validate().unwrap();
        assert_eq!(
            (slow.effect, slow.first_byte_delay),
            (Effect::None, Some(Duration::from_millis(250)))
        );
        let slow_error = spec(r#"{"status": 503, "first_byte_delay_ms": 5}"#)
            .validate()
            .unwrap();
        assert_eq!(slow_error.first_byte_delay, Some(Duration::from_millis(5)));
    }

    #[test]
    fn rejects_incoherent_faults_naming_the_field() {
        for (json, field) in [
            (r#"{"status": 429, "reset": true}"#, "exclude"),
            (r#"{"retry_after_s": 3}"#, "retry_after_s"),
            (r#"{"reset": true, "count": 0}"#, "count"),
            (r#"{"dead": true, "count": 2}"#, "dead"),
            (r#"{"status": 200}"#, "status"),
            (r#"{"status": 1000}"#, "status"),
            (r#"{}"#, "no fault"),
        ] {
            let error = spec(json).validate().unwrap_err();
            assert!(error.contains(field), "{json}: {error}");
        }
        assert!(serde_json::from_str::<FaultSpec>(r#"{"stauts": 500}"#).is_err());
    }

    #[test]
    fn a_counted_fault_applies_to_that_many_requests_then_clears() {
        let switch = FaultSwitch::default();
        switch.set(spec(r#"{"status": 500, "count": 2}"#)).unwrap();
        assert_eq!(switch.current().unwrap().count, Some(2));
        assert!(switch.next_request().is_some());
        assert_eq!(switch.current().unwrap().count, Some(1));
        assert!(switch.next_request().is_some());
        assert_eq!(switch.current(), None);
        assert_eq!(switch.next_request(), None);
    }

    #[test]
    fn an_uncounted_fault_lasts_until_cleared_and_dead_is_mirrored() {
        let switch = FaultSwitch::default();
        assert!(
            switch
                .set(spec(r#"{"reset": true, "status": 500}"#))
                .is_err()
        );
        assert_eq!(switch.current(), None, "a rejected fault changes nothing");
        switch.set(spec(r#"{"dead": true}"#)).unwrap();
        assert!(switch.is_dead());
        for _ in 0..3 {
            assert_eq!(switch.next_request().unwrap().effect, Effect::Dead);
        }
        switch.set(spec(r#"{"reset": true}"#)).unwrap();
        assert!(!switch.is_dead(), "a new fault replaces the old one");
        switch.clear();
        assert_eq!(switch.next_request(), None);
        assert_eq!(
            serde_json::to_value(spec(r#"{"reset": true, "count": 1}"#)).unwrap(),
            serde_json::json!({ "reset": true, "count": 1 }),
            "unset fields are left out"
        );
    }
}
