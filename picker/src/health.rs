//! An endpoint's health from its scrape results: a healthy endpoint turns unhealthy after
//! `unhealthy_after` failed scrapes in a row and recovers after `healthy_after` successes in a
//! row. A new endpoint starts unhealthy and is healthy from its first successful scrape: the
//! filter must not route to a pod that has never answered, and one answer is enough to trust a
//! pod that has never failed.

/// The two thresholds, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// `Health::default()` is a new endpoint's: unhealthy until its first successful scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    healthy: bool,
    ever_succeeded: bool,
    consecutive_successes: u32,
    consecutive_failures: u32,
}

/// A change of health, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    BecameHealthy,
    BecameUnhealthy,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn record_success(&mut self, policy: HealthPolicy) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.consecutive_successes = self.consecutive_successes.saturating_add(1);
        let first = !self.ever_succeeded;
        self.ever_succeeded = true;
        if !self.healthy && (first || self.consecutive_successes >= policy.healthy_after) {
            self.healthy = true;
            return Some(Transition::BecameHealthy);
        }
        None
    }

    pub fn record_failure(&mut self, policy: HealthPolicy) -> Option<Transition> {
        self.consecutive_successes = 0;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.healthy && self.consecutive_failures >= policy.unhealthy_after {
            self.healthy = false;
            return Some(Transition::BecameUnhealthy);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Health, HealthPolicy, Transition};

    const POLICY: HealthPolicy = HealthPolicy {
        unhealthy_after: 3,
        healthy_after: 2,
    };

    #[test]
    fn a_new_endpoint_is_healthy_only_after_its_first_success() {
        let mut health = Health::default();
        assert!(!health.is_healthy());
        for _ in 0..10 {
            assert_eq!(health.record_failure(POLICY), None);
            assert!(!health.is_healthy());
        }
        assert_eq!(
            health.record_success(POLICY),
            Some(Transition::BecameHealthy)
        );
        assert!(health.is_healthy());
    }

    #[test]
    fn turns_unhealthy_after_n_failures_in_a_row() {
        let mut health = Health::default();
        health.record_success(POLICY);
        // Failures that are not in a row do not add up.
        for _ in 0..5 {
            assert_eq!(health.record_failure(POLICY), None);
            assert_eq!(health.record_failure(POLICY), None);
            assert_eq!(health.record_success(POLICY), None);
            assert!(health.is_healthy());
        }
        assert_eq!(health.record_failure(POLICY), None);
        assert_eq!(health.record_failure(POLICY), None);
        assert_eq!(health.consecutive_failures(), 2);
        assert_eq!(
            health.record_failure(POLICY),
            Some(Transition::BecameUnhealthy)
        );
        assert!(!health.is_healthy());
        assert_eq!(health.record_failure(POLICY), None, "reported once");
    }

    #[test]
    fn recovers_after_m_successes_in_a_row() {
        let mut health = Health::default();
        health.record_success(POLICY);
        for _ in 0..3 {
            health.record_failure(POLICY);
        }
        assert!(!health.is_healthy());
        assert_eq!(health.record_success(POLICY), None);
        assert_eq!(health.record_failure(POLICY), None, "streak broken");
        assert_eq!(health.record_success(POLICY), None);
        assert!(!health.is_healthy());
        assert_eq!(
            health.record_success(POLICY),
            Some(Transition::BecameHealthy)
        );
        assert!(health.is_healthy());
    }

    #[test]
    fn thresholds_of_one_flip_at_once() {
        let policy = HealthPolicy {
            unhealthy_after: 1,
            healthy_after: 1,
        };
        let mut health = Health::default();
        assert_eq!(
            health.record_success(policy),
            Some(Transition::BecameHealthy)
        );
        assert_eq!(
            health.record_failure(policy),
            Some(Transition::BecameUnhealthy)
        );
        assert_eq!(
            health.record_success(policy),
            Some(Transition::BecameHealthy)
        );
    }

    #[test]
    fn long_streaks_do_not_overflow() {
        let mut health = Health::default();
        health.record_success(POLICY);
        for _ in 0..10_000 {
            health.record_failure(POLICY);
        }
        assert_eq!(health.consecutive_failures(), 10_000);
        health.consecutive_failures = u32::MAX;
        health.record_failure(POLICY);
        assert_eq!(health.consecutive_failures(), u32::MAX);
    }
}
