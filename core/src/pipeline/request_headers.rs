//! The request headers as Envoy hands them over in one host call. Reading the whole map once is
//! cheaper than asking for each header: every host call crosses the Wasm boundary, and every value
//! returned crosses it again to allocate guest memory (measured in BENCHMARKS.md's profile).

use super::headers::RequestHead;

pub struct RequestHeaders {
    pairs: Vec<(String, String)>,
}

impl RequestHeaders {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name`. Envoy gives names in lower case (HTTP/2 and HTTP/3 require it,
    /// and its HTTP/1 codec folds them); they are still compared without regard to case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// What the headers-phase decision reads.
    pub fn head(&self, end_of_stream: bool) -> RequestHead<'_> {
        RequestHead {
            method: self.get(":method").unwrap_or_default(),
            path: self.get(":path").unwrap_or_default(),
            content_type: self.get("content-type"),
            content_length: self.get("content-length"),
            anthropic_version: self.contains("anthropic-version"),
            end_of_stream,
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::RequestHeaders;

    fn headers(pairs: &[(&str, &str)]) -> RequestHeaders {
        RequestHeaders::new(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_head_comes_from_one_map() {
        let map = headers(&[
            (":method", "POST"),
            (":path", "/v1/messages"),
            ("content-type", "application/json"),
            ("Content-Length", "12"),
            ("anthropic-version", "2023-06-01"),
        ]);
        let head = map.head(false);
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/v1/messages");
        assert_eq!(head.content_type, Some("application/json"));
        assert_eq!(head.content_length, Some("12"), "any case");
        assert!(head.anthropic_version);
        assert!(!head.end_of_stream);
    }

    #[test]
    fn missing_headers_read_as_absent_and_the_first_copy_wins() {
        let map = headers(&[("x-a", "1"), ("x-a", "2")]);
        assert_eq!(map.get("x-a"), Some("1"));
        assert!(!map.contains("x-b"));
        let head = map.head(true);
        assert_eq!((head.method, head.path), ("", ""));
        assert_eq!(head.content_type, None);
        assert!(!head.anthropic_version);
        assert!(head.end_of_stream);
    }
}
