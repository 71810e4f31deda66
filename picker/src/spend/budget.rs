//! Where budgets stand: for each budget of a tenant, project or key, what the spend store holds
//! for its current period (hour, day or calendar month, UTC) and what is left of the limit.
//!
//! "Spent" is the spend store's figure: every request every Envoy settled and reported in the
//! period. A budget added in the middle of a period counts the whole period here, while the
//! filters count it from when they got it; and rows an Envoy has not reported yet (at most one
//! sync interval) are not in it.

use std::collections::HashMap;

use sluice_wire::admin::{BudgetScope, BudgetStanding};
use sluice_wire::tenancy::{Budget, Period};

use super::aggregate::usd;
use super::period;
use super::query::Filter;
use super::row::{SpendKey, SpendValues};
use crate::tenancy::model::TenancyState;

/// Sums per tenant, project and key over the current hour, day and month.
#[derive(Debug, Default)]
pub struct PeriodSums {
    hour: Sums,
    day: Sums,
    month: Sums,
}

/// The sums of one period, from its first hour on.
#[derive(Debug, Default)]
struct Sums {
    start: u64,
    tenants: HashMap<String, SpendValues>,
    projects: HashMap<(String, String), SpendValues>,
    keys: HashMap<String, SpendValues>,
}

impl PeriodSums {
    pub fn new(now_hour: u64) -> Self {
        let sums = |period| Sums {
            start: period::period_start(period, now_hour),
            ..Sums::default()
        };
        Self {
            hour: sums(Period::Hour),
            day: sums(Period::Day),
            month: sums(Period::Month),
        }
    }

    /// The first hour any current period starts at: rows from there on are needed.
    pub fn first_hour(&self) -> u64 {
        self.month.start.min(self.day.start)
    }

    pub fn add(&mut self, key: &SpendKey, values: &SpendValues) {
        for sums in [&mut self.hour, &mut self.day, &mut self.month] {
            if key.hour < sums.start {
                continue;
            }
            sums.tenants
                .entry(key.tenant.clone())
                .or_default()
                .add(values);
            if let Some(project) = &key.project {
                sums.projects
                    .entry((key.tenant.clone(), project.clone()))
                    .or_default()
                    .add(values);
            }
            if let Some(id) = &key.key {
                sums.keys.entry(id.clone()).or_default().add(values);
            }
        }
    }

    fn of(&self, period: Period) -> &Sums {
        match period {
            Period::Hour => &self.hour,
            Period::Day => &self.day,
            Period::Month => &self.month,
        }
    }
}

/// Whether any budget would be listed (to skip reading a month of rows when none is).
pub fn any(state: &TenancyState, filter: &Filter) -> bool {
    !standings(state, filter, &PeriodSums::default()).is_empty()
}

/// Every budget of the tenants the filter names (all without one): the tenants', their
/// projects' (only the filter's project, if it names one) and their live keys' (only the
/// filter's key, if it names one).
pub fn standings(state: &TenancyState, filter: &Filter, sums: &PeriodSums) -> Vec<BudgetStanding> {
    let mut out = Vec::new();
    for tenant in state
        .tenants
        .values()
        .filter(|t| filter.tenant.as_ref().is_none_or(|name| *name == t.name))
    {
        for budget in &tenant.limits.budgets {
            let sums = sums.of(budget.period);
            let spent = sums.tenants.get(&tenant.name);
            out.push(standing(
                BudgetScope::Tenant,
                &tenant.name,
                None,
                None,
                budget,
                sums.start,
                spent,
            ));
        }
        for (name, project) in tenant
            .projects
            .iter()
            .filter(|(name, _)| filter.project.as_ref().is_none_or(|p| p == *name))
        {
            for budget in &project.limits.budgets {
                let sums = sums.of(budget.period);
                let spent = sums.projects.get(&(tenant.name.clone(), name.clone()));
                out.push(standing(
                    BudgetScope::Project,
                    &tenant.name,
                    Some(name),
                    None,
                    budget,
                    sums.start,
                    spent,
                ));
            }
        }
        for key in state.keys.values().filter(|k| {
            k.is_live()
                && k.tenant == tenant.name
                && filter.key.as_ref().is_none_or(|id| *id == k.id)
                && filter
                    .project
                    .as_ref()
                    .is_none_or(|p| k.project.as_ref() == Some(p))
        }) {
            for budget in &key.limits.budgets {
                let sums = sums.of(budget.period);
                let spent = sums.keys.get(&key.id);
                out.push(standing(
                    BudgetScope::Key,
                    &tenant.name,
                    key.project.as_deref(),
                    Some(&key.id),
                    budget,
                    sums.start,
                    spent,
                ));
            }
        }
    }
    out
}

fn standing(
    scope: BudgetScope,
    tenant: &str,
    project: Option<&str>,
    key: Option<&str>,
    budget: &Budget,
    start: u64,
    spent: Option<&SpendValues>,
) -> BudgetStanding {
    let spent = spent.copied().unwrap_or_default();
    let spent_usd = usd(spent.cost_nano_usd);
    BudgetStanding {
        scope,
        tenant: tenant.to_owned(),
        project: project.map(str::to_owned),
        key: key.map(str::to_owned),
        period: budget.period,
        period_start: period::format_hour(start),
        limit_usd: budget.usd,
        spent_usd,
        remaining_usd: budget.usd.map(|limit| (limit - spent_usd).max(0.0)),
        limit_tokens: budget.tokens,
        spent_tokens: spent.tokens(),
        remaining_tokens: budget
            .tokens
            .map(|limit| limit.saturating_sub(spent.tokens())),
        limit_requests: budget.requests,
        spent_requests: spent.requests,
        remaining_requests: budget
            .requests
            .map(|limit| limit.saturating_sub(spent.requests)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_wire::admin::ProjectSpec;
    use sluice_wire::tenancy::Limits;

    use super::*;
    use crate::tenancy::model::{KeyRecord, TenantRecord};

    /// 2026-12-06T08:00:00Z in Unix hours.
    const NOW: u64 = 1_796_515_200 / 3600 + 8;

    fn limits(
        period: Period,
        usd: Option<f64>,
        tokens: Option<u64>,
        requests: Option<u64>,
    ) -> Limits {
        Limits {
            budgets: vec![Budget {
                period,
                usd,
                tokens,
                requests,
            }],
            ..Limits::default()
        }
    }

    fn state() -> TenancyState {
        let tenant = TenantRecord {
            name: "acme".to_owned(),
            limits: limits(Period::Month, Some(10.0), None, None),
            projects: BTreeMap::from([(
                "web".to_owned(),
                ProjectSpec {
                    limits: limits(Period::Day, None, Some(1_000), None),
                    allowed_models: None,
                },
            )]),
            ..TenantRecord::default()
        };
        let other = TenantRecord {
            name: "beta".to_owned(),
            limits: limits(Period::Hour, Some(1.0), None, Some(5)),
            ..TenantRecord::default()
        };
        let key = KeyRecord {
            id: "key_a".to_owned(),
            tenant: "acme".to_owned(),
            project: Some("web".to_owned()),
            limits: limits(Period::Hour, None, None, Some(2)),
            ..KeyRecord::default()
        };
        let revoked = KeyRecord {
            id: "key_r".to_owned(),
            revoked_at_ms: Some(1),
            ..key.clone()
        };
        TenancyState::new(
            3,
            BTreeMap::from([("acme".to_owned(), tenant), ("beta".to_owned(), other)]),
            BTreeMap::from([("key_a".to_owned(), key), ("key_r".to_owned(), revoked)]),
        )
    }

    fn sums() -> PeriodSums {
        let mut sums = PeriodSums::new(NOW);
        let row = |hour, key: Option<&str>, project: Option<&str>, cost, tokens| {
            (
                SpendKey {
                    hour,
                    tenant: "acme".to_owned(),
                    key: key.map(str::to_owned),
                    project: project.map(str::to_owned),
                    model: "llama".to_owned(),
                },
                SpendValues {
                    requests: 1,
                    input_tokens: tokens,
                    output_tokens: tokens,
                    cached_tokens: 0,
                    cost_nano_usd: cost,
                },
            )
        };
        for (key, values) in [
            // Last month: in no current period.
            row(
                NOW - 8 - 24 * 6,
                Some("key_a"),
                Some("web"),
                50_000_000_000,
                1,
            ),
            // Earlier this month, yesterday: the month only.
            row(NOW - 9, Some("key_a"), Some("web"), 2_000_000_000, 100),
            // Today, an hour ago: month and day.
            row(NOW - 1, Some("key_a"), Some("web"), 1_000_000_000, 200),
            // This hour, another key of no project.
            row(NOW, Some("key_x"), None, 500_000_000, 300),
            row(NOW, Some("key_a"), Some("web"), 250_000_000, 50),
        ] {
            sums.add(&key, &values);
        }
        sums
    }

    #[test]
    fn each_budget_counts_its_current_period() {
        let standings = standings(&state(), &Filter::default(), &sums());
        let summary: Vec<_> = standings
            .iter()
            .map(|s| {
                (
                    s.scope,
                    s.tenant.as_str(),
                    s.key.as_deref(),
                    s.period,
                    s.period_start.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    BudgetScope::Tenant,
                    "acme",
                    None,
                    Period::Month,
                    "2026-12-01T00:00:00Z"
                ),
                (
                    BudgetScope::Project,
                    "acme",
                    None,
                    Period::Day,
                    "2026-12-06T00:00:00Z"
                ),
                (
                    BudgetScope::Key,
                    "acme",
                    Some("key_a"),
                    Period::Hour,
                    "2026-12-06T08:00:00Z"
                ),
                (
                    BudgetScope::Tenant,
                    "beta",
                    None,
                    Period::Hour,
                    "2026-12-06T08:00:00Z"
                ),
            ]
        );
        let month = &standings[0];
        assert_eq!(month.limit_usd, Some(10.0));
        assert!((month.spent_usd - 3.75).abs() < 1e-9, "{}", month.spent_usd);
        assert!((month.remaining_usd.unwrap() - 6.25).abs() < 1e-9);
        assert_eq!(month.limit_tokens, None);
        assert_eq!(month.remaining_tokens, None);
        let day = &standings[1];
        assert_eq!(day.project.as_deref(), Some("web"));
        // The web project's tokens today: (200 + 50) in and out.
        assert_eq!(
            (day.limit_tokens, day.spent_tokens, day.remaining_tokens),
            (Some(1_000), 500, Some(500))
        );
        let hour = &standings[2];
        assert_eq!((hour.spent_requests, hour.remaining_requests), (1, Some(1)));
        let beta = &standings[3];
        assert_eq!((beta.spent_usd, beta.remaining_usd), (0.0, Some(1.0)));
    }

    #[test]
    fn nothing_left_is_zero_not_negative() {
        let mut state = state();
        if let Some(tenant) = state.tenants.get_mut("acme") {
            tenant.limits = limits(Period::Month, Some(1.0), Some(10), Some(1));
        }
        let filter = Filter {
            tenant: Some("acme".to_owned()),
            key: Some("key_none".to_owned()),
            ..Filter::default()
        };
        let standings = standings(&state, &filter, &sums());
        // The tenant's and its project's budgets; no key matches.
        assert_eq!(standings.len(), 2);
        let month = &standings[0];
        assert_eq!(month.remaining_usd, Some(0.0));
        assert_eq!(month.remaining_tokens, Some(0));
        assert_eq!(month.remaining_requests, Some(0));
        assert!(any(&state, &filter));
        let nobody = Filter {
            tenant: Some("gamma".to_owned()),
            ..Filter::default()
        };
        assert!(!any(&state, &nobody));
    }
}
