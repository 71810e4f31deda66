//! A fake host: drives one exchange through a stream's phases and applies its effects as the
//! proxy-wasm adapter does (`hosts/wasm/src/http.rs`), refusing the edits and calls a test
//! names.

use std::borrow::Cow;
use std::sync::Arc;

use super::Fakes;
use crate::exchange::{
    BodyNext, BodyView, Configured, Destination, Exchange, HeaderView, HostError, Record, Reply,
    RequestEffects, RequestNext, RequestWrite, ResponseEffects, ResponseNext, StreamInfo,
};
use crate::guardrails::fail_closed::ResponseHost;

/// A header map.
pub struct Map(pub Vec<(String, String)>);

impl HeaderView for Map {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

/// The bytes of one response body callback.
struct Bytes {
    bytes: Vec<u8>,
    unreadable: bool,
}

impl BodyView for Bytes {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    fn read(&mut self) -> Result<Vec<u8>, HostError> {
        if self.unreadable {
            return Err(HostError);
        }
        Ok(self.bytes.clone())
    }
}

struct Info<'a> {
    route: &'a Result<Option<String>, HostError>,
    code: Option<u16>,
}

impl StreamInfo for Info<'_> {
    fn route_name(&self) -> Result<Option<String>, HostError> {
        self.route.clone()
    }

    fn response_code(&self) -> Option<u16> {
        self.code
    }
}

/// What the client got.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How the filter ended the response (`reply` or `reset`), if it did.
    pub ended_by: Option<&'static str>,
    /// What each response callback answered.
    pub nexts: Vec<ResponseNext>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The response callback the exchange's writes go to.
struct Callback<'a> {
    bytes: &'a mut Vec<u8>,
    response: &'a mut Response,
    refuse: &'a [&'static str],
}

impl Callback<'_> {
    fn call(&self, name: &'static str) -> Result<(), HostError> {
        if self.refuse.contains(&name) {
            Err(HostError)
        } else {
            Ok(())
        }
    }
}

impl ResponseHost for Callback<'_> {
    fn replace_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        self.call("body")?;
        *self.bytes = body.to_vec();
        Ok(())
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.call(if name == ":status" {
            "status"
        } else {
            "header"
        })?;
        if name == ":status" {
            self.response.status = value.parse().unwrap();
        } else {
            set(&mut self.response.headers, name, value);
        }
        Ok(())
    }

    fn local_reply(&mut self, status: u16, body: &str) -> Result<(), HostError> {
        self.call("reply")?;
        self.response.ended_by = Some("reply");
        self.response.status = status;
        self.response.body = body.as_bytes().to_vec();
        Ok(())
    }

    fn reset(&mut self) -> Result<(), HostError> {
        self.call("reset")?;
        self.response.ended_by = Some("reset");
        Ok(())
    }
}

fn set(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_owned(), value.to_owned()));
}

enum Flow {
    Upstream,
    ReadBody,
    Replied,
    Held,
}

/// One stream through the gateway.
pub struct Client<'f> {
    pub fakes: &'f Fakes,
    pub exchange: Exchange,
    /// The request headers as they left for the upstream.
    pub upstream_headers: Vec<(String, String)>,
    /// The body that went upstream, when the exchange replaced the client's.
    pub upstream_body: Option<Vec<u8>>,
    pub destination: Option<Destination>,
    /// The filter's own reply, if it sent one.
    pub reply: Option<Reply>,
    /// The JSON records (tokens, guardrails, flow, failover).
    pub records: Vec<Record>,
    /// The flat decision fields, as written.
    pub decisions: Vec<Record>,
    /// Request edits this host refuses.
    pub refuse_request: Vec<RequestWrite>,
    /// Response calls this host refuses: `body`, `header`, `status`, `reply`, `reset`.
    pub refuse_response: Vec<&'static str>,
    /// The response body cannot be read.
    pub unreadable_response: bool,
    /// `xds.route_name` as the host reads it.
    pub route: Result<Option<String>, HostError>,
    /// The upstream stops before the end of its response (no callback has `end_of_stream`).
    pub cut: bool,
    pub response: Response,
    /// Flow control holds the request.
    pub held: bool,
    /// Headers the upstream adds to its response (beyond its content type).
    pub upstream_response_headers: Vec<(String, String)>,
}

impl<'f> Client<'f> {
    pub fn new(fakes: &'f Fakes, configured: Option<Arc<Configured>>) -> Self {
        Self {
            fakes,
            exchange: Exchange::new(configured, 7),
            upstream_headers: Vec::new(),
            upstream_body: None,
            destination: None,
            reply: None,
            records: Vec::new(),
            decisions: Vec::new(),
            refuse_request: Vec::new(),
            refuse_response: Vec::new(),
            unreadable_response: false,
            route: Ok(None),
            cut: false,
            response: Response::default(),
            held: false,
            upstream_response_headers: Vec::new(),
        }
    }

    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Keeps written records: the decision fields apart from the JSON records.
    fn keep(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            if matches!(record.key, crate::exchange::RecordKey::Decision(_)) {
                self.decisions.push(record);
            } else {
                self.records.push(record);
            }
        }
    }

    /// The last value written for the decision field `field`.
    pub fn decision(&self, field: crate::exchange::DecisionField) -> Option<&str> {
        self.decisions
            .iter()
            .rev()
            .find(|r| r.key == crate::exchange::RecordKey::Decision(field))
            .map(|r| r.value.as_str())
    }

    pub fn record(&self, key: crate::exchange::RecordKey) -> Option<serde_json::Value> {
        self.records
            .iter()
            .rev()
            .find(|r| r.key == key)
            .map(|r| serde_json::from_str(&r.value).unwrap())
    }

    /// Sends a POST (`headers` after `:method`, `:path` and a JSON content type), its body in
    /// two chunks. Returns whether it went upstream.
    pub fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &str) -> bool {
        self.send("POST", path, headers, Some(body))
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> bool {
        let mut map = vec![
            (":method".to_owned(), method.to_owned()),
            (":path".to_owned(), path.to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        map.extend(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        self.upstream_headers = map.clone();
        let view = Map(map);
        let ports = self.fakes.ports();
        let effects = self
            .exchange
            .on_request_headers(&ports, Ok(&view), body.is_none());
        match self.request_effects(effects) {
            Flow::Upstream => return true,
            Flow::Replied | Flow::Held => return false,
            Flow::ReadBody => {}
        }
        let bytes = body.unwrap_or_default().as_bytes();
        for (buffered, end) in [(bytes.len() / 2, false), (bytes.len(), true)] {
            match self.exchange.on_request_body(&ports, buffered, end) {
                BodyNext::Pass => return true,
                BodyNext::Buffer => {}
                BodyNext::Reply(reply) => {
                    self.reply = Some(reply);
                    return false;
                }
                BodyNext::Complete { size } => return self.complete(&bytes[..size]),
            }
        }
        false
    }

    /// The whole body is in (`complete` after trailers, say).
    pub fn complete(&mut self, body: &[u8]) -> bool {
        let info = Info {
            route: &self.route,
            code: None,
        };
        let effects = self
            .exchange
            .on_request_body_complete(&self.fakes.ports(), &info, Ok(body));
        matches!(self.request_effects(effects), Flow::Upstream)
    }

    fn request_effects(&mut self, effects: RequestEffects) -> Flow {
        self.keep(effects.records.iter().cloned());
        if let Err(write) = self.edit(&effects) {
            let reply = self
                .exchange
                .on_request_write_failed(&self.fakes.ports(), write);
            self.reply = Some(reply);
            return Flow::Replied;
        }
        match effects.next {
            RequestNext::Continue => Flow::Upstream,
            RequestNext::ReadBody => Flow::ReadBody,
            RequestNext::Reply(reply) => {
                self.reply = Some(reply);
                Flow::Replied
            }
            RequestNext::Hold => {
                self.held = true;
                Flow::Held
            }
        }
    }

    /// Flow control woke the held request, as the host would on its worker. Returns whether it
    /// went upstream (false: answered, or nothing to do).
    pub fn woken(&mut self, outcome: crate::flow::Outcome) -> bool {
        let Some(effects) = self.exchange.on_flow_woken(&self.fakes.ports(), outcome) else {
            return false;
        };
        self.held = false;
        matches!(self.request_effects(effects), Flow::Upstream)
    }

    fn edit(&mut self, effects: &RequestEffects) -> Result<(), RequestWrite> {
        let refuse = |write| {
            if self.refuse_request.contains(&write) {
                Err(write)
            } else {
                Ok(())
            }
        };
        for name in &effects.remove_headers {
            refuse(RequestWrite::RemoveHeader)?;
            self.upstream_headers.retain(|(n, _)| n != name);
        }
        if let Some((name, value)) = &effects.credential {
            refuse(RequestWrite::Credential)?;
            set(&mut self.upstream_headers, name, value);
        }
        if let Some(body) = &effects.body {
            refuse(RequestWrite::Body)?;
            self.upstream_body = Some(body.clone());
            set(
                &mut self.upstream_headers,
                "content-length",
                &body.len().to_string(),
            );
        }
        for (name, value) in &effects.route_headers {
            refuse(RequestWrite::RouteHeader)?;
            set(&mut self.upstream_headers, name, value);
        }
        if let Some(destination) = &effects.destination {
            refuse(RequestWrite::Destination)?;
            self.destination = Some(destination.clone());
        }
        Ok(())
    }

    /// The response: the upstream's (`status`, `content_type`, body in `chunks`), or the
    /// filter's own reply when it sent one (which Envoy also runs through the filter).
    pub fn respond(&mut self, status: u16, content_type: &str, chunks: &[&str]) {
        let (status, headers, chunks): (u16, Vec<(String, String)>, Vec<Vec<u8>>) =
            match &self.reply {
                Some(reply) => (
                    reply.status,
                    reply
                        .headers
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), v.clone()))
                        .collect(),
                    vec![reply.body.as_bytes().to_vec()],
                ),
                None => (
                    status,
                    std::iter::once(("content-type".to_owned(), content_type.to_owned()))
                        .chain(self.upstream_response_headers.iter().cloned())
                        .collect(),
                    chunks.iter().map(|c| c.as_bytes().to_vec()).collect(),
                ),
            };
        self.response = Response {
            status,
            headers,
            ..Response::default()
        };
        let mut view = vec![(":status".to_owned(), status.to_string())];
        view.extend(self.response.headers.iter().cloned());
        let effects =
            self.exchange
                .on_response_headers(&self.fakes.ports(), &Map(view), chunks.is_empty());
        let held = self.response_effects(effects, &mut Vec::new()) == ResponseNext::Hold;
        let mut buffered = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if self.response.ended_by.is_some() {
                break;
            }
            let end = i + 1 == chunks.len() && !self.cut;
            buffered.extend_from_slice(chunk);
            let mut view = Bytes {
                bytes: buffered.clone(),
                unreadable: self.unreadable_response,
            };
            let effects = self
                .exchange
                .on_response_body(&self.fakes.ports(), &mut view, end);
            let next = self.response_effects(effects, &mut buffered);
            if next == ResponseNext::Hold && held {
                continue;
            }
            if next == ResponseNext::Continue && self.response.ended_by.is_none() {
                self.response.body.extend_from_slice(&buffered);
            }
            buffered.clear();
        }
    }

    fn response_effects(&mut self, effects: ResponseEffects, bytes: &mut Vec<u8>) -> ResponseNext {
        let mut next = effects.next;
        if let Some(write) = &effects.write {
            let outcome = write.apply(&mut Callback {
                bytes,
                response: &mut self.response,
                refuse: &self.refuse_response,
            });
            if outcome.failed() {
                next = self
                    .exchange
                    .on_response_write_failed(&self.fakes.ports(), outcome);
            }
        }
        if next != ResponseNext::Stop {
            for name in &effects.remove_headers {
                self.response.headers.retain(|(n, _)| n != name);
            }
            for (name, value) in &effects.set_headers {
                set(&mut self.response.headers, name, value);
            }
        }
        self.keep(effects.records);
        self.response.nexts.push(next);
        next
    }

    /// The stream is over; `code` is what Envoy says the client got.
    pub fn end(&mut self, code: Option<u16>) {
        let info = Info {
            route: &self.route,
            code,
        };
        let records = self.exchange.on_log(&self.fakes.ports(), &info);
        self.keep(records);
    }
}
