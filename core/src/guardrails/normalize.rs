//! The text detectors read: compatibility-folded (NFKD without combining marks, so fullwidth
//! letters, ligatures and accents fold to plain letters), lowercased, with zero-width, bidi and
//! other invisible format characters removed and every run of whitespace collapsed to one
//! space. Each byte of the folded text remembers which character of the original it came from,
//! so a match found in the folded text redacts the right bytes of the original.

use std::ops::Range;

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Folded text and, per folded byte, the byte offset in the original of the character it came
/// from.
#[derive(Debug, Default)]
pub struct Normalized {
    pub text: String,
    origin: Vec<u32>,
}

/// Characters that render as nothing (or only steer direction) and can split a word without a
/// reader noticing.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

impl Normalized {
    pub fn new(original: &str) -> Self {
        let mut out = Self {
            text: String::with_capacity(original.len()),
            origin: Vec::with_capacity(original.len()),
        };
        let bytes = original.as_bytes();
        let mut at = 0;
        // Prompts are mostly ASCII words: each run of ASCII letters, digits and punctuation is
        // copied and lowercased in one go rather than character by character (the scan's
        // biggest cost before).
        while let Some(&byte) = bytes.get(at) {
            if byte.is_ascii_whitespace() {
                out.space(offset(at));
                at = at.saturating_add(1);
            } else if byte.is_ascii() {
                let rest = bytes.get(at..).unwrap_or_default();
                let run = rest
                    .iter()
                    .position(|b| !b.is_ascii() || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                let end = at.saturating_add(run);
                let from = out.text.len();
                out.text.push_str(original.get(at..end).unwrap_or_default());
                if let Some(copied) = out.text.get_mut(from..) {
                    copied.make_ascii_lowercase();
                }
                out.origin.extend(offset(at)..offset(end));
                at = end;
            } else {
                let Some(c) = original.get(at..).and_then(|rest| rest.chars().next()) else {
                    break;
                };
                out.fold_char(c, offset(at));
                at = at.saturating_add(c.len_utf8());
            }
        }
        out
    }

    fn fold_char(&mut self, c: char, at: u32) {
        if is_invisible(c) {
            return;
        }
        if c.is_whitespace() {
            self.space(at);
            return;
        }
        decompose_compatible(c, |d| {
            if is_combining_mark(d) || is_invisible(d) {
                return;
            }
            if d.is_whitespace() {
                self.space(at);
                return;
            }
            for lower in d.to_lowercase() {
                self.push(lower, at);
            }
        });
    }

    fn push(&mut self, c: char, at: u32) {
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.origin.push(at);
        }
    }

    fn space(&mut self, at: u32) {
        if !self.text.ends_with(' ') {
            self.push(' ', at);
        }
    }

    /// The byte of `original` where the character folded byte `at` came from starts.
    pub fn original_start(&self, at: usize) -> Option<usize> {
        usize::try_from(*self.origin.get(at)?).ok()
    }

    /// The bytes of `original` that the folded bytes `range` came from (whole characters).
    pub fn original_range(&self, original: &str, range: Range<usize>) -> Option<Range<usize>> {
        if range.is_empty() {
            return None;
        }
        let start = usize::try_from(*self.origin.get(range.start)?).ok()?;
        let last = usize::try_from(*self.origin.get(range.end.checked_sub(1)?)?).ok()?;
        let width = original.get(last..)?.chars().next()?.len_utf8();
        Some(start..last.checked_add(width)?)
    }
}

/// A byte offset as stored in `origin` (texts over 4 GiB are not read: bodies are capped far lower).
fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Folds a configured word or phrase the way scanned text is folded.
pub fn fold(text: &str) -> String {
    Normalized::new(text).text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Normalized, fold};

    #[test]
    fn folds_case_width_accents_and_invisibles() {
        let original = "Ｂｏｍｂ  b\u{200B}o\u{202E}m\u{FEFF}b\tBÖMB ﬁle";
        let n = Normalized::new(original);
        assert_eq!(n.text, "bomb bomb bomb file");
        let at = n.text.find("bomb bomb").unwrap() + 5;
        let range = n.original_range(original, at..at + 4).unwrap();
        assert_eq!(&original[range], "b\u{200B}o\u{202E}m\u{FEFF}b");
        assert_eq!(fold("  Ignore   PREVIOUS "), "ignore previous");
    }

    /// Character by character, the plain way: what the ASCII fast path must agree with.
    fn reference(original: &str) -> (String, Vec<u32>) {
        let mut out = Normalized::default();
        for (at, c) in original.char_indices() {
            out.fold_char(c, u32::try_from(at).unwrap());
        }
        (out.text, out.origin)
    }

    #[test]
    fn ascii_runs_fold_like_single_characters() {
        let samples = [
            "",
            " ",
            "Hello,   World!\n\tMixed CASE 123 e-mail@Example.COM",
            "  leading and trailing  ",
            "naïve\u{00A0}CAFÉ\u{200B}x Ｆｕｌｌ　width\r\nend",
            "ﬁ\u{0301}A\u{FEFF} \u{2003}B",
            "日本語のテキスト ABC déjà-vu",
        ];
        for sample in samples {
            let fast = Normalized::new(sample);
            let (text, origin) = reference(sample);
            assert_eq!(fast.text, text, "{sample:?}");
            assert_eq!(fast.origin, origin, "{sample:?}");
        }
    }

    #[test]
    fn maps_ranges_through_multibyte_text() {
        let original = "naïve café: Ａ@b.cd";
        let n = Normalized::new(original);
        assert_eq!(n.text, "naive cafe: a@b.cd");
        let at = n.text.find("a@b").unwrap();
        let range = n.original_range(original, at..n.text.len()).unwrap();
        assert_eq!(&original[range], "Ａ@b.cd");
        assert!(n.original_range(original, 3..3).is_none());
    }
}
