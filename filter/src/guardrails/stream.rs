//! Guarding a streamed response (server-sent events) as it passes.
//!
//! The generated text of every event (OpenAI chat `choices[0].delta.content`, completions
//! `choices[0].text`, Anthropic `delta.text`, Responses `response.output_text.delta`) goes into
//! a hold-back buffer, so detectors see text that spans events and chunks. Text is released,
//! redacted, once `holdback` bytes follow it: a match up to `holdback` bytes long is therefore
//! always seen whole before any of it leaves. Released text goes out in the event that brought
//! the newest text (earlier events carry an empty string), so the SSE framing and every
//! event's JSON stay valid and the client still gets text as it comes, `holdback` bytes behind.
//! At the end of the text (a finish reason, or any event carrying no text, like a usage chunk,
//! `content_block_stop` or `[DONE]`) everything left is released in one more event shaped like
//! the last text event.
//!
//! Memory is bounded: the buffer holds at most `2 × holdback` plus one event's text; a match
//! longer than that is redacted up to where the buffer ends. A PEM private key, far longer
//! than the hold-back, is followed to its end marker and withheld entirely.

use std::ops::Range;

use super::rewrite::string_end;
use super::{Direction, Guardrails, Hits};
use crate::usage::sse::{Piece, SseSplitter};

/// Guards one streamed response.
#[derive(Debug)]
pub struct StreamGuard {
    policy: usize,
    holdback: usize,
    splitter: SseSplitter,
    /// Generated text received and not yet released.
    pending: String,
    /// The last text event split around its text value, to release what is left at the end.
    template: Option<(Vec<u8>, Vec<u8>)>,
    /// Inside a private key whose end marker has not come yet: withhold text until it does.
    in_private_key: bool,
    pub hits: Hits,
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
    pub fn new(policy: usize, holdback: usize) -> Self {
        Self {
            policy,
            holdback: holdback.max(1),
            splitter: SseSplitter::default(),
            pending: String::new(),
            template: None,
            in_private_key: false,
            hits: Hits::default(),
        }
    }

    /// Bytes held back (partial events and unreleased text).
    pub fn held(&self) -> usize {
        self.splitter.held().saturating_add(self.pending.len())
    }

    /// One chunk of the stream in; the bytes to send on instead. `end` on the last chunk.
    pub fn chunk(&mut self, guardrails: &Guardrails, bytes: &[u8], end: bool) -> Vec<u8> {
        let mut pieces = Vec::new();
        self.splitter.feed(bytes, |piece| pieces.push(piece));
        let mut out = Vec::with_capacity(bytes.len());
        for piece in pieces {
            match piece {
                Piece::Event(raw) => self.event(guardrails, raw, &mut out),
                Piece::Raw(raw) => {
                    // An event too large to parse: release what is held, then pass it on.
                    self.flush(guardrails, &mut out);
                    out.extend_from_slice(&raw);
                }
            }
        }
        if end {
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
            out.extend_from_slice(&raw);
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
        let released = if located.other_choice {
            // A second choice (`n` > 1) interleaves: guard its events one by one.
            self.redact_now(guardrails, &text)
        } else {
            self.pending.push_str(&text);
            self.template = Some((before.to_vec(), after.to_vec()));
            self.release(guardrails, located.last)
        };
        out.extend_from_slice(before);
        let _ = serde_json::to_writer(&mut *out, &released);
        out.extend_from_slice(after);
    }

    /// Releases everything held, in an event shaped like the last text event.
    fn flush(&mut self, guardrails: &Guardrails, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        let released = self.release(guardrails, true);
        if let Some((before, after)) = &self.template {
            if !released.is_empty() {
                out.extend_from_slice(before);
                let _ = serde_json::to_writer(&mut *out, &released);
                out.extend_from_slice(after);
            }
        }
    }

    fn redact_now(&mut self, guardrails: &Guardrails, text: &str) -> String {
        let Some(policy) = guardrails.policy(self.policy) else {
            return text.to_owned();
        };
        let findings = guardrails.scan(policy, text);
        guardrails
            .redact(policy, text, &findings, &mut self.hits, Direction::Response)
            .unwrap_or_else(|| text.to_owned())
    }

    /// The text that may leave now (all of it when `all`), redacted.
    fn release(&mut self, guardrails: &Guardrails, all: bool) -> String {
        let Some(policy) = guardrails.policy(self.policy) else {
            return std::mem::take(&mut self.pending);
        };
        let mut prefix = String::new();
        if self.in_private_key && !self.skip_private_key(all) {
            return prefix;
        }
        let len = self.pending.len();
        // Scan once per half hold-back of new text, not on every event.
        let step = self.holdback / 2;
        if !all && len < self.holdback.saturating_add(step) {
            return prefix;
        }
        let findings = guardrails.scan(policy, &self.pending);
        let mut cut = if all {
            len
        } else {
            len.saturating_sub(self.holdback)
        };
        let bounded = len <= self.holdback.saturating_mul(2);
        loop {
            let straddling = findings
                .iter()
                .filter(|f| f.range.start < cut && f.range.end > cut)
                .map(|f| if bounded { f.range.start } else { f.range.end })
                .reduce(|a, b| if bounded { a.min(b) } else { a.max(b) });
            match straddling {
                Some(next) => cut = next,
                None => break,
            }
        }
        while cut > 0 && !self.pending.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        let inside: Vec<_> = findings
            .into_iter()
            .filter(|f| f.range.end <= cut)
            .collect();
        let released = self.pending.get(..cut).unwrap_or_default();
        let opens_key = inside.iter().any(|f| {
            guardrails.rule_id(f.rule) == "private_key"
                && policy
                    .action(f.rule)
                    .is_some_and(|a| a != super::Action::Log)
                && !contains_end_marker(released.get(f.range.clone()).unwrap_or_default())
        });
        let text = guardrails
            .redact(
                policy,
                released,
                &inside,
                &mut self.hits,
                Direction::Response,
            )
            .unwrap_or_else(|| released.to_owned());
        self.pending = self.pending.get(cut..).unwrap_or_default().to_owned();
        prefix.push_str(&text);
        if opens_key {
            self.in_private_key = true;
            if self.skip_private_key(all) {
                let rest = self.release(guardrails, all);
                prefix.push_str(&rest);
            }
        }
        prefix
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
        let mut cut = self.pending.len().saturating_sub(keep);
        while cut > 0 && !self.pending.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
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
    /// The text belongs to a choice other than the first.
    other_choice: bool,
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
        let other_choice = index.is_some_and(|r| json.get(r).is_some_and(|v| v != b"0"));
        return Some(Located {
            text: data.start.checked_add(range.start)?..data.start.checked_add(range.end)?,
            last,
            other_choice,
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
