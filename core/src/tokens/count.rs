//! Counting the tokens of a text: the pieces `scan` cuts, each priced from the family's table.

use super::scan::{CHAR_CLASSES, Piece, Rules, scan};

/// Table costs are in 1/256 of a token.
pub const UNIT: u64 = 256;
pub const WORD_CAP: usize = 24;
pub const DIGITS_CAP: usize = 16;
pub const PUNCT_CAP: usize = 16;
pub const SPACE_CAP: usize = 32;

/// What each piece costs for one tokenizer family, learned from the real tokenizer by
/// `tools/token-accuracy` (see `tables.rs`). About 1 KB per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub rules: Rules,
    /// A word by `[case][prefix][len - 1]`; each byte past `WORD_CAP` adds `word_tail`.
    pub word: [[[u16; WORD_CAP]; 3]; 3],
    /// A run of one repeated letter (`[0]`) or mark (`[1]`): `[per run, per byte]`.
    pub repeat: [[u16; 2]; 2],
    pub word_tail: u16,
    pub contraction: u16,
    /// A digit run by `[len - 1]`; each digit past the cap adds `digits_tail`.
    pub digits: [u16; DIGITS_CAP],
    pub digits_tail: u16,
    /// A punctuation run by `[prefixed][len - 1]`.
    pub punct: [[u16; PUNCT_CAP]; 2],
    pub punct_tail: u16,
    /// A whitespace run by `[has a line break][len - 1]`.
    pub space: [[u16; SPACE_CAP]; 2],
    pub space_tail: u16,
    /// A run of non-ASCII characters of one class: `[per run, per run with a leading space or
    /// mark, per character]`.
    pub chars: [[u16; 3]; CHAR_CLASSES],
}

/// `table[len - 1]`, or the last entry plus `tail` per unit of length past the table.
#[inline]
fn priced(table: &[u16], tail: u16, len: usize) -> u64 {
    let index = len.saturating_sub(1);
    match table.get(index) {
        Some(&cost) => u64::from(cost),
        None => {
            let last = table.last().copied().map_or(0, u64::from);
            let extra = u64::try_from(len.saturating_sub(table.len())).unwrap_or(u64::MAX);
            last.saturating_add(extra.saturating_mul(u64::from(tail)))
        }
    }
}

impl Tables {
    /// The cost of one piece, in `UNIT`s.
    #[inline]
    pub fn cost(&self, piece: Piece) -> u64 {
        match piece {
            Piece::Word { case, prefix, len } => self
                .word
                .get(case as usize)
                .and_then(|rows| rows.get(prefix as usize))
                .map_or(0, |row| priced(row, self.word_tail, len)),
            Piece::Repeat { mark, len } => {
                let [run, per_byte] = self
                    .repeat
                    .get(usize::from(mark))
                    .copied()
                    .unwrap_or([0; 2]);
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                u64::from(run).saturating_add(len.saturating_mul(u64::from(per_byte)))
            }
            Piece::Contraction => u64::from(self.contraction),
            Piece::Digits { len } => priced(&self.digits, self.digits_tail, len),
            Piece::Punct { prefixed, len } => self
                .punct
                .get(usize::from(prefixed))
                .map_or(0, |row| priced(row, self.punct_tail, len)),
            Piece::Space { newline, len } => self
                .space
                .get(usize::from(newline))
                .map_or(0, |row| priced(row, self.space_tail, len)),
            Piece::Chars {
                class,
                prefixed,
                chars,
            } => {
                let [run, prefixed_run, per_char] =
                    self.chars.get(class as usize).copied().unwrap_or([0; 3]);
                let run = if prefixed { prefixed_run } else { run };
                let chars = u64::try_from(chars).unwrap_or(u64::MAX);
                u64::from(run).saturating_add(chars.saturating_mul(u64::from(per_char)))
            }
        }
    }

    /// The text's cost in `UNIT`s; add several up before rounding with `to_tokens`.
    #[inline]
    pub fn units(&self, text: &str) -> u64 {
        let mut total = 0u64;
        scan(text, self.rules, |piece, _, _| {
            total = total.saturating_add(self.cost(piece));
        });
        total
    }

    /// Estimated tokens of `text`: at least 1 for any non-empty text.
    pub fn count(&self, text: &str) -> u64 {
        let units = self.units(text);
        if units == 0 && !text.is_empty() {
            return 1;
        }
        to_tokens(units)
    }
}

/// Rounds a sum of `UNIT`s to whole tokens.
pub fn to_tokens(units: u64) -> u64 {
    units.saturating_add(UNIT / 2) / UNIT
}
