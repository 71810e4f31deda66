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
        // Prompts are mostly ASCII: it is folded a block at a time (`fold_ascii`); only
        // non-ASCII characters are folded one by one.
        while at < bytes.len() {
            at = out.fold_ascii(bytes, at);
            let Some(c) = original.get(at..).and_then(|rest| rest.chars().next()) else {
                break;
            };
            out.fold_char(c, offset(at));
            at = at.saturating_add(c.len_utf8());
        }
        out
    }

    /// Folds the ASCII bytes from `at` on, up to the first non-ASCII byte (or the end), whose
    /// position it returns.
    ///
    /// `BLOCK` bytes at a time: each byte is folded with arithmetic and the block is checked for
    /// non-ASCII bytes and for two spaces in a row with no branch per byte (the compiler turns
    /// these loops into vector instructions); the block is then appended in one piece, or in a
    /// few where a whitespace run collapses.
    fn fold_ascii(&mut self, bytes: &[u8], at: usize) -> usize {
        const BLOCK: usize = 64;
        let mut start = at;
        loop {
            let rest = bytes.get(start..).unwrap_or_default();
            let block = rest.get(..BLOCK).unwrap_or(rest);
            if block.is_empty() {
                return start;
            }
            let mut folded = [0u8; BLOCK];
            let mut high = 0u8;
            for (to, &byte) in folded.iter_mut().zip(block) {
                *to = fold_ascii_byte(byte);
                high |= byte;
            }
            let ascii = if high < 0x80 {
                block.len()
            } else {
                block
                    .iter()
                    .position(|b| !b.is_ascii())
                    .unwrap_or(block.len())
            };
            self.append_ascii(folded.get(..ascii).unwrap_or_default(), start);
            start = start.saturating_add(ascii);
            if ascii < BLOCK {
                return start;
            }
        }
    }

    /// Appends folded ASCII `folded` that came from the original bytes at `start`, dropping each
    /// space that follows a space (also one already at the end of the text).
    fn append_ascii(&mut self, folded: &[u8], start: usize) {
        let mut from = 0;
        if self.text.ends_with(' ') {
            from = folded.iter().take_while(|b| **b == b' ').count();
        }
        let doubled = folded
            .iter()
            .zip(folded.get(1..).unwrap_or_default())
            .fold(false, |any, (a, b)| any | ((*a == b' ') & (*b == b' ')));
        if doubled {
            let mut at = from;
            while let Some(pair) = folded
                .get(at..)
                .and_then(|rest| memchr::memmem::find(rest, b"  "))
            {
                // Keep the first space of the run, skip the others.
                let keep = at.saturating_add(pair).saturating_add(1);
                self.append_run(folded, from..keep, start);
                let rest = folded.get(keep..).unwrap_or_default();
                from = keep.saturating_add(rest.iter().take_while(|b| **b == b' ').count());
                at = from;
            }
        }
        self.append_run(folded, from..folded.len(), start);
    }

    /// Appends `folded[range]`, which came byte for byte from the original at `start + range`.
    fn append_run(&mut self, folded: &[u8], range: Range<usize>, start: usize) {
        let Some(run) = folded.get(range.clone()) else {
            return;
        };
        // Folded ASCII is ASCII: the check cannot fail.
        self.text
            .push_str(std::str::from_utf8(run).unwrap_or_default());
        let first = offset(start.saturating_add(range.start));
        let end = offset(start.saturating_add(range.end));
        self.origin.extend(first..end);
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

/// An ASCII byte as folded text has it: letters lowercase, whitespace a space. Arithmetic and
/// selects only, so that loops over a block of bytes vectorize.
#[inline]
fn fold_ascii_byte(byte: u8) -> u8 {
    let upper = byte.wrapping_sub(b'A') < 26;
    let lowered = if upper { byte | 0x20 } else { byte };
    // `u8::is_ascii_whitespace`: space, \t, \n, \x0C, \r (not \x0B).
    let space = (byte == b' ') | ((byte.wrapping_sub(b'\t') < 5) & (byte != 0x0B));
    if space { b' ' } else { lowered }
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
