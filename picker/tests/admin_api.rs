//! The admin API and the tenancy snapshot of a real picker, with the embedded store (a redb
//! file) and with a real Redis: a key's life from creation to revocation as the snapshot shows
//! it, every refusal, and state that survives a restart of the picker.

mod common;

use serde_json::{Value, json};

use common::{ADMIN_TOKEN, Picker, embedded_config, free_port, redis, redis_config, sha256_hex};

/// Creates a tenant, a project and a key, and follows the key through the snapshot: there
/// (hashed) after creation, 304 while nothing changes, a new hash after a rotation, gone after
/// the revocation. The secret is in no other answer and not in the log.
async fn key_lifecycle(picker: &Picker) {
    let (status, etag, body) = picker.snapshot(None).await;
    assert_eq!(status, 200, "{body}");
    let empty: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(etag, format!("\"{}\"", empty["version"]));

    let spec = json!({
        "limits": {"requests_per_minute": 100, "budgets": [{"period": "day", "usd": 5.0}]},
        "allowed_models": ["meta-llama/Llama-3.1-8B-Instruct"]
    });
    let (status, tenant) = picker
        .admin("PUT", "/tenants/acme", Some(spec.clone()))
        .await;
    assert_eq!(status, 201, "{tenant}");
    assert_eq!(tenant["limits"]["requests_per_minute"], 100);
    let (status, _) = picker.admin("PUT", "/tenants/acme", Some(spec)).await;
    assert_eq!(status, 200, "the second PUT replaces");
    let (status, tenant) = picker
        .admin("PUT", "/tenants/acme/projects/web", Some(json!({})))
        .await;
    assert_eq!(status, 201, "{tenant}");
    assert!(tenant["projects"]["web"].is_object(), "{tenant}");

    let (status, created) = picker
        .admin(
            "POST",
            "/keys",
            Some(json!({"tenant": "acme", "project": "web", "name": "ci bot",
                        "limits": {"budgets": [{"period": "hour", "requests": 10}]}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("sk-sluice-") && secret.len() == 53,
        "{secret}"
    );
    assert!(id.starts_with("key_") && id.len() == 20, "{id}");
    assert_eq!(created["key"]["tenant"], "acme");

    // In the snapshot: its SHA-256, never the secret.
    let (status, etag, body) = picker.snapshot(None).await;
    assert_eq!(status, 200);
    assert!(!body.contains(&secret));
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(etag, format!("\"{}\"", snapshot["version"]));
    assert!(snapshot["version"].as_u64() > empty["version"].as_u64());
    let keys = snapshot["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{snapshot}");
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["sha256"], sha256_hex(&secret).as_str());
    assert_eq!(keys[0]["tenant"], "acme");
    assert_eq!(keys[0]["project"], "web");
    assert_eq!(snapshot["tenants"][0]["name"], "acme");
    assert_eq!(snapshot["tenants"][0]["projects"][0]["name"], "web");

    // Nothing changed: 304 with the same ETag and no body.
    let (status, same, body) = picker.snapshot(Some(&etag)).await;
    assert_eq!(
        (status, same.as_str(), body.as_str()),
        (304, etag.as_str(), "")
    );
    let (status, _, _) = picker.snapshot(Some("\"1\"")).await;
    assert_eq!(status, 200, "another version gets the snapshot");

    // No read answer carries the secret or its digest.
    let digest = sha256_hex(&secret);
    for path in [
        "/keys".to_owned(),
        format!("/keys/{id}"),
        "/keys?tenant=acme&include_revoked=true".to_owned(),
        "/tenants".to_owned(),
        "/tenants/acme".to_owned(),
    ] {
        let (status, _, text) = picker
            .admin_raw("GET", &path, None, Some(ADMIN_TOKEN), &[])
            .await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(
            !text.contains(&secret) && !text.contains(&digest),
            "{path}: {text}"
        );
    }
    let (_, listed) = picker.admin("GET", "/keys", None).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["name"], "ci bot");

    // A change of limits is in the next snapshot.
    let (status, updated) = picker
        .admin(
            "PATCH",
            &format!("/keys/{id}"),
            Some(json!({"allowed_models": ["meta-llama/Llama-3.1-8B-Instruct"]})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let (_, patched_etag, body) = picker.snapshot(Some(&etag)).await;
    assert_ne!(patched_etag, etag);
    assert!(body.contains("allowed_models"), "{body}");

    // Rotation: same id, a new secret, a new hash; the old one is gone.
    let (status, rotated) = picker
        .admin("POST", &format!("/keys/{id}/rotate"), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["key"]["id"], id.as_str());
    let (status, rotated_etag, body) = picker.snapshot(Some(&patched_etag)).await;
    assert_eq!(status, 200);
    assert_ne!(rotated_etag, patched_etag);
    assert!(body.contains(&sha256_hex(&new_secret)), "{body}");
    assert!(!body.contains(&digest), "{body}");

    // Revocation: out of the snapshot, out of the default list, kept for audit.
    let (status, revoked) = picker.admin("DELETE", &format!("/keys/{id}"), None).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at_ms"].as_u64().is_some(), "{revoked}");
    let (status, _, body) = picker.snapshot(Some(&rotated_etag)).await;
    assert_eq!(status, 200);
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot["keys"], json!([]));
    let (_, listed) = picker.admin("GET", "/keys", None).await;
    assert_eq!(listed, json!([]));
    let (_, listed) = picker
        .admin("GET", "/keys?include_revoked=true", None)
        .await;
    assert_eq!(listed[0]["id"], id.as_str());

    let metrics = picker.metrics().await;
    assert!(
        metrics.contains(&format!("sluice_tenancy_version {}", snapshot["version"])),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_tenancy_keys 0"), "{metrics}");

    // The log says what changed, never a secret or the admin token.
    let log = picker.log_text();
    assert!(log.contains(&format!("what=\"key {id} revoked\"")), "{log}");
    assert!(log.contains("tenancy changed"), "{log}");
    for secret in [&secret, &new_secret, &ADMIN_TOKEN.to_owned()] {
        assert!(!log.contains(secret.as_str()), "{log}");
    }
}

#[tokio::test]
async fn a_key_through_the_snapshot_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(&dir.path().join("tenancy.redb"), "");
    let picker = Picker::start(dir.path(), "picker", &config);
    key_lifecycle(&picker).await;
}

#[tokio::test]
async fn a_key_through_the_snapshot_redis() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis(port);
    let picker = Picker::start(dir.path(), "picker", &redis_config(port, "t1:", ""));
    key_lifecycle(&picker).await;
}

/// Every refusal, with its status and error code.
#[tokio::test]
async fn refusals() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(
        &dir.path().join("tenancy.redb"),
        "max_tenants = 2\nmax_keys = 1",
    );
    let picker = Picker::start(dir.path(), "picker", &config);

    // No token, a wrong one, another scheme: the same 401, whatever the route.
    let mut bodies = Vec::new();
    for (token, path) in [
        (None, "/tenants"),
        (Some("wrong-token"), "/tenants"),
        (Some(&ADMIN_TOKEN[1..]), "/tenants"),
        (None, "/no/such/route"),
    ] {
        let (status, headers, body) = picker.admin_raw("GET", path, None, token, &[]).await;
        assert_eq!(status, 401, "{token:?} {path}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let refused: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(refused["error"]["code"], "unauthenticated");
    let (status, _, _) = picker
        .admin_raw(
            "GET",
            "/tenants",
            None,
            None,
            &[("authorization", &format!("Basic {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status, 401);
    let metrics = picker.metrics().await;
    assert!(
        metrics.contains("sluice_picker_admin_unauthenticated_total 5"),
        "{metrics}"
    );

    // The main listener does not serve the admin API, token or not.
    let response = reqwest::Client::new()
        .get(picker.url("/admin/v1/tenants"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let expect = |status: u16, body: &Value, code: &str| {
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        status
    };

    // Invalid names and bodies: 400, naming the field.
    for (method, path, body) in [
        ("PUT", "/tenants/a%20b", None),
        ("PUT", "/tenants/%C3%A9", None),
        ("PUT", "/tenants/acme/projects/a%7Cb", None),
        (
            "PUT",
            "/tenants/acme",
            Some(json!({"limits": {"requests_per_minute": 0}})),
        ),
        ("PUT", "/tenants/acme", Some(json!({"limit": {}}))),
        (
            "PUT",
            "/tenants/acme",
            Some(json!({"limits": {"budgets": [{"period": "day"}]}})),
        ),
        ("POST", "/keys", Some(json!({"tenant": "bad name"}))),
        ("POST", "/keys", Some(json!({}))),
        ("GET", "/keys?include_revoked=maybe", None),
        ("GET", "/spend?granularity=week", None),
    ] {
        let (status, answer) = picker.admin(method, path, body.clone()).await;
        assert_eq!(
            expect(status, &answer, "invalid"),
            400,
            "{method} {path} {body:?}: {answer}"
        );
    }
    let (status, _, text) = picker
        .admin_raw(
            "PUT",
            "/tenants/acme",
            None,
            Some(ADMIN_TOKEN),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, 201, "an empty body is an empty spec: {text}");
    let response = reqwest::Client::new()
        .post(picker.admin_url("/keys"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (_, answer) = picker
        .admin(
            "PUT",
            "/tenants/acme",
            Some(json!({"limits": {"requests_per_minute": 0}})),
        )
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("limits.requests_per_minute:"),
        "{answer}"
    );

    // Unknown tenants, projects and keys: 404.
    for (method, path, body) in [
        ("GET", "/tenants/nobody", None),
        ("DELETE", "/tenants/nobody", None),
        ("PUT", "/tenants/nobody/projects/web", Some(json!({}))),
        ("DELETE", "/tenants/acme/projects/web", None),
        ("POST", "/keys", Some(json!({"tenant": "nobody"}))),
        (
            "POST",
            "/keys",
            Some(json!({"tenant": "acme", "project": "web"})),
        ),
        ("GET", "/keys/key_0000000000000000", None),
        ("POST", "/keys/key_0000000000000000/rotate", None),
        ("DELETE", "/keys/key_0000000000000000", None),
        ("GET", "/no/such/route", None),
    ] {
        let (status, answer) = picker.admin(method, path, body).await;
        assert_eq!(
            expect(status, &answer, "not_found"),
            404,
            "{method} {path}: {answer}"
        );
    }
    let (status, _, _) = picker
        .admin_raw("POST", "/tenants", None, Some(ADMIN_TOKEN), &[])
        .await;
    assert_eq!(status, 405);

    // Bounds: 409 limit_reached.
    let (status, _) = picker.admin("PUT", "/tenants/beta", None).await;
    assert_eq!(status, 201);
    let (status, answer) = picker.admin("PUT", "/tenants/gamma", None).await;
    assert_eq!(expect(status, &answer, "limit_reached"), 409, "{answer}");
    let (status, created) = picker
        .admin("POST", "/keys", Some(json!({"tenant": "acme"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let (status, answer) = picker
        .admin("POST", "/keys", Some(json!({"tenant": "beta"})))
        .await;
    assert_eq!(expect(status, &answer, "limit_reached"), 409, "{answer}");

    // Conflicts: a tenant with live keys stays; a revoked key cannot be changed.
    let (status, answer) = picker.admin("DELETE", "/tenants/acme", None).await;
    assert_eq!(expect(status, &answer, "conflict"), 409, "{answer}");
    let (status, _) = picker.admin("DELETE", &format!("/keys/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, again) = picker.admin("DELETE", &format!("/keys/{id}"), None).await;
    assert_eq!(status, 200, "revoking twice is not an error: {again}");
    for (method, path, body) in [
        ("POST", format!("/keys/{id}/rotate"), None),
        (
            "PATCH",
            format!("/keys/{id}"),
            Some(json!({"name": "again"})),
        ),
    ] {
        let (status, answer) = picker.admin(method, &path, body).await;
        assert_eq!(
            expect(status, &answer, "conflict"),
            409,
            "{method} {path}: {answer}"
        );
    }
    // Revoking freed the slot; the tenant can go now.
    let (status, _) = picker
        .admin("POST", "/keys", Some(json!({"tenant": "beta"})))
        .await;
    assert_eq!(status, 201);
    let (status, _, body) = picker
        .admin_raw("DELETE", "/tenants/acme", None, Some(ADMIN_TOKEN), &[])
        .await;
    assert_eq!((status, body.as_str()), (204, ""));

    let log = picker.log_text();
    assert!(!log.contains(ADMIN_TOKEN), "{log}");
}

/// Only the configured token's owner gets in: a picker with `[admin]` but no token refuses to
/// start, naming the field.
#[tokio::test]
async fn no_token_no_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("picker.toml");
    std::fs::write(
        &path,
        format!(
            "[tenancy]\nstore = \"embedded\"\npath = \"{}\"\n[admin]\ntoken_env = \"SLUICE_TEST_UNSET_TOKEN\"\n",
            dir.path().join("t.redb").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice-picker"))
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("SLUICE_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "admin.token_env: the environment variable SLUICE_TEST_UNSET_TOKEN is not set"
        ),
        "{stderr}"
    );
}

/// Tenants, keys, the version and the spend are where they were after the picker restarts.
async fn survives_a_restart(dir: &std::path::Path, config: &str) {
    let picker = Picker::start(dir, "first", config);
    let (status, _) = picker.admin("PUT", "/tenants/acme", None).await;
    assert_eq!(status, 201);
    let (_, created) = picker
        .admin("POST", "/keys", Some(json!({"tenant": "acme"})))
        .await;
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let hour = common::now_hour();
    let row = json!({"hour": hour, "tenant": "acme", "key": id, "model": "llama",
        "requests": 3, "input_tokens": 30, "output_tokens": 9, "cached_tokens": 0,
        "cost_nano_usd": 7_000});
    let (status, body) = picker.sync(&json!({"entries": [], "spend": [row]})).await;
    assert_eq!(status, 200, "{body}");
    let (_, etag, before) = picker.snapshot(None).await;
    drop(picker);

    let picker = Picker::start(dir, "second", config);
    let (status, same, after) = picker.snapshot(None).await;
    assert_eq!((status, &same), (200, &etag));
    assert_eq!(after, before);
    let (status, _, _) = picker.snapshot(Some(&etag)).await;
    assert_eq!(status, 304);
    let (_, key) = picker.admin("GET", &format!("/keys/{id}"), None).await;
    assert_eq!(key["tenant"], "acme");
    let (_, report) = picker
        .admin("GET", &format!("/spend?group_by=key&key={id}"), None)
        .await;
    assert_eq!(report["rows"][0]["requests"], 3, "{report}");
    // The version goes on growing.
    picker.admin("PUT", "/tenants/beta", None).await;
    let (_, newer, _) = picker.snapshot(None).await;
    let number = |tag: &str| tag.trim_matches('"').parse::<u64>().unwrap();
    assert!(number(&newer) > number(&etag));
}

#[tokio::test]
async fn state_survives_a_restart_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(&dir.path().join("tenancy.redb"), "");
    survives_a_restart(dir.path(), &config).await;
}

#[tokio::test]
async fn state_survives_a_restart_redis() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis(port);
    survives_a_restart(dir.path(), &redis_config(port, "t2:", "")).await;
}

/// Two pickers on one Redis: a change made through either is in the other's snapshot within
/// its check interval (250 ms).
#[tokio::test]
async fn pickers_sharing_redis_serve_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis(port);
    let config = redis_config(port, "t3:", "");
    let a = Picker::start(dir.path(), "a", &config);
    let b = Picker::start(dir.path(), "b", &config);
    // B caches its (empty) snapshot first.
    let (_, empty, _) = b.snapshot(None).await;
    a.admin("PUT", "/tenants/acme", None).await;
    let (status, created) = a
        .admin("POST", "/keys", Some(json!({"tenant": "acme"})))
        .await;
    assert_eq!(status, 201);
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let (_, a_etag, a_body) = a.snapshot(None).await;
    assert_ne!(a_etag, empty);
    let b_body = until_etag(&b, &a_etag).await;
    assert_eq!(b_body, a_body);
    // The admin API of B reads what A wrote at once.
    let (status, key) = b.admin("GET", &format!("/keys/{id}"), None).await;
    assert_eq!((status, key["id"].as_str()), (200, Some(id.as_str())));
    // B revokes; A drops the key.
    let (status, _) = b.admin("DELETE", &format!("/keys/{id}"), None).await;
    assert_eq!(status, 200);
    let (_, b_etag, _) = b.snapshot(None).await;
    let a_body = until_etag(&a, &b_etag).await;
    assert!(!a_body.contains(&id), "{a_body}");

    // Redis goes away: the admin API answers 503; the snapshot stays the last one read.
    drop(_redis);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, _) = a.admin("GET", "/tenants", None).await;
        if status == 503 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, answer) = a.admin("PUT", "/tenants/beta", None).await;
    assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
    // Once the picker found Redis gone (it checks at most every 250 ms), it still serves the
    // last snapshot it read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, etag, body) = a.snapshot(None).await;
        assert_eq!((status, etag.as_str()), (200, b_etag.as_str()));
        assert_eq!(body, a_body);
        let (status, _, _) = a.snapshot(Some(&b_etag)).await;
        assert_eq!(status, 304);
        if a.log_text()
            .contains("tenancy store unavailable, serving the last snapshot")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", a.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `picker`'s snapshot until its ETag is `etag`; the body.
async fn until_etag(picker: &Picker, etag: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, got, body) = picker.snapshot(None).await;
        if status == 200 && got == etag {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} {got}, wanted {etag}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
