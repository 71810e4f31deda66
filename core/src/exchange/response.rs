//! The response phases: the response-headers plan, reading usage and guarding the body as it
//! passes (JSON held whole, streams chunk by chunk, fail-closed), settling, and the token record
//! and telemetry at the end.

use super::accounting::HeadersPlan;
use super::effects::{Record, ResponseEffects, ResponseNext};
use super::pick;
use super::ports::{Event, Level, Ports};
use super::records;
use super::views::{BodyView, HeaderView, StreamInfo};
use super::{Accounting, Exchange};
use crate::config::USAGE_HEADER;
use crate::guardrails::Direction;
use crate::guardrails::fail_closed::Outcome;
use crate::targets::{SERVED_BY_HEADER, TargetKind};
use crate::usage::{Counts, TokenRecord};

impl Exchange {
    /// The response headers (the upstream's, or those of a reply the filter sent, which Envoy
    /// also runs through the filter). Returns the rate-limit headers to set, `content-length` to
    /// remove when the body will change length, and `Hold` when the body must be read whole
    /// before the headers go (a guarded JSON response, or the usage header), else `Continue`.
    /// A response without a body is complete here: its token record comes with it.
    pub fn on_response_headers(
        &mut self,
        ports: &Ports<'_>,
        headers: &dyn HeaderView,
        end_of_stream: bool,
    ) -> ResponseEffects {
        let mut effects = ResponseEffects {
            set_headers: self.quota.take_headers(),
            ..ResponseEffects::default()
        };
        let Some(configured) = self.configured.clone() else {
            return effects;
        };
        if headers.get(SERVED_BY_HEADER).is_some() {
            // The upstream filter names the target that answered; the client never sees it
            // (nor is it believed from an upstream the request did not reach through a chain).
            effects.remove_headers.push(SERVED_BY_HEADER);
        }
        if let Some(served) = headers.get(SERVED_BY_HEADER).filter(|_| self.on_chain) {
            let model = configured
                .config
                .targets
                .as_ref()
                .and_then(|t| t.index_of(&served).and_then(|i| t.get(i)))
                .and_then(|t| match &t.kind {
                    TargetKind::Provider(p) => Some(p.model.as_str()),
                    TargetKind::Pool { model, .. } => model.as_deref(),
                });
            if let Some(model) = model {
                self.quota.reprice(configured.config.quotas.as_ref(), model);
            }
            self.decision.target(&served, model);
        }
        let Some(accounting) = self.accounting.as_mut() else {
            // Not an inference response (a passthrough path): nothing more will be decided.
            if !self.is_held() {
                effects.records.extend(self.decision_records());
            }
            return effects;
        };
        let settings = configured.config.tokens;
        let plan =
            accounting.on_headers(headers, settings.max_response_bytes, settings.usage_header);
        if end_of_stream {
            let counts = accounting.finish();
            if let Some((_, record)) = self.report_tokens(ports, counts) {
                effects.records.push(record);
            }
            effects.records.extend(self.decision_records());
            return effects;
        }
        if accounting.is_finished() {
            // An upstream error: nothing more will be read.
            effects.records.extend(self.decision_records());
        }
        match plan {
            HeadersPlan::Continue => {}
            HeadersPlan::DropContentLength => effects.remove_headers.push("content-length"),
            HeadersPlan::Hold => {
                self.holding_response = true;
                effects.next = ResponseNext::Hold;
            }
        }
        effects
    }

    /// A response body callback (`body`: the chunk, or with the response held the whole body).
    /// Returns the write that replaces the bytes Envoy holds (a guardrail's redaction or block,
    /// the usage chunk the gateway asked for removed), and at the end the usage header (held
    /// responses) and the records. `Hold` keeps buffering a held response, `Stop` ends one the
    /// filter ended because its guard could not be applied.
    pub fn on_response_body(
        &mut self,
        ports: &Ports<'_>,
        body: &mut dyn BodyView,
        end_of_stream: bool,
    ) -> ResponseEffects {
        let mut effects = ResponseEffects::default();
        let Some(accounting) = self.accounting.as_mut() else {
            return effects;
        };
        if self.holding_response && !end_of_stream {
            effects.next = ResponseNext::Hold;
            return effects;
        }
        let read = accounting.on_body(ports.clock, body, end_of_stream);
        let halted = accounting.halted();
        effects.write = read.write;
        effects.next = if halted {
            ResponseNext::Stop
        } else {
            ResponseNext::Continue
        };
        let Some(counts) = read.counts else {
            return effects;
        };
        let reported = self.report_tokens(ports, counts);
        let guarded = self.finish_response_guard(ports);
        let (record, token_record) = reported.unzip();
        effects.records.extend(token_record);
        effects.records.extend(guarded);
        effects.records.extend(self.decision_records());
        if self.holding_response {
            self.holding_response = false;
            // A halted response was replaced by a local reply or reset: no header to add.
            if let Some(record) = record.filter(|_| !halted) {
                effects
                    .set_headers
                    .push((USAGE_HEADER, record.header_value()));
            }
        }
        effects
    }

    /// A response write did not take (`outcome`, from `Write::apply`): logs and counts it. For a
    /// guarded write the host ended the response (or could not): returns `Stop` when it did,
    /// and the exchange reads nothing more of the response; else `Continue`.
    pub fn on_response_write_failed(
        &mut self,
        ports: &Ports<'_>,
        outcome: Outcome,
    ) -> ResponseNext {
        let Some(accounting) = self.accounting.as_mut() else {
            return ResponseNext::Continue;
        };
        let Some(guard) = accounting.guard.as_ref() else {
            ports.log.log(
                Level::Warn,
                "removing the usage chunk the gateway asked for failed: the client gets it",
            );
            return ResponseNext::Continue;
        };
        guard.log_failure(ports.log, outcome);
        if outcome.failed() {
            ports.telemetry.count(Event::GuardrailBlockFailure);
        }
        if !outcome.stops() {
            return ResponseNext::Continue;
        }
        ports.telemetry.count(Event::FailedClosed);
        accounting.halt();
        ResponseNext::Stop
    }

    /// The stream is over (completed, reset or answered locally): releases the in-flight count,
    /// counts a response that never finished (a stream the upstream cut) from what was seen,
    /// gives back what an unused reservation held, and counts the request. Returns that
    /// response's records, if any.
    pub fn on_log(&mut self, ports: &Ports<'_>, info: &dyn StreamInfo) -> Vec<Record> {
        if let Some(ticket) = self.ticket.take() {
            pick::release(ports, &ticket);
        }
        let mut records = Vec::new();
        let unfinished = self
            .accounting
            .as_mut()
            .filter(|a| !a.is_finished())
            .map(Accounting::finish_cut);
        if let Some(counts) = unfinished {
            if let Some((_, record)) = self.report_tokens(ports, counts) {
                records.push(record);
            }
            records.extend(self.finish_response_guard(ports));
        }
        self.quota.finish(ports);
        records.extend(self.leave_flow(ports, self.used_tokens));
        if let Some(accounting) = &self.accounting {
            accounting.observe_upstream_error(ports.clock, ports.telemetry);
        }
        let model = self.accounting.as_ref().map(Accounting::model);
        // What the client got: the local reply, else the response Envoy sent.
        let status = self.reply_status.or_else(|| info.response_code());
        ports.telemetry.count_request(self.api_label, status, model);
        // Unless written with the response or the reply (a stream cut short, a client gone).
        records.extend(self.decision_records());
        records
    }

    /// The request's counts are known: settles its quotas, hands its usage and latencies to
    /// the telemetry sink, and returns its token record (and that record as filter state).
    fn report_tokens(
        &mut self,
        ports: &Ports<'_>,
        counts: Counts,
    ) -> Option<(TokenRecord, Record)> {
        let accounting = self.accounting.as_ref()?;
        self.used_tokens = Some(counts.input.saturating_add(counts.output));
        // Priced before the settle takes the ticket (the price of the target that answered).
        let cost = self.quota.cost_nano_usd(&counts);
        self.decision
            .usage(&counts, cost, accounting.time_to_first_token_ms());
        self.quota.settle(ports, &counts);
        let record = accounting.record(counts);
        let state = records::tokens(&record);
        accounting.observe(ports.clock, ports.telemetry, &record, cost);
        Some((record, state))
    }

    /// The response is over: counts what its guard found and returns the guardrails' record.
    fn finish_response_guard(&mut self, ports: &Ports<'_>) -> Option<Record> {
        let guard = self.accounting.as_mut()?.guard.as_mut()?;
        let (hits, blocked) = guard.take_hits();
        if hits.is_empty() {
            return None;
        }
        let configured = self.configured.as_ref()?;
        let guardrails = configured.config.guardrails.as_ref()?;
        ports
            .telemetry
            .guardrail_hits(&guardrails.0, Direction::Response, &hits);
        self.decision.guardrail_hits(&guardrails.0, &hits);
        if let Some(rule) = &blocked {
            self.decision
                .guardrail(rule, crate::guardrails::Action::Block);
        }
        let (policy, request) = self.guard.take().unwrap_or_default();
        records::guardrails(&guardrails.0, policy, blocked.as_deref(), &request, &hits)
    }
}
