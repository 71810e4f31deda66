//! The admin API's bodies as people read them. (`--output json` prints the bodies themselves.)
//! Limits are written in the flags' own syntax (`rpm=100`, `day:usd=10,tokens=5000`), so what
//! a table shows can be typed back.

use sluice_wire::admin::{
    BudgetScope, BudgetStanding, Dimension, KeyCreated, KeyView, SpendReport, SpendRow, TenantView,
};
use sluice_wire::tenancy::{Budget, Limits, Period, TokenKind};

use crate::table::{NONE, Table, fields, or_none};
use crate::when::format_ms;

/// Printed under a secret.
pub const SECRET_NOTE: &str = "This secret is shown only now: store it (the service keeps only its hash). A lost secret is replaced with `sluice-admin key rotate`.";

pub fn tenants(tenants: &[TenantView]) -> String {
    if tenants.is_empty() {
        return "no tenants\n".into();
    }
    let mut table = Table::new([
        "TENANT",
        "RPM",
        "TPM",
        "CONCURRENT",
        "BUDGETS",
        "MODELS",
        "PROJECTS",
        "UPDATED",
    ]);
    for tenant in tenants {
        let mut row = limit_cells(&tenant.limits);
        row.insert(0, tenant.name.clone());
        row.push(models(tenant.allowed_models.as_deref()));
        row.push(list(tenant.projects.keys().map(String::as_str)));
        row.push(format_ms(tenant.updated_at_ms));
        table.row(row);
    }
    table.render()
}

pub fn tenant(tenant: &TenantView) -> String {
    let mut lines = vec![("tenant", tenant.name.clone())];
    lines.extend(limit_fields(&tenant.limits));
    lines.push(("allowed models", models(tenant.allowed_models.as_deref())));
    lines.push(("updated", format_ms(tenant.updated_at_ms)));
    let mut text = fields(&lines);
    if !tenant.models.is_empty() {
        let mut table = Table::new(["MODEL", "RPM", "TPM", "CONCURRENT", "BUDGETS"]);
        for (model, limits) in &tenant.models {
            let mut row = limit_cells(limits);
            row.insert(0, model.clone());
            table.row(row);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    if !tenant.projects.is_empty() {
        let mut table = Table::new(["PROJECT", "RPM", "TPM", "CONCURRENT", "BUDGETS", "MODELS"]);
        for (name, project) in &tenant.projects {
            let mut row = limit_cells(&project.limits);
            row.insert(0, name.clone());
            row.push(narrowed_models(project.allowed_models.as_deref()));
            table.row(row);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}

/// `active`, `expired` or `revoked`, as of `now_ms`.
pub fn key_status(key: &KeyView, now_ms: u64) -> &'static str {
    if key.revoked_at_ms.is_some() {
        "revoked"
    } else if key.expires_at_ms.is_some_and(|expires| expires <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

pub fn keys(keys: &[KeyView], now_ms: u64) -> String {
    if keys.is_empty() {
        return "no keys\n".into();
    }
    let mut table = Table::new([
        "ID", "TENANT", "PROJECT", "NAME", "STATUS", "LIMITS", "MODELS", "EXPIRES", "CREATED",
    ]);
    for key in keys {
        table.row([
            key.id.clone(),
            key.tenant.clone(),
            or_none(key.project.as_deref()),
            or_none(key.name.as_deref()),
            key_status(key, now_ms).to_owned(),
            limits_line(&key.limits),
            narrowed_models(key.allowed_models.as_deref()),
            or_none(key.expires_at_ms.map(format_ms)),
            format_ms(key.created_at_ms),
        ]);
    }
    table.render()
}

pub fn key(key: &KeyView, now_ms: u64) -> String {
    fields(&key_fields(key, now_ms))
}

fn key_fields(key: &KeyView, now_ms: u64) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("id", key.id.clone()),
        ("tenant", key.tenant.clone()),
        ("project", or_none(key.project.as_deref())),
        ("name", or_none(key.name.as_deref())),
        ("status", key_status(key, now_ms).to_owned()),
    ];
    lines.extend(limit_fields(&key.limits));
    lines.extend([
        (
            "allowed models",
            narrowed_models(key.allowed_models.as_deref()),
        ),
        ("expires", or_none(key.expires_at_ms.map(format_ms))),
        ("created", format_ms(key.created_at_ms)),
        ("secret set", format_ms(key.rotated_at_ms)),
        ("revoked", or_none(key.revoked_at_ms.map(format_ms))),
    ]);
    lines
}

/// A new or rotated key: its fields, its secret, and the note that it is shown once.
pub fn key_created(created: &KeyCreated, now_ms: u64) -> String {
    let mut lines = key_fields(&created.key, now_ms);
    lines.push(("secret", created.secret.clone()));
    let mut text = fields(&lines);
    text.push('\n');
    text.push_str(SECRET_NOTE);
    text.push('\n');
    text
}

pub fn spend(report: &SpendReport) -> String {
    let mut text = String::new();
    if report.rows.is_empty() {
        text.push_str("no spend in this range\n");
    } else {
        let mut headers = vec!["PERIOD".to_owned()];
        headers.extend(
            report
                .group_by
                .iter()
                .map(|dimension| dimension_name(*dimension).to_uppercase()),
        );
        headers.extend(
            [
                "REQUESTS",
                "INPUT_TOKENS",
                "OUTPUT_TOKENS",
                "CACHED_TOKENS",
                "COST_USD",
            ]
            .map(String::from),
        );
        let mut table = Table::new(headers);
        let mut total = SpendRow::default();
        for row in &report.rows {
            let mut cells = vec![row.period_start.clone()];
            cells.extend(
                report
                    .group_by
                    .iter()
                    .map(|dimension| or_none(dimension_value(row, *dimension))),
            );
            cells.extend(amounts(row));
            table.row(cells);
            total.requests = total.requests.saturating_add(row.requests);
            total.input_tokens = total.input_tokens.saturating_add(row.input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(row.output_tokens);
            total.cached_tokens = total.cached_tokens.saturating_add(row.cached_tokens);
            total.cost_usd += row.cost_usd;
        }
        if report.rows.len() > 1 {
            let mut cells = vec!["total".to_owned()];
            cells.extend(report.group_by.iter().map(|_| String::new()));
            cells.extend(amounts(&total));
            table.row(cells);
        }
        text.push_str(&table.render());
    }
    if !report.budgets.is_empty() {
        let mut table = Table::new([
            "BUDGET", "TENANT", "PROJECT", "KEY", "PERIOD", "SINCE", "USD", "TOKENS", "REQUESTS",
        ]);
        for budget in &report.budgets {
            table.row(standing(budget));
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}

fn standing(budget: &BudgetStanding) -> Vec<String> {
    vec![
        match budget.scope {
            BudgetScope::Tenant => "tenant",
            BudgetScope::Project => "project",
            BudgetScope::Key => "key",
        }
        .to_owned(),
        budget.tenant.clone(),
        or_none(budget.project.as_deref()),
        or_none(budget.key.as_deref()),
        period_name(budget.period).to_owned(),
        budget.period_start.clone(),
        against(
            usd(budget.spent_usd),
            budget.limit_usd.map(usd),
            budget.remaining_usd.map(usd),
        ),
        against(
            budget.spent_tokens.to_string(),
            budget.limit_tokens.map(|n| n.to_string()),
            budget.remaining_tokens.map(|n| n.to_string()),
        ),
        against(
            budget.spent_requests.to_string(),
            budget.limit_requests.map(|n| n.to_string()),
            budget.remaining_requests.map(|n| n.to_string()),
        ),
    ]
}

/// `spent of limit (left left)`, or the spent amount alone when that amount is not limited.
fn against(spent: String, limit: Option<String>, left: Option<String>) -> String {
    match (limit, left) {
        (Some(limit), Some(left)) => format!("{spent} of {limit} ({left} left)"),
        (Some(limit), None) => format!("{spent} of {limit}"),
        (None, _) => spent,
    }
}

fn amounts(row: &SpendRow) -> [String; 5] {
    [
        row.requests.to_string(),
        row.input_tokens.to_string(),
        row.output_tokens.to_string(),
        row.cached_tokens.to_string(),
        usd(row.cost_usd),
    ]
}

fn dimension_name(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Tenant => "tenant",
        Dimension::Key => "key",
        Dimension::Project => "project",
        Dimension::Model => "model",
    }
}

fn dimension_value(row: &SpendRow, dimension: Dimension) -> Option<&str> {
    match dimension {
        Dimension::Tenant => row.tenant.as_deref(),
        Dimension::Key => row.key.as_deref(),
        Dimension::Project => row.project.as_deref(),
        Dimension::Model => row.model.as_deref(),
    }
}

/// USD to the micro-dollar, without trailing zeros past the cents: `0.00015`, `12.50`.
pub fn usd(amount: f64) -> String {
    let mut text = format!("{amount:.6}");
    while text.ends_with('0') && text.find('.').is_some_and(|dot| text.len() > dot + 3) {
        text.pop();
    }
    text
}

/// RPM, TPM, concurrency and budgets as table cells.
fn limit_cells(limits: &Limits) -> Vec<String> {
    vec![
        or_none(limits.requests_per_minute),
        tpm(limits),
        or_none(limits.max_concurrent),
        budgets(&limits.budgets),
    ]
}

fn limit_fields(limits: &Limits) -> [(&'static str, String); 4] {
    [
        ("rpm", or_none(limits.requests_per_minute)),
        ("tpm", tpm(limits)),
        ("max concurrent", or_none(limits.max_concurrent)),
        ("budgets", budgets(&limits.budgets)),
    ]
}

/// Every limit on one line, `-` for none: `rpm=100 tpm=5000 concurrent=4 day:usd=10`.
pub fn limits_line(limits: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(rpm) = limits.requests_per_minute {
        parts.push(format!("rpm={rpm}"));
    }
    if limits.tokens_per_minute.is_some() {
        parts.push(format!("tpm={}", tpm(limits)));
    }
    if let Some(concurrent) = limits.max_concurrent {
        parts.push(format!("concurrent={concurrent}"));
    }
    parts.extend(limits.budgets.iter().map(budget));
    if parts.is_empty() {
        NONE.to_owned()
    } else {
        parts.join(" ")
    }
}

/// `50000`, or `50000(input)` when it counts only some tokens.
fn tpm(limits: &Limits) -> String {
    match (limits.tokens_per_minute, limits.tokens_per_minute_counts) {
        (None, _) => NONE.to_owned(),
        (Some(tpm), None | Some(TokenKind::Total)) => tpm.to_string(),
        (Some(tpm), Some(TokenKind::Input)) => format!("{tpm}(input)"),
        (Some(tpm), Some(TokenKind::Output)) => format!("{tpm}(output)"),
    }
}

fn budgets(budgets: &[Budget]) -> String {
    if budgets.is_empty() {
        return NONE.to_owned();
    }
    budgets.iter().map(budget).collect::<Vec<_>>().join(" ")
}

/// A budget in the `--budget` syntax: `day:usd=10,tokens=5000`.
pub fn budget(budget: &Budget) -> String {
    let mut amounts = Vec::new();
    if let Some(usd) = budget.usd {
        amounts.push(format!("usd={usd}"));
    }
    if let Some(tokens) = budget.tokens {
        amounts.push(format!("tokens={tokens}"));
    }
    if let Some(requests) = budget.requests {
        amounts.push(format!("requests={requests}"));
    }
    format!("{}:{}", period_name(budget.period), amounts.join(","))
}

fn period_name(period: Period) -> &'static str {
    match period {
        Period::Hour => "hour",
        Period::Day => "day",
        Period::Month => "month",
    }
}

/// A tenant's models: `all` when unrestricted, else the names.
fn models(allowed: Option<&[String]>) -> String {
    allowed.map_or_else(
        || "all".to_owned(),
        |models| list(models.iter().map(String::as_str)),
    )
}

/// A project's or key's models: it can only narrow its tenant's (and project's) list, so
/// without a list of its own it has theirs: `inherited`.
fn narrowed_models(allowed: Option<&[String]>) -> String {
    allowed.map_or_else(
        || "inherited".to_owned(),
        |models| list(models.iter().map(String::as_str)),
    )
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        NONE.to_owned()
    } else {
        names.join(",")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_wire::admin::{
        BudgetScope, BudgetStanding, Dimension, Granularity, KeyCreated, KeyView, ProjectSpec,
        SpendReport, SpendRow, TenantView,
    };
    use sluice_wire::tenancy::{Budget, Limits, Period, TokenKind};

    use super::{
        SECRET_NOTE, budget, key_created, key_status, keys, limits_line, spend, tenant, tenants,
        usd,
    };
    use crate::limits::parse_budget;

    /// 2026-12-06T08:00:00Z.
    const NOW: u64 = 1_796_544_000_000;

    fn acme() -> TenantView {
        TenantView {
            name: "acme".into(),
            limits: Limits {
                requests_per_minute: Some(100),
                tokens_per_minute: Some(50_000),
                tokens_per_minute_counts: Some(TokenKind::Input),
                max_concurrent: None,
                budgets: vec![Budget {
                    period: Period::Month,
                    requests: None,
                    tokens: None,
                    usd: Some(500.0),
                }],
            },
            models: BTreeMap::from([(
                "gpt-4o".into(),
                Limits {
                    requests_per_minute: Some(10),
                    ..Limits::default()
                },
            )]),
            allowed_models: None,
            projects: BTreeMap::from([(
                "web".into(),
                ProjectSpec {
                    limits: Limits::default(),
                    allowed_models: Some(vec!["gpt-4o".into(), "llama".into()]),
                },
            )]),
            updated_at_ms: NOW,
        }
    }

    fn key_view() -> KeyView {
        KeyView {
            id: "key_0123456789abcdef".into(),
            tenant: "acme".into(),
            project: Some("web".into()),
            name: Some("ci-bot".into()),
            limits: Limits::default(),
            allowed_models: None,
            expires_at_ms: None,
            created_at_ms: NOW,
            rotated_at_ms: NOW,
            revoked_at_ms: None,
        }
    }

    #[test]
    fn tenants_list_and_show() {
        assert_eq!(
            tenants(&[acme()]),
            "TENANT  RPM  TPM           CONCURRENT  BUDGETS        MODELS  PROJECTS  UPDATED\n\
             acme    100  50000(input)  -           month:usd=500  all     web       2026-12-06T08:00:00Z\n"
        );
        assert_eq!(tenants(&[]), "no tenants\n");
        assert_eq!(
            tenant(&acme()),
            "tenant          acme\n\
             rpm             100\n\
             tpm             50000(input)\n\
             max concurrent  -\n\
             budgets         month:usd=500\n\
             allowed models  all\n\
             updated         2026-12-06T08:00:00Z\n\
             \n\
             MODEL   RPM  TPM  CONCURRENT  BUDGETS\n\
             gpt-4o  10   -    -           -\n\
             \n\
             PROJECT  RPM  TPM  CONCURRENT  BUDGETS  MODELS\n\
             web      -    -    -           -        gpt-4o,llama\n"
        );
    }

    #[test]
    fn budgets_are_shown_in_the_flag_syntax_and_read_back() {
        for spec in [
            "day:usd=12.5,tokens=2000000,requests=10000",
            "month:usd=0",
            "hour:tokens=5",
        ] {
            assert_eq!(budget(&parse_budget(spec).unwrap()), spec);
        }
        let limits = Limits {
            requests_per_minute: Some(60),
            max_concurrent: Some(4),
            budgets: vec![parse_budget("day:usd=10").unwrap()],
            ..Limits::default()
        };
        assert_eq!(limits_line(&limits), "rpm=60 concurrent=4 day:usd=10");
        assert_eq!(limits_line(&Limits::default()), "-");
    }

    #[test]
    fn key_status_follows_revocation_then_expiry() {
        let mut key = key_view();
        assert_eq!(key_status(&key, NOW), "active");
        key.expires_at_ms = Some(NOW);
        assert_eq!(key_status(&key, NOW), "expired");
        assert_eq!(key_status(&key, NOW - 1), "active");
        key.revoked_at_ms = Some(NOW - 5);
        assert_eq!(key_status(&key, NOW - 1), "revoked");
    }

    #[test]
    fn key_lists_never_have_a_secret_column_and_created_keys_carry_the_note() {
        let listed = keys(&[key_view()], NOW);
        assert!(listed.starts_with("ID  "), "{listed}");
        assert!(!listed.to_lowercase().contains("secret"), "{listed}");
        // No list of its own: the tenant's (and project's) list applies.
        assert!(listed.contains("  inherited  "), "{listed}");
        assert_eq!(keys(&[], NOW), "no keys\n");
        let created = key_created(
            &KeyCreated {
                key: key_view(),
                secret: "sk-sluice-abc".into(),
            },
            NOW,
        );
        assert!(
            created.contains("\nsecret          sk-sluice-abc\n"),
            "{created}"
        );
        assert!(
            created.ends_with(&format!("\n\n{SECRET_NOTE}\n")),
            "{created}"
        );
    }

    #[test]
    fn spend_rows_have_the_grouped_columns_a_total_and_the_budgets() {
        let row = |model: &str, requests: u64, cost_usd: f64| SpendRow {
            period_start: "2026-12-06T08:00:00Z".into(),
            tenant: Some("acme".into()),
            model: Some(model.into()),
            requests,
            input_tokens: 10 * requests,
            output_tokens: 20 * requests,
            cached_tokens: 0,
            cost_usd,
            ..SpendRow::default()
        };
        let report = SpendReport {
            granularity: Granularity::Hour,
            group_by: vec![Dimension::Tenant, Dimension::Model],
            rows: vec![row("gpt-4o", 3, 0.0015), row("llama", 1, 0.25)],
            budgets: vec![BudgetStanding {
                scope: BudgetScope::Tenant,
                tenant: "acme".into(),
                project: None,
                key: None,
                period: Period::Day,
                period_start: "2026-12-06T00:00:00Z".into(),
                limit_usd: Some(10.0),
                spent_usd: 0.2515,
                remaining_usd: Some(9.7485),
                limit_tokens: None,
                spent_tokens: 120,
                remaining_tokens: None,
                limit_requests: None,
                spent_requests: 4,
                remaining_requests: None,
            }],
        };
        assert_eq!(
            spend(&report),
            "PERIOD                TENANT  MODEL   REQUESTS  INPUT_TOKENS  OUTPUT_TOKENS  CACHED_TOKENS  COST_USD\n\
             2026-12-06T08:00:00Z  acme    gpt-4o  3         30            60             0              0.0015\n\
             2026-12-06T08:00:00Z  acme    llama   1         10            20             0              0.25\n\
             total                                 4         40            80             0              0.2515\n\
             \n\
             BUDGET  TENANT  PROJECT  KEY  PERIOD  SINCE                 USD                            TOKENS  REQUESTS\n\
             tenant  acme    -        -    day     2026-12-06T00:00:00Z  0.2515 of 10.00 (9.7485 left)  120     4\n"
        );
        assert_eq!(spend(&SpendReport::default()), "no spend in this range\n");
    }

    #[test]
    fn usd_keeps_cents_and_drops_trailing_zeros() {
        assert_eq!(usd(12.0), "12.00");
        assert_eq!(usd(0.00015), "0.00015");
        assert_eq!(usd(0.1234567), "0.123457");
        assert_eq!(usd(0.0), "0.00");
    }
}
