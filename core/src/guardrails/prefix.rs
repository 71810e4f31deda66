//! Where a match could still be in progress at the end of a stream's text: the stream hold-back
//! releases text up to that point and keeps only the tail that more text could turn into a
//! match (usually the last partial word), instead of a fixed number of bytes.
//!
//! For regular-expression rules the gateway derives, from each pattern, a second pattern that
//! accepts every *prefix* of a match (`pref(ab) = pref(a) | a pref(b)`, `pref(a{n,m}) =
//! a{0,m-1} pref(a)`, ...), anchored at the end of the text. The leftmost match of the union of
//! those patterns is the earliest position where some rule's match could begin and still be
//! unfinished. Look-around assertions (`\b`, `$`) are dropped from the derived pattern: it then
//! accepts more prefixes than the rule could complete, so the hold-back errs on holding more.
//! Deny words and injection phrases are literal phrases: a tail is held while it is the
//! beginning of one.

use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Hir, HirKind, Look, Repetition};

/// Compiled-size limits of a derived prefix pattern (it is about twice its rules' patterns).
const SIZE_LIMIT: usize = 8 << 20;
const DFA_LIMIT: usize = 4 << 20;

/// A pattern accepting every prefix of a match of `hir` (including the whole match).
fn prefixes(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Hir::empty(),
        HirKind::Literal(literal) => {
            let Ok(text) = std::str::from_utf8(&literal.0) else {
                return Hir::empty();
            };
            let mut alternatives = vec![Hir::empty()];
            for (at, c) in text.char_indices() {
                let end = at.saturating_add(c.len_utf8());
                let prefix = text.get(..end).unwrap_or_default();
                alternatives.push(Hir::literal(prefix.as_bytes()));
            }
            Hir::alternation(alternatives)
        }
        HirKind::Class(_) => Hir::alternation(vec![Hir::empty(), without_looks(hir)]),
        HirKind::Repetition(rep) => {
            let sub = without_looks(&rep.sub);
            let partial = prefixes(&rep.sub);
            let max = match rep.max {
                Some(0) => return Hir::empty(),
                Some(max) => Some(max.saturating_sub(1)),
                None => None,
            };
            let whole = Hir::repetition(Repetition {
                min: 0,
                max,
                greedy: true,
                sub: Box::new(sub),
            });
            Hir::concat(vec![whole, partial])
        }
        HirKind::Capture(capture) => prefixes(&capture.sub),
        HirKind::Concat(subs) => {
            let mut acc: Option<Hir> = None;
            for sub in subs.iter().rev() {
                acc = Some(match acc {
                    None => prefixes(sub),
                    Some(rest) => Hir::alternation(vec![
                        prefixes(sub),
                        Hir::concat(vec![without_looks(sub), rest]),
                    ]),
                });
            }
            acc.unwrap_or_else(Hir::empty)
        }
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(prefixes).collect()),
    }
}

/// `hir` with every look-around assertion removed (and captures flattened).
fn without_looks(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(_) | HirKind::Empty => Hir::empty(),
        HirKind::Literal(_) | HirKind::Class(_) => hir.clone(),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            min: rep.min,
            max: rep.max,
            greedy: true,
            sub: Box::new(without_looks(&rep.sub)),
        }),
        HirKind::Capture(capture) => without_looks(&capture.sub),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(without_looks).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(without_looks).collect()),
    }
}

/// One regular expression whose leftmost match starts where the earliest possible unfinished
/// match of any of `patterns` starts (it always matches: at worst the empty string at the end).
pub fn tail_regex<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Regex, String> {
    let mut alternatives = Vec::new();
    for pattern in patterns {
        let hir = regex_syntax::parse(pattern).map_err(|e| e.to_string())?;
        alternatives.push(prefixes(&hir));
    }
    let whole = Hir::concat(vec![Hir::alternation(alternatives), Hir::look(Look::End)]);
    RegexBuilder::new(&whole.to_string())
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// Where the earliest unfinished match may start in `folded` (its length when none can).
pub fn regex_tail_start(regex: &Regex, folded: &str) -> usize {
    regex.find(folded).map_or(folded.len(), |m| m.start())
}

/// Where the earliest unfinished phrase may start in `folded`: the first word start whose tail
/// is the beginning of (or equal to) one of `phrases` (sorted, folded) for which `enabled` holds.
pub fn phrase_tail_start(
    phrases: &[(String, usize)],
    longest: usize,
    folded: &str,
    enabled: impl Fn(usize) -> bool,
) -> usize {
    let from = folded.len().saturating_sub(longest);
    for (at, _) in folded.char_indices() {
        if at < from {
            continue;
        }
        let Some(tail) = folded.get(at..) else {
            continue;
        };
        if tail.starts_with(' ') {
            continue;
        }
        let first = phrases.partition_point(|(p, _)| p.as_str() < tail);
        let viable = phrases
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|(p, _)| p.starts_with(tail))
            .any(|(_, rule)| enabled(*rule));
        if viable {
            return at;
        }
    }
    folded.len()
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{phrase_tail_start, regex_tail_start, tail_regex};
    use crate::guardrails::detectors::BUILTINS;

    #[test]
    fn the_tail_starts_where_a_match_could_still_be_unfinished() {
        let regex = tail_regex(BUILTINS.iter().map(|b| b.pattern)).unwrap();
        let tail = |text: &str| {
            text.get(regex_tail_start(&regex, text)..)
                .unwrap()
                .to_owned()
        };
        // A partial word could still become an address or a key.
        assert_eq!(tail("hello there my fri"), "fri");
        assert_eq!(tail("hello there "), "");
        assert_eq!(tail("write to bob@exam"), "bob@exam");
        assert_eq!(tail("write to bob@example.com"), "bob@example.com");
        assert_eq!(tail("write to bob@example.com, "), "");
        // Digit groups separated by spaces could still be a card or a phone number.
        assert_eq!(tail("card 4111 1111 11"), "4111 1111 11");
        assert_eq!(tail("call +1 415 "), "+1 415 ");
        assert_eq!(tail("key: -----begin rsa pri"), "-----begin rsa pri");
        assert_eq!(tail("ok. "), "");
    }

    #[test]
    fn user_patterns_get_their_prefixes_too() {
        let regex = tail_regex([r"build (?:a|an) (?:bomb|explosive)", r"\bfoo\d{3}\b"]).unwrap();
        let tail = |text: &str| {
            text.get(regex_tail_start(&regex, text)..)
                .unwrap()
                .to_owned()
        };
        assert_eq!(tail("how to build an ex"), "build an ex");
        assert_eq!(tail("how to build a house "), "");
        assert_eq!(tail("x foo12"), "foo12");
    }

    #[test]
    fn phrases_are_held_while_they_could_still_complete() {
        let mut phrases = vec![
            ("ignore all previous instructions".to_owned(), 1),
            ("pipe bomb".to_owned(), 2),
        ];
        phrases.sort();
        let longest = 40;
        let at = |text: &str, rule| phrase_tail_start(&phrases, longest, text, |r| r == rule);
        assert_eq!(at("please ignore all pre", 1), "please ".len());
        assert_eq!(
            at("please ignore all pre", 2),
            "please ignore all pre".len()
        );
        assert_eq!(at("a pipe bomb", 2), 2);
        assert_eq!(at("a pipe bombs", 2), "a pipe bombs".len());
        assert_eq!(at("a pipe ", 2), 2);
    }
}
