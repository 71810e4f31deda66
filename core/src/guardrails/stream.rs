//! Guarding a streamed response (server-sent events) as it passes.
//!
//! Every model-produced text of an event (`response_text` says where: answer, reasoning,
//! refusal, tool-call arguments, in every API's shape) goes into the hold-back buffer of its
//! channel, so detectors see text that spans events and chunks: one channel per choice and kind
//! of text (the answer, the reasoning) and per tool call, Anthropic content block or Responses
//! output item and part. Texts of different channels are never read as one. After each event
//! a channel releases, redacted, everything before the earliest place where a match could
//! still be unfinished (see `prefix`): for ordinary prose that is the last partial word, so
//! the client gets text about a word behind the model. Nothing is held further back than
//! `max_holdback` bytes: a match (or a match's beginning) longer than that may leave partly
//! unredacted, except private keys (below).
//!
//! Tool-call arguments are JSON text and read as such (`json_text`): escapes decoded for the
//! detectors, redactions that keep it valid JSON, cuts that never split an escape.
//!
//! Released text goes out in the event that brought the newest text of its channel (events
//! whose text is still held carry an empty string), so the SSE framing and every event's JSON
//! stay valid. At the end of a choice's text (a finish reason) its channels are released
//! whole; any event carrying no streamed text (a usage chunk, `content_block_stop`, a Responses
//! `.done` event, `[DONE]`) releases every channel first, each in one more event carrying only
//! that channel's text (`response_text::lone_event`: nothing an SDK would concatenate twice).
//! Texts that come whole (tool names, Anthropic block openings, the Responses API's repeats of
//! streamed text) are guarded on their own; an event whose data is not JSON is guarded as one
//! text.
//!
//! The first `MAX_CHANNELS` channels in use have their own buffer (a channel whose choice
//! finished, or with nothing held, gives its place up when needed); text of a channel beyond
//! that is redacted event by event, without the hold-back (a match split across two of its
//! events is not seen).
//!
//! A block rule cannot change the status of a stream that has started: the text before its
//! match is released, then the stream ends for the client with an error event in the API's
//! format (OpenAI: a `data:` line with `{"error": {...}}`, which the OpenAI SDKs raise as an
//! error; Anthropic: `event: error`), and whatever the upstream still sends is dropped.
//!
//! Memory is bounded: per channel at most `max_holdback` plus one event's text and a copy of
//! the last event that brought held text, plus a short window of released text kept as context
//! for the detectors' look-behind. A PEM private key is followed to its end marker and
//! withheld entirely. An event larger than `sse::MAX_EVENT_BYTES` cannot be parsed and passes
//! unread.

use std::borrow::Cow;
use std::ops::Range;

use super::json_text::{self, Lexer};
use super::{Action, Direction, Finding, Guardrails, Hits, Reading, TextVerdict};
use crate::error::{ApiFlavor, GatewayError};
use crate::response_text::{self, Channel, Flow, Form, Site, Wrap};
use crate::tokens::Tables;
use crate::usage::sse::{ParsedEvent, Piece, SseSplitter};

/// Channels with their own hold-back buffer at once.
pub const MAX_CHANNELS: usize = 16;

/// Bytes of released text kept for the detectors' look-behind (`\b`, "not after a digit").
const CONTEXT_BYTES: usize = 32;

/// Guards one streamed response.
#[derive(Debug)]
pub struct StreamGuard {
    policy: usize,
    max_holdback: usize,
    splitter: SseSplitter,
    channels: Vec<ChannelText>,
    /// The error format of the API called, for the error event that ends a blocked stream.
    flavor: ApiFlavor,
    /// A block rule matched (this one): the error event has been sent and nothing more goes
    /// out.
    blocked: Option<usize>,
    pub hits: Hits,
    /// The text let out so far, when token accounting reads it from here.
    tally: Option<Tally>,
}

/// The hold-back state of one channel.
#[derive(Debug)]
struct ChannelText {
    channel: Channel,
    /// Text received and not yet released.
    pending: String,
    /// The end of the released text (original, not redacted), for look-behind.
    context: String,
    /// JSON text (tool arguments): where `context` and `pending` start, lexically.
    json: Option<JsonStarts>,
    /// The last event that brought text still pending, to send that text in an event of its own.
    last_event: Option<LastEvent>,
    /// Inside a private key whose end marker has not come yet: withhold text until it does.
    in_private_key: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct JsonStarts {
    context: Lexer,
    pending: Lexer,
}

#[derive(Debug)]
struct LastEvent {
    /// The raw event.
    raw: Vec<u8>,
    site: Site,
    /// Every text of the event (`site` among them) when its text is sent in the event itself
    /// (`Wrap::Event`: the others are emptied), so that it is not read again.
    sites: Vec<Site>,
}

/// The text a guard lets out, counted for token accounting as it goes (`count_output`).
#[derive(Debug)]
struct Tally {
    tables: &'static Tables,
    units: u64,
    saw_text: bool,
}

impl Tally {
    fn add(&mut self, text: &str) {
        self.units = self.units.saturating_add(self.tables.units(text));
        self.saw_text = self.saw_text || !text.is_empty();
    }
}

/// An event with `head`'s lines and `data` (one data line per line of it).
fn write_event(out: &mut Vec<u8>, head: &[u8], data: &[u8]) {
    out.extend_from_slice(head);
    for line in data.split(|&b| b == b'\n' || b == b'\r') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// The event of `parts` with its data replaced by `data`: the same bytes around a single data
/// line.
fn rewrite_event(out: &mut Vec<u8>, parts: &ParsedEvent<'_>, data: &[u8]) {
    match &parts.single {
        Some(range) if !data.contains(&b'\n') && !data.contains(&b'\r') => {
            out.extend_from_slice(parts.raw.get(..range.start).unwrap_or_default());
            out.extend_from_slice(data);
            out.extend_from_slice(parts.raw.get(range.end..).unwrap_or_default());
        }
        _ => write_event(out, &parts.head(), data),
    }
}

/// What `LastEvent` keeps of an event's texts: all of them where `lone_event_in` reads them.
fn event_sites(sites: &[Site], site: &Site) -> Vec<Site> {
    match site.wrap {
        Wrap::Event => sites.to_vec(),
        _ => Vec::new(),
    }
}

/// An event carrying only `text`, in `last`'s channel and shape.
fn write_alone(out: &mut Vec<u8>, last: &LastEvent, text: &str) {
    let parts = ParsedEvent::split(&last.raw);
    let Some((mut json, after)) =
        response_text::lone_event_in(&parts.data, &last.sites, &last.site)
    else {
        return;
    };
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut json, text);
    json.extend_from_slice(&after);
    write_event(out, &parts.head(), &json);
}

/// How a redacted text is written back where it was.
fn encode(form: Form, text: &str) -> Vec<u8> {
    match form {
        Form::String => serde_json::to_vec(text).unwrap_or_default(),
        Form::Json => text.as_bytes().to_vec(),
    }
}

impl StreamGuard {
    pub fn new(policy: usize, max_holdback: usize, flavor: ApiFlavor) -> Self {
        Self {
            policy,
            max_holdback: max_holdback.max(1),
            splitter: SseSplitter::default(),
            channels: Vec::new(),
            flavor,
            blocked: None,
            hits: Hits::default(),
            tally: None,
        }
    }

    /// Counts the text it lets out in `tables`' units (`take_output`), for token accounting
    /// that reads the stream from the same events (`response_read`) instead of reading what the
    /// guard wrote again.
    pub fn count_output(&mut self, tables: &'static Tables) {
        self.tally = Some(Tally {
            tables,
            units: 0,
            saw_text: false,
        });
    }

    /// The units of text let out since the last call, and whether any of it was not empty.
    pub fn take_output(&mut self) -> (u64, bool) {
        match self.tally.as_mut() {
            Some(tally) => {
                let taken = (tally.units, tally.saw_text);
                tally.units = 0;
                tally.saw_text = false;
                taken
            }
            None => (0, false),
        }
    }

    fn let_out(&mut self, text: &str) {
        if let Some(tally) = self.tally.as_mut() {
            tally.add(text);
        }
    }

    /// Whether a block rule ended the stream.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// The rule that ended the stream, if one did.
    pub fn blocked_rule(&self) -> Option<usize> {
        self.blocked
    }

    /// Ends the stream for the client with an error event naming `rule` (never the text).
    fn block(&mut self, rule: usize, guardrails: &Guardrails, out: &mut Vec<u8>) {
        let error = GatewayError::ResponseContentPolicy {
            rule: guardrails.rule_id(rule).to_owned(),
        };
        if self.flavor == ApiFlavor::Anthropic {
            out.extend_from_slice(b"event: error\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(error.body(self.flavor).as_bytes());
        out.extend_from_slice(b"\n\n");
        self.blocked = Some(rule);
        self.splitter = SseSplitter::default();
        self.channels.clear();
    }

    /// Bytes held back (partial events and unreleased text).
    pub fn held(&self) -> usize {
        self.channels.iter().fold(self.splitter.held(), |sum, c| {
            sum.saturating_add(c.pending.len())
        })
    }

    /// Unreleased text bytes of every channel.
    pub fn held_text(&self) -> usize {
        self.channels
            .iter()
            .fold(0usize, |sum, c| sum.saturating_add(c.pending.len()))
    }

    /// One chunk of the stream in; the bytes to send on instead. `end` on the last chunk.
    pub fn chunk(&mut self, guardrails: &Guardrails, bytes: &[u8], end: bool) -> Vec<u8> {
        if self.blocked.is_some() {
            return Vec::new();
        }
        let mut pieces = Vec::new();
        self.splitter.feed(bytes, |piece| pieces.push(piece));
        let mut out = Vec::with_capacity(bytes.len());
        for piece in pieces {
            if self.blocked.is_some() {
                return out;
            }
            match piece {
                Piece::Event(raw) => {
                    self.event(guardrails, &ParsedEvent::parse(&raw), &mut out);
                }
                Piece::Raw(raw) => self.unparsed(guardrails, &raw, &mut out),
            }
        }
        if end && self.blocked.is_none() {
            let rest = self.splitter.finish();
            if !rest.is_empty() {
                self.event(guardrails, &ParsedEvent::parse(&rest), &mut out);
            }
            self.end(guardrails, &mut out);
        }
        out
    }

    /// Bytes of an event too large to parse (`Piece::Raw`): releases what is held, then passes
    /// them on.
    pub fn unparsed(&mut self, guardrails: &Guardrails, raw: &[u8], out: &mut Vec<u8>) {
        if self.blocked.is_some() {
            return;
        }
        self.flush(guardrails, out);
        out.extend_from_slice(raw);
    }

    /// The end of the stream: releases everything held.
    pub fn end(&mut self, guardrails: &Guardrails, out: &mut Vec<u8>) {
        if self.blocked.is_none() {
            self.flush(guardrails, out);
        }
    }

    /// One whole event in (read once by `ParsedEvent::parse`, maybe shared with token
    /// accounting); what to send on instead goes to `out`. Returns where in `out` the event's
    /// own bytes (as they are, or rewritten) went, if they went out: what comes before them
    /// releases text held from earlier events.
    pub fn event(
        &mut self,
        guardrails: &Guardrails,
        event: &ParsedEvent<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        if self.blocked.is_some() {
            return None;
        }
        let raw = event.raw;
        let data: &[u8] = &event.data;
        let policy = guardrails.response_policy(self.policy);
        let (Some(policy), true, false) = (policy, event.has_data, data == b"[DONE]") else {
            self.flush(guardrails, out);
            if self.blocked.is_some() {
                return None;
            }
            let start = out.len();
            out.extend_from_slice(raw);
            return Some(start..out.len());
        };
        let empty = response_text::Located::default();
        let located = event.located.as_ref().unwrap_or(&empty);
        // Each text decoded; a string that does not decode leaves the event unread as JSON.
        let texts: Option<Vec<Cow<'_, str>>> =
            located.sites.iter().map(|site| site.text(data)).collect();
        let (true, Some(texts)) = (located.complete, texts) else {
            // Not a JSON object: its data is read as one text; as JSON text when it is JSON
            // (an array, a string...), so that a redaction keeps the event valid JSON.
            self.flush(guardrails, out);
            if self.blocked.is_some() {
                return None;
            }
            let text = String::from_utf8_lossy(data);
            let reading = if response_text::raw::is_json(data) {
                Reading::Json(Lexer::default())
            } else {
                Reading::Plain
            };
            let start = out.len();
            match guardrails.guard_text(policy, &text, reading, &mut self.hits) {
                TextVerdict::Clean => out.extend_from_slice(raw),
                TextVerdict::Redacted(text) => rewrite_event(out, event, text.as_bytes()),
                TextVerdict::Blocked(rule) => {
                    self.block(rule, guardrails, out);
                    return None;
                }
            }
            return Some(start..out.len());
        };
        if !located.sites.iter().any(|s| s.flow == Flow::Delta) {
            self.flush(guardrails, out);
            if self.blocked.is_some() {
                return None;
            }
        }
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        for (site, text) in located.sites.iter().zip(texts) {
            let reading = Reading::of(site.channel.kind);
            if site.flow == Flow::Delta {
                let last = located.finished.contains(&site.channel.item);
                let (released, blocked) =
                    self.delta(guardrails, raw, &located.sites, site, &text, last);
                if let Some(rule) = blocked {
                    if !released.is_empty() {
                        let last = LastEvent {
                            raw: raw.to_vec(),
                            site: site.clone(),
                            sites: event_sites(&located.sites, site),
                        };
                        write_alone(out, &last, &released);
                        self.let_out(&released);
                    }
                    self.block(rule, guardrails, out);
                    return None;
                }
                self.let_out(&released);
                if released != text {
                    edits.push((site.value.clone(), encode(Form::String, &released)));
                }
                continue;
            }
            // A whole text: guarded on its own; a repeat's hits were counted in its deltas.
            let mut uncounted = Hits::default();
            let hits = if site.flow == Flow::Whole {
                &mut self.hits
            } else {
                &mut uncounted
            };
            match guardrails.guard_text(policy, &text, reading, hits) {
                TextVerdict::Clean => {
                    if site.flow == Flow::Whole {
                        self.let_out(&text);
                    }
                }
                TextVerdict::Redacted(redacted) => {
                    if site.flow == Flow::Whole {
                        self.let_out(&redacted);
                    }
                    edits.push((site.value.clone(), encode(site.form, &redacted)));
                }
                TextVerdict::Blocked(rule) => {
                    self.block(rule, guardrails, out);
                    return None;
                }
            }
        }
        // A finished choice's channels were released whole: their places are free.
        if !located.finished.is_empty() {
            self.channels
                .retain(|c| !located.finished.contains(&c.channel.item) || !c.pending.is_empty());
        }
        let start = out.len();
        if edits.is_empty() {
            out.extend_from_slice(raw);
            return Some(start..out.len());
        }
        let mut rewritten = Vec::with_capacity(data.len());
        let mut copied = 0usize;
        for (range, bytes) in edits {
            rewritten.extend_from_slice(data.get(copied..range.start).unwrap_or_default());
            rewritten.extend_from_slice(&bytes);
            copied = range.end;
        }
        rewritten.extend_from_slice(data.get(copied..).unwrap_or_default());
        rewrite_event(out, event, &rewritten);
        Some(start..out.len())
    }

    /// A piece of a channel's text: what of the channel may leave now, and the rule that
    /// blocks the stream if one matched.
    fn delta(
        &mut self,
        guardrails: &Guardrails,
        raw: &[u8],
        sites: &[Site],
        site: &Site,
        text: &str,
        last: bool,
    ) -> (String, Option<usize>) {
        let (policy, max_holdback) = (self.policy, self.max_holdback);
        let Some(slot) = self.slot(site.channel) else {
            // Past the tracked channels: guard this piece on its own.
            let mut alone = ChannelText::new(site.channel);
            alone.pending.push_str(text);
            return alone.release(guardrails, policy, max_holdback, true, &mut self.hits);
        };
        let Some(channel) = self.channels.get_mut(slot) else {
            return (String::new(), None);
        };
        channel.pending.push_str(text);
        let released = channel.release(guardrails, policy, max_holdback, last, &mut self.hits);
        channel.last_event = (!channel.pending.is_empty()).then(|| LastEvent {
            raw: raw.to_vec(),
            site: site.clone(),
            sites: event_sites(sites, site),
        });
        released
    }

    /// The buffer of `channel`: its own, a new one, or one given up by an idle channel.
    fn slot(&mut self, channel: Channel) -> Option<usize> {
        if let Some(slot) = self.channels.iter().position(|c| c.channel == channel) {
            return Some(slot);
        }
        if self.channels.len() < MAX_CHANNELS {
            self.channels.push(ChannelText::new(channel));
            return self.channels.len().checked_sub(1);
        }
        let idle = self.channels.iter().position(|c| c.pending.is_empty())?;
        let slot = self.channels.get_mut(idle)?;
        *slot = ChannelText::new(channel);
        Some(idle)
    }

    /// Releases everything held, each channel in an event of its own.
    fn flush(&mut self, guardrails: &Guardrails, out: &mut Vec<u8>) {
        let (policy, max_holdback) = (self.policy, self.max_holdback);
        let mut blocked = None;
        let tally = &mut self.tally;
        for channel in &mut self.channels {
            if channel.pending.is_empty() {
                continue;
            }
            let (released, block) =
                channel.release(guardrails, policy, max_holdback, true, &mut self.hits);
            if let (Some(last), false) = (&channel.last_event, released.is_empty()) {
                write_alone(out, last, &released);
                if let Some(tally) = tally.as_mut() {
                    tally.add(&released);
                }
            }
            channel.last_event = None;
            if block.is_some() {
                blocked = block;
                break;
            }
        }
        if let Some(rule) = blocked {
            self.block(rule, guardrails, out);
        }
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at = at.saturating_sub(1);
    }
    at
}

impl ChannelText {
    fn new(channel: Channel) -> Self {
        Self {
            channel,
            pending: String::new(),
            context: String::new(),
            json: channel.kind.is_json().then(JsonStarts::default),
            last_event: None,
            in_private_key: false,
        }
    }

    fn pending_reading(&self) -> Reading {
        self.json
            .map_or(Reading::Plain, |j| Reading::Json(j.pending))
    }

    fn context_reading(&self) -> Reading {
        self.json
            .map_or(Reading::Plain, |j| Reading::Json(j.context))
    }

    /// The last place at or before `at` where `pending` may be cut: a character boundary, in
    /// JSON text outside an escape (and, with `whole_tokens`, outside a bare token).
    fn floor(&self, at: usize, whole_tokens: bool) -> usize {
        match self.json {
            None => floor_char_boundary(&self.pending, at),
            Some(j) => json_text::floor_boundary(&self.pending, j.pending, at, whole_tokens),
        }
    }

    /// Drops `pending[..at]` without releasing it (a private key's body).
    fn drop_front(&mut self, at: usize) {
        let dropped = self.pending.get(..at).unwrap_or_default();
        if let Some(j) = &mut self.json {
            j.pending = j.pending.after(dropped.as_bytes());
            if self.context.is_empty() {
                j.context = j.pending;
            }
        }
        self.pending = self.pending.get(at..).unwrap_or_default().to_owned();
    }

    fn clear_context(&mut self) {
        self.context.clear();
        if let Some(j) = &mut self.json {
            j.context = j.pending;
        }
    }

    /// The text that may leave now (all of it when `all`), redacted, and the rule that
    /// blocks the stream when a block rule matched (the text is then what came before it).
    fn release(
        &mut self,
        guardrails: &Guardrails,
        policy_index: usize,
        max_holdback: usize,
        all: bool,
        hits: &mut Hits,
    ) -> (String, Option<usize>) {
        let Some(policy) = guardrails.response_policy(policy_index) else {
            let len = self.pending.len();
            let text = self.pending.clone();
            self.drop_front(len);
            return (text, None);
        };
        let mut prefix = String::new();
        if self.in_private_key && !self.skip_private_key(all) {
            return (prefix, None);
        }
        let len = self.pending.len();
        // Never hold more than the bound.
        let floor = self.floor(len.saturating_sub(max_holdback), false);
        let mut cut = if all {
            len
        } else {
            // Hold from where a match could still be unfinished.
            guardrails
                .unfinished_in(policy_index, &self.pending, self.pending_reading())
                .max(floor)
        };
        if cut == 0 {
            return (prefix, None);
        }
        // Scan with a little released text before, so look-behind sees what the whole text has.
        let offset = self.context.len();
        let mut window = String::with_capacity(offset.saturating_add(len));
        window.push_str(&self.context);
        window.push_str(&self.pending);
        let findings: Vec<Finding> = guardrails
            .find(policy, &window, self.context_reading())
            .into_iter()
            .filter(|f| f.range.end > offset)
            .map(|f| Finding {
                rule: f.rule,
                range: f.range.start.saturating_sub(offset)..f.range.end.saturating_sub(offset),
            })
            .collect();
        if !all {
            // A match ending at the very end may still change with the next character (the
            // detectors look one character past a match): hold it too.
            let near_end = len.saturating_sub(2);
            for f in &findings {
                if f.range.end > near_end && f.range.start < cut {
                    cut = cut.min(f.range.start).max(floor);
                }
            }
        }
        // A match across the cut is complete (it cannot reach the end): release it whole.
        loop {
            let straddling = findings
                .iter()
                .filter(|f| f.range.start < cut && f.range.end > cut)
                .map(|f| f.range.end)
                .max();
            match straddling {
                Some(next) => cut = next,
                None => break,
            }
        }
        if !(all && cut >= len) {
            // In JSON text, never inside an escape, nor inside a number unless the bound says so.
            let whole = self.floor(cut, true);
            cut = if whole >= floor {
                whole
            } else {
                self.floor(cut, false)
            };
        }
        if cut == 0 {
            return (prefix, None);
        }
        let mut inside: Vec<_> = findings
            .into_iter()
            .filter(|f| f.range.end <= cut)
            .collect();
        let reading = self.pending_reading();
        // A block rule: release what comes before its match, then the stream ends.
        if let Some(blocking) = inside
            .iter()
            .find(|f| policy.action(f.rule) == Some(Action::Block))
            .cloned()
        {
            hits.add(blocking.rule, Action::Block);
            let start = self.floor(blocking.range.start, false);
            inside.retain(|f| f.range.end <= start);
            let released = self.pending.get(..start).unwrap_or_default();
            let text = redacted(guardrails, policy, released, &inside, hits, reading);
            self.pending.clear();
            prefix.push_str(&text);
            return (prefix, Some(blocking.rule));
        }
        let released = self.pending.get(..cut).unwrap_or_default();
        let opens_key = inside.iter().any(|f| {
            guardrails.rule_id(f.rule) == "private_key"
                && policy
                    .action(f.rule)
                    .is_some_and(|a| a != super::Action::Log)
                && !contains_end_marker(released.get(f.range.clone()).unwrap_or_default())
        });
        let text = redacted(guardrails, policy, released, &inside, hits, reading);
        self.remember(cut);
        prefix.push_str(&text);
        if opens_key {
            self.in_private_key = true;
            self.clear_context();
            if self.skip_private_key(all) {
                let (rest, blocked) =
                    self.release(guardrails, policy_index, max_holdback, all, hits);
                prefix.push_str(&rest);
                if blocked.is_some() {
                    return (prefix, blocked);
                }
            }
        }
        if all {
            self.clear_context();
        }
        (prefix, None)
    }

    /// Moves `pending[..cut]` (being released) out, keeping its end as context.
    fn remember(&mut self, cut: usize) {
        let released = self.pending.get(..cut).unwrap_or_default();
        self.context.push_str(released);
        if let Some(j) = &mut self.json {
            j.pending = j.pending.after(released.as_bytes());
        }
        self.pending = self.pending.get(cut..).unwrap_or_default().to_owned();
        let keep_from = self.context.len().saturating_sub(CONTEXT_BYTES);
        let drop = match self.json {
            None => floor_char_boundary(&self.context, keep_from),
            Some(j) => json_text::floor_boundary(&self.context, j.context, keep_from, false),
        };
        if let Some(j) = &mut self.json {
            let dropped = self.context.get(..drop).unwrap_or_default();
            j.context = j.context.after(dropped.as_bytes());
        }
        self.context = self.context.get(drop..).unwrap_or_default().to_owned();
    }

    /// Withholds the rest of a private key up to its end marker. Returns whether the marker
    /// was found (normal scanning resumes after it).
    fn skip_private_key(&mut self, all: bool) -> bool {
        let lower = self.pending.to_ascii_lowercase();
        if let Some(end) = end_marker(&lower) {
            self.drop_front(end);
            self.in_private_key = false;
            return true;
        }
        // Keep a tail that may hold the start of a split end marker.
        let keep = if all { 0 } else { 48 };
        let cut = self.floor(self.pending.len().saturating_sub(keep), false);
        self.drop_front(cut);
        if all {
            self.in_private_key = false;
        }
        false
    }
}

/// `released` as the client gets it: redacted where `findings` say, as it is otherwise.
fn redacted(
    guardrails: &Guardrails,
    policy: &super::Policy,
    released: &str,
    findings: &[Finding],
    hits: &mut Hits,
    reading: Reading,
) -> String {
    guardrails
        .redact_read(
            policy,
            released,
            findings,
            hits,
            Direction::Response,
            reading,
        )
        .unwrap_or_else(|| released.to_owned())
}

fn contains_end_marker(text: &str) -> bool {
    end_marker(&text.to_ascii_lowercase()).is_some()
}

/// Where `-----end … private key-----` ends in lowercase text.
fn end_marker(lower: &str) -> Option<usize> {
    let start = lower.find("-----end")?;
    let tail = lower.get(start..)?;
    let close = tail.find("private key-----")?;
    start
        .checked_add(close)?
        .checked_add("private key-----".len())
}
