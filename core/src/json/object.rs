use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error_path::path_at;

/// Why the body or one of its fields could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// The body is not a JSON object (syntax error, wrong top-level type, duplicate key...).
    Body(String),
    /// A field is present but unusable; `path` is like `messages[2].content`.
    Invalid { path: String, message: String },
    /// A required field is absent (or `null`).
    Missing(&'static str),
}

/// The body's top-level object: every member as its raw JSON text, in order.
#[derive(Debug)]
pub struct TopLevel<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Deepest nesting of arrays and objects a body may have, the top-level object included. Tool
/// schemas nest a dozen levels at most; serde_json's own limit (128) only guards fields the filter
/// parses, not the ones it passes on raw.
pub const MAX_DEPTH: usize = 64;

impl<'a> TopLevel<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, FieldError> {
        if nesting_exceeds(body, MAX_DEPTH) {
            return Err(FieldError::Body(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        serde_json::from_slice(body).map_err(|err| FieldError::Body(without_position(&err)))
    }

    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, raw)| *raw)
    }

    /// The members' keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Where `key`'s value lies in `body`, the bytes this object was parsed from (for a
    /// byte-range `Edit`); `None` when there is no such member or `body` is another text.
    pub fn value_range(&self, key: &str, body: &[u8]) -> Option<Range<usize>> {
        let value = self.raw(key)?.get();
        // The raw value borrows from the parsed bytes: its offset is the distance between the
        // two addresses, checked against `body` before use.
        let start = (value.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        let end = start.checked_add(value.len())?;
        (body.get(start..end)? == value.as_bytes()).then_some(start..end)
    }

    /// Reads an optional field; JSON `null` counts as absent.
    pub fn get<T: Deserialize<'a>>(&self, key: &'static str) -> Result<Option<T>, FieldError> {
        let Some(raw) = self.raw(key) else {
            return Ok(None);
        };
        if raw.get() == "null" {
            return Ok(None);
        }
        serde_json::from_str(raw.get()).map(Some).map_err(|err| {
            let inner_path = path_at(raw.get().as_bytes(), err.line(), err.column());
            let path = if inner_path == "." {
                key.to_owned()
            } else if inner_path.starts_with('[') {
                format!("{key}{inner_path}")
            } else {
                format!("{key}.{inner_path}")
            };
            FieldError::Invalid {
                path,
                message: without_position(&err),
            }
        })
    }

    pub fn require<T: Deserialize<'a>>(&self, key: &'static str) -> Result<T, FieldError> {
        self.get(key)?.ok_or(FieldError::Missing(key))
    }

    /// The object again, with `key`'s value replaced by `raw_value` (valid JSON text). Other
    /// members keep their exact bytes and order.
    pub fn with_replaced(&self, key: &str, raw_value: &str) -> Vec<u8> {
        self.with_fields(&[(key, raw_value)])
    }

    /// The object again with each `(key, raw_value)` of `changes` replacing that member, or
    /// appended when the object has none. Other members keep their exact bytes and order.
    pub fn with_fields(&self, changes: &[(&str, &str)]) -> Vec<u8> {
        self.rebuild(changes, |out, value| {
            out.extend_from_slice(value.as_bytes())
        })
    }

    /// The object as `with_fields` writes it (members joined without whitespace, in order,
    /// `changes` replacing or appended), each value, kept or new, written by `write`: one pass
    /// over the members, whatever else changes inside the values.
    pub fn rebuild(
        &self,
        changes: &[(&str, &str)],
        mut write: impl FnMut(&mut Vec<u8>, &str),
    ) -> Vec<u8> {
        let extra = changes
            .iter()
            .map(|(k, v)| k.len().saturating_add(v.len()).saturating_add(4))
            .fold(2, usize::saturating_add);
        let capacity = self
            .fields
            .iter()
            .map(|(k, v)| k.len().saturating_add(v.get().len()).saturating_add(4))
            .fold(extra, usize::saturating_add);
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        let mut member = |out: &mut Vec<u8>, key: &str, value: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            write(out, value);
        };
        for (k, v) in &self.fields {
            let value = changes
                .iter()
                .find(|(key, _)| *key == k.as_ref())
                .map_or(v.get(), |(_, value)| *value);
            member(&mut out, k, value);
        }
        for (key, value) in changes {
            if self.raw(key).is_none() {
                member(&mut out, key, value);
            }
        }
        out.push(b'}');
        out
    }
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(TopLevel { fields })
    }
}

/// Whether arrays and objects in `body` nest deeper than `max`. Brackets inside strings do not
/// count; string contents are skipped with `memchr`, so the scan costs little next to parsing.
/// Malformed JSON is left for the parser to report.
fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let mut depth: usize = 0;
    let mut rest = body;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'"' => {
                // Skip to the closing quote, stepping over escapes.
                loop {
                    let Some(at) = memchr::memchr2(b'"', b'\\', rest) else {
                        return false;
                    };
                    match rest.get(at..).unwrap_or_default().split_first() {
                        Some((b'\\', escaped)) => rest = escaped.get(1..).unwrap_or_default(),
                        Some((_, closed)) => {
                            rest = closed;
                            break;
                        }
                        None => return false,
                    }
                }
            }
            b'[' | b'{' => {
                depth = depth.saturating_add(1);
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// What a client is told about a JSON syntax or type error. serde_json appends "at line L column
/// C"; inside a field that position is relative to the field, which would mislead, and for the
/// body the path already says where, so it is dropped.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) if err.line() > 0 => text.get(..at).unwrap_or(&text).to_owned(),
        _ => text,
    };
    renamed(&text).map_or(text, str::to_owned)
}

/// serde_json's words for an unpaired UTF-16 surrogate escape describe how its parser noticed,
/// not what is wrong: `"\ud800"` followed by anything but a `\u` escape is reported as
/// "unexpected end of hex escape", and a lone `"\udc00"` as a "leading" surrogate. Both only
/// arise from an unpaired surrogate (a short or non-hex escape has errors of its own).
fn renamed(message: &str) -> Option<&'static str> {
    match message {
        "unexpected end of hex escape" | "lone leading surrogate in hex escape" => Some(
            "lone UTF-16 surrogate in a \\u escape: \\uD800-\\uDBFF must be followed by a \\uDC00-\\uDFFF escape, and \\uDC00-\\uDFFF may not stand alone",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::borrow::Cow;

    use super::{FieldError, TopLevel};

    #[test]
    fn keeps_fields_in_order_and_replaces_one() {
        let body = br#"{ "model" : "a",  "messages":[ {"role":"user"} ], "x": 1.50 }"#;
        let top = TopLevel::parse(body).unwrap();
        assert_eq!(top.raw("x").unwrap().get(), "1.50");
        let out = top.with_replaced("model", r#""b""#);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"b","messages":[ {"role":"user"} ],"x":1.50}"#
        );
    }

    #[test]
    fn keys_in_order_and_where_values_lie() {
        let body = br#"{ "model" : "a\"b",  "n":1, "x": {"y": [2]} }"#;
        let top = TopLevel::parse(body).unwrap();
        assert_eq!(top.keys().collect::<Vec<_>>(), ["model", "n", "x"]);
        let range = top.value_range("model", body).unwrap();
        assert_eq!(&body[range], br#""a\"b""#);
        let range = top.value_range("x", body).unwrap();
        assert_eq!(&body[range], br#"{"y": [2]}"#);
        assert_eq!(top.value_range("absent", body), None);
        // Another text than the one parsed has no ranges.
        let copy = body.to_vec();
        assert_eq!(top.value_range("model", &copy), None);
    }

    #[test]
    fn fields_are_replaced_or_appended() {
        let top = TopLevel::parse(br#"{"model":"a","stream":true}"#).unwrap();
        let out = top.with_fields(&[("model", r#""b""#), ("stream_options", r#"{"x":1}"#)]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"b","stream":true,"stream_options":{"x":1}}"#
        );
    }

    #[test]
    fn escaped_keys_survive_reassembly() {
        let top = TopLevel::parse(br#"{"a\"b":1,"model":"m"}"#).unwrap();
        let out = top.with_replaced("model", r#""n""#);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a\"b":1,"model":"n"}"#);
    }

    #[test]
    fn typed_fields_and_paths() {
        let top =
            TopLevel::parse(br#"{"n": 3, "s": "x", "list": [{"v": 1}, {"v": "bad"}], "z": null}"#)
                .unwrap();
        assert_eq!(top.get::<u64>("n").unwrap(), Some(3));
        assert_eq!(top.get::<Cow<'_, str>>("s").unwrap().as_deref(), Some("x"));
        assert_eq!(top.get::<u64>("absent").unwrap(), None);
        assert_eq!(top.get::<u64>("z").unwrap(), None);
        assert_eq!(
            top.require::<u64>("z").unwrap_err(),
            FieldError::Missing("z")
        );

        #[derive(serde::Deserialize, Debug)]
        struct Item {
            #[allow(dead_code)]
            v: u64,
        }
        let err = top.get::<Vec<Item>>("list").unwrap_err();
        assert_eq!(
            err,
            FieldError::Invalid {
                path: "list[1].v".into(),
                message: "invalid type: string \"bad\", expected u64".into()
            }
        );
        let err = top.get::<u64>("s").unwrap_err();
        assert!(
            matches!(err, FieldError::Invalid { ref path, .. } if path == "s"),
            "{err:?}"
        );
    }

    #[test]
    fn pathological_bodies_are_errors_not_panics() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"[]".to_vec(),
            b"\"model\"".to_vec(),
            b"{\"model\":\"a\",\"model\":\"b\"}".to_vec(),
            b"{\"model\":\"\xff\xfe\"}".to_vec(),
            b"{\"model\":\"a\"".to_vec(),
            b"{\"model\":\"a\"} trailing".to_vec(),
            deep.into_bytes(),
        ];
        for body in cases {
            assert!(
                matches!(TopLevel::parse(&body), Err(FieldError::Body(_))),
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
        let huge =
            TopLevel::parse(br#"{"max_tokens": 1e400, "n": 123456789012345678901234567890}"#);
        let top = huge.unwrap();
        assert!(top.get::<u64>("n").is_err());
        assert!(top.get::<u64>("max_tokens").is_err());
    }

    #[test]
    fn depth_is_limited_and_strings_do_not_count() {
        let nested = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(TopLevel::parse(nested(super::MAX_DEPTH - 1).as_bytes()).is_ok());
        let err = TopLevel::parse(nested(super::MAX_DEPTH).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            FieldError::Body("nesting deeper than 64 levels".into())
        );
        let brackets_in_strings =
            format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(TopLevel::parse(brackets_in_strings.as_bytes()).is_ok());
    }

    #[test]
    fn duplicate_keys_are_named() {
        let err = TopLevel::parse(br#"{"model":"a","stream":true,"model":"b"}"#).unwrap_err();
        assert_eq!(err, FieldError::Body("duplicate key `model`".into()));
    }

    #[test]
    fn unpaired_surrogates_are_named_as_such() {
        let lone = "lone UTF-16 surrogate in a \\u escape";
        for body in [
            r#"{"model":"\ud800"}"#,
            r#"{"model":"\ud800x"}"#,
            r#"{"model":"\ud800\n"}"#,
            r#"{"model":"\udc00"}"#,
            r#"{"model":"\ud800\u0041"}"#,
        ] {
            let top = TopLevel::parse(body.as_bytes());
            let message = match top {
                Err(FieldError::Body(message)) => message,
                Ok(top) => match top.get::<String>("model") {
                    Err(FieldError::Invalid { message, .. }) => message,
                    other => panic!("{body}: {other:?}"),
                },
                Err(other) => panic!("{body}: {other:?}"),
            };
            assert!(message.starts_with(lone), "{body}: {message}");
        }
        // A pair is one character; short or non-hex escapes keep serde_json's own words.
        let top = TopLevel::parse(r#"{"model":"\ud83d\ude00"}"#.as_bytes()).unwrap();
        assert_eq!(
            top.get::<String>("model").unwrap().as_deref(),
            Some("\u{1f600}")
        );
        for body in [r#"{"model":"\ud8"}"#, r#"{"model":"\uzzzz"}"#] {
            let err = TopLevel::parse(body.as_bytes())
                .and_then(|top| top.get::<String>("model").map(|_| ()));
            let text = format!("{err:?}");
            assert!(!text.contains("surrogate"), "{body}: {text}");
        }
    }
}
