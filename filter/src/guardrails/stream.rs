//! Guarding a streamed response (server-sent events) as it passes.
//!
//! The generated text of every event (OpenAI chat `choices[i].delta.content`, completions
//! `choices[i].text`, Anthropic `delta.text`, Responses `response.output_text.delta`) goes into
//! a hold-back buffer of its choice, so detectors see text that spans events and chunks. After
//! each event the buffer releases, redacted, everything before the earliest place where a
//! match could still be unfinished (see `prefix`): for ordinary prose that is the last partial
//! word, so the client gets text about a word behind the model. Nothing is held further back
//! than `max_holdback` bytes: a match (or a match's beginning) longer than that may leave
//! partly unredacted, except private keys (below).
//!
//! Released text goes out in the event that brought the newest text (events whose text is
//! still held carry an empty string), so the SSE framing and every event's JSON stay valid. At
//! the end of a choice's text (a finish reason) its buffer is released whole; any event carrying
//! no text (a usage chunk, `content_block_stop`, `[DONE]`) releases every buffer, each in one
//! more event shaped like that choice's last text event.
//!
//! Choices (`n` > 1) interleave: each of the first `MAX_CHOICES` choice indexes has its own
//! buffer; text of a choice beyond that is redacted event by event, without the hold-back (a
//! match split across two of its events is not seen).
//!
//! A block rule cannot change the status of a stream that has started: the text before its
//! match is released, then the stream ends for the client with an error event in the API's
//! format (OpenAI: a `data:` line with `{"error": {...}}`, which the OpenAI SDKs raise as an
//! error; Anthropic: `event: error`), and whatever the upstream still sends is dropped.
//!
//! Memory is bounded: per choice at most `max_holdback` plus one event's text, plus a short
//! window of released text kept as context for the detectors' look-behind. A PEM private key
//! is followed to its end marker and withheld entirely.

use std::ops::Range;

use super::rewrite::string_end;
use super::{Action, Direction, Guardrails, Hits};
use crate::error::{ApiFlavor, GatewayError};
use crate::usage::sse::{Piece, SseSplitter};

/// Choice indexes with their own hold-back buffer.
pub const MAX_CHOICES: usize = 16;

/// Bytes of released text kept for the detectors' look-behind (`\b`, "not after a digit").
const CONTEXT_BYTES: usize = 32;

/// Guards one streamed response.
#[derive(Debug)]
pub struct StreamGuard {
    policy: usize,
    max_holdback: usize,
    splitter: SseSplitter,
    choices: Vec<ChoiceText>,
    /// The error format of the API called, for the error event that ends a blocked stream.
    flavor: ApiFlavor,
    /// A block rule matched (this one): the error event has been sent and nothing more goes
    /// out.
    blocked: Option<usize>,
    pub hits: Hits,
}

/// The hold-back state of one choice.
#[derive(Debug, Default)]
struct ChoiceText {
    index: u64,
    /// Generated text received and not yet released.
    pending: String,
    /// The end of the released text (original, not redacted), for look-behind.
    context: String,
    /// The last text event split around its text value, to release what is left at the end.
    template: Option<(Vec<u8>, Vec<u8>)>,
    /// Inside a private key whose end marker has not come yet: withhold text until it does.
    in_private_key: bool,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

const TEXT_PATHS: &[&[Step<'static>]] = &[
    &[
        Step::Key("choices"),
        Step::Index(0),
        Step::Key("delta"),
        Step::Key("content"),
    ],
    &[Step::Key("choices"), Step::Index(0), Step::Key("text")],
    &[Step::Key("delta"), Step::Key("text")],
    &[Step::Key("delta")],
];

impl StreamGuard {
    pub fn new(policy: usize, max_holdback: usize, flavor: ApiFlavor) -> Self {
        Self {
            policy,
            max_holdback: max_holdback.max(1),
            splitter: SseSplitter::default(),
            choices: Vec::new(),
            flavor,
            blocked: None,
            hits: Hits::default(),
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
        self.choices.clear();
    }

    /// Bytes held back (partial events and unreleased text).
    pub fn held(&self) -> usize {
        self.choices.iter().fold(self.splitter.held(), |sum, c| {
            sum.saturating_add(c.pending.len())
        })
    }

    /// Unreleased text bytes of every choice.
    pub fn held_text(&self) -> usize {
        self.choices
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
                Piece::Event(raw) => self.event(guardrails, raw, &mut out),
                Piece::Raw(raw) => {
                    // An event too large to parse: release what is held, then pass it on.
                    self.flush(guardrails, &mut out);
                    out.extend_from_slice(&raw);
                }
            }
        }
        if end && self.blocked.is_none() {
            let rest = self.splitter.finish();
            if !rest.is_empty() {
                self.event(guardrails, rest, &mut out);
            }
            self.flush(guardrails, &mut out);
        }
        out
    }

    fn event(&mut self, guardrails: &Guardrails, raw: Vec<u8>, out: &mut Vec<u8>) {
        let Some(located) = locate_text(&raw) else {
            self.flush(guardrails, out);
            if self.blocked.is_none() {
                let raw = self.repeated(guardrails, raw, out);
                out.extend_from_slice(&raw);
            }
            return;
        };
        let Some(literal) = raw.get(located.text.clone()) else {
            out.extend_from_slice(&raw);
            return;
        };
        let Ok(text) = serde_json::from_slice::<String>(literal) else {
            self.flush(guardrails, out);
            out.extend_from_slice(&raw);
            return;
        };
        let before = raw.get(..located.text.start).unwrap_or_default();
        let after = raw.get(located.text.end..).unwrap_or_default();
        let slot = match self.choices.iter().position(|c| c.index == located.index) {
            Some(slot) => Some(slot),
            None if self.choices.len() < MAX_CHOICES => {
                self.choices.push(ChoiceText {
                    index: located.index,
                    ..ChoiceText::default()
                });
                self.choices.len().checked_sub(1)
            }
            None => None,
        };
        let (policy, max_holdback) = (self.policy, self.max_holdback);
        let (released, blocked) = match slot.and_then(|slot| self.choices.get_mut(slot)) {
            Some(choice) => {
                choice.pending.push_str(&text);
                choice.template = Some((before.to_vec(), after.to_vec()));
                choice.release(
                    guardrails,
                    policy,
                    max_holdback,
                    located.last,
                    &mut self.hits,
                )
            }
            // Past the tracked choices: guard this event's text on its own.
            None => {
                let mut choice = ChoiceText {
                    pending: text,
                    ..ChoiceText::default()
                };
                choice.release(guardrails, policy, max_holdback, true, &mut self.hits)
            }
        };
        if blocked.is_none() || !released.is_empty() {
            out.extend_from_slice(before);
            let _ = serde_json::to_writer(&mut *out, &released);
            out.extend_from_slice(after);
        }
        if let Some(rule) = blocked {
            self.block(rule, guardrails, out);
        }
    }

    /// An event that is not a delta but repeats generated text (the Responses API's `.done`
    /// and `response.completed` events): its texts redacted as whole texts (their hits were
    /// counted in the deltas), or the stream blocked.
    fn repeated(&mut self, guardrails: &Guardrails, raw: Vec<u8>, out: &mut Vec<u8>) -> Vec<u8> {
        let Some(data) = data_line(&raw) else {
            return raw;
        };
        let Some(json) = raw.get(data.clone()) else {
            return raw;
        };
        let texts = super::rewrite::repeated_texts(json);
        let Some(policy) = guardrails.response_policy(self.policy) else {
            return raw;
        };
        let mut replacements = Vec::new();
        for text in texts {
            let findings = guardrails.scan(policy, &text);
            if let Some(blocking) = findings
                .iter()
                .find(|f| policy.action(f.rule) == Some(Action::Block))
            {
                self.block(blocking.rule, guardrails, out);
                return Vec::new();
            }
            let mut uncounted = Hits::default();
            if let Some(redacted) = guardrails.redact(
                policy,
                &text,
                &findings,
                &mut uncounted,
                Direction::Response,
            ) {
                replacements.push((text, redacted));
            }
        }
        if replacements.is_empty() {
            return raw;
        }
        let Ok(rewritten) = super::rewrite_strings(json, &replacements) else {
            return raw;
        };
        let mut event = raw.get(..data.start).unwrap_or_default().to_vec();
        event.extend_from_slice(&rewritten);
        event.extend_from_slice(raw.get(data.end..).unwrap_or_default());
        event
    }

    /// Releases everything held, per choice in an event shaped like its last text event.
    fn flush(&mut self, guardrails: &Guardrails, out: &mut Vec<u8>) {
        let (policy, max_holdback) = (self.policy, self.max_holdback);
        let mut blocked = None;
        for choice in &mut self.choices {
            if choice.pending.is_empty() {
                continue;
            }
            let (released, block) =
                choice.release(guardrails, policy, max_holdback, true, &mut self.hits);
            if let Some((before, after)) = &choice.template {
                if !released.is_empty() {
                    out.extend_from_slice(before);
                    let _ = serde_json::to_writer(&mut *out, &released);
                    out.extend_from_slice(after);
                }
            }
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

impl ChoiceText {
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
            return (std::mem::take(&mut self.pending), None);
        };
        let mut prefix = String::new();
        if self.in_private_key && !self.skip_private_key(all) {
            return (prefix, None);
        }
        let len = self.pending.len();
        // Never hold more than the bound.
        let floor = floor_char_boundary(&self.pending, len.saturating_sub(max_holdback));
        let mut cut = if all {
            len
        } else {
            // Hold from where a match could still be unfinished.
            guardrails
                .unfinished_from(policy_index, &self.pending)
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
        let findings: Vec<super::Finding> = guardrails
            .scan(policy, &window)
            .into_iter()
            .filter(|f| f.range.end > offset)
            .map(|f| super::Finding {
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
        cut = floor_char_boundary(&self.pending, cut);
        if cut == 0 {
            return (prefix, None);
        }
        let mut inside: Vec<_> = findings
            .into_iter()
            .filter(|f| f.range.end <= cut)
            .collect();
        // A block rule: release what comes before its match, then the stream ends.
        if let Some(blocking) = inside
            .iter()
            .find(|f| policy.action(f.rule) == Some(Action::Block))
            .cloned()
        {
            hits.add(blocking.rule, Action::Block);
            let start = floor_char_boundary(&self.pending, blocking.range.start);
            inside.retain(|f| f.range.end <= start);
            let released = self.pending.get(..start).unwrap_or_default();
            let text = guardrails
                .redact(policy, released, &inside, hits, Direction::Response)
                .unwrap_or_else(|| released.to_owned());
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
        let text = guardrails
            .redact(policy, released, &inside, hits, Direction::Response)
            .unwrap_or_else(|| released.to_owned());
        self.remember(cut);
        self.pending = self.pending.get(cut..).unwrap_or_default().to_owned();
        prefix.push_str(&text);
        if opens_key {
            self.in_private_key = true;
            self.context.clear();
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
            self.context.clear();
        }
        (prefix, None)
    }

    /// Keeps the end of `pending[..cut]` (about to be released) as context.
    fn remember(&mut self, cut: usize) {
        let released = self.pending.get(..cut).unwrap_or_default();
        self.context.push_str(released);
        let drop = floor_char_boundary(
            &self.context,
            self.context.len().saturating_sub(CONTEXT_BYTES),
        );
        self.context = self.context.get(drop..).unwrap_or_default().to_owned();
    }

    /// Withholds the rest of a private key up to its end marker. Returns whether the marker
    /// was found (normal scanning resumes after it).
    fn skip_private_key(&mut self, all: bool) -> bool {
        let lower = self.pending.to_ascii_lowercase();
        if let Some(end) = end_marker(&lower) {
            self.pending = self.pending.get(end..).unwrap_or_default().to_owned();
            self.in_private_key = false;
            return true;
        }
        // Keep a tail that may hold the start of a split end marker.
        let keep = if all { 0 } else { 48 };
        let cut = floor_char_boundary(&self.pending, self.pending.len().saturating_sub(keep));
        self.pending = self.pending.get(cut..).unwrap_or_default().to_owned();
        if all {
            self.in_private_key = false;
        }
        false
    }
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

struct Located {
    /// The text's string literal in the raw event.
    text: Range<usize>,
    /// The event ends its choice's text (a non-null `finish_reason`).
    last: bool,
    /// The choice the text belongs to (0 for APIs without choices).
    index: u64,
}

/// Finds the generated text of one raw SSE event (a single `data:` line of JSON).
fn locate_text(raw: &[u8]) -> Option<Located> {
    let data = data_line(raw)?;
    let json = raw.get(data.clone())?;
    for path in TEXT_PATHS {
        let Some(range) = locate(json, path) else {
            continue;
        };
        if json.get(range.start) != Some(&b'"') {
            continue;
        }
        let finish = locate(
            json,
            &[
                Step::Key("choices"),
                Step::Index(0),
                Step::Key("finish_reason"),
            ],
        );
        let last = finish.is_some_and(|r| json.get(r).is_some_and(|v| v != b"null"));
        let index = locate(
            json,
            &[Step::Key("choices"), Step::Index(0), Step::Key("index")],
        );
        let index = index
            .and_then(|r| json.get(r))
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return Some(Located {
            text: data.start.checked_add(range.start)?..data.start.checked_add(range.end)?,
            last,
            index,
        });
    }
    None
}

/// The value range of the event's only `data:` line.
fn data_line(raw: &[u8]) -> Option<Range<usize>> {
    let mut found = None;
    let mut at = 0usize;
    for line in raw.split(|&b| b == b'\n' || b == b'\r') {
        let start = at;
        at = at.checked_add(line.len())?.checked_add(1)?;
        if let Some(value) = line.strip_prefix(b"data:") {
            if found.is_some() {
                return None;
            }
            let skip = usize::from(value.first() == Some(&b' '));
            let begin = start.checked_add(5)?.checked_add(skip)?;
            found = Some(begin..start.checked_add(line.len())?);
        }
    }
    found
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(u8::is_ascii_whitespace) {
        i = i.saturating_add(1);
    }
    i
}

/// The end of the JSON value starting at `i`.
fn value_end(json: &[u8], i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => string_end(json, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match json.get(j)? {
                    b'"' => {
                        j = string_end(json, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth = depth.checked_add(1)?,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return j.checked_add(1);
                        }
                    }
                    _ => {}
                }
                j = j.checked_add(1)?;
            }
        }
        _ => {
            let mut j = i;
            while json
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                j = j.checked_add(1)?;
            }
            Some(j)
        }
    }
}

/// The byte range of the value at `path` in a JSON document.
fn locate(json: &[u8], path: &[Step<'_>]) -> Option<Range<usize>> {
    let mut i = skip_ws(json, 0);
    for step in path {
        match (step, json.get(i)?) {
            (Step::Key(key), b'{') => {
                i = skip_ws(json, i.checked_add(1)?);
                loop {
                    if json.get(i)? != &b'"' {
                        return None;
                    }
                    let key_end = string_end(json, i)?;
                    let name = json.get(i.checked_add(1)?..key_end.checked_sub(1)?)?;
                    i = skip_ws(json, key_end);
                    if json.get(i)? != &b':' {
                        return None;
                    }
                    i = skip_ws(json, i.checked_add(1)?);
                    if name == key.as_bytes() {
                        break;
                    }
                    i = skip_ws(json, value_end(json, i)?);
                    match json.get(i)? {
                        b',' => i = skip_ws(json, i.checked_add(1)?),
                        _ => return None,
                    }
                }
            }
            (Step::Index(n), b'[') => {
                i = skip_ws(json, i.checked_add(1)?);
                for _ in 0..*n {
                    i = skip_ws(json, value_end(json, i)?);
                    match json.get(i)? {
                        b',' => i = skip_ws(json, i.checked_add(1)?),
                        _ => return None,
                    }
                }
                if json.get(i)? == &b']' {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(i..value_end(json, i)?)
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Step, locate};

    #[test]
    fn locates_values_by_path() {
        let json = br#"{"id":"x","choices":[{"index":0,"delta":{"role":"a","content":"hi \"there\""},"finish_reason":null}]}"#;
        let at = |path: &[Step<'_>]| {
            locate(json, path).map(|r| String::from_utf8_lossy(&json[r]).into_owned())
        };
        assert_eq!(
            at(&[
                Step::Key("choices"),
                Step::Index(0),
                Step::Key("delta"),
                Step::Key("content")
            ])
            .as_deref(),
            Some(r#""hi \"there\"""#)
        );
        assert_eq!(
            at(&[
                Step::Key("choices"),
                Step::Index(0),
                Step::Key("finish_reason")
            ])
            .as_deref(),
            Some("null")
        );
        assert_eq!(at(&[Step::Key("choices"), Step::Index(1)]), None);
        assert_eq!(at(&[Step::Key("nope")]), None);
    }
}
