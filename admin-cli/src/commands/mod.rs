//! Each command as a `Call` (what it asks the service) and a presentation of the answer.
//! Planning is pure apart from reading a `--json` file, so the tests check argv → request
//! without a service.

mod key;
mod spend;
mod tenant;

use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{Cli, Command, Output};
use crate::call::Call;
use crate::client::{Answer, Client};
use crate::failure::Failure;
use crate::when::now_ms;

/// Runs the command on the command line against `client`, writing what it prints to `out`.
pub fn run(cli: &Cli, client: &Client, out: &mut dyn Write) -> Result<(), Failure> {
    if let Command::Spend(args) = &cli.command {
        return spend::run(args, cli.output, client, out);
    }
    let call = plan(&cli.command, cli.output, now_ms())?;
    let answer = client.send(&call)?;
    present(&cli.command, cli.output, &answer, out)
}

/// The request `command` makes at `now_ms` (for `spend`, each round's).
pub fn plan(command: &Command, output: Output, now_ms: u64) -> Result<Call, Failure> {
    match command {
        Command::Tenant(command) => tenant::plan_tenant(command),
        Command::Project(command) => tenant::plan_project(command),
        Command::Key(command) => key::plan(command, now_ms),
        Command::Spend(args) => Ok(spend::plan(args, output, now_ms)),
    }
}

fn present(
    command: &Command,
    output: Output,
    answer: &Answer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match command {
        Command::Tenant(command) => tenant::present_tenant(command, output, answer, out),
        Command::Project(command) => tenant::present_project(command, output, answer, out),
        Command::Key(command) => key::present(command, output, answer, out, now_ms()),
        Command::Spend(_) => Ok(()),
    }
}

/// Prints `value` as pretty JSON, or `table` (its rendering for people).
fn print<T: Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match output {
        Output::Json => {
            let json = serde_json::to_string_pretty(value)
                .map_err(|err| Failure::Other(format!("encoding the output: {err}")))?;
            writeln!(out, "{json}")?;
        }
        Output::Table => out.write_all(table(value).as_bytes())?,
    }
    Ok(())
}

/// A whole body given as JSON in FILE (`-`: standard input), checked against the API's type
/// here, so a typo names its field before anything is sent.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| Failure::Usage(format!("--json -: reading standard input: {err}")))?;
        ("standard input".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Failure::Usage(format!("--json {}: {err}", path.display())))?;
        (path.display().to_string(), text)
    };
    serde_json::from_str(&text).map_err(|err| Failure::Usage(format!("--json {name}: {err}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use reqwest::Method;
    use serde_json::{Value, json};

    use super::plan;
    use crate::args::Cli;
    use crate::call::Call;
    use crate::failure::Failure;

    /// 2026-12-06T08:00:00Z.
    pub const NOW: u64 = 1_796_544_000_000;

    /// The request `argv` (after `sluice-admin`) makes.
    pub fn call(argv: &[&str]) -> Call {
        try_call(argv).unwrap_or_else(|err| panic!("{argv:?}: {err:?}"))
    }

    pub fn try_call(argv: &[&str]) -> Result<Call, Failure> {
        let cli = Cli::try_parse_from(std::iter::once("sluice-admin").chain(argv.iter().copied()))
            .map_err(|err| Failure::Usage(err.to_string()))?;
        plan(&cli.command, cli.output, NOW)
    }

    pub fn body(call: &Call) -> Value {
        call.body.clone().unwrap_or(Value::Null)
    }

    #[test]
    fn reads_go_to_the_documented_routes() {
        let cases: [(&[&str], Method, &str); 5] = [
            (&["tenant", "list"], Method::GET, "/tenants"),
            (&["tenant", "show", "acme"], Method::GET, "/tenants/acme"),
            (
                &["tenant", "delete", "acme"],
                Method::DELETE,
                "/tenants/acme",
            ),
            (
                &["project", "delete", "acme", "web"],
                Method::DELETE,
                "/tenants/acme/projects/web",
            ),
            (&["key", "show", "key_1"], Method::GET, "/keys/key_1"),
        ];
        for (argv, method, path) in cases {
            let call = call(argv);
            assert_eq!(
                (call.method.clone(), call.path.as_str()),
                (method, path),
                "{argv:?}"
            );
            assert_eq!(call.body, None, "{argv:?}");
            assert!(call.query.is_empty(), "{argv:?}");
        }
        assert_eq!(body(&call(&["key", "show", "key_1"])), json!(null));
    }
}
