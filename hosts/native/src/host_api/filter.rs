//! What filter logic implements: one `StreamFilter` per HTTP stream, driven phase by phase.
//!
//! Every callback gets the stream's view and returns what Envoy does next. A filter that sent a
//! local reply returns a stopping status. A panic in any callback is caught by the host: the
//! request gets a 500 in its API's error format and the filter gets no further callbacks.

use super::stream::{EndingStream, Stream};

pub trait StreamFilter {
    /// The request headers arrived (`end_of_stream`: there is no body).
    fn on_request_headers(&mut self, stream: &mut dyn Stream, end_of_stream: bool)
    -> HeadersStatus;

    /// A request body chunk arrived; `stream.request_body()` holds everything so far.
    fn on_request_body(&mut self, _stream: &mut dyn Stream, _end_of_stream: bool) -> BodyStatus {
        BodyStatus::Continue
    }

    fn on_request_trailers(&mut self, _stream: &mut dyn Stream) -> TrailersStatus {
        TrailersStatus::Continue
    }

    fn on_response_headers(
        &mut self,
        _stream: &mut dyn Stream,
        _end_of_stream: bool,
    ) -> HeadersStatus {
        HeadersStatus::Continue
    }

    fn on_response_body(&mut self, _stream: &mut dyn Stream, _end_of_stream: bool) -> BodyStatus {
        BodyStatus::Continue
    }

    fn on_response_trailers(&mut self, _stream: &mut dyn Stream) -> TrailersStatus {
        TrailersStatus::Continue
    }

    /// An event committed on a scheduler from `Stream::scheduler` came back.
    fn on_scheduled(&mut self, _stream: &mut dyn Stream, _event_id: u64) {}

    /// The stream is over (answered, reset or aborted); last chance to record it. Runs before
    /// Envoy writes its access log. Envoy 1.40 never calls it for an upstream filter.
    fn on_stream_complete(&mut self, _stream: &mut dyn Stream) {}

    /// Envoy is destroying the filter: the last callback, after every other. For an upstream
    /// filter it is the only one that follows an attempt that got no response (a refused
    /// connection, a reset, a per-try timeout). `stream` offers only what Envoy still serves
    /// while it tears the filter down: counters and the log.
    fn on_destroy(&mut self, _stream: &mut dyn EndingStream) {}
}

/// What a headers callback tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersStatus {
    /// Pass the headers on to the next filter.
    Continue,
    /// Hold the headers; the body callbacks still run, and returning `Continue` from one (or
    /// calling `Stream::continue_decoding`) lets the headers go, with any changes made since.
    StopIteration,
}

/// What a body callback tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStatus {
    /// Pass the body so far on.
    Continue,
    /// Keep this chunk in the buffer and wait for more (the usual way to read a whole body).
    StopIterationAndBuffer,
    /// Stop without buffering (after a local reply).
    StopIterationNoBuffer,
}

/// What a trailers callback tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailersStatus {
    Continue,
    StopIteration,
}
