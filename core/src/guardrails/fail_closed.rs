//! Applying a response guard's decision through the host, failing closed.
//!
//! A redaction or a block protects nothing unless the host takes the new bytes: if a write
//! fails, the upstream's bytes go to the client as they were. So when a guard's write (or the
//! read before it) fails, the response is ended instead: with a 5xx local reply in the API's
//! format while its headers are still held (a JSON response), or by resetting the stream once
//! they have left (a stream); the other is tried when the first fails. The host carries the
//! write out through `ResponseHost` (`exchange::Write::apply`) and reports the `Outcome` to the
//! exchange, which logs it (rule ids, never the text) and counts it
//! (`sluice_guardrail_block_failures_total`).
//!
//! In Envoy a body or header write on a live response does not fail in practice, so these paths
//! are exercised by the unit tests below, against a host whose calls fail on demand.

/// A host call did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError;

/// The host calls a guarded response needs; each may fail.
pub trait ResponseHost {
    /// Replaces the body bytes Envoy holds for this callback (the whole body when held).
    fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError>;
    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Ends the response with a local reply. With the response headers still held the client
    /// gets it; once they have left, Envoy resets the stream instead.
    fn local_reply(&mut self, status: u16, body: &str) -> Result<(), HostError>;
    /// Resets the response stream.
    fn reset(&mut self) -> Result<(), HostError>;
}

/// A host call of the guard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading the response body to guard it.
    ReadBody,
    /// Writing the guarded body.
    WriteBody,
    /// Setting a response header (`:status`, `content-type`, `content-length`).
    Header(&'static str),
}

impl Step {
    pub fn describe(self) -> String {
        match self {
            Self::ReadBody => "reading the response body".to_owned(),
            Self::WriteBody => "writing the guarded response body".to_owned(),
            Self::Header(name) => format!("setting the response header {name}"),
        }
    }
}

/// How a failed response was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    LocalReply,
    Reset,
}

/// What became of a guarded response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every call took.
    Applied,
    /// `failed` did not take; the response was ended `by` instead.
    Closed { failed: Step, by: Closure },
    /// `failed` did not take and the response could not be ended either.
    Open { failed: Step },
}

impl Outcome {
    /// Whether a call failed (to log and count).
    pub fn failed(self) -> bool {
        self != Self::Applied
    }

    /// Whether the filter must stop the response here (nothing more of it goes on).
    pub fn stops(self) -> bool {
        matches!(self, Self::Closed { .. })
    }

    /// A log line: what failed and what was done, naming `what` (rule ids, never text).
    pub fn describe(self, what: &str) -> String {
        match self {
            Self::Applied => format!("guardrails: {what} applied"),
            Self::Closed { failed, by } => format!(
                "guardrails: {} failed for {what}; the response was ended with {}",
                failed.describe(),
                match by {
                    Closure::LocalReply => "a 500 local reply",
                    Closure::Reset => "a stream reset",
                }
            ),
            Self::Open { failed } => format!(
                "guardrails: {} failed for {what} and the response could not be ended: it may \
                 have reached the client unguarded",
                failed.describe()
            ),
        }
    }
}

/// The reply that ends a response whose guard could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub status: u16,
    pub body: String,
}

/// Ends the response: `first`, else the other closure.
pub fn close<H: ResponseHost>(
    host: &mut H,
    failed: Step,
    first: Closure,
    fallback: &Fallback,
) -> Outcome {
    let mut try_close = |closure| match closure {
        Closure::LocalReply => host.local_reply(fallback.status, &fallback.body),
        Closure::Reset => host.reset(),
    };
    let second = match first {
        Closure::LocalReply => Closure::Reset,
        Closure::Reset => Closure::LocalReply,
    };
    for by in [first, second] {
        if try_close(by).is_ok() {
            return Outcome::Closed { failed, by };
        }
    }
    Outcome::Open { failed }
}

/// Replaces a held JSON response by `body` (a redacted body, or with `status` a block's error
/// in the API's format): body, then `content-length`, then `:status` and `content-type`.
pub fn replace_held<H: ResponseHost>(
    host: &mut H,
    body: &[u8],
    status: Option<u16>,
    fallback: &Fallback,
) -> Outcome {
    let failed = |host: &mut H, step| close(host, step, Closure::LocalReply, fallback);
    if host.replace_body(body).is_err() {
        return failed(host, Step::WriteBody);
    }
    let length = body.len().to_string();
    let mut headers: Vec<(&'static str, String)> = vec![("content-length", length)];
    if let Some(status) = status {
        headers.push((":status", status.to_string()));
        headers.push(("content-type", "application/json".to_owned()));
    }
    for (name, value) in headers {
        if host.set_header(name, &value).is_err() {
            return failed(host, Step::Header(name));
        }
    }
    Outcome::Applied
}

/// Replaces a chunk of a stream whose headers have left.
pub fn replace_chunk<H: ResponseHost>(host: &mut H, bytes: &[u8], fallback: &Fallback) -> Outcome {
    if host.replace_body(bytes).is_err() {
        return close(host, Step::WriteBody, Closure::Reset, fallback);
    }
    Outcome::Applied
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// A host recording its calls; calls named in `fail` fail.
    #[derive(Default)]
    struct FakeHost {
        fail: Vec<&'static str>,
        calls: Vec<String>,
        body: Vec<u8>,
    }

    impl FakeHost {
        fn failing(fail: &[&'static str]) -> Self {
            Self {
                fail: fail.to_vec(),
                body: b"upstream: mail bob@example.com".to_vec(),
                ..Self::default()
            }
        }

        fn call(&mut self, name: &'static str, detail: String) -> Result<(), HostError> {
            self.calls
                .push(format!("{name} {detail}").trim().to_owned());
            if self.fail.contains(&name) {
                Err(HostError)
            } else {
                Ok(())
            }
        }
    }

    impl ResponseHost for FakeHost {
        fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError> {
            self.call("body", String::new())?;
            self.body = body.to_vec();
            Ok(())
        }
        fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
            let fail_as = if name == ":status" {
                "status"
            } else {
                "header"
            };
            self.call(fail_as, format!("{name}={value}"))
        }
        fn local_reply(&mut self, status: u16, _body: &str) -> Result<(), HostError> {
            self.call("reply", status.to_string())
        }
        fn reset(&mut self) -> Result<(), HostError> {
            self.call("reset", String::new())
        }
    }

    fn fallback() -> Fallback {
        Fallback {
            status: 500,
            body: "{}".into(),
        }
    }

    #[test]
    fn a_held_response_is_replaced_when_every_write_takes() {
        let mut host = FakeHost::failing(&[]);
        let outcome = replace_held(&mut host, b"{\"error\":1}", Some(400), &fallback());
        assert_eq!(outcome, Outcome::Applied);
        assert!(!outcome.failed());
        assert_eq!(
            host.calls,
            [
                "body",
                "header content-length=11",
                "status :status=400",
                "header content-type=application/json"
            ]
        );
        assert_eq!(host.body, b"{\"error\":1}");
    }

    #[test]
    fn a_failed_write_of_a_held_response_ends_it_with_a_local_reply_else_a_reset() {
        for (fail, failed) in [
            (&["body"][..], Step::WriteBody),
            (&["status"][..], Step::Header(":status")),
        ] {
            let mut host = FakeHost::failing(fail);
            let outcome = replace_held(&mut host, b"{}", Some(400), &fallback());
            assert_eq!(
                outcome,
                Outcome::Closed {
                    failed,
                    by: Closure::LocalReply
                }
            );
            assert!(outcome.failed() && outcome.stops());
            assert_eq!(host.calls.last().unwrap(), "reply 500");
        }
        let mut host = FakeHost::failing(&["body", "reply"]);
        let outcome = replace_held(&mut host, b"{}", None, &fallback());
        assert_eq!(
            outcome,
            Outcome::Closed {
                failed: Step::WriteBody,
                by: Closure::Reset
            }
        );
        // Nothing works: said as such (the exchange logs it as an error).
        let mut host = FakeHost::failing(&["body", "reply", "reset"]);
        let outcome = replace_held(&mut host, b"{}", None, &fallback());
        assert_eq!(
            outcome,
            Outcome::Open {
                failed: Step::WriteBody
            }
        );
        assert!(outcome.failed() && !outcome.stops());
        assert!(outcome.describe("rule 'email'").contains("unguarded"));
    }

    #[test]
    fn a_failed_stream_write_resets_the_stream() {
        let mut host = FakeHost::failing(&["body"]);
        let outcome = replace_chunk(&mut host, b"data: {}\n\n", &fallback());
        assert_eq!(
            outcome,
            Outcome::Closed {
                failed: Step::WriteBody,
                by: Closure::Reset
            }
        );
        assert_eq!(host.calls, ["body", "reset"]);
        let line = outcome.describe("a redaction (rules: email)");
        assert_eq!(
            line,
            "guardrails: writing the guarded response body failed for a redaction (rules: \
             email); the response was ended with a stream reset"
        );
        let mut host = FakeHost::failing(&[]);
        assert_eq!(
            replace_chunk(&mut host, b"x", &fallback()),
            Outcome::Applied
        );
    }
}
