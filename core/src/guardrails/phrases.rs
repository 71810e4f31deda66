//! Finding prompt-injection phrases without running an automaton over every byte.
//!
//! A phrase only counts where it starts a word (`at_word_boundaries`), and every built-in
//! phrase starts with an ASCII letter. So the search visits word starts only, and at each one
//! looks its first two bytes up in a 64 Ki-bit table of the phrases' first two bytes; the rare
//! hit is checked against the phrases that begin with them. That is a few instructions a byte,
//! against a few nanoseconds a byte for an Aho-Corasick automaton reporting overlapping matches.
//!
//! The matches are the same as the automaton's, reported in the same order (by end, then by
//! start), so the score adds the same weights in the same order. When a configured phrase does
//! not start with an ASCII letter or digit, or is a single byte, the caller keeps the automaton.

use std::ops::Range;

/// Phrases indexed by their first two bytes.
#[derive(Debug)]
pub struct PhraseStarts {
    /// One bit per pair of first bytes (`first << 8 | second`).
    pairs: Box<[u64; 1024]>,
    /// Per word of `pairs`, how many bits the words before it have: a pair's bit's rank among
    /// the set bits, found in a few instructions, indexes `groups`.
    ranks: Box<[u16; 1024]>,
    /// Per pair (by rank), its phrases in `by_pair`.
    groups: Vec<Range<usize>>,
    /// The phrases by their first two bytes, sorted.
    by_pair: Vec<Entry>,
    phrases: Vec<Vec<u8>>,
}

/// A phrase, with its first eight bytes (fewer if shorter) to compare at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    pair: u16,
    /// The first bytes as a little-endian word, and which of its bytes are the phrase's.
    head: u64,
    mask: u64,
    id: usize,
}

/// Up to eight bytes of `bytes` from `at`, as a little-endian word (zeros past the end).
fn head_at(bytes: &[u8], at: usize) -> u64 {
    let mut eight = [0u8; 8];
    let rest = bytes.get(at..).unwrap_or_default();
    let n = rest.len().min(8);
    if let (Some(to), Some(from)) = (eight.get_mut(..n), rest.get(..n)) {
        to.copy_from_slice(from);
    }
    u64::from_le_bytes(eight)
}

/// Eight bytes from `at` as a little-endian word, when there are eight and all are ASCII.
fn ascii_block(bytes: &[u8], at: usize) -> Option<u64> {
    let eight: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    let block = u64::from_le_bytes(eight);
    (block & HIGH == 0).then_some(block)
}

/// Up to eight bytes from `at` as a little-endian word (zeros past the end), and how many of
/// them, from the first, are ASCII.
fn ascii_lanes(bytes: &[u8], at: usize) -> (u64, u32) {
    let block = head_at(bytes, at);
    let available = u32::try_from(bytes.len().saturating_sub(at).min(8)).unwrap_or(0);
    let first_high = (block & HIGH).trailing_zeros() / 8;
    (block, available.min(first_high))
}

/// The byte at `at`, 0 past the end.
fn byte_at(bytes: &[u8], at: usize) -> u8 {
    bytes.get(at).copied().unwrap_or(0)
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// For eight ASCII bytes, the high bit of each that is a letter or digit.
fn word_bytes(block: u64) -> u64 {
    // Each lane is below 0x80, so adding less than 0x80 never carries into the next lane: the
    // lane's high bit then tells whether it reached the bound.
    let at_least = |x: u64, low: u8| {
        x.wrapping_add(ONES.wrapping_mul(u64::from(0x80u8.wrapping_sub(low)))) & HIGH
    };
    let above = |x: u64, high: u8| {
        x.wrapping_add(ONES.wrapping_mul(u64::from(0x7Fu8.wrapping_sub(high)))) & HIGH
    };
    let digit = at_least(block, b'0') & !above(block, b'9');
    let lower = block | ONES.wrapping_mul(0x20);
    let letter = at_least(lower, b'a') & !above(lower, b'z');
    digit | letter
}

fn pair(first: u8, second: u8) -> u16 {
    u16::from(first).wrapping_shl(8) | u16::from(second)
}

impl PhraseStarts {
    /// The index of `phrases` (folded), or `None` when one cannot be found this way.
    pub fn new(phrases: &[String]) -> Option<Self> {
        let mut pairs = Box::new([0u64; 1024]);
        let mut by_pair = Vec::with_capacity(phrases.len());
        for (id, phrase) in phrases.iter().enumerate() {
            let (&first, &second) = match phrase.as_bytes() {
                [first, second, ..] => (first, second),
                _ => return None,
            };
            if !first.is_ascii_alphanumeric() {
                return None;
            }
            let key = pair(first, second);
            let slot = pairs.get_mut(usize::from(key >> 6))?;
            *slot |= 1u64.wrapping_shl(u32::from(key & 63));
            let bytes = phrase.len().min(8);
            let unused_bits = 8usize.saturating_sub(bytes).saturating_mul(8);
            let mask = u64::MAX
                .checked_shr(u32::try_from(unused_bits).ok()?)
                .unwrap_or(0);
            by_pair.push(Entry {
                pair: key,
                head: head_at(phrase.as_bytes(), 0) & mask,
                mask,
                id,
            });
        }
        by_pair.sort_unstable();
        let mut ranks = Box::new([0u16; 1024]);
        let mut before = 0u16;
        for (rank, bits) in ranks.iter_mut().zip(pairs.iter()) {
            *rank = before;
            before = before.saturating_add(u16::try_from(bits.count_ones()).unwrap_or(0));
        }
        let mut groups: Vec<Range<usize>> = Vec::new();
        for (i, entry) in by_pair.iter().enumerate() {
            match groups.last_mut() {
                Some(group)
                    if by_pair
                        .get(group.start)
                        .is_some_and(|e| e.pair == entry.pair) =>
                {
                    group.end = i.saturating_add(1);
                }
                _ => groups.push(i..i.saturating_add(1)),
            }
        }
        Some(Self {
            pairs,
            ranks,
            groups,
            by_pair,
            phrases: phrases.iter().map(|p| p.as_bytes().to_vec()).collect(),
        })
    }

    fn may_start(&self, first: u8, second: u8) -> bool {
        let key = pair(first, second);
        self.pairs
            .get(usize::from(key >> 6))
            .is_some_and(|bits| bits & 1u64.wrapping_shl(u32::from(key & 63)) != 0)
    }

    /// Every (phrase id, range) occurring in `text` at a word start, ordered by end then start:
    /// what an overlapping Aho-Corasick search reports there. (The caller still checks the end
    /// boundary.)
    pub fn find(&self, text: &str) -> Vec<(usize, Range<usize>)> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        let mut at = 0usize;
        // Whether the character before `at` is a letter or digit (no phrase starts after one).
        let mut after_word = false;
        while at < bytes.len() {
            // Up to eight ASCII bytes at a time: the word starts among them as bits.
            let (block, ascii) = match ascii_block(bytes, at) {
                Some(block) => (block, 8),
                None => ascii_lanes(bytes, at),
            };
            if ascii > 0 {
                let lanes = u64::MAX.checked_shr(64u32.saturating_sub(ascii.saturating_mul(8)));
                let word = word_bytes(block) & lanes.unwrap_or(u64::MAX);
                let before = word.wrapping_shl(8) | u64::from(after_word).wrapping_shl(7);
                let mut starts = word & !before;
                while starts != 0 {
                    let lane = usize::try_from(starts.trailing_zeros() / 8).unwrap_or(0);
                    let start = at.wrapping_add(lane);
                    let (first, second) =
                        (byte_at(bytes, start), byte_at(bytes, start.wrapping_add(1)));
                    if self.may_start(first, second) {
                        self.check(bytes, start, &mut found);
                    }
                    starts &= starts.wrapping_sub(1);
                }
                let last = ascii.saturating_mul(8).saturating_sub(1);
                after_word = word.checked_shr(last).is_some_and(|bit| bit & 1 != 0);
                at = at.wrapping_add(usize::try_from(ascii).unwrap_or(8));
            }
            // A non-ASCII character: a letter or digit in many scripts.
            if bytes.get(at).is_some_and(|b| !b.is_ascii()) {
                let c = text.get(at..).and_then(|rest| rest.chars().next());
                after_word = c.is_some_and(char::is_alphanumeric);
                at = at.wrapping_add(c.map_or(1, char::len_utf8));
            }
        }
        // The automaton reports matches as it reads their last byte; of those ending at the same
        // byte, the longest first.
        found.sort_by_key(|(_, range)| (range.end, range.start));
        found
    }

    /// The phrases that begin with the pair `key` (whose bit is set).
    fn group(&self, key: u16) -> &[Entry] {
        let word = usize::from(key >> 6);
        let below = 1u64.wrapping_shl(u32::from(key & 63)).wrapping_sub(1);
        let (Some(bits), Some(rank)) = (self.pairs.get(word), self.ranks.get(word)) else {
            return &[];
        };
        let index = usize::from(*rank)
            .saturating_add(usize::try_from((bits & below).count_ones()).unwrap_or(0));
        self.groups
            .get(index)
            .and_then(|range| self.by_pair.get(range.clone()))
            .unwrap_or_default()
    }

    /// Adds every phrase that occurs at `at` (whose first two bytes are there).
    fn check(&self, bytes: &[u8], at: usize, found: &mut Vec<(usize, Range<usize>)>) {
        let key = pair(byte_at(bytes, at), byte_at(bytes, at.wrapping_add(1)));
        let head = head_at(bytes, at);
        for entry in self.group(key) {
            if entry.pair != key {
                continue;
            }
            if head & entry.mask != entry.head {
                continue;
            }
            let Some(phrase) = self.phrases.get(entry.id) else {
                continue;
            };
            if bytes.get(at..).is_some_and(|rest| rest.starts_with(phrase)) {
                found.push((entry.id, at..at.saturating_add(phrase.len())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use aho_corasick::{AhoCorasick, MatchKind};

    use super::PhraseStarts;
    use crate::guardrails::injection::PHRASES;

    /// What the overlapping automaton reports at word starts, in its order.
    fn reference(ac: &AhoCorasick, text: &str) -> Vec<(usize, std::ops::Range<usize>)> {
        ac.find_overlapping_iter(text)
            .filter(|m| {
                !text[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
            })
            .map(|m| (m.pattern().as_usize(), m.range()))
            .collect()
    }

    #[test]
    fn finds_what_the_automaton_finds_in_its_order() {
        let mut phrases: Vec<String> = PHRASES.iter().map(|(p, _)| (*p).to_owned()).collect();
        phrases.sort();
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&phrases)
            .unwrap();
        let starts = PhraseStarts::new(&phrases).unwrap();
        // Pieces that overlap, nest and touch: every pair, then a pseudo-random mix.
        let pieces = [
            "ignore all previous instructions",
            "jailbreak mode",
            "jailbroken",
            "jailbreak",
            "you are now dan",
            "do anything now",
            "pretend to be",
            "no restrictions",
            "from now on, you will",
            "new instructions:",
            " ",
            "x",
            "é",
            "東京",
            ".",
            "-",
            "without any filters",
            "unfiltered",
        ];
        let mut texts: Vec<String> = Vec::new();
        for a in pieces {
            for b in pieces {
                texts.push(format!("{a}{b}"));
                texts.push(format!("{a} {b}"));
            }
        }
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..8 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            texts.push(text);
        }
        for text in &texts {
            assert_eq!(starts.find(text), reference(&ac, text), "{text:?}");
        }
    }

    #[test]
    fn phrases_it_cannot_index_are_refused() {
        assert!(PhraseStarts::new(&["x".to_owned()]).is_none());
        assert!(PhraseStarts::new(&["<|im_start|>".to_owned()]).is_none());
        assert!(PhraseStarts::new(&["игнорируй".to_owned()]).is_none());
        assert!(PhraseStarts::new(&["ok go".to_owned()]).is_some());
    }
}
