//! Reading and redacting JSON text the model writes: tool-call arguments (`{"card": "4111
//! ..."}`, streamed in pieces as OpenAI `arguments` or Anthropic `partial_json`, whole as
//! Anthropic's `input`).
//!
//! The detectors read a decoded view of it: inside its strings, escapes are resolved (a PEM key
//! written with `\n`, an address with `\u0040`), everything else is read as it is. A finding
//! maps back to whole escapes and characters of the raw text, widened to whole bare tokens (a
//! card number written as a JSON number). A redaction keeps the text valid JSON: the part of a
//! finding inside strings becomes the placeholder, a bare token becomes the placeholder as a
//! string, and quotes and punctuation stay where they were.

use std::ops::Range;

/// Where a piece of JSON text starts: inside a string or not, inside an escape or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lexer {
    in_string: bool,
    /// 0: not in an escape; 1: after its backslash; 2 to 5: hex digits of `\u` still to come
    /// (5: four).
    escape: u8,
}

/// What one byte of JSON text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Outside strings: punctuation or whitespace.
    Structure,
    /// Outside strings: part of a number or literal (or anything else bare).
    Bare,
    /// A quote that opens or closes a string.
    Quote,
    /// Inside a string: the first byte of a character or of an escape.
    Content,
    /// Inside a string: a further byte of a character or an escape.
    Continuation,
}

impl Lexer {
    /// The class of byte `b` read in this state; moves past it.
    pub fn step(&mut self, b: u8) -> Class {
        if !self.in_string {
            return match b {
                b'"' => {
                    self.in_string = true;
                    Class::Quote
                }
                b'{' | b'}' | b'[' | b']' | b':' | b',' => Class::Structure,
                _ if b.is_ascii_whitespace() => Class::Structure,
                _ => Class::Bare,
            };
        }
        match self.escape {
            0 => match b {
                b'"' => {
                    self.in_string = false;
                    Class::Quote
                }
                b'\\' => {
                    self.escape = 1;
                    Class::Content
                }
                0x80..=0xBF => Class::Continuation,
                _ => Class::Content,
            },
            1 => {
                self.escape = if b == b'u' { 5 } else { 0 };
                Class::Continuation
            }
            n => {
                self.escape = if n <= 2 { 0 } else { n.saturating_sub(1) };
                Class::Continuation
            }
        }
    }

    /// The state after `text`.
    pub fn after(mut self, text: &[u8]) -> Self {
        for &b in text {
            self.step(b);
        }
        self
    }

    /// The class of every byte of `text` read from this state.
    pub fn classes(mut self, text: &[u8]) -> Vec<Class> {
        text.iter().map(|&b| self.step(b)).collect()
    }

    fn in_escape(self) -> bool {
        self.escape != 0
    }
}

/// Whether text may be cut at `at` without splitting an escape (or a character), and, with
/// `whole_tokens`, without splitting a bare token.
fn is_boundary(classes: &[Class], end_in_escape: bool, at: usize, whole_tokens: bool) -> bool {
    match classes.get(at) {
        None => at == classes.len() && !end_in_escape,
        Some(Class::Continuation) => false,
        Some(Class::Bare) if whole_tokens => {
            at == 0 || classes.get(at.wrapping_sub(1)) != Some(&Class::Bare)
        }
        Some(_) => true,
    }
}

/// The largest boundary at or before `at` (0 at worst).
pub fn floor_boundary(text: &str, start: Lexer, at: usize, whole_tokens: bool) -> usize {
    let classes = start.classes(text.as_bytes());
    let end_in_escape = start.after(text.as_bytes()).in_escape();
    let mut at = at.min(text.len());
    while at > 0
        && (!text.is_char_boundary(at) || !is_boundary(&classes, end_in_escape, at, whole_tokens))
    {
        at = at.saturating_sub(1);
    }
    at
}

/// The decoded view of a piece of JSON text and, per view byte, where its escape or character
/// starts in the raw text.
#[derive(Debug)]
pub struct View {
    pub text: String,
    origin: Vec<u32>,
    /// Raw bytes the view covers: an escape cut off at the end is left out.
    pub covered: usize,
}

impl View {
    pub fn new(raw: &str, start: Lexer) -> Self {
        let bytes = raw.as_bytes();
        let mut view = Self {
            text: String::with_capacity(raw.len()),
            origin: Vec::with_capacity(raw.len()),
            covered: 0,
        };
        let mut in_string = start.in_string;
        let mut at = 0usize;
        while at < bytes.len() {
            if in_string && bytes.get(at) == Some(&b'\\') {
                let Some((c, width)) = decode_escape(bytes, at) else {
                    break;
                };
                view.push(c, at);
                at = at.saturating_add(width);
                continue;
            }
            let Some(c) = raw.get(at..).and_then(|rest| rest.chars().next()) else {
                break;
            };
            if c == '"' {
                in_string = !in_string;
            }
            view.push(c, at);
            at = at.saturating_add(c.len_utf8());
        }
        view.covered = at;
        view
    }

    fn push(&mut self, c: char, at: usize) {
        self.text.push(c);
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        for _ in 0..c.len_utf8() {
            self.origin.push(at);
        }
    }

    /// The raw offset of view offset `at` (a character boundary of the view).
    pub fn raw_at(&self, at: usize) -> usize {
        self.origin
            .get(at)
            .and_then(|o| usize::try_from(*o).ok())
            .unwrap_or(self.covered)
    }

    /// The raw bytes view `range` came from: whole escapes and characters.
    pub fn raw_range(&self, range: Range<usize>) -> Range<usize> {
        self.raw_at(range.start)..self.raw_at(range.end)
    }
}

/// The character escape `bytes[at..]` (starting with its backslash) stands for, and its width;
/// `None` when the text ends before the escape does. Unknown escapes stand for their letter; a
/// lone surrogate for U+FFFD.
fn decode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let letter = *bytes.get(at.checked_add(1)?)?;
    let simple = match letter {
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(bytes, at.checked_add(2)?)?;
            let Some(high) = high else {
                return Some(('u', 2));
            };
            if !(0xD800..0xDC00).contains(&high) {
                return Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 6));
            }
            // A high surrogate: its low half may follow, or still be on its way.
            let next = at.checked_add(6)?;
            let rest = bytes.get(next..)?;
            let may_follow = rest.len() < 6 && b"\\u".starts_with(rest.get(..rest.len().min(2))?);
            if may_follow {
                return None;
            }
            if let (true, Some(Some(low))) =
                (rest.starts_with(b"\\u"), hex4(bytes, next.checked_add(2)?))
            {
                if (0xDC00..0xE000).contains(&low) {
                    let c = high
                        .checked_sub(0xD800)?
                        .checked_shl(10)?
                        .checked_add(low.checked_sub(0xDC00)?)?
                        .checked_add(0x10000)?;
                    return Some((char::from_u32(c).unwrap_or('\u{FFFD}'), 12));
                }
            }
            return Some(('\u{FFFD}', 6));
        }
        other => char::from(other),
    };
    Some((simple, 2))
}

/// Four hex digits at `at`: `None` when the text ends first, `Some(None)` when they are not
/// hex digits.
fn hex4(bytes: &[u8], at: usize) -> Option<Option<u32>> {
    let digits = bytes.get(at..at.checked_add(4)?).or_else(|| {
        // Fewer than four left: unfinished unless one already is not a hex digit.
        let rest = bytes.get(at..)?;
        if rest.iter().all(u8::is_ascii_hexdigit) {
            None
        } else {
            Some(rest)
        }
    })?;
    if digits.len() < 4 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Some(None);
    }
    let text = std::str::from_utf8(digits).ok()?;
    Some(u32::from_str_radix(text, 16).ok())
}

/// `range` of raw JSON text widened to whole bare tokens.
pub fn widen(classes: &[Class], range: Range<usize>) -> Range<usize> {
    let bare = |i: usize| classes.get(i) == Some(&Class::Bare);
    let mut start = range.start;
    while start > 0 && bare(start) && bare(start.saturating_sub(1)) {
        start = start.saturating_sub(1);
    }
    let mut end = range.end;
    while end > 0 && bare(end) && bare(end.saturating_sub(1)) {
        end = end.saturating_add(1);
    }
    start..end
}

/// Writes the redaction of raw JSON text `text[range]` (`classes` are its bytes'): each run of
/// string content becomes `placeholder`, each bare token `"placeholder"`; quotes and
/// punctuation stay.
pub fn write_redaction(
    out: &mut String,
    text: &str,
    classes: &[Class],
    range: Range<usize>,
    placeholder: &str,
) {
    let mut at = range.start;
    while at < range.end {
        let Some(&class) = classes.get(at) else {
            break;
        };
        let run_end = |same: &dyn Fn(Class) -> bool| {
            let mut end = at.saturating_add(1);
            while end < range.end && classes.get(end).is_some_and(|c| same(*c)) {
                end = end.saturating_add(1);
            }
            end
        };
        match class {
            Class::Content | Class::Continuation => {
                out.push_str(placeholder);
                at = run_end(&|c| matches!(c, Class::Content | Class::Continuation));
            }
            Class::Bare => {
                out.push('"');
                out.push_str(placeholder);
                out.push('"');
                at = run_end(&|c| c == Class::Bare);
            }
            Class::Quote | Class::Structure => {
                let next = at.saturating_add(1);
                out.push_str(text.get(at..next).unwrap_or_default());
                at = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Class, Lexer, View, floor_boundary, widen, write_redaction};

    #[test]
    fn the_view_decodes_escapes_inside_strings_only() {
        let raw = r#"{"k": "a\nb\u0040c\ud83d\ude00\"", "n": 12, "\\": "\q"}"#;
        let view = View::new(raw, Lexer::default());
        assert_eq!(
            view.text,
            "{\"k\": \"a\nb@c😀\"\", \"n\": 12, \"\\\": \"q\"}"
        );
        assert_eq!(view.covered, raw.len());
        // `@` came from `\u0040`: its raw range is the whole escape.
        let at = view.text.find('@').unwrap();
        assert_eq!(&raw[view.raw_range(at..at + 1)], r"\u0040");
        let smile = view.text.find('😀').unwrap();
        assert_eq!(&raw[view.raw_range(smile..smile + 4)], r"\ud83d\ude00");
    }

    #[test]
    fn an_escape_cut_off_at_the_end_is_not_in_the_view() {
        for (raw, covered) in [
            (r#"{"a": "x\"#, 8),
            (r#"{"a": "x\u00"#, 8),
            (r#"{"a": "x\ud83d"#, 8),
            (r#"{"a": "x\ud83d\"#, 8),
            (r#"{"a": "x\ud83d\ude0"#, 8),
            (r#"{"a": "x\ud83d!"#, 15),
        ] {
            assert_eq!(View::new(raw, Lexer::default()).covered, covered, "{raw}");
        }
        // Cuts never split an escape; with whole tokens, never a number either.
        let raw = r#"{"a": "x\u0040", "n": 4111}"#;
        let start = Lexer::default();
        assert_eq!(floor_boundary(raw, start, 10, false), 8);
        assert_eq!(floor_boundary(raw, start, 25, true), 22);
        assert_eq!(floor_boundary(raw, start, 25, false), 25);
        // A state carried over from earlier text: inside a string.
        let inside = start.after(br#"{"a": "abc"#);
        assert_eq!(View::new(r#"de\"f" }"#, inside).text, "de\"f\" }");
    }

    #[test]
    fn redactions_keep_the_json_valid() {
        let raw =
            r#"{"card": "pay 4111 1111 1111 1111\n", "n": 4111111111111111, "x": ["a", "b"]}"#;
        let classes = Lexer::default().classes(raw.as_bytes());
        let redact = |range: std::ops::Range<usize>| {
            let range = widen(&classes, range);
            let mut out = raw[..range.start].to_owned();
            write_redaction(&mut out, raw, &classes, range.clone(), "[X]");
            out.push_str(&raw[range.end..]);
            serde_json::from_str::<serde_json::Value>(&out)
                .unwrap_or_else(|e| panic!("{e}: {out}"));
            out
        };
        let card = raw.find("4111 ").unwrap();
        assert_eq!(
            redact(card..card + 19),
            r#"{"card": "pay [X]\n", "n": 4111111111111111, "x": ["a", "b"]}"#
        );
        // Part of a number: the whole number, as a string.
        let number = raw.find("4111111").unwrap();
        assert_eq!(
            redact(number + 2..number + 10),
            r#"{"card": "pay 4111 1111 1111 1111\n", "n": "[X]", "x": ["a", "b"]}"#
        );
        // Across strings: contents replaced, structure kept.
        let across = raw.find(r#"a", "b"#).unwrap();
        assert_eq!(
            redact(across..across + 6),
            r#"{"card": "pay 4111 1111 1111 1111\n", "n": 4111111111111111, "x": ["[X]", "[X]"]}"#
        );
        assert_eq!(
            Lexer::default().classes(b"1 \""),
            [Class::Bare, Class::Structure, Class::Quote]
        );
    }
}
