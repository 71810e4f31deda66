//! The text detectors read: compatibility-folded (NFKD without combining marks, so fullwidth
//! letters, ligatures and accents fold to plain letters), lowercased, with zero-width, bidi and
//! other invisible format characters removed and every run of whitespace collapsed to one
//! space. Each byte of the folded text remembers which character of the original it came from,
//! so a match found in the folded text redacts the right bytes of the original.

use std::ops::Range;
use std::sync::OnceLock;

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
        let mut out = Builder {
            bytes: Vec::with_capacity(original.len()),
            origin: Vec::with_capacity(original.len()),
        };
        let bytes = original.as_bytes();
        let mut at = 0;
        // Prompts are mostly ASCII, folded `BLOCK` bytes at a time: each byte with arithmetic,
        // with no branch per byte (the compiler turns these loops into vector instructions),
        // marking the bytes that need more than that (a space after a space, dropped; a
        // non-ASCII character, folded on its own). The stretches between marks are appended
        // whole.
        const BLOCK: usize = 64;
        while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
            let block = rest.get(..BLOCK).unwrap_or(rest);
            let mut folded = [0u8; BLOCK];
            for (to, &byte) in folded.iter_mut().zip(block) {
                *to = fold_ascii_byte(byte);
            }
            let folded = folded.get(..block.len()).unwrap_or_default();
            let mut marks = [0u8; BLOCK];
            let after_space = out.bytes.last() == Some(&b' ');
            if let (Some(mark), Some(&byte), Some(&f)) =
                (marks.first_mut(), block.first(), folded.first())
            {
                *mark = u8::from((byte >= 0x80) | ((f == b' ') & after_space));
            }
            let rest = marks.get_mut(1..).unwrap_or_default();
            let pairs = block
                .get(1..)
                .unwrap_or_default()
                .iter()
                .zip(folded.get(1..).unwrap_or_default());
            for ((mark, (&byte, &f)), &before) in rest.iter_mut().zip(pairs).zip(folded) {
                *mark = u8::from((byte >= 0x80) | ((f == b' ') & (before == b' ')));
            }
            let marks = marks.get(..block.len()).unwrap_or_default();
            let end = at.saturating_add(block.len());
            let mut from = 0usize;
            while let Some(mark) = next_mark(marks, from) {
                out.append_ascii(
                    folded.get(from..mark).unwrap_or_default(),
                    at.saturating_add(from),
                );
                let Some(&byte) = block.get(mark) else {
                    break;
                };
                if byte.is_ascii() {
                    // A space after a space.
                    from = mark.saturating_add(1);
                    continue;
                }
                let position = at.saturating_add(mark);
                let Some(c) = original
                    .get(position..)
                    .and_then(|rest| rest.chars().next())
                else {
                    return out.finish();
                };
                out.fold_non_ascii(c, offset(position));
                from = mark.saturating_add(c.len_utf8());
            }
            out.append_ascii(
                folded.get(from..).unwrap_or_default(),
                at.saturating_add(from),
            );
            // A character may end past the block: the next block starts after it.
            at = end.max(at.saturating_add(from));
        }
        out.finish()
    }

    fn fold_char(&mut self, c: char, at: u32) {
        fold_general(self, c, at);
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

/// Where `Normalized::new` folds into: bytes rather than a `String` (each piece appended is
/// ASCII or whole characters, so the bytes are checked once, at the end).
struct Builder {
    bytes: Vec<u8>,
    origin: Vec<u32>,
}

impl Builder {
    fn finish(self) -> Normalized {
        let text = String::from_utf8(self.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Normalized {
            text,
            origin: self.origin,
        }
    }

    /// Appends folded ASCII bytes that came one for one from the original at `start` (but for
    /// spaces at its start when the text ends with one: a character before may have folded to
    /// a space).
    fn append_ascii(&mut self, folded: &[u8], start: usize) {
        let mut folded = folded;
        let mut start = start;
        if self.bytes.last() == Some(&b' ') {
            let spaces = folded.iter().take_while(|b| **b == b' ').count();
            folded = folded.get(spaces..).unwrap_or_default();
            start = start.saturating_add(spaces);
        }
        self.bytes.extend_from_slice(folded);
        // Each byte came from the original byte at the same distance (a loop that vectorizes).
        let mut next = offset(start);
        let from = self.origin.len();
        self.origin.resize(from.saturating_add(folded.len()), 0);
        for slot in self.origin.get_mut(from..).unwrap_or_default() {
            *slot = next;
            next = next.wrapping_add(1);
        }
    }

    /// `fold_char`, with shortcuts for the non-ASCII characters prompts use most: two-byte
    /// characters (accented Latin, Greek, Cyrillic...) from a table worked out once, and CJK
    /// ideographs, which fold to themselves. The general path looks characters up in Unicode's
    /// tables, a few hundred instructions each.
    fn fold_non_ascii(&mut self, c: char, at: u32) {
        let code = u32::from(c);
        if let Some(folded) = code
            .checked_sub(TWO_BYTE_START)
            .and_then(|i| two_byte_folds().get(usize::try_from(i).ok()?))
        {
            match folded {
                Fold::Nothing => {}
                Fold::Space => self.space(at),
                Fold::Text { len, bytes } => {
                    let text = bytes.get(..usize::from(*len)).unwrap_or_default();
                    self.bytes.extend_from_slice(text);
                    self.origin.extend(std::iter::repeat_n(at, text.len()));
                }
                Fold::General => fold_general(self, c, at),
            }
            return;
        }
        if is_cjk_ideograph(c) {
            self.push(c, at);
            return;
        }
        fold_general(self, c, at);
    }
}

/// Where one character's fold goes.
trait Sink {
    fn push(&mut self, c: char, at: u32);
    /// A space, unless the text already ends with one.
    fn space(&mut self, at: u32);
}

impl Sink for Builder {
    fn push(&mut self, c: char, at: u32) {
        let mut utf8 = [0u8; 4];
        let encoded = c.encode_utf8(&mut utf8).as_bytes();
        self.bytes.extend_from_slice(encoded);
        self.origin.extend(std::iter::repeat_n(at, encoded.len()));
    }

    fn space(&mut self, at: u32) {
        if self.bytes.last() != Some(&b' ') {
            self.bytes.push(b' ');
            self.origin.push(at);
        }
    }
}

impl Sink for Normalized {
    fn push(&mut self, c: char, at: u32) {
        Normalized::push(self, c, at);
    }

    fn space(&mut self, at: u32) {
        Normalized::space(self, at);
    }
}

/// Folds one character the general way: compatibility decomposition without combining marks
/// or invisibles, lowercase, whitespace as a space.
fn fold_general(sink: &mut impl Sink, c: char, at: u32) {
    if is_invisible(c) {
        return;
    }
    if c.is_whitespace() {
        sink.space(at);
        return;
    }
    decompose_compatible(c, |d| {
        if is_combining_mark(d) || is_invisible(d) {
            return;
        }
        if d.is_whitespace() {
            sink.space(at);
            return;
        }
        for lower in d.to_lowercase() {
            sink.push(lower, at);
        }
    });
}

/// The first marked byte (see `Normalized::new`) at or after `from`: eight marks at a time.
fn next_mark(marks: &[u8], from: usize) -> Option<usize> {
    let rest = marks.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut skipped = 0usize;
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
        if word != 0 {
            let lane = usize::try_from(word.trailing_zeros() / 8).ok()?;
            return Some(from.saturating_add(skipped).saturating_add(lane));
        }
        skipped = skipped.saturating_add(8);
    }
    let tail = chunks.remainder();
    let lane = tail.iter().position(|&m| m != 0)?;
    Some(from.saturating_add(skipped).saturating_add(lane))
}

/// The first code point of the two-byte UTF-8 range, where the fold table starts.
const TWO_BYTE_START: u32 = 0x80;
/// One past the last two-byte code point.
const TWO_BYTE_END: u32 = 0x800;

/// What folding does to one two-byte character, worked out once (`two_byte_folds`).
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// Invisible, or only combining marks: nothing is written.
    Nothing,
    /// Whitespace: one space, unless the text already ends with one.
    Space,
    /// These bytes (at most 8).
    Text { len: u8, bytes: [u8; 8] },
    /// Anything else (text and spaces mixed, or longer): the general path.
    General,
}

/// The fold of every two-byte character, computed on first use (about 15 KB, once per process)
/// with the general path, so it folds them exactly as `fold_char` does.
fn two_byte_folds() -> &'static [Fold] {
    static FOLDS: OnceLock<Vec<Fold>> = OnceLock::new();
    FOLDS.get_or_init(|| {
        (TWO_BYTE_START..TWO_BYTE_END)
            .map(|code| char::from_u32(code).map_or(Fold::General, fold_of))
            .collect()
    })
}

fn fold_of(c: char) -> Fold {
    // Folded after a letter, so that a space shows as one.
    let mut folded = Normalized {
        text: String::from("x"),
        origin: vec![0],
    };
    folded.fold_char(c, 1);
    let added = folded.text.as_bytes().get(1..).unwrap_or_default();
    match added {
        [] => Fold::Nothing,
        [b' '] if c.is_whitespace() || decomposes_to_space(c) => Fold::Space,
        _ if added.contains(&b' ') || added.len() > 8 => Fold::General,
        _ => {
            let mut bytes = [0u8; 8];
            if let Some(to) = bytes.get_mut(..added.len()) {
                to.copy_from_slice(added);
            }
            Fold::Text {
                len: u8::try_from(added.len()).unwrap_or(0),
                bytes,
            }
        }
    }
}

/// Whether `c` folds to exactly one space through its decomposition.
fn decomposes_to_space(c: char) -> bool {
    let mut only_space = true;
    decompose_compatible(c, |d| {
        if !(d.is_whitespace() || is_combining_mark(d) || is_invisible(d)) {
            only_space = false;
        }
    });
    only_space
}

/// CJK unified ideographs (and extension A): no decomposition, no case, not invisible, so they
/// fold to themselves.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
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
    fn long_texts_fold_like_single_characters_across_blocks() {
        // Pieces of every kind, so that characters and whitespace runs straddle the 64-byte
        // blocks the fast path works in.
        let pieces = [
            "a",
            "Word",
            "  ",
            " ",
            "\t\n",
            "é",
            "東京",
            "\u{200B}",
            "\u{00A0}",
            "ﬁ",
            "Ｆ",
            "😀",
            ".",
            "x1",
            "\u{2003}",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "ß",
            "İ",
            "\r\n ",
        ];
        let mut seed = 3u64;
        for _ in 0..3000 {
            let mut text = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 57) as usize + 1;
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            let fast = Normalized::new(&text);
            let (folded, origin) = reference(&text);
            assert_eq!(fast.text, folded, "{text:?}");
            assert_eq!(fast.origin, origin, "{text:?}");
        }
    }

    #[test]
    fn shortcuts_fold_like_the_general_path() {
        let shortcut = (0x80..0x800u32).chain(0x3400..0x4DC0).chain(0x4E00..0xA000);
        for code in shortcut {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            // After a letter and after a space, where a space would collapse.
            for before in ["x", "x "] {
                let mut fast = super::Builder {
                    bytes: before.as_bytes().to_vec(),
                    origin: vec![0; before.len()],
                };
                let mut slow = Normalized::default();
                for b in before.chars() {
                    slow.fold_char(b, 0);
                }
                fast.fold_non_ascii(c, 7);
                slow.fold_char(c, 7);
                let fast = fast.finish();
                assert_eq!(fast.text, slow.text, "U+{code:04X}");
                assert_eq!(fast.origin, slow.origin, "U+{code:04X}");
            }
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
