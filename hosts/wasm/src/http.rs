//! One `HttpFilter` per request: the phase callbacks Envoy drives. Each reads what its decision
//! needs from Envoy, asks `pipeline` what to do, and does it.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::guardrails::{self as guard, ResponseGuard};
use super::log;
use super::metrics::Metrics;
use super::pick::{self, InFlightTicket, PickOutcome};
use super::quota::QuotaState;
use super::root::Configured;
use super::tokens::{self, Accounting, HeadersPlan};
use sluice_core::api::Endpoint;
use sluice_core::canonical::ApiKind;
use sluice_core::config::{DESTINATION_ENDPOINT_HEADER, Routing, USAGE_HEADER};
use sluice_core::error::{ApiFlavor, GatewayError};
use sluice_core::guardrails::{Direction, Hits};
use sluice_core::pipeline::{
    self, HeadersDecision, LocalReply, PolicyKeys, RequestHeaders, RoutedRequest, check_body_size,
};
use sluice_core::telemetry::ApiLabel;

pub struct HttpFilter {
    /// Unique among this VM's live requests; rotates ties between equally good replicas.
    context_id: u32,
    configured: Option<Rc<Configured>>,
    metrics: Option<Rc<Metrics>>,
    /// Set while the body of an inference request is being read.
    reading_body: Option<ApiKind>,
    /// Bytes of request body buffered so far, as Envoy last reported.
    body_size: usize,
    /// The picked replica's in-flight count this request holds, released when it ends.
    ticket: Option<InFlightTicket>,
    /// When the inference request started (µs), for its duration and time to first token.
    started_us: u64,
    /// Token accounting of a routed inference request.
    accounting: Option<Accounting>,
    /// The response headers are held until the body is read (the usage header is on).
    holding_response: bool,
    /// Who is calling and what the request reserved.
    quota: QuotaState,
    /// Guardrail policy and request hits of a routed request, when guardrails are on.
    guard: Option<(Option<usize>, Hits)>,
    /// The API the request called, for the request counter.
    api_label: ApiLabel,
    /// The status of the local reply the filter sent, if it sent one.
    reply_status: Option<u16>,
}

impl HttpFilter {
    pub fn new(
        context_id: u32,
        configured: Option<Rc<Configured>>,
        metrics: Option<Rc<Metrics>>,
    ) -> Self {
        Self {
            context_id,
            configured,
            metrics,
            reading_body: None,
            body_size: 0,
            ticket: None,
            started_us: 0,
            accounting: None,
            holding_response: false,
            quota: QuotaState::default(),
            guard: None,
            api_label: ApiLabel::Other,
            reply_status: None,
        }
    }

    /// The request's counts are known: filter state and metrics.
    fn report_tokens(
        &self,
        counts: sluice_core::usage::Counts,
    ) -> Option<sluice_core::usage::TokenRecord> {
        let accounting = self.accounting.as_ref()?;
        self.quota.settle(&counts, self.quota_metrics());
        let record = accounting.record(counts);
        accounting.report(&record, self.metrics.as_deref().map(|m| &m.telemetry));
        Some(record)
    }

    fn quota_metrics(&self) -> Option<&super::quota::QuotaMetrics> {
        self.metrics.as_deref().map(|m| &m.quota)
    }

    fn count(&self, pick: impl Fn(&Metrics) -> &super::metrics::Counter) {
        if let Some(metrics) = &self.metrics {
            pick(metrics).increment();
        }
    }

    /// Removes every client-sent copy of a header only the gateway may set. Asks the host only
    /// for headers `headers` holds, so a clean request costs no host call here.
    ///
    /// With guardrail policies chosen by Envoy route, such a request is refused instead:
    /// Envoy matched its route with the client's copy, and the route name the filter reads
    /// later stays that route even after the header is removed (verified on Envoy 1.40 by the
    /// guardrails e2e test), so the client could pick a route's policy.
    fn remove_internal_headers(
        &self,
        configured: &Configured,
        headers: &RequestHeaders,
    ) -> Result<(), GatewayError> {
        let route_policies = configured
            .config
            .guardrails
            .as_ref()
            .is_some_and(|g| g.0.has_route_policies());
        for name in configured.config.routing.internal_headers() {
            if route_policies && headers.contains(name) {
                return Err(GatewayError::InvalidField {
                    param: name.to_owned(),
                    message: "is set by the gateway; requests may not carry it".into(),
                });
            }
            if remove_request_header(headers, name)? {
                self.count(|m| &m.internal_headers_removed);
            }
        }
        Ok(())
    }

    fn count_hits(
        &self,
        guardrails: &sluice_core::guardrails::Guardrails,
        direction: Direction,
        hits: &Hits,
    ) {
        if let (Some(metrics), false) = (&self.metrics, hits.is_empty()) {
            metrics.guardrails.count(guardrails, direction, hits);
        }
    }

    /// Counts and records what the guardrails found in a request that goes on.
    fn guard_request(&mut self, configured: &Configured, routed: &RoutedRequest) {
        let (Some(guardrails), Some(verdict)) = (&configured.config.guardrails, &routed.guardrails)
        else {
            return;
        };
        self.count_hits(&guardrails.0, Direction::Request, &verdict.hits);
        guard::record(
            &guardrails.0,
            Some(verdict.policy),
            None,
            &verdict.hits,
            &Hits::default(),
        );
        self.guard = Some((Some(verdict.policy), verdict.hits.clone()));
    }

    /// The response guard, when the request's policy scans responses.
    fn response_guard(
        &self,
        configured: &Configured,
        routed: &RoutedRequest,
        api: ApiKind,
    ) -> Option<ResponseGuard> {
        // Embeddings generate no text: their (possibly large) bodies are not held or scanned.
        if api == ApiKind::Embeddings {
            return None;
        }
        let flavor = api.flavor();
        let guardrails = configured.config.guardrails.as_ref()?;
        let policy = routed.guardrails.as_ref()?.policy;
        guardrails
            .0
            .policy(policy)
            .filter(|p| p.responses)
            .map(|_| ResponseGuard::new(std::sync::Arc::clone(&guardrails.0), policy, flavor))
    }

    /// The response is over: counts and records what its guard found (and any of its host
    /// calls that failed).
    fn finish_response_guard(&mut self) {
        let Some((hits, blocked, failures, closed)) = self
            .accounting
            .as_mut()
            .and_then(|a| a.guard.as_mut())
            .map(|g| {
                let failures = std::mem::take(&mut g.failures);
                let closed = std::mem::take(&mut g.closed);
                (g.take_hits(), g.blocked.take(), failures, closed)
            })
        else {
            return;
        };
        if let Some(metrics) = &self.metrics {
            for _ in 0..failures {
                metrics.guardrails.block_failures.increment();
            }
            for _ in 0..closed {
                metrics.failed_closed.increment();
            }
        }
        if hits.is_empty() {
            return;
        }
        let Some(configured) = self.configured.clone() else {
            return;
        };
        let Some(guardrails) = &configured.config.guardrails else {
            return;
        };
        self.count_hits(&guardrails.0, Direction::Response, &hits);
        let (policy, request) = self.guard.take().unwrap_or_default();
        guard::record(&guardrails.0, policy, blocked.as_deref(), &request, &hits);
    }

    /// Sends `reply` and ends the request. Returns the action for the current phase.
    fn send(&mut self, reply: &LocalReply) -> Action {
        self.reading_body = None;
        self.reply_status = Some(reply.status);
        if reply.status >= 400 {
            self.count(|m| &m.rejected);
        }
        let extra = self.quota.take_reply_headers();
        let sent = hostcalls::send_http_response(
            u32::from(reply.status),
            reply.headers_with(&extra),
            Some(reply.body.as_bytes()),
        );
        if let Err(status) = sent {
            // Nothing was answered and the request must not go on: reset it.
            log::warn(&format!(
                "sending a local reply failed ({status:?}): resetting the request"
            ));
            self.count(|m| &m.failed_closed);
            if let Err(status) = hostcalls::reset_http_request() {
                log::error(&format!("resetting the request failed too: {status:?}"));
            }
        }
        Action::Pause
    }

    /// Answers `error`. An internal error is a host call that failed where going on could skip
    /// a policy (quota, credential, header removal, guardrail): the request fails closed, and
    /// that is logged (the step, never a value) and counted.
    fn reject(&mut self, error: &GatewayError, flavor: ApiFlavor) -> Action {
        if let GatewayError::Internal(what) = error {
            log::warn(&format!("failing the request closed: {what}"));
            self.count(|m| &m.failed_closed);
        }
        self.send(&LocalReply::error(error, flavor))
    }

    /// The replicas to send `routed` to, best first, when picking is on and a fresh snapshot is
    /// at hand; `None` leaves the choice to Envoy.
    fn pick_replica(
        &mut self,
        configured: &Configured,
        routed: &RoutedRequest,
    ) -> Result<Option<String>, GatewayError> {
        let Some(picking) = &configured.config.picking else {
            return Ok(None);
        };
        match pick::pick(
            picking,
            &configured.snapshot,
            routed,
            u64::from(self.context_id),
        ) {
            PickOutcome::Destination { header, ticket } => {
                self.ticket = Some(ticket);
                self.count(|m| &m.picked);
                Ok(Some(header))
            }
            PickOutcome::EnvoyDecides => {
                self.count(|m| &m.pick_fallbacks);
                Ok(None)
            }
            PickOutcome::Reject(error) => {
                if error == GatewayError::Overloaded {
                    self.count(|m| &m.shed);
                }
                Err(error)
            }
        }
    }

    /// The whole body is in: decide where the request goes.
    fn finish_body(&mut self, api: ApiKind, body_size: usize) -> Action {
        let Some(configured) = self.configured.clone() else {
            return self.reject(&GatewayError::NotConfigured, api.flavor());
        };
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => {
                return self.reject(
                    &GatewayError::Internal("reading the body failed"),
                    api.flavor(),
                );
            }
        };
        let tenant = self.quota.tenant().map(str::to_owned);
        let route_policies = configured
            .config
            .guardrails
            .as_ref()
            .is_some_and(|g| g.0.has_route_policies());
        let route = if route_policies {
            match route_name() {
                Ok(route) => route,
                Err(error) => return self.reject(&error, api.flavor()),
            }
        } else {
            None
        };
        let keys = PolicyKeys {
            route: route.as_deref(),
            tenant: tenant.as_deref(),
        };
        let routed = pipeline::route_request_for(&configured.config, api, &body, keys);
        let routed = match routed {
            Ok(routed) => {
                self.guard_request(&configured, &routed);
                Ok(routed)
            }
            Err((error, hits)) => {
                if let (Some(guardrails), GatewayError::ContentPolicy { rule }) =
                    (&configured.config.guardrails, &error)
                {
                    self.count_hits(&guardrails.0, Direction::Request, &hits);
                    guard::record(&guardrails.0, None, Some(rule), &hits, &Hits::default());
                }
                Err(error)
            }
        };
        let outcome = routed.and_then(|routed| {
            let quotas = configured.config.quotas.as_ref();
            let metrics = self.metrics.clone();
            self.quota
                .admit(quotas, &routed, metrics.as_deref().map(|m| &m.quota))?;
            let destination = self.pick_replica(&configured, &routed)?;
            apply_route(
                &configured.config.routing,
                &routed,
                destination.as_deref(),
                body_size,
            )?;
            let mut accounting = Accounting::new(&routed, self.started_us);
            accounting.guard = self.response_guard(&configured, &routed, api);
            accounting.tenant.clone_from(&tenant);
            self.accounting = Some(accounting);
            Ok(())
        });
        self.reading_body = None;
        match outcome {
            Ok(()) => Action::Continue,
            Err(error) => self.reject(&error, api.flavor()),
        }
    }
}

/// The name of the Envoy route the request matched (`xds.route_name`), for guardrail policies
/// chosen by route. Read in the request body phase, before the filter sets the model headers:
/// it is the route Envoy matched on the request as the client sent it, before any filter ran
/// (verified on Envoy 1.40 by the guardrails e2e test: a route matching the model header the
/// filter sets later is not seen; removing a header does not have the name matched again,
/// hence the refusal in `remove_internal_headers`). One host call, made only when such
/// policies are configured. `None`: no route name. A failed read is an error: the request would
/// otherwise get a weaker policy than its route's.
fn route_name() -> Result<Option<String>, GatewayError> {
    let name = hostcalls::get_property(vec!["xds", "route_name"])
        .map_err(|_| GatewayError::Internal("reading the route name failed"))?;
    Ok(name
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|name| !name.is_empty()))
}

/// The status of the response sent to the client (`response.code`), if one was sent.
fn response_code() -> Option<u16> {
    let bytes = hostcalls::get_property(vec!["response", "code"])
        .ok()
        .flatten()?;
    let code = u64::from_le_bytes(bytes.try_into().ok()?);
    u16::try_from(code).ok().filter(|code| *code > 0)
}

/// Removes request header `name` if `headers` (the map read in the headers phase) holds it, so
/// that a request without it costs no host call. Returns whether it was there.
pub(super) fn remove_request_header(
    headers: &RequestHeaders,
    name: &str,
) -> Result<bool, GatewayError> {
    if !headers.contains(name) {
        return Ok(false);
    }
    hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
        .map_err(|_| GatewayError::Internal("removing a request header failed"))?;
    Ok(true)
}

/// Sets the routing headers (and the rewritten body). Envoy picks the route again: with the ABI
/// this SDK speaks (proxy-wasm 0.2.1), changing a request header clears the route cache, so no
/// separate `clear_route_cache` call (a host call per request) is needed; the routing e2e tests
/// catch it if that ever changes.
fn apply_route(
    routing: &Routing,
    routed: &RoutedRequest,
    destination: Option<&str>,
    body_size: usize,
) -> Result<(), GatewayError> {
    let failed = |_| GatewayError::Internal("updating the request failed");
    if let Some(body) = &routed.body {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, body).map_err(failed)?;
        let length = body.len().to_string();
        hostcalls::set_map_value(MapType::HttpRequestHeaders, "content-length", Some(&length))
            .map_err(failed)?;
    }
    hostcalls::set_map_value(
        MapType::HttpRequestHeaders,
        routing.model_header.as_str(),
        Some(&routed.model),
    )
    .map_err(failed)?;
    hostcalls::set_map_value(
        MapType::HttpRequestHeaders,
        routing.base_model_header.as_str(),
        Some(&routed.base_model),
    )
    .map_err(failed)?;
    if let Some(destination) = destination {
        hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            DESTINATION_ENDPOINT_HEADER,
            Some(destination),
        )
        .map_err(failed)?;
    }
    Ok(())
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    /// Request headers, before any routing decision; they can still be changed. `Continue`
    /// forwards the request (headers and body) as it now is; `Pause` either holds the headers
    /// while the body is read (Envoy then calls `on_http_request_body`; this needs
    /// `allow_on_headers_stop_iteration`) or, after a local reply, ends the request.
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = match super::headers::all(MapType::HttpRequestHeaders) {
            Ok(pairs) => RequestHeaders::new(pairs),
            Err(_) => {
                let error = GatewayError::Internal("reading request headers failed");
                return self.reject(&error, ApiFlavor::OpenAi);
            }
        };
        let head = headers.head(end_of_stream);
        self.api_label = ApiLabel::of(Endpoint::classify(head.path));
        let Some(configured) = self.configured.clone() else {
            return self.reject(
                &GatewayError::NotConfigured,
                ApiFlavor::from_path(head.path),
            );
        };
        if let Err(error) = self.remove_internal_headers(&configured, &headers) {
            return self.reject(&error, ApiFlavor::from_path(head.path));
        }
        let quotas = configured.config.quotas.as_ref();
        let metrics = self.metrics.clone();
        let identified =
            self.quota
                .identify(quotas, &headers, metrics.as_deref().map(|m| &m.quota));
        if let Err(error) = identified {
            return self.reject(&error, ApiFlavor::from_path(head.path));
        }
        match pipeline::decide_on_headers(&configured.config, &configured.models, &head) {
            HeadersDecision::Passthrough => {
                let flavor = ApiFlavor::from_path(head.path);
                let admitted = self.quota.admit_passthrough(
                    quotas,
                    flavor,
                    metrics.as_deref().map(|m| &m.quota),
                );
                match admitted {
                    Ok(()) => Action::Continue,
                    Err(error) => self.reject(&error, flavor),
                }
            }
            HeadersDecision::Reply(reply) => self.send(&reply),
            HeadersDecision::ReadBody(api) => {
                self.reading_body = Some(api);
                self.started_us = tokens::now_us();
                Action::Pause
            }
        }
    }

    /// A piece of the request body; `body_size` is all of it buffered so far. `Pause` keeps
    /// buffering (headers and body stay held); `Continue` at the end sends headers and body on.
    /// Headers and body can both still be changed here, because neither has left.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(api) = self.reading_body else {
            return Action::Continue;
        };
        self.body_size = body_size;
        if let Some(configured) = &self.configured {
            if let Err(error) = check_body_size(&configured.config, body_size) {
                return self.reject(&error, api.flavor());
            }
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish_body(api, body_size)
    }

    /// Response headers of a routed inference request: decide how its body is read.
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.quota.on_response_headers();
        let Some(configured) = self.configured.clone() else {
            return Action::Continue;
        };
        let Some(accounting) = self.accounting.as_mut() else {
            return Action::Continue;
        };
        let settings = configured.config.tokens;
        let plan = accounting.on_headers(settings.max_response_bytes, settings.usage_header);
        if end_of_stream {
            let counts = accounting.finish();
            self.report_tokens(counts);
            return Action::Continue;
        }
        match plan {
            HeadersPlan::Continue => Action::Continue,
            HeadersPlan::DropContentLength => {
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length");
                Action::Continue
            }
            HeadersPlan::Hold => {
                self.holding_response = true;
                Action::Pause
            }
        }
    }

    /// A piece of the response body: read for usage as it passes (or, with the usage header on,
    /// held until the end). `Pause` also stops a response the filter ended because its guard
    /// could not be applied.
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(accounting) = self.accounting.as_mut() else {
            return Action::Continue;
        };
        if self.holding_response && !end_of_stream {
            return Action::Pause;
        }
        let counts = accounting.on_body(body_size, end_of_stream);
        let halted = accounting.halted();
        let Some(counts) = counts else {
            return if halted {
                Action::Pause
            } else {
                Action::Continue
            };
        };
        let record = self.report_tokens(counts);
        self.finish_response_guard();
        if self.holding_response {
            self.holding_response = false;
            // A halted response was replaced by a local reply or reset: no header to add.
            if let Some(record) = record.filter(|_| !halted) {
                let _ = hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    USAGE_HEADER,
                    Some(&record.header_value()),
                );
            }
        }
        if halted {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// The request is over (completed, reset or answered locally): release its in-flight count,
    /// count a response that never finished (a stream the upstream cut) from what was seen,
    /// and count the request.
    fn on_log(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            pick::release(&ticket);
        }
        let unfinished = self
            .accounting
            .as_mut()
            .filter(|a| !a.is_finished())
            .map(Accounting::finish_cut);
        if let Some(counts) = unfinished {
            self.report_tokens(counts);
            self.finish_response_guard();
        }
        self.quota.finish(self.quota_metrics());
        if let Some(metrics) = &self.metrics {
            let telemetry = &metrics.telemetry;
            if let Some(accounting) = &self.accounting {
                accounting.report_upstream_error(Some(telemetry));
            }
            let model = self.accounting.as_ref().map(Accounting::model);
            // What the client got: the local reply, else the response Envoy sent (one host call).
            let status = self.reply_status.or_else(response_code);
            telemetry.count_request(self.api_label, status, model);
        }
    }

    /// Trailers end a body that did not end on its own (chunked with trailers): finish it here.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(api) = self.reading_body else {
            return Action::Continue;
        };
        self.finish_body(api, self.body_size)
    }
}
