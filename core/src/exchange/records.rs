//! The filter-state records an exchange leaves for the access log, rendered as one JSON value
//! each.

use super::effects::{Record, RecordKey};
use crate::guardrails::{Guardrails, Hits};
use crate::usage::TokenRecord;

/// `sluice.tokens`, e.g. `{"input":12,"output":40,"cached":0,"reasoning":0,"total":52,
/// "source":"reported","model":"m","tenant":"acme"}`.
pub fn tokens(record: &TokenRecord) -> Record {
    let c = &record.counts;
    let value = serde_json::json!({
        "input": c.input,
        "output": c.output,
        "cached": c.cached,
        "reasoning": c.reasoning,
        "total": c.total(),
        "source": c.source(),
        "model": record.model,
        "tenant": record.tenant,
    })
    .to_string();
    Record {
        key: RecordKey::Tokens,
        value,
    }
}

/// `sluice.guardrails`: rule ids, actions and counts, never the matched text, e.g.
/// `{"policy":"default","blocked":"aws_access_key","request":{"email":{"redact":1}},
/// "response":{}}`. `None` when there is nothing to record.
pub fn guardrails(
    guardrails: &Guardrails,
    policy: Option<usize>,
    blocked: Option<&str>,
    request: &Hits,
    response: &Hits,
) -> Option<Record> {
    if request.is_empty() && response.is_empty() && blocked.is_none() {
        return None;
    }
    let render = |hits: &Hits| {
        let mut map = serde_json::Map::new();
        for ((rule, action), count) in &hits.0 {
            let entry = map
                .entry(guardrails.rule_id(*rule).to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(actions) = entry {
                actions.insert(action.as_str().to_owned(), (*count).into());
            }
        }
        serde_json::Value::Object(map)
    };
    let value = serde_json::json!({
        "policy": policy.and_then(|p| guardrails.policy(p)).map(|p| p.name.as_str()),
        "blocked": blocked,
        "request": render(request),
        "response": render(response),
    })
    .to_string();
    Some(Record {
        key: RecordKey::Guardrails,
        value,
    })
}
