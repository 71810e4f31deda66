//! Rewriting string values inside a JSON body without touching anything else: every string
//! value whose decoded text is one of the texts to replace is re-encoded with its replacement;
//! every other byte (keys, numbers, whitespace, escapes of untouched strings, field order) stays
//! as it was.

use std::borrow::Cow;

use serde::Deserialize;

/// `body` with each string value equal to a `replacements` original replaced by its redacted
/// text. `Err(i)` when replacement `i` matched no string value (the text came from a
/// non-string value, like an Anthropic `tool_use.input` object): the caller must not let the
/// unredacted text through.
pub fn rewrite_strings(body: &[u8], replacements: &[(String, String)]) -> Result<Vec<u8>, usize> {
    let mut used = vec![false; replacements.len()];
    let mut out = Vec::with_capacity(body.len());
    let mut copied = 0usize;
    let mut i = 0usize;
    while let Some(offset) = body.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let start = i.saturating_add(offset);
        let Some(end) = string_end(body, start) else {
            break;
        };
        i = end;
        // A key, not a value.
        let next = body
            .get(end..)
            .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
        if next == Some(&b':') {
            continue;
        }
        let Some(literal) = body.get(start..end) else {
            break;
        };
        let decoded: Cow<'_, str> = if literal.contains(&b'\\') {
            match serde_json::from_slice::<String>(literal) {
                Ok(s) => Cow::Owned(s),
                Err(_) => continue,
            }
        } else {
            match std::str::from_utf8(
                literal
                    .get(1..literal.len().saturating_sub(1))
                    .unwrap_or_default(),
            ) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => continue,
            }
        };
        let Some(index) = replacements.iter().position(|(o, _)| *o == decoded) else {
            continue;
        };
        let Some((_, redacted)) = replacements.get(index) else {
            continue;
        };
        if let Some(flag) = used.get_mut(index) {
            *flag = true;
        }
        out.extend_from_slice(body.get(copied..start).unwrap_or_default());
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, redacted);
        copied = end;
    }
    if let Some(missing) = used.iter().position(|u| !u) {
        return Err(missing);
    }
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
    Ok(out)
}

/// The end (exclusive) of the JSON string literal starting at `start` (a `"`).
pub(crate) fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start.checked_add(1)?;
    loop {
        let offset = memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
        let at = i.checked_add(offset)?;
        if body.get(at) == Some(&b'\\') {
            i = at.checked_add(2)?;
        } else {
            return at.checked_add(1);
        }
    }
}

#[derive(Deserialize, Default)]
struct ResponseBody<'a> {
    #[serde(borrow, default)]
    choices: Vec<ResponseChoice<'a>>,
    /// Anthropic messages.
    #[serde(borrow, default)]
    content: Vec<ContentBlock<'a>>,
    /// Responses API.
    #[serde(borrow, default)]
    output: Vec<OutputItem<'a>>,
}

#[derive(Deserialize, Default)]
struct ResponseChoice<'a> {
    #[serde(borrow, default)]
    message: Option<ResponseMessage<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct ResponseMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct ContentBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct OutputItem<'a> {
    #[serde(borrow, default)]
    content: Vec<ContentBlock<'a>>,
}

/// A Responses API stream event that repeats text already streamed in deltas:
/// `response.output_text.done` (`text`), `response.content_part.done` (`part.text`),
/// `response.output_item.done` (`item.content[].text`) and `response.completed` and the like
/// (`response.output[].content[].text`).
#[derive(Deserialize, Default)]
struct RepeatingEvent<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    part: Option<ContentBlock<'a>>,
    #[serde(borrow, default)]
    item: Option<OutputItem<'a>>,
    #[serde(borrow, default)]
    response: Option<ResponseBody<'a>>,
}

/// The texts a stream event (its `data:` JSON) repeats, for events that are not deltas.
pub(crate) fn repeated_texts(data: &[u8]) -> Vec<String> {
    if memchr::memmem::find(data, b"\"text\"").is_none() {
        return Vec::new();
    }
    let Ok(event) = serde_json::from_slice::<RepeatingEvent<'_>>(data) else {
        return Vec::new();
    };
    let mut texts: Vec<String> = event.text.map(Cow::into_owned).into_iter().collect();
    texts.extend(event.part.and_then(|p| p.text).map(Cow::into_owned));
    let items = event.item.into_iter().chain(
        event
            .response
            .into_iter()
            .flat_map(|r| r.output.into_iter()),
    );
    texts.extend(
        items
            .flat_map(|item| item.content)
            .filter_map(|b| b.text)
            .map(Cow::into_owned),
    );
    texts
}

/// The generated texts of a whole response body, or `None` when it is not such a body.
pub(crate) fn response_texts(body: &[u8]) -> Option<Vec<String>> {
    let parsed: ResponseBody<'_> = serde_json::from_slice(body).ok()?;
    let mut texts = Vec::new();
    for choice in parsed.choices {
        if let Some(message) = choice.message {
            texts.extend(
                message
                    .content
                    .into_iter()
                    .chain(message.refusal)
                    .map(Cow::into_owned),
            );
        }
        texts.extend(choice.text.map(Cow::into_owned));
    }
    let blocks = parsed
        .content
        .into_iter()
        .chain(parsed.output.into_iter().flat_map(|item| item.content));
    texts.extend(blocks.filter_map(|b| b.text).map(Cow::into_owned));
    Some(texts)
}
