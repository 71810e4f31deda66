//! Spend rows reported in the quota sync, read back through the admin API's report (JSON and
//! CSV, by hour and by day, grouped and filtered) with the budgets' standings, on a real picker
//! with the embedded store and with a real Redis.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use common::{ADMIN_TOKEN, Picker, embedded_config, free_port, redis, redis_config};

/// Waits out the last seconds of an hour, so the rows' hour, the report's default range and
/// the budgets' current periods all agree.
async fn not_at_the_turn_of_an_hour() {
    let into_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3600;
    if into_hour > 3600 - 20 {
        tokio::time::sleep(Duration::from_secs(3600 - into_hour + 1)).await;
    }
}

fn row(hour: u64, tenant: &str, key: Option<&str>, model: &str, requests: u64, cost: u64) -> Value {
    let mut row = json!({"hour": hour, "tenant": tenant, "model": model,
        "requests": requests, "input_tokens": requests * 100, "output_tokens": requests * 50,
        "cached_tokens": requests * 10, "cost_nano_usd": cost});
    if let Some(key) = key {
        row["key"] = json!(key);
        row["project"] = json!("web");
    }
    row
}

/// `2026-12-06T08:00:00Z` of a Unix hour (with the system's `date`).
fn rfc3339(hour: u64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", hour * 3600),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

async fn report(picker: &Picker, query: &str) -> Value {
    let (status, report) = picker.admin("GET", &format!("/spend?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {report}");
    report
}

async fn spend_round_trip(picker: &Picker, quota: bool) {
    not_at_the_turn_of_an_hour().await;
    let (status, _) = picker
        .admin(
            "PUT",
            "/tenants/acme",
            Some(json!({"limits": {"budgets": [{"period": "day", "usd": 1.0, "tokens": 100000}]}})),
        )
        .await;
    assert_eq!(status, 201);
    picker
        .admin(
            "PUT",
            "/tenants/acme/projects/web",
            Some(json!({"limits": {"budgets": [{"period": "month", "requests": 1000}]}})),
        )
        .await;
    let (_, created) = picker
        .admin(
            "POST",
            "/keys",
            Some(json!({"tenant": "acme", "project": "web",
                "limits": {"budgets": [{"period": "hour", "requests": 10}]}})),
        )
        .await;
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let key = Some(id.as_str());

    let now = common::now_hour();
    let first = json!({"entries": [], "spend": [
        row(now, "acme", key, "llama", 2, 200_000_000),
        row(now, "acme", key, "qwen", 1, 50_000_000),
        row(now, "beta", None, "llama", 1, 1_000_000_000),
        row(now - 48, "acme", key, "llama", 4, 400_000_000),
    ]});
    let (status, body) = picker.sync(&first).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["spend_stored"], true, "{answer}");
    assert_eq!(answer["totals"], json!([]));
    // Another Envoy reports the same dimensions: the rows add up.
    let second = json!({"entries": [], "spend": [row(now, "acme", key, "llama", 2, 200_000_000)]});
    let (status, _) = picker.sync(&second).await;
    assert_eq!(status, 200);

    // Rows that can never be stored are dropped and counted; the sync goes on (its quota
    // entries must not be refused for them), and the filter is told not to send them again.
    let bad = json!({"entries": [], "spend": [row(now, "a b", None, "m", 1, 1)]});
    let (status, body) = picker.sync(&bad).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["spend_stored"],
        true
    );
    let future = json!({"entries": [], "spend": [row(now + 5, "acme", None, "m", 1, 1)]});
    let (status, _) = picker.sync(&future).await;
    assert_eq!(status, 200);
    let metrics = picker.metrics().await;
    assert!(
        metrics.contains("sluice_picker_spend_rows_total{result=\"invalid\"} 2"),
        "{metrics}"
    );
    if !quota {
        // Quota entries need a [quota] section.
        let entries = json!({"entries": [{"key": "t|acme|0|0", "window": 5, "delta": 1,
            "prev_delta": 0, "sliding": false, "ttl_ms": 1000}]});
        let (status, _) = picker.sync(&entries).await;
        assert_eq!(status, 404);
    }

    // The last 24 hours by hour, every dimension.
    let all = report(picker, "").await;
    assert_eq!(all["granularity"], "hour");
    assert_eq!(
        all["group_by"],
        json!(["tenant", "key", "project", "model"])
    );
    let rows = all["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    let hour = rfc3339(now);
    let llama = &rows[0];
    assert_eq!(
        (
            &llama["period_start"],
            &llama["tenant"],
            &llama["key"],
            &llama["project"],
            &llama["model"]
        ),
        (
            &json!(hour),
            &json!("acme"),
            &json!(id),
            &json!("web"),
            &json!("llama")
        )
    );
    assert_eq!(
        (
            &llama["requests"],
            &llama["input_tokens"],
            &llama["output_tokens"],
            &llama["cached_tokens"]
        ),
        (&json!(4), &json!(400), &json!(200), &json!(40))
    );
    assert!(close(&llama["cost_usd"], 0.4), "{llama}");
    assert_eq!(rows[1]["model"], "qwen");
    let beta = &rows[2];
    assert_eq!(beta["tenant"], "beta");
    assert!(
        beta.get("key").is_none() && beta.get("project").is_none(),
        "{beta}"
    );

    // By tenant only.
    let by_tenant = report(picker, "group_by=tenant").await;
    let rows = by_tenant["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{by_tenant}");
    assert_eq!(
        (&rows[0]["tenant"], &rows[0]["requests"]),
        (&json!("acme"), &json!(5))
    );
    assert!(close(&rows[0]["cost_usd"], 0.45));
    assert!(rows[0].get("model").is_none());

    // By day over four days, one tenant, per model.
    let from = &rfc3339(now - 72)[..10];
    let to = &rfc3339(now + 24)[..10];
    let days = report(
        picker,
        &format!("granularity=day&from={from}&to={to}&group_by=model&tenant=acme"),
    )
    .await;
    assert_eq!(days["granularity"], "day");
    let rows = days["rows"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["period_start"].as_str().unwrap().to_owned(),
                r["model"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let day = |hour: u64| format!("{}T00:00:00Z", &rfc3339(hour)[..10]);
    assert_eq!(
        summary,
        [
            (day(now - 48), "llama".to_owned(), 4),
            (day(now), "llama".to_owned(), 4),
            (day(now), "qwen".to_owned(), 1),
        ]
    );
    // A filter on the key, by hour over the same range.
    let keyed = report(
        picker,
        &format!("from={from}&to={to}&group_by=key&key={id}"),
    )
    .await;
    assert_eq!(keyed["rows"].as_array().unwrap().len(), 2, "{keyed}");

    // CSV: by format=csv and by Accept.
    let (status, headers, csv) = picker
        .admin_raw(
            "GET",
            "/spend?group_by=tenant,model&format=csv",
            None,
            Some(ADMIN_TOKEN),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv,
        format!(
            "period_start,tenant,model,requests,input_tokens,output_tokens,cached_tokens,cost_usd\n\
             {hour},acme,llama,4,400,200,40,0.4\n\
             {hour},acme,qwen,1,100,50,10,0.05\n\
             {hour},beta,llama,1,100,50,10,1\n"
        )
    );
    let (_, _, by_accept) = picker
        .admin_raw(
            "GET",
            "/spend?group_by=tenant,model",
            None,
            Some(ADMIN_TOKEN),
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(by_accept, csv);

    // Budgets: what the store holds for each current period, and what is left.
    let budgets = all["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 3, "{all}");
    let tenant = &budgets[0];
    assert_eq!(
        (&tenant["scope"], &tenant["period"]),
        (&json!("tenant"), &json!("day"))
    );
    assert_eq!(tenant["period_start"], day(now));
    assert!(
        close(&tenant["spent_usd"], 0.45) && close(&tenant["remaining_usd"], 0.55),
        "{tenant}"
    );
    // Tokens: input and output, 5 requests of 150.
    assert_eq!(
        (&tenant["spent_tokens"], &tenant["remaining_tokens"]),
        (&json!(750), &json!(99_250))
    );
    let project = &budgets[1];
    assert_eq!(
        (&project["scope"], &project["project"]),
        (&json!("project"), &json!("web"))
    );
    // This month: the rows of 48 hours ago too, unless they were last month.
    let month_start = |hour: u64| rfc3339(hour)[..7].to_owned();
    let month_requests = if month_start(now - 48) == month_start(now) {
        9
    } else {
        5
    };
    assert_eq!(project["spent_requests"], month_requests, "{project}");
    let key_budget = &budgets[2];
    assert_eq!(
        (&key_budget["scope"], &key_budget["key"]),
        (&json!("key"), &json!(id))
    );
    assert_eq!(
        (
            &key_budget["limit_requests"],
            &key_budget["spent_requests"],
            &key_budget["remaining_requests"]
        ),
        (&json!(10), &json!(5), &json!(5))
    );
    assert!(key_budget.get("limit_usd").is_none() && key_budget.get("remaining_usd").is_none());
    // Another tenant's report lists only its budgets (none).
    assert_eq!(report(picker, "tenant=beta").await["budgets"], json!([]));

    let metrics = picker.metrics().await;
    for expected in [
        "sluice_spend_usd_total{tenant=\"acme\",model=\"llama\"} 0.8",
        "sluice_spend_usd_total{tenant=\"beta\",model=\"llama\"} 1.0",
        "sluice_picker_spend_rows_total{result=\"stored\"} 5",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
}

#[tokio::test]
async fn spend_reported_in_syncs_is_read_back_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(&dir.path().join("tenancy.redb"), "");
    let picker = Picker::start(dir.path(), "picker", &config);
    spend_round_trip(&picker, false).await;
}

#[tokio::test]
async fn spend_reported_in_syncs_is_read_back_redis() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis(port);
    let picker = Picker::start(dir.path(), "picker", &redis_config(port, "t4:", ""));
    spend_round_trip(&picker, true).await;
}

/// Quota entries and spend rows in one sync: the entries are applied in Redis first; while
/// Redis is down the answer is 503 and the spend rows are not stored either (here they go to the
/// embedded store, which is up), so the filter's retry counts them once.
#[tokio::test]
async fn quota_entries_first_then_spend() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = redis(port);
    let config = format!(
        "[quota]\nredis_url = \"redis://127.0.0.1:{port}\"\nkey_prefix = \"t5:\"\n{}",
        embedded_config(&dir.path().join("tenancy.redb"), "")
    );
    let picker = Picker::start(dir.path(), "picker", &config);
    let now = common::now_hour();
    let entry = json!({"key": "t|acme|0|0", "window": 9, "delta": 2, "prev_delta": 0,
        "sliding": false, "ttl_ms": 60000});
    let sync = json!({"entries": [entry], "spend": [row(now, "acme", None, "llama", 1, 5)]});
    let (status, body) = picker.sync(&sync).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&answer["totals"], &answer["spend_stored"]),
        (&json!([[2, 0]]), &json!(true))
    );
    drop(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = picker.sync(&sync).await;
        if status == 503 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        let (status, _) = picker.sync(&sync).await;
        assert_eq!(status, 503);
    }
    // Only the row of the sync that was answered 200.
    let spent = report(&picker, "group_by=tenant").await;
    assert_eq!(spent["rows"][0]["requests"], 1, "{spent}");
    // With [quota], every sync checks Redis (a 200 tells the filter its quota view is fresh),
    // one without entries too.
    let (status, body) = picker
        .sync(&json!({"entries": [], "spend": [row(now, "acme", None, "llama", 1, 5)]}))
        .await;
    assert_eq!(status, 503, "{body}");
}
