//! The limits flags shared by `tenant set`, `project set`, `key create` and `key update`, and
//! the `--budget PERIOD:usd=N,tokens=N,requests=N` syntax. They build `tenancy::Limits`, the
//! type the service stores and the filter enforces.
//!
//! Only the syntax is checked here (and what JSON could not carry: a non-finite or negative
//! USD amount); whether a limit is acceptable is the service's call, so there is one rule.

use clap::{Args, ValueEnum};
use sluice_wire::tenancy::{Budget, Limits, Period, TokenKind};

/// Flags that set limits and budgets. Given together they describe the scope's limits
/// entirely: a limit not given is not set.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "limits", multiple = true)]
pub struct LimitsArgs {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Which tokens --tpm counts.
    #[arg(long, value_name = "KIND", requires = "tpm")]
    pub tpm_counts: Option<TokensCounted>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// A budget over a calendar period (UTC), e.g. `month:usd=500` or
    /// `day:tokens=2000000,requests=10000`; PERIOD is hour, day or month. Repeatable.
    #[arg(long, value_name = "PERIOD:usd=N,tokens=N,requests=N", value_parser = parse_budget)]
    pub budget: Vec<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokensCounted {
    Total,
    Input,
    Output,
}

impl LimitsArgs {
    /// Whether any limit flag was given.
    pub fn any(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.max_concurrent.is_some()
            || !self.budget.is_empty()
    }

    pub fn limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.rpm,
            tokens_per_minute: self.tpm,
            tokens_per_minute_counts: self.tpm_counts.map(|kind| match kind {
                TokensCounted::Total => TokenKind::Total,
                TokensCounted::Input => TokenKind::Input,
                TokensCounted::Output => TokenKind::Output,
            }),
            max_concurrent: self.max_concurrent,
            budgets: self.budget.clone(),
        }
    }
}

/// `--allow-model`: the models a scope may call.
#[derive(Debug, Clone, Default, Args)]
pub struct ModelsArgs {
    /// A model this scope may call (the name clients send); repeatable. Not given: every
    /// model the tenant may call.
    #[arg(long = "allow-model", value_name = "MODEL")]
    pub allow_model: Vec<String>,
}

impl ModelsArgs {
    /// `None` (every model) when no `--allow-model` is given.
    pub fn allowed(&self) -> Option<Vec<String>> {
        (!self.allow_model.is_empty()).then(|| self.allow_model.clone())
    }
}

/// `PERIOD:usd=N,tokens=N,requests=N`, at least one of the three.
pub fn parse_budget(spec: &str) -> Result<Budget, String> {
    let (period, amounts) = spec.split_once(':').ok_or_else(|| {
        format!("`{spec}`: expected PERIOD:usd=N,tokens=N,requests=N (PERIOD: hour, day or month)")
    })?;
    let period = match period.trim().to_ascii_lowercase().as_str() {
        "hour" => Period::Hour,
        "day" => Period::Day,
        "month" => Period::Month,
        other => {
            return Err(format!(
                "unknown budget period `{other}` (hour, day or month)"
            ));
        }
    };
    let mut budget = Budget {
        period,
        requests: None,
        tokens: None,
        usd: None,
    };
    for amount in amounts.split(',').map(str::trim) {
        let (name, value) = amount
            .split_once('=')
            .ok_or_else(|| format!("`{amount}`: expected usd=N, tokens=N or requests=N"))?;
        let name = name.trim();
        let value = value.trim();
        let taken = match name {
            "usd" => budget.usd.replace(parse_usd(value)?).is_some(),
            "tokens" => budget.tokens.replace(parse_count(name, value)?).is_some(),
            "requests" => budget.requests.replace(parse_count(name, value)?).is_some(),
            other => {
                return Err(format!(
                    "unknown budget amount `{other}` (usd, tokens or requests)"
                ));
            }
        };
        if taken {
            return Err(format!("`{name}` given twice in `{spec}`"));
        }
    }
    Ok(budget)
}

fn parse_usd(value: &str) -> Result<f64, String> {
    let usd: f64 = value
        .parse()
        .map_err(|_| format!("usd=`{value}` is not a number"))?;
    // JSON has no NaN or infinity (they would be sent as `null`, no budget at all).
    if !usd.is_finite() || usd < 0.0 {
        return Err(format!("usd=`{value}` must be a finite amount, 0 or more"));
    }
    Ok(usd)
}

fn parse_count(name: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{name}=`{value}` is not a whole number"))
}

#[cfg(test)]
mod tests {
    use sluice_wire::tenancy::{Budget, Period};

    use super::parse_budget;

    #[test]
    fn parses_each_amount_and_any_combination() {
        assert_eq!(
            parse_budget("month:usd=500"),
            Ok(Budget {
                period: Period::Month,
                requests: None,
                tokens: None,
                usd: Some(500.0),
            })
        );
        assert_eq!(
            parse_budget("Day: tokens=2000000, requests=10000 ,usd=12.5"),
            Ok(Budget {
                period: Period::Day,
                requests: Some(10_000),
                tokens: Some(2_000_000),
                usd: Some(12.5),
            })
        );
        assert_eq!(
            parse_budget("hour:usd=0").map(|budget| budget.usd),
            Ok(Some(0.0))
        );
    }

    #[test]
    fn refuses_what_is_not_a_budget_naming_the_part() {
        let cases = [
            ("usd=5", "expected PERIOD"),
            ("week:usd=5", "`week`"),
            ("day:", "expected usd=N"),
            ("day:usd", "expected usd=N"),
            ("day:dollars=5", "`dollars`"),
            ("day:usd=five", "usd=`five`"),
            ("day:usd=NaN", "finite"),
            ("day:usd=inf", "finite"),
            ("day:usd=-1", "finite"),
            ("day:tokens=1.5", "tokens=`1.5`"),
            ("day:requests=-3", "requests=`-3`"),
            ("day:usd=1,usd=2", "`usd` given twice"),
        ];
        for (spec, expected) in cases {
            let err = parse_budget(spec).unwrap_err();
            assert!(err.contains(expected), "{spec}: {err}");
        }
    }
}
