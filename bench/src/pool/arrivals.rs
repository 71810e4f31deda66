//! Open-loop arrivals: when each request of a step is due, drawn from a seeded generator so that
//! every setup and every run replays the same times.

use std::time::Duration;

use super::rng::Rng;

/// Poisson arrivals at `rate` per second for `seconds`: exponential gaps from `rng`.
pub fn poisson_schedule(rng: &mut Rng, rate: f64, seconds: f64) -> Vec<Duration> {
    let mut at = Vec::new();
    if rate <= 0.0 {
        return at;
    }
    let mut t = rng.exponential(rate);
    while t < seconds {
        at.push(Duration::from_secs_f64(t));
        t += rng.exponential(rate);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_deterministic_poisson() {
        let a = poisson_schedule(&mut Rng::new(5), 50.0, 20.0);
        let b = poisson_schedule(&mut Rng::new(5), 50.0, 20.0);
        assert_eq!(a, b);
        assert_ne!(a, poisson_schedule(&mut Rng::new(6), 50.0, 20.0));
        // About rate × seconds arrivals, in order, inside the window.
        assert!((900..1100).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.iter().all(|t| t.as_secs_f64() < 20.0));
        assert!(poisson_schedule(&mut Rng::new(5), 0.0, 20.0).is_empty());
    }
}
