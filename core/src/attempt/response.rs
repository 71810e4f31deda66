//! The attempt's response: its outcome recorded, and its body put back into the client's API
//! when the target spoke another.

use crate::exchange::{HeaderView, Level, Record};
use crate::targets::health::retry_after_ms;
use crate::targets::{AttemptOutcome, SERVED_BY_HEADER};
use crate::translate::{self, StreamTranslator};

use super::{Attempt, AttemptPorts, AttemptResponseEffects, AttemptResponseNext, ResponseBody};

impl Attempt {
    /// The attempt's response headers. Records the outcome (health, metrics, the failover
    /// record) and names the target for the downstream filter. Returns `ReadBody` when a whole
    /// body must be translated (a JSON answer or an error from a target of another API), else
    /// `Continue` (a stream is then translated chunk by chunk). The status is never changed:
    /// Envoy's retry decision reads it after this filter.
    pub fn on_response_headers(
        &mut self,
        ports: &AttemptPorts<'_>,
        status: u16,
        headers: &dyn HeaderView,
    ) -> AttemptResponseEffects {
        self.status = Some(status);
        if self.managed.is_none() {
            return AttemptResponseEffects::default();
        }
        let wait = retry_after_ms(
            headers.get("retry-after-ms").as_deref(),
            headers.get("retry-after").as_deref(),
            ports.clock.now_ms(),
        );
        let records = self.record_outcome(ports, AttemptOutcome::of_status(status, wait));
        let mut effects = AttemptResponseEffects {
            records,
            ..AttemptResponseEffects::default()
        };
        let Some(managed) = &self.managed else {
            return effects;
        };
        if let Some(target) = self
            .configured
            .config
            .targets
            .as_ref()
            .and_then(|t| t.get(managed.target))
        {
            effects
                .set_headers
                .push((SERVED_BY_HEADER.to_owned(), target.name.clone()));
        }
        let Some((target, client)) = managed.translate else {
            return effects;
        };
        let streamed = headers
            .get("content-type")
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        effects.remove_headers.push("content-length".to_owned());
        if status < 300 && streamed {
            let created = ports.clock.now_ms() / 1000;
            self.body = ResponseBody::Stream(Box::new(
                StreamTranslator::new(target, client).with_created(created),
            ));
            return effects;
        }
        self.body = ResponseBody::Whole {
            error: status >= 400,
        };
        effects
            .set_headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        effects.next = AttemptResponseNext::ReadBody;
        effects
    }

    /// A response body callback: `body` is this chunk (a stream), or the whole body at `end`
    /// after `ReadBody`. Returns the bytes to send instead, if any.
    pub fn on_response_body(
        &mut self,
        ports: &AttemptPorts<'_>,
        body: &[u8],
        end: bool,
    ) -> AttemptResponseEffects {
        let Some(managed) = &self.managed else {
            return AttemptResponseEffects::default();
        };
        let (target, client) = match managed.translate {
            Some(pair) => pair,
            None => return AttemptResponseEffects::default(),
        };
        match &mut self.body {
            ResponseBody::Pass => AttemptResponseEffects::default(),
            ResponseBody::Stream(translator) => AttemptResponseEffects {
                body: Some(translator.chunk(body, end)),
                ..AttemptResponseEffects::default()
            },
            ResponseBody::Whole { error } => {
                // Held until its end: Envoy's buffer limit bounds what is held before that.
                if !end {
                    return AttemptResponseEffects {
                        next: AttemptResponseNext::ReadBody,
                        ..AttemptResponseEffects::default()
                    };
                }
                let status = self.status.unwrap_or(200);
                let translated = if *error {
                    translate::error(target, client, status, body)
                } else {
                    match translate::response_at(target, client, body, ports.clock.now_ms() / 1000)
                    {
                        Ok(translated) => translated,
                        Err(_) => {
                            ports.log.log(
                                Level::Warn,
                                "attempt: a target's answer could not be read for translation",
                            );
                            translate::error(target, client, 502, body)
                        }
                    }
                };
                AttemptResponseEffects {
                    body: Some(translated),
                    ..AttemptResponseEffects::default()
                }
            }
        }
    }

    /// The attempt is over (its stream completed or was reset). An attempt that never got
    /// response headers (connection failure, reset, per-try timeout) is recorded as a failure
    /// of its target here. Returns the records to write.
    pub fn on_complete(&mut self, ports: &AttemptPorts<'_>) -> Vec<Record> {
        if self.status.is_some() {
            return Vec::new();
        }
        self.record_outcome(ports, AttemptOutcome::NoResponse)
    }
}
