//! The Grafana dashboard (`dashboards/sluice.json`) read as Grafana would and its queries run
//! against a real Prometheus: each panel's PromQL with Grafana's variables substituted
//! (`$__rate_interval`, `$__interval`, `$__range`, the dashboard's own variables at "All"),
//! sent as the range or instant query its panel sends, until every one returns data. What a
//! dashboard must be to load anywhere is checked first: a Prometheus datasource variable that
//! every panel and query uses (no hard-coded datasource uid), unique titles, a query per panel.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::paths;
use crate::prometheus_server::{Prometheus, Series};

/// The datasource every panel and query names: the dashboard's variable, never a uid.
const DATASOURCE_UID: &str = "${datasource}";

/// Where the committed dashboard is.
pub fn path() -> PathBuf {
    paths::repo_root().join("dashboards/sluice.json")
}

/// One query of one panel, as written in the dashboard.
#[derive(Debug, Clone)]
pub struct Query {
    /// The row the panel is under.
    pub row: String,
    pub panel: String,
    pub expr: String,
    /// The legend, whose `{{label}}`s name the labels each series must carry.
    pub legend: String,
    /// Sent as an instant query at the range's end (bar gauges), not a range query.
    pub instant: bool,
}

/// The dashboard: its queries and the "All" value of each of its variables.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub queries: Vec<Query>,
    /// `(name, value)`: what `$name` stands for when every value is selected.
    variables: Vec<(String, String)>,
}

impl Dashboard {
    /// Reads `dashboards/sluice.json`; panics saying what is wrong with it.
    pub fn load() -> Self {
        let path = path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        Self::from_json(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The dashboard in `json`, or what keeps it from loading in Grafana as shipped.
    pub fn from_json(json: &Value) -> Result<Self, String> {
        if json["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
            return Err("schemaVersion must be a current Grafana's (39 or later)".into());
        }
        let variables = json["templating"]["list"]
            .as_array()
            .ok_or("no templating.list")?;
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .ok_or("no `datasource` variable")?;
        if datasource["type"] != "datasource" || datasource["query"] != "prometheus" {
            return Err(format!(
                "the `datasource` variable must be of type datasource over prometheus: {datasource}"
            ));
        }
        let mut all_values = Vec::new();
        for variable in variables {
            let name = variable["name"].as_str().ok_or("a variable without name")?;
            if name == "datasource" {
                continue;
            }
            if variable["datasource"]["uid"] != DATASOURCE_UID && variable["type"] == "query" {
                return Err(format!("variable {name} must query ${{datasource}}"));
            }
            let all = variable["allValue"]
                .as_str()
                .filter(|_| variable["includeAll"] == true)
                .ok_or(format!("variable {name} needs an \"All\" value (allValue)"))?;
            all_values.push((name.to_owned(), all.to_owned()));
        }
        let mut queries = Vec::new();
        let mut titles = Vec::new();
        let mut row = String::from("(top)");
        for panel in panels(json)? {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            if panel["type"] == "row" {
                row = title;
                continue;
            }
            if title.is_empty() {
                return Err(format!("a panel without a title under {row}"));
            }
            if titles.contains(&title) {
                return Err(format!("two panels are titled {title:?}"));
            }
            titles.push(title.clone());
            check_datasource(&panel["datasource"], &title)?;
            let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
            for target in targets.ok_or(format!("panel {title:?} has no query"))? {
                check_datasource(&target["datasource"], &title)?;
                let expr = target["expr"]
                    .as_str()
                    .filter(|e| !e.trim().is_empty())
                    .ok_or(format!("panel {title:?} has a query without expr"))?;
                queries.push(Query {
                    row: row.clone(),
                    panel: title.clone(),
                    expr: expr.to_owned(),
                    legend: target["legendFormat"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    instant: target["instant"] == true,
                });
            }
        }
        Ok(Self {
            queries,
            variables: all_values,
        })
    }

    /// `query`'s expression as Grafana sends it for a panel over `range` at `step`, with
    /// Prometheus scraping every `scrape`: `$__interval` is the step, `$__rate_interval`
    /// `max(step + scrape, 4 × scrape)` (Grafana's rule), `$__range` the range, and each of the
    /// dashboard's variables its "All" value. An unknown variable is an error.
    pub fn render(
        &self,
        query: &Query,
        range: Duration,
        step: Duration,
        scrape: Duration,
    ) -> Result<String, String> {
        let rate_interval = (step + scrape).max(scrape * 4);
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut values: Vec<(String, String)> = vec![
            ("__rate_interval".into(), ms(rate_interval)),
            ("__interval".into(), ms(step)),
            ("__range".into(), format!("{}s", range.as_secs().max(1))),
        ];
        values.extend(self.variables.iter().cloned());
        // Longest names first, so that `$__interval` does not eat the start of another.
        values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        let mut expr = query.expr.clone();
        for (name, value) in &values {
            expr = expr.replace(&format!("${{{name}}}"), value);
            expr = expr.replace(&format!("${name}"), value);
        }
        let unknown = expr
            .match_indices('$')
            .map(|(at, _)| &expr[at..])
            .find(|rest| {
                rest[1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c == '{' || c == '_' || c.is_ascii_alphabetic())
            });
        match unknown {
            Some(rest) => Err(format!(
                "unknown variable at {:?} in {}",
                rest.chars().take(24).collect::<String>(),
                query.expr
            )),
            None => Ok(expr),
        }
    }
}

/// Every panel, those inside collapsed rows included, in the dashboard's order.
fn panels(json: &Value) -> Result<Vec<&Value>, String> {
    let mut out = Vec::new();
    for panel in json["panels"].as_array().ok_or("no panels")? {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    Ok(out)
}

fn check_datasource(datasource: &Value, title: &str) -> Result<(), String> {
    if datasource["type"] == "prometheus" && datasource["uid"] == DATASOURCE_UID {
        Ok(())
    } else {
        Err(format!(
            "panel {title:?} must use {{\"type\": \"prometheus\", \"uid\": \"{DATASOURCE_UID}\"}}, not {datasource}"
        ))
    }
}

/// A metric some panels need that is not exported yet (its branch has not landed): their
/// queries are reported, not failed, while it has no data.
#[derive(Debug, Clone, Copy)]
pub struct Awaiting {
    pub metric: &'static str,
    pub why: &'static str,
}

/// Metrics that branches not merged yet add, and what the panels over them need to have data
/// then. Remove an entry once its branch has landed (the report says "ok (listed as
/// awaiting...)" when its panels have data).
pub const AWAITING: &[Awaiting] = &[];

/// What one query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// At least one value that is a number (not NaN), in a series that has every label its
    /// legend names.
    Data,
    /// No series, or only NaN (a quantile over no observations).
    Empty,
    /// Numbers, but no series with these labels of the legend (a label name the metric does
    /// not have: the panel would show nameless series).
    WithoutLabels(Vec<String>),
    /// The query could not be sent (an unknown variable) or Prometheus refused it.
    Refused(String),
}

/// The last outcome of each query.
#[derive(Debug, Clone)]
pub struct Report {
    pub results: Vec<(Query, String, Outcome)>,
    awaiting: Vec<Awaiting>,
}

impl Report {
    /// The queries whose panels stay empty and wait for nothing: what fails the check.
    pub fn failures(&self) -> Vec<&(Query, String, Outcome)> {
        self.results
            .iter()
            .filter(|(query, _, outcome)| match outcome {
                Outcome::Data => false,
                Outcome::Empty => self.awaited_by(query).is_none(),
                // Wrong whatever metric it waits for.
                Outcome::Refused(_) | Outcome::WithoutLabels(_) => true,
            })
            .collect()
    }

    fn awaited_by(&self, query: &Query) -> Option<&Awaiting> {
        self.awaiting.iter().find(|a| query.expr.contains(a.metric))
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (query, rendered, outcome) in &self.results {
            let status = match (outcome, self.awaited_by(query)) {
                (Outcome::Data, None) => "ok".to_owned(),
                (Outcome::Data, Some(a)) => {
                    format!("ok (listed as awaiting {}: remove that entry)", a.metric)
                }
                (Outcome::Refused(e), _) => format!("REFUSED: {e}"),
                (Outcome::Empty, Some(a)) => format!("awaiting {} ({})", a.metric, a.why),
                (Outcome::Empty, None) => "NO DATA".to_owned(),
                (Outcome::WithoutLabels(labels), _) => format!("NO LABELS {labels:?}"),
            };
            writeln!(f, "{status:>8}  {} / {}", query.row, query.panel)?;
            if !matches!(outcome, Outcome::Data) {
                writeln!(f, "          query: {rendered}")?;
            }
        }
        let failures = self.failures().len();
        let awaiting = self
            .results
            .iter()
            .filter(|(q, _, o)| *o == Outcome::Empty && self.awaited_by(q).is_some())
            .count();
        write!(
            f,
            "{} queries: {} with data, {failures} without, {awaiting} awaiting a metric",
            self.results.len(),
            self.results.len() - failures - awaiting,
        )
    }
}

/// Runs every query of `dashboard` over `[since, now]` once.
pub async fn check(
    prometheus: &Prometheus,
    dashboard: &Dashboard,
    since: SystemTime,
    step: Duration,
    awaiting: &[Awaiting],
) -> Report {
    let end = SystemTime::now();
    let range = end.duration_since(since).unwrap_or_default();
    let mut results = Vec::new();
    for query in &dashboard.queries {
        let (rendered, outcome) =
            match dashboard.render(query, range, step, prometheus.scrape_interval) {
                Err(e) => (query.expr.clone(), Outcome::Refused(e)),
                Ok(rendered) => {
                    let answer = if query.instant {
                        prometheus.query(&rendered, end).await
                    } else {
                        prometheus.query_range(&rendered, since, end, step).await
                    };
                    let outcome = match answer {
                        Err(e) => Outcome::Refused(e),
                        Ok(series) => outcome(query, &series),
                    };
                    (rendered, outcome)
                }
            };
        results.push((query.clone(), rendered, outcome));
    }
    Report {
        results,
        awaiting: awaiting.to_vec(),
    }
}

/// What `series` show of `query`'s panel.
fn outcome(query: &Query, series: &[Series]) -> Outcome {
    let with_data: Vec<&Series> = series
        .iter()
        .filter(|s| s.values.iter().any(|v| !v.is_nan()))
        .collect();
    if with_data.is_empty() {
        return Outcome::Empty;
    }
    let missing: Vec<String> = legend_labels(&query.legend)
        .into_iter()
        .filter(|label| {
            !with_data.iter().any(|s| {
                s.labels
                    .get(label)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            })
        })
        .collect();
    if missing.is_empty() {
        Outcome::Data
    } else {
        Outcome::WithoutLabels(missing)
    }
}

/// The labels a legend names (`{{gen_ai_request_model}} {{gen_ai_token_type}}`).
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// Checks every query until all have data (but those awaiting a metric) or `timeout` passes,
/// and returns the last report. Stops at once when Prometheus refuses a query: waiting cannot
/// mend it.
pub async fn wait_for_data(
    prometheus: &Prometheus,
    dashboard: &Dashboard,
    since: SystemTime,
    step: Duration,
    awaiting: &[Awaiting],
    timeout: Duration,
) -> Report {
    let deadline = Instant::now() + timeout;
    loop {
        let report = check(prometheus, dashboard, since, step, awaiting).await;
        let refused = report
            .results
            .iter()
            .any(|(_, _, o)| matches!(o, Outcome::Refused(_)));
        if report.passed() || refused || Instant::now() >= deadline {
            return report;
        }
        tokio::time::sleep(step).await;
    }
}
