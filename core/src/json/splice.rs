//! Byte-range edits of a JSON text, applied in one pass: the bytes between edits are copied as
//! they are.

use std::ops::Range;

/// Replace `range` of a text by `bytes` (an empty range inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub bytes: Vec<u8>,
}

/// `text` with `edits` applied. Edits must be in order and not overlap; one that does (or lies
/// outside the text) is skipped.
pub fn splice(text: &[u8], edits: &[Edit]) -> Vec<u8> {
    let extra = edits
        .iter()
        .map(|e| e.bytes.len())
        .fold(0, usize::saturating_add);
    let mut out = Vec::with_capacity(text.len().saturating_add(extra));
    splice_into(&mut out, text, edits);
    out
}

/// Appends `text` with `edits` applied to `out` (see `splice`).
pub fn splice_into(out: &mut Vec<u8>, text: &[u8], edits: &[Edit]) {
    let mut copied = 0usize;
    for edit in edits {
        if edit.range.start < copied || edit.range.end < edit.range.start {
            continue;
        }
        let Some(before) = text.get(copied..edit.range.start) else {
            continue;
        };
        if text.get(edit.range.clone()).is_none() {
            continue;
        }
        out.extend_from_slice(before);
        out.extend_from_slice(&edit.bytes);
        copied = edit.range.end;
    }
    out.extend_from_slice(text.get(copied..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Edit, splice};

    fn edit(range: std::ops::Range<usize>, bytes: &str) -> Edit {
        Edit {
            range,
            bytes: bytes.as_bytes().to_vec(),
        }
    }

    #[test]
    fn edits_replace_insert_and_keep_the_rest() {
        let text = br#"{"a":"x","b":1}"#;
        let out = splice(text, &[edit(5..8, r#""yy""#), edit(14..14, r#","c":2"#)]);
        assert_eq!(out, br#"{"a":"yy","b":1,"c":2}"#);
        assert_eq!(splice(text, &[]), text);
    }

    #[test]
    fn overlapping_or_outside_edits_are_skipped() {
        let text = b"abcdef";
        let out = splice(text, &[edit(1..3, "X"), edit(2..4, "Y"), edit(5..9, "Z")]);
        assert_eq!(out, b"aXdef");
    }
}
