//! Palisade's node enforcer: the Envoy ext_authz service that applies HTTP
//! policy and the WAF to every request.
//!
//! Envoy asks [`check`] (`envoy.service.auth.v3.Authorization/Check`) over a
//! Unix socket; the answer comes from the active [`snapshot::Snapshot`], an
//! immutable value swapped atomically when the control plane's policy-sync
//! stream ([`sync`]) or a local state file delivers a new state. Decisions are
//! counted in [`metrics`] and the interesting ones logged as [`events`].
//!
//! ```no_run
//! # async fn run() -> Result<(), palisade_enforcer::StartError> {
//! use palisade_enforcer::{config::Config, start};
//!
//! let mut config = Config::with_socket("/tmp/enforcer.sock");
//! config.state = Some("state.yaml".into());
//! let running = start(config).await?;
//! running.wait_for_shutdown_signal().await;
//! # Ok(()) }
//! ```

pub mod check;
pub mod config;
pub mod decide;
pub mod events;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod tls;
pub mod uds;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::Config;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::snapshot::{BuildError, RulesetCache, Snapshot, SnapshotStore};
use crate::state::{StateFile, StateFileError, StateSpec};

/// State shared by the gRPC handlers, the sync client and the metrics endpoint.
#[derive(Debug)]
pub struct Shared {
    /// The active snapshot.
    pub snapshots: SnapshotStore,
    /// Compiled rulesets by hash.
    pub rulesets: RulesetCache,
    /// Metrics.
    pub metrics: Metrics,
    /// Event sink.
    pub events: EventSink,
    /// Allow requests while no snapshot exists.
    pub failure_mode_allow: bool,
    /// Node name.
    pub node: String,
}

impl Shared {
    /// Builds a snapshot from `state` and makes it active; on error the active
    /// snapshot stays. Blocking and CPU-heavy: run it off the async workers.
    pub fn apply(&self, state: &StateSpec) -> Result<Arc<Snapshot>, BuildError> {
        match Snapshot::build(state, &self.rulesets) {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.snapshots.store(snapshot.clone());
                self.metrics.snapshot_update(true, &state.version);
                tracing::info!(
                    version = %state.version,
                    services = snapshot.service_count(),
                    rulesets = snapshot.rulesets().len(),
                    "snapshot applied"
                );
                Ok(snapshot)
            }
            Err(e) => {
                self.metrics.snapshot_update(false, &state.version);
                tracing::warn!(version = %state.version, error = %e, "snapshot rejected");
                Err(e)
            }
        }
    }
}

/// Why the enforcer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding a listener failed.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// Which listener.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The state file cannot be read.
    #[error(transparent)]
    StateFile(#[from] StateFileError),
    /// The state file does not build a snapshot.
    #[error("state file: {0}")]
    State(#[from] BuildError),
}

/// A running enforcer.
#[derive(Debug)]
pub struct Running {
    /// The Unix socket served.
    pub socket: Option<PathBuf>,
    /// The bound TCP address, if any.
    pub tcp_addr: Option<SocketAddr>,
    /// The bound metrics address, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state (snapshot, metrics).
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops every task and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// Runs until SIGINT or SIGTERM, then stops.
    pub async fn wait_for_shutdown_signal(self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

/// Reloads the state file on SIGHUP (a file that fails to load or build is
/// logged and the active snapshot stays).
#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    path: PathBuf,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let stop = shutdown_signal(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            received = hup.recv() => {
                if received.is_none() {
                    return;
                }
            }
        }
        tracing::info!(path = %path.display(), "SIGHUP: reloading the state file");
        let state = match StateFile::load(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "state file not reloaded");
                continue;
            }
        };
        let worker = shared.clone();
        // Errors are logged and counted by `apply`.
        let _ = tokio::task::spawn_blocking(move || worker.apply(&state).map(|_| ())).await;
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the enforcer: loads the state file (if any), binds the listeners,
/// and spawns the servers, the event writer and the sync client.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (events, queues) = EventSink::new(&config.events);
    let shared = Arc::new(Shared {
        snapshots: SnapshotStore::new(),
        rulesets: RulesetCache::new(),
        metrics: Metrics::new(),
        events,
        failure_mode_allow: config.failure_mode_allow,
        node: config.node.clone(),
    });
    if let Some(path) = &config.state {
        let state = StateFile::load(path)?;
        let shared = shared.clone();
        let applied = tokio::task::spawn_blocking(move || shared.apply(&state).map(|_| ()))
            .await
            .unwrap_or_else(|e| {
                Err(BuildError::RulesetPanicked {
                    name: "state file".into(),
                    message: e.to_string(),
                })
            });
        applied?;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    if let Some(lines) = queues.local {
        let output = config.events.clone();
        tasks.push(tokio::spawn(events::write_events(
            output,
            lines,
            shutdown_signal(shutdown_rx.clone()),
        )));
    }

    let listeners = server::bind(config.socket.as_deref(), config.listen_tcp).await?;
    let tcp_addr = listeners.tcp_addr;
    tasks.extend(server::spawn(
        listeners,
        shared.clone(),
        shutdown_rx.clone(),
    ));

    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let (bound, serve) =
            metrics::bind(addr, shared.clone(), shutdown_signal(shutdown_rx.clone()))
                .await
                .map_err(|source| StartError::Listen {
                    what: format!("metrics {addr}"),
                    source,
                })?;
        metrics_addr = Some(bound);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "metrics server failed");
            }
        }));
    }

    #[cfg(unix)]
    if let Some(path) = config.state.clone() {
        // Registered here, before `start` returns, so an early SIGHUP never
        // falls back to the default action (terminate).
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(hup) => tasks.push(tokio::spawn(reload_on_sighup(
                hup,
                path,
                shared.clone(),
                shutdown_rx.clone(),
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the state file will not be reloaded")
            }
        }
    }

    if let Some(addr) = config.control_plane.clone() {
        let span = tracing::info_span!("sync", node = %config.node);
        tasks.push(tokio::spawn(
            sync::run(addr, shared.clone(), queues.upstream, shutdown_rx.clone()).instrument(span),
        ));
    } else {
        // Nobody reports events upstream: drain the queue.
        let mut upstream = queues.upstream;
        let stop = shutdown_signal(shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    line = upstream.recv() => if line.is_none() { return },
                    _ = &mut stop => return,
                }
            }
        }));
    }

    tracing::info!(
        socket = ?config.socket,
        tcp = ?tcp_addr,
        metrics = ?metrics_addr,
        "enforcer started"
    );
    Ok(Running {
        socket: config.socket,
        tcp_addr,
        metrics_addr,
        shared,
        shutdown,
        tasks,
    })
}
