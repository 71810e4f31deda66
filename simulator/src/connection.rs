//! The listener and its connections, wrapped so that faults can act below HTTP: a connection can
//! be reset before it writes a byte (the `reset` fault), and while the host plays dead (the
//! `dead` fault) open connections are closed and new ones refused.
//!
//! Every connection has a kill switch (`ConnectionHandle`, handed to requests as their
//! `ConnectInfo`). Once killed, its next read or write fails and the socket closes with a TCP
//! reset (zero linger), whatever hyper had buffered: the client sees the connection end with no
//! response, or mid-response. A connection accepted while the host is dead is screened: its first
//! request line is read ahead, and unless it is for /admin, /health or /metrics (which faults
//! never touch) the connection is reset; otherwise the bytes are replayed to hyper.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::FaultSwitch;
use crate::traffic::Traffic;

/// Longest request line a screened connection may send before it is refused undecided.
const MAX_SCREENED_LINE: usize = 8 * 1024;

/// One connection's kill switch.
#[derive(Debug, Default)]
struct Link {
    killed: AtomicBool,
    /// The connection task, woken when the connection is killed from elsewhere.
    waker: AtomicWaker,
}

/// A request's handle on the connection that carries it.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Link>);

impl ConnectionHandle {
    /// Closes the connection with a reset at its next read or write: nothing more is sent.
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.waker.wake();
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        Self(Arc::clone(&stream.io().link))
    }
}

/// The open connections, so that a dead host can close them all.
#[derive(Debug, Default)]
pub struct Connections {
    live: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    links: Vec<Weak<Link>>,
    /// Closed connections are swept out when the list reaches this length, so it stays within
    /// twice the open connections (plus a constant).
    sweep_at: usize,
}

impl Connections {
    fn register(&self, link: &Arc<Link>) {
        let mut registry = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if registry.links.len() >= registry.sweep_at {
            registry.links.retain(|link| link.strong_count() > 0);
            registry.sweep_at = registry.links.len().saturating_mul(2).max(64);
        }
        registry.links.push(Arc::downgrade(link));
    }

    /// Kills every open connection but `keep` (the one asking).
    pub fn kill_all_except(&self, keep: Option<&ConnectionHandle>) {
        let registry = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for link in registry.links.iter().filter_map(Weak::upgrade) {
            if keep.is_some_and(|keep| Arc::ptr_eq(&keep.0, &link)) {
                continue;
            }
            ConnectionHandle(link).kill();
        }
    }
}

/// The server's listener: a TCP listener whose connections carry kill switches.
pub struct FaultListener {
    inner: TcpListener,
    faults: Arc<FaultSwitch>,
    traffic: Arc<Traffic>,
    connections: Arc<Connections>,
}

impl FaultListener {
    pub fn new(
        inner: TcpListener,
        faults: Arc<FaultSwitch>,
        traffic: Arc<Traffic>,
        connections: Arc<Connections>,
    ) -> Self {
        Self {
            inner,
            faults,
            traffic,
            connections,
        }
    }
}

impl axum::serve::Listener for FaultListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    // Each streamed event is its own small write: without TCP_NODELAY, Nagle's
                    // algorithm holds one back until the peer's delayed ACK (about 40 ms on
                    // Linux). Model servers (uvicorn) set it too.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::warn!("TCP_NODELAY not set: {error}");
                    }
                    let link = Arc::new(Link::default());
                    self.connections.register(&link);
                    let screen = if self.faults.is_dead() {
                        Screen::Reading(Vec::new())
                    } else {
                        Screen::Passed
                    };
                    let connection = Connection {
                        stream,
                        link,
                        screen,
                        faults: Arc::clone(&self.faults),
                        traffic: Arc::clone(&self.traffic),
                    };
                    return (connection, address);
                }
                Err(error) => accept_failed(error).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A failed accept: errors of the one connection are skipped; others (such as running out of
/// file descriptors) would fail again at once, so they wait a little.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {error}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Where a connection stands with the dead-host screening.
#[derive(Debug)]
enum Screen {
    /// Not screened (or let through, its read-ahead replayed).
    Passed,
    /// Reading ahead until the first request line is complete.
    Reading(Vec<u8>),
    /// Let through: these bytes, read ahead, go to hyper first.
    Replaying { bytes: Vec<u8>, at: usize },
}

/// What the screening makes of the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Undecided,
    /// A request for a path faults never touch.
    Exempt,
    Refuse,
}

/// Judges the first request line of a connection accepted while the host is dead.
fn verdict(head: &[u8]) -> Verdict {
    let Some(line_end) = head.iter().position(|&byte| byte == b'\n') else {
        return if head.len() >= MAX_SCREENED_LINE {
            Verdict::Refuse
        } else {
            Verdict::Undecided
        };
    };
    let line = head.get(..line_end).unwrap_or_default();
    let target = line.split(|&byte| byte == b' ').nth(1).unwrap_or_default();
    let path = target
        .split(|&byte| byte == b'?')
        .next()
        .unwrap_or_default();
    if path == b"/health" || path == b"/metrics" || path.starts_with(b"/admin/") {
        Verdict::Exempt
    } else {
        Verdict::Refuse
    }
}

/// An accepted connection: a TCP stream with a kill switch.
pub struct Connection {
    stream: TcpStream,
    link: Arc<Link>,
    screen: Screen,
    faults: Arc<FaultSwitch>,
    traffic: Arc<Traffic>,
}

impl Connection {
    /// Fails the operation once the connection is killed, making the close a reset.
    fn check_alive(&mut self, cx: &Context<'_>) -> io::Result<()> {
        self.link.waker.register(cx.waker());
        if self.link.killed.load(Ordering::SeqCst) {
            // Zero linger turns the close into a reset, so the peer cannot mistake it for a
            // complete response; a socket that refuses the option still closes.
            let _ = self.stream.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by an injected fault",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_alive(cx)?;
        loop {
            match &mut this.screen {
                Screen::Passed => return Pin::new(&mut this.stream).poll_read(cx, buf),
                Screen::Replaying { bytes, at } => {
                    let rest = bytes.get(*at..).unwrap_or_default();
                    if rest.is_empty() {
                        this.screen = Screen::Passed;
                        continue;
                    }
                    let take = rest.len().min(buf.remaining());
                    buf.put_slice(rest.get(..take).unwrap_or_default());
                    *at = at.saturating_add(take);
                    return Poll::Ready(Ok(()));
                }
                Screen::Reading(head) => {
                    let mut chunk = [0_u8; 1024];
                    let mut read = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.stream).poll_read(cx, &mut read))?;
                    let filled = read.filled();
                    head.extend_from_slice(filled);
                    let verdict = if filled.is_empty() || !this.faults.is_dead() {
                        // The peer stopped before a whole request line (hyper gets what came
                        // and ends the connection as it would), or the host came back to life.
                        Verdict::Exempt
                    } else {
                        verdict(head)
                    };
                    match verdict {
                        Verdict::Undecided => {}
                        Verdict::Exempt => {
                            let bytes = std::mem::take(head);
                            if bytes.is_empty() {
                                this.screen = Screen::Passed;
                                return Poll::Ready(Ok(()));
                            }
                            this.screen = Screen::Replaying { bytes, at: 0 };
                        }
                        Verdict::Refuse => {
                            this.traffic.refused();
                            ConnectionHandle(Arc::clone(&this.link)).kill();
                            this.check_alive(cx)?;
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_alive(cx)?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_alive(cx)?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_alive(cx)?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_alive(cx)?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screening_lets_only_admin_health_and_metrics_through() {
        assert_eq!(verdict(b"GET /health HTTP/1.1\r\n"), Verdict::Exempt);
        assert_eq!(verdict(b"GET /metrics HTTP/1.1\r\nHost"), Verdict::Exempt);
        assert_eq!(
            verdict(b"DELETE /admin/faults HTTP/1.1\r\n"),
            Verdict::Exempt
        );
        assert_eq!(verdict(b"GET /admin/stats?x=1 HTTP/1.1\n"), Verdict::Exempt);
        assert_eq!(
            verdict(b"POST /v1/chat/completions HTTP/1.1\r\n"),
            Verdict::Refuse
        );
        assert_eq!(verdict(b"GET /healthz HTTP/1.1\r\n"), Verdict::Refuse);
        assert_eq!(verdict(b"GET /admin HTTP/1.1\r\n"), Verdict::Refuse);
        assert_eq!(verdict(b"GET /admin/fau"), Verdict::Undecided);
        assert_eq!(verdict(&[b'x'; MAX_SCREENED_LINE]), Verdict::Refuse);
    }

    #[test]
    fn the_registry_kills_all_but_the_asker_and_sweeps_closed_connections() {
        let connections = Connections::default();
        let links: Vec<Arc<Link>> = (0..3).map(|_| Arc::new(Link::default())).collect();
        for link in &links {
            connections.register(link);
        }
        let asker = ConnectionHandle(Arc::clone(&links[1]));
        connections.kill_all_except(Some(&asker));
        let killed: Vec<bool> = links
            .iter()
            .map(|link| link.killed.load(Ordering::SeqCst))
            .collect();
        assert_eq!(killed, [true, false, true]);

        drop(links);
        for _ in 0..200 {
            connections.register(&Arc::new(Link::default()));
        }
        let registry = connections.live.lock().unwrap();
        assert!(registry.links.len() <= 64, "{}", registry.links.len());
    }
}
