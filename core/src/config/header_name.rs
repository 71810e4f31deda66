use std::fmt;

/// A request header name the filter owns: a valid HTTP field name, lowercased (Envoy and HTTP/2
/// use lowercase), and not one whose meaning Envoy or the client already defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(String);

/// Headers that carry framing, identity or credentials. Letting the filter overwrite them by
/// configuration would break requests or leak keys, so they cannot be chosen as internal headers.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
];

impl HeaderName {
    /// Validates `raw` and returns its lowercase form, or a message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if raw.len() > 128 {
            return Err("must be at most 128 characters".to_owned());
        }
        if let Some(bad) = raw.chars().find(|c| !is_token_char(*c)) {
            return Err(format!(
                "{raw:?} is not a valid header name: {bad:?} is not allowed"
            ));
        }
        let name = raw.to_ascii_lowercase();
        if RESERVED.contains(&name.as_str()) {
            return Err(format!("{name:?} is reserved and cannot be used"));
        }
        Ok(Self(name))
    }

    /// A header that carries an upstream credential: any valid name, `authorization` and
    /// `x-api-key` included, but not one that frames the request.
    pub fn parse_credential(raw: &str) -> Result<String, String> {
        let name = raw.to_ascii_lowercase();
        match name.as_str() {
            "authorization" | "x-api-key" | "proxy-authorization" => Ok(name),
            _ => Self::parse(raw).map(|h| h.0),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 9110 `tchar`. Leading `:` (pseudo-headers) is therefore rejected too.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::HeaderName;

    #[test]
    fn lowercases_valid_names() {
        let name = HeaderName::parse("X-Sluice-Model").unwrap();
        assert_eq!(name.as_str(), "x-sluice-model");
    }

    #[test]
    fn rejects_empty_spaces_pseudo_and_reserved_names() {
        assert_eq!(HeaderName::parse("").unwrap_err(), "must not be empty");
        assert!(HeaderName::parse("x model").unwrap_err().contains("' '"));
        assert!(HeaderName::parse(":path").unwrap_err().contains("':'"));
        assert!(HeaderName::parse("x-modél").is_err());
        assert!(
            HeaderName::parse("Authorization")
                .unwrap_err()
                .contains("reserved")
        );
        assert!(HeaderName::parse(&"a".repeat(129)).is_err());
    }
}
