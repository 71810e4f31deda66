//! Walking a JSON document's raw bytes without building it: objects' members and arrays'
//! elements as byte ranges, so a text found at a path can be rewritten in place and every other
//! byte stays as the upstream sent it.
//!
//! Lenient by design: callers check validity where it matters (`is_json`); on malformed input
//! the walk just finds less. No recursion: nested values are skipped by counting brackets.

use std::borrow::Cow;

/// Whether `doc` is one valid JSON value (nesting bounded by serde_json's limit).
pub fn is_json(doc: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc).is_ok()
}

pub(crate) fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while doc.get(i).is_some_and(u8::is_ascii_whitespace) {
        i = i.saturating_add(1);
    }
    i
}

/// The end (exclusive) of the JSON string literal starting at `start` (a `"`).
pub(crate) fn string_end(doc: &[u8], start: usize) -> Option<usize> {
    let mut i = start.checked_add(1)?;
    loop {
        let offset = memchr::memchr2(b'"', b'\\', doc.get(i..)?)?;
        let at = i.checked_add(offset)?;
        if doc.get(at) == Some(&b'\\') {
            i = at.checked_add(2)?;
        } else {
            return at.checked_add(1);
        }
    }
}

/// The end (exclusive) of the JSON value starting at `i`.
pub(crate) fn value_end(doc: &[u8], i: usize) -> Option<usize> {
    match doc.get(i)? {
        b'"' => string_end(doc, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                // Jump to the next quote or bracket.
                j = j.checked_add(
                    doc.get(j..)?
                        .iter()
                        .position(|b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']'))?,
                )?;
                match doc.get(j)? {
                    b'"' => {
                        j = string_end(doc, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth = depth.checked_add(1)?,
                    _ => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return j.checked_add(1);
                        }
                    }
                }
                j = j.checked_add(1)?;
            }
        }
        _ => {
            let mut j = i;
            while doc
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                j = j.checked_add(1)?;
            }
            (j > i).then_some(j)
        }
    }
}

/// The text of a JSON string literal (quotes included in `literal`), escapes decoded.
pub fn decode_string(literal: &[u8]) -> Option<Cow<'_, str>> {
    let inner = literal.get(1..literal.len().checked_sub(1)?)?;
    if literal.first() != Some(&b'"') || literal.last() != Some(&b'"') {
        return None;
    }
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(literal)
            .ok()
            .map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

/// Walks the object at `at` (its `{`) once: calls `member(key, value_at)` for each member,
/// which returns where that value ends (having walked into it, or `skip`ped it). Returns where
/// the object ends; `None` on malformed input.
pub fn object<'a>(
    doc: &'a [u8],
    at: usize,
    mut member: impl FnMut(Cow<'a, str>, usize) -> Option<usize>,
) -> Option<usize> {
    if doc.get(at) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(doc, at.checked_add(1)?);
    if doc.get(i) == Some(&b'}') {
        return i.checked_add(1);
    }
    loop {
        if doc.get(i)? != &b'"' {
            return None;
        }
        let key_end = string_end(doc, i)?;
        let key = decode_string(doc.get(i..key_end)?)?;
        i = skip_ws(doc, key_end);
        if doc.get(i)? != &b':' {
            return None;
        }
        let value = skip_ws(doc, i.checked_add(1)?);
        i = skip_ws(doc, member(key, value)?);
        match doc.get(i)? {
            b',' => i = skip_ws(doc, i.checked_add(1)?),
            b'}' => return i.checked_add(1),
            _ => return None,
        }
    }
}

/// Walks the array at `at` (its `[`) once: calls `element(position, value_at)` for each
/// element, which returns where it ends. Returns where the array ends.
pub fn array(
    doc: &[u8],
    at: usize,
    mut element: impl FnMut(u64, usize) -> Option<usize>,
) -> Option<usize> {
    if doc.get(at) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(doc, at.checked_add(1)?);
    if doc.get(i) == Some(&b']') {
        return i.checked_add(1);
    }
    let mut position = 0u64;
    loop {
        i = skip_ws(doc, element(position, i)?);
        position = position.saturating_add(1);
        match doc.get(i)? {
            b',' => i = skip_ws(doc, i.checked_add(1)?),
            b']' => return i.checked_add(1),
            _ => return None,
        }
    }
}

/// Skips the value at `at`: where it ends.
pub fn skip(doc: &[u8], at: usize) -> Option<usize> {
    value_end(doc, at)
}

/// The number at `at`, if it is a whole number, and where the value ends.
pub fn number(doc: &[u8], at: usize) -> (Option<u64>, Option<usize>) {
    let end = value_end(doc, at);
    let value = end
        .and_then(|end| doc.get(at..end))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse().ok());
    (value, end)
}

/// Whether the value at `at` is `null`.
pub fn is_null(doc: &[u8], at: usize) -> bool {
    doc.get(at..).is_some_and(|rest| rest.starts_with(b"null"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{array, decode_string, number, object, skip};

    #[test]
    fn walks_members_and_elements_once_with_their_byte_ranges() {
        let doc = br#" {"a" : [1, {"b":"x\"y"} ,"z"], "c\u0064":null, "e":{}} "#;
        let mut keys = Vec::new();
        let mut seen = Vec::new();
        let end = object(doc, 1, |key, at| {
            keys.push(key.into_owned());
            if doc[at] == b'[' {
                array(doc, at, |position, at| {
                    if doc[at] == b'{' {
                        object(doc, at, |_, at| {
                            let end = skip(doc, at)?;
                            seen.push((
                                position,
                                String::from_utf8(doc[at..end].to_vec()).unwrap(),
                            ));
                            Some(end)
                        })
                    } else {
                        let end = skip(doc, at)?;
                        seen.push((position, String::from_utf8(doc[at..end].to_vec()).unwrap()));
                        Some(end)
                    }
                })
            } else {
                skip(doc, at)
            }
        });
        assert_eq!(end, Some(doc.len() - 1));
        assert_eq!(keys, ["a", "cd", "e"]);
        assert_eq!(
            seen,
            [
                (0, "1".to_owned()),
                (1, r#""x\"y""#.to_owned()),
                (2, r#""z""#.to_owned())
            ]
        );
        assert_eq!(number(b"12,", 0), (Some(12), Some(2)));
        assert_eq!(array(b"[]", 0, |_, _| None), Some(2));
        assert_eq!(decode_string(br#""\u00e9""#).unwrap(), "é");
    }

    #[test]
    fn malformed_documents_yield_none_not_a_panic() {
        for doc in [
            &b"{"[..],
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":[1,",
            b"[\"\\",
            b"{\"a\" 1}",
            b"",
            b"}",
            b"{\"a\":1 \"b\":2}",
        ] {
            let walked = object(doc, 0, |_, at| skip(doc, at));
            assert_eq!(walked, None, "{:?}", String::from_utf8_lossy(doc));
        }
    }
}
