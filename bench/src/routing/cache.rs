//! The replicas' prefix-cache counters, read before and after each step.

use super::results::CacheDelta;

/// The prefix-cache counters of one replica, from its `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub queries: f64,
    pub hits: f64,
    pub preemptions: f64,
}

impl Counters {
    pub fn parse(metrics: &str) -> Self {
        let sum = |name| sluice_e2e::simulator::prometheus_sum(metrics, name);
        Self {
            queries: sum("vllm:prefix_cache_queries_total"),
            hits: sum("vllm:prefix_cache_hits_total"),
            preemptions: sum("vllm:num_preemptions_total"),
        }
    }

    /// What happened between `before` and `after`, summed over replicas.
    pub fn delta(before: &[Counters], after: &[Counters]) -> CacheDelta {
        let mut delta = CacheDelta::default();
        for (b, a) in before.iter().zip(after) {
            delta.queries += a.queries - b.queries;
            delta.hits += a.hits - b.hits;
            delta.preemptions += a.preemptions - b.preemptions;
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_and_subtract() {
        let text = "# TYPE vllm:prefix_cache_queries_total counter\n\
            vllm:prefix_cache_queries_total{model_name=\"m\"} 1000\n\
            vllm:prefix_cache_hits_total{model_name=\"m\"} 250\n\
            vllm:num_preemptions_total{model_name=\"m\"} 2\n";
        let before = Counters::parse(text);
        assert_eq!(before.queries, 1000.0);
        assert_eq!(before.hits, 250.0);
        let after = Counters {
            queries: 3000.0,
            hits: 1250.0,
            preemptions: 2.0,
        };
        let delta = Counters::delta(&[before, before], &[after, after]);
        assert_eq!(delta.queries, 4000.0);
        assert_eq!(delta.hits, 2000.0);
        assert_eq!(delta.preemptions, 0.0);
        assert_eq!(delta.hit_share(), Some(0.5));
    }
}
