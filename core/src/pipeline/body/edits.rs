//! The body going upstream, built once from the client's: the model rewritten for an alias,
//! `stream_options` asking for usage, and the guardrails' redactions are collected and applied
//! in one pass over the body. (Before, an alias re-serialized the body and a redaction then
//! rewrote that copy again.)
//!
//! The bytes are those of the two steps it replaces, so hosts and clients see no difference:
//! with a top-level change, the object is written again member by member without whitespace
//! between members (`TopLevel::rebuild`), each kept value byte for byte but for its
//! redactions; with only redactions, every byte but the redacted strings stays.

use crate::guardrails::string_edits;
use crate::json::{TopLevel, splice, splice_into};

/// The body to send instead of `body`, or `None` when nothing changes. `changes` are top-level
/// members to replace or append (key, raw JSON value); `replacements` are the guardrails'
/// (original text, redacted text) of string values. `Err(i)` when replacement `i` matched no
/// string value (the text was not a plain string: the request must not go on unredacted).
pub(super) fn rewrite(
    body: &[u8],
    top: &TopLevel<'_>,
    changes: &[(&str, String)],
    replacements: &[(String, String)],
) -> Result<Option<Vec<u8>>, usize> {
    let mut used = vec![false; replacements.len()];
    let out = if changes.is_empty() {
        if replacements.is_empty() {
            return Ok(None);
        }
        splice(body, &string_edits(body, replacements, &mut used))
    } else {
        let changes: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (*k, v.as_str())).collect();
        top.rebuild(&changes, |out, value| {
            let value = value.as_bytes();
            let edits = string_edits(value, replacements, &mut used);
            splice_into(out, value, &edits);
        })
    };
    match used.iter().position(|u| !u) {
        Some(missing) => Err(missing),
        None => Ok(Some(out)),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::rewrite;
    use crate::guardrails::rewrite_strings;
    use crate::json::TopLevel;

    /// What the two steps this replaces gave: the top-level members written again with the
    /// changes, then the redactions rewritten in that copy.
    fn two_steps(
        body: &[u8],
        changes: &[(&str, String)],
        replacements: &[(String, String)],
    ) -> Result<Option<Vec<u8>>, usize> {
        let top = TopLevel::parse(body).unwrap();
        let changes: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let assembled = (!changes.is_empty()).then(|| top.with_fields(&changes));
        if replacements.is_empty() {
            return Ok(assembled);
        }
        rewrite_strings(assembled.as_deref().unwrap_or(body), replacements).map(Some)
    }

    #[test]
    fn one_pass_gives_the_bytes_of_the_two_steps() {
        let bodies: [&[u8]; 4] = [
            br#"{"model":"a","messages":[{"role":"user","content":"x@y.io"}]}"#,
            br#"{ "messages" : [ {"content" : "x@y.io", "k": ["x@y.io", 1]} ],  "model":"a" ,"z":{"x@y.io":"x@y.io"}}"#,
            br#"{"model":"x@y.io","a\"b":"x@y.io","stream_options":{"x":"x@y.io"}}"#,
            br#"{"model":"a","messages":"\u0078@y.io","n":null}"#,
        ];
        let change_sets: Vec<Vec<(&str, String)>> = vec![
            vec![],
            vec![("model", r#""b""#.to_owned())],
            vec![("stream_options", r#"{"include_usage":true}"#.to_owned())],
            vec![
                ("model", r#""x@y.io""#.to_owned()),
                (
                    "stream_options",
                    r#"{"include_usage":true,"x":"x@y.io"}"#.to_owned(),
                ),
            ],
        ];
        let replacement_sets: Vec<Vec<(String, String)>> = vec![
            vec![],
            vec![("x@y.io".to_owned(), "[EMAIL]".to_owned())],
            vec![
                ("x@y.io".to_owned(), "[EMAIL]".to_owned()),
                ("nowhere".to_owned(), "[X]".to_owned()),
            ],
        ];
        for body in bodies {
            let top = TopLevel::parse(body).unwrap();
            for changes in &change_sets {
                for replacements in &replacement_sets {
                    assert_eq!(
                        rewrite(body, &top, changes, replacements),
                        two_steps(body, changes, replacements),
                        "{} {changes:?} {replacements:?}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
    }
}
