//! The gRPC server: ext_authz `Authorization/Check` and `grpc.health.v1` on a
//! Unix socket and optionally on TCP.
//!
//! Check is served on hyper's HTTP/2 server directly rather than through
//! tonic's router: the request body is collected as one buffer, decoded by
//! [`crate::wire`] into borrowed facts (no per-header allocations), decided,
//! and answered with a pre-encoded allow response or a freshly encoded
//! denial. Everything else (health, unknown methods) goes to tonic's health
//! service, which answers `UNIMPLEMENTED` for paths it does not know.
//!
//! HTTP/2 settings for a local, single-peer link (Envoy's worker opens one
//! connection per worker thread): 1 MiB stream and connection windows (a
//! request body up to Envoy's `max_request_bytes` needs few WINDOW_UPDATEs),
//! 64 KiB frames, no keep-alive pings (the link is a local socket; Envoy
//! notices a closed socket at once), no `date` header, at most
//! [`MAX_CONCURRENT_STREAMS`] Checks in flight per connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tonic_health::pb::health_server::{Health, HealthServer};
use tower::ServiceExt;

use crate::check::{check_facts, record, response};
use crate::decide::Outcome;
use crate::uds::ReadInterestStream;
use crate::{shutdown_signal, Shared, StartError};

/// Largest Check request accepted (bodies included), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Most Checks in flight on one HTTP/2 connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// The gRPC path of ext_authz Check.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The service name reported SERVING by `grpc.health.v1`.
pub const AUTHORIZATION_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// gRPC status codes used here.
mod code {
    pub const INVALID_ARGUMENT: u16 = 3;
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    pub const UNIMPLEMENTED: u16 = 12;
    pub const INTERNAL: u16 = 13;
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    unix: Option<(PathBuf, UnixListener)>,
    tcp: Option<TcpListener>,
    /// The bound TCP address.
    pub tcp_addr: Option<SocketAddr>,
}

fn listen_error(what: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Listen { what, source }
}

/// Binds the Unix socket (replacing a stale one, creating its directory) and
/// the TCP address.
pub async fn bind(socket: Option<&Path>, tcp: Option<SocketAddr>) -> Result<Listeners, StartError> {
    let unix = match socket {
        Some(path) => {
            let what = format!("unix socket {}", path.display());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(listen_error(what.clone()))?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(listen_error(what)(e)),
            }
            let listener = UnixListener::bind(path).map_err(listen_error(what))?;
            Some((path.to_path_buf(), listener))
        }
        None => None,
    };
    let (tcp, tcp_addr) = match tcp {
        Some(addr) => {
            let what = format!("tcp {addr}");
            let listener = TcpListener::bind(addr)
                .await
                .map_err(listen_error(what.clone()))?;
            let bound = listener.local_addr().map_err(listen_error(what))?;
            (Some(listener), Some(bound))
        }
        None => (None, None),
    };
    Ok(Listeners {
        unix,
        tcp,
        tcp_addr,
    })
}

/// A gRPC unary response body: at most one message, then the trailers.
#[derive(Debug)]
pub struct UnaryBody {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl UnaryBody {
    fn ok(message: Bytes) -> UnaryBody {
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        UnaryBody {
            message: Some(message),
            trailers: Some(trailers),
        }
    }

    fn empty() -> UnaryBody {
        UnaryBody {
            message: None,
            trailers: None,
        }
    }
}

impl Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

/// The per-connection service: Check on the fast path, everything else to
/// `fallback` (tonic's health service).
#[derive(Clone)]
struct Handler<H> {
    shared: Arc<Shared>,
    fallback: H,
}

type HandlerResponse = Response<Either<UnaryBody, tonic::body::BoxBody>>;

impl<H> hyper::service::Service<Request<Incoming>> for Handler<H>
where
    H: tower::Service<
            Request<Incoming>,
            Response = Response<tonic::body::BoxBody>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    H::Future: Send + 'static,
{
    type Response = HandlerResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HandlerResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if request.uri().path() == CHECK_PATH {
            let shared = self.shared.clone();
            Box::pin(async move { Ok(serve_check(&shared, request).await.map(Either::Left)) })
        } else {
            let fallback = self.fallback.clone();
            Box::pin(async move {
                let response = match fallback.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok(response.map(Either::Right))
            })
        }
    }
}

/// A trailers-only gRPC error response.
fn grpc_error(code: u16, message: &str) -> Response<UnaryBody> {
    let mut response = Response::new(UnaryBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    // grpc-message is percent-encoded; our messages are plain ASCII words.
    let message: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&message.replace('%', "%25")) {
        headers.insert("grpc-message", value);
    }
    response
}

/// One gRPC message frame around `message`.
fn frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    // Responses are a few hundred bytes; encoded_len always fits in u32.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // BytesMut grows as needed, so encoding cannot fail.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// The framed response for an outcome; the allow answer is encoded once.
fn encoded_response(outcome: &Outcome) -> Bytes {
    static ALLOW: OnceLock<Bytes> = OnceLock::new();
    if outcome.allow {
        return ALLOW.get_or_init(|| frame(&response(outcome))).clone();
    }
    frame(&response(outcome))
}

/// Serves one Check: collects the framed request, decodes, decides, answers.
async fn serve_check(shared: &Shared, request: Request<Incoming>) -> Response<UnaryBody> {
    // From the request's headers on: the duration metric includes waiting
    // for the message, not only deciding it.
    let started = Instant::now();
    if let Some(encoding) = request.headers().get("grpc-encoding") {
        if encoding.as_bytes() != b"identity" {
            let mut r = grpc_error(code::UNIMPLEMENTED, "compressed requests are not supported");
            r.headers_mut()
                .insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
            return r;
        }
    }
    let body = match Limited::new(request.into_body(), MAX_MESSAGE_BYTES + 5)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return if e.is::<http_body_util::LengthLimitError>() {
                grpc_error(code::RESOURCE_EXHAUSTED, "check request too large")
            } else {
                grpc_error(code::INTERNAL, "cannot read the request body")
            };
        }
    };
    let message = match unframe(&body) {
        Ok(m) => m,
        Err(e) => return grpc_error(e.0, e.1),
    };
    let facts = match crate::wire::decode_check_request(message) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(error = %e, "undecodable check request");
            return grpc_error(code::INTERNAL, &format!("cannot decode CheckRequest: {e}"));
        }
    };
    let outcome = check_facts(shared, &facts);
    let encoded = encoded_response(&outcome);
    record(shared, &outcome, started);
    let mut response = Response::new(UnaryBody::ok(encoded));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The one message of a unary gRPC request body.
fn unframe(mut body: &[u8]) -> Result<&[u8], (u16, &'static str)> {
    if body.len() < 5 {
        return Err((code::INVALID_ARGUMENT, "missing request message"));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err((code::UNIMPLEMENTED, "compressed messages are not supported"));
    }
    if len > MAX_MESSAGE_BYTES {
        return Err((code::RESOURCE_EXHAUSTED, "check request too large"));
    }
    match len.cmp(&body.len()) {
        std::cmp::Ordering::Equal => Ok(body),
        std::cmp::Ordering::Greater => Err((code::INTERNAL, "truncated request message")),
        std::cmp::Ordering::Less => Err((code::UNIMPLEMENTED, "more than one request message")),
    }
}

fn http2() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(1024 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_frame_size(64 * 1024)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .auto_date_header(false);
    builder
}

/// A listener the server accepts connections from.
trait Listener: Send + 'static {
    /// The accepted stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Accepts the next connection.
    fn accept_io(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for UnixListener {
    type Io = ReadInterestStream;

    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        // Registered for read readiness only: no wake-up each time Envoy
        // reads an answer (see `crate::uds`).
        let (stream, _) = self.accept().await?;
        ReadInterestStream::from_tokio(stream)
    }
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        let (stream, _) = self.accept().await?;
        // Small unary messages: send them at once.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Accepts connections until `shutdown`, then stops accepting, asks every
/// connection to finish (HTTP/2 GOAWAY; in-flight Checks complete) and waits
/// for them.
async fn serve<L, H>(listener: L, handler: Handler<H>, shutdown: watch::Receiver<bool>)
where
    L: Listener,
    Handler<H>: hyper::service::Service<Request<Incoming>, Response = HandlerResponse, Error = Infallible>
        + Clone
        + Send
        + 'static,
    <Handler<H> as hyper::service::Service<Request<Incoming>>>::Future: Send + 'static,
{
    let builder = http2();
    let mut connections = JoinSet::new();
    let stop = shutdown_signal(shutdown.clone());
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept_io() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of file descriptors and the like: back off briefly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), handler.clone());
        let stop = shutdown_signal(shutdown.clone());
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::pin!(stop);
            tokio::select! {
                result = &mut connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = &mut stop => connection.as_mut().graceful_shutdown(),
            }
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// The handler: Check, and `grpc.health.v1` reporting the Authorization
/// service SERVING.
async fn handler(shared: Arc<Shared>) -> Handler<HealthServer<impl Health>> {
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(AUTHORIZATION_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    Handler {
        shared,
        fallback: health,
    }
}

/// Spawns one server task per listener; each stops when `shutdown` turns true.
pub fn spawn(
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some((_path, listener)) = listeners.unix {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            serve(listener, handler(shared).await, shutdown).await;
        }));
    }
    if let Some(listener) = listeners.tcp {
        tasks.push(tokio::spawn(async move {
            serve(listener, handler(shared).await, shutdown).await;
        }));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframes_one_message() {
        type Case = (&'static [u8], Result<&'static [u8], u16>);
        let cases: &[Case] = &[
            (b"\0\0\0\0\x02ab", Ok(b"ab")),
            (b"\0\0\0\0\0", Ok(b"")),
            (b"\0\0\0", Err(code::INVALID_ARGUMENT)),
            (b"\x01\0\0\0\x02ab", Err(code::UNIMPLEMENTED)),
            (b"\0\0\0\0\x03ab", Err(code::INTERNAL)),
            (b"\0\0\0\0\x01ab", Err(code::UNIMPLEMENTED)),
            (b"\0\xff\xff\xff\xff", Err(code::RESOURCE_EXHAUSTED)),
        ];
        for (input, want) in cases {
            assert_eq!(unframe(input).map_err(|e| e.0), *want, "{input:?}");
        }
    }

    #[test]
    fn allow_responses_are_encoded_once_and_decode() {
        let outcome = Outcome {
            allow: true,
            status: 403,
            redirect: None,
            action: "allowed",
            cause: crate::decide::Cause::Clean,
            service: "shop/web".into(),
            rule_ids: Vec::new(),
            denied_by_policy: None,
            event: None,
        };
        let a = encoded_response(&outcome);
        let b = encoded_response(&outcome);
        assert_eq!(a.as_ptr(), b.as_ptr(), "shared, not re-encoded");
        let message = unframe(&a).expect("framed");
        let decoded =
            xds_api::pb::envoy::service::auth::v3::CheckResponse::decode(message).expect("decodes");
        assert_eq!(decoded, response(&outcome));

        let denied = Outcome {
            allow: false,
            action: "denied",
            ..outcome
        };
        let message = encoded_response(&denied);
        let decoded = xds_api::pb::envoy::service::auth::v3::CheckResponse::decode(
            unframe(&message).expect("framed"),
        )
        .expect("decodes");
        assert_eq!(decoded.status.map(|s| s.code), Some(7));
    }
}
