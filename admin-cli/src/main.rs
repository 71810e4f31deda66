//! `sluice-admin`: the command-line client of the companion service's admin API. Tenants,
//! projects and virtual keys change at run time and every Envoy picks them up on its next
//! tenancy sync; spend reports come from the same service.
//!
//! Made for scripts as much as for people: `--output json` prints the API's own bodies,
//! `key create --secret-only` prints the secret alone, and the exit codes (`failure::exit`,
//! listed in `--help`) say what went wrong. Errors are one line on stderr; the admin token is
//! never printed.
//!
//! Outside tests, errors are handled, never unwrapped.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod args;
mod call;
mod client;
mod commands;
mod failure;
mod limits;
mod table;
mod view;
mod when;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::args::Cli;
use crate::client::Client;
use crate::failure::{Failure, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return command_line_error(&err),
    };
    let secret = cli.token.as_ref().map(|token| token.0.trim().to_owned());
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Closed) => ExitCode::from(exit::OTHER),
        Err(failure) => {
            eprintln!("{}", failure.line(secret.as_deref()));
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let token = cli.token.as_ref().ok_or_else(|| {
        Failure::Usage("no admin token: set SLUICE_ADMIN_TOKEN (or pass --token)".into())
    })?;
    let client = Client::new(&cli.url, token, cli.timeout)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    commands::run(cli, &client, &mut out)?;
    out.flush()?;
    Ok(())
}

/// `--help` and `--version` as clap prints them; a usage error as one line, exit code 2.
fn command_line_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(exit::USAGE)
        }
        _ => {
            // A token from the environment is redacted should clap ever quote it.
            let secret = std::env::var("SLUICE_ADMIN_TOKEN").ok();
            let failure = Failure::Usage(one_line(&err.to_string()));
            eprintln!("{}", failure.line(secret.as_deref().map(str::trim)));
            ExitCode::from(exit::USAGE)
        }
    }
}

/// clap's message without its `error: ` prefix, usage block and tips, on one line.
fn one_line(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message
        .lines()
        .take_while(|line| !line.trim().is_empty() && !line.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::one_line;
    use crate::args::Cli;

    fn usage_line(argv: &[&str]) -> String {
        let err = Cli::try_parse_from(std::iter::once("sluice-admin").chain(argv.iter().copied()))
            .unwrap_err();
        one_line(&err.to_string())
    }

    #[test]
    fn usage_errors_become_one_line_naming_what_is_wrong() {
        assert_eq!(
            usage_line(&["tenant", "set", "acme", "--rpm", "ten"]),
            "invalid value 'ten' for '--rpm <N>': invalid digit found in string"
        );
        assert_eq!(
            usage_line(&["key", "create"]),
            "the following required arguments were not provided: --tenant <TENANT>"
        );
        assert_eq!(
            usage_line(&["tenant", "set", "acme", "--budget", "week:usd=1"]),
            "invalid value 'week:usd=1' for '--budget <PERIOD:usd=N,tokens=N,requests=N>': unknown budget period `week` (hour, day or month)"
        );
    }

    #[test]
    fn the_token_flag_takes_any_value_so_clap_never_quotes_it() {
        let cli = Cli::try_parse_from([
            "sluice-admin",
            "--token",
            "bad token\u{e9}",
            "tenant",
            "list",
        ])
        .unwrap();
        assert_eq!(format!("{:?}", cli.token), "Some(Token([redacted]))");
    }
}
