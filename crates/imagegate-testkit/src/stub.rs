//! A tiny misbehaving registry: an HTTP/1.1 server with canned answers, for the error
//! paths of registry clients (the one stub of the workspace; the oci and engine tests
//! use it).
//!
//! Why not the real registry: every test that *can* run against `docker-registry`
//! ([`crate::Registry`]) does. A real registry cannot misbehave: it never serves bytes that do
//! not hash to their digest, never truncates a body, never redirects forever, never
//! rate-limits, never hangs, never omits `WWW-Authenticate` or `Docker-Content-Digest`,
//! and its token service never answers garbage. This server serves exactly those failure
//! modes (and the OCI 1.1 referrers API, which docker-registry 2.8 lacks), and nothing
//! else: canned answers per request, chosen by a closure ([`by_path`] for a fixed map).
//!
//! Unlike the rest of the test kit it is async: it runs as a task on the calling test's
//! tokio runtime (so it dies with the test) and is also aborted when the [`Stub`] is
//! dropped. Like a plain-HTTP Go server, it answers
//! a TLS `ClientHello` with `400` and closes, so the client's HTTPS-first probe fails the
//! way it does against a real plain-HTTP registry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head (and body) the stub reads.
const MAX_REQUEST: usize = 64 * 1024;
/// Chunk size of `Transfer-Encoding: chunked` answers.
const CHUNK: usize = 1024;

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names and values as received.
    pub headers: Vec<(String, String)>,
    /// 1-based: how many requests with this method and path (query excluded) the stub
    /// has received, this one included.
    pub nth: usize,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer with `Content-Length` (no body to `HEAD`); keeps the connection.
    Full {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// A complete `Transfer-Encoding: chunked` answer, so no `Content-Length`.
    Chunked {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// `200` with `Content-Length`, the body written in `chunks` pieces with `pause`
    /// between them (a slow transfer: the answer stays in flight for a while).
    Slow {
        /// The body.
        body: Vec<u8>,
        /// Pieces the body is written in.
        chunks: usize,
        /// Pause after each piece.
        pause: Duration,
    },
    /// `200` announcing `Content-Length: declared`, then `body` (shorter), then close.
    Truncated {
        /// The length announced.
        declared: usize,
        /// The (shorter) body sent.
        body: Vec<u8>,
    },
    /// Accepts the request and never answers (the connection stays open).
    Hang,
    /// Reads the request and closes the connection without answering (what a client
    /// sees when a server closes an idle keep-alive connection as a request arrives).
    Close,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `200` with `body`, chunked.
    pub fn chunked(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Chunked {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds `Content-Type`.
    pub fn content_type(self, value: &str) -> Reply {
        self.header("Content-Type", value)
    }

    /// Replaces the status.
    pub fn status_code(mut self, code: u16) -> Reply {
        if let Reply::Full { status, .. } | Reply::Chunked { status, .. } = &mut self {
            *status = code;
        }
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Full { headers, .. } | Reply::Chunked { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// A handler answering the requests for the paths (query excluded) in `answers`, and
/// `404` with an empty JSON body for every other path.
pub fn by_path(answers: HashMap<String, Reply>) -> impl Fn(&Request) -> Reply + Send + Sync {
    move |request: &Request| {
        answers.get(request.path()).cloned().unwrap_or_else(|| {
            Reply::ok(b"{}".to_vec())
                .status_code(404)
                .content_type("application/json")
        })
    }
}

/// This machine's address on the interface that routes outwards (not loopback), for
/// the "plain HTTP only on loopback" rules ([`Stub::start_on`] it). `None` on a machine
/// with no such interface: the tests that need one then say so on stderr and pass
/// without checking.
pub fn non_loopback_ip() -> Option<IpAddr> {
    // `connect` on UDP only picks the route and source address; nothing is sent.
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Request>>,
    /// Plain-HTTP connections accepted.
    connections: AtomicUsize,
    /// Connections that started with a TLS handshake (answered 400 and closed).
    tls_probes: AtomicUsize,
    /// Answers being written right now, and the most there ever were at once.
    active: AtomicUsize,
    max_active: AtomicUsize,
}

/// A running stub; aborted (with its connections) when dropped.
pub struct Stub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Stub {
    /// Serves on `127.0.0.1:<free port>`.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Stub {
        Stub::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), handler).await
    }

    /// Serves on `ip:<free port>` (a non-loopback address for the plain-HTTP rules).
    pub async fn start_on(
        ip: IpAddr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Stub {
        Stub::start_at(SocketAddr::new(ip, 0), handler).await
    }

    /// Serves on exactly `addr` (a registry coming back on its old address).
    pub async fn start_at(
        addr: SocketAddr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Stub {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("stub: cannot bind {addr}: {e}"));
        let addr = listener.local_addr().expect("stub: local address");
        let shared = Arc::new(Shared::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                // Owned by the accept task: aborting it aborts every connection too.
                let mut connections = JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.spawn(serve(stream, Arc::clone(&shared), Arc::clone(&handler)));
                    while connections.try_join_next().is_some() {}
                }
            }
        });
        Stub { addr, shared, task }
    }

    /// `ip:port`, as written in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every request received so far as `METHOD target` (target with its query).
    pub fn log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }

    /// Plain-HTTP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes refused so far (the client's HTTPS probes).
    pub fn tls_probes(&self) -> usize {
        self.shared.tls_probes.load(Ordering::SeqCst)
    }

    /// The most answers that were being written at the same time (from the request
    /// head read to the last body byte written): how many requests a client had in
    /// flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_active.load(Ordering::SeqCst)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>, handler: Arc<Handler>) {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == 0x16 => {
            // A TLS record: answer as Go's plain HTTP server does.
            shared.tls_probes.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                )
                .await;
            return;
        }
        Ok(1) => {}
        _ => return,
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let body_len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_REQUEST);
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_len);

        let request = {
            let mut log = shared.log.lock().unwrap_or_else(PoisonError::into_inner);
            let mut request = Request {
                method,
                target,
                headers,
                nth: 0,
            };
            request.nth = 1 + log
                .iter()
                .filter(|r| r.method == request.method && r.path() == request.path())
                .count();
            log.push(request.clone());
            request
        };
        let is_head = request.method == "HEAD";
        let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_active.fetch_max(active, Ordering::SeqCst);
        let written = answer(&mut stream, handler(&request), is_head).await;
        shared.active.fetch_sub(1, Ordering::SeqCst);
        if !written {
            return;
        }
    }
}

/// Writes `reply`; whether the connection can serve another request.
async fn answer(stream: &mut TcpStream, reply: Reply, is_head: bool) -> bool {
    let written = match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = head_bytes(status, &headers, &format!("Content-Length: {}", body.len()));
            if !is_head {
                out.extend_from_slice(&body);
            }
            stream.write_all(&out).await
        }
        Reply::Chunked {
            status,
            headers,
            body,
        } => {
            let mut out = head_bytes(status, &headers, "Transfer-Encoding: chunked");
            if !is_head {
                for chunk in body.chunks(CHUNK) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            stream.write_all(&out).await
        }
        Reply::Truncated { declared, body } => {
            let mut out = head_bytes(200, &[], &format!("Content-Length: {declared}"));
            out.extend_from_slice(&body);
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            return false;
        }
        Reply::Slow {
            body,
            chunks,
            pause,
        } => {
            let head = head_bytes(200, &[], &format!("Content-Length: {}", body.len()));
            if stream.write_all(&head).await.is_err() {
                return false;
            }
            if !is_head {
                let piece = body.len().div_ceil(chunks.max(1)).max(1);
                for chunk in body.chunks(piece) {
                    if stream.write_all(chunk).await.is_err() {
                        return false;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(())
        }
        Reply::Close => return false,
        Reply::Hang => {
            // Keep `stream` open until the client gives up or the test ends.
            std::future::pending::<()>().await;
            return false;
        }
    };
    written.is_ok()
}

/// Reads into `buf` until it holds a complete request head; its length without the
/// blank line, or `None` at EOF or when the head is too large.
async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end);
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn head_bytes(status: u16, headers: &[(String, String)], framing: &str) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} Stub\r\n{framing}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}
