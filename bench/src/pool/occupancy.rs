//! How busy the replicas were during a step, from their own metrics sampled while it ran
//! (`vllm:num_requests_running` and `vllm:num_requests_waiting`): a gateway should keep them
//! busy (running near `max-num-seqs`) without queueing on them (waiting near 0).

use std::time::Duration;

/// Every replica's gauges at one moment of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it was taken, from the step's start.
    pub at: Duration,
    /// (running, waiting) of each replica.
    pub replicas: Vec<(f64, f64)>,
}

/// Means per replica over a window of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occupancy {
    pub running: f64,
    pub waiting: f64,
    /// Samples the means are taken over.
    pub samples: usize,
}

/// The mean running and waiting requests per replica over the samples taken in `[from, to)`;
/// `None` without any.
pub fn mean_per_replica(samples: &[Sample], from: Duration, to: Duration) -> Option<Occupancy> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| (from..to).contains(&s.at) && !s.replicas.is_empty())
        .collect();
    if inside.is_empty() {
        return None;
    }
    let mean = |pick: fn(&(f64, f64)) -> f64| {
        inside
            .iter()
            .map(|s| s.replicas.iter().map(pick).sum::<f64>() / s.replicas.len() as f64)
            .sum::<f64>()
            / inside.len() as f64
    };
    Some(Occupancy {
        running: mean(|r| r.0),
        waiting: mean(|r| r.1),
        samples: inside.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_per_replica_over_the_window() {
        let ms = Duration::from_millis;
        let samples = vec![
            Sample {
                at: ms(0),
                replicas: vec![(0.0, 0.0), (0.0, 0.0)],
            },
            Sample {
                at: ms(100),
                replicas: vec![(16.0, 4.0), (12.0, 0.0)],
            },
            Sample {
                at: ms(200),
                replicas: vec![(16.0, 2.0), (16.0, 2.0)],
            },
        ];
        let all = mean_per_replica(&samples, ms(0), ms(300)).expect("samples");
        assert_eq!(all.samples, 3);
        assert!((all.running - (0.0 + 14.0 + 16.0) / 3.0).abs() < 1e-9);
        assert!((all.waiting - (0.0 + 2.0 + 2.0) / 3.0).abs() < 1e-9);
        let late = mean_per_replica(&samples, ms(100), ms(300)).expect("samples");
        assert_eq!((late.running, late.waiting, late.samples), (15.0, 2.0, 2));
        assert_eq!(mean_per_replica(&samples, ms(500), ms(600)), None);
    }
}
