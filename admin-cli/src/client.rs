//! Sends `Call`s to the admin API: the base URL, the bearer token, the timeout, and every way
//! an exchange can fail turned into a `Failure` (never with the token in it).

use std::time::Duration;

use reqwest::blocking::Client as Http;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Url, redirect};
use serde::de::DeserializeOwned;
use sluice_wire::admin::PREFIX;

use crate::args::Token;
use crate::call::Call;
use crate::failure::Failure;

pub struct Client {
    http: Http,
    /// The base URL without a trailing slash: `http://127.0.0.1:9190`.
    base: String,
    authorization: HeaderValue,
}

/// A successful answer (2xx).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|err| {
            Failure::Other(format!(
                "the service's answer is not what this client expects ({err}); are client and service the same version?"
            ))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub fn new(base: &str, token: &Token, timeout: Duration) -> Result<Self, Failure> {
        let base = check_base(base)?;
        let mut authorization = authorization(token)?;
        // Kept out of any debug output of the request.
        authorization.set_sensitive(true);
        let http = Http::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The admin API never redirects; following one would send the token elsewhere.
            .redirect(redirect::Policy::none())
            // The admin listener is on a private address: no proxy sees the token.
            .no_proxy()
            .build()
            .map_err(|err| Failure::Other(format!("setting up the HTTP client: {err}")))?;
        Ok(Self {
            http,
            base,
            authorization,
        })
    }

    /// The full URL of `call`.
    pub fn url(&self, call: &Call) -> Result<Url, Failure> {
        let mut url = Url::parse(&format!("{}{PREFIX}{}", self.base, call.path))
            .map_err(|err| Failure::Usage(format!("building the request URL: {err}")))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    pub fn send(&self, call: &Call) -> Result<Answer, Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), self.url(call)?)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(
                ACCEPT,
                if call.csv {
                    "text/csv"
                } else {
                    "application/json"
                },
            );
        if let Some(body) = &call.body {
            let bytes = serde_json::to_vec(body)
                .map_err(|err| Failure::Other(format!("encoding the request: {err}")))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = request.send().map_err(|err| self.failed(&err))?;
        let status = response.status().as_u16();
        let body = response.bytes().map_err(|err| self.failed(&err))?.to_vec();
        if (200..300).contains(&status) {
            Ok(Answer { status, body })
        } else {
            Err(Failure::from_answer(status, &body))
        }
    }

    /// A failed exchange, with its innermost cause (`Connection refused`), not the request's
    /// URL and headers.
    fn failed(&self, err: &reqwest::Error) -> Failure {
        let mut cause: &dyn std::error::Error = err;
        while let Some(source) = cause.source() {
            cause = source;
        }
        if err.is_timeout() {
            Failure::Timeout(format!("no answer from {} in time", self.base))
        } else if err.is_connect() {
            Failure::Unreachable(format!("cannot reach {}: {cause}", self.base))
        } else {
            Failure::Unreachable(format!("exchange with {} failed: {cause}", self.base))
        }
    }
}

/// `Bearer <token>`. What is wrong with a token is said without repeating it.
fn authorization(token: &Token) -> Result<HeaderValue, Failure> {
    let token = token.0.trim();
    if token.is_empty() {
        return Err(Failure::Usage("the admin token is empty".into()));
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(Failure::Usage(
            "the admin token has characters an HTTP header cannot carry (spaces, control or non-ASCII characters)".into(),
        ));
    }
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Failure::Usage("the admin token cannot be sent in a header".into()))
}

/// `--url`: plain HTTP (the admin listener is not TLS), a host, no query, no credentials.
fn check_base(base: &str) -> Result<String, Failure> {
    let url =
        Url::parse(base.trim()).map_err(|err| Failure::Usage(format!("--url `{base}`: {err}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not repeated: the URL carries a credential.
        return Err(Failure::Usage(
            "--url must not carry credentials: give the token in SLUICE_ADMIN_TOKEN".into(),
        ));
    }
    if url.scheme() != "http" {
        return Err(Failure::Usage(format!(
            "--url `{base}`: only http:// (the admin API listens on private addresses, without TLS)"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some()
    {
        return Err(Failure::Usage(format!(
            "--url `{base}`: expected http://HOST:PORT, optionally with a path prefix"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::Method;

    use super::{Client, check_base};
    use crate::args::Token;
    use crate::call::Call;
    use crate::failure::{Failure, exit};

    fn client(base: &str) -> Client {
        Client::new(base, &Token("t0ken".into()), Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_join_base_prefix_path_and_query() {
        let call = Call::new(Method::GET, &["spend"])
            .with_query("from", Some("2026-12-01T00:00:00+02:00"))
            .with_query("tenant", None::<String>)
            .with_query("group_by", Some("tenant,model"));
        assert_eq!(
            client("http://127.0.0.1:9190/")
                .url(&call)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9190/admin/v1/spend?from=2026-12-01T00%3A00%3A00%2B02%3A00&group_by=tenant%2Cmodel"
        );
        assert_eq!(
            client("http://gw.internal:80/sluice")
                .url(&Call::new(Method::GET, &["tenants", "a/b"]))
                .unwrap()
                .as_str(),
            "http://gw.internal/sluice/admin/v1/tenants/a%2Fb"
        );
    }

    #[test]
    fn the_base_url_must_be_plain_http_without_credentials() {
        assert_eq!(
            check_base("http://127.0.0.1:9190"),
            Ok("http://127.0.0.1:9190".into())
        );
        for (base, expected) in [
            ("https://127.0.0.1:9190", "only http://"),
            ("127.0.0.1:9190", "--url"),
            ("http://127.0.0.1:9190/?x=1", "expected http://HOST:PORT"),
        ] {
            let Err(Failure::Usage(message)) = check_base(base) else {
                panic!("{base} accepted");
            };
            assert!(message.contains(expected), "{base}: {message}");
        }
        let Err(Failure::Usage(message)) = check_base("http://admin:hunter2@127.0.0.1:9190") else {
            panic!("credentials accepted");
        };
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_bad_token_is_a_usage_error_that_does_not_repeat_it() {
        for token in ["", "   ", "abc def", "tok\u{e9}n", "tok\nen"] {
            let Err(failure) = Client::new(
                "http://127.0.0.1:9190",
                &Token(token.into()),
                Duration::from_secs(1),
            ) else {
                panic!("{token:?} accepted");
            };
            assert_eq!(failure.exit_code(), exit::USAGE);
            assert!(
                token.trim().is_empty() || !failure.line(None).contains(token),
                "{failure:?}"
            );
        }
        // Surrounding blanks (a token read from a file) are not part of it.
        assert!(
            Client::new(
                "http://127.0.0.1:9190",
                &Token(" t0ken\n".into()),
                Duration::from_secs(1)
            )
            .is_ok()
        );
    }

    /// A server on a free port that reads one request and answers `response` (or, with `None`,
    /// holds the connection without answering until the test ends); gives the request's head.
    fn scripted(
        response: Option<String>,
    ) -> (
        String,
        std::thread::JoinHandle<String>,
        std::sync::mpsc::Sender<()>,
    ) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            match response {
                Some(response) => reader.get_mut().write_all(response.as_bytes()).unwrap(),
                None => {
                    let _ = wait.recv();
                }
            }
            head
        });
        (base, server, done)
    }

    #[test]
    fn sends_the_bearer_token_and_maps_an_error_answer() {
        let body = r#"{"error":{"code":"conflict","message":"tenant acme has 2 live keys"}}"#;
        let response = format!(
            "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (base, server, _done) = scripted(Some(response));
        let failure = client(&base)
            .send(&Call::new(Method::DELETE, &["tenants", "acme"]))
            .unwrap_err();
        let head = server.join().unwrap().to_lowercase();
        assert!(
            head.starts_with("delete /admin/v1/tenants/acme http/1.1"),
            "{head}"
        );
        assert!(head.contains("authorization: bearer t0ken\r\n"), "{head}");
        assert!(head.contains("accept: application/json\r\n"), "{head}");
        assert_eq!(failure.exit_code(), exit::REFUSED);
        assert_eq!(
            failure.line(Some("t0ken")),
            "sluice-admin: conflict: tenant acme has 2 live keys"
        );
    }

    #[test]
    fn a_service_that_never_answers_times_out() {
        let (base, _server, done) = scripted(None);
        let client =
            Client::new(&base, &Token("t0ken".into()), Duration::from_millis(200)).unwrap();
        let failure = client
            .send(&Call::new(Method::GET, &["tenants"]))
            .unwrap_err();
        done.send(()).unwrap();
        assert_eq!(failure.code(), "timeout", "{failure:?}");
        assert_eq!(failure.exit_code(), exit::UNAVAILABLE);
    }

    #[test]
    fn a_port_nobody_listens_on_is_unreachable_not_a_hang() {
        // Bound, then closed: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let failure = client(&format!("http://127.0.0.1:{port}"))
            .send(&Call::new(Method::GET, &["tenants"]))
            .unwrap_err();
        assert_eq!(failure.exit_code(), exit::UNAVAILABLE, "{failure:?}");
        assert_eq!(failure.code(), "unreachable");
        assert!(!failure.line(None).contains("t0ken"));
    }
}
