//! The CLI against the real companion service: `sluice-picker` with an embedded tenancy store
//! and an admin token on free ports, and the `sluice-admin` binary run as a script would run
//! it, through a whole story: a tenant, a key created with `--secret-only`, listed without its
//! secret, rotated, revoked, an empty spend report (table, JSON, CSV, watched), then each
//! refusal's exit code (wrong token, unknown key, invalid name, conflict, service down).
//!
//! The picker is the debug build beside this crate's binary (`cargo build -p sluice-picker`;
//! `make test` builds it), or `SLUICE_PICKER_BIN`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "test-admin-token-3f9a1c";

/// Exit codes, as `sluice-admin --help` documents them.
const USAGE: i32 = 2;
const UNAUTHENTICATED: i32 = 3;
const NOT_FOUND: i32 = 4;
const REFUSED: i32 = 5;
const UNAVAILABLE: i32 = 6;

fn picker_bin() -> PathBuf {
    let path = std::env::var_os("SLUICE_PICKER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_sluice-admin")).with_file_name("sluice-picker"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} not found: `cargo build -p sluice-picker` (or set SLUICE_PICKER_BIN)",
        path.display()
    );
    path
}

/// The picker with `[admin]` and an embedded `[tenancy]` store, killed when dropped.
struct Service {
    child: Child,
    log: PathBuf,
    /// The admin API.
    url: String,
    /// The filter-facing listener (`/quota/sync`).
    main: String,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("picker.toml");
        std::fs::write(
            &config,
            format!(
                "[admin]\nlisten = [\"127.0.0.1:0\"]\ntoken_env = \"SLUICE_TEST_ADMIN_TOKEN\"\n\n\
                 [tenancy]\nstore = \"embedded\"\npath = \"{}\"\n",
                dir.path().join("tenancy.redb").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("picker.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(picker_bin())
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("SLUICE_TEST_ADMIN_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut service = Self {
            child,
            log,
            url: String::new(),
            main: String::new(),
            _dir: dir,
        };
        service.url = format!("http://{}", service.addr("admin listening on "));
        service.main = format!("http://{}", service.addr("listening on "));
        service
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address in the line that starts with `prefix` (`listening on `, the stdout line)
    /// or has it after a log line's fields (`admin listening on `).
    fn addr(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            let found = log.lines().find_map(|line| {
                let rest = match prefix.strip_prefix("admin ") {
                    Some(_) => line.split_once(prefix)?.1,
                    None => line.strip_prefix(prefix)?,
                };
                rest.split_whitespace().next().map(str::to_owned)
            });
            if let Some(addr) = found {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the picker exited ({status}) before its admin listener was up (is the build current?):\n{log}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} line after 20 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One run of the CLI, as a script sees it.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Successful, with nothing on stderr; its stdout.
    fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stderr, "", "stderr of a success");
        self.stdout
    }

    fn json(self) -> Value {
        serde_json::from_str(&self.ok()).unwrap()
    }

    /// Failed with `code`, one error line on stderr starting `sluice-admin: <error>: `,
    /// nothing on stdout; the line.
    fn refused(self, code: i32, error: &str) -> String {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "stdout of a failure");
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(
            !line.contains('\n'),
            "more than one line: {:?}",
            self.stderr
        );
        assert!(
            line.starts_with(&format!("sluice-admin: {error}: ")),
            "{line:?} is not a `{error}` error"
        );
        line.to_owned()
    }
}

/// The CLI pointed at `url` with `token` in `SLUICE_ADMIN_TOKEN` (none: unset).
struct Cli {
    url: String,
    token: Option<String>,
    /// Everything every run printed, to check no secret leaked anywhere.
    printed: std::cell::RefCell<String>,
}

impl Cli {
    fn new(url: &str, token: Option<&str>) -> Self {
        Self {
            url: url.to_owned(),
            token: token.map(str::to_owned),
            printed: Default::default(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice-admin"));
        command
            .args(args)
            .env("SLUICE_ADMIN_URL", &self.url)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = &self.token {
            command.env("SLUICE_ADMIN_TOKEN", token);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        let run = Run::from(self.command(args).output().unwrap());
        let mut printed = self.printed.borrow_mut();
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        run
    }
}

#[test]
fn a_key_from_creation_to_revocation_and_every_refusal() {
    let mut service = Service::start();
    let cli = Cli::new(&service.url, Some(TOKEN));

    // A tenant with a daily USD budget.
    cli.run(&[
        "tenant",
        "set",
        "acme",
        "--rpm",
        "100",
        "--budget",
        "day:usd=5",
    ])
    .ok();
    let tenant = cli
        .run(&["--output", "json", "tenant", "show", "acme"])
        .json();
    assert_eq!(tenant["name"], "acme");
    assert_eq!(tenant["limits"]["requests_per_minute"], 100);
    assert_eq!(tenant["limits"]["budgets"][0]["usd"], 5.0);
    let listed = cli.run(&["tenant", "list"]).ok();
    assert!(listed.starts_with("TENANT "), "{listed}");
    assert!(listed.contains("acme"), "{listed}");

    // A key, its secret alone on stdout.
    let secret = cli
        .run(&[
            "key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "ci-bot",
            "--secret-only",
        ])
        .ok();
    let secret = secret.strip_suffix('\n').unwrap().to_owned();
    let body = secret
        .strip_prefix("sk-sluice-")
        .unwrap_or_else(|| panic!("{secret:?}"));
    assert_eq!(body.len(), 43, "{secret:?}");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{secret:?}"
    );

    // Listed and shown, never with the secret.
    let keys = cli
        .run(&["--output", "json", "key", "list", "--tenant", "acme"])
        .json();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("key_"), "{id}");
    assert_eq!(keys[0]["name"], "ci-bot");
    let table = cli.run(&["key", "list"]).ok();
    assert!(table.contains(&id) && table.contains("active"), "{table}");
    let shown = cli.run(&["key", "show", &id]).ok();
    assert!(shown.contains("ci-bot"), "{shown}");
    // Only the create printed it.
    assert_eq!(
        cli.printed.borrow().matches(body).count(),
        1,
        "a listing showed the secret"
    );

    // Rotated: a new secret, shown once, with the note.
    let rotated = cli.run(&["key", "rotate", &id, "--secret-only"]).ok();
    let rotated = rotated.trim_end().to_owned();
    assert!(
        rotated.starts_with("sk-sluice-") && rotated != secret,
        "{rotated}"
    );
    let run = cli.run(&["--output", "json", "key", "rotate", &id]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("shown only now"), "{}", run.stderr);
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(again["key"]["id"], id.as_str());
    let latest = again["secret"].as_str().unwrap().to_owned();
    assert!(latest.starts_with("sk-sluice-") && latest != rotated);

    // The tenant cannot go while it has a live key.
    cli.run(&["tenant", "delete", "acme"])
        .refused(REFUSED, "conflict");

    // Revoked: out of the default list, kept for audit, never rotated again.
    let revoked = cli.run(&["--output", "json", "key", "revoke", &id]).json();
    assert!(revoked["revoked_at_ms"].as_u64().is_some(), "{revoked}");
    assert_eq!(cli.run(&["key", "list"]).ok(), "no keys\n");
    let audit = cli.run(&["key", "list", "--include-revoked"]).ok();
    assert!(audit.contains(&id) && audit.contains("revoked"), "{audit}");
    cli.run(&["key", "rotate", &id])
        .refused(REFUSED, "conflict");

    // No secret, old or new, in anything printed but the create and rotate answers.
    let printed = cli.printed.borrow().clone();
    for (what, secret) in [("first", &secret), ("rotated", &rotated)] {
        assert_eq!(
            printed.matches(secret.as_str()).count(),
            1,
            "the {what} secret"
        );
    }

    // Spend: nothing used yet. The table says so and shows the budget untouched; JSON and CSV
    // are the service's own.
    let report = cli.run(&["spend", "--by", "tenant,model"]).ok();
    assert!(report.starts_with("no spend in this range\n"), "{report}");
    assert!(report.contains("0.00 of 5.00 (5.00 left)"), "{report}");
    let json = cli
        .run(&[
            "--output",
            "json",
            "spend",
            "--tenant",
            "acme",
            "--from",
            "2d",
            "--granularity",
            "day",
        ])
        .json();
    assert_eq!(json["rows"], serde_json::json!([]));
    assert_eq!(json["granularity"], "day");
    let budget = &json["budgets"][0];
    assert_eq!(
        (&budget["tenant"], &budget["period"]),
        (&"acme".into(), &"day".into())
    );
    assert_eq!(budget["remaining_usd"], 5.0);
    let header =
        "period_start,tenant,model,requests,input_tokens,output_tokens,cached_tokens,cost_usd";
    let csv = cli
        .run(&["spend", "--by", "tenant,model", "--format", "csv"])
        .ok();
    assert_eq!(csv.lines().collect::<Vec<_>>(), [header]);

    // Watched: a report every second until interrupted.
    let mut watch = cli
        .command(&[
            "spend",
            "--by",
            "tenant,model",
            "--format",
            "csv",
            "--watch",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    for round in 0..2 {
        assert_eq!(lines.next().unwrap().unwrap(), header, "round {round}");
    }
    assert!(
        watch.try_wait().unwrap().is_none(),
        "the watch ended by itself"
    );
    watch.kill().unwrap();
    watch.wait().unwrap();

    // Spend as an Envoy's sync reports it (two requests of the revoked key, settled before
    // it was revoked), read back in each format.
    let hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600;
    let sync = serde_json::json!({"entries": [], "spend": [{
        "hour": hour, "tenant": "acme", "key": id, "model": "llama", "requests": 2,
        "input_tokens": 100, "output_tokens": 20, "cached_tokens": 0, "cost_nano_usd": 1_530_000u64,
    }]});
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/quota/sync", service.main))
        .header("content-type", "application/json")
        .body(sync.to_string())
        .send()
        .unwrap()
        .text()
        .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["spend_stored"], true, "{answer}");
    let csv = cli
        .run(&["spend", "--by", "tenant,key,model", "--format", "csv"])
        .ok();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert_eq!(
        lines[0],
        "period_start,tenant,key,model,requests,input_tokens,output_tokens,cached_tokens,cost_usd"
    );
    let period =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(hour * 3600))
            .to_string();
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        fields[..8],
        [
            period.as_str(),
            "acme",
            id.as_str(),
            "llama",
            "2",
            "100",
            "20",
            "0"
        ],
        "{csv}"
    );
    assert!(
        (fields[8].parse::<f64>().unwrap() - 0.00153).abs() < 1e-9,
        "{csv}"
    );
    let table = cli.run(&["spend", "--by", "tenant,model"]).ok();
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&format!("{period}  acme    llama ")),
        "{table}"
    );
    assert!(row.ends_with("  0.00153"), "{table}");
    assert!(table.contains("0.00153 of 5.00 (4.99847 left)"), "{table}");
    let json = cli.run(&["--output", "json", "spend", "--key", &id]).json();
    assert_eq!(json["rows"][0]["requests"], 2, "{json}");
    assert_eq!(json["rows"][0]["key"], id.as_str(), "{json}");

    // Refusals, each with its exit code.
    let wrong = Cli::new(&service.url, Some("not-the-token"));
    let line = wrong
        .run(&["tenant", "list"])
        .refused(UNAUTHENTICATED, "unauthenticated");
    assert!(
        !line.contains("not-the-token") && !line.contains(TOKEN),
        "{line}"
    );
    Cli::new(&service.url, None)
        .run(&["tenant", "list"])
        .refused(USAGE, "usage");
    cli.run(&["key", "show", "key_0000000000000000"])
        .refused(NOT_FOUND, "not_found");
    cli.run(&["key", "create", "--tenant", "nobody"])
        .refused(NOT_FOUND, "not_found");
    cli.run(&["tenant", "set", "bad name"])
        .refused(REFUSED, "invalid");
    cli.run(&["tenant", "set", "acme", "--budget", "fortnight:usd=1"])
        .refused(USAGE, "usage");

    // Deleted once its key is revoked.
    assert_eq!(
        cli.run(&["tenant", "delete", "acme"]).ok(),
        "tenant acme deleted\n"
    );
    cli.run(&["tenant", "show", "acme"])
        .refused(NOT_FOUND, "not_found");

    // The service down: unreachable, exit 6.
    service.stop();
    let line = cli
        .run(&["tenant", "list"])
        .refused(UNAVAILABLE, "unreachable");
    assert!(line.contains(&service.url), "{line}");

    // The admin token never appeared in anything printed.
    assert!(!cli.printed.borrow().contains(TOKEN));
}

#[test]
fn help_documents_the_exit_codes_and_never_shows_the_token() {
    let cli = Cli::new("http://127.0.0.1:9", Some(TOKEN));
    let help = cli.run(&["--help"]).ok();
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("SLUICE_ADMIN_TOKEN"), "{help}");
    for args in [&["key", "create", "--help"][..], &["spend", "--help"]] {
        cli.run(args).ok();
    }
    assert!(!cli.printed.borrow().contains(TOKEN));
}
