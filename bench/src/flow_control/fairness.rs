//! Fair shares and Jain's fairness index, over tokens served (prompt + output).
//!
//! A tenant's fair share is its max-min fair share of what the pool served: capacity is split
//! equally, a tenant asking for less than an equal split gets what it asks, and what it leaves
//! is split again among the others (water-filling). With every tenant asking for more than an
//! equal split this is the equal share; with light tenants it is `min(demand, fair share)`.
//! Service is normalized by it (`served / fair share`: 1 is exactly fair), and Jain's index of
//! the normalized service, `(Σx)² / (n · Σx²)`, is 1 when every tenant gets its fair share and
//! `1/n` when one gets everything.

/// Jain's fairness index of `values`; `None` when there are none or all are 0.
pub fn jain(values: &[f64]) -> Option<f64> {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    (!values.is_empty() && squares > 0.0).then(|| sum * sum / (values.len() as f64 * squares))
}

/// Max-min fair shares of `capacity` for `demands` (water-filling), in the demands' order.
pub fn max_min_shares(demands: &[f64], capacity: f64) -> Vec<f64> {
    let mut shares = vec![0.0; demands.len()];
    let mut left = capacity.max(0.0);
    // Unsatisfied tenants, the smallest demand first.
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    let mut remaining = order.len();
    for i in order {
        let equal = left / remaining as f64;
        let share = demands[i].max(0.0).min(equal);
        shares[i] = share;
        left -= share;
        remaining -= 1;
    }
    shares
}

/// Each tenant's service over its max-min fair share of everything served (the pool's capacity
/// as this step measured it).
pub fn normalized_service(served: &[f64], demands: &[f64]) -> Vec<Option<f64>> {
    let total: f64 = served.iter().sum();
    let fair = max_min_shares(demands, total);
    served
        .iter()
        .zip(fair)
        .map(|(s, f)| (f > 0.0).then(|| s / f))
        .collect()
}

/// Jain's index of the normalized service; `None` when a tenant has no fair share.
pub fn fairness_index(served: &[f64], demands: &[f64]) -> Option<f64> {
    let normalized: Option<Vec<f64>> = normalized_service(served, demands).into_iter().collect();
    jain(&normalized?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn jain_is_one_when_equal_and_one_over_n_when_one_gets_all() {
        assert!(close(jain(&[2.0, 2.0, 2.0, 2.0]).expect("index"), 1.0));
        assert!(close(jain(&[1.0, 0.0, 0.0, 0.0]).expect("index"), 0.25));
        // (1 + 3)² / (2 · (1 + 9)) = 0.8
        assert!(close(jain(&[1.0, 3.0]).expect("index"), 0.8));
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[0.0, 0.0]), None);
    }

    #[test]
    fn water_filling_gives_light_tenants_their_demand_and_splits_the_rest() {
        // 7 light tenants at 1, a heavy one at 10; capacity 8.5 (17 offered at 2×).
        let mut demands = vec![10.0];
        demands.extend([1.0; 7]);
        let shares = max_min_shares(&demands, 8.5);
        assert!(shares[1..].iter().all(|s| close(*s, 1.0)));
        assert!(close(shares[0], 1.5));
        // Everyone asks for more than an equal split: the equal split.
        let shares = max_min_shares(&[5.0, 6.0, 9.0, 7.0], 8.0);
        assert!(shares.iter().all(|s| close(*s, 2.0)));
        // More capacity than demand: every demand.
        assert_eq!(max_min_shares(&[1.0, 2.0], 10.0), vec![1.0, 2.0]);
        assert!(max_min_shares(&[], 1.0).is_empty());
    }

    #[test]
    fn fifo_service_of_a_heavy_tenant_is_unfair_and_max_min_is_fair() {
        let mut demands = vec![10.0];
        demands.extend([1.0; 7]);
        // First come, first served: everyone gets half of what it asked.
        let fifo: Vec<f64> = demands.iter().map(|d| d / 2.0).collect();
        let index = fairness_index(&fifo, &demands).expect("index");
        // x = 5 / 1.5 for the heavy tenant, 0.5 for the others.
        let x = [5.0 / 1.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        assert!(close(index, jain(&x).expect("index")));
        assert!(index < 0.5, "{index}");
        let fair = max_min_shares(&demands, 8.5);
        assert!(close(fairness_index(&fair, &demands).expect("index"), 1.0));
        let normalized = normalized_service(&fair, &demands);
        assert!(normalized.iter().all(|x| x.is_some_and(|x| close(x, 1.0))));
        // A tenant that asked for nothing has no fair share: no index.
        assert_eq!(fairness_index(&[1.0, 0.0], &[1.0, 0.0]), None);
    }
}
