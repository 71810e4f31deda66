//! Response readers: usage from JSON bodies and streams (`usage`), the SSE splitter and event
//! reader, and where model text lives (`response_text`), for every API shape, on arbitrary
//! bytes, on generated responses and on generated streams cut at random points.

use proptest::prelude::*;
use sluice_core::response_text::{self, Flow, Kind, Mode, raw};
use sluice_core::tokens::Family;
use sluice_core::usage::sse::{Piece, SseSplitter, parse_event};
use sluice_core::usage::{
    ChunkAction, Counts, StreamReader, output_estimate_json, usage_from_json,
};

use crate::shapes::{Generation, Shape, generation, line_ends};
use crate::support::{check, cuts, json, split};

fn family() -> impl Strategy<Value = Family> {
    prop::sample::select(vec![Family::O200k, Family::Claude, Family::Llama3])
}

/// Reads `pieces` as one stream; what the client gets, and the counts.
fn read_stream(family: Family, strip: bool, pieces: &[&[u8]]) -> (Vec<u8>, Counts) {
    let mut reader = StreamReader::new(family, strip);
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        match reader.chunk(piece, i + 1 == pieces.len()) {
            ChunkAction::Pass => out.extend_from_slice(piece),
            ChunkAction::Replace(bytes) => out.extend_from_slice(&bytes),
        }
    }
    (out, reader.finish(7))
}

/// Arbitrary bytes, arbitrary JSON, or a generated stream or body with a few bytes changed.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        generation(),
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    )
        .prop_map(|(g, stream, edits)| {
            let mut bytes = if stream { g.stream() } else { g.body() }.into_bytes();
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
            }
            bytes
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|j| j.render_spaced()),
        json().prop_map(|j| [b"data: ".as_slice(), &j.render(), b"\n\n"].concat()),
        mutated,
    ]
}

#[test]
fn readers_never_panic_on_arbitrary_bytes() {
    let strategy = (
        hostile_bytes(),
        family(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    );
    check(
        "response readers, arbitrary bytes",
        1.0,
        strategy,
        |(bytes, family, picks)| {
            let _ = usage_from_json(&bytes);
            let _ = output_estimate_json(family, &bytes);
            for mode in [Mode::Body, Mode::Event] {
                let located = response_text::locate(&bytes, mode);
                for site in &located.sites {
                    prop_assert!(site.value.end <= bytes.len());
                    let _ = site.text(&bytes);
                    if let Some((before, after)) = response_text::lone_event(&bytes, site) {
                        // An event made from a valid one stays valid JSON.
                        if raw::is_json(&bytes) && located.complete {
                            let event = [before.as_slice(), b"\"x\"", &after].concat();
                            prop_assert!(
                                raw::is_json(&event),
                                "lone event not JSON: {}",
                                String::from_utf8_lossy(&event)
                            );
                        }
                    }
                }
            }
            let pieces = split(&bytes, &cuts(bytes.len(), &picks));
            for strip in [false, true] {
                let _ = read_stream(family, strip, &pieces);
            }
            let mut splitter = SseSplitter::default();
            let mut events = Vec::new();
            for piece in &pieces {
                splitter.feed(piece, |p| events.push(p));
            }
            let rest = splitter.finish();
            let mut total = rest.len();
            for piece in &events {
                let (Piece::Event(raw) | Piece::Raw(raw)) = piece;
                total += raw.len();
                let _ = parse_event(raw);
            }
            // The splitter loses and invents no byte.
            prop_assert_eq!(total, bytes.len());
            Ok(())
        },
    );
}

/// A generated stream as bytes (with its line-end style) and random cut points in it.
fn stream_and_cuts() -> impl Strategy<Value = (Generation, Vec<u8>, Vec<usize>)> {
    (
        generation(),
        0u8..3,
        prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    )
        .prop_map(|(g, style, picks)| {
            let bytes = line_ends(&g.stream(), style).into_bytes();
            let cuts = cuts(bytes.len(), &picks);
            (g, bytes, cuts)
        })
}

#[test]
fn stream_usage_is_the_same_however_the_stream_is_cut() {
    let strategy = (stream_and_cuts(), family(), any::<bool>());
    check(
        "usage::StreamReader, split streams",
        1.0,
        strategy,
        |((g, bytes, cuts), family, strip)| {
            let (whole_out, whole) = read_stream(family, strip, &[&bytes]);
            let (split_out, counts) = read_stream(family, strip, &split(&bytes, &cuts));
            prop_assert_eq!(&counts, &whole);
            prop_assert_eq!(&split_out, &whole_out, "the client gets other bytes");
            match g.usage {
                Some((input, output)) => {
                    prop_assert_eq!((counts.input, counts.output), (input, output));
                    prop_assert!(!counts.estimated);
                }
                None => {
                    prop_assert_eq!(counts.input, 7, "the input estimate stands");
                    prop_assert!(counts.estimated);
                }
            }
            prop_assert_eq!(counts.response_model.as_deref(), Some("m"));
            if strip {
                // The usage chunk the gateway asked for is gone; everything else passes.
                let text = String::from_utf8_lossy(&split_out);
                if matches!(g.shape, Shape::Chat | Shape::Completions) {
                    prop_assert!(!text.contains("prompt_tokens"), "{}", text);
                }
            } else {
                prop_assert_eq!(&split_out, &bytes);
            }
            Ok(())
        },
    );
}

#[test]
fn body_usage_and_texts_are_found_in_every_shape() {
    check(
        "usage_from_json + response_text, bodies",
        1.0,
        (generation(), family()),
        |(g, family)| {
            let body = g.body();
            match (usage_from_json(body.as_bytes()), g.usage) {
                (Some((usage, model)), Some((input, output))) => {
                    prop_assert_eq!((usage.input, usage.output), (Some(input), Some(output)));
                    prop_assert_eq!(model.as_deref(), Some("m"));
                }
                (None, None) => {}
                (found, expected) => prop_assert!(false, "usage {found:?}, expected {expected:?}"),
            }
            let _ = output_estimate_json(family, body.as_bytes());
            let located = response_text::locate(body.as_bytes(), Mode::Body);
            prop_assert!(located.complete);
            let texts: Vec<(Kind, String)> = located
                .sites
                .iter()
                .map(|s| {
                    (
                        s.channel.kind,
                        s.text(body.as_bytes()).unwrap().into_owned(),
                    )
                })
                .collect();
            prop_assert!(
                texts.contains(&(Kind::Content, g.content.clone())),
                "content not found in {:?}",
                texts
            );
            for (name, arguments) in &g.tools {
                prop_assert!(texts.contains(&(Kind::ToolName, name.clone())));
                let found = texts.iter().any(|(kind, text)| {
                    *kind == Kind::ToolArguments
                        && serde_json::from_str::<serde_json::Value>(text).ok()
                            == serde_json::from_str::<serde_json::Value>(arguments).ok()
                });
                prop_assert!(found, "arguments {:?} not found in {:?}", arguments, texts);
            }
            Ok(())
        },
    );
}

#[test]
fn stream_texts_concatenate_to_the_generation() {
    check("response_text, stream events", 1.0, generation(), |g| {
        let stream = g.stream();
        let mut content = String::new();
        let mut splitter = SseSplitter::default();
        let mut events = Vec::new();
        splitter.feed(stream.as_bytes(), |p| events.push(p));
        prop_assert!(splitter.finish().is_empty());
        for piece in events {
            let Piece::Event(raw) = piece else {
                return Err(TestCaseError::fail("an event too large"));
            };
            let event = parse_event(&raw);
            let data = event.data.as_bytes();
            let located = response_text::locate(data, Mode::Event);
            for site in located.sites {
                if site.flow == Flow::Delta && site.channel.kind == Kind::Content {
                    content.push_str(&site.text(data).unwrap());
                }
            }
        }
        prop_assert_eq!(content, g.content);
        Ok(())
    });
}
