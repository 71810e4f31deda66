//! Fetching one metrics page: a shared keep-alive HTTP client, one deadline for the whole
//! exchange (connect, request, body), and a cap on the body so a broken server cannot make the
//! picker buffer without end.

use std::time::Duration;

use axum::body::Bytes;
use reqwest::Url;

/// Largest metrics page read. Real pages are 10–50 KB; a multi-megabyte page is a broken server.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// Why a page could not be fetched. `reason()` is the label of the failure counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Connect(String),
    Timeout,
    Status(u16),
    Body(String),
    TooLarge,
    NotUtf8,
}

impl FetchError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Status(_) => "status",
            Self::Body(_) => "body",
            Self::TooLarge => "too_large",
            Self::NotUtf8 => "not_utf8",
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "request failed: {why}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(status) => write!(f, "HTTP status {status}"),
            Self::Body(why) => write!(f, "reading the body failed: {why}"),
            Self::TooLarge => write!(f, "page larger than {MAX_PAGE_BYTES} bytes"),
            Self::NotUtf8 => f.write_str("page is not UTF-8"),
        }
    }
}

/// Where the scrape rounds get a page from: the HTTP client in the service; a scripted source
/// on tokio's (paused) clock in the rounds' tests. A fetch ends by itself: the client's within
/// its scrape timeout.
pub trait Fetch: Send + Sync + 'static {
    fn fetch(&self, url: &Url) -> impl Future<Output = Result<Page, FetchError>> + Send;
}

impl Fetch for ScrapeClient {
    fn fetch(&self, url: &Url) -> impl Future<Output = Result<Page, FetchError>> + Send {
        ScrapeClient::fetch(self, url)
    }
}

#[derive(Clone)]
pub struct ScrapeClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl ScrapeClient {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // Scrapes go straight to the pods, whatever proxy the environment names.
            .no_proxy()
            // One connection per endpoint is all a scraper needs; keep it across rounds.
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Self { http, timeout })
    }

    /// The page at `url`, within the scrape timeout.
    pub async fn fetch(&self, url: &Url) -> Result<Page, FetchError> {
        match tokio::time::timeout(self.timeout, self.fetch_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn fetch_unbounded(&self, url: &Url) -> Result<Page, FetchError> {
        let mut response = self
            .http
            .get(url.clone())
            // Ask for the classic text format: servers that can also speak OpenMetrics or
            // protobuf then answer with what the reader understands.
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(|err| {
                if err.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Connect(error_chain(&err))
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_PAGE_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut chunks = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| FetchError::Body(error_chain(&err)))?
        {
            size = size.saturating_add(chunk.len());
            if size > MAX_PAGE_BYTES {
                return Err(FetchError::TooLarge);
            }
            chunks.push(chunk);
        }
        // A page usually arrives in one chunk: keep it as it is rather than copying it.
        let body = if chunks.len() == 1 {
            chunks.pop().unwrap_or_default()
        } else {
            let mut body = Vec::with_capacity(size);
            for chunk in &chunks {
                body.extend_from_slice(chunk);
            }
            Bytes::from(body)
        };
        Ok(Page::new(body))
    }
}

/// A fetched metrics page, not yet known to be text.
pub struct Page {
    body: Bytes,
}

impl Page {
    pub fn new(body: Bytes) -> Self {
        Self { body }
    }

    pub fn text(&self) -> Result<&str, FetchError> {
        std::str::from_utf8(&self.body).map_err(|_| FetchError::NotUtf8)
    }
}

/// reqwest's top-level message ("error sending request") hides the cause ("connection
/// refused"); the log needs both.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::Url;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::{FetchError, MAX_PAGE_BYTES, ScrapeClient};

    /// Answers every connection with `response` (raw HTTP), or holds it open if `None`.
    async fn server(response: Option<Vec<u8>>) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    match response {
                        Some(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(10)).await,
                    }
                });
            }
        });
        Url::parse(&format!("http://{addr}/metrics")).unwrap()
    }

    fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn client() -> ScrapeClient {
        ScrapeClient::new(Duration::from_millis(300)).unwrap()
    }

    #[tokio::test]
    async fn fetches_a_page() {
        let url = server(Some(http("200 OK", "", b"vllm:num_requests_waiting 1\n"))).await;
        let page = client().fetch(&url).await.unwrap();
        assert_eq!(page.text().unwrap(), "vllm:num_requests_waiting 1\n");
    }

    #[tokio::test]
    async fn failures_have_reasons() {
        let status = server(Some(http("503 Service Unavailable", "", b"busy"))).await;
        assert_eq!(
            client().fetch(&status).await.err(),
            Some(FetchError::Status(503))
        );

        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_PAGE_BYTES + 1
        );
        let huge = server(Some(huge.into_bytes())).await;
        assert_eq!(
            client().fetch(&huge).await.err(),
            Some(FetchError::TooLarge)
        );

        let binary = server(Some(http("200 OK", "", &[0xff, 0xfe, 0x00]))).await;
        let page = client().fetch(&binary).await.unwrap();
        assert_eq!(page.text().err(), Some(FetchError::NotUtf8));

        let hung = server(None).await;
        assert_eq!(client().fetch(&hung).await.err(), Some(FetchError::Timeout));

        let truncated = server(Some(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec(),
        ))
        .await;
        let err = client().fetch(&truncated).await.err().unwrap();
        assert_eq!(err.reason(), "body", "{err}");

        // Nothing listens on a port just released.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let url = Url::parse(&format!("http://{closed}/metrics")).unwrap();
        let err = client().fetch(&url).await.err().unwrap();
        assert_eq!(err.reason(), "connect", "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn chunked_pages_are_joined() {
        let body = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let url = server(Some(body.to_vec())).await;
        let page = client().fetch(&url).await.unwrap();
        assert_eq!(page.text().unwrap(), "hello world");
    }
}
