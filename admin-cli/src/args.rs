//! The command line: every command and flag, with the help text `--help` shows.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::failure::EXIT_CODES;
use crate::limits::{LimitsArgs, ModelsArgs};

/// Where `--help` lists the flags every command takes.
const GLOBAL: &str = "Global options";

/// The default address of the service's admin listener (`[admin] listen`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9190";

/// Manage the Sluice gateway's tenants, projects and virtual keys at run time, and read
/// spend, through the companion service's admin API. Changes reach every Envoy within one
/// tenancy sync interval; nothing is redeployed.
#[derive(Debug, Parser)]
#[command(name = "sluice-admin", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The admin API's base URL (plain HTTP: the admin listener is on a private address).
    #[arg(long, env = "SLUICE_ADMIN_URL", default_value = DEFAULT_URL, global = true, help_heading = GLOBAL)]
    pub url: String,
    /// The admin token. Prefer the environment variable: a flag's value shows in the
    /// process list. Never printed.
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = parse_token,
        global = true,
        help_heading = GLOBAL
    )]
    pub token: Option<Token>,
    /// How long to wait for each answer (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, global = true, help_heading = GLOBAL)]
    pub timeout: Duration,
    /// `table` for people, `json` for scripts (the API's own bodies).
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true, help_heading = GLOBAL)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The admin token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// Any value: a parse error would have clap repeat the value, and the token is a secret.
/// `Client::new` checks it and says what is wrong without it.
fn parse_token(text: &str) -> Result<Token, std::convert::Infallible> {
    Ok(Token(text.to_owned()))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|err| format!("`{text}`: {err}"))?;
    if timeout.is_zero() {
        return Err("the timeout must be above zero".into());
    }
    Ok(timeout)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tenants: who pays, with their limits, budgets and allowed models.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Projects: a tenant's subdivisions, each with its own limits.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Virtual keys: created, rotated and revoked here; the secret is shown once.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Usage and cost per hour or day, by tenant, key, project and model, and where each
    /// budget stands in its current period.
    Spend(SpendArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List every tenant.
    List,
    /// Show one tenant: limits, budgets, per-model limits, projects.
    Show {
        /// The tenant's name.
        tenant: String,
    },
    /// Create a tenant or replace its settings. The flags (or --json) describe the whole
    /// tenant: a limit not given is lifted. Projects are kept.
    Set(TenantSetArgs),
    /// Delete a tenant (refused while it has keys that are not revoked).
    Delete {
        /// The tenant's name.
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub struct TenantSetArgs {
    /// The tenant's name: letters, digits and `._:-`.
    pub tenant: String,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub models: ModelsArgs,
    /// The whole settings as JSON (a TenantSpec: limits, per-model limits, allowed models)
    /// from FILE, or from standard input with `-`.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["limits", "allow_model"])]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project of a tenant or replace its settings (a limit not given is lifted).
    Set(ProjectSetArgs),
    /// Delete a project (refused while a live key names it).
    Delete {
        /// The tenant's name.
        tenant: String,
        /// The project's name.
        project: String,
    },
}

#[derive(Debug, Args)]
pub struct ProjectSetArgs {
    /// The tenant's name.
    pub tenant: String,
    /// The project's name: letters, digits and `._:-`.
    pub project: String,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub models: ModelsArgs,
    /// The whole settings as JSON (a ProjectSpec) from FILE, or from standard input with `-`.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["limits", "allow_model"])]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a virtual key. Its secret is printed once and cannot be shown again.
    Create(KeyCreateArgs),
    /// List keys (revoked ones with --include-revoked).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Revoked keys too (they stay listed for audit).
        #[arg(long)]
        include_revoked: bool,
    },
    /// Show one key (never its secret).
    Show {
        /// The key's id (`key_...`).
        id: String,
    },
    /// Change a key's name, limits, allowed models or expiry; what is not given stays.
    Update(KeyUpdateArgs),
    /// Give a key a new secret (printed once); the old one stops working with the next sync.
    Rotate {
        /// The key's id (`key_...`).
        id: String,
        /// Print only the secret, on a line of its own (for scripts).
        #[arg(long)]
        secret_only: bool,
    },
    /// Revoke a key for good: it stops working within one sync interval on every Envoy.
    Revoke {
        /// The key's id (`key_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// The tenant the key belongs to (it must exist).
    #[arg(long)]
    pub tenant: String,
    /// The tenant's project the key belongs to (it must exist).
    #[arg(long)]
    pub project: Option<String>,
    /// A label for people (`ci-bot`); not unique, not secret.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub models: ModelsArgs,
    /// When the key stops working: RFC 3339 in UTC, a date, or a duration from now (`90d`).
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
    /// Print only the secret, on a line of its own (for scripts).
    #[arg(long)]
    pub secret_only: bool,
}

#[derive(Debug, Args)]
pub struct KeyUpdateArgs {
    /// The key's id (`key_...`).
    pub id: String,
    /// A new label.
    #[arg(long)]
    pub name: Option<String>,
    /// Limits flags given replace the key's limits entirely.
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Lift every limit of the key.
    #[arg(long, conflicts_with = "limits")]
    pub no_limits: bool,
    /// `--allow-model` given replaces the key's list.
    #[command(flatten)]
    pub models: ModelsArgs,
    /// Lift the key's model restriction.
    #[arg(long, conflicts_with = "allow_model")]
    pub allow_all_models: bool,
    /// A new expiry: RFC 3339 in UTC, a date, or a duration from now (`90d`).
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
    /// The key never expires.
    #[arg(long, conflicts_with = "expires")]
    pub no_expiry: bool,
}

#[derive(Debug, Args)]
pub struct SpendArgs {
    /// Start (inclusive): RFC 3339, a date (UTC), or a duration ago (`7d`). Default: 24 h ago.
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// End (exclusive): RFC 3339, a date (UTC), `now`, or a duration ago. Default: now.
    #[arg(long, value_name = "WHEN")]
    pub to: Option<String>,
    /// The dimensions to group rows by, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "DIMENSIONS")]
    pub by: Vec<By>,
    /// Rows per hour or per day (UTC).
    #[arg(long, value_enum)]
    pub granularity: Option<Granularity>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this key (its id).
    #[arg(long)]
    pub key: Option<String>,
    /// Only this project.
    #[arg(long)]
    pub project: Option<String>,
    /// Only this model (as served).
    #[arg(long)]
    pub model: Option<String>,
    /// `table`, `json` or `csv` (the service's CSV). Default: as --output.
    #[arg(long, value_enum)]
    pub format: Option<SpendFormat>,
    /// Query again every SECONDS until interrupted (Ctrl-C). While the service cannot be
    /// reached the error is printed and the next round tries again.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub watch: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Tenant,
    Key,
    Project,
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Granularity {
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpendFormat {
    Table,
    Json,
    Csv,
}

/// Names as the service's query string spells them.
impl By {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
            Self::Project => "project",
            Self::Model => "model",
        }
    }
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_the_exit_codes_and_the_token_variable() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("6  the service is unreachable"), "{help}");
        assert!(help.contains("SLUICE_ADMIN_TOKEN"), "{help}");
    }
}
