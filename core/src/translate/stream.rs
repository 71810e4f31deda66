//! Stream translation: a target's server-sent events in one API's shape, re-told in the other's
//! as they arrive, whatever the chunk boundaries (`usage::sse::SseSplitter` cuts whole events
//! out of the bytes; each whole event is translated at once, so nothing is held beyond one
//! unfinished event).
//!
//! What the client gets, either way:
//! - A stream of its own API that parses event by event: OpenAI chunks
//!   (`chat.completion.chunk`, one `id`, `created` and `model`, the target's) ending with
//!   `data: [DONE]`; or Anthropic events from `message_start` to `message_stop`, each content
//!   block opened, filled and closed before the next opens.
//! - The usage in the place its API keeps it: for an OpenAI client, the usage chunk
//!   (`choices: []`, `usage` with `prompt_tokens_details.cached_tokens`) before `[DONE]`; for an
//!   Anthropic client, the full figures in `message_delta.usage` (see `to_anthropic`).
//! - An ending in its own API when the target's stream does not end properly (it is cut, sends
//!   data that does not parse as its API's events, or an event larger than `MAX_EVENT_BYTES`,
//!   1 MiB): an OpenAI error chunk then `[DONE]`, or an Anthropic `error` event. A cut stream
//!   never reads as a finished answer. Once that ending (or the stream's own) is sent, later
//!   bytes are dropped. An error the target streams itself is passed on in the client's error
//!   format, its type mapped (`overloaded_error` <-> `server_error`/`overloaded`...).
//! - Anthropic has no `created` time: the OpenAI chunks carry the one the host gives
//!   (`with_created`), since core reads no clock.
//!
//! The conventions where the APIs differ (reasoning text, refusals, what is dropped) are in
//! `to_openai` and `to_anthropic`.

mod to_anthropic;
mod to_openai;
mod write;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use crate::usage::sse::{MAX_EVENT_BYTES, Piece, SseSplitter, parse_event};

use super::Shape;
use to_anthropic::ToAnthropic;
use to_openai::ToOpenAi;

/// Translates one streamed response from the target's API shape into the client's.
#[derive(Debug)]
pub struct StreamTranslator {
    splitter: SseSplitter,
    direction: Direction,
    /// The client's stream has ended (its final event, or an error ending, was sent).
    ended: bool,
}

#[derive(Debug)]
enum Direction {
    /// Target and client speak the same API: the bytes pass as they are.
    Same,
    /// An Anthropic target, an OpenAI client.
    ToOpenAi(ToOpenAi),
    /// An OpenAI target, an Anthropic client.
    ToAnthropic(ToAnthropic),
}

/// What one target event did to the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// More events may follow.
    Continue,
    /// The client's stream is complete (its final event, or an error ending, was written).
    Ended,
}

/// Why the client's stream gets an error ending from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The target's stream ended before its final event.
    Cut,
    /// One event of the target's stream is longer than `MAX_EVENT_BYTES`.
    Oversized,
    /// An event's data is not what the target's API sends.
    Malformed,
    /// An OpenAI target streamed a tool call's arguments after the next tool call began: the
    /// Anthropic block it belongs to is already closed.
    Interleaved,
}

impl Failure {
    fn message(self) -> String {
        match self {
            Self::Cut => "The upstream's stream ended before the response was complete.".into(),
            Self::Oversized => format!(
                "The upstream sent a stream event larger than the gateway's limit of \
                 {MAX_EVENT_BYTES} bytes."
            ),
            Self::Malformed => {
                "The upstream sent a stream event the gateway could not translate.".into()
            }
            Self::Interleaved => "The upstream interleaved the arguments of parallel tool \
                                  calls, which the gateway cannot translate."
                .into(),
        }
    }
}

impl StreamTranslator {
    /// Translates a stream the target sends in `target` shape into the `client` shape.
    pub fn new(target: Shape, client: Shape) -> Self {
        let direction = match (target, client) {
            (Shape::AnthropicMessages, Shape::OpenAiChat) => Direction::ToOpenAi(ToOpenAi::new()),
            (Shape::OpenAiChat, Shape::AnthropicMessages) => {
                Direction::ToAnthropic(ToAnthropic::new())
            }
            (Shape::OpenAiChat, Shape::OpenAiChat)
            | (Shape::AnthropicMessages, Shape::AnthropicMessages) => Direction::Same,
        };
        Self {
            splitter: SseSplitter::default(),
            direction,
            ended: false,
        }
    }

    /// The `created` time (Unix seconds) of the OpenAI chunks made from an Anthropic stream,
    /// which has none; 0 unless given. The host passes its clock's time (core reads no clock).
    pub fn with_created(mut self, unix_seconds: u64) -> Self {
        if let Direction::ToOpenAi(to_openai) = &mut self.direction {
            to_openai.set_created(unix_seconds);
        }
        self
    }

    /// One chunk as it arrives (`end` on the last). Returns the bytes to send the client in its
    /// place (possibly empty while an event is incomplete). Events are translated as soon as
    /// they are whole: nothing is held beyond one unfinished event.
    pub fn chunk(&mut self, bytes: &[u8], end: bool) -> Vec<u8> {
        if matches!(self.direction, Direction::Same) {
            return bytes.to_vec();
        }
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let Self {
            splitter,
            direction,
            ended,
        } = self;
        splitter.feed(bytes, |piece| {
            if *ended {
                return;
            }
            // The splitter passes on unparsed what it cannot hold, and may hand over whole an
            // event that ends in the chunk that took it past the cap: both are over it.
            let step = match piece {
                Piece::Event(raw) if raw.len() <= MAX_EVENT_BYTES => {
                    direction.event(&raw, &mut out)
                }
                Piece::Event(_) | Piece::Raw(_) => Err(Failure::Oversized),
            };
            *ended = direction.settle(step, &mut out) == Step::Ended;
        });
        if end && !self.ended {
            // A last event without its blank line still counts; one cut short fails to parse
            // and reads as the cut it is.
            let rest = self.splitter.finish();
            let mut step = Ok(Step::Continue);
            if rest.len() > MAX_EVENT_BYTES {
                step = Err(Failure::Oversized);
            } else if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                step = self
                    .direction
                    .event(&rest, &mut out)
                    .map_err(|failure| match failure {
                        Failure::Malformed => Failure::Cut,
                        other => other,
                    });
            }
            if self.direction.settle(step, &mut out) == Step::Continue {
                self.direction.finish(&mut out);
            }
            self.ended = true;
        }
        if self.ended {
            // Nothing more is read: let go of whatever the splitter still holds.
            self.splitter.finish();
        }
        out
    }

    /// Bytes held back (an unfinished event), for the bound checks.
    pub fn held(&self) -> usize {
        self.splitter.held()
    }
}

impl Direction {
    /// Translates one whole event of the target's stream into `out`.
    fn event(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<Step, Failure> {
        let event = parse_event(raw);
        match self {
            Self::Same => Ok(Step::Continue),
            Self::ToOpenAi(to_openai) => to_openai.event(event.name, &event.data, out),
            Self::ToAnthropic(to_anthropic) => to_anthropic.event(&event.data, out),
        }
    }

    /// What an event's translation did; a failure ends the client's stream with its error.
    fn settle(&mut self, step: Result<Step, Failure>, out: &mut Vec<u8>) -> Step {
        match step {
            Ok(step) => step,
            Err(failure) => self.fail(failure, out),
        }
    }

    /// Ends the client's stream with an error in its API.
    fn fail(&mut self, failure: Failure, out: &mut Vec<u8>) -> Step {
        match self {
            Self::Same => {}
            Self::ToOpenAi(to_openai) => to_openai.fail(failure, out),
            Self::ToAnthropic(to_anthropic) => to_anthropic.fail(failure, out),
        }
        Step::Ended
    }

    /// The target's stream ended: finishes the client's, or fails it if the target's was cut.
    fn finish(&mut self, out: &mut Vec<u8>) {
        let complete = match self {
            Self::Same => true,
            Self::ToOpenAi(to_openai) => to_openai.finish(out),
            Self::ToAnthropic(to_anthropic) => to_anthropic.finish(out),
        };
        if !complete {
            self.fail(Failure::Cut, out);
        }
    }
}
