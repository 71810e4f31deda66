//! One pass over text that cuts it into the pieces a BPE tokenizer's pre-tokenizer would (words
//! with their leading space or punctuation mark, digit runs, punctuation runs, whitespace runs,
//! runs of CJK, emoji and other non-ASCII characters) without any vocabulary. The estimator adds
//! up a calibrated cost per piece (`tables`); the calibration tool (`tools/token-accuracy`) reads
//! the same pieces to learn those costs from real tokenizers.
//!
//! The rules follow the regular expressions of the tiktoken-style pre-tokenizers (cl100k_base,
//! o200k_base, Llama 3, Qwen 2): a word takes one preceding space or punctuation mark, a
//! contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) is its own piece, a punctuation run
//! takes a preceding space and following line breaks, the last space of a whitespace run goes to
//! the next word.

/// Byte classes for the ASCII fast path.
pub(super) const LOWER: u8 = 0;
pub(super) const UPPER: u8 = 1;
pub(super) const DIGIT: u8 = 2;
pub(super) const SPACE: u8 = 3;
pub(super) const NEWLINE: u8 = 4;
pub(super) const PUNCT: u8 = 5;
const NON_ASCII: u8 = 6;

// A const initializer: indexes are in bounds by construction and checked at compile time.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const CLASS: [u8; 256] = {
    let mut table = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = match b as u8 {
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            b'0'..=b'9' => DIGIT,
            b' ' | b'\t' | 0x0b | 0x0c => SPACE,
            b'\n' | b'\r' => NEWLINE,
            _ => PUNCT,
        };
        b += 1;
    }
    table
};

pub(super) fn class(byte: u8) -> u8 {
    // A u8 index into a 256-entry table is always in bounds.
    CLASS.get(usize::from(byte)).copied().unwrap_or(NON_ASCII)
}

/// How a word is capitalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `word`
    Lower = 0,
    /// `Word`
    Capitalized = 1,
    /// `WORD`, `wOrD`...
    Other = 2,
}

/// What a word takes from before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    None = 0,
    Space = 1,
    /// A punctuation mark (`.count`, `_id`).
    Mark = 2,
}

/// Non-ASCII characters by how tokenizers treat them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// CJK ideographs (Chinese hanzi, Japanese kanji).
    Han = 0,
    /// Hiragana, katakana.
    Kana = 1,
    Hangul = 2,
    /// Ideographic and full-width punctuation (`，。「」`).
    CjkPunct = 3,
    /// Emoji and other characters outside the basic plane, with their joiners and selectors.
    Emoji = 4,
    /// Other three-byte characters: typographic quotes and dashes, arrows, math, box drawing...
    Symbol = 5,
    /// Two-byte characters: accented Latin, Greek, Cyrillic, Hebrew, Arabic...
    TwoByte = 6,
}

pub const CHAR_CLASSES: usize = 7;

/// One piece of text, as the pre-tokenizer would cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// An ASCII word, with the space or punctuation mark before it that it takes.
    Word {
        case: Case,
        prefix: Prefix,
        len: usize,
    },
    /// A run of one repeated ASCII letter or mark (`aaaaaaaa`, `========`), 8 or longer.
    Repeat {
        mark: bool,
        len: usize,
    },
    /// `'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d` after a word.
    Contraction,
    Digits {
        len: usize,
    },
    /// ASCII punctuation with its trailing line breaks (`len`, without the leading space).
    Punct {
        prefixed: bool,
        len: usize,
    },
    /// Whitespace; `newline` when it contains a line break.
    Space {
        newline: bool,
        len: usize,
    },
    /// A run of `chars` non-ASCII characters of one class, with a leading space or mark.
    Chars {
        class: CharClass,
        prefixed: bool,
        chars: usize,
    },
}

/// Rules that differ between tokenizer families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// o200k_base cuts words before an upper-case letter that follows a lower-case one
    /// (`camelCase` is `camel` + `Case`); cl100k_base does not.
    pub split_camel_case: bool,
}

/// Calls `piece` for every piece of `text`, in order, with its byte range (`start..end`). The
/// ranges cover the text without gaps or overlaps.
///
/// The estimator's hot loop (every prompt byte goes through it): runs of lowercase letters, by
/// far the most common bytes, are measured eight at a time (`lower_run`), and the other runs with
/// tight loops over the slice. `scan_reference` (tests only) is the plain version it must agree
/// with.
#[inline]
pub fn scan(text: &str, rules: Rules, mut piece: impl FnMut(Piece, usize, usize)) {
    let bytes = text.as_bytes();
    let end = bytes.len();
    // The class of the byte at `i`; past the end, a line break (which ends every run).
    let class_at = |i: usize| bytes.get(i).map_or(NEWLINE, |&b| class(b));
    let mut i = 0usize;
    // A lone space or mark just before `i` that the next piece takes.
    let mut prefix = Prefix::None;
    while let Some(&byte) = bytes.get(i) {
        let c = class(byte);
        match c {
            LOWER | UPPER => {
                let start = i;
                let mut seen_lower = c == LOWER;
                // An upper-case letter after the first: the word is not `Lower`/`Capitalized`.
                let mut upper_after_first = false;
                i = i.wrapping_add(1);
                loop {
                    let lower = lower_run(bytes, i);
                    if lower > 0 {
                        seen_lower = true;
                        i = i.wrapping_add(lower);
                    }
                    if class_at(i) != UPPER || (seen_lower && rules.split_camel_case) {
                        break;
                    }
                    upper_after_first = true;
                    i = i.wrapping_add(1);
                }
                let len = i.wrapping_sub(start);
                let case = match (c == LOWER, upper_after_first) {
                    (true, false) => Case::Lower,
                    (false, false) => Case::Capitalized,
                    (_, true) => Case::Other,
                };
                let from = start.saturating_sub(usize::from(prefix != Prefix::None));
                if len >= 8 && prefix == Prefix::None && is_one_byte_repeated(bytes, start, i) {
                    piece(Piece::Repeat { mark: false, len }, from, i);
                } else {
                    piece(Piece::Word { case, prefix, len }, from, i);
                }
                prefix = Prefix::None;
                // A contraction right after the word.
                if bytes.get(i) == Some(&b'\'') {
                    let len = contraction_len(bytes, i.wrapping_add(1));
                    if len > 0 {
                        let from = i;
                        i = i.wrapping_add(1).wrapping_add(len);
                        piece(Piece::Contraction, from, i);
                    }
                }
            }
            DIGIT => {
                let start = i;
                i = run_end(bytes, i, |b| b.is_ascii_digit());
                if prefix != Prefix::None {
                    // The mark did not attach to a word: it stands alone.
                    piece(
                        Piece::Punct {
                            prefixed: false,
                            len: 1,
                        },
                        start.saturating_sub(1),
                        start,
                    );
                    prefix = Prefix::None;
                }
                piece(
                    Piece::Digits {
                        len: i.wrapping_sub(start),
                    },
                    start,
                    i,
                );
            }
            SPACE | NEWLINE => {
                // The bulk of prose: one space, a lowercase word, a space. The space goes to the
                // word (as below), which is `Lower` and, prefixed, never a repeat.
                if byte == b' ' && prefix == Prefix::None {
                    let len = lower_run(bytes, i.wrapping_add(1));
                    let after = i.wrapping_add(1).wrapping_add(len);
                    if len > 0 && bytes.get(after) == Some(&b' ') {
                        let prefix = Prefix::Space;
                        piece(
                            Piece::Word {
                                case: Case::Lower,
                                prefix,
                                len,
                            },
                            i,
                            after,
                        );
                        i = after;
                        continue;
                    }
                }
                let start = i;
                // Just past the run's last line break: up to there it is one piece, like the
                // pre-tokenizers' `\s*[\r\n]+`.
                let mut lines_end = start;
                while let Some(&b) = bytes.get(i) {
                    match class(b) {
                        SPACE => {}
                        NEWLINE => lines_end = i.wrapping_add(1),
                        _ => break,
                    }
                    i = i.wrapping_add(1);
                }
                if lines_end > start {
                    piece(
                        Piece::Space {
                            newline: true,
                            len: lines_end.wrapping_sub(start),
                        },
                        start,
                        lines_end,
                    );
                }
                let tail = i.wrapping_sub(lines_end);
                // The last space goes to what follows, unless that is a number.
                let gives = tail > 0
                    && bytes.get(i.wrapping_sub(1)) == Some(&b' ')
                    && i < end
                    && class_at(i) != DIGIT;
                let own = tail.wrapping_sub(usize::from(gives));
                if own > 0 {
                    piece(
                        Piece::Space {
                            newline: false,
                            len: own,
                        },
                        lines_end,
                        lines_end.wrapping_add(own),
                    );
                }
                prefix = if gives { Prefix::Space } else { Prefix::None };
            }
            PUNCT => {
                let start = i;
                i = run_end(bytes, i, |b| class(b) == PUNCT);
                let next = class_at(i);
                if prefix == Prefix::None
                    && i == start.wrapping_add(1)
                    && i < end
                    && (next == LOWER || next == UPPER)
                {
                    // A lone mark goes to the word it precedes (`.count`, `_id`).
                    prefix = Prefix::Mark;
                    continue;
                }
                let run_end = i;
                // Line breaks right after punctuation belong to it.
                i = self::run_end(bytes, i, |b| class(b) == NEWLINE);
                let prefixed = prefix != Prefix::None;
                let from = start.saturating_sub(usize::from(prefixed));
                let len = i.wrapping_sub(start);
                if len >= 8 && !prefixed && run_end == i && is_one_byte_repeated(bytes, start, i) {
                    piece(Piece::Repeat { mark: true, len }, from, i);
                } else {
                    piece(Piece::Punct { prefixed, len }, from, i);
                }
                prefix = Prefix::None;
            }
            _ => {
                let start = i;
                let (class, _) = char_class(bytes, i);
                let mut chars = 0usize;
                while let Some(&b) = bytes.get(i) {
                    if b < 0x80 {
                        break;
                    }
                    let (next, next_width) = char_class(bytes, i);
                    let joins = next == class
                        || (class == CharClass::Emoji && next == CharClass::Symbol && {
                            // Variation selectors and zero-width joiners continue an emoji.
                            matches!(
                                (b, bytes.get(i.wrapping_add(1)).copied().unwrap_or(b'\n')),
                                (0xEF, 0xB8) | (0xE2, 0x80)
                            )
                        });
                    if !joins {
                        break;
                    }
                    i = i.wrapping_add(next_width);
                    chars = chars.wrapping_add(1);
                }
                let prefixed = prefix != Prefix::None;
                piece(
                    Piece::Chars {
                        class,
                        prefixed,
                        chars,
                    },
                    start.saturating_sub(usize::from(prefixed)),
                    i,
                );
                prefix = Prefix::None;
            }
        }
    }
    if prefix != Prefix::None {
        piece(
            Piece::Punct {
                prefixed: false,
                len: 1,
            },
            end.saturating_sub(1),
            end,
        );
    }
}

/// Where the run of bytes passing `test` that starts at `from` ends.
#[inline]
fn run_end(bytes: &[u8], from: usize, test: impl Fn(u8) -> bool) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    from.wrapping_add(rest.iter().position(|&b| !test(b)).unwrap_or(rest.len()))
}

/// How many lowercase ASCII letters start `bytes[from..]`: eight bytes at a time as one word
/// (each byte is tested in its own lane), then byte by byte near the end.
#[inline]
fn lower_run(bytes: &[u8], from: usize) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut n = 0usize;
    loop {
        let at = from.wrapping_add(n);
        let Some(eight) = bytes
            .get(at..at.wrapping_add(8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
        else {
            break;
        };
        let block = u64::from_le_bytes(eight);
        // With every lane below 0x80, adding less than 0x80 carries into no other lane: a
        // lane's high bit then says whether it reached `a`, or passed `z`. Lanes of 0x80 and
        // up are not letters.
        let low = block & !HIGH;
        let from_a = low.wrapping_add(ONES.wrapping_mul(0x1F)) & HIGH; // 0x80 - b'a'
        let past_z = low.wrapping_add(ONES.wrapping_mul(0x05)) & HIGH; // 0x7F - b'z'
        let letters = from_a & !past_z & !block;
        let not_letters = !letters & HIGH;
        if not_letters != 0 {
            let lanes = usize::try_from(not_letters.trailing_zeros() / 8).unwrap_or(0);
            return n.wrapping_add(lanes);
        }
        n = n.wrapping_add(8);
    }
    let rest = bytes.get(from.wrapping_add(n)..).unwrap_or_default();
    n.wrapping_add(
        rest.iter()
            .position(|b| !b.is_ascii_lowercase())
            .unwrap_or(rest.len()),
    )
}

pub(super) fn is_one_byte_repeated(bytes: &[u8], from: usize, to: usize) -> bool {
    match bytes.get(from..to) {
        Some([first, rest @ ..]) => rest.iter().all(|b| b == first),
        _ => false,
    }
}

#[cfg(test)]
pub(super) fn is_all_lower(bytes: &[u8], from: usize, to: usize) -> bool {
    bytes
        .get(from..to)
        .is_some_and(|run| run.iter().all(u8::is_ascii_lowercase))
}

/// Length of the contraction letters at `from` (after the apostrophe), 0 if none.
pub(super) fn contraction_len(bytes: &[u8], from: usize) -> usize {
    let letter = |i: usize| {
        bytes
            .get(from.saturating_add(i))
            .map(u8::to_ascii_lowercase)
    };
    let is_letter = |i: usize| letter(i).is_some_and(|b| b.is_ascii_alphabetic());
    let len = match (letter(0), letter(1)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => 1,
        (Some(b'r'), Some(b'e')) | (Some(b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 2,
        _ => return 0,
    };
    if is_letter(len) { 0 } else { len }
}

/// The class and byte width of the (non-ASCII) character starting at `i`. Text is valid UTF-8
/// (it comes from a `str`), so the lead byte gives the width.
pub(super) fn char_class(bytes: &[u8], i: usize) -> (CharClass, usize) {
    let b0 = bytes.get(i).copied().unwrap_or(0);
    let cont = |k: usize| u32::from(bytes.get(i.saturating_add(k)).copied().unwrap_or(0x80) & 0x3F);
    if b0 < 0xE0 {
        return (CharClass::TwoByte, 2);
    }
    if b0 >= 0xF0 {
        // Outside the basic plane: emoji, or CJK extension ideographs (U+20000-U+3FFFF).
        let cp = (u32::from(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
        let class = if (0x20000..0x40000).contains(&cp) {
            CharClass::Han
        } else {
            CharClass::Emoji
        };
        return (class, 4);
    }
    let cp = (u32::from(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    let class = match cp {
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF => CharClass::Han,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => CharClass::Kana,
        0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => CharClass::Hangul,
        0x3000..=0x303F | 0xFF00..=0xFFEF => CharClass::CjkPunct,
        0x2600..=0x27BF | 0x2B00..=0x2BFF => CharClass::Emoji,
        _ => CharClass::Symbol,
    };
    (class, 3)
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Case, CharClass, Piece, Prefix, Rules, scan};

    const CL100K: Rules = Rules {
        split_camel_case: false,
    };
    const O200K: Rules = Rules {
        split_camel_case: true,
    };

    fn pieces(text: &str, rules: Rules) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut next = 0;
        scan(text, rules, |p, start, end| {
            assert_eq!(start, next, "{text:?}: gap or overlap before {p:?}");
            assert!(end > start, "{text:?}: empty {p:?}");
            next = end;
            out.push(p);
        });
        assert_eq!(next, text.len(), "{text:?}: not covered");
        out
    }

    fn word(case: Case, prefixed: bool, len: usize) -> Piece {
        let prefix = if prefixed {
            Prefix::Space
        } else {
            Prefix::None
        };
        Piece::Word { case, prefix, len }
    }

    fn marked(case: Case, len: usize) -> Piece {
        Piece::Word {
            case,
            prefix: Prefix::Mark,
            len,
        }
    }

    fn punct(prefixed: bool, len: usize) -> Piece {
        Piece::Punct { prefixed, len }
    }

    fn space(newline: bool, len: usize) -> Piece {
        Piece::Space { newline, len }
    }

    fn chars(class: CharClass, prefixed: bool, chars: usize) -> Piece {
        Piece::Chars {
            class,
            prefixed,
            chars,
        }
    }

    #[test]
    fn words_take_their_leading_space_and_contractions_split() {
        assert_eq!(
            pieces("Hello world, don't", CL100K),
            [
                word(Case::Capitalized, false, 5),
                word(Case::Lower, true, 5),
                punct(false, 1),
                word(Case::Lower, true, 3),
                Piece::Contraction,
            ]
        );
    }

    #[test]
    fn code_marks_prefix_words_and_indentation_gives_one_space() {
        assert_eq!(
            pieces("x.count;\n    ok = (a)", CL100K),
            [
                word(Case::Lower, false, 1),
                marked(Case::Lower, 5),
                punct(false, 2),
                space(false, 3),
                word(Case::Lower, true, 2),
                punct(true, 1),
                punct(true, 1),
                word(Case::Lower, false, 1),
                punct(false, 1),
            ]
        );
        assert_eq!(
            pieces("end\n\n  12", CL100K),
            [
                word(Case::Lower, false, 3),
                space(true, 2),
                space(false, 2),
                Piece::Digits { len: 2 },
            ]
        );
    }

    #[test]
    fn camel_case_splits_only_where_the_family_does() {
        assert_eq!(pieces("camelCase", CL100K), [word(Case::Other, false, 9)]);
        assert_eq!(
            pieces("camelCase", O200K),
            [
                word(Case::Lower, false, 5),
                word(Case::Capitalized, false, 4)
            ]
        );
        assert_eq!(pieces("HTTP", O200K), [word(Case::Other, false, 4)]);
        assert_eq!(
            pieces("aaaaaaaaa ==========\n", O200K),
            [
                Piece::Repeat {
                    mark: false,
                    len: 9
                },
                punct(true, 11),
            ]
        );
    }

    #[test]
    fn digits_and_non_ascii_runs() {
        assert_eq!(
            pieces("12345 你好，世界😀👍🏽 é", CL100K),
            [
                Piece::Digits { len: 5 },
                chars(CharClass::Han, true, 2),
                chars(CharClass::CjkPunct, false, 1),
                chars(CharClass::Han, false, 2),
                chars(CharClass::Emoji, false, 3),
                chars(CharClass::TwoByte, true, 1),
            ]
        );
        assert_eq!(
            pieces("カタカナ", CL100K),
            [chars(CharClass::Kana, false, 4)]
        );
    }

    type Cut = Vec<(Piece, usize, usize)>;

    /// Every piece and range of `text` by the rewritten scan and by the reference.
    fn both(text: &str, rules: Rules) -> (Cut, Cut) {
        let mut fast = Vec::new();
        scan(text, rules, |p, start, end| fast.push((p, start, end)));
        let mut slow = Vec::new();
        crate::tokens::scan_reference::scan(text, rules, |p, start, end| {
            slow.push((p, start, end))
        });
        (fast, slow)
    }

    #[test]
    fn the_scan_cuts_text_as_the_reference_does() {
        let corpus = [
            include_str!("../../../tools/token-accuracy/corpus/english.txt"),
            include_str!("../../../tools/token-accuracy/corpus/chinese.txt"),
            include_str!("../../../tools/token-accuracy/corpus/japanese.txt"),
            include_str!("scan.rs"),
            include_str!("tables.rs"),
            include_str!("../../../docs/token-accuracy.md"),
        ];
        for text in corpus {
            for rules in [CL100K, O200K] {
                let (fast, slow) = both(text, rules);
                assert_eq!(fast, slow);
            }
        }
        // Pseudo-random mixes of every class, runs of each, repeats and contractions.
        let pieces = [
            "a",
            "Z",
            "abcdefgh",
            "ABCDEFGHIJ",
            "camelCase",
            "HTTPServer",
            "aaaaaaaaaa",
            "7",
            "12345",
            " ",
            "  ",
            "\t",
            "\n",
            "\r\n",
            " \n ",
            ".",
            "_",
            "'s",
            "'ll",
            "'",
            "===========",
            "é",
            "東京",
            "カタ",
            "한",
            "，",
            "😀",
            "👍🏽",
            "\u{200d}",
            "\u{fe0f}",
            "→",
            "x'",
            "don't",
        ];
        let mut seed = 11u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 60) as usize + 1;
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            for rules in [CL100K, O200K] {
                let (fast, slow) = both(&text, rules);
                assert_eq!(fast, slow, "{text:?}");
            }
        }
    }

    #[test]
    fn every_prefix_of_mixed_text_scans_without_panicking() {
        let text = "fn main() {\n\tlet s = \"héllo 世界 🎉\"; // it's 42\r\n}\n  ";
        for (i, _) in text.char_indices() {
            let _ = pieces(&text[..i], O200K);
            let _ = pieces(&text[i..], CL100K);
        }
    }
}
