//! The request phases: identify → route → guard → admit → pick → rewrite.

use std::sync::Arc;

use super::decision::fallback_record;
use super::effects::{BodyNext, Destination, Reply, RequestEffects, RequestNext, RequestWrite};
use super::flow::{Entry, FlowHeaders};
use super::pick::{self, PickOutcome, PickTarget};
use super::ports::{Event, InFlightRead, Level, Ports};
use super::records;
use super::response_guard::ResponseGuard;
use super::views::{HeaderView, HostError, StreamInfo};
use super::{Accounting, Configured, Exchange};
use crate::api::Endpoint;
use crate::canonical::ApiKind;
use crate::error::{ApiFlavor, GatewayError};
use crate::flow::{FAIRNESS_HEADER, OBJECTIVE_HEADER};
use crate::guardrails::{Action, Direction, Hits};
use crate::pipeline::{
    self, HeadersDecision, LocalReply, PolicyKeys, RequestHead, RoutedRequest, check_body_size,
};
use crate::telemetry::ApiLabel;

impl Exchange {
    /// The request headers, before any routing decision (`Err`: the host could not read them;
    /// the request fails closed). Returns the headers to remove (client
    /// copies of the gateway's own headers, the client's key) and what happens next:
    /// `Continue` forwards the request unread (a passthrough path, once admitted), `ReadBody`
    /// holds the headers while the body is buffered (an inference request), `Reply` answers
    /// now (`/v1/models`, or a refusal in the API's format).
    pub fn on_request_headers(
        &mut self,
        ports: &Ports<'_>,
        headers: Result<&dyn HeaderView, HostError>,
        end_of_stream: bool,
    ) -> RequestEffects {
        let mut effects = self.request_headers(ports, headers, end_of_stream);
        self.decided_if_answered(&mut effects);
        effects
    }

    fn request_headers(
        &mut self,
        ports: &Ports<'_>,
        headers: Result<&dyn HeaderView, HostError>,
        end_of_stream: bool,
    ) -> RequestEffects {
        let mut effects = RequestEffects::default();
        let Ok(headers) = headers else {
            let error = GatewayError::Internal("reading request headers failed");
            effects.next = self.reject(ports, &error);
            return effects;
        };
        let method = headers.get(":method");
        let path = headers.get(":path");
        let content_type = headers.get("content-type");
        let content_length = headers.get("content-length");
        let head = RequestHead {
            method: method.as_deref().unwrap_or_default(),
            path: path.as_deref().unwrap_or_default(),
            content_type: content_type.as_deref(),
            content_length: content_length.as_deref(),
            anthropic_version: headers.get("anthropic-version").is_some(),
            end_of_stream,
        };
        self.api_label = ApiLabel::of(Endpoint::classify(head.path));
        self.decision.api_label(self.api_label);
        self.flavor = ApiFlavor::from_path(head.path);
        let Some(configured) = self.configured.clone() else {
            effects.next = self.reject(ports, &GatewayError::NotConfigured);
            return effects;
        };
        if configured.config.flow_control.is_some() {
            self.flow_headers = FlowHeaders {
                objective: flow_header(headers, OBJECTIVE_HEADER),
                fairness: flow_header(headers, FAIRNESS_HEADER),
            };
        }
        if let Some(targets) = &configured.config.targets {
            self.sticky_values = targets
                .sticky_headers
                .iter()
                .filter_map(|name| Some((name.clone(), headers.get(name)?.into_owned())))
                .collect();
        }
        let removed =
            self.internal_headers(ports, &configured, headers, &mut effects.remove_headers);
        let quotas = configured.config.quotas.as_ref();
        let identified = removed.and_then(|()| {
            self.quota
                .identify(ports, quotas, headers, &mut effects.remove_headers)
        });
        if let Err(error) = identified {
            effects.next = self.reject(ports, &error);
            return effects;
        }
        effects.next =
            match pipeline::decide_on_headers(&configured.config, &configured.models, &head) {
                HeadersDecision::Passthrough => {
                    match self.quota.admit_passthrough(ports, quotas, self.flavor) {
                        Ok(()) => RequestNext::Continue,
                        Err(error) => self.reject(ports, &error),
                    }
                }
                HeadersDecision::Reply(reply) => self.send(ports, &reply),
                HeadersDecision::ReadBody(api) => {
                    self.reading_body = Some(api);
                    self.flavor = api.flavor();
                    self.started_us = ports.clock.now_us();
                    RequestNext::ReadBody
                }
            };
        effects
    }

    /// A request body callback: `buffered` bytes are held so far. Returns `Pass` when the
    /// exchange does not read this body, `Buffer` to keep holding, `Complete` at its end (the
    /// host then reads the whole body and calls `on_request_body_complete`), `Reply` when the
    /// body is over the limit.
    pub fn on_request_body(
        &mut self,
        ports: &Ports<'_>,
        buffered: usize,
        end_of_stream: bool,
    ) -> BodyNext {
        if self.reading_body.is_none() {
            return BodyNext::Pass;
        }
        self.body_size = buffered;
        let too_large = self
            .configured
            .as_ref()
            .and_then(|c| check_body_size(&c.config, buffered).err());
        if let Some(error) = too_large {
            return BodyNext::Reply(self.reject_reply(ports, &error));
        }
        if end_of_stream {
            BodyNext::Complete { size: buffered }
        } else {
            BodyNext::Buffer
        }
    }

    /// Request trailers: they end a body that did not end on its own (chunked with trailers).
    /// Returns `Complete` when the exchange was reading the body, else `Pass`.
    pub fn on_request_trailers(&mut self) -> BodyNext {
        if self.reading_body.is_none() {
            return BodyNext::Pass;
        }
        BodyNext::Complete {
            size: self.body_size,
        }
    }

    /// The whole request body (`Err`: the host could not read it). Routes, guards, admits and
    /// picks; returns the edits that send the request on (credential, body, routing headers,
    /// destination) and `Continue`, or a `Reply` that refuses it, with the guardrails' record.
    pub fn on_request_body_complete(
        &mut self,
        ports: &Ports<'_>,
        info: &dyn StreamInfo,
        body: Result<&[u8], HostError>,
    ) -> RequestEffects {
        let mut effects = self.request_body_complete(ports, info, body);
        self.decided_if_answered(&mut effects);
        effects
    }

    fn request_body_complete(
        &mut self,
        ports: &Ports<'_>,
        info: &dyn StreamInfo,
        body: Result<&[u8], HostError>,
    ) -> RequestEffects {
        let mut effects = RequestEffects::default();
        let Some(api) = self.reading_body.take() else {
            return effects;
        };
        let Some(configured) = self.configured.clone() else {
            effects.next = self.reject(ports, &GatewayError::NotConfigured);
            return effects;
        };
        let Ok(body) = body else {
            effects.next = self.reject(ports, &GatewayError::Internal("reading the body failed"));
            return effects;
        };
        match self.route(ports, &configured, api, info, body, &mut effects) {
            Ok(Entry::Go) => effects.next = RequestNext::Continue,
            Ok(Entry::Hold) => effects.next = RequestNext::Hold,
            Err(error) => {
                // A refused request goes nowhere: no edit is worth a host call.
                effects.credential = None;
                effects.body = None;
                effects.route_headers.clear();
                effects.destination = None;
                effects.next = self.reject(ports, &error);
            }
        }
        effects
    }

    /// A request answered by the filter is decided: its decision fields go with the reply
    /// (written before it, while tracing can still read them).
    pub(super) fn decided_if_answered(&mut self, effects: &mut RequestEffects) {
        if matches!(effects.next, RequestNext::Reply(_)) {
            effects.records.extend(self.decision_records());
        }
    }

    /// The decision fields, once (then nothing): written as soon as the request's outcome is
    /// known, since Envoy tags the request's span before the stream-end callbacks run.
    pub(super) fn decision_records(&mut self) -> Vec<super::effects::Record> {
        if self.configured.is_none() {
            return Vec::new();
        }
        let (who, quota) = self.quota.decided();
        self.decision.records(who, quota)
    }

    /// A request edit did not take: the request fails closed. Returns the reply to send
    /// instead (500 in the API's format); logged and counted.
    pub fn on_request_write_failed(&mut self, ports: &Ports<'_>, write: RequestWrite) -> Reply {
        self.reject_reply(ports, &GatewayError::Internal(write.describe()))
    }

    /// The host could not send a reply (`detail`: its status): it resets the request instead,
    /// which this logs and counts.
    pub fn on_reply_failed(&mut self, ports: &Ports<'_>, detail: &str) {
        ports.log.log(
            Level::Warn,
            &format!("sending a local reply failed ({detail}): resetting the request"),
        );
        ports.telemetry.count(Event::FailedClosed);
    }

    /// Route, guard, admit, seat in flow control, pick: fills `effects` with what sends the
    /// request on, or holds it (then the pick waits for the release).
    fn route(
        &mut self,
        ports: &Ports<'_>,
        configured: &Arc<Configured>,
        api: ApiKind,
        info: &dyn StreamInfo,
        body: &[u8],
        effects: &mut RequestEffects,
    ) -> Result<Entry, GatewayError> {
        let config = &configured.config;
        let tenant = self.quota.tenant().map(str::to_owned);
        let route_policies = config
            .guardrails
            .as_ref()
            .is_some_and(|g| g.0.has_route_policies());
        let route = if route_policies {
            info.route_name()
                .map_err(|_| GatewayError::Internal("reading the route name failed"))?
        } else {
            None
        };
        let keys = PolicyKeys {
            route: route.as_deref(),
            tenant: tenant.as_deref(),
        };
        let mut routed = match pipeline::route_request_for(config, api, body, keys) {
            Ok(routed) => {
                self.guard_request(ports, configured, &routed, effects);
                routed
            }
            Err((error, hits)) => {
                if let (Some(guardrails), GatewayError::ContentPolicy { rule }) =
                    (&config.guardrails, &error)
                {
                    self.decision.guardrail_hits(&guardrails.0, &hits);
                    self.decision.guardrail(rule, Action::Block);
                    if !hits.is_empty() {
                        ports
                            .telemetry
                            .guardrail_hits(&guardrails.0, Direction::Request, &hits);
                    }
                    effects.records.extend(records::guardrails(
                        &guardrails.0,
                        None,
                        Some(rule),
                        &hits,
                        &Hits::default(),
                    ));
                }
                return Err(error);
            }
        };
        // A model served by chains: the chain's first target decides the pool (a provider has
        // none: no replica to pick, no queue to hold in).
        let chosen = self.choose_chain(ports, config, &routed, tenant.as_deref());
        let to_pool = match &chosen {
            Some(chosen) => {
                if let Some(pool) = &chosen.first_pool {
                    routed.pool.clone_from(pool);
                }
                if let Some(model) = &chosen.first_model {
                    // A pool target under its own model (a canary adapter): the request is
                    // rewritten to it here, so the pick sees the adapter and a pool cluster
                    // without the upstream filter gets it too.
                    let current = routed.body.as_deref().unwrap_or(body);
                    let name = serde_json::to_string(model)
                        .map_err(|_| GatewayError::Internal("encoding the model name failed"))?;
                    routed.body =
                        Some(crate::json::TopLevel::parse(current)?.with_replaced("model", &name));
                    routed.model.clone_from(model);
                }
                chosen.first_pool.is_some()
            }
            None => {
                self.decision.target(&routed.pool, None);
                true
            }
        };
        self.decision
            .routed(api, &routed.requested_model, &routed.model);
        effects.credential = self.quota.admit(ports, config.quotas.as_ref(), &routed)?;
        // Admitted: the chain's record (a refused request went to no chain).
        if let Some(chosen) = &chosen {
            effects.records.push(chosen.record.clone());
            // Rerouted before any attempt; the attempts overwrite it when one of them fails.
            effects.records.extend(fallback_record(&chosen.rerouted));
            self.on_chain = true;
        }
        // Flow control's admission and the pick read the pool's in-flight counts: once.
        let in_flight = config
            .flow_control
            .as_ref()
            .filter(|_| to_pool)
            .map(|_| ports.in_flight.read(&routed.pool));
        let entry = if to_pool {
            self.enter_flow(
                ports,
                configured,
                &routed,
                tenant.as_deref(),
                in_flight.as_ref(),
                &mut effects.records,
            )?
        } else {
            Entry::Go
        };
        if matches!(entry, Entry::Go) && to_pool {
            let target = PickTarget::of(&routed);
            effects.destination = self.pick_replica(ports, configured, &target, in_flight)?;
        }
        effects.body.clone_from(&routed.body);
        effects.route_headers = vec![
            (
                config.routing.model_header.as_str().to_owned(),
                routed.model.clone(),
            ),
            (
                config.routing.base_model_header.as_str().to_owned(),
                routed.base_model.clone(),
            ),
        ];
        if let Some(chosen) = chosen {
            effects.route_headers.extend(chosen.headers);
        }
        let guard = response_guard(configured, &routed, api);
        self.accounting = Some(Accounting::new(&routed, self.started_us, guard, tenant));
        Ok(entry)
    }

    /// Counts and records what the guardrails found in a request that goes on.
    fn guard_request(
        &mut self,
        ports: &Ports<'_>,
        configured: &Configured,
        routed: &RoutedRequest,
        effects: &mut RequestEffects,
    ) {
        let (Some(guardrails), Some(verdict)) = (&configured.config.guardrails, &routed.guardrails)
        else {
            return;
        };
        if !verdict.hits.is_empty() {
            ports
                .telemetry
                .guardrail_hits(&guardrails.0, Direction::Request, &verdict.hits);
            self.decision.guardrail_hits(&guardrails.0, &verdict.hits);
        }
        effects.records.extend(records::guardrails(
            &guardrails.0,
            Some(verdict.policy),
            None,
            &verdict.hits,
            &Hits::default(),
        ));
        self.guard = Some((Some(verdict.policy), verdict.hits.clone()));
    }

    /// The replicas to send `target` to, best first, when picking is on and a fresh snapshot
    /// is at hand; `None` leaves the choice to Envoy. A request flow control seated is not
    /// shed and goes to a replica with a free seat (`pick::pick`). `in_flight`: the pool's
    /// counts if this phase already read them.
    pub(super) fn pick_replica(
        &mut self,
        ports: &Ports<'_>,
        configured: &Configured,
        target: &PickTarget,
        in_flight: Option<InFlightRead>,
    ) -> Result<Option<Destination>, GatewayError> {
        let Some(picking) = &configured.config.picking else {
            return Ok(None);
        };
        let seated = configured
            .config
            .flow_control
            .as_ref()
            .filter(|_| self.seat.is_some());
        let shed = seated.is_none();
        match pick::pick(
            ports,
            picking,
            target,
            self.tie_breaker,
            shed,
            seated,
            in_flight,
        ) {
            PickOutcome::Destination {
                destination,
                ticket,
            } => {
                self.ticket = Some(ticket);
                ports.telemetry.count(Event::Picked);
                Ok(Some(destination))
            }
            PickOutcome::EnvoyDecides => {
                ports.telemetry.count(Event::PickFallback);
                Ok(None)
            }
            PickOutcome::Reject(error) => {
                if error == GatewayError::Overloaded {
                    ports.telemetry.count(Event::Shed);
                }
                Err(error)
            }
        }
    }

    /// Lists every client-sent copy of a header only the gateway may set for removal.
    ///
    /// With guardrail policies chosen by Envoy route, such a request is refused instead:
    /// Envoy matched its route with the client's copy, and the route name read later stays
    /// that route even after the header is removed (verified on Envoy 1.40 by the guardrails
    /// e2e test), so the client could pick a route's policy.
    fn internal_headers(
        &self,
        ports: &Ports<'_>,
        configured: &Configured,
        headers: &dyn HeaderView,
        remove: &mut Vec<String>,
    ) -> Result<(), GatewayError> {
        let route_policies = configured
            .config
            .guardrails
            .as_ref()
            .is_some_and(|g| g.0.has_route_policies());
        for name in configured.config.routing.internal_headers() {
            if headers.get(name).is_none() {
                continue;
            }
            if route_policies {
                return Err(GatewayError::InvalidField {
                    param: name.to_owned(),
                    message: "is set by the gateway; requests may not carry it".into(),
                });
            }
            remove.push(name.to_owned());
            ports.telemetry.count(Event::InternalHeaderRemoved);
        }
        Ok(())
    }

    /// Answers `error` in the API's format. An internal error is a host call that failed where
    /// going on could skip a policy (quota, credential, header removal, guardrail): the request
    /// fails closed, and that is logged (the step, never a value) and counted.
    pub(super) fn reject(&mut self, ports: &Ports<'_>, error: &GatewayError) -> RequestNext {
        RequestNext::Reply(self.reject_reply(ports, error))
    }

    fn reject_reply(&mut self, ports: &Ports<'_>, error: &GatewayError) -> Reply {
        if let GatewayError::Internal(what) = error {
            ports
                .log
                .log(Level::Warn, &format!("failing the request closed: {what}"));
            ports.telemetry.count(Event::FailedClosed);
        }
        self.reply(ports, &LocalReply::error(error, self.flavor))
    }

    fn send(&mut self, ports: &Ports<'_>, reply: &LocalReply) -> RequestNext {
        RequestNext::Reply(self.reply(ports, reply))
    }

    /// The reply the filter sends, with the rate-limit headers (each name once): the request
    /// ends here.
    fn reply(&mut self, ports: &Ports<'_>, reply: &LocalReply) -> Reply {
        self.reading_body = None;
        self.reply_status = Some(reply.status);
        if reply.status >= 400 {
            ports.telemetry.count(Event::Rejected);
        }
        let extra = self.quota.take_headers();
        Reply {
            status: reply.status,
            headers: reply
                .headers_with(&extra)
                .into_iter()
                .map(|(name, value)| (name, value.to_owned()))
                .collect(),
            body: reply.body.clone(),
        }
    }
}

/// Longest flow-control header value read: longer ones are ignored (a fairness id becomes a
/// metrics label, an objective a lookup key).
const MAX_FLOW_HEADER_BYTES: usize = 128;

fn flow_header(headers: &dyn HeaderView, name: &str) -> Option<String> {
    headers
        .get(name)
        .filter(|value| value.len() <= MAX_FLOW_HEADER_BYTES)
        .map(std::borrow::Cow::into_owned)
}

/// The response guard, when the request's policy scans responses.
fn response_guard(
    configured: &Configured,
    routed: &RoutedRequest,
    api: ApiKind,
) -> Option<ResponseGuard> {
    // Embeddings generate no text: their (possibly large) bodies are not held or scanned.
    if api == ApiKind::Embeddings {
        return None;
    }
    let guardrails = configured.config.guardrails.as_ref()?;
    let policy = routed.guardrails.as_ref()?.policy;
    guardrails
        .0
        .policy(policy)
        .filter(|p| p.responses)
        .map(|_| ResponseGuard::new(Arc::clone(&guardrails.0), policy, api.flavor()))
}
