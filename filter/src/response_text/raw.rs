//! Walking a JSON document's raw bytes without building it: objects' members and arrays'
//! elements as byte ranges, so a text found at a path can be rewritten in place and every other
//! byte stays as the upstream sent it.
//!
//! Lenient by design: callers check validity where it matters (`is_json`); on malformed input
//! the walk just finds less. No recursion: nested values are skipped by counting brackets.

use std::borrow::Cow;
use std::ops::Range;

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
                match doc.get(j)? {
                    b'"' => {
                        j = string_end(doc, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth = depth.checked_add(1)?,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return j.checked_add(1);
                        }
                    }
                    _ => {}
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

/// One value in a document.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    doc: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> Node<'a> {
    /// The document's top-level value.
    pub fn root(doc: &'a [u8]) -> Option<Self> {
        let start = skip_ws(doc, 0);
        let end = value_end(doc, start)?;
        Some(Self { doc, start, end })
    }

    fn at(doc: &'a [u8], start: usize) -> Option<Self> {
        let end = value_end(doc, start)?;
        Some(Self { doc, start, end })
    }

    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.doc.get(self.start..self.end).unwrap_or_default()
    }

    fn first(&self) -> Option<u8> {
        self.doc.get(self.start).copied()
    }

    pub fn is_string(&self) -> bool {
        self.first() == Some(b'"')
    }

    pub fn is_object(&self) -> bool {
        self.first() == Some(b'{')
    }

    pub fn is_array(&self) -> bool {
        self.first() == Some(b'[')
    }

    pub fn is_null(&self) -> bool {
        self.bytes() == b"null"
    }

    /// A string's decoded text.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if !self.is_string() {
            return None;
        }
        decode_string(self.bytes())
    }

    pub fn as_u64(&self) -> Option<u64> {
        std::str::from_utf8(self.bytes()).ok()?.parse().ok()
    }

    /// An object's members in order (duplicates included), keys decoded.
    pub fn members(&self) -> Members<'a> {
        Members {
            doc: self.doc,
            at: self.is_object().then(|| self.start.saturating_add(1)),
            end: self.end,
        }
    }

    /// An array's elements in order.
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            doc: self.doc,
            at: self.is_array().then(|| self.start.saturating_add(1)),
            end: self.end,
        }
    }
}

pub struct Members<'a> {
    doc: &'a [u8],
    at: Option<usize>,
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let doc = self.doc;
        let mut i = skip_ws(doc, self.at.take()?);
        if i >= self.end {
            return None;
        }
        if doc.get(i) == Some(&b',') {
            i = skip_ws(doc, i.checked_add(1)?);
        }
        if doc.get(i)? != &b'"' {
            return None;
        }
        let key_end = string_end(doc, i)?;
        let key = decode_string(doc.get(i..key_end)?)?;
        i = skip_ws(doc, key_end);
        if doc.get(i)? != &b':' {
            return None;
        }
        let value = Node::at(doc, skip_ws(doc, i.checked_add(1)?))?;
        if value.end > self.end {
            return None;
        }
        self.at = Some(value.end);
        Some((key, value))
    }
}

pub struct Elements<'a> {
    doc: &'a [u8],
    at: Option<usize>,
    end: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let doc = self.doc;
        let mut i = skip_ws(doc, self.at.take()?);
        if i >= self.end {
            return None;
        }
        if doc.get(i) == Some(&b',') {
            i = skip_ws(doc, i.checked_add(1)?);
        }
        if matches!(doc.get(i), Some(b']') | None) {
            return None;
        }
        let value = Node::at(doc, i)?;
        if value.end > self.end {
            return None;
        }
        self.at = Some(value.end);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Node, decode_string};

    #[test]
    fn walks_members_and_elements_with_their_byte_ranges() {
        let doc = br#" {"a" : [1, {"b":"x\"y"} ,"z"], "c\u0064":null, "e":{}} "#;
        let root = Node::root(doc).unwrap();
        let members: Vec<_> = root.members().collect();
        assert_eq!(
            members.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(),
            ["a", "cd", "e"]
        );
        let items: Vec<_> = members[0].1.elements().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_u64(), Some(1));
        let (_, b) = items[1].members().next().unwrap();
        assert_eq!(b.as_str().unwrap(), "x\"y");
        assert_eq!(&doc[b.range()], br#""x\"y""#);
        assert_eq!(items[2].as_str().unwrap(), "z");
        assert!(members[1].1.is_null());
        assert_eq!(members[2].1.members().count(), 0);
        assert_eq!(Node::root(b"[]").unwrap().elements().count(), 0);
        assert_eq!(decode_string(br#""\u00e9""#).unwrap(), "é");
    }

    #[test]
    fn malformed_documents_yield_less_not_a_panic() {
        for doc in [
            &b"{"[..],
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":[1,",
            b"[\"\\",
            b"{\"a\" 1}",
            b"",
            b"}",
        ] {
            if let Some(root) = Node::root(doc) {
                for (_, v) in root.members() {
                    let _ = v.elements().count();
                }
            }
        }
    }
}
