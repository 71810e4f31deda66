//! Checks of what the admin API is given, before anything is stored: names, model names, limits
//! and budgets. The rules are the filter's (a snapshot the filter would refuse must never be
//! built), and every error names the field.

use std::collections::BTreeMap;

use sluice_wire::admin::{KeyCreate, KeyUpdate, ProjectSpec, TenantSpec};
use sluice_wire::tenancy::{Limits, MAX_NAME_BYTES};

/// Most models in an `allowed_models` list or a tenant's `models` map.
pub const MAX_MODELS: usize = 256;
/// Largest USD budget (the filter's bound).
pub const MAX_BUDGET_USD: f64 = 1e9;

/// A tenant, project or key name: 1 to `MAX_NAME_BYTES` of `[A-Za-z0-9._:-]`.
pub fn name(field: &str, value: &str) -> Result<(), String> {
    let valid = !value.is_empty()
        && value.len() <= MAX_NAME_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{field}: {:?} must be 1 to {MAX_NAME_BYTES} characters of A-Z a-z 0-9 . _ : -",
            shorten(value)
        ))
    }
}

/// A model name as clients send it (`meta-llama/Llama-3.1-8B-Instruct`): 1 to `MAX_NAME_BYTES`
/// bytes without control characters.
pub fn model(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(format!(
            "{field}: {:?} must be 1 to {MAX_NAME_BYTES} bytes without control characters",
            shorten(value)
        ));
    }
    Ok(())
}

/// A key's label for people: at most `MAX_NAME_BYTES` bytes without control characters.
pub fn label(field: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(format!(
            "{field}: at most {MAX_NAME_BYTES} bytes without control characters"
        ));
    }
    Ok(())
}

pub fn limits(field: &str, limits: &Limits) -> Result<(), String> {
    let positive = |key: &str, value: Option<u64>| match value {
        Some(0) => Err(format!("{field}.{key}: must be greater than 0")),
        _ => Ok(()),
    };
    positive("requests_per_minute", limits.requests_per_minute)?;
    positive("tokens_per_minute", limits.tokens_per_minute)?;
    if limits.max_concurrent == Some(0) {
        return Err(format!("{field}.max_concurrent: must be greater than 0"));
    }
    let mut periods = Vec::with_capacity(limits.budgets.len());
    for (i, budget) in limits.budgets.iter().enumerate() {
        let f = format!("{field}.budgets[{i}]");
        if periods.contains(&budget.period) {
            return Err(format!("{f}.period: another budget has the same period"));
        }
        periods.push(budget.period);
        if budget.requests.is_none() && budget.tokens.is_none() && budget.usd.is_none() {
            return Err(format!("{f}: set at least one of requests, tokens or usd"));
        }
        if budget.requests == Some(0) {
            return Err(format!("{f}.requests: must be greater than 0"));
        }
        if budget.tokens == Some(0) {
            return Err(format!("{f}.tokens: must be greater than 0"));
        }
        if let Some(usd) = budget.usd {
            if !(usd.is_finite() && (0.0..=MAX_BUDGET_USD).contains(&usd)) {
                return Err(format!(
                    "{f}.usd: must be a finite amount from 0 to {MAX_BUDGET_USD}"
                ));
            }
        }
    }
    Ok(())
}

pub fn allowed_models(field: &str, models: Option<&Vec<String>>) -> Result<(), String> {
    let Some(models) = models else {
        return Ok(());
    };
    if models.len() > MAX_MODELS {
        return Err(format!("{field}: at most {MAX_MODELS} models"));
    }
    for (i, name) in models.iter().enumerate() {
        model(&format!("{field}[{i}]"), name)?;
    }
    Ok(())
}

pub fn tenant_spec(spec: &TenantSpec) -> Result<(), String> {
    limits("limits", &spec.limits)?;
    model_limits("models", &spec.models)?;
    allowed_models("allowed_models", spec.allowed_models.as_ref())
}

pub fn project_spec(spec: &ProjectSpec) -> Result<(), String> {
    limits("limits", &spec.limits)?;
    allowed_models("allowed_models", spec.allowed_models.as_ref())
}

/// A new key; `now_ms` for refusing an expiry in the past.
pub fn key_create(create: &KeyCreate, now_ms: u64) -> Result<(), String> {
    name("tenant", &create.tenant)?;
    if let Some(project) = &create.project {
        name("project", project)?;
    }
    if let Some(label_text) = &create.name {
        label("name", label_text)?;
    }
    limits("limits", &create.limits)?;
    allowed_models("allowed_models", create.allowed_models.as_ref())?;
    expiry(create.expires_at_ms, now_ms)
}

pub fn key_update(update: &KeyUpdate, now_ms: u64) -> Result<(), String> {
    if let Some(label_text) = &update.name {
        label("name", label_text)?;
    }
    if let Some(new_limits) = &update.limits {
        limits("limits", new_limits)?;
    }
    if let Some(models) = &update.allowed_models {
        allowed_models("allowed_models", models.as_ref())?;
    }
    match update.expires_at_ms {
        Some(at) => expiry(at, now_ms),
        None => Ok(()),
    }
}

fn expiry(at: Option<u64>, now_ms: u64) -> Result<(), String> {
    match at {
        Some(at) if at <= now_ms => Err(format!(
            "expires_at_ms: {at} is not in the future (now is {now_ms})"
        )),
        _ => Ok(()),
    }
}

fn model_limits(field: &str, models: &BTreeMap<String, Limits>) -> Result<(), String> {
    if models.len() > MAX_MODELS {
        return Err(format!("{field}: at most {MAX_MODELS} models"));
    }
    for (name, model_limits) in models {
        model(&format!("{field} key"), name)?;
        limits(&format!("{field}.{name}"), model_limits)?;
    }
    Ok(())
}

/// A long value cut for an error message.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use sluice_wire::tenancy::{Budget, Period};

    use super::*;

    #[test]
    fn names() {
        for good in ["acme", "a", "team-1.prod:eu_west", &"x".repeat(128)] {
            assert_eq!(name("tenant", good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", "a|b", &"x".repeat(129), "a\n"] {
            let err = name("tenant", bad).unwrap_err();
            assert!(err.starts_with("tenant: "), "{err}");
        }
    }

    #[test]
    fn model_names_allow_slashes_but_not_control_characters() {
        assert_eq!(model("m", "meta-llama/Llama-3.1-8B-Instruct"), Ok(()));
        assert_eq!(model("m", "gpt-4.1"), Ok(()));
        assert!(model("m", "").is_err());
        assert!(model("m", "a\tb").is_err());
        assert!(model("m", &"m".repeat(129)).is_err());
    }

    fn budget(period: Period) -> Budget {
        Budget {
            period,
            requests: None,
            tokens: None,
            usd: Some(10.0),
        }
    }

    #[test]
    fn limits_must_be_positive_and_budgets_sound() {
        assert_eq!(limits("limits", &Limits::default()), Ok(()));
        let zero_rpm = Limits {
            requests_per_minute: Some(0),
            ..Limits::default()
        };
        assert_eq!(
            limits("limits", &zero_rpm).unwrap_err(),
            "limits.requests_per_minute: must be greater than 0"
        );
        let zero_concurrency = Limits {
            max_concurrent: Some(0),
            ..Limits::default()
        };
        assert!(
            limits("x", &zero_concurrency)
                .unwrap_err()
                .starts_with("x.max_concurrent:")
        );
        let twice = Limits {
            budgets: vec![budget(Period::Day), budget(Period::Day)],
            ..Limits::default()
        };
        assert_eq!(
            limits("limits", &twice).unwrap_err(),
            "limits.budgets[1].period: another budget has the same period"
        );
        let empty = Limits {
            budgets: vec![Budget {
                period: Period::Hour,
                requests: None,
                tokens: None,
                usd: None,
            }],
            ..Limits::default()
        };
        assert!(
            limits("limits", &empty)
                .unwrap_err()
                .starts_with("limits.budgets[0]: set at least one")
        );
        for usd in [f64::NAN, f64::INFINITY, -0.5, 2e9] {
            let bad = Limits {
                budgets: vec![Budget {
                    usd: Some(usd),
                    ..budget(Period::Month)
                }],
                ..Limits::default()
            };
            assert!(
                limits("limits", &bad)
                    .unwrap_err()
                    .starts_with("limits.budgets[0].usd:"),
                "{usd}"
            );
        }
        // A zero USD budget is allowed: nothing may be spent.
        let zero = Limits {
            budgets: vec![Budget {
                usd: Some(0.0),
                ..budget(Period::Month)
            }],
            ..Limits::default()
        };
        assert_eq!(limits("limits", &zero), Ok(()));
    }

    #[test]
    fn specs_name_the_field() {
        let spec = TenantSpec {
            models: BTreeMap::from([(
                "llama".to_owned(),
                Limits {
                    tokens_per_minute: Some(0),
                    ..Limits::default()
                },
            )]),
            ..TenantSpec::default()
        };
        assert_eq!(
            tenant_spec(&spec).unwrap_err(),
            "models.llama.tokens_per_minute: must be greater than 0"
        );
        let spec = TenantSpec {
            allowed_models: Some(vec!["ok".to_owned(); MAX_MODELS + 1]),
            ..TenantSpec::default()
        };
        assert!(
            tenant_spec(&spec)
                .unwrap_err()
                .starts_with("allowed_models:")
        );
        let spec = ProjectSpec {
            allowed_models: Some(vec!["ok".to_owned(), String::new()]),
            ..ProjectSpec::default()
        };
        assert!(
            project_spec(&spec)
                .unwrap_err()
                .starts_with("allowed_models[1]:")
        );
    }

    #[test]
    fn keys() {
        let create = KeyCreate {
            tenant: "acme".to_owned(),
            project: Some("web".to_owned()),
            name: Some("CI bot (nightly)".to_owned()),
            expires_at_ms: Some(2_000),
            ..KeyCreate::default()
        };
        assert_eq!(key_create(&create, 1_000), Ok(()));
        assert!(
            key_create(&create, 2_000)
                .unwrap_err()
                .starts_with("expires_at_ms:")
        );
        let bad_project = KeyCreate {
            project: Some("w b".to_owned()),
            ..create.clone()
        };
        assert!(
            key_create(&bad_project, 0)
                .unwrap_err()
                .starts_with("project:")
        );
        let bad_label = KeyCreate {
            name: Some("a\u{7}".to_owned()),
            ..create
        };
        assert!(key_create(&bad_label, 0).unwrap_err().starts_with("name:"));
        let update = KeyUpdate {
            expires_at_ms: Some(None),
            allowed_models: Some(Some(vec!["\n".to_owned()])),
            ..KeyUpdate::default()
        };
        assert!(
            key_update(&update, 0)
                .unwrap_err()
                .starts_with("allowed_models[0]:")
        );
        let lift = KeyUpdate {
            expires_at_ms: Some(None),
            allowed_models: Some(None),
            ..KeyUpdate::default()
        };
        assert_eq!(key_update(&lift, 5), Ok(()));
    }
}
