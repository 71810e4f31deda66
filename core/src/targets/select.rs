//! Choosing a model's chain for one request: by weight (sticky when the model asks), never
//! starting at a target that is out of rotation when another chain can start elsewhere.

use super::health::HealthTable;
use super::{Chain, ModelChains};

/// The chain chosen for a request, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'a> {
    pub chain: &'a Chain,
    /// Its position in the model's chains.
    pub index: usize,
    pub reason: ChoiceReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceReason {
    /// The weighted (or sticky) choice.
    Weighted,
    /// The weighted choice starts at a target out of rotation: another chain was taken.
    Rerouted,
    /// Every chain starts at a target out of rotation: the weighted choice, tried anyway (its
    /// target's wait may be over, and Envoy's failover still runs).
    AllOut,
}

impl ChoiceReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Weighted => "weighted",
            Self::Rerouted => "rerouted",
            Self::AllOut => "all_out",
        }
    }
}

/// Chooses among `model`'s chains. `point` places the request on the weights: a hash of the
/// sticky key (the same user or session lands on the same chain while its first target is in
/// rotation) or of something unique to the request. `health`: `None` when it could not be
/// read (every target counts as in rotation).
pub fn choose<'a>(
    model: &'a ModelChains,
    health: Option<&HealthTable>,
    now_ms: u64,
    point: u64,
) -> Option<Choice<'a>> {
    let starts_live = |chain: &Chain| {
        chain
            .targets
            .first()
            .is_some_and(|&t| health.is_none_or(|h| h.available(t, now_ms)))
    };
    let all = || model.chains.iter().enumerate();
    let weighted = pick(all().filter(|(_, c)| c.weight > 0), point).or_else(|| all().next())?;
    if starts_live(weighted.1) {
        return Some(Choice {
            chain: weighted.1,
            index: weighted.0,
            reason: ChoiceReason::Weighted,
        });
    }
    let live = pick(all().filter(|(_, c)| c.weight > 0 && starts_live(c)), point)
        .or_else(|| all().find(|(_, c)| c.weight == 0 && starts_live(c)));
    Some(match live {
        Some((index, chain)) => Choice {
            chain,
            index,
            reason: ChoiceReason::Rerouted,
        },
        None => Choice {
            chain: weighted.1,
            index: weighted.0,
            reason: ChoiceReason::AllOut,
        },
    })
}

/// The chain `point` lands on among `chains`, in proportion to their weights.
fn pick<'a>(
    chains: impl Iterator<Item = (usize, &'a Chain)> + Clone,
    point: u64,
) -> Option<(usize, &'a Chain)> {
    let total: u64 = chains.clone().map(|(_, c)| u64::from(c.weight)).sum();
    let mut at = point.checked_rem(total)?;
    let mut last = None;
    for (index, chain) in chains {
        let weight = u64::from(chain.weight);
        if at < weight {
            return Some((index, chain));
        }
        at = at.saturating_sub(weight);
        last = Some((index, chain));
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{AttemptOutcome, Failover};

    fn chain(cluster: &str, targets: &[usize], weight: u32) -> Chain {
        Chain {
            cluster: cluster.into(),
            targets: targets.to_vec(),
            weight,
        }
    }

    fn model() -> ModelChains {
        ModelChains {
            chains: vec![
                chain("primary", &[0, 2], 90),
                chain("canary", &[1, 0], 10),
                chain("standby", &[2], 0),
            ],
            sticky: None,
        }
    }

    #[test]
    fn weights_split_the_points() {
        let model = model();
        let mut counts = [0u32; 3];
        for point in 0..1000u64 {
            let choice = choose(
                &model,
                None,
                0,
                xxhash_rust::xxh3::xxh3_64(&point.to_le_bytes()),
            )
            .unwrap();
            assert_eq!(choice.reason, ChoiceReason::Weighted);
            counts[choice.index] += 1;
        }
        assert!((850..=950).contains(&counts[0]), "{counts:?}");
        assert!((50..=150).contains(&counts[1]), "{counts:?}");
        assert_eq!(
            counts[2], 0,
            "a standby takes nothing while a weighted chain is live"
        );
    }

    #[test]
    fn the_same_point_lands_on_the_same_chain() {
        let model = model();
        for point in [3u64, 95, 12_345_678] {
            let first = choose(&model, None, 0, point).unwrap().index;
            for _ in 0..5 {
                assert_eq!(choose(&model, None, 0, point).unwrap().index, first);
            }
        }
    }

    #[test]
    fn a_chain_whose_first_target_is_out_is_skipped_until_its_wait_ends() {
        let model = model();
        let mut health = HealthTable::new(1, 3);
        health.record(
            0,
            AttemptOutcome::of_status(429, Some(1_000)),
            0,
            &Failover::default(),
        );
        // Point 5 lands on the primary (weights 90 then 10).
        let choice = choose(&model, Some(&health), 10, 5).unwrap();
        assert_eq!((choice.index, choice.reason), (1, ChoiceReason::Rerouted));
        let choice = choose(&model, Some(&health), 1_000, 5).unwrap();
        assert_eq!((choice.index, choice.reason), (0, ChoiceReason::Weighted));
    }

    #[test]
    fn standbys_take_over_when_every_weighted_chain_is_out() {
        let model = model();
        let mut health = HealthTable::new(1, 3);
        for target in [0, 1] {
            health.record(
                target,
                AttemptOutcome::of_status(503, Some(1_000)),
                0,
                &Failover::default(),
            );
        }
        let choice = choose(&model, Some(&health), 10, 5).unwrap();
        assert_eq!((choice.index, choice.reason), (2, ChoiceReason::Rerouted));
        health.record(
            2,
            AttemptOutcome::of_status(503, Some(1_000)),
            0,
            &Failover::default(),
        );
        let choice = choose(&model, Some(&health), 10, 5).unwrap();
        assert_eq!((choice.index, choice.reason), (0, ChoiceReason::AllOut));
    }

    #[test]
    fn a_model_of_standbys_only_takes_the_first() {
        let model = ModelChains {
            chains: vec![chain("a", &[0], 0), chain("b", &[1], 0)],
            sticky: None,
        };
        assert_eq!(choose(&model, None, 0, 77).unwrap().index, 0);
        let empty = ModelChains {
            chains: Vec::new(),
            sticky: None,
        };
        assert_eq!(choose(&empty, None, 0, 77), None);
    }
}
