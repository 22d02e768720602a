//! HTTP/1.1 framing over the TLS stream: request heads and `Content-Length` bodies in,
//! whole responses or chunked streams (WATCH) out. Keep-alive, bounded sizes, and a
//! deadline on every read so an idle or slow client cannot hold a connection forever.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http1::percent_decode;

/// Largest request head.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body (the real API server's limit is 3 MiB).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;
/// Oversized bodies up to this size are read and dropped before the 413.
const DISCARD_MAX: usize = 16 * 1024 * 1024;
/// How long a keep-alive connection may sit idle, and a request may take to arrive.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// A request read from the connection.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// Decoded path, without the query.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed, was idle too long, or sent something unreadable: just close.
    Closed,
    /// The body is larger than [`MAX_BODY`]: answer 413, then close.
    TooLarge,
    /// A chunked request body (not supported by the fake): answer 411, then close.
    NeedLength,
}

/// Reads one request; `buf` carries bytes read past the previous request.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Closed);
        }
        let mut chunk = [0u8; 8192];
        let n = match tokio::time::timeout(READ_DEADLINE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err(ReadError::Closed),
        };
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    if method.is_empty() || !target.starts_with('/') {
        return Err(ReadError::Closed);
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Err(ReadError::NeedLength);
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        // Read (and drop) a moderately oversized body so the client sees the 413 rather
        // than a reset; anything larger just closes.
        let mut left = len.saturating_sub(buf.len());
        if len > DISCARD_MAX {
            return Err(ReadError::Closed);
        }
        buf.clear();
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            match tokio::time::timeout(READ_DEADLINE, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => return Err(ReadError::Closed),
            }
        }
        return Err(ReadError::TooLarge);
    }
    while buf.len() < len {
        let mut chunk = vec![0u8; (len - buf.len()).min(64 * 1024)];
        let n = match tokio::time::timeout(READ_DEADLINE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err(ReadError::Closed),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buf.drain(..len).collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect();
    Ok(Request {
        method,
        path: percent_decode(&path),
        query,
        headers,
        body,
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Error",
    }
}

/// Writes a whole response; `close` ends the connection after it.
pub(crate) async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let conn = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\nConnection: {conn}\r\n\r\n",
        reason(code),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

/// Starts a chunked streaming response (WATCH).
pub(crate) async fn start_stream<S: AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

/// Writes one chunk (one WATCH event line).
pub(crate) async fn write_chunk<S: AsyncWrite + Unpin>(
    stream: &mut S,
    data: &[u8],
) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

/// Ends a chunked stream.
pub(crate) async fn end_stream<S: AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    stream.write_all(b"0\r\n\r\n").await?;
    stream.flush().await
}
