//! The rate-limit headers every response carries, for the tightest requests limit and the
//! tightest tokens limit that apply: OpenAI's `x-ratelimit-*` (resets as durations like `1s`,
//! `6m0s`, `12ms`) or Anthropic's `anthropic-ratelimit-*` (resets as RFC 3339 times).

use std::time::{Duration, UNIX_EPOCH};

use super::{Remaining, Standing};
use crate::error::ApiFlavor;

pub fn rate_limit_headers(
    standing: &Standing,
    flavor: ApiFlavor,
    now_ms: u64,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(6);
    let mut add = |names: [&'static str; 3], r: Option<Remaining>| {
        let Some(r) = r else {
            return;
        };
        let reset = match flavor {
            ApiFlavor::OpenAi => go_duration(r.reset_ms),
            ApiFlavor::Anthropic => rfc3339(now_ms.saturating_add(r.reset_ms)),
        };
        let [limit, remaining, reset_name] = names;
        out.push((limit, r.limit.to_string()));
        out.push((remaining, r.remaining.to_string()));
        out.push((reset_name, reset));
    };
    match flavor {
        ApiFlavor::OpenAi => {
            add(
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
                standing.requests,
            );
            add(
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
                standing.tokens,
            );
        }
        ApiFlavor::Anthropic => {
            add(
                [
                    "anthropic-ratelimit-requests-limit",
                    "anthropic-ratelimit-requests-remaining",
                    "anthropic-ratelimit-requests-reset",
                ],
                standing.requests,
            );
            add(
                [
                    "anthropic-ratelimit-tokens-limit",
                    "anthropic-ratelimit-tokens-remaining",
                    "anthropic-ratelimit-tokens-reset",
                ],
                standing.tokens,
            );
        }
    }
    out
}

/// `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
pub fn retry_after(ms: u64) -> [(&'static str, String); 2] {
    [
        ("retry-after", ms.div_ceil(1000).max(1).to_string()),
        ("retry-after-ms", ms.max(1).to_string()),
    ]
}

/// Go's duration format, as OpenAI writes resets: `12ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (s, frac) = ((ms / 1000) % 60, ms % 1000);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let frac = format!("{frac:03}");
        format!("{s}.{}s", frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

fn rfc3339(at_ms: u64) -> String {
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(at_ms.div_ceil(1000)));
    at.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(12), "12ms");
        assert_eq!(go_duration(1000), "1s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
        assert_eq!(
            retry_after(1),
            [("retry-after", "1".into()), ("retry-after-ms", "1".into())]
        );
        assert_eq!(retry_after(2500)[0].1, "3");
    }

    #[test]
    fn both_formats() {
        let standing = Standing {
            requests: Some(Remaining {
                limit: 10,
                remaining: 3,
                reset_ms: 6000,
            }),
            tokens: None,
        };
        let openai = rate_limit_headers(&standing, ApiFlavor::OpenAi, 0);
        assert_eq!(
            openai,
            vec![
                ("x-ratelimit-limit-requests", "10".to_owned()),
                ("x-ratelimit-remaining-requests", "3".to_owned()),
                ("x-ratelimit-reset-requests", "6s".to_owned()),
            ]
        );
        let anthropic = rate_limit_headers(&standing, ApiFlavor::Anthropic, 1_709_208_000_000);
        assert_eq!(
            anthropic[2],
            (
                "anthropic-ratelimit-requests-reset",
                "2024-02-29T12:00:06Z".to_owned()
            )
        );
    }
}
