//! Turning a generation into a server-sent event stream, one batch of events per token.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::Event;
use futures_util::Stream;
use futures_util::stream;

use crate::engine::{Generation, Token};

/// Events as the engine produces tokens. `render` gives the events for one token, including any
/// opening events on the first and closing events on the last. Dropping the stream (the client
/// went away) drops the generation, which aborts it in the engine.
pub fn token_events<R>(
    generation: Generation,
    render: R,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    R: FnMut(Token) -> Vec<Event> + Send + 'static,
{
    struct State<R> {
        generation: Generation,
        render: R,
        pending: VecDeque<Event>,
    }

    let state = State {
        generation,
        render,
        pending: VecDeque::new(),
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            // None after the last token (or if the engine stopped): the stream ends.
            let token = state.generation.next_token().await?;
            state.pending.extend((state.render)(token));
        }
    })
}

/// An event carrying one JSON object.
pub fn json_event(value: &serde_json::Value) -> Event {
    Event::default().data(value.to_string())
}
