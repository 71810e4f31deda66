//! Where in a JSON document a serde_json error happened, as a path like `routing.pools[2].name`.
//!
//! serde_json reports a line and a column; the reader wants the field. Walking the text up to
//! that position gives it without wrapping every `Deserialize` impl in a path tracker, which is
//! what a generic tracker does and what cost the `.wasm` about 200 KB of monomorphized code.
//! The walk runs only when an error is reported, so the happy path pays nothing.

/// One open array or object on the way to the error.
enum Frame {
    Object {
        /// The member being read (the last key seen).
        key: Option<String>,
        /// Between `{`/`,` and `:`: the next string is a key.
        expect_key: bool,
    },
    Array {
        index: usize,
        /// Whether any byte of the element at `index` has been seen.
        started: bool,
    },
}

/// The path of the value being read when serde_json stopped at `line`:`column` (1-based, as
/// `serde_json::Error` reports them) in `text`; `.` for the document itself.
pub fn path_at(text: &[u8], line: usize, column: usize) -> String {
    render(&frames_until(text, end_offset(text, line, column)))
}

/// The byte offset just past the byte at `line`:`column`.
fn end_offset(text: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match memchr::memchr(b'\n', text.get(start..).unwrap_or_default()) {
            Some(at) => start = start.saturating_add(at).saturating_add(1),
            None => return text.len(),
        }
    }
    start.saturating_add(column).min(text.len())
}

fn frames_until(text: &[u8], end: usize) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut bytes = text.get(..end).unwrap_or(text).iter();
    while let Some(&byte) = bytes.next() {
        if !byte.is_ascii_whitespace() && byte != b']' {
            if let Some(Frame::Array { started, .. }) = frames.last_mut() {
                *started = true;
            }
        }
        match byte {
            b'{' => frames.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' => frames.push(Frame::Array {
                index: 0,
                started: false,
            }),
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index, started }) => {
                    *index = index.saturating_add(1);
                    *started = false;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = frames.last_mut() {
                    *expect_key = false;
                }
            }
            b'"' => {
                let string = read_string(&mut bytes);
                if let Some(Frame::Object {
                    key,
                    expect_key: true,
                }) = frames.last_mut()
                {
                    *key = Some(string);
                }
            }
            _ => {}
        }
    }
    frames
}

/// Reads a string's contents after its opening quote, up to the closing quote or the end.
/// Escapes other than `\"` and `\\` are kept as written: keys rarely have them, and the path is
/// for people.
fn read_string(bytes: &mut std::slice::Iter<'_, u8>) -> String {
    let mut out = Vec::new();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'"' => break,
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => out.push(escaped),
                Some(&other) => out.extend_from_slice(&[b'\\', other]),
                None => break,
            },
            _ => out.push(byte),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn render(frames: &[Frame]) -> String {
    let mut path = String::new();
    for frame in frames {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array {
                index,
                started: true,
            } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
            _ => {}
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::path_at;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: Option<String>,
        limits: Option<Vec<Limit>>,
        nested: Option<Nested>,
        kind: Option<Kind>,
        pairs: Option<Vec<Vec<u32>>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limit {
        rpm: u32,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        inner: Option<Box<Nested>>,
        value: Option<u8>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Open,
        Closed,
    }

    /// The path serde_path_to_error (a dev-dependency) computes by tracking the deserializer,
    /// and the one computed here from the error's position.
    fn both(text: &str) -> (String, String) {
        let mut de = serde_json::Deserializer::from_str(text);
        let tracked = serde_path_to_error::deserialize::<_, Doc>(&mut de)
            .err()
            .map(|err| err.path().to_string())
            .unwrap_or_default();
        let err = serde_json::from_str::<Doc>(text).unwrap_err();
        (tracked, path_at(text.as_bytes(), err.line(), err.column()))
    }

    #[test]
    fn paths_match_a_tracking_deserializer() {
        let cases = [
            r#"{"name": 5}"#,
            r#"{"nmae": "x"}"#,
            r#"{"limits": [{"rpm": 1}, {"rpm": "x"}]}"#,
            r#"{"limits": [{"rpm": 1}, {"rpm": 2, "tgs": []}]}"#,
            r#"{"limits": [{"rpm": 1}, {"tags": ["a", 3], "rpm": 2}]}"#,
            r#"{"limits": [{"rpm": 1}, {}]}"#,
            r#"{"limits": {"rpm": 1}}"#,
            r#"{"nested": {"inner": {"inner": {"value": 300}}}}"#,
            r#"{"nested": {"inner": {"inner": {"valeu": 3}}}}"#,
            r#"{"kind": "half_open"}"#,
            r#"{"kind": 1}"#,
            r#"{"pairs": [[1, 2], [3, -4]]}"#,
            r#"{"name": "a\"b", "limits": [{"rpm": 1.5}]}"#,
            "{\n  \"name\": \"x\",\n  \"limits\": [\n    {\"rpm\": true}\n  ]\n}",
            "{\n  \"nested\": {\n    \"value\": \"big\"\n  }\n}",
            r#"[1]"#,
        ];
        for case in cases {
            let (tracked, walked) = both(case);
            assert_eq!(walked, tracked, "{case}");
        }
    }

    #[test]
    fn truncated_and_garbled_text_still_gives_a_path() {
        assert_eq!(path_at(br#"{"a": [1, {"b": "#, 1, 16), "a[1].b");
        assert_eq!(path_at(b"", 1, 1), ".");
        assert_eq!(path_at(br#"{"name": "x"} trailing"#, 1, 16), ".");
        assert_eq!(path_at(b"]]}}", 1, 4), ".");
        assert_eq!(path_at(br#"{"a": 1}"#, 9, 9), ".");
        assert_eq!(path_at(br#"{"k\\": 1, "#, 1, 8), "k\\");
    }
}
