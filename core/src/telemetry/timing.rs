//! Request latencies as the OpenTelemetry GenAI conventions define them, from the moments the
//! filter saw.
//!
//! - **Request duration** (`gen_ai.server.request.duration`): from the request's headers to the
//!   end of its response.
//! - **Time to first token** (`gen_ai.server.time_to_first_token`): from the request's headers to
//!   the first generated output "for successful responses".
//! - **Time per output token** (`gen_ai.server.time_per_output_token`): "the request duration"
//!   less "the time taken to generate the first output token", divided by "the number of output
//!   tokens generated after the first token": `(end - first) / (output - 1)`.
//!
//! Only a streamed response shows when its first token was generated. A non-streamed one
//! arrives whole once generation is over, so its first byte comes at the end: a "time to first
//! token" taken from it would be the whole duration, and a time per output token the few
//! microseconds between its first and last byte (about 1000 times too low). For non-streamed
//! responses both are therefore not recorded, as the conventions' client-side counterparts
//! (`gen_ai.client.operation.time_to_first_chunk` and `..time_per_output_chunk`) say outright:
//! reported for streaming calls, not otherwise. Their duration and token counts are recorded.
//! A stream that did not complete (cut upstream, client gone) is not a successful response:
//! only its duration is recorded, with `error.type`.

/// How the response body came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Server-sent events, token by token.
    Streamed,
    /// One body after generation ended (JSON).
    Whole,
}

/// When things happened, in microseconds of the host clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The request's headers reached the filter.
    pub started_us: u64,
    /// The first response chunk that carried generated output (text, reasoning, tool-call
    /// arguments) passed; `None` if none did.
    pub first_output_us: Option<u64>,
    /// The response ended (its last chunk passed, or the request was torn down).
    pub ended_us: u64,
}

/// What is recorded for one request, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latencies {
    pub duration_us: u64,
    pub time_to_first_token_us: Option<u64>,
    pub time_per_output_token_us: Option<u64>,
}

/// The latencies of a request that went upstream. `complete`: the response ended normally
/// with a success status. `output_tokens`: the response's output tokens (reported, else
/// estimated). A clock that went backwards gives 0, never a wrap-around.
pub fn latencies(
    timeline: Timeline,
    delivery: Delivery,
    complete: bool,
    output_tokens: u64,
) -> Latencies {
    let duration_us = timeline.ended_us.saturating_sub(timeline.started_us);
    let first = match (delivery, complete) {
        (Delivery::Streamed, true) => timeline.first_output_us,
        _ => None,
    };
    let time_to_first_token_us = first.map(|first| first.saturating_sub(timeline.started_us));
    let after_first = output_tokens.saturating_sub(1);
    let time_per_output_token_us = first.filter(|_| after_first > 0).and_then(|first| {
        let decode = timeline.ended_us.saturating_sub(first);
        // Rounded to the nearest microsecond.
        decode
            .saturating_add(after_first / 2)
            .checked_div(after_first)
    });
    Latencies {
        duration_us,
        time_to_first_token_us,
        time_per_output_token_us,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Delivery, Latencies, Timeline, latencies};

    const T0: u64 = 1_700_000_000_000_000;

    /// A stream as the simulator makes it: 100 ms of prefill, then 10 tokens 20 ms apart (the
    /// first at the end of prefill plus one decode step).
    fn stream() -> Timeline {
        Timeline {
            started_us: T0,
            first_output_us: Some(T0 + 120_000),
            ended_us: T0 + 120_000 + 9 * 20_000,
        }
    }

    #[test]
    fn a_completed_stream_has_all_three() {
        assert_eq!(
            latencies(stream(), Delivery::Streamed, true, 10),
            Latencies {
                duration_us: 300_000,
                time_to_first_token_us: Some(120_000),
                time_per_output_token_us: Some(20_000),
            }
        );
        // Rounded to the nearest microsecond: 100 µs over 3 tokens after the first.
        let odd = Timeline {
            started_us: 0,
            first_output_us: Some(10),
            ended_us: 110,
        };
        let l = latencies(odd, Delivery::Streamed, true, 4);
        assert_eq!(l.time_per_output_token_us, Some(33));
    }

    #[test]
    fn a_whole_response_has_a_duration_only() {
        // A JSON body arrives at the end: whatever its first byte's time, no first token.
        let json = Timeline {
            started_us: T0,
            first_output_us: Some(T0 + 299_990),
            ended_us: T0 + 300_000,
        };
        assert_eq!(
            latencies(json, Delivery::Whole, true, 10),
            Latencies {
                duration_us: 300_000,
                time_to_first_token_us: None,
                time_per_output_token_us: None,
            }
        );
    }

    #[test]
    fn an_incomplete_stream_has_a_duration_only() {
        let l = latencies(stream(), Delivery::Streamed, false, 3);
        assert_eq!(l.duration_us, 300_000);
        assert_eq!(l.time_to_first_token_us, None);
        assert_eq!(l.time_per_output_token_us, None);
    }

    #[test]
    fn one_output_token_has_no_time_per_token_and_no_output_has_no_first_token() {
        let l = latencies(stream(), Delivery::Streamed, true, 1);
        assert_eq!(l.time_to_first_token_us, Some(120_000));
        assert_eq!(l.time_per_output_token_us, None);
        let silent = Timeline {
            first_output_us: None,
            ..stream()
        };
        let l = latencies(silent, Delivery::Streamed, true, 0);
        assert_eq!(
            (l.time_to_first_token_us, l.time_per_output_token_us),
            (None, None)
        );
    }

    #[test]
    fn a_clock_that_went_backwards_gives_zero() {
        let skewed = Timeline {
            started_us: T0,
            first_output_us: Some(T0 - 5),
            ended_us: T0 - 10,
        };
        assert_eq!(
            latencies(skewed, Delivery::Streamed, true, 5),
            Latencies {
                duration_us: 0,
                time_to_first_token_us: Some(0),
                time_per_output_token_us: Some(0),
            }
        );
    }
}
