//! `tenant list|show|set|delete` and `project set|delete`.

use std::io::Write;

use reqwest::Method;
use sluice_wire::admin::{ProjectSpec, TenantSpec, TenantView};

use super::{print, read_json};
use crate::args::{Output, ProjectCommand, ProjectSetArgs, TenantCommand, TenantSetArgs};
use crate::call::Call;
use crate::client::Answer;
use crate::failure::Failure;
use crate::view;

pub fn plan_tenant(command: &TenantCommand) -> Result<Call, Failure> {
    Ok(match command {
        TenantCommand::List => Call::new(Method::GET, &["tenants"]),
        TenantCommand::Show { tenant } => Call::new(Method::GET, &["tenants", tenant]),
        TenantCommand::Set(args) => {
            Call::new(Method::PUT, &["tenants", &args.tenant]).with_body(&tenant_spec(args)?)?
        }
        TenantCommand::Delete { tenant } => Call::new(Method::DELETE, &["tenants", tenant]),
    })
}

/// The whole settings `tenant set` sends: from `--json`, else from the flags.
fn tenant_spec(args: &TenantSetArgs) -> Result<TenantSpec, Failure> {
    match &args.json {
        Some(path) => read_json(path),
        None => Ok(TenantSpec {
            limits: args.limits.limits(),
            // Per-model limits are set with --json.
            models: Default::default(),
            allowed_models: args.models.allowed(),
        }),
    }
}

pub fn plan_project(command: &ProjectCommand) -> Result<Call, Failure> {
    Ok(match command {
        ProjectCommand::Set(args) => Call::new(
            Method::PUT,
            &["tenants", &args.tenant, "projects", &args.project],
        )
        .with_body(&project_spec(args)?)?,
        ProjectCommand::Delete { tenant, project } => {
            Call::new(Method::DELETE, &["tenants", tenant, "projects", project])
        }
    })
}

fn project_spec(args: &ProjectSetArgs) -> Result<ProjectSpec, Failure> {
    match &args.json {
        Some(path) => read_json(path),
        None => Ok(ProjectSpec {
            limits: args.limits.limits(),
            allowed_models: args.models.allowed(),
        }),
    }
}

pub fn present_tenant(
    command: &TenantCommand,
    output: Output,
    answer: &Answer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match command {
        TenantCommand::List => {
            let tenants: Vec<TenantView> = answer.decode()?;
            print(output, &tenants, |tenants| view::tenants(tenants), out)
        }
        TenantCommand::Show { .. } | TenantCommand::Set(_) => {
            let tenant: TenantView = answer.decode()?;
            print(output, &tenant, view::tenant, out)
        }
        TenantCommand::Delete { tenant } => deleted(output, &format!("tenant {tenant}"), out),
    }
}

pub fn present_project(
    command: &ProjectCommand,
    output: Output,
    answer: &Answer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match command {
        ProjectCommand::Set(_) => {
            let tenant: TenantView = answer.decode()?;
            print(output, &tenant, view::tenant, out)
        }
        ProjectCommand::Delete { tenant, project } => deleted(
            output,
            &format!("project {project} of tenant {tenant}"),
            out,
        ),
    }
}

/// A delete answers 204 with no body: a line for people, nothing for scripts (the exit code
/// says it).
fn deleted(output: Output, what: &str, out: &mut dyn Write) -> Result<(), Failure> {
    if output == Output::Table {
        writeln!(out, "{what} deleted")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use reqwest::Method;
    use serde_json::json;

    use crate::commands::tests::{body, call, try_call};
    use crate::failure::{Failure, exit};

    #[test]
    fn tenant_set_sends_the_whole_spec_built_from_the_flags() {
        let call = call(&[
            "tenant",
            "set",
            "acme",
            "--rpm",
            "100",
            "--tpm",
            "50000",
            "--tpm-counts",
            "input",
            "--max-concurrent",
            "8",
            "--budget",
            "month:usd=500",
            "--budget",
            "day:tokens=2000000,requests=10000",
            "--allow-model",
            "gpt-4o",
            "--allow-model",
            "llama",
        ]);
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::PUT, "/tenants/acme")
        );
        assert_eq!(
            body(&call),
            json!({
                "limits": {
                    "requests_per_minute": 100,
                    "tokens_per_minute": 50000,
                    "tokens_per_minute_counts": "input",
                    "max_concurrent": 8,
                    "budgets": [
                        {"period": "month", "usd": 500.0},
                        {"period": "day", "tokens": 2000000, "requests": 10000},
                    ],
                },
                "models": {},
                "allowed_models": ["gpt-4o", "llama"],
            })
        );
        // No flags: a tenant without limits, every model allowed.
        assert_eq!(
            body(&crate::commands::tests::call(&["tenant", "set", "acme"])),
            json!({"limits": {}, "models": {}, "allowed_models": null})
        );
    }

    #[test]
    fn tenant_set_reads_a_whole_spec_from_json_and_names_a_wrong_field() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            r#"{{"limits": {{"requests_per_minute": 5}}, "models": {{"gpt-4o": {{"max_concurrent": 2}}}}}}"#
        )
        .unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(
            body(&call(&["tenant", "set", "acme", "--json", path])),
            json!({
                "limits": {"requests_per_minute": 5},
                "models": {"gpt-4o": {"max_concurrent": 2}},
                "allowed_models": null,
            })
        );

        let mut typo = tempfile::NamedTempFile::new().unwrap();
        write!(typo, r#"{{"limits": {{"rpm": 5}}}}"#).unwrap();
        let failure = try_call(&[
            "tenant",
            "set",
            "acme",
            "--json",
            typo.path().to_str().unwrap(),
        ])
        .unwrap_err();
        assert_eq!(failure.exit_code(), exit::USAGE);
        assert!(
            failure.message().contains("unknown field `rpm`"),
            "{failure:?}"
        );

        let Err(Failure::Usage(message)) =
            try_call(&["tenant", "set", "acme", "--json", "/nonexistent/spec.json"])
        else {
            panic!("a missing file was read");
        };
        assert!(message.contains("/nonexistent/spec.json"), "{message}");

        // --json is the whole spec: limit flags beside it are a usage error.
        let Err(Failure::Usage(message)) =
            try_call(&["tenant", "set", "acme", "--json", path, "--rpm", "5"])
        else {
            panic!("--json with --rpm accepted");
        };
        assert!(message.contains("cannot be used with"), "{message}");
    }

    #[test]
    fn project_set_sends_a_project_spec() {
        let call = call(&[
            "project",
            "set",
            "acme",
            "web",
            "--rpm",
            "10",
            "--budget",
            "day:usd=1.5",
            "--allow-model",
            "llama",
        ]);
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::PUT, "/tenants/acme/projects/web")
        );
        assert_eq!(
            body(&call),
            json!({
                "limits": {"requests_per_minute": 10, "budgets": [{"period": "day", "usd": 1.5}]},
                "allowed_models": ["llama"],
            })
        );
    }

    #[test]
    fn bad_limit_values_are_usage_errors() {
        for argv in [
            &["tenant", "set", "acme", "--rpm", "ten"][..],
            &["tenant", "set", "acme", "--rpm", "-1"],
            &["tenant", "set", "acme", "--budget", "week:usd=5"],
            &["tenant", "set", "acme", "--budget", "day:usd=nan"],
            &["tenant", "set", "acme", "--tpm-counts", "input"],
            &["tenant", "set"],
        ] {
            let failure = try_call(argv).unwrap_err();
            assert_eq!(failure.exit_code(), exit::USAGE, "{argv:?}");
        }
    }
}
