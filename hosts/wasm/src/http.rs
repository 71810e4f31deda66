//! One `HttpFilter` per request: the proxy-wasm phase callbacks. Each reads what Envoy gives,
//! calls the request's `sluice_core::exchange::Exchange` and applies the effects it returns
//! (`effects.rs`); every decision is the exchange's.
//!
//! The request's state (`Stream`) is shared with the VM's flow-control registry
//! (`flow::FlowHub`) while flow control holds the request: the root context resumes it from
//! there when it is woken, acting as this stream.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::effects::{self, EnvoyResponse};
use super::ports::Host;
use super::views::{Properties, ResponseBody, ResponseHeaders};
use super::{clock, ffi, log};
use sluice_core::exchange::{
    BodyNext, Configured, Exchange, HeaderView, HostError, Reply, RequestEffects, RequestNext,
    ResponseEffects, ResponseNext,
};
use sluice_core::flow::Outcome;
use sluice_core::pipeline::RequestHeaders;

/// One request's state: its exchange, the ports it uses and the body Envoy buffered.
pub struct Stream {
    exchange: Exchange,
    host: Rc<Host>,
    /// The request body buffered when the exchange read it whole (what a new body replaces).
    body_size: usize,
}

impl Stream {
    /// Applies a request phase's effects. `Continue` sends the request on; `Pause` holds it
    /// (headers held while the body is read, or flow control holds the whole request) or ends
    /// it after a local reply.
    fn request(&mut self, effects: RequestEffects) -> Action {
        if let Err(write) = effects::apply_request(&effects, self.body_size) {
            let reply = self
                .exchange
                .on_request_write_failed(&self.host.ports(), write);
            return self.send(&reply);
        }
        match effects.next {
            RequestNext::Continue => Action::Continue,
            RequestNext::ReadBody => Action::Pause,
            RequestNext::Reply(reply) => self.send(&reply),
            // Headers and body stay buffered, edits applied, until the wake-up (`woken`).
            RequestNext::Hold => Action::Pause,
        }
    }

    /// Flow control woke this held request: applies what the exchange decides, as the request
    /// phase would, then lets the request go on (it was paused) unless it was answered. Runs in
    /// the root context with this stream as the effective context.
    pub fn woken(&mut self, outcome: Outcome) {
        let Some(effects) = self.exchange.on_flow_woken(&self.host.ports(), outcome) else {
            // Not held any more (woken twice): nothing to do.
            return;
        };
        if matches!(self.request(effects), Action::Continue) {
            if let Err(status) = ffi::continue_request() {
                // It stays paused until its client or a timeout ends it; its seat is given
                // back then.
                log::error(&format!(
                    "flow control: cannot resume a released request: {status:?}"
                ));
            }
        }
    }

    /// Sends `reply` and ends the request; if it cannot be sent, resets the request.
    fn send(&mut self, reply: &Reply) -> Action {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let sent = hostcalls::send_http_response(
            u32::from(reply.status),
            headers,
            Some(reply.body.as_bytes()),
        );
        if let Err(status) = sent {
            // Nothing was answered and the request must not go on: reset it.
            self.exchange
                .on_reply_failed(&self.host.ports(), &format!("{status:?}"));
            if let Err(status) = hostcalls::reset_http_request() {
                log::error(&format!("resetting the request failed too: {status:?}"));
            }
        }
        Action::Pause
    }

    /// Applies a response phase's effects (`size`: the body bytes Envoy holds in this
    /// callback). `Pause` holds the response (its body is read whole first) or stops one the
    /// filter ended.
    fn response(&mut self, effects: &ResponseEffects, size: usize) -> Action {
        let mut next = effects.next;
        if let Some(write) = &effects.write {
            let outcome = write.apply(&mut EnvoyResponse { size });
            if outcome.failed() {
                next = self
                    .exchange
                    .on_response_write_failed(&self.host.ports(), outcome);
            }
        }
        if next != ResponseNext::Stop {
            effects::apply_response_headers(effects);
        }
        effects::write_records(&effects.records);
        match next {
            ResponseNext::Continue => Action::Continue,
            ResponseNext::Hold | ResponseNext::Stop => Action::Pause,
        }
    }

    /// The whole request body is in: read it and let the exchange route the request.
    fn complete(&mut self, size: usize) -> Action {
        self.body_size = size;
        if self.host.fresh_clock {
            clock::refresh();
        }
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(body) => Ok(body.unwrap_or_default()),
            Err(_) => Err(HostError),
        };
        let effects = self.exchange.on_request_body_complete(
            &self.host.ports(),
            &Properties,
            body.as_deref().map_err(|_| HostError),
        );
        self.request(effects)
    }

    fn body_next(&mut self, next: BodyNext) -> Action {
        match next {
            BodyNext::Pass => Action::Continue,
            BodyNext::Buffer => Action::Pause,
            BodyNext::Complete { size } => self.complete(size),
            BodyNext::Reply(reply) => self.send(&reply),
        }
    }
}

pub struct HttpFilter {
    context_id: u32,
    stream: Rc<RefCell<Stream>>,
    /// The ticket under which the VM's registry knows this stream, while flow control holds it.
    held: Option<u64>,
}

impl HttpFilter {
    pub fn new(context_id: u32, configured: Option<Arc<Configured>>, host: Rc<Host>) -> Self {
        let stream = Stream {
            exchange: Exchange::new(configured, u64::from(context_id)),
            host,
            body_size: 0,
        };
        Self {
            context_id,
            stream: Rc::new(RefCell::new(stream)),
            held: None,
        }
    }

    /// Runs `phase` on the stream. The stream is borrowed only here and by the root while it
    /// resumes a held request, never both at once (a VM runs one callback at a time); were it
    /// ever busy, the request is reset rather than let through unchecked.
    fn with(&mut self, phase: impl FnOnce(&mut Stream) -> Action) -> Action {
        let action = match self.stream.try_borrow_mut() {
            Ok(mut stream) => phase(&mut stream),
            Err(_) => {
                log::error("a stream was busy in its own callback; resetting it");
                if let Err(status) = hostcalls::reset_http_request() {
                    log::error(&format!("resetting the request failed too: {status:?}"));
                }
                return Action::Pause;
            }
        };
        self.register_if_held();
        action
    }

    /// A request flow control just held goes into the VM's registry, where its wake-up finds it.
    fn register_if_held(&mut self) {
        if self.held.is_some() {
            return;
        }
        let Ok(stream) = self.stream.try_borrow() else {
            return;
        };
        if let Some(ticket) = stream.exchange.held_ticket() {
            stream.host.flow.hold(ticket, self.context_id, &self.stream);
            self.held = Some(ticket);
        }
    }

    /// The stream is over: the registry lets it go.
    fn unregister(&mut self) {
        if let Some(ticket) = self.held.take() {
            if let Ok(stream) = self.stream.try_borrow() {
                stream.host.flow.forget(ticket);
            }
        }
    }
}

impl Drop for HttpFilter {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    /// Request headers, before any routing decision; they can still be changed. The whole map
    /// is read in one host call (cheaper than a call per header). `Continue` forwards the
    /// request as it now is; `Pause` either holds the headers while the body is read (Envoy
    /// then calls `on_http_request_body`; this needs `allow_on_headers_stop_iteration`) or,
    /// after a local reply, ends the request.
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = super::headers::all(MapType::HttpRequestHeaders).map(RequestHeaders::new);
        let view = match &headers {
            Ok(headers) => Ok(headers as &dyn HeaderView),
            Err(_) => Err(HostError),
        };
        self.with(|stream| {
            let effects =
                stream
                    .exchange
                    .on_request_headers(&stream.host.ports(), view, end_of_stream);
            stream.request(effects)
        })
    }

    /// A piece of the request body; `body_size` is all of it buffered so far. `Pause` keeps
    /// buffering (headers and body stay held), or holds the whole request for flow control;
    /// `Continue` at the end sends headers and body on. Headers and body can both still be
    /// changed here, because neither has left.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|stream| {
            let next =
                stream
                    .exchange
                    .on_request_body(&stream.host.ports(), body_size, end_of_stream);
            stream.body_next(next)
        })
    }

    /// Trailers end a body that did not end on its own (chunked with trailers).
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(|stream| {
            let next = stream.exchange.on_request_trailers();
            stream.body_next(next)
        })
    }

    /// Response headers: the rate-limit headers, and how the body will be read.
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.with(|stream| {
            let effects = stream.exchange.on_response_headers(
                &stream.host.ports(),
                &ResponseHeaders,
                end_of_stream,
            );
            stream.response(&effects, 0)
        })
    }

    /// A piece of the response body: read for usage and guarded as it passes (or, held, at its
    /// end). `Pause` keeps holding a held response and stops one the filter ended.
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|stream| {
            let mut body = ResponseBody { size: body_size };
            let effects =
                stream
                    .exchange
                    .on_response_body(&stream.host.ports(), &mut body, end_of_stream);
            stream.response(&effects, body_size)
        })
    }

    /// The request is over (completed, reset or answered locally; a held request whose client
    /// went away leaves its queue here).
    fn on_log(&mut self) {
        self.unregister();
        if let Ok(mut stream) = self.stream.try_borrow_mut() {
            let stream = &mut *stream;
            let records = stream.exchange.on_log(&stream.host.ports(), &Properties);
            effects::write_records(&records);
        }
    }
}
