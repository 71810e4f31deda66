#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeMap;

use super::fixtures::{self, Generation};
use super::{Channel, Flow, Form, Kind, Mode, locate, lone_event};

fn generation() -> Generation {
    Generation {
        reasoning: "The user wants to pay; card is 4111 1111 1111 1111.".into(),
        content: "Charging card for bob@example.com \"now\" é.".into(),
        tools: vec![(
            "charge_card".into(),
            r#"{"card": "4111 1111 1111 1111", "note": "line\nbreak \"q\""}"#.into(),
        )],
    }
}

fn kind_key(kind: Kind, tool: usize) -> String {
    match kind {
        Kind::Content => "content".into(),
        Kind::Reasoning | Kind::ReasoningSummary => "reasoning".into(),
        Kind::ToolName => format!("tool.{tool}.name"),
        Kind::ToolArguments => format!("tool.{tool}.arguments"),
        other => format!("{other:?}"),
    }
}

/// Every text `locate` finds in a JSON body, keyed like the fixtures' client texts.
fn json_texts(body: &str) -> BTreeMap<String, String> {
    let located = locate(body.as_bytes(), Mode::Body);
    let mut texts = BTreeMap::new();
    for site in &located.sites {
        assert_eq!(site.flow, Flow::Whole);
        let mut text = site.text(body.as_bytes()).unwrap().into_owned();
        if site.form == Form::Json {
            text = serde_json::from_str::<serde_json::Value>(&text)
                .unwrap()
                .to_string();
        }
        texts.insert(kind_key(site.channel.kind, 0), text);
    }
    texts
}

#[test]
fn every_text_of_every_json_shape_is_found() {
    let g = generation();
    for body in [
        fixtures::openai_json(&g),
        fixtures::anthropic_json(&g),
        fixtures::responses_json(&g),
    ] {
        let expected = fixtures::texts_of_json(&body);
        assert_eq!(expected.len(), 4, "{body}");
        assert_eq!(json_texts(&body), expected, "{body}");
    }
    let only_content = Generation {
        content: g.content.clone(),
        ..Generation::default()
    };
    let body = fixtures::completions_json(&only_content);
    assert_eq!(json_texts(&body), fixtures::texts_of_json(&body));
}

/// Streams: each channel's deltas concatenate to its text; no channel mixes kinds or items;
/// repeated texts are whole.
fn stream_channels(stream: &str) -> BTreeMap<Channel, String> {
    let mut channels: BTreeMap<Channel, String> = BTreeMap::new();
    for (_, data) in fixtures::events(stream) {
        let doc = data.to_string();
        let located = locate(doc.as_bytes(), Mode::Event);
        for site in located.sites {
            let text = site.text(doc.as_bytes()).unwrap();
            match site.flow {
                Flow::Delta => channels.entry(site.channel).or_default().push_str(&text),
                Flow::Whole | Flow::Repeat => {}
            }
        }
    }
    channels
}

#[test]
fn every_stream_text_is_found_in_its_own_channel() {
    let g = generation();
    for size in [1, 3, 100] {
        for (stream, tool_item) in [
            (fixtures::openai_stream(&g, size), 0),
            (fixtures::anthropic_stream(&g, size), 2),
            (fixtures::responses_stream(&g, size), 1),
        ] {
            let channels = stream_channels(&stream);
            let by_kind: BTreeMap<Kind, &String> =
                channels.iter().map(|(c, t)| (c.kind, t)).collect();
            assert_eq!(channels.len(), 3, "{channels:?}");
            assert_eq!(by_kind[&Kind::Content], &g.content);
            assert!(
                by_kind
                    .get(&Kind::Reasoning)
                    .or(by_kind.get(&Kind::ReasoningSummary))
                    == Some(&&g.reasoning)
            );
            assert_eq!(by_kind[&Kind::ToolArguments], &g.tools[0].1);
            let tool = channels
                .keys()
                .find(|c| c.kind == Kind::ToolArguments)
                .unwrap();
            assert_eq!(tool.item, tool_item);
        }
    }
}

#[test]
fn stream_events_say_what_repeats_and_what_ends() {
    let doc = br#"{"type":"response.output_text.done","sequence_number":9,"item_id":"m","output_index":2,"content_index":0,"text":"hi","logprobs":[]}"#;
    let located = locate(doc, Mode::Event);
    assert_eq!(located.sites.len(), 1);
    assert_eq!(located.sites[0].flow, Flow::Repeat);
    assert_eq!(located.sites[0].channel.item, 2);
    // The choice index can follow its text; a finish reason ends the choice.
    let doc = br#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop","index":3},{"delta":{"content":"b"},"finish_reason":null,"index":4}]}"#;
    let located = locate(doc, Mode::Event);
    let items: Vec<u64> = located.sites.iter().map(|s| s.channel.item).collect();
    assert_eq!(items, [3, 4]);
    assert_eq!(located.finished, [3]);
    // Two tool calls in one chunk are two channels, by their own `index`.
    let doc = br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}},{"index":2,"function":{"name":"f","arguments":"{"}}]}}]}"#;
    let located = locate(doc, Mode::Event);
    let channels: Vec<(Kind, u64, Flow)> = located
        .sites
        .iter()
        .map(|s| (s.channel.kind, s.channel.part, s.flow))
        .collect();
    assert_eq!(
        channels,
        [
            (Kind::ToolArguments, 1, Flow::Delta),
            (Kind::ToolName, 2, Flow::Whole),
            (Kind::ToolArguments, 2, Flow::Delta)
        ]
    );
    // Not model text: signatures, ids, the Responses body's format object.
    let doc = br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#;
    assert!(locate(doc, Mode::Event).sites.is_empty());
    let doc = br#"{"id":"r","object":"response","text":{"format":{"type":"text"}},"instructions":"be brief","output":[]}"#;
    assert!(locate(doc, Mode::Body).sites.is_empty());
}

#[test]
fn a_lone_event_carries_only_its_channels_text() {
    let g = generation();
    let stream = fixtures::openai_stream(&g, 100);
    for (_, data) in fixtures::events(&stream) {
        let doc = data.to_string();
        for site in locate(doc.as_bytes(), Mode::Event).sites {
            if site.flow != Flow::Delta {
                continue;
            }
            let (before, after) = lone_event(doc.as_bytes(), &site).unwrap();
            let event = format!(
                "{}\"x\"{}",
                String::from_utf8(before).unwrap(),
                String::from_utf8(after).unwrap()
            );
            let v: serde_json::Value = serde_json::from_str(&event).unwrap();
            assert_eq!(v["id"], data["id"]);
            assert_eq!(v["choices"].as_array().unwrap().len(), 1);
            let delta = &v["choices"][0]["delta"];
            // Nothing SDKs would concatenate twice: no role, no tool call id or name.
            assert!(delta.get("role").is_none(), "{event}");
            let texts = locate(event.as_bytes(), Mode::Event).sites;
            assert_eq!(texts.len(), 1, "{event}");
            assert_eq!(texts[0].channel, site.channel);
            assert_eq!(texts[0].text(event.as_bytes()).unwrap(), "x");
        }
    }
    // Anthropic and Responses: the event itself.
    let doc =
        br#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"abc"}}"#;
    let site = &locate(doc, Mode::Event).sites[0];
    let (before, after) = lone_event(doc, site).unwrap();
    assert_eq!(
        [before, b"\"x\"".to_vec(), after].concat(),
        br#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"x"}}"#
    );
}
