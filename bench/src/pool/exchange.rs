//! One request of an open-loop step: what the driver sends and when (`Planned`), and what came
//! back (`Outcome`), timed from the moment it was due.

use std::time::Duration;

/// One request of a step: when to send it (from the step's start) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub at: Duration,
    /// The chat completion request body (JSON, streaming with usage).
    pub body: String,
    pub max_tokens: u32,
    /// Headers beside `content-type` and the benchmark's key (a tenant header, say).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Refused by the gateway under load: 429, or 503 (flow control may answer either).
    Rejected {
        status: u16,
        message: String,
    },
    /// Connection error, another non-200 status or a stream that ended early.
    Failed(String),
    /// Still running when the step's drain time ran out; it was cancelled.
    Unfinished,
}

impl Status {
    /// Whether an HTTP status is a gateway's refusal under load.
    pub fn is_rejection(status: u16) -> bool {
        matches!(status, 429 | 503)
    }

    /// Failed or rejected: no answer.
    pub fn is_error(&self) -> bool {
        matches!(self, Status::Failed(_) | Status::Rejected { .. })
    }

    /// What went wrong, for a warning.
    pub fn error(&self) -> Option<&str> {
        match self {
            Status::Failed(e) => Some(e),
            Status::Rejected { message, .. } => Some(message),
            Status::Ok | Status::Unfinished => None,
        }
    }
}

/// One request, timed from its scheduled send time (open loop: a late send counts against the
/// request, as a real client's would).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// When it was due, from the step's start.
    pub scheduled: Duration,
    /// How late the driver actually sent it.
    pub lateness: Duration,
    /// Time to the first content token.
    pub ttft: Option<Duration>,
    /// Time until the request ended (finished, failed or was cancelled).
    pub elapsed: Duration,
    /// Output tokens: the usage chunk's count, or the content chunks seen if there was none.
    pub output_tokens: u64,
    /// When each content chunk arrived, from the time the request was due.
    pub token_times: Vec<Duration>,
    pub status: Status,
}

impl Outcome {
    /// Its time to first token, in seconds, for latency figures: an unfinished request counts
    /// the time it had waited so far (censored, never dropped), a failed or rejected one none.
    pub fn ttft_seconds(&self) -> Option<f64> {
        match self.status {
            Status::Ok => self.ttft.map(|d| d.as_secs_f64()),
            Status::Unfinished => Some(self.ttft.unwrap_or(self.elapsed).as_secs_f64()),
            Status::Failed(_) | Status::Rejected { .. } => None,
        }
    }

    /// Its end-to-end time, in seconds, unless it failed.
    pub fn e2e_seconds(&self) -> Option<f64> {
        (!self.status.is_error()).then_some(self.elapsed.as_secs_f64())
    }
}

impl Outcome {
    /// When the first token came, from the step's start.
    pub fn first_token_at(&self) -> Option<Duration> {
        self.ttft.map(|t| self.scheduled + t)
    }

    /// Content chunks that arrived in `[from, to)` of the step.
    pub fn tokens_between(&self, from: Duration, to: Duration) -> u64 {
        self.token_times
            .iter()
            .map(|t| self.scheduled + *t)
            .filter(|t| (from..to).contains(t))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_placed_on_the_step_clock() {
        let ms = Duration::from_millis;
        let outcome = Outcome {
            scheduled: ms(1000),
            lateness: ms(0),
            ttft: Some(ms(100)),
            elapsed: ms(400),
            output_tokens: 4,
            token_times: vec![ms(100), ms(200), ms(300), ms(400)],
            status: Status::Ok,
        };
        assert_eq!(outcome.first_token_at(), Some(ms(1100)));
        assert_eq!(outcome.tokens_between(ms(0), ms(10_000)), 4);
        assert_eq!(outcome.tokens_between(ms(1200), ms(1400)), 2);
        assert_eq!(outcome.tokens_between(ms(0), ms(1100)), 0);
    }

    #[test]
    fn rejections_are_429_and_503() {
        assert!(Status::is_rejection(429) && Status::is_rejection(503));
        assert!(!Status::is_rejection(500) && !Status::is_rejection(200));
        let rejected = Status::Rejected {
            status: 429,
            message: "status 429".into(),
        };
        assert!(rejected.is_error() && Status::Failed("x".into()).is_error());
        assert!(!Status::Unfinished.is_error());
        assert_eq!(rejected.error(), Some("status 429"));
    }
}
