//! An incremental server-sent-events splitter: bytes in, whole events out, whatever the chunk
//! boundaries (inside a UTF-8 sequence, between `\r` and `\n`, inside the blank line that ends
//! an event). Lines end with `\n`, `\r\n` or `\r`, as the SSE specification allows.

use std::borrow::Cow;
use std::ops::Range;

use crate::response_text::{self, Located, Mode};

/// Bytes of one unfinished event kept at most; a longer event is passed on unparsed.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseSplitter {
    /// The start of the event not finished yet.
    pending: Vec<u8>,
    /// Where in `pending` the line being read starts.
    line_start: usize,
    /// How far `pending` has been scanned for line ends.
    scanned: usize,
    /// The current event is longer than `MAX_EVENT_BYTES`: its bytes are passed on as they come
    /// and it is not parsed.
    overflowed: bool,
}

/// What `feed` found in the bytes given to it so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole event: its raw bytes, blank line included.
    Event(Vec<u8>),
    /// Bytes of an event too long to parse, passed on as they are.
    Raw(Vec<u8>),
}

impl SseSplitter {
    /// Adds `bytes` and calls `out` for every event they complete.
    pub fn feed(&mut self, bytes: &[u8], mut out: impl FnMut(Piece)) {
        if self.overflowed {
            // Pass on bytes until the blank line ending the oversized event.
            self.pending.extend_from_slice(bytes);
            self.drain_overflow(&mut out);
            if self.overflowed {
                return;
            }
        } else {
            self.pending.extend_from_slice(bytes);
        }
        loop {
            let rest = self.pending.get(self.scanned..).unwrap_or_default();
            let Some(offset) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.scanned = self.pending.len();
                break;
            };
            let at = self.scanned.saturating_add(offset);
            let after = at.saturating_add(1);
            let is_cr = self.pending.get(at) == Some(&b'\r');
            let line_end = if is_cr {
                match self.pending.get(after) {
                    // A `\r` as the last byte: a `\n` may follow in the next chunk.
                    None => {
                        self.scanned = at;
                        break;
                    }
                    Some(b'\n') => after.saturating_add(1),
                    Some(_) => after,
                }
            } else {
                after
            };
            let empty_line = at == self.line_start;
            self.scanned = line_end;
            self.line_start = line_end;
            if empty_line {
                let rest = self.pending.split_off(line_end);
                let event = std::mem::replace(&mut self.pending, rest);
                self.scanned = 0;
                self.line_start = 0;
                out(Piece::Event(event));
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            self.overflowed = true;
            self.drain_overflow(&mut out);
        }
    }

    /// While overflowed: passes on everything up to and including the next blank line.
    fn drain_overflow(&mut self, out: &mut impl FnMut(Piece)) {
        // Look for two line ends in a row; keep one byte back in case a `\r\n` is split.
        let bytes = &self.pending;
        let mut end = None;
        let mut i = 0usize;
        let mut previous_was_line_end = false;
        while let Some(&b) = bytes.get(i) {
            let width = match (b, bytes.get(i.saturating_add(1))) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => break,
                (b'\r' | b'\n', _) => 1,
                _ => 0,
            };
            if width > 0 {
                if previous_was_line_end {
                    end = Some(i.saturating_add(width));
                    break;
                }
                previous_was_line_end = true;
                i = i.saturating_add(width);
            } else {
                previous_was_line_end = false;
                i = i.saturating_add(1);
            }
        }
        match end {
            Some(end) => {
                let rest = self.pending.split_off(end);
                let raw = std::mem::replace(&mut self.pending, rest);
                self.overflowed = false;
                self.scanned = 0;
                self.line_start = 0;
                out(Piece::Raw(raw));
            }
            None => {
                // Keep the last byte (a possible `\r` or line end) to see what follows it.
                let keep = self.pending.len().saturating_sub(1);
                let rest = self.pending.split_off(keep);
                let raw = std::mem::replace(&mut self.pending, rest);
                if !raw.is_empty() {
                    out(Piece::Raw(raw));
                }
            }
        }
    }

    /// The bytes of an unfinished event, at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.line_start = 0;
        self.overflowed = false;
        std::mem::take(&mut self.pending)
    }

    /// Bytes held back, waiting for the rest of their event.
    pub fn held(&self) -> usize {
        self.pending.len()
    }
}

/// An event's `event:` name and its `data:` lines joined with `\n`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    pub name: Option<&'a str>,
    pub data: std::borrow::Cow<'a, str>,
}

/// Reads the fields of one raw event (as `SseSplitter` gives it). Non-UTF-8 lines are skipped.
pub fn parse_event(raw: &[u8]) -> Event<'_> {
    let mut event = Event::default();
    let mut data: Option<std::borrow::Cow<'_, str>> = None;
    for line in raw.split(|&b| b == b'\n' || b == b'\r') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event.name = Some(value),
            "data" => {
                data = Some(match data {
                    None => std::borrow::Cow::Borrowed(value),
                    Some(previous) => {
                        let mut joined = previous.into_owned();
                        joined.push('\n');
                        joined.push_str(value);
                        std::borrow::Cow::Owned(joined)
                    }
                })
            }
            _ => {}
        }
    }
    event.data = data.unwrap_or_default();
    event
}

/// One event as `SseSplitter` gives it, read once for everyone who reads it (the response
/// guard, token accounting): its data lines joined, where its only data line sits, and the
/// texts, usage and model of its data.
#[derive(Debug)]
pub struct ParsedEvent<'a> {
    pub raw: &'a [u8],
    /// The values of its `data:` lines joined with `\n`.
    pub data: Cow<'a, [u8]>,
    /// The value of the event's only data line, when it has exactly one.
    pub single: Option<Range<usize>>,
    pub has_data: bool,
    /// Where the data's texts, usage and model are (`response_text`), for data that is
    /// neither empty nor `[DONE]`.
    pub located: Option<Located>,
}

impl<'a> ParsedEvent<'a> {
    /// Reads `raw`: its fields, and its data's texts, usage and model.
    pub fn parse(raw: &'a [u8]) -> Self {
        let mut event = Self::split(raw);
        if !event.data.is_empty() && event.data.as_ref() != b"[DONE]" {
            event.located = Some(response_text::locate(&event.data, Mode::Event));
        }
        event
    }

    /// Reads `raw`'s fields only (`located` stays `None`).
    pub fn split(raw: &'a [u8]) -> Self {
        let mut event = Self {
            raw,
            data: Cow::Borrowed(&[]),
            single: None,
            has_data: false,
            located: None,
        };
        let mut at = 0usize;
        let mut lines = 0usize;
        for line in raw.split(|&b| b == b'\n' || b == b'\r') {
            let start = at;
            at = at.saturating_add(line.len()).saturating_add(1);
            let Some(value) = line.strip_prefix(b"data:") else {
                continue;
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            lines = lines.saturating_add(1);
            if event.has_data {
                let mut joined = std::mem::take(&mut event.data).into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                event.data = Cow::Owned(joined);
            } else {
                event.data = Cow::Borrowed(value);
                let begin = start.saturating_add(line.len()).saturating_sub(value.len());
                event.single = Some(begin..start.saturating_add(line.len()));
            }
            event.has_data = true;
        }
        if lines > 1 {
            event.single = None;
        }
        event
    }

    /// The event's lines other than data (`event: ...`), each ending with `\n`.
    pub fn head(&self) -> Vec<u8> {
        let mut head = Vec::new();
        for line in self.raw.split(|&b| b == b'\n' || b == b'\r') {
            if !line.is_empty() && !line.starts_with(b"data:") {
                head.extend_from_slice(line);
                head.push(b'\n');
            }
        }
        head
    }
}
