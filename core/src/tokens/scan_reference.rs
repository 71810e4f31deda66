//! The piece scanner as it was before it was rewritten for speed, kept as the oracle the
//! rewrite is tested against (`scan::tests::the_scan_cuts_text_as_the_reference_does`): both must
//! cut every text into the same pieces, so the estimates and the calibrated tables stay the same.

use super::scan::{
    Case, CharClass, DIGIT, LOWER, NEWLINE, PUNCT, Piece, Prefix, Rules, SPACE, UPPER, char_class,
    class, contraction_len, is_all_lower, is_one_byte_repeated,
};

/// Calls `piece` for every piece of `text`, in order, with its byte range (`start..end`). The
/// ranges cover the text without gaps or overlaps.
pub fn scan(text: &str, rules: Rules, mut piece: impl FnMut(Piece, usize, usize)) {
    let bytes = text.as_bytes();
    let end = bytes.len();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(b'\n');
    let mut i = 0usize;
    // A lone space or mark just before `i` that the next piece takes.
    let mut prefix = Prefix::None;
    while i < end {
        let c = class(at(i));
        match c {
            LOWER | UPPER => {
                let start = i;
                let mut seen_lower = c == LOWER;
                i = i.saturating_add(1);
                while i < end {
                    let next = class(at(i));
                    if next == LOWER {
                        seen_lower = true;
                    } else if next != UPPER || (seen_lower && rules.split_camel_case) {
                        break;
                    }
                    i = i.saturating_add(1);
                }
                let len = i.saturating_sub(start);
                let case = if c == LOWER {
                    if is_all_lower(bytes, start, i) {
                        Case::Lower
                    } else {
                        Case::Other
                    }
                } else if is_all_lower(bytes, start.saturating_add(1), i) {
                    Case::Capitalized
                } else {
                    Case::Other
                };
                let from = start.saturating_sub(usize::from(prefix != Prefix::None));
                if len >= 8 && prefix == Prefix::None && is_one_byte_repeated(bytes, start, i) {
                    piece(Piece::Repeat { mark: false, len }, from, i);
                } else {
                    piece(Piece::Word { case, prefix, len }, from, i);
                }
                prefix = Prefix::None;
                // A contraction right after the word.
                if at(i) == b'\'' {
                    let len = contraction_len(bytes, i.saturating_add(1));
                    if len > 0 {
                        let from = i;
                        i = i.saturating_add(1).saturating_add(len);
                        piece(Piece::Contraction, from, i);
                    }
                }
            }
            DIGIT => {
                let start = i;
                while i < end && class(at(i)) == DIGIT {
                    i = i.saturating_add(1);
                }
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
                        len: i.saturating_sub(start),
                    },
                    start,
                    i,
                );
            }
            SPACE | NEWLINE => {
                let start = i;
                // Just past the run's last line break: up to there it is one piece, like the
                // pre-tokenizers' `\s*[\r\n]+`.
                let mut lines_end = start;
                while i < end {
                    match class(at(i)) {
                        SPACE => {}
                        NEWLINE => lines_end = i.saturating_add(1),
                        _ => break,
                    }
                    i = i.saturating_add(1);
                }
                if lines_end > start {
                    piece(
                        Piece::Space {
                            newline: true,
                            len: lines_end.saturating_sub(start),
                        },
                        start,
                        lines_end,
                    );
                }
                let tail = i.saturating_sub(lines_end);
                // The last space goes to what follows, unless that is a number.
                let gives = tail > 0 && at(i.saturating_sub(1)) == b' ' && i < end && {
                    class(at(i)) != DIGIT
                };
                let own = tail.saturating_sub(usize::from(gives));
                if own > 0 {
                    piece(
                        Piece::Space {
                            newline: false,
                            len: own,
                        },
                        lines_end,
                        lines_end.saturating_add(own),
                    );
                }
                prefix = if gives { Prefix::Space } else { Prefix::None };
            }
            PUNCT => {
                let start = i;
                while i < end && class(at(i)) == PUNCT {
                    i = i.saturating_add(1);
                }
                let next = class(at(i));
                if prefix == Prefix::None
                    && i == start.saturating_add(1)
                    && i < end
                    && (next == LOWER || next == UPPER)
                {
                    // A lone mark goes to the word it precedes (`.count`, `_id`).
                    prefix = Prefix::Mark;
                    continue;
                }
                let run_end = i;
                // Line breaks right after punctuation belong to it.
                while i < end && class(at(i)) == NEWLINE {
                    i = i.saturating_add(1);
                }
                let prefixed = prefix != Prefix::None;
                let from = start.saturating_sub(usize::from(prefixed));
                let len = i.saturating_sub(start);
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
                while i < end {
                    let (next, next_width) = char_class(bytes, i);
                    let joins = next == class
                        || (class == CharClass::Emoji && next == CharClass::Symbol && {
                            // Variation selectors and zero-width joiners continue an emoji.
                            matches!(
                                (at(i), at(i.saturating_add(1))),
                                (0xEF, 0xB8) | (0xE2, 0x80)
                            )
                        });
                    if at(i) < 0x80 || !joins {
                        break;
                    }
                    i = i.saturating_add(next_width);
                    chars = chars.saturating_add(1);
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
