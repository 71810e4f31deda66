use crate::api::Endpoint;
use crate::canonical::ApiKind;
use crate::config::Config;
use crate::error::{ApiFlavor, GatewayError};

use super::models_list::ModelsList;

/// The request headers the decision depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'h> {
    pub method: &'h str,
    pub path: &'h str,
    pub content_type: Option<&'h str>,
    pub content_length: Option<&'h str>,
    /// Anthropic SDKs send `anthropic-version`; it picks the `/v1/models` format.
    pub anthropic_version: bool,
    /// No body follows the headers.
    pub end_of_stream: bool,
}

/// A response the filter sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl LocalReply {
    /// The reply's headers with `extra` (the rate-limit headers), each name once: where both
    /// have a name, `extra`'s value is sent. A client reads a repeated header as one
    /// comma-joined value (`retry-after: 17, 17`), which it cannot parse.
    pub fn headers_with<'a>(
        &'a self,
        extra: &'a [(&'static str, String)],
    ) -> Vec<(&'static str, &'a str)> {
        let mut headers: Vec<(&'static str, &str)> = self
            .headers
            .iter()
            .filter(|(name, _)| !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map(|(n, v)| (*n, *v))
            .collect();
        for (name, value) in extra {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                headers.push((name, value.as_str()));
            }
        }
        headers
    }

    pub fn error(error: &GatewayError, flavor: ApiFlavor) -> Self {
        let mut headers = error.headers();
        headers.push(("content-type", "application/json"));
        Self {
            status: error.status(),
            headers,
            body: error.body(flavor),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersDecision {
    /// Not an API the filter handles, but a path the configuration lets through
    /// (`routing.passthrough_paths`, or `unhandled_paths: pass`): forward it unread, once the
    /// caller is admitted against its request limits.
    Passthrough,
    /// Answer now without contacting an upstream.
    Reply(LocalReply),
    /// An inference request: hold the headers and read the whole body.
    ReadBody(ApiKind),
}

pub fn decide_on_headers(
    config: &Config,
    models: &ModelsList,
    head: &RequestHead<'_>,
) -> HeadersDecision {
    let endpoint = Endpoint::classify(head.path);
    let reject =
        |error: GatewayError, flavor| HeadersDecision::Reply(LocalReply::error(&error, flavor));
    let wrong_method = || GatewayError::MethodNotAllowed {
        method: head.method.to_owned(),
        allow: endpoint.method(),
    };
    match endpoint {
        Endpoint::Unhandled if config.routing.passes_through(head.path) => {
            HeadersDecision::Passthrough
        }
        Endpoint::Unhandled => reject(
            GatewayError::UnknownPath {
                method: head.method.to_owned(),
                path: head.path.to_owned(),
            },
            ApiFlavor::from_path(head.path),
        ),
        Endpoint::ListModels => {
            let flavor = if head.anthropic_version {
                ApiFlavor::Anthropic
            } else {
                ApiFlavor::OpenAi
            };
            if head.method != "GET" {
                return reject(wrong_method(), flavor);
            }
            HeadersDecision::Reply(LocalReply {
                status: 200,
                headers: vec![("content-type", "application/json")],
                body: models.body(flavor).to_owned(),
            })
        }
        Endpoint::Inference(api) => {
            let flavor = api.flavor();
            if head.method != "POST" {
                return reject(wrong_method(), flavor);
            }
            if let Some(content_type) = head.content_type {
                if !is_json(content_type) {
                    return reject(
                        GatewayError::UnsupportedContentType(content_type.to_owned()),
                        flavor,
                    );
                }
            }
            let declared = head
                .content_length
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Err(error) = declared.map_or(Ok(()), |size| check_size(config, size)) {
                return reject(error, flavor);
            }
            if head.end_of_stream || declared == Some(0) {
                return reject(GatewayError::MissingBody, flavor);
            }
            HeadersDecision::ReadBody(api)
        }
    }
}

fn check_size(config: &Config, size: u64) -> Result<(), GatewayError> {
    let limit = config.limits.max_request_body_bytes;
    if size > limit {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// `application/json`, optionally with parameters (`; charset=utf-8`), or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{HeadersDecision, LocalReply, RequestHead, decide_on_headers};
    use crate::canonical::ApiKind;
    use crate::config::Config;
    use crate::error::{ApiFlavor, GatewayError};
    use crate::pipeline::ModelsList;

    fn setup(extra: &str) -> (Config, ModelsList) {
        let json = format!(
            r#"{{"models":{{"m":{{}}}},"limits":{{"max_request_body_bytes":100}}{extra}}}"#
        );
        let config = Config::from_json(json.as_bytes()).unwrap();
        let models = ModelsList::new(&config.catalog, 0);
        (config, models)
    }

    fn head<'h>(method: &'h str, path: &'h str) -> RequestHead<'h> {
        RequestHead {
            method,
            path,
            content_type: Some("application/json"),
            ..RequestHead::default()
        }
    }

    fn status(decision: &HeadersDecision) -> u16 {
        match decision {
            HeadersDecision::Reply(reply) => reply.status,
            _ => 0,
        }
    }

    #[test]
    fn inference_paths_read_the_body() {
        let (config, models) = setup("");
        for (path, api) in [
            ("/v1/chat/completions", ApiKind::ChatCompletions),
            ("/v1/completions?x=1", ApiKind::Completions),
            ("/v1/embeddings/", ApiKind::Embeddings),
            ("/v1/responses", ApiKind::Responses),
            ("/v1/messages", ApiKind::Messages),
        ] {
            let decision = decide_on_headers(&config, &models, &head("POST", path));
            assert_eq!(decision, HeadersDecision::ReadBody(api), "{path}");
        }
        let mut charset = head("POST", "/v1/messages");
        charset.content_type = Some("Application/JSON; charset=utf-8");
        assert_eq!(
            decide_on_headers(&config, &models, &charset),
            HeadersDecision::ReadBody(ApiKind::Messages)
        );
        let mut untyped = head("POST", "/v1/chat/completions");
        untyped.content_type = None;
        assert_eq!(
            decide_on_headers(&config, &models, &untyped),
            HeadersDecision::ReadBody(ApiKind::ChatCompletions)
        );
    }

    #[test]
    fn wrong_method_type_size_and_missing_body() {
        let (config, models) = setup("");
        let get = decide_on_headers(&config, &models, &head("GET", "/v1/chat/completions"));
        let HeadersDecision::Reply(reply) = get else {
            panic!("{get:?}")
        };
        assert_eq!(reply.status, 405);
        assert!(reply.headers.contains(&("allow", "POST")));

        let mut text = head("POST", "/v1/messages");
        text.content_type = Some("text/plain");
        let HeadersDecision::Reply(reply) = decide_on_headers(&config, &models, &text) else {
            panic!()
        };
        assert_eq!(reply.status, 415);
        assert!(
            reply.body.starts_with(r#"{"type":"error""#),
            "{}",
            reply.body
        );

        let mut big = head("POST", "/v1/chat/completions");
        big.content_length = Some("101");
        assert_eq!(status(&decide_on_headers(&config, &models, &big)), 413);
        big.content_length = Some("100");
        assert_eq!(
            decide_on_headers(&config, &models, &big),
            HeadersDecision::ReadBody(ApiKind::ChatCompletions)
        );

        let mut empty = head("POST", "/v1/chat/completions");
        empty.end_of_stream = true;
        assert_eq!(status(&decide_on_headers(&config, &models, &empty)), 400);
    }

    #[test]
    fn models_are_listed_in_the_callers_format() {
        let (config, models) = setup("");
        let HeadersDecision::Reply(reply) =
            decide_on_headers(&config, &models, &head("GET", "/v1/models"))
        else {
            panic!()
        };
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.starts_with(r#"{"object":"list""#),
            "{}",
            reply.body
        );
        let mut anthropic = head("GET", "/v1/models");
        anthropic.anthropic_version = true;
        let HeadersDecision::Reply(reply) = decide_on_headers(&config, &models, &anthropic) else {
            panic!()
        };
        assert!(
            reply.body.starts_with(r#"{"data":[{"type":"model""#),
            "{}",
            reply.body
        );
        assert_eq!(
            status(&decide_on_headers(
                &config,
                &models,
                &head("POST", "/v1/models")
            )),
            405
        );
    }

    #[test]
    fn a_reply_carries_each_header_once() {
        let reply = LocalReply::error(&GatewayError::Overloaded, ApiFlavor::OpenAi);
        let extra = [
            ("retry-after", "17".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
        ];
        let headers = reply.headers_with(&extra);
        for name in [
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-remaining-requests",
        ] {
            let count = headers.iter().filter(|(n, _)| *n == name).count();
            assert_eq!(count, 1, "{name} in {headers:?}");
        }
        assert!(headers.contains(&("retry-after", "17")));
        assert!(headers.contains(&("content-type", "application/json")));
    }

    #[test]
    fn unhandled_paths_are_rejected_unless_listed() {
        // By default nothing but the APIs the filter handles reaches a model server.
        let (config, models) = setup("");
        for path in ["/health", "/metrics", "/tokenize", "/v1/rerank", "/"] {
            let decision = decide_on_headers(&config, &models, &head("GET", path));
            assert_eq!(status(&decision), 404, "{path}");
        }
        let (listed, models) = setup(r#","routing":{"passthrough_paths":["/tokenize"]}"#);
        for method in ["GET", "HEAD", "POST"] {
            assert_eq!(
                decide_on_headers(&listed, &models, &head(method, "/tokenize")),
                HeadersDecision::Passthrough,
                "{method}"
            );
        }
        for path in ["/metrics", "/tokenize/../metrics"] {
            let decision = decide_on_headers(&listed, &models, &head("GET", path));
            assert_eq!(status(&decision), 404, "{path}");
        }
        // The APIs the filter handles are never passthrough, whatever the list says.
        let (everything, models) = setup(r#","routing":{"passthrough_paths":["/"]}"#);
        assert_eq!(
            decide_on_headers(&everything, &models, &head("POST", "/v1/chat/completions")),
            HeadersDecision::ReadBody(ApiKind::ChatCompletions)
        );
        assert_eq!(
            status(&decide_on_headers(
                &everything,
                &models,
                &head("GET", "/v1/models")
            )),
            200
        );
        let (open, models) = setup(r#","routing":{"unhandled_paths":"pass"}"#);
        assert_eq!(
            decide_on_headers(&open, &models, &head("GET", "/health")),
            HeadersDecision::Passthrough
        );
    }
}
