//! One request's quotas: identify the caller in the headers phase (and remove the client's key
//! and any client-sent tenant header), check the models the caller may call and reserve once
//! the body is read (a passthrough request, which is not read, in the headers phase), put the
//! rate-limit headers on the response, settle with the real usage at the end and, with the
//! run-time tenancy on, add what the request used and cost to the spend ledger. The slots live
//! behind the `QuotaLedger` port, the run-time keys and limits behind `TenancySource`.
//!
//! A ledger write that fails before the request goes on leaves its scope's state unknown and
//! `fail_policy` decides (`quota::reserve`); one that fails after the response has gone (a
//! settle, a spend row) is logged and counted (`QuotaWriteFailure`).

use std::borrow::Cow;
use std::sync::Arc;

use super::decision::{Identified, QuotaDecision};
use super::ports::{Event, Level, Ports};
use super::views::HeaderView;
use crate::config::quotas::{Identity, Quotas};
use crate::error::{ApiFlavor, GatewayError};
use crate::pipeline::RoutedRequest;
use crate::quota::identity::{self, AuthError, Caller};
use crate::quota::{self, Admitted, Charge, Ticket, Usage, Who};
use crate::spend::{self, Recorded};
use crate::tenancy::Tenancy;
use crate::usage::Counts;

#[derive(Debug, Default)]
pub(super) struct QuotaState {
    caller: Option<Caller>,
    /// The run-time tenancy the caller was identified under: the request's limits and allowed
    /// models come from the same snapshot, whatever arrives meanwhile.
    tenancy: Option<Arc<Tenancy>>,
    ticket: Option<Ticket>,
    /// The spend ledger is on (`quotas.tenancy`).
    spend: bool,
    /// The model the request's spend is charged to: the routed model, then the model of the
    /// target that answered.
    model: Option<String>,
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
    pub(super) fn decided(&self) -> (Identified<'_>, QuotaDecision) {
        let who = Identified {
            tenant: self.tenant(),
            project: self.caller.as_ref().and_then(|c| c.project.as_deref()),
            key_id: self.caller.as_ref().and_then(|c| c.key.as_deref()),
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
        self.ticket.as_ref().map(|ticket| ticket.cost(usage))
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
        // Only with `quotas.tenancy`: a host may still hold another configuration's snapshot.
        let tenancy = quotas
            .tenancy
            .as_ref()
            .and_then(|_| ports.tenancy.tenancy());
        self.spend = quotas.tenancy.is_some();
        let found = identity::identify(
            &quotas.identity,
            tenancy.as_deref(),
            ports.clock.now_ms(),
            |name| {
                values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, value)| value.as_deref())
            },
        );
        self.tenancy = tenancy;
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
        self.check_model(ports, routed)?;
        self.model = Some(routed.model.clone());
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

    /// The run-time tenancy's allowed models: the key's, its project's and its tenant's lists
    /// (absent: every model) must each name the model the client asked for or the one it is
    /// routed to. Refused with 403 in the API's format, naming the model, never the key.
    fn check_model(&self, ports: &Ports<'_>, routed: &RoutedRequest) -> Result<(), GatewayError> {
        let (Some(caller), Some(tenancy)) = (&self.caller, &self.tenancy) else {
            return Ok(());
        };
        if tenancy.model_allowed(
            &caller.tenant,
            caller.project.as_deref(),
            caller.key.as_deref(),
            &routed.requested_model,
            &routed.model,
        ) {
            return Ok(());
        }
        ports
            .telemetry
            .count(Event::QuotaRejected("model_not_allowed"));
        Err(GatewayError::ModelNotPermitted(
            routed.requested_model.clone(),
        ))
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
            tenancy: self.tenancy.as_deref(),
            who: Who {
                tenant: &caller.tenant,
                project: caller.project.as_deref(),
                key: caller.key.as_deref(),
            },
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
        if self.ticket.is_some() {
            self.model = Some(model.to_owned());
        }
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
        let now_ms = ports.clock.now_ms();
        if !quota::settle(ports.quota, &ticket, usage, now_ms) {
            // The response has gone: all that is left is to say so. The reservation stands
            // instead of the usage (more than was used unless the usage passed it).
            ports.log.log(
                Level::Warn,
                "quota: a settle could not be written; the reservation stands",
            );
            ports.telemetry.count(Event::QuotaWriteFailure);
        }
        self.record_spend(ports, &ticket, usage, now_ms);
    }

    /// Adds the settled request to the spend ledger: the same usage as the quotas, at the
    /// ticket's price, under the served model (`-` for a request forwarded unread).
    fn record_spend(&self, ports: &Ports<'_>, ticket: &Ticket, usage: Usage, now_ms: u64) {
        let Some(caller) = self.caller.as_ref().filter(|_| self.spend) else {
            return;
        };
        let row = spend::Row::settled(
            now_ms,
            &caller.tenant,
            caller.key.as_deref(),
            caller.project.as_deref(),
            self.model.as_deref().unwrap_or(spend::UNKNOWN_MODEL),
            usage,
            ticket.cost(usage),
        );
        match spend::record(ports.quota, &row) {
            Recorded::Added => {}
            Recorded::Overflowed => ports.telemetry.count(Event::SpendOverflow),
            Recorded::Failed => {
                ports.log.log(
                    Level::Warn,
                    "spend: a settled request could not be added to the ledger",
                );
                ports.telemetry.count(Event::QuotaWriteFailure);
            }
        }
    }

    /// The request is over without usage (refused upstream, answered locally, reset): it keeps
    /// its request count, its tokens come back.
    pub(super) fn finish(&mut self, ports: &Ports<'_>) {
        self.settle(ports, &Counts::default());
    }
}
