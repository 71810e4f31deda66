//! Upstream response bytes through every response reader: usage from a body, where texts
//! are, and the stream reader fed the bytes in two pieces (split where the first byte says).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::response_text::{self, Mode};
use sluice_core::tokens::Family;
use sluice_core::usage::{ChunkAction, StreamReader, output_estimate_json, usage_from_json};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let _ = usage_from_json(bytes);
    let _ = output_estimate_json(Family::O200k, bytes);
    for mode in [Mode::Body, Mode::Event] {
        for site in response_text::locate(bytes, mode).sites {
            let _ = site.text(bytes);
            let _ = response_text::lone_event(bytes, &site);
        }
    }
    let cut = usize::from(selector).min(bytes.len());
    let (first, second) = bytes.split_at(cut);
    let mut whole = StreamReader::new(Family::Claude, selector & 1 == 1);
    let mut split = StreamReader::new(Family::Claude, selector & 1 == 1);
    let _ = whole.chunk(bytes, true);
    let out = |action: ChunkAction, piece: &[u8]| match action {
        ChunkAction::Pass => piece.to_vec(),
        ChunkAction::Replace(bytes) => bytes,
    };
    let mut sent = out(split.chunk(first, false), first);
    sent.extend(out(split.chunk(second, true), second));
    // However the stream is cut, the counts are the same.
    assert_eq!(whole.finish(0), split.finish(0));
});
