//! One request's quotas: identify the caller in the headers phase (and remove the client's key
//! and any client-sent tenant header), reserve once the body is read (a passthrough request,
//! which is not read, in the headers phase), put the rate-limit headers on the response, settle
//! with the real usage at the end. The slots live behind the `QuotaLedger` port.
//!
//! A ledger write that fails before the request goes on leaves its scope's state unknown and
//! `fail_policy` decides (`quota::reserve`); one that fails after the response has gone (a
//! settle) is logged and counted (`QuotaWriteFailure`).

use std::borrow::Cow;

use super::decision::{QuotaDecision, Who};
use super::ports::{Event, Level, Ports};
use super::views::HeaderView;
use crate::config::quotas::{Identity, Quotas};
use crate::error::{ApiFlavor, GatewayError};
use crate::pipeline::RoutedRequest;
use crate::quota::identity::{self, AuthError, Caller};
use crate::quota::{self, Admitted, Charge, Ticket, Usage};
use crate::usage::Counts;

#[derive(Debug, Default)]
pub(super) struct QuotaState {
    caller: Option<Caller>,
    ticket: Option<Ticket>,
    /// Rate-limit headers (and `retry-after` on a refusal) for the response.
    headers: Vec<(&'static str, String)>,
    /// What quotas decided, for the access log.
    decision: QuotaDecision,
}

impl QuotaState {
    /// The caller's tenant, once identified.
    pub(super) fn tenant(&self) -> Option<&str> {
        self.caller.as_ref().map(|caller| caller.tenant.as_str())
    }

    /// Who called and what quotas decided, for the access log.
    pub(super) fn decided(&self) -> (Who<'_>, QuotaDecision) {
        let who = Who {
            tenant: self.tenant(),
            project: self.caller.as_ref().and_then(|c| c.project.as_deref()),
            // The admin id of the caller's key goes here (`Caller.key`, from the run-time
            // tenancy); the configured keys have none yet.
            key_id: None,
        };
        (who, self.decision)
    }

    /// What the request costs in nano-USD at the price it settles at, for `counts`.
    pub(super) fn cost_nano_usd(&self, counts: &Counts) -> Option<u64> {
        let usage = Usage {
            input: counts.input,
            output: counts.output,
            cached: counts.cached,
        };
        self.ticket
            .as_ref()
            .map(|ticket| ticket.cost_nano_usd(usage))
    }

    /// Headers phase: who is calling. Lists the client's key and any client-sent tenant header
    /// in `remove`, so that neither reaches an upstream.
    pub(super) fn identify(
        &mut self,
        ports: &Ports<'_>,
        quotas: Option<&Quotas>,
        headers: &dyn HeaderView,
        remove: &mut Vec<String>,
    ) -> Result<(), GatewayError> {
        let Some(quotas) = quotas else {
            return Ok(());
        };
        let mut names: Vec<&str> = vec!["authorization", "x-api-key"];
        if let Identity::Header(name) = &quotas.identity {
            names.push(name.as_str());
        }
        let values: Vec<(&str, Option<Cow<'_, str>>)> = names
            .iter()
            .map(|name| (*name, headers.get(name)))
            .collect();
        let found = identity::identify(&quotas.identity, |name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, value)| value.as_deref())
        });
        for (name, value) in &values {
            if value.is_some() {
                remove.push((*name).to_owned());
            }
        }
        match found {
            Ok(caller) => {
                self.caller = Some(caller);
                Ok(())
            }
            Err(err) => {
                self.decision = QuotaDecision::Unauthenticated;
                ports
                    .telemetry
                    .count(Event::QuotaRejected("unauthenticated"));
                Err(GatewayError::Unauthenticated {
                    missing: err == AuthError::Missing,
                })
            }
        }
    }

    /// Body read and routed: reserve, or refuse with the limit's error and headers. Returns
    /// the pool's own credential (header, value), if configured, to put in place of the
    /// client's key.
    pub(super) fn admit(
        &mut self,
        ports: &Ports<'_>,
        quotas: Option<&Quotas>,
        routed: &RoutedRequest,
    ) -> Result<Option<(String, String)>, GatewayError> {
        let Some(quotas) = quotas else {
            return Ok(None);
        };
        let charge = Charge::Inference {
            model: &routed.model,
            prompt_tokens: routed.estimate.prompt_tokens,
            output_budget: routed.estimate.output_budget,
        };
        self.reserve(ports, quotas, charge, routed.api.flavor())?;
        Ok(quotas
            .upstream_credentials
            .get(&routed.pool)
            .map(|credential| (credential.header.clone(), credential.value.clone())))
    }

    /// Headers phase of a passthrough path: the request goes upstream unread, so it is admitted
    /// now against the caller's request limits only (its model and tokens are unknown). It
    /// gets no upstream credential: its pool is not known.
    pub(super) fn admit_passthrough(
        &mut self,
        ports: &Ports<'_>,
        quotas: Option<&Quotas>,
        flavor: ApiFlavor,
    ) -> Result<(), GatewayError> {
        match quotas {
            Some(quotas) => self.reserve(ports, quotas, Charge::RequestOnly, flavor),
            None => Ok(()),
        }
    }

    fn reserve(
        &mut self,
        ports: &Ports<'_>,
        quotas: &Quotas,
        charge: Charge<'_>,
        flavor: ApiFlavor,
    ) -> Result<(), GatewayError> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        let telemetry = ports.telemetry;
        let now_ms = ports.clock.now_ms();
        let request = quota::Request {
            quotas,
            tenant: &caller.tenant,
            charge,
            now_ms,
            state_known: quotas.cluster.is_none() || ports.quota.cluster_view_fresh(),
        };
        match quota::reserve(ports.quota, &request) {
            Ok(Admitted {
                ticket,
                standing,
                uncounted,
            }) => {
                self.decision = QuotaDecision::Admitted;
                telemetry.count(Event::QuotaAdmitted);
                if uncounted > 0 {
                    telemetry.count(Event::QuotaUncounted);
                }
                telemetry.quota_standing(&caller.tenant, &standing);
                self.headers = quota::headers::rate_limit_headers(&standing, flavor, now_ms);
                self.ticket = Some(ticket);
                Ok(())
            }
            Err(rejection) => {
                self.decision = QuotaDecision::Rejected(rejection.reason.label());
                telemetry.count(Event::QuotaRejected(rejection.reason.label()));
                telemetry.quota_standing(&caller.tenant, &rejection.standing);
                let mut headers =
                    quota::headers::rate_limit_headers(&rejection.standing, flavor, now_ms);
                // The decision used the clock as the host last read it, up to `lag_ms` behind,
                // and so may the retry's: waiting that much longer, the retry finds the room
                // this wait was computed for.
                let wait = rejection
                    .retry_after_ms
                    .saturating_add(ports.clock.lag_ms());
                headers.extend(quota::headers::retry_after(wait));
                self.headers = headers;
                Err(GatewayError::QuotaExceeded(rejection.reason))
            }
        }
    }

    /// The rate-limit headers for a local reply, or for the upstream's response (replacing any
    /// the upstream sent under the same names: those describe the gateway's own credential at
    /// the provider, shared by every tenant, not the caller's limits). They are taken: a local
    /// reply carries them, and the response phase, which Envoy also runs for a local reply, has
    /// none left to add.
    pub(super) fn take_headers(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.headers)
    }

    /// The target that answered has its own price (`quotas.prices[model]`, `model` being the
    /// name the target serves): the request settles at it.
    pub(super) fn reprice(&mut self, quotas: Option<&Quotas>, model: &str) {
        let price = quotas.and_then(|q| q.prices.get(model)).copied();
        if let (Some(ticket), Some(price)) = (self.ticket.as_mut(), price) {
            ticket.reprice(price);
        }
    }

    /// The usage is known: replace the reservation with it.
    pub(super) fn settle(&mut self, ports: &Ports<'_>, counts: &Counts) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let usage = Usage {
            input: counts.input,
            output: counts.output,
            cached: counts.cached,
        };
        if !quota::settle(ports.quota, &ticket, usage, ports.clock.now_ms()) {
            // The response has gone: all that is left is to say so. The reservation stands
            // instead of the usage (more than was used unless the usage passed it).
            ports.log.log(
                Level::Warn,
                "quota: a settle could not be written; the reservation stands",
            );
            ports.telemetry.count(Event::QuotaWriteFailure);
        }
    }

    /// The request is over without usage (refused upstream, answered locally, reset): it keeps
    /// its request count, its tokens come back.
    pub(super) fn finish(&mut self, ports: &Ports<'_>) {
        self.settle(ports, &Counts::default());
    }
}
