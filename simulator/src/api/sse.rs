//! Turning a generation into a server-sent event stream, one batch of events per token.

use std::collections::VecDeque;

use axum::response::sse::Event;
use futures_util::Stream;
use futures_util::stream;

use crate::engine::{Generation, Token};

/// Events as the engine produces tokens. `render` gives the events for one token, including any
/// opening events on the first and closing events on the last. Dropping the stream (the client
/// went away) drops the generation, which aborts it in the engine. With `cut_after`, the stream
/// fails after that many tokens: the server drops the connection mid-response.
pub fn token_events<R>(
    generation: Generation,
    render: R,
    cut_after: Option<u32>,
) -> impl Stream<Item = Result<Event, std::io::Error>> + Send + 'static
where
    R: FnMut(Token) -> Vec<Event> + Send + 'static,
{
    struct State<R> {
        generation: Generation,
        render: R,
        pending: VecDeque<Event>,
        tokens: u32,
        cut_after: Option<u32>,
    }

    let state = State {
        generation,
        render,
        pending: VecDeque::new(),
        tokens: 0,
        cut_after,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.cut_after.is_some_and(|n| state.tokens >= n) {
                state.cut_after = None;
                state.tokens = u32::MAX;
                // Lets hyper flush what was sent (the head, at least) before the failure aborts
                // the connection: the client sees the response start, then break off.
                tokio::task::yield_now().await;
                return Some((Err(std::io::Error::other("stream cut")), state));
            }
            if state.tokens == u32::MAX {
                return None;
            }
            // None after the last token (or if the engine stopped): the stream ends.
            let token = state.generation.next_token().await?;
            state.tokens = state.tokens.saturating_add(1);
            state.pending.extend((state.render)(token));
        }
    })
}

/// An event carrying one JSON object.
pub fn json_event(value: &serde_json::Value) -> Event {
    Event::default().data(value.to_string())
}
