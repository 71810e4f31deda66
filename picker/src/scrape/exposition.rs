//! A reader for the Prometheus text exposition format (0.0.4), as the model servers write it.
//!
//! Written here rather than taken from crates.io: the crates that parse this format either reject
//! metric names with `:` (every vLLM and SGLang name) or split label values on commas (vLLM's
//! `running_lora_adapters="a,b"`), or copy every name, label and value into owned strings. The
//! picker reads ~20 KB pages from every endpoint many times a second and needs a handful of series
//! from each, so this reader is lazy and borrows: `lines` finds each sample's name and nothing
//! more; only the lines the caller asks about are parsed further, and label values are copied
//! only when they contain escapes.
//!
//! A malformed line is an error for that line only; the caller decides what it means.

use std::borrow::Cow;

/// Why one line is not a valid sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    Name,
    Labels,
    Value,
    Timestamp,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Name => "invalid metric name",
            Self::Labels => "invalid labels",
            Self::Value => "invalid value",
            Self::Timestamp => "invalid timestamp",
        })
    }
}

/// A sample line whose name is known and whose rest is not parsed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLine<'a> {
    pub name: &'a str,
    /// Everything after the name: `{labels} value [timestamp]`.
    rest: &'a str,
}

/// One parsed sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// The text between the braces, validated; read it with `labels()` or `label()`.
    labels: &'a str,
    /// May be NaN or infinite: the format allows both.
    pub value: f64,
}

/// The sample lines of `text`, in order; comments and blank lines are skipped.
pub fn lines(text: &str) -> impl Iterator<Item = Result<SampleLine<'_>, LineError>> {
    // Consecutive samples mostly share their name (a histogram's buckets): trying the previous
    // name first is one short memcmp instead of a byte-by-byte scan, and halves the time to
    // read a vLLM page.
    let mut previous = "";
    split_lines(text).filter_map(move |line| {
        let line = line.trim_matches(is_space_or_cr);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let same_name = !previous.is_empty()
            && line.starts_with(previous)
            && !line
                .as_bytes()
                .get(previous.len())
                .is_some_and(|b| is_name_byte(*b));
        let end = if same_name {
            previous.len()
        } else {
            name_len(line)
        };
        if end == 0 {
            return Some(Err(LineError::Name));
        }
        let (name, rest) = line.split_at(end);
        previous = name;
        Some(Ok(SampleLine { name, rest }))
    })
}

/// `text.split('\n')`, with a vectorized search for the newlines: splitting is the one pass
/// over every byte of every page.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current.as_bytes()) {
            // A newline is ASCII, so both sides of it are on character boundaries.
            Some(at) => {
                rest = current.get(at + 1..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

impl<'a> SampleLine<'a> {
    pub fn parse(&self) -> Result<Sample<'a>, LineError> {
        // The name must be followed by labels or whitespace: `foo-bar 1` is not `foo`.
        if !(self.rest.is_empty() || self.rest.starts_with(['{', ' ', '\t'])) {
            return Err(LineError::Name);
        }
        let mut rest = self.rest.trim_start_matches(is_space);
        let mut labels = "";
        if let Some(after_brace) = rest.strip_prefix('{') {
            let end = labels_len(after_brace)?;
            labels = after_brace.get(..end).ok_or(LineError::Labels)?;
            rest = after_brace.get(end + 1..).ok_or(LineError::Labels)?;
        }
        let mut fields = rest.split(is_space).filter(|field| !field.is_empty());
        let value = fields
            .next()
            .and_then(parse_float)
            .ok_or(LineError::Value)?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().map_err(|_| LineError::Timestamp)?;
        }
        if fields.next().is_some() {
            return Err(LineError::Timestamp);
        }
        Ok(Sample {
            name: self.name,
            labels,
            value,
        })
    }
}

impl<'a> Sample<'a> {
    /// The labels as `(name, value)` pairs, escapes resolved.
    pub fn labels(&self) -> Labels<'a> {
        Labels { rest: self.labels }
    }

    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<Cow<'a, str>> {
        self.labels()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// Iterates over validated label text (see `labels_len`).
pub struct Labels<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self
            .rest
            .trim_start_matches(|c: char| is_space(c) || c == ',');
        let (key, after_key) = rest.split_once('=')?;
        let after_quote = after_key.trim_start_matches(is_space).strip_prefix('"')?;
        let (raw, end) = quoted_len(after_quote).ok()?;
        self.rest = after_quote.get(end + 1..)?;
        let value = match raw {
            Quoted::Plain(len) => Cow::Borrowed(after_quote.get(..len)?),
            Quoted::Escaped => Cow::Owned(unescape(after_quote.get(..end)?)),
        };
        Some((key.trim_matches(is_space), value))
    }
}

/// Prometheus' float syntax is Go's ParseFloat, with `NaN`, `+Inf` and `-Inf`. Rust's parser reads
/// the same spellings (case-insensitively, plus `infinity`) and rejects garbage without panicking.
fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_space_or_cr(c: char) -> bool {
    is_space(c) || c == '\r'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Length of the metric name at the start of `line`: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn name_len(line: &str) -> usize {
    let bytes = line.as_bytes();
    match bytes.first() {
        Some(b) if is_name_byte(*b) && !b.is_ascii_digit() => {}
        _ => return 0,
    }
    bytes
        .iter()
        .position(|b| !is_name_byte(*b))
        .unwrap_or(bytes.len())
}

/// Checks `key="value",...}` and returns the index of the closing brace.
fn labels_len(text: &str) -> Result<usize, LineError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        i = skip_spaces(bytes, i);
        match bytes.get(i) {
            Some(b'}') => return Ok(i),
            Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
            _ => return Err(LineError::Labels),
        }
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        i = skip_spaces(bytes, i);
        if bytes.get(i) != Some(&b'=') {
            return Err(LineError::Labels);
        }
        i = skip_spaces(bytes, i + 1);
        if bytes.get(i) != Some(&b'"') {
            return Err(LineError::Labels);
        }
        let value = text.get(i + 1..).ok_or(LineError::Labels)?;
        let (_, end) = quoted_len(value)?;
        i = skip_spaces(bytes, i + 1 + end + 1);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i),
            _ => return Err(LineError::Labels),
        }
    }
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

enum Quoted {
    /// No escapes: the value is the first `len` bytes.
    Plain(usize),
    Escaped,
}

/// Finds the closing quote of a label value that starts right after its opening quote; returns
/// whether it has escapes and the index of the closing quote.
fn quoted_len(text: &str) -> Result<(Quoted, usize), LineError> {
    let bytes = text.as_bytes();
    let mut escaped = false;
    let mut i = 0;
    while let Some(b) = bytes.get(i) {
        match b {
            b'"' => {
                let kind = if escaped {
                    Quoted::Escaped
                } else {
                    Quoted::Plain(i)
                };
                return Ok((kind, i));
            }
            b'\\' => {
                if !matches!(bytes.get(i + 1), Some(b'\\' | b'"' | b'n')) {
                    return Err(LineError::Labels);
                }
                escaped = true;
                i += 2;
            }
            b'\n' => return Err(LineError::Labels),
            _ => i += 1,
        }
    }
    Err(LineError::Labels)
}

/// Resolves `\\`, `\"` and `\n` (the only escapes the format has; others were rejected).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{LineError, Sample, lines};

    fn parse_all(text: &str) -> Vec<Result<Sample<'_>, LineError>> {
        lines(text)
            .map(|line| line.and_then(|line| line.parse()))
            .collect()
    }

    fn one(text: &str) -> Sample<'_> {
        let mut all = parse_all(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0).unwrap()
    }

    #[test]
    fn reads_names_labels_values_and_timestamps() {
        let text = "# HELP vllm:num_requests_waiting Number of requests waiting.\n\
                    # TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n\
                    \n\
                    plain_total 17 1700000000000\n\
                    spaced { a = \"1\" , b=\"2\", } -2.5e-3\r\n";
        let samples: Vec<Sample<'_>> = parse_all(text).into_iter().map(Result::unwrap).collect();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "vllm:num_requests_waiting");
        assert_eq!(samples[0].value, 3.0);
        let labels: Vec<(&str, Cow<'_, str>)> = samples[0].labels().collect();
        assert_eq!(labels, [("engine", "0".into()), ("model_name", "m".into())]);
        assert_eq!(samples[1].name, "plain_total");
        assert_eq!(samples[1].value, 17.0);
        assert_eq!(samples[1].labels().count(), 0);
        assert_eq!(samples[2].label("a").as_deref(), Some("1"));
        assert_eq!(samples[2].label("b").as_deref(), Some("2"));
        assert_eq!(samples[2].value, -2.5e-3);
    }

    #[test]
    fn splits_lines_like_str_split() {
        for text in ["", "\n", "a", "a\n", "a\nb", "a\n\nb\n", "ü\nß\r\n\n"] {
            let ours: Vec<&str> = super::split_lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn names_that_extend_the_previous_one_are_read_whole() {
        let text = "a_bucket{le=\"1\"} 1\na_bucket{le=\"2\"} 2\na_bucket_x 3\na_bucket 4\na 5\nb:c 6\n9x 7\n";
        let names: Vec<Result<&str, LineError>> = lines(text).map(|l| l.map(|l| l.name)).collect();
        assert_eq!(
            names,
            [
                Ok("a_bucket"),
                Ok("a_bucket"),
                Ok("a_bucket_x"),
                Ok("a_bucket"),
                Ok("a"),
                Ok("b:c"),
                Err(LineError::Name),
            ]
        );
    }

    #[test]
    fn label_values_keep_commas_braces_and_resolve_escapes() {
        let sample = one(
            "vllm:lora_requests_info{running_lora_adapters=\"a,b\",odd=\"}{=,\",esc=\"say \\\"hi\\\"\\n\\\\\"} 1.7e9",
        );
        assert_eq!(
            sample.label("running_lora_adapters").as_deref(),
            Some("a,b")
        );
        assert_eq!(sample.label("odd").as_deref(), Some("}{=,"));
        assert_eq!(sample.label("esc").as_deref(), Some("say \"hi\"\n\\"));
        assert!(matches!(
            sample.label("running_lora_adapters"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(sample.label("missing"), None);
        assert_eq!(sample.value, 1.7e9);
    }

    #[test]
    fn special_and_extreme_values() {
        assert!(one("a NaN").value.is_nan());
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("a 1e308").value, 1e308);
        assert_eq!(one("a 1e999").value, f64::INFINITY);
        assert_eq!(
            one("a 123456789012345678901234567890").value,
            123456789012345678901234567890.0
        );
        assert_eq!(one("a{le=\"+Inf\"} 4").label("le").as_deref(), Some("+Inf"));
    }

    #[test]
    fn malformed_lines_are_errors_of_their_own() {
        let cases = [
            ("9lives 1", LineError::Name),
            ("{a=\"1\"} 1", LineError::Name),
            ("foo-bar 1", LineError::Name),
            ("a", LineError::Value),
            ("a abc", LineError::Value),
            ("a 1 2 3", LineError::Timestamp),
            ("a 1 1.5", LineError::Timestamp),
            ("a{b=\"1\" 1", LineError::Labels),
            ("a{b=1} 1", LineError::Labels),
            ("a{b=\"1} 1", LineError::Labels),
            ("a{b=\"\\x\"} 1", LineError::Labels),
            ("a{=\"1\"} 1", LineError::Labels),
            ("a{b=\"1\"c=\"2\"} 1", LineError::Labels),
            ("a{b=\"1\"}", LineError::Value),
        ];
        for (line, expected) in cases {
            let result = parse_all(line);
            assert_eq!(result, [Err(expected)], "{line:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let garbage = [
            "",
            "\n\n\n",
            "{{{{",
            "a{",
            "a{b",
            "a{b=",
            "a{b=\"",
            "a{b=\"\\",
            "a{b=\"\\\"",
            "\u{feff}a 1",
            "a{ü=\"1\"} 1",
            "a{b=\"ü\"} ü",
            "<html><body>502 Bad Gateway</body></html>",
            "\0\0\0\0",
        ];
        for text in garbage {
            for sample in parse_all(text).into_iter().flatten() {
                let _ = sample.labels().count();
            }
        }
        // Every prefix of a valid page.
        let page = "x{a=\"1\",b=\"q\\\"\"} 2 3\n# c\ny 1\n";
        for end in 0..=page.len() {
            if let Some(prefix) = page.get(..end) {
                for sample in parse_all(prefix).into_iter().flatten() {
                    let _ = sample.labels().count();
                }
            }
        }
    }
}
