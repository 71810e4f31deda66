//! One read of a response for everyone who reads it. A whole JSON body is read once
//! (`response_text::BodyRead`: whether it is JSON, where its texts, usage and model sit) and
//! both the response guard (`Guardrails::guard_json_read`) and token accounting
//! (`usage::body_counts`) take that read. A stream is split once and each event read once
//! (`StreamRead`): the guard rewrites and holds back text from that read, and accounting takes
//! the event's usage and model from it, and the text the guard let out from the guard
//! (`StreamGuard::count_output`), so nothing the guard wrote is split or read again.

use std::ops::Range;

use crate::guardrails::{Guardrails, StreamGuard};
use crate::usage::sse::{ParsedEvent, Piece, SseSplitter};
use crate::usage::{Counts, StreamReader, without_null_usage};

/// Reads a stream once for its guard (if it has one) and its accounting.
#[derive(Debug)]
pub struct StreamRead {
    splitter: SseSplitter,
    reader: StreamReader,
}

/// Where an upstream event's own bytes went in a chunk's output, for the usage chunk removal.
struct Rendition {
    at: Range<usize>,
    /// The client gets it (it is not the usage chunk the gateway asked for).
    keep: bool,
    /// A whole event (not the unfinished last one), whose `"usage":null` is removed.
    whole: bool,
}

impl StreamRead {
    pub fn new(reader: StreamReader) -> Self {
        Self {
            splitter: SseSplitter::default(),
            reader,
        }
    }

    /// Prepares `guard` to guard this stream: it counts the text it lets out for accounting.
    pub fn guard_with(&self, guard: &mut StreamGuard) {
        guard.count_output(self.reader.tables());
    }

    /// One chunk of the stream (`end` on the last), guarded by `guard` when there is one
    /// (prepared by `guard_with`). Returns the bytes to send instead of the chunk, or `None`
    /// to pass it on as it is.
    ///
    /// What accounting reads is what it read when the guard and the reader each split the
    /// stream: usage and the model from every upstream event (the guard does not change them),
    /// generated text as the client gets it (released, redacted), and once a block rule ended
    /// the stream, the upstream's text.
    pub fn chunk(
        &mut self,
        mut guard: Option<(&mut StreamGuard, &Guardrails)>,
        bytes: &[u8],
        end: bool,
    ) -> Option<Vec<u8>> {
        let mut pieces = Vec::new();
        self.splitter.feed(bytes, |piece| pieces.push(piece));
        let mut out = Vec::with_capacity(bytes.len());
        let mut renditions = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Event(raw) => {
                    let event = ParsedEvent::parse(&raw);
                    self.event(guard.as_mut(), &event, true, &mut out, &mut renditions);
                }
                Piece::Raw(raw) => match guard.as_mut() {
                    Some((guard, rules)) => {
                        guard.unparsed(rules, &raw, &mut out);
                        self.take_guarded(guard);
                    }
                    None => out.extend_from_slice(&raw),
                },
            }
        }
        if end {
            let rest = self.splitter.finish();
            // A last event without its blank line still counts.
            if !rest.is_empty() {
                let event = ParsedEvent::parse(&rest);
                self.event(guard.as_mut(), &event, false, &mut out, &mut renditions);
            }
            if let Some((guard, rules)) = guard.as_mut() {
                guard.end(rules, &mut out);
                self.take_guarded(guard);
            }
        }
        let strip = self.reader.strips();
        match guard {
            // A block rule ended the stream: the client gets what the guard let out, then
            // nothing.
            Some((guard, _)) if guard.is_blocked() => Some(out),
            Some(_) => {
                let out = if strip {
                    stripped(&out, &renditions)
                } else {
                    out
                };
                (out != bytes).then_some(out)
            }
            None if strip => {
                let out = stripped(&out, &renditions);
                (out != bytes).then_some(out)
            }
            None => None,
        }
    }

    fn event(
        &mut self,
        guard: Option<&mut (&mut StreamGuard, &Guardrails)>,
        event: &ParsedEvent<'_>,
        whole: bool,
        out: &mut Vec<u8>,
        renditions: &mut Vec<Rendition>,
    ) {
        match guard {
            Some((guard, rules)) if !guard.is_blocked() => {
                let at = guard.event(rules, event, out);
                if guard.is_blocked() {
                    // It ended the stream here: the upstream's event is what is counted.
                    guard.take_output();
                    self.reader.event(event, true);
                    return;
                }
                let keep = self.reader.event(event, false);
                self.take_guarded(guard);
                if let Some(at) = at {
                    renditions.push(Rendition { at, keep, whole });
                }
            }
            // Blocked: nothing more goes out; usage is still read from the upstream's events.
            Some(_) => {
                self.reader.event(event, true);
            }
            None => {
                let keep = self.reader.event(event, true);
                let start = out.len();
                out.extend_from_slice(event.raw);
                renditions.push(Rendition {
                    at: start..out.len(),
                    keep,
                    whole,
                });
            }
        }
    }

    /// Counts the text the guard let out, unless it has just ended the stream.
    fn take_guarded(&mut self, guard: &mut StreamGuard) {
        let (units, saw_text) = guard.take_output();
        if !guard.is_blocked() {
            self.reader.add_output(units, saw_text);
        }
    }

    pub fn reader(&self) -> &StreamReader {
        &self.reader
    }

    /// The counts at the end of the stream (`StreamReader::finish`).
    pub fn finish(&self, input_estimate: u64) -> Counts {
        self.reader.finish(input_estimate)
    }
}

/// `out` without the usage chunk the gateway asked for and the `"usage":null` members its
/// request added to every event.
fn stripped(out: &[u8], renditions: &[Rendition]) -> Vec<u8> {
    let mut stripped = Vec::with_capacity(out.len());
    let mut copied = 0usize;
    for rendition in renditions {
        stripped.extend_from_slice(out.get(copied..rendition.at.start).unwrap_or_default());
        copied = rendition.at.end;
        let event = out.get(rendition.at.clone()).unwrap_or_default();
        if !rendition.keep {
            continue;
        }
        if rendition.whole {
            stripped.extend_from_slice(&without_null_usage(event));
        } else {
            stripped.extend_from_slice(event);
        }
    }
    stripped.extend_from_slice(out.get(copied..).unwrap_or_default());
    stripped
}

#[cfg(test)]
mod tests;
