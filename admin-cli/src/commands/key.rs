//! `key create|list|show|update|rotate|revoke`. A secret is printed by `create` and `rotate`
//! only, once: alone on stdout with `--secret-only`, else with the key and a note.

use std::io::Write;

use reqwest::Method;
use sluice_wire::admin::{KeyCreate, KeyCreated, KeyUpdate, KeyView};
use sluice_wire::tenancy::Limits;

use super::print;
use crate::args::{KeyCommand, KeyCreateArgs, KeyUpdateArgs, Output};
use crate::call::Call;
use crate::client::Answer;
use crate::failure::Failure;
use crate::view;
use crate::when::{Relative, parse_instant};

pub fn plan(command: &KeyCommand, now_ms: u64) -> Result<Call, Failure> {
    Ok(match command {
        KeyCommand::Create(args) => {
            Call::new(Method::POST, &["keys"]).with_body(&create_body(args, now_ms)?)?
        }
        KeyCommand::List {
            tenant,
            include_revoked,
        } => Call::new(Method::GET, &["keys"])
            .with_query("tenant", tenant.clone())
            .with_query("include_revoked", include_revoked.then_some("true")),
        KeyCommand::Show { id } => Call::new(Method::GET, &["keys", id]),
        KeyCommand::Update(args) => {
            Call::new(Method::PATCH, &["keys", &args.id]).with_body(&update_body(args, now_ms)?)?
        }
        KeyCommand::Rotate { id, .. } => Call::new(Method::POST, &["keys", id, "rotate"]),
        KeyCommand::Revoke { id } => Call::new(Method::DELETE, &["keys", id]),
    })
}

fn create_body(args: &KeyCreateArgs, now_ms: u64) -> Result<KeyCreate, Failure> {
    Ok(KeyCreate {
        tenant: args.tenant.clone(),
        project: args.project.clone(),
        name: args.name.clone(),
        limits: args.limits.limits(),
        allowed_models: args.models.allowed(),
        expires_at_ms: args
            .expires
            .as_deref()
            .map(|when| expiry(when, now_ms))
            .transpose()?,
    })
}

/// Only what the flags name changes.
fn update_body(args: &KeyUpdateArgs, now_ms: u64) -> Result<KeyUpdate, Failure> {
    let update = KeyUpdate {
        name: args.name.clone(),
        limits: if args.no_limits {
            Some(Limits::default())
        } else {
            args.limits.any().then(|| args.limits.limits())
        },
        allowed_models: if args.allow_all_models {
            Some(None)
        } else {
            args.models.allowed().map(Some)
        },
        expires_at_ms: if args.no_expiry {
            Some(None)
        } else {
            args.expires
                .as_deref()
                .map(|when| expiry(when, now_ms).map(Some))
                .transpose()?
        },
    };
    if update == KeyUpdate::default() {
        return Err(Failure::Usage(
            "nothing to update: give --name, limits, --no-limits, --allow-model, --allow-all-models, --expires or --no-expiry".into(),
        ));
    }
    Ok(update)
}

fn expiry(when: &str, now_ms: u64) -> Result<u64, Failure> {
    parse_instant(when, now_ms, Relative::Ahead)
        .map_err(|err| Failure::Usage(format!("--expires: {err}")))
}

pub fn present(
    command: &KeyCommand,
    output: Output,
    answer: &Answer,
    out: &mut dyn Write,
    now_ms: u64,
) -> Result<(), Failure> {
    match command {
        KeyCommand::Create(KeyCreateArgs { secret_only, .. })
        | KeyCommand::Rotate { secret_only, .. } => {
            let created: KeyCreated = answer.decode()?;
            if *secret_only {
                writeln!(out, "{}", created.secret)?;
                return Ok(());
            }
            if output == Output::Json {
                // On stderr, so stdout stays one JSON document.
                eprintln!("sluice-admin: {}", view::SECRET_NOTE);
            }
            print(
                output,
                &created,
                |created| view::key_created(created, now_ms),
                out,
            )
        }
        KeyCommand::List { .. } => {
            let keys: Vec<KeyView> = answer.decode()?;
            print(output, &keys, |keys| view::keys(keys, now_ms), out)
        }
        KeyCommand::Show { .. } | KeyCommand::Update(_) | KeyCommand::Revoke { .. } => {
            let key: KeyView = answer.decode()?;
            print(output, &key, |key| view::key(key, now_ms), out)
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;
    use serde_json::json;
    use sluice_wire::admin::{KeyCreated, KeyView};

    use super::present;
    use crate::args::{KeyCommand, Output};
    use crate::client::Answer;
    use crate::commands::tests::{NOW, body, call, try_call};
    use crate::failure::exit;

    #[test]
    fn key_create_sends_tenant_project_limits_and_expiry() {
        let call = call(&[
            "key",
            "create",
            "--tenant",
            "acme",
            "--project",
            "web",
            "--name",
            "ci-bot",
            "--rpm",
            "60",
            "--budget",
            "day:usd=5",
            "--allow-model",
            "gpt-4o",
            "--expires",
            "30d",
            "--secret-only",
        ]);
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::POST, "/keys")
        );
        assert_eq!(
            body(&call),
            json!({
                "tenant": "acme",
                "project": "web",
                "name": "ci-bot",
                "limits": {"requests_per_minute": 60, "budgets": [{"period": "day", "usd": 5.0}]},
                "allowed_models": ["gpt-4o"],
                "expires_at_ms": NOW + 30 * 86_400_000,
            })
        );
        assert_eq!(
            body(&crate::commands::tests::call(&[
                "key",
                "create",
                "--tenant",
                "acme",
                "--expires",
                "2026-12-31"
            ])),
            json!({
                "tenant": "acme", "project": null, "name": null, "limits": {},
                "allowed_models": null, "expires_at_ms": 1_798_675_200_000u64,
            })
        );
        assert_eq!(
            try_call(&["key", "create"]).unwrap_err().exit_code(),
            exit::USAGE
        );
        let failure =
            try_call(&["key", "create", "--tenant", "acme", "--expires", "someday"]).unwrap_err();
        assert_eq!(failure.exit_code(), exit::USAGE);
        assert!(
            failure.message().starts_with("--expires: `someday`"),
            "{failure:?}"
        );
    }

    #[test]
    fn key_list_filters_go_in_the_query() {
        let all = call(&["key", "list"]);
        assert_eq!((all.method, all.path.as_str()), (Method::GET, "/keys"));
        assert!(all.query.is_empty());
        let some = call(&["key", "list", "--tenant", "acme", "--include-revoked"]);
        assert_eq!(
            some.query,
            vec![
                ("tenant", "acme".to_owned()),
                ("include_revoked", "true".to_owned())
            ]
        );
    }

    #[test]
    fn key_update_sends_only_what_changes() {
        let update = |argv: &[&str]| {
            let mut full = vec!["key", "update", "key_1"];
            full.extend_from_slice(argv);
            let call = call(&full);
            assert_eq!(
                (call.method.clone(), call.path.as_str()),
                (Method::PATCH, "/keys/key_1")
            );
            body(&call)
        };
        assert_eq!(update(&["--name", "bot"]), json!({"name": "bot"}));
        assert_eq!(
            update(&["--tpm", "1000", "--budget", "month:usd=20"]),
            json!({"limits": {"tokens_per_minute": 1000, "budgets": [{"period": "month", "usd": 20.0}]}})
        );
        assert_eq!(update(&["--no-limits"]), json!({"limits": {}}));
        assert_eq!(
            update(&["--allow-model", "a", "--allow-model", "b"]),
            json!({"allowed_models": ["a", "b"]})
        );
        // `null` lifts a restriction; an absent field keeps it.
        assert_eq!(
            update(&["--allow-all-models"]),
            json!({"allowed_models": null})
        );
        assert_eq!(update(&["--no-expiry"]), json!({"expires_at_ms": null}));
        assert_eq!(
            update(&["--expires", "1h"]),
            json!({"expires_at_ms": NOW + 3_600_000})
        );

        for argv in [
            &["key", "update", "key_1"][..],
            &["key", "update", "key_1", "--no-limits", "--rpm", "5"],
            &[
                "key",
                "update",
                "key_1",
                "--allow-all-models",
                "--allow-model",
                "a",
            ],
            &["key", "update", "key_1", "--no-expiry", "--expires", "1h"],
        ] {
            assert_eq!(
                try_call(argv).unwrap_err().exit_code(),
                exit::USAGE,
                "{argv:?}"
            );
        }
    }

    #[test]
    fn rotate_and_revoke_routes() {
        let rotate = call(&["key", "rotate", "key_1", "--secret-only"]);
        assert_eq!(
            (rotate.method, rotate.path.as_str()),
            (Method::POST, "/keys/key_1/rotate")
        );
        assert_eq!(rotate.body, None);
        let revoke = call(&["key", "revoke", "key_1"]);
        assert_eq!(
            (revoke.method, revoke.path.as_str()),
            (Method::DELETE, "/keys/key_1")
        );
    }

    fn created_answer() -> Answer {
        let created = KeyCreated {
            key: KeyView {
                id: "key_1".into(),
                tenant: "acme".into(),
                created_at_ms: NOW,
                rotated_at_ms: NOW,
                ..KeyView::default()
            },
            secret: "sk-sluice-SECRET".into(),
        };
        Answer {
            status: 201,
            body: serde_json::to_vec(&created).unwrap(),
        }
    }

    fn printed(command: KeyCommand, output: Output) -> String {
        let mut out = Vec::new();
        present(&command, output, &created_answer(), &mut out, NOW).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_secret_is_printed_alone_for_scripts_or_with_its_key() {
        let rotate = |secret_only| KeyCommand::Rotate {
            id: "key_1".into(),
            secret_only,
        };
        assert_eq!(printed(rotate(true), Output::Table), "sk-sluice-SECRET\n");
        assert_eq!(printed(rotate(true), Output::Json), "sk-sluice-SECRET\n");
        let table = printed(rotate(false), Output::Table);
        assert!(table.starts_with("id  "), "{table}");
        assert!(table.contains("sk-sluice-SECRET"), "{table}");
        assert!(table.contains("shown only now"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&printed(rotate(false), Output::Json)).unwrap();
        assert_eq!(json["secret"], "sk-sluice-SECRET");
        assert_eq!(json["key"]["id"], "key_1");
    }
}
