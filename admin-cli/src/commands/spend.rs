//! `spend`: one report, or one every `--watch` seconds until interrupted.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use reqwest::Method;
use sluice_wire::admin::SpendReport;

use super::print;
use crate::args::{Output, SpendArgs, SpendFormat};
use crate::call::Call;
use crate::client::Client;
use crate::failure::Failure;
use crate::view;
use crate::when::{format_ms, now_ms, report_bound};

/// The request for a report at `now_ms` (relative bounds such as `--from 1h` move with it).
pub fn plan(args: &SpendArgs, output: Output, now_ms: u64) -> Call {
    let csv = format(args, output) == SpendFormat::Csv;
    // In the order given, each once (`--by tenant --by tenant,model` is no error).
    let mut dimensions: Vec<&str> = Vec::new();
    for by in &args.by {
        if !dimensions.contains(&by.name()) {
            dimensions.push(by.name());
        }
    }
    let group_by = dimensions.join(",");
    let mut call = Call::new(Method::GET, &["spend"])
        .with_query(
            "from",
            args.from.as_deref().map(|from| report_bound(from, now_ms)),
        )
        .with_query("to", args.to.as_deref().map(|to| report_bound(to, now_ms)))
        .with_query(
            "granularity",
            args.granularity.map(|granularity| granularity.name()),
        )
        .with_query("group_by", (!group_by.is_empty()).then_some(group_by))
        .with_query("tenant", args.tenant.clone())
        .with_query("key", args.key.clone())
        .with_query("project", args.project.clone())
        .with_query("model", args.model.clone())
        .with_query("format", csv.then_some("csv"));
    call.csv = csv;
    call
}

/// `--format`, else what `--output` says.
fn format(args: &SpendArgs, output: Output) -> SpendFormat {
    args.format.unwrap_or(match output {
        Output::Table => SpendFormat::Table,
        Output::Json => SpendFormat::Json,
    })
}

pub fn run(
    args: &SpendArgs,
    output: Output,
    client: &Client,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let Some(every) = args.watch else {
        return report(args, output, client, out);
    };
    let table = format(args, output) == SpendFormat::Table;
    let terminal = std::io::stdout().is_terminal();
    loop {
        if table {
            if terminal {
                // Clear the screen and go home, as `watch` does.
                write!(out, "\x1b[2J\x1b[H")?;
            }
            writeln!(
                out,
                "{} (every {every}s; Ctrl-C stops)\n",
                format_ms(now_ms())
            )?;
        }
        match report(args, output, client, out) {
            Ok(()) => {}
            // The service may be back next round (a restart, say): keep watching.
            Err(failure) if failure.is_transient() => eprintln!("{}", failure.line(None)),
            Err(failure) => return Err(failure),
        }
        if !terminal && table {
            writeln!(out)?;
        }
        out.flush()?;
        std::thread::sleep(Duration::from_secs(every));
    }
}

fn report(
    args: &SpendArgs,
    output: Output,
    client: &Client,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let call = plan(args, output, now_ms());
    let answer = client.send(&call)?;
    match format(args, output) {
        SpendFormat::Csv => {
            let text = answer.text();
            out.write_all(text.as_bytes())?;
            if !text.is_empty() && !text.ends_with('\n') {
                writeln!(out)?;
            }
            Ok(())
        }
        SpendFormat::Json => {
            let report: SpendReport = answer.decode()?;
            print(Output::Json, &report, view::spend, out)
        }
        SpendFormat::Table => {
            let report: SpendReport = answer.decode()?;
            print(Output::Table, &report, view::spend, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;

    use crate::commands::tests::{call, try_call};
    use crate::failure::exit;

    fn query(argv: &[&str]) -> (Vec<(&'static str, String)>, bool) {
        let call = call(argv);
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::GET, "/spend")
        );
        (call.query, call.csv)
    }

    fn pairs(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect()
    }

    #[test]
    fn flags_become_the_report_query() {
        assert_eq!(query(&["spend"]), (vec![], false));
        assert_eq!(
            query(&[
                "spend",
                "--from",
                "2026-12-01",
                "--to",
                "now",
                "--by",
                "tenant,model",
                "--by",
                "key,tenant",
                "--granularity",
                "day",
                "--tenant",
                "acme",
                "--key",
                "key_1",
                "--project",
                "web",
                "--model",
                "gpt-4o",
            ]),
            (
                pairs(&[
                    ("from", "2026-12-01"),
                    ("to", "2026-12-06T08:00:00Z"),
                    ("granularity", "day"),
                    ("group_by", "tenant,model,key"),
                    ("tenant", "acme"),
                    ("key", "key_1"),
                    ("project", "web"),
                    ("model", "gpt-4o"),
                ]),
                false
            )
        );
        assert_eq!(
            query(&["spend", "--from", "7d"]),
            (pairs(&[("from", "2026-11-29T08:00:00Z")]), false)
        );
    }

    #[test]
    fn csv_comes_from_format_and_json_from_output() {
        assert_eq!(
            query(&["spend", "--format", "csv"]),
            (pairs(&[("format", "csv")]), true)
        );
        assert_eq!(
            query(&["--output", "json", "spend", "--format", "csv"]),
            (pairs(&[("format", "csv")]), true)
        );
        assert_eq!(query(&["--output", "json", "spend"]), (vec![], false));
    }

    #[test]
    fn bad_spend_flags_are_usage_errors() {
        for argv in [
            &["spend", "--by", "region"][..],
            &["spend", "--granularity", "week"],
            &["spend", "--format", "xml"],
            &["spend", "--watch", "0"],
            &["spend", "--watch", "soon"],
        ] {
            assert_eq!(
                try_call(argv).unwrap_err().exit_code(),
                exit::USAGE,
                "{argv:?}"
            );
        }
    }
}
