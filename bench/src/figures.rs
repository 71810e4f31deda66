//! Formatting shared by the sections that load simulated replicas (routing, flow control, cluster
//! quotas): durations in seconds, token rates, shares and ratios, and the targets table each
//! section opens with.

use std::fmt::Write as _;

use crate::report::{Build, Target, Verdict, table};

/// Seconds as `87 ms` or `1.23 s`.
pub fn fmt_s(seconds: Option<f64>) -> String {
    match seconds {
        None => "–".into(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) => format!("{s:.1} s"),
    }
}

/// A share as a whole percentage.
pub fn fmt_share(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.0}%", s * 100.0))
}

/// Tokens per second, whole.
pub fn fmt_tps(tps: Option<f64>) -> String {
    tps.map_or("–".into(), |t| format!("{t:.0}"))
}

/// `a / b` when both are there and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

/// A target's verdict from whether it was met, if it could be measured.
pub fn verdict(met: Option<bool>) -> Verdict {
    match met {
        None => Verdict::NotMeasured,
        Some(true) => Verdict::Met,
        Some(false) => Verdict::Missed,
    }
}

/// The targets as a table: target, measured, verdict.
pub fn targets_table(targets: &[Target]) -> String {
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.measured.clone(),
                t.verdict.text().to_owned(),
            ]
        })
        .collect();
    table(&["target", "measured", "verdict"], &rows)
}

/// One line for every target not met: `MISSED: <target> — measured <figures>.`
pub fn missed(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| t.verdict != Verdict::Met)
        .map(|t| {
            format!(
                "{}: {} — measured {}.",
                t.verdict.text(),
                t.name,
                t.measured
            )
        })
        .collect()
}

/// The two lines under a later section's title: which build measured it (and the command for
/// the other one), and when `make bench` wrote it, how long it took, and whether it was a
/// `--quick` run.
pub fn provenance(
    out: &mut String,
    only: &str,
    build: Build,
    date: &str,
    elapsed_seconds: u64,
    quick: bool,
) {
    let _ = writeln!(
        out,
        "Measured with {}; `bench --only {only} --host {}` runs the other build.\n",
        build.describe(),
        match build {
            Build::Native => "wasm",
            Build::Wasm => "native",
        }
    );
    let _ = writeln!(
        out,
        "Written by `make bench` ({date}; `bench --only {only}` rewrites just this section). The \
         section took {} min {} s{}.\n",
        elapsed_seconds / 60,
        elapsed_seconds % 60,
        if quick {
            "; **a --quick run: steps too short to trust**"
        } else {
            ""
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_format() {
        assert_eq!(fmt_s(Some(0.0874)), "87 ms");
        assert_eq!(fmt_s(Some(1.234)), "1.23 s");
        assert_eq!(fmt_s(Some(12.34)), "12.3 s");
        assert_eq!(fmt_s(None), "–");
        assert_eq!(fmt_share(Some(0.256)), "26%");
        assert_eq!(fmt_tps(Some(1234.4)), "1234");
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
    }

    #[test]
    fn targets_render_with_their_verdicts() {
        let targets = vec![
            Target {
                name: "a".into(),
                measured: "1".into(),
                verdict: verdict(Some(true)),
            },
            Target {
                name: "b".into(),
                measured: "2".into(),
                verdict: verdict(Some(false)),
            },
            Target {
                name: "c".into(),
                measured: "–".into(),
                verdict: verdict(None),
            },
        ];
        let text = targets_table(&targets);
        assert!(text.contains("| a | 1 | met |"), "{text}");
        assert!(text.contains("| b | 2 | MISSED |"), "{text}");
        assert_eq!(
            missed(&targets),
            ["MISSED: b — measured 2.", "not measured: c — measured –."]
        );
    }
}
