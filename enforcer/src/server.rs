//! The gRPC server: ext_authz `Authorization` and `grpc.health.v1` on a Unix
//! socket and optionally on TCP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use xds_api::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;

use crate::check::AuthorizationService;
use crate::{shutdown_signal, Shared, StartError};

/// Largest Check request accepted (bodies included), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

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

async fn router(shared: Arc<Shared>) -> tonic::transport::server::Router {
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<AuthorizationServer<AuthorizationService>>()
        .await;
    let authz = AuthorizationServer::new(AuthorizationService::new(shared))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    Server::builder()
        .tcp_nodelay(true)
        .add_service(health)
        .add_service(authz)
}

/// Spawns one server task per listener; each stops when `shutdown` turns true.
pub fn spawn(
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some((path, listener)) = listeners.unix {
        let shared = shared.clone();
        let stop = shutdown_signal(shutdown.clone());
        tasks.push(tokio::spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            let result = router(shared)
                .await
                .serve_with_incoming_shutdown(incoming, stop)
                .await;
            if let Err(e) = result {
                tracing::error!(socket = %path.display(), error = %e, "grpc server failed");
            }
        }));
    }
    if let Some(listener) = listeners.tcp {
        let stop = shutdown_signal(shutdown);
        tasks.push(tokio::spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            let result = router(shared)
                .await
                .serve_with_incoming_shutdown(incoming, stop)
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "grpc server failed");
            }
        }));
    }
    tasks
}
