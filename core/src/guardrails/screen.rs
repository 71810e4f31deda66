//! Cheap tests that tell, before any regular expression runs, which rules cannot match a text.
//!
//! Running every detector's automaton over every text costs about 2 ns a byte, most of the
//! request scan, while almost no text holds a secret or PII. Each rule gets a gate, derived
//! from its pattern when the configuration is compiled:
//!
//! - **Literals**: every match starts with one of a few strings (`sk-`, `-----begin `, `akia`,
//!   ...). One multi-string search over the text (`Screen`) finds which of those rules can
//!   match; only those run, each with its own literal-accelerated search.
//! - **Bytes**: every match holds some kinds of byte (a digit, `@`, `:`...: see `Bytes`). The
//!   other rules run together in one `RegexSet` pass, only when the folded text holds every
//!   kind one of them needs (`Presence` looks each kind up once, with a vectorized search).
//!
//! Both are necessary conditions of a match, never sufficient: a rule that passes its gate runs
//! exactly as before, so the findings are the same as running every rule.

use aho_corasick::{AhoCorasick, MatchKind};
use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Class, Hir, HirKind};

/// A set of byte kinds, one bit each: every ASCII digit together, every ASCII letter together,
/// each ASCII punctuation mark on its own, the space, control characters together, and every
/// non-ASCII byte together. A kind stands for all the bytes it covers, so a gate on kinds can
/// only err towards running a rule.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

const DIGIT: u32 = 0;
const LETTER: u32 = 1;
const NON_ASCII: u32 = 2;
const SPACE: u32 = 3;
const CONTROL: u32 = 4;

impl Bytes {
    /// The kind of `byte`, as a one-bit set.
    pub fn of(byte: u8) -> Self {
        Self(1u64.wrapping_shl(kind_bit(byte)))
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Every kind.
    #[cfg(test)]
    pub fn all() -> Self {
        Self(u64::MAX)
    }

    /// The kinds in the set, by bit number.
    fn bits(self) -> impl Iterator<Item = u32> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let bit = rest.trailing_zeros();
            rest &= rest.wrapping_sub(1);
            (bit < 64).then_some(bit)
        })
    }
}

/// The 32 ASCII punctuation marks, each its own kind: bit `PUNCT_BIT + i` is `PUNCTUATION[i]`.
const PUNCTUATION: &[u8; 32] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const PUNCT_BIT: u32 = 5;

/// The bit of `byte`'s kind in `Bytes`.
fn kind_bit(byte: u8) -> u32 {
    match byte {
        b'0'..=b'9' => DIGIT,
        b'a'..=b'z' | b'A'..=b'Z' => LETTER,
        b' ' => SPACE,
        0x80..=0xFF => NON_ASCII,
        _ => PUNCTUATION
            .iter()
            .position(|&p| p == byte)
            .and_then(|i| u32::try_from(i).ok())
            .map_or(CONTROL, |i| PUNCT_BIT.wrapping_add(i)),
    }
}

/// Which kinds of byte a text holds, each looked up once when a gate first asks.
#[derive(Debug)]
pub struct Presence<'t> {
    text: &'t [u8],
    known: u64,
    present: u64,
}

impl<'t> Presence<'t> {
    pub fn new(text: &'t str) -> Self {
        Self {
            text: text.as_bytes(),
            known: 0,
            present: 0,
        }
    }

    /// Whether the text holds a byte of one of `kinds`.
    pub fn any(&mut self, kinds: Bytes) -> bool {
        for bit in kinds.bits() {
            let mask = 1u64.wrapping_shl(bit);
            if self.known & mask == 0 {
                self.known |= mask;
                if self.holds(bit) {
                    self.present |= mask;
                }
            }
            if self.present & mask != 0 {
                return true;
            }
        }
        false
    }

    /// Whether the text holds a byte of kind `bit`: `memchr` for a punctuation mark, a
    /// branch-free (vectorized) pass over blocks for the kinds of many bytes.
    fn holds(&self, bit: u32) -> bool {
        match bit {
            DIGIT => any_byte(self.text, |b| b.wrapping_sub(b'0') < 10),
            LETTER => any_byte(self.text, |b| (b | 0x20).wrapping_sub(b'a') < 26),
            NON_ASCII => any_byte(self.text, |b| b >= 0x80),
            SPACE => memchr::memchr(b' ', self.text).is_some(),
            CONTROL => any_byte(self.text, |b| (b < 0x20) | (b == 0x7F)),
            _ => bit
                .checked_sub(PUNCT_BIT)
                .and_then(|i| PUNCTUATION.get(usize::try_from(i).ok()?))
                .is_some_and(|&mark| memchr::memchr(mark, self.text).is_some()),
        }
    }
}

/// Whether any byte of `text` passes `test`, a block of 64 at a time with no branch inside a
/// block (so that the compiler vectorizes it).
#[inline]
fn any_byte(text: &[u8], test: impl Fn(u8) -> bool) -> bool {
    text.chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | test(b)))
}

/// Literal gates longer than this are cut: the screen only needs a string every match starts
/// with, and shorter strings keep the multi-string search fast.
const LITERAL_BYTES: usize = 8;
/// A class of more characters than this ends a gate string (`gh[pousr]_` gives five strings,
/// `sk-[a-z0-9]` just `sk-`).
const CLASS_CHARS: usize = 5;
/// A rule whose matches can start with more strings than this is gated by bytes instead.
const MAX_LITERALS: usize = 16;

/// What every match of a pattern needs, as far as the gate can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Every match starts with one of these strings (each at least 2 bytes).
    Literals(Vec<Vec<u8>>),
    /// Every match holds, for each element, a byte of that set of kinds. Empty: no condition
    /// (the rule runs on every text).
    Bytes(Vec<Bytes>),
}

impl Gate {
    /// The gate of a pattern (`pattern` must already compile as a regex: an unparsable one
    /// gets no condition).
    pub fn of(pattern: &str) -> Self {
        let Ok(hir) = regex_syntax::parse(pattern) else {
            return Self::Bytes(Vec::new());
        };
        match literal_prefixes(&hir) {
            Some(literals) => Self::Literals(literals),
            None => Self::Bytes(required(&hir)),
        }
    }

    /// Whether a text passes this gate (for `Bytes` gates; a `Literals` gate is tested by the
    /// screen).
    pub fn open(&self, present: &mut Presence<'_>) -> bool {
        match self {
            Self::Literals(_) => true,
            Self::Bytes(needs) => needs.iter().all(|kinds| present.any(*kinds)),
        }
    }
}

/// The strings every match starts with, when they are few and at least 2 bytes long; longer
/// ones cut to `LITERAL_BYTES`, and any that starts with another of the set dropped (where it
/// occurs, the shorter one does too).
fn literal_prefixes(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut seq = Extractor::new().limit_class(CLASS_CHARS).extract(hir);
    seq.keep_first_bytes(LITERAL_BYTES);
    seq.dedup();
    let literals = seq.literals()?;
    if literals.is_empty() || literals.len() > MAX_LITERALS {
        return None;
    }
    let mut strings: Vec<Vec<u8>> = literals.iter().map(|l| l.as_bytes().to_vec()).collect();
    if strings.iter().any(|s| s.len() < 2) {
        return None;
    }
    strings.sort_by_key(Vec::len);
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for string in strings {
        if !kept.iter().any(|k| string.starts_with(k)) {
            kept.push(string);
        }
    }
    Some(kept)
}

/// Byte kinds every match of `hir` holds: each element is a set of kinds of which a match has
/// at least one byte. Sound, not complete: anything unsure is left out.
fn required(hir: &Hir) -> Vec<Bytes> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Vec::new(),
        HirKind::Literal(literal) => {
            let mut out: Vec<Bytes> = literal.0.iter().map(|&b| Bytes::of(b)).collect();
            out.sort_by_key(|b| b.0);
            out.dedup();
            out
        }
        HirKind::Class(class) => vec![class_kinds(class)],
        HirKind::Repetition(rep) if rep.min > 0 => required(&rep.sub),
        HirKind::Repetition(_) => Vec::new(),
        HirKind::Capture(capture) => required(&capture.sub),
        HirKind::Concat(subs) => {
            let mut out: Vec<Bytes> = subs.iter().flat_map(required).collect();
            out.sort_by_key(|b| b.0);
            out.dedup();
            out
        }
        // Each branch needs its own; the union of one need per branch is needed by all.
        HirKind::Alternation(subs) => {
            let mut union = Bytes::default();
            for sub in subs {
                match rarest(&required(sub)) {
                    Some(kinds) => union = union.union(kinds),
                    None => return Vec::new(),
                }
            }
            vec![union]
        }
    }
}

/// Of several needs, the one a text is least likely to meet (fewest kinds, letters and spaces
/// counted as many).
fn rarest(needs: &[Bytes]) -> Option<Bytes> {
    needs.iter().copied().min_by_key(|kinds| commonness(*kinds))
}

fn commonness(kinds: Bytes) -> u32 {
    let common = Bytes::of(b'a')
        .union(Bytes::of(b' '))
        .union(Bytes::of(0x80))
        .union(Bytes::of(b'.'))
        .union(Bytes::of(b','));
    let rare = kinds.0 & !common.0;
    let frequent = kinds.0 & common.0;
    rare.count_ones()
        .saturating_add(frequent.count_ones().saturating_mul(64))
}

/// The kinds of every byte a class can match (a non-ASCII character: its UTF-8 bytes, all
/// non-ASCII).
fn class_kinds(class: &Class) -> Bytes {
    let mut kinds = Bytes::default();
    let mut add_range = |lo: u32, hi: u32| {
        if hi >= 0x80 {
            kinds = kinds.union(Bytes::of(0x80));
        }
        for b in lo..=hi.min(0x7F) {
            if let Ok(byte) = u8::try_from(b) {
                kinds = kinds.union(Bytes::of(byte));
            }
        }
    };
    match class {
        Class::Unicode(class) => {
            for range in class.iter() {
                add_range(u32::from(range.start()), u32::from(range.end()));
            }
        }
        Class::Bytes(class) => {
            for range in class.iter() {
                add_range(u32::from(range.start()), u32::from(range.end()));
            }
        }
    }
    kinds
}

/// One multi-string search for the literal gates of several rules.
#[derive(Debug)]
pub struct Screen {
    searcher: AhoCorasick,
    /// The rules (indexes into the caller's rule list) gated by the strings.
    owners: Vec<usize>,
}

impl Screen {
    /// A screen over `(rule, strings)`; `None` when no rule has strings.
    pub fn new(gates: &[(usize, &[Vec<u8>])]) -> Result<Option<Self>, String> {
        let mut strings: Vec<&[u8]> = Vec::new();
        let mut owners = Vec::new();
        for (rule, literals) in gates {
            for literal in *literals {
                strings.push(literal);
            }
            owners.push(*rule);
        }
        if strings.is_empty() {
            return Ok(None);
        }
        let searcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&strings)
            .map_err(|e| e.to_string())?;
        Ok(Some(Self { searcher, owners }))
    }

    /// Adds to `hit` the rules (indexes into the caller's rule list) that may match `text`:
    /// none when no gate string occurs in it, else all of them. Gate strings are rare (`sk-`,
    /// `akia`, `-----beg`), so the search that stops at the first is what almost every text
    /// pays; when one occurs, each rule's own literal-accelerated search costs less than
    /// finding out which strings occur (an overlapping search, with no literal acceleration).
    pub fn mark(&self, text: &str, hit: &mut Vec<usize>) {
        if self.searcher.is_match(text) {
            hit.extend_from_slice(&self.owners);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Bytes, Gate, Presence};
    use crate::guardrails::detectors::BUILTINS;
    use crate::guardrails::normalize::Normalized;

    /// The gate of a built-in, its strings sorted.
    fn gate(id: &str) -> Gate {
        let builtin = BUILTINS.iter().find(|b| b.id == id).unwrap();
        match Gate::of(builtin.pattern) {
            Gate::Literals(mut strings) => {
                strings.sort();
                Gate::Literals(strings)
            }
            bytes => bytes,
        }
    }

    fn literals(strings: &[&str]) -> Gate {
        let mut strings: Vec<Vec<u8>> = strings.iter().map(|s| s.as_bytes().to_vec()).collect();
        strings.sort();
        Gate::Literals(strings)
    }

    #[test]
    fn secrets_are_gated_by_the_strings_they_start_with() {
        assert_eq!(gate("private_key"), literals(&["-----beg"]));
        assert_eq!(gate("anthropic_key"), literals(&["sk-ant-"]));
        assert_eq!(gate("openai_key"), literals(&["sk-"]));
        assert_eq!(
            gate("aws_access_key"),
            literals(&["akia", "asia", "abia", "acca"])
        );
        assert_eq!(gate("jwt"), literals(&["eyj"]));
        assert_eq!(
            gate("github_token"),
            literals(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_p"])
        );
        assert_eq!(gate("slack_token"), literals(&["xox", "hooks.sl"]));
    }

    #[test]
    fn pii_is_gated_by_the_bytes_it_needs() {
        let opens = |id: &str, text: &str| {
            let folded = Normalized::new(text);
            gate(id).open(&mut Presence::new(&folded.text))
        };
        let prose = "Well-known facts, e.g. the café's menu (roughly) - and more.";
        let everything: String = (0u8..128).map(char::from).chain(['é']).collect();
        for id in [
            "email",
            "credit_card",
            "iban",
            "us_ssn",
            "phone",
            "ipv4",
            "ipv6",
        ] {
            assert!(
                matches!(gate(id), Gate::Bytes(ref needs) if !needs.is_empty()),
                "{id}"
            );
            assert!(
                !opens(id, prose),
                "{id} should not run on prose without digits, @ or :"
            );
            assert!(opens(id, &everything), "{id}");
        }
        assert!(opens("email", "bob@example.com"));
        assert!(opens("credit_card", "4111 1111 1111 1111"));
        assert!(opens("us_ssn", "123-45-6789"));
        assert!(opens("ipv4", "10.0.0.1"));
        assert!(opens("ipv6", "fe80::1"));
        assert!(!opens("ipv4", "10 and 20"));
    }

    #[test]
    fn patterns_without_a_sure_condition_always_run() {
        for pattern in [r".*", r"a?", r"\bfoo\b|", r"(?:x|)"] {
            let gate = Gate::of(pattern);
            assert!(gate.open(&mut Presence::new("")), "{pattern}: {gate:?}");
        }
        assert_eq!(Gate::of(r"\bpipe\s+bomb\b"), literals(&["pipe"]));
        assert!(!Gate::of(r"[0-9]+x").open(&mut Presence::new("xyz")));
        assert!(Gate::of(r"[0-9]+x").open(&mut Presence::new("1x")));
        // Every kind of every byte is found.
        for byte in 0u8..128 {
            let text = char::from(byte).to_string();
            assert!(Presence::new(&text).any(Bytes::of(byte)), "{byte}");
            assert!(!Presence::new("").any(Bytes::of(byte)), "{byte}");
        }
        assert!(Presence::new("é").any(Bytes::of(0xC3)));
        assert!(Presence::new("x").any(Bytes::all()));
    }
}
