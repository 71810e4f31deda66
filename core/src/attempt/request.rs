//! The attempt's request: which target it goes to, and the request rewritten for it.

use crate::canonical::ApiKind;
use crate::error::{ApiFlavor, GatewayError};
use crate::exchange::{HeaderView, Level, Reply};
use crate::json::TopLevel;
use crate::targets::{PLAN_HEADER, TargetKind};
use crate::translate::{self, Shape, TargetRequest};

use super::plan::Plan;
use super::record::FailoverRecord;
use super::{Attempt, AttemptInfo, AttemptNext, AttemptPorts, AttemptRequestEffects, Managed};

/// The attempt number Envoy adds to each try's headers (route or virtual host
/// `include_attempt_count_in_request`).
const ATTEMPT_COUNT_HEADER: &str = "x-envoy-attempt-count";

/// Headers that carry a client's credential: a provider gets its own instead, never the
/// client's (which is a key to this gateway).
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

impl Attempt {
    /// The attempt's request headers. Returns: `Continue` for a request the downstream filter
    /// did not plan (it goes on untouched: a pool's own cluster, a passthrough path);
    /// `ReadBody` for a planned one (its body is rewritten for the target); a 500 reply when
    /// the plan names a target this configuration does not have.
    pub fn on_request_headers(
        &mut self,
        ports: &AttemptPorts<'_>,
        headers: &dyn HeaderView,
        info: &AttemptInfo<'_>,
    ) -> AttemptRequestEffects {
        let Some(targets) = &self.configured.config.targets else {
            return AttemptRequestEffects::default();
        };
        let Some(plan) = headers.get(PLAN_HEADER).and_then(|v| Plan::parse(&v)) else {
            return AttemptRequestEffects::default();
        };
        let attempt = headers
            .get(ATTEMPT_COUNT_HEADER)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1);
        // The host's metadata names the target of the cluster the attempt went to; it wins
        // when the plan lists it (an attempt number can be off when Envoy skipped a
        // sub-cluster without hosts). Clusters shared by several targets carry none.
        let name = info
            .host_target
            .filter(|t| plan.targets.iter().any(|p| p == t))
            .or_else(|| plan.target_of_attempt(attempt));
        let Some(target) = name.and_then(|n| targets.index_of(n)) else {
            ports.log.log(
                Level::Error,
                "attempt: the plan's target is not in this configuration; answered 500",
            );
            return AttemptRequestEffects {
                next: AttemptNext::Reply(reply(
                    &GatewayError::Internal("the request's target is not configured"),
                    plan.client.flavor(),
                )),
                ..AttemptRequestEffects::default()
            };
        };
        self.managed = Some(Managed {
            target,
            client: plan.client,
            translate: None,
            record: FailoverRecord::continue_from(info.previous_record),
        });
        AttemptRequestEffects {
            next: AttemptNext::ReadBody,
            ..AttemptRequestEffects::default()
        }
    }

    /// A request body callback of a planned attempt; `body` is the whole body at `end`.
    /// Returns `ReadBody` until then; then the headers and body for the target, or a 400 in
    /// the client's format when the request cannot be put in the target's API.
    pub fn on_request_body(
        &mut self,
        ports: &AttemptPorts<'_>,
        body: &[u8],
        end: bool,
    ) -> AttemptRequestEffects {
        let Some(managed) = &mut self.managed else {
            return AttemptRequestEffects::default();
        };
        if !end {
            return AttemptRequestEffects {
                next: AttemptNext::ReadBody,
                ..AttemptRequestEffects::default()
            };
        }
        let Some(target) = self
            .configured
            .config
            .targets
            .as_ref()
            .and_then(|t| t.get(managed.target))
        else {
            return AttemptRequestEffects::default();
        };
        let flavor = managed.client.flavor();
        let quotas = self.configured.config.quotas.as_ref();
        let rewritten = match &target.kind {
            TargetKind::Pool { pool, model } => {
                let credential = quotas
                    .and_then(|q| q.upstream_credentials.get(pool))
                    .map(|c| (c.header.clone(), c.value.clone()));
                for_pool(managed.client, body, model.as_deref(), credential)
            }
            TargetKind::Provider(provider) => {
                let client = Shape::of(managed.client);
                match for_provider(managed.client, client, body, provider) {
                    Ok(rewritten) => {
                        if let Some(client) = client.filter(|c| *c != provider.shape) {
                            managed.translate = Some((provider.shape, client));
                        }
                        Ok(rewritten)
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match rewritten {
            Ok((set_headers, mut remove_headers, body)) => {
                if matches!(target.kind, TargetKind::Provider(_)) {
                    // What steered the request inside the gateway stays inside it (the plan
                    // stays: a later attempt reads it, from these same headers).
                    let routing = &self.configured.config.routing;
                    remove_headers.extend(
                        [
                            routing.model_header.as_str(),
                            routing.base_model_header.as_str(),
                            crate::config::DESTINATION_ENDPOINT_HEADER,
                            crate::targets::CLUSTER_HEADER,
                            crate::targets::MAX_RETRIES_HEADER,
                        ]
                        .map(str::to_owned),
                    );
                }
                let name = target.name.clone();
                managed.record.push_pending(&name);
                AttemptRequestEffects {
                    records: vec![managed.record.to_record()],
                    remove_headers,
                    set_headers,
                    body: Some(body),
                    ..AttemptRequestEffects::default()
                }
            }
            Err(error) => {
                if error.status() >= 500 {
                    ports
                        .log
                        .log(Level::Warn, "attempt: the request could not be rewritten");
                }
                AttemptRequestEffects {
                    next: AttemptNext::Reply(reply(&error, flavor)),
                    ..AttemptRequestEffects::default()
                }
            }
        }
    }
}

type Rewritten = (Vec<(String, String)>, Vec<String>, Vec<u8>);

/// A pool target: the client's API (model servers speak both), with the model the target
/// serves (an adapter, for a LoRA canary) and the pool's own credential when it has one.
///
/// Every attempt sets all it depends on and removes what an earlier attempt may have set:
/// Envoy hands each attempt the request headers as the attempt before left them (its path,
/// a provider's key), and the client's body afresh.
fn for_pool(
    api: ApiKind,
    body: &[u8],
    model: Option<&str>,
    credential: Option<(String, String)>,
) -> Result<Rewritten, GatewayError> {
    let body = match model {
        Some(model) => with_model(body, model)?,
        None => body.to_vec(),
    };
    let mut remove: Vec<String> = CREDENTIAL_HEADERS.iter().map(|h| (*h).to_owned()).collect();
    let mut set = vec![(":path".to_owned(), path_of(api).to_owned())];
    if let Some((header, value)) = credential {
        remove.retain(|h| *h != header);
        set.push((header, value));
    }
    Ok((set, remove, body))
}

/// The path of a client API.
fn path_of(api: ApiKind) -> &'static str {
    match api {
        ApiKind::ChatCompletions => "/v1/chat/completions",
        ApiKind::Completions => "/v1/completions",
        ApiKind::Embeddings => "/v1/embeddings",
        ApiKind::Responses => "/v1/responses",
        ApiKind::Messages => "/v1/messages",
    }
}

/// A provider target: its path, model, credential and API shape.
fn for_provider(
    api: ApiKind,
    client: Option<Shape>,
    body: &[u8],
    provider: &crate::targets::Provider,
) -> Result<Rewritten, GatewayError> {
    let mut set = Vec::new();
    let mut remove: Vec<String> = CREDENTIAL_HEADERS.iter().map(|h| (*h).to_owned()).collect();
    let body = match client {
        Some(client) => {
            let body = translate::request(
                client,
                body,
                &TargetRequest {
                    shape: provider.shape,
                    model: &provider.model,
                    default_max_tokens: provider.default_max_tokens,
                },
            )?;
            set.push((":path".to_owned(), provider.shape.path().to_owned()));
            body
        }
        // Completions, embeddings and Responses: an OpenAI provider serves them as they are.
        None if provider.shape == Shape::OpenAiChat => {
            set.push((":path".to_owned(), path_of(api).to_owned()));
            with_model(body, &provider.model)?
        }
        None => {
            return Err(GatewayError::InvalidField {
                param: "model".into(),
                message: format!(
                    "this model is served by an Anthropic Messages API target, to which the {} API does not translate",
                    api_name(api)
                ),
            });
        }
    };
    // The response is read (usage, translation): no compression.
    remove.push("accept-encoding".to_owned());
    match provider.shape {
        Shape::OpenAiChat => {
            remove.extend(["anthropic-version", "anthropic-beta"].map(str::to_owned));
            if let Some(key) = &provider.api_key {
                set.push(("authorization".to_owned(), format!("Bearer {key}")));
            }
        }
        Shape::AnthropicMessages => {
            remove.push("authorization".to_owned());
            set.push((
                "anthropic-version".to_owned(),
                provider.anthropic_version.clone(),
            ));
            if let Some(key) = &provider.api_key {
                set.push(("x-api-key".to_owned(), key.clone()));
            }
        }
    }
    set.push(("content-type".to_owned(), "application/json".to_owned()));
    Ok((set, remove, body))
}

fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    let top = TopLevel::parse(body)?;
    let model = serde_json::to_string(model)
        .map_err(|_| GatewayError::Internal("writing the model name failed"))?;
    Ok(top.with_replaced("model", &model))
}

fn api_name(api: ApiKind) -> &'static str {
    match api {
        ApiKind::ChatCompletions => "Chat Completions",
        ApiKind::Completions => "Completions",
        ApiKind::Embeddings => "Embeddings",
        ApiKind::Responses => "Responses",
        ApiKind::Messages => "Messages",
    }
}

/// `error` as a reply in `flavor`'s format.
pub(super) fn reply(error: &GatewayError, flavor: ApiFlavor) -> Reply {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    headers.extend(error.headers().into_iter().map(|(k, v)| (k, v.to_owned())));
    Reply {
        status: error.status(),
        headers,
        body: error.body(flavor),
    }
}
