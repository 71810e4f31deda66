//! HTTP/1 by hand over a TCP socket, for what an HTTP client library will not send: a request
//! that stops half-way, or an HTTP/1.0 request line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is, sends nothing more (a request left unfinished stays unfinished), and
/// reads until the server closes the connection, for at most `timeout`. Panics if the server
/// sends no complete response by then.
pub async fn exchange(addr: SocketAddr, request: Vec<u8>, timeout: Duration) -> RawResponse {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        stream.write_all(&request).expect("write request");
        let mut raw = Vec::new();
        // Envoy closes the connection after the error replies these tests provoke.
        if let Err(e) = stream.read_to_end(&mut raw) {
            panic!(
                "no close within {timeout:?} ({e}); read so far: {}",
                String::from_utf8_lossy(&raw)
            );
        }
        parse(&String::from_utf8_lossy(&raw))
    })
    .await
    .expect("raw exchange")
}

fn parse(raw: &str) -> RawResponse {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {raw:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
