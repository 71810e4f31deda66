//! A point-in-time view of the engine, published by the engine task after every change and read
//! by the metrics endpoint.

use super::scheduler::SchedulerCounters;

/// Upper bounds of the time-to-first-token histogram, the same as vLLM's.
pub const TTFT_BUCKETS_SECONDS: [f64; 18] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub waiting: usize,
    pub running: usize,
    /// Fraction of KV blocks held by running sequences, 0..=1.
    pub kv_usage: f64,
    pub running_adapters: Vec<String>,
    pub waiting_adapters: Vec<String>,
    pub counters: SchedulerCounters,
    pub finished: FinishedCounts,
    /// The most requests in the engine at once (running and waiting) since it started: what a
    /// gateway that limits concurrency let through, exactly, where sampling the gauges could
    /// miss a moment.
    pub peak_requests: usize,
    pub time_to_first_token: Histogram,
}

/// Requests that left the engine, by why they left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishedCounts {
    pub stop: u64,
    pub length: u64,
    pub abort: u64,
}

/// A cumulative histogram over `TTFT_BUCKETS_SECONDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `cumulative[i]` counts observations `<= TTFT_BUCKETS_SECONDS[i]`.
    pub cumulative: [u64; TTFT_BUCKETS_SECONDS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            cumulative: [0; TTFT_BUCKETS_SECONDS.len()],
            count: 0,
            sum: 0.0,
        }
    }
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in TTFT_BUCKETS_SECONDS.iter().zip(&mut self.cumulative) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut histogram = Histogram::default();
        histogram.observe(0.003);
        histogram.observe(0.5);
        histogram.observe(100.0);
        assert_eq!(histogram.cumulative[0], 0);
        assert_eq!(histogram.cumulative[1], 1);
        assert_eq!(histogram.cumulative[9], 2);
        assert_eq!(histogram.cumulative[17], 2);
        assert_eq!(histogram.count, 3);
        assert!((histogram.sum - 100.503).abs() < 1e-9);
    }
}
