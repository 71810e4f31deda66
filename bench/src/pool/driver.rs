//! The open-loop load driver: sends each planned request at its scheduled time, whatever the
//! earlier ones are doing (one task per request), streams the answer and times it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::exchange::{Outcome, Planned, Status};
use super::stream::StreamReader;

/// A client for one step: no proxy, no overall timeout (the step's deadline bounds every
/// request), a connection per concurrent request as an application's pool would open.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Runs one step against `url`: every request of `plan` at its time, then waits for the stragglers
/// at most `drain` after the last arrival; whatever is still running then is cancelled (which
/// aborts it on the replica) and reported unfinished.
pub async fn run_step(
    client: &reqwest::Client,
    url: &str,
    plan: &[Planned],
    drain: Duration,
) -> Vec<Outcome> {
    // A short lead so that the first request is not late because of the spawning itself.
    run_step_from(client, url, plan, Instant::now() + LEAD, drain).await
}

/// How far ahead of the first arrival a step's clock starts.
pub const LEAD: Duration = Duration::from_millis(20);

/// [`run_step`] with the step's clock starting at `start` (in the future), so that something
/// else can run on the same clock (the replicas' metrics sampler).
pub async fn run_step_from(
    client: &reqwest::Client,
    url: &str,
    plan: &[Planned],
    start: Instant,
    drain: Duration,
) -> Vec<Outcome> {
    let last = plan.last().map_or(Duration::ZERO, |p| p.at);
    let deadline = start + last + drain;
    let url: Arc<str> = Arc::from(url);
    let mut tasks = Vec::with_capacity(plan.len());
    for planned in plan {
        let due = start + planned.at;
        tokio::time::sleep_until(due).await;
        let client = client.clone();
        let url = Arc::clone(&url);
        let planned = planned.clone();
        tasks.push(tokio::spawn(async move {
            send(&client, &url, planned, due, deadline).await
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for (task, planned) in tasks.into_iter().zip(plan) {
        let outcome = task.await.unwrap_or_else(|e| Outcome {
            scheduled: planned.at,
            lateness: Duration::ZERO,
            ttft: None,
            elapsed: Duration::ZERO,
            output_tokens: 0,
            token_times: Vec::new(),
            status: Status::Failed(format!("driver task: {e}")),
        });
        outcomes.push(Outcome {
            scheduled: planned.at,
            ..outcome
        });
    }
    outcomes
}

/// One streaming request, timed from `due`. Gives up at `deadline`.
async fn send(
    client: &reqwest::Client,
    url: &str,
    planned: Planned,
    due: Instant,
    deadline: Instant,
) -> Outcome {
    let lateness = Instant::now().saturating_duration_since(due);
    let mut outcome = Outcome {
        scheduled: Duration::ZERO,
        lateness,
        ttft: None,
        elapsed: Duration::ZERO,
        output_tokens: 0,
        token_times: Vec::new(),
        status: Status::Ok,
    };
    let mut reader = StreamReader::default();
    let exchange = async {
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            // The key the benchmark's quotas know (every setup gets it, as in the overhead runs).
            .header("authorization", format!("Bearer {}", crate::procs::API_KEY));
        for (name, value) in &planned.headers {
            request = request.header(name, value);
        }
        let mut response = request
            .body(planned.body)
            .send()
            .await
            .map_err(|e| Status::Failed(format!("POST: {e}")))?;
        let status = response.status();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            let message = format!("status {status}: {text:.200}");
            return Err(if Status::is_rejection(status.as_u16()) {
                Status::Rejected {
                    status: status.as_u16(),
                    message,
                }
            } else {
                Status::Failed(message)
            });
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Status::Failed(format!("reading the stream: {e}")))?
        {
            let arrived = reader.feed(&chunk).content_events;
            if arrived > 0 {
                let at = due.elapsed();
                outcome.ttft.get_or_insert(at);
                outcome
                    .token_times
                    .extend(std::iter::repeat_n(at, arrived as usize));
            }
        }
        Ok(())
    };
    let result = tokio::time::timeout_at(deadline, exchange).await;
    outcome.elapsed = due.elapsed();
    outcome.output_tokens = reader.completion_tokens.unwrap_or(reader.content_events);
    outcome.status = match result {
        Err(_) => Status::Unfinished,
        Ok(Err(status)) => status,
        Ok(Ok(())) if !reader.done || reader.completion_tokens.is_none() => {
            Status::Failed("the stream ended without usage and [DONE]".into())
        }
        Ok(Ok(())) if outcome.ttft.is_none() => Status::Failed("no content token".into()),
        Ok(Ok(())) => Status::Ok,
    };
    outcome
}
