//! Response guardrails as core exposes them: the JSON guard (`Guardrails::guard_json_response`)
//! and the stream guard (`guardrails::StreamGuard`), on generated responses of every shape
//! with sensitive values at random places, cut at random points, and on arbitrary bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use sluice_core::config::Config;
use sluice_core::error::ApiFlavor;
use sluice_core::guardrails::{
    Guardrails, Hits, JsonVerdict, Policy, Reading, StreamGuard, TextVerdict,
};
use sluice_core::response_text::{self, Channel, Flow, Mode, raw};
use sluice_core::usage::sse::{Piece, SseSplitter, parse_event};

use crate::shapes::{Generation, Shape, generation, line_ends};
use crate::support::{check, cuts, split};

/// Two policies: `default` (the default rules: keys block, personal data is redacted) and
/// `redacting` (every detector redacts, nothing blocks), chosen by model. The hold-back is
/// larger than any generated text, so a stream is guarded as if whole.
fn guardrails() -> &'static Guardrails {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        Config::from_json(
            br#"{"models": {"*": {}}, "guardrails": {
                "stream_holdback_bytes": 65536,
                "models": {"r*": "redacting"},
                "policies": {"default": {}, "redacting": {"response_rules": {
                    "email": "redact", "credit_card": "redact", "iban": "redact",
                    "us_ssn": "redact", "phone": "redact", "openai_key": "redact",
                    "anthropic_key": "redact", "aws_access_key": "redact",
                    "github_token": "redact", "slack_token": "redact", "jwt": "redact",
                    "private_key": "redact", "ipv4": "log", "ipv6": "log"}}}}}"#,
        )
        .unwrap()
    });
    &config.guardrails.as_ref().unwrap().0
}

/// The policy index for `redacting` or `default`.
fn policy_index(redacting: bool) -> usize {
    guardrails().policy_for(None, None, if redacting { "r" } else { "m" })
}

fn policy(index: usize) -> &'static Policy {
    guardrails().response_policy(index).unwrap()
}

fn flavor(shape: Shape) -> ApiFlavor {
    if shape == Shape::Anthropic {
        ApiFlavor::Anthropic
    } else {
        ApiFlavor::OpenAi
    }
}

/// Every streamed (delta) text of `stream`, concatenated per channel, and whether every
/// event's data was JSON (or `[DONE]`).
fn channel_texts(stream: &[u8]) -> (BTreeMap<Channel, String>, bool) {
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    splitter.feed(stream, |p| events.push(p));
    // A last event without its blank line (or with a lone `\r` not known to end it yet).
    let rest = splitter.finish();
    if !rest.is_empty() {
        events.push(Piece::Event(rest));
    }
    let mut all_json = true;
    let mut texts: BTreeMap<Channel, String> = BTreeMap::new();
    for piece in events {
        let Piece::Event(raw_event) = piece else {
            all_json = false;
            continue;
        };
        // Lines that are not UTF-8 are not read as data (`parse_event`): not a JSON event.
        if std::str::from_utf8(&raw_event).is_err() {
            all_json = false;
            continue;
        }
        let event = parse_event(&raw_event);
        let data = event.data.as_bytes();
        if data == b"[DONE]" || data.is_empty() || raw_event.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !raw::is_json(data) {
            all_json = false;
            continue;
        }
        for site in response_text::locate(data, Mode::Event).sites {
            if site.flow == Flow::Delta {
                let text = site.text(data).unwrap_or_default();
                texts.entry(site.channel).or_default().push_str(&text);
            }
        }
    }
    (texts, all_json)
}

/// What the guard decides for `text` of `channel`, read whole.
fn verdict(policy: &Policy, channel: &Channel, text: &str) -> TextVerdict {
    let reading = Reading::of(channel.kind);
    guardrails().guard_text(policy, text, reading, &mut Hits::default())
}

/// Whether every two findings in `text` are at least a few bytes apart.
fn apart(policy: &Policy, channel: &Channel, text: &str) -> bool {
    let findings = guardrails().find(policy, text, Reading::of(channel.kind));
    findings
        .iter()
        .zip(findings.iter().skip(1))
        .all(|(a, b)| b.range.start >= a.range.end.saturating_add(3))
}

/// Runs the stream guard over `pieces`; what the client gets, and whether it was blocked.
fn guard_stream(policy: usize, shape: Shape, pieces: &[&[u8]]) -> (Vec<u8>, bool) {
    let g = guardrails();
    let mut guard = StreamGuard::new(policy, g.stream_holdback_bytes, flavor(shape));
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        out.extend(guard.chunk(g, piece, i + 1 == pieces.len()));
    }
    (out, guard.is_blocked())
}

#[test]
fn stream_guard_redacts_like_the_whole_text_however_the_stream_is_cut() {
    let strategy = (
        generation(),
        0u8..3,
        prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        any::<bool>(),
    );
    check(
        "guardrails::StreamGuard, split streams",
        0.5,
        strategy,
        |(g, style, picks, redacting): (Generation, u8, Vec<prop::sample::Index>, bool)| {
            let index = policy_index(redacting);
            let policy = policy(index);
            let stream = line_ends(&g.stream(), style).into_bytes();
            let pieces = split(&stream, &cuts(stream.len(), &picks));
            let (out, blocked) = guard_stream(index, g.shape, &pieces);
            let (input_texts, _) = channel_texts(&stream);
            let (output_texts, valid) = channel_texts(&out);
            prop_assert!(valid, "an event the guard sent is not JSON");
            let whole: BTreeMap<&Channel, TextVerdict> = input_texts
                .iter()
                .map(|(channel, text)| (channel, verdict(policy, channel, text)))
                .collect();
            let any_block = whole.values().any(|v| matches!(v, TextVerdict::Blocked(_)));
            if redacting {
                prop_assert!(!blocked, "blocked by a policy that only redacts");
            }
            if blocked {
                // The stream ends with an error event in the API's format.
                let text = String::from_utf8_lossy(&out);
                prop_assert!(text.trim_end().ends_with('}'), "{}", text);
                prop_assert!(
                    text.contains("blocked by the gateway's content policy"),
                    "{}",
                    text
                );
                return Ok(());
            }
            prop_assert!(!any_block, "a text that blocks passed: {:?}", whole);
            for (channel, text) in &input_texts {
                let expected = match &whole[channel] {
                    TextVerdict::Redacted(redacted) => redacted.clone(),
                    _ => text.clone(),
                };
                let got = output_texts.get(channel).cloned().unwrap_or_default();
                // Detectors look a character past a match, so where two findings touch, a
                // stream that has seen only part of the second may draw their common border
                // (a space) differently; the text is then only required to leak nothing.
                if apart(policy, channel, text) {
                    prop_assert_eq!(&got, &expected, "channel {:?}", channel);
                }
                // Nothing the guard finds is left in what the client assembles.
                prop_assert!(
                    guardrails()
                        .find(policy, &got, Reading::of(channel.kind))
                        .iter()
                        .all(
                            |f| policy.action(f.rule) == Some(sluice_core::guardrails::Action::Log)
                        ),
                    "a finding survives in {:?}",
                    got
                );
            }
            for channel in output_texts.keys() {
                prop_assert!(
                    input_texts.contains_key(channel),
                    "new channel {:?}",
                    channel
                );
            }
            Ok(())
        },
    );
}

#[test]
fn json_guard_redacts_every_text_in_place() {
    let strategy = (generation(), any::<bool>());
    check(
        "guardrails::guard_json_response",
        1.0,
        strategy,
        |(g, redacting)| {
            let policy = policy(policy_index(redacting));
            let body = g.body();
            let mut hits = Hits::default();
            let outcome = guardrails().guard_json_response(policy, body.as_bytes(), &mut hits);
            let located = response_text::locate(body.as_bytes(), Mode::Body);
            let texts: Vec<(Channel, String)> = located
                .sites
                .iter()
                .map(|s| (s.channel, s.text(body.as_bytes()).unwrap().into_owned()))
                .collect();
            let whole: Vec<TextVerdict> =
                texts.iter().map(|(c, t)| verdict(policy, c, t)).collect();
            let any_block = whole.iter().any(|v| matches!(v, TextVerdict::Blocked(_)));
            match outcome {
                JsonVerdict::Blocked(_) => prop_assert!(any_block && !redacting),
                JsonVerdict::Unchanged => {
                    prop_assert!(
                        whole.iter().all(|v| *v == TextVerdict::Clean),
                        "{:?}",
                        whole
                    )
                }
                JsonVerdict::Redacted(out) => {
                    prop_assert!(!any_block);
                    let before: Value = serde_json::from_str(&body).unwrap();
                    let after: Value = serde_json::from_slice(&out)
                        .map_err(|e| TestCaseError::fail(format!("redacted body not JSON: {e}")))?;
                    prop_assert_eq!(
                        before.as_object().unwrap().len(),
                        after.as_object().unwrap().len()
                    );
                    let found = response_text::locate(&out, Mode::Body);
                    prop_assert_eq!(found.sites.len(), texts.len());
                    for ((site, (_, text)), verdict) in found.sites.iter().zip(&texts).zip(&whole) {
                        let got = site.text(&out).unwrap();
                        let expected = match verdict {
                            TextVerdict::Redacted(r) => r.as_str(),
                            _ => text.as_str(),
                        };
                        if site.form == response_text::Form::Json {
                            let a: Value = serde_json::from_str(&got).unwrap();
                            let b: Value = serde_json::from_str(expected).unwrap();
                            prop_assert_eq!(a, b);
                        } else {
                            prop_assert_eq!(got.as_ref(), expected);
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn guards_never_panic_on_arbitrary_bytes() {
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
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        crate::support::json().prop_map(|j| [b"data: ".as_slice(), &j.render(), b"\n\n"].concat()),
        mutated,
    ];
    let strategy = (
        bytes,
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        any::<bool>(),
        crate::shapes::shape(),
    );
    check(
        "guards, arbitrary bytes",
        0.5,
        strategy,
        |(bytes, picks, redacting, shape)| {
            let index = policy_index(redacting);
            let json_verdict =
                guardrails().guard_json_response(policy(index), &bytes, &mut Hits::default());
            if let JsonVerdict::Redacted(out) = &json_verdict {
                if raw::is_json(&bytes) {
                    prop_assert!(raw::is_json(out), "redacting made JSON invalid");
                }
            }
            let pieces = split(&bytes, &cuts(bytes.len(), &picks));
            let (out, _) = guard_stream(index, shape, &pieces);
            // Events whose data was JSON stay JSON.
            let (_, input_json) = channel_texts(&bytes);
            if input_json {
                let (_, output_json) = channel_texts(&out);
                prop_assert!(output_json, "{}", String::from_utf8_lossy(&out));
            }
            Ok(())
        },
    );
}
