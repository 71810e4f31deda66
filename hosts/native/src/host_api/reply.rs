//! The answer a host gives when filter logic panicked: a 500 in the error format of the API the
//! client called, so its SDK reports a server error instead of failing to parse the body.

pub const INTERNAL_ERROR_STATUS: u16 = 500;

/// OpenAI's error object (also what every non-Anthropic path gets).
pub const OPENAI_INTERNAL_ERROR: &str = r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}"#;

/// Anthropic's error object.
pub const ANTHROPIC_INTERNAL_ERROR: &str =
    r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#;

/// The body of the internal-error answer for a request to `path` (`:path`, with any query).
pub fn internal_error_body(path: Option<&[u8]>) -> &'static str {
    if path.is_some_and(is_anthropic_messages) {
        ANTHROPIC_INTERNAL_ERROR
    } else {
        OPENAI_INTERNAL_ERROR
    }
}

/// `/v1/messages`, its sub-paths (`/v1/messages/count_tokens`) and either with a query.
fn is_anthropic_messages(path: &[u8]) -> bool {
    let path = path
        .iter()
        .position(|&b| b == b'?')
        .and_then(|end| path.get(..end))
        .unwrap_or(path);
    match path.strip_prefix(b"/v1/messages") {
        Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_paths_get_anthropic_errors() {
        for path in [
            "/v1/messages",
            "/v1/messages?beta=true",
            "/v1/messages/count_tokens",
        ] {
            assert_eq!(
                internal_error_body(Some(path.as_bytes())),
                ANTHROPIC_INTERNAL_ERROR,
                "{path}"
            );
        }
    }

    #[test]
    fn every_other_path_gets_openai_errors() {
        for path in [
            Some("/v1/chat/completions"),
            Some("/v1/messagesx"),
            Some("/"),
            None,
        ] {
            assert_eq!(
                internal_error_body(path.map(str::as_bytes)),
                OPENAI_INTERNAL_ERROR,
                "{path:?}"
            );
        }
    }

    #[test]
    fn both_bodies_are_the_formats_clients_parse() {
        let openai: serde_json::Value = serde_json::from_str(OPENAI_INTERNAL_ERROR).unwrap();
        assert_eq!(openai["error"]["type"], "server_error");
        assert_eq!(openai["error"]["code"], "internal_error");
        assert!(openai["error"]["param"].is_null());
        let anthropic: serde_json::Value = serde_json::from_str(ANTHROPIC_INTERNAL_ERROR).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "api_error");
    }
}
