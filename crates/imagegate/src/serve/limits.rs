//! Applying `Limits` to the HTTPS listener: a cap on open connections (an acceptor that
//! holds a permit for the life of each connection), header and first-request timeouts,
//! the TLS handshake timeout and HTTP/2 stream and window limits. The cap on concurrent
//! reviews and the body deadline are applied per request, in `handlers`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Limits;

/// The HTTPS server with every limit of `limits` applied.
pub fn apply<A: axum_server::Address>(
    server: axum_server::Server<A, RustlsAcceptor>,
    limits: &Limits,
) -> axum_server::Server<A, ConnectionLimit<RustlsAcceptor>> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let handshake_timeout = limits.tls_handshake_timeout;
    let mut server = server
        .map(|tls| ConnectionLimit {
            inner: tls.handshake_timeout(handshake_timeout),
            permits,
        })
        // Also bounds an idle new connection and HTTP/2's connection preface, which
        // the header timeout does not cover.
        .first_request_timeout(limits.header_read_timeout);
    let builder = server.http_builder();
    builder
        .http1()
        // axum-server turns hyper's header timeout off; a slowloris client would
        // otherwise hold a connection forever.
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(
            usize::try_from(limits.max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(8192),
        );
    builder
        .http2()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .initial_stream_window_size(limits.http2_stream_window)
        .initial_connection_window_size(limits.http2_connection_window)
        .max_header_list_size(limits.max_header_bytes);
    server
}

/// An acceptor that admits a connection only while fewer than the cap are open; one
/// beyond it is closed before the TLS handshake (the API server retries elsewhere or
/// applies its failurePolicy). The permit is released when the connection closes.
#[derive(Clone)]
pub struct ConnectionLimit<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A, I, S> Accept<I, S> for ConnectionLimit<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            drop(stream);
            tracing::debug!("connection closed: too many open connections");
            return Box::pin(std::future::ready(Err(io::Error::other(
                "too many open connections",
            ))));
        };
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((
                Counted {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection's stream holding its permit.
pub struct Counted<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Longest request field copied into a log line (namespaces and names are shorter).
pub(super) const MAX_LOGGED_FIELD: usize = 253;

/// The longest prefix of `text` of at most `max` bytes ending on a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
