//! Rewriting string values inside a request body without touching anything else: every string
//! value whose decoded text is one of the texts to replace is re-encoded with its replacement;
//! every other byte (keys, numbers, whitespace, escapes of untouched strings, field order) stays
//! as it was. (Responses are rewritten by position: `response_text` locates their texts.)

use std::borrow::Cow;

use crate::json::{Edit, splice};
use crate::response_text::raw::string_end;

/// `body` with each string value equal to a `replacements` original replaced by its redacted
/// text. `Err(i)` when replacement `i` matched no string value (the text came from a
/// non-string value, like an Anthropic `tool_use.input` object): the caller must not let the
/// unredacted text through.
pub fn rewrite_strings(body: &[u8], replacements: &[(String, String)]) -> Result<Vec<u8>, usize> {
    let mut used = vec![false; replacements.len()];
    let edits = string_edits(body, replacements, &mut used);
    if let Some(missing) = used.iter().position(|u| !u) {
        return Err(missing);
    }
    Ok(splice(body, &edits))
}

/// The edits that replace each string value of the JSON `text` equal to a `replacements`
/// original by its redacted text, in order; `used[i]` is set when replacement `i` matched.
pub fn string_edits(
    text: &[u8],
    replacements: &[(String, String)],
    used: &mut [bool],
) -> Vec<Edit> {
    let mut edits = Vec::new();
    if replacements.is_empty() {
        return edits;
    }
    let mut i = 0usize;
    while let Some(offset) = text.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let start = i.saturating_add(offset);
        let Some(end) = string_end(text, start) else {
            break;
        };
        i = end;
        // A key, not a value.
        let next = text
            .get(end..)
            .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
        if next == Some(&b':') {
            continue;
        }
        let Some(literal) = text.get(start..end) else {
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
        // Writing a string into a Vec cannot fail.
        let bytes = serde_json::to_vec(redacted).unwrap_or_default();
        edits.push(Edit {
            range: start..end,
            bytes,
        });
    }
    edits
}
