//! Per-minute rate limits, counted for real: a token bucket for requests and one for tokens,
//! each holding up to a minute's allowance and refilling continuously, the way both providers
//! describe their limits. A request is admitted only if both buckets can pay for it; the tokens
//! it pays are its prompt plus the output the simulator will generate for it (known up front).
//!
//! Time is tokio's clock, so tests drive it with paused time.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);
const WINDOW_MICROS: u128 = WINDOW.as_micros();

/// A bucket's level is kept in units of 1/60,000,000 of a token (a token per microsecond of the
/// window), so that refilling `limit` per window is exact integer arithmetic.
#[derive(Debug)]
struct Bucket {
    limit: u32,
    scaled_level: u128,
    updated: Instant,
}

impl Bucket {
    fn full(limit: u32, now: Instant) -> Self {
        Self {
            limit,
            scaled_level: scaled(limit),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_micros();
        self.scaled_level = self
            .scaled_level
            .saturating_add(elapsed.saturating_mul(u128::from(self.limit)))
            .min(scaled(self.limit));
        self.updated = now;
    }

    /// How long until `amount` can be paid; None if it can be now. An amount above the limit
    /// can never be paid: a whole window is the answer.
    fn wait_for(&self, amount: u32) -> Option<Duration> {
        let needed = scaled(amount);
        if self.scaled_level >= needed {
            None
        } else if amount > self.limit {
            Some(WINDOW)
        } else {
            Some(self.time_to_refill(needed - self.scaled_level))
        }
    }

    fn pay(&mut self, amount: u32) {
        self.scaled_level = self.scaled_level.saturating_sub(scaled(amount));
    }

    fn give_back(&mut self, amount: u32) {
        self.scaled_level = self
            .scaled_level
            .saturating_add(scaled(amount))
            .min(scaled(self.limit));
    }

    fn time_to_refill(&self, scaled_amount: u128) -> Duration {
        let micros = scaled_amount.div_ceil(u128::from(self.limit.max(1)));
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn gauge(&self) -> Gauge {
        Gauge {
            limit: self.limit,
            remaining: u32::try_from(self.scaled_level / WINDOW_MICROS).unwrap_or(u32::MAX),
            until_full: self.time_to_refill(scaled(self.limit).saturating_sub(self.scaled_level)),
        }
    }
}

fn scaled(tokens: u32) -> u128 {
    u128::from(tokens) * WINDOW_MICROS
}

/// One limit as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauge {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub until_full: Duration,
}

/// Both limits, now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub requests: Gauge,
    pub tokens: Gauge,
}

/// Which limit turned a request away, and when it could pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Requests { retry_after: Duration },
    Tokens { retry_after: Duration, asked: u32 },
}

/// What an admitted request paid, so that a request that fails before it runs is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Charge {
    tokens: u32,
}

#[derive(Debug)]
pub struct RateLimits {
    buckets: Mutex<(Bucket, Bucket)>,
}

impl RateLimits {
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32) -> Self {
        let now = Instant::now();
        Self {
            buckets: Mutex::new((
                Bucket::full(requests_per_minute, now),
                Bucket::full(tokens_per_minute, now),
            )),
        }
    }

    /// Pays one request and `tokens` tokens, or says which limit is reached (paying nothing).
    pub fn admit(&self, tokens: u32) -> Result<Charge, Limited> {
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (requests, token_bucket) = &mut *guard;
        let now = Instant::now();
        requests.refill(now);
        token_bucket.refill(now);
        if let Some(retry_after) = requests.wait_for(1) {
            return Err(Limited::Requests { retry_after });
        }
        if let Some(retry_after) = token_bucket.wait_for(tokens) {
            return Err(Limited::Tokens {
                retry_after,
                asked: tokens,
            });
        }
        requests.pay(1);
        token_bucket.pay(tokens);
        Ok(Charge { tokens })
    }

    /// Gives back what `charge` paid (the request failed before it was served).
    pub fn refund(&self, charge: Charge) {
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (requests, tokens) = &mut *guard;
        requests.give_back(1);
        tokens.give_back(charge.tokens);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (requests, tokens) = &mut *guard;
        let now = Instant::now();
        requests.refill(now);
        tokens.refill(now);
        Snapshot {
            requests: requests.gauge(),
            tokens: tokens.gauge(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_run_out_and_refill_over_the_minute() {
        let limits = RateLimits::new(2, 1000);
        let _ = limits.admit(10).unwrap();
        let _ = limits.admit(10).unwrap();
        let snapshot = limits.snapshot();
        assert_eq!(snapshot.requests.remaining, 0);
        assert_eq!(snapshot.requests.until_full, Duration::from_secs(60));
        assert_eq!(snapshot.tokens.remaining, 980);
        // Two per minute: one comes back every 30 s.
        assert_eq!(
            limits.admit(10),
            Err(Limited::Requests {
                retry_after: Duration::from_secs(30)
            })
        );

        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            limits.admit(10),
            Err(Limited::Requests {
                retry_after: Duration::from_secs(10)
            })
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        let _ = limits.admit(10).unwrap();
        assert_eq!(limits.snapshot().requests.remaining, 0);

        tokio::time::advance(Duration::from_secs(600)).await;
        let full = limits.snapshot();
        assert_eq!((full.requests.remaining, full.tokens.remaining), (2, 1000));
        assert_eq!(full.tokens.until_full, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_limit_independently_and_refunds_give_back() {
        let limits = RateLimits::new(100, 600);
        let charge = limits.admit(500).unwrap();
        assert_eq!(
            limits.admit(200),
            // 100 more tokens at 10 per second.
            Err(Limited::Tokens {
                retry_after: Duration::from_secs(10),
                asked: 200
            })
        );
        assert_eq!(
            limits.snapshot().requests.remaining,
            99,
            "a refused request pays nothing"
        );
        limits.refund(charge);
        assert_eq!(limits.snapshot().tokens.remaining, 600);
        assert_eq!(limits.snapshot().requests.remaining, 100);
        assert_eq!(
            limits.admit(601),
            Err(Limited::Tokens {
                retry_after: WINDOW,
                asked: 601
            }),
            "more than a minute's tokens never pass"
        );
    }
}
