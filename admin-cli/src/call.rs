//! One admin API request, described before it is sent: what each command asks for is a plain
//! value the tests compare, and the client is the only code that talks HTTP.

use reqwest::Method;
use serde::Serialize;

use crate::failure::Failure;

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    /// The path under `admin::PREFIX`, its segments percent-encoded: `/tenants/acme`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// Ask for CSV (`spend --format csv`) instead of JSON.
    pub csv: bool,
}

impl Call {
    /// A call of `method` on the path made of `segments` (each encoded).
    pub fn new(method: Method, segments: &[&str]) -> Self {
        Self {
            method,
            path: path(segments),
            query: Vec::new(),
            body: None,
            csv: false,
        }
    }

    pub fn with_body<T: Serialize>(mut self, body: &T) -> Result<Self, Failure> {
        let body = serde_json::to_value(body)
            .map_err(|err| Failure::Other(format!("encoding the request: {err}")))?;
        self.body = Some(body);
        Ok(self)
    }

    /// Adds `name=value` to the query when `value` is given.
    pub fn with_query(mut self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.into()));
        }
        self
    }
}

/// `/a/b/...`, each segment percent-encoded so that any name, however odd, reaches the service
/// as one segment (the service decides whether it is a valid name, not the URL parser). Bytes
/// outside RFC 3986's unreserved set and `:` are encoded, and so are the dots of `.` and `..`,
/// which would otherwise be read as "this" and "the parent" path.
pub fn path(segments: &[&str]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        let dots_only = !segment.is_empty() && segment.bytes().all(|byte| byte == b'.');
        for byte in segment.bytes() {
            let plain = byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'_' | b'~' | b':')
                || (byte == b'.' && !dots_only);
            if plain {
                path.push(char::from(byte));
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn names_are_one_segment_each_whatever_they_hold() {
        assert_eq!(
            path(&["tenants", "acme.prod:eu-1"]),
            "/tenants/acme.prod:eu-1"
        );
        assert_eq!(path(&["tenants", "a/b"]), "/tenants/a%2Fb");
        assert_eq!(
            path(&["tenants", "bad name?x=1#y"]),
            "/tenants/bad%20name%3Fx%3D1%23y"
        );
        assert_eq!(path(&["tenants", ".."]), "/tenants/%2E%2E");
        assert_eq!(path(&["tenants", "."]), "/tenants/%2E");
        assert_eq!(path(&["tenants", "é"]), "/tenants/%C3%A9");
        assert_eq!(path(&["keys", "key_1", "rotate"]), "/keys/key_1/rotate");
    }
}
