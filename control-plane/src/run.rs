//! Wiring: a source feeds the model task; the model is translated into xDS
//! snapshots and policy-sync states; the ADS, policy-sync and admin (status,
//! metrics) servers serve them. [`start`] binds every listener first (port 0
//! is fine) and returns their addresses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use palisade_proto::sync::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;
use tracing::{error, info};

use crate::leader::{always_leader, LeaderElection, LeaderElector, LeaseConfig};
use crate::model::{Model, ModelBuilder, ModelTask};
use crate::source::directory::{DirectoryConfig, DirectorySource};
use crate::source::Inputs;
use crate::status::Status;
use crate::sync::{state_from_model, SyncServer};
use crate::validate::{RulesetCompiler, WafCompiler};
use crate::xds::ads::AdsServer;
use crate::xds::translate::{TranslateConfig, Translator};
use crate::xds::XdsSnapshot;

/// Where the inputs come from.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// A policies directory.
    Directory(DirectoryConfig),
    /// The Kubernetes API (in-cluster or kubeconfig); the CRS directory and
    /// modsecdefault file, when given, add a `crs` ruleset.
    Kubernetes {
        /// CRS release directory.
        crs_dir: Option<PathBuf>,
        /// Engine defaults for the CRS ruleset.
        modsecdefault: Option<PathBuf>,
        /// With a Lease, only its holder writes Events and status; without,
        /// this replica always writes.
        leader_election: Option<LeaseConfig>,
    },
}

/// Everything [`start`] needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The source.
    pub source: SourceConfig,
    /// ADS (xDS) listen address.
    pub xds_listen: SocketAddr,
    /// Policy-sync listen address.
    pub sync_listen: SocketAddr,
    /// Admin (/status, /metrics, /healthz, /readyz) listen address.
    pub admin_listen: SocketAddr,
    /// What node Envoys are told beyond the model.
    pub translate: TranslateConfig,
}

/// Errors starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No Kubernetes client could be made.
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[source] kube::Error),
    /// The TLS configuration was refused by the gRPC server.
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// A running control plane.
#[derive(Debug)]
pub struct Running {
    /// Bound ADS address.
    pub xds_addr: SocketAddr,
    /// Bound policy-sync address.
    pub sync_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Status registry.
    pub status: Status,
    /// Published models.
    pub models: watch::Receiver<Option<Arc<Model>>>,
    /// Published xDS snapshots.
    pub snapshots: watch::Receiver<Option<Arc<XdsSnapshot>>>,
    /// Whether this replica may write to the Kubernetes API (always `true`
    /// without leader election, and with a directory source, which writes
    /// nothing).
    pub leader: watch::Receiver<bool>,
    /// The leader election, when one runs (Kubernetes source).
    election: Option<LeaderElection>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops every task at once (the Lease, if held, expires on its own).
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Stops gracefully: a leader first steps down and releases its Lease
    /// (so another replica takes over at its next round, not after the
    /// Lease expires), then every task is stopped.
    pub async fn stop(mut self) {
        if let Some(election) = self.election.take() {
            election.step_down().await;
        }
        self.shutdown();
    }

    /// Waits until any task ends (they run until shutdown).
    pub async fn wait(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        if tasks.is_empty() {
            return;
        }
        let (_, _, rest) = futures::future::select_all(tasks).await;
        self.tasks = rest;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Starts everything for `config`, with plain-text xDS and policy sync.
pub async fn start(config: RunConfig) -> Result<Running, RunError> {
    start_with_tls(config, None).await
}

/// Starts everything for `config`; with `tls` (see [`crate::tls`]), xDS and
/// policy sync are served over TLS and require client certificates.
pub async fn start_with_tls(
    config: RunConfig,
    tls: Option<ServerTlsConfig>,
) -> Result<Running, RunError> {
    let (inputs_tx, inputs_rx) = watch::channel(Arc::new(Inputs::default()));
    let mut tasks = Vec::new();
    let mut client = None;
    let mut leader = always_leader();
    let mut election: Option<LeaderElection> = None;
    let source_task = match config.source.clone() {
        SourceConfig::Directory(dir) => {
            info!("directory source: no leader election, nothing is written to Kubernetes");
            let source = DirectorySource::new(dir);
            tokio::spawn(source.run(inputs_tx))
        }
        SourceConfig::Kubernetes {
            crs_dir,
            modsecdefault,
            leader_election,
        } => {
            let c = kube::Client::try_default().await.map_err(RunError::Kube)?;
            client = Some(c.clone());
            match leader_election {
                Some(lease) => {
                    let started = LeaderElector::new(c.clone(), lease).spawn();
                    leader = started.receiver();
                    election = Some(started);
                }
                None => info!("leader election off: this replica writes Events and status"),
            }
            let source = crate::source::kube::KubeSource::new(c, crs_dir, modsecdefault);
            tokio::spawn(async move { source.run(inputs_tx).await })
        }
    };
    tasks.push(source_task);
    let mut running =
        start_with_inputs_and_tls(config, inputs_rx, Arc::new(WafCompiler), tls).await?;
    if let Some(c) = client {
        let reporter = crate::source::kube::ProblemReporter::with_leader(c, leader.clone());
        tasks.push(tokio::spawn(reporter.run(running.models.clone())));
    }
    running.leader = leader;
    running.election = election;
    running.tasks.extend(tasks);
    Ok(running)
}

/// Starts the model, translation and servers on inputs from elsewhere (tests,
/// embedders).
pub async fn start_with_inputs(
    config: RunConfig,
    inputs: watch::Receiver<Arc<Inputs>>,
    compiler: Arc<dyn RulesetCompiler>,
) -> Result<Running, RunError> {
    start_with_inputs_and_tls(config, inputs, compiler, None).await
}

/// The gRPC server settings shared by xDS and policy sync, with TLS when given.
fn grpc_server(tls: Option<&ServerTlsConfig>) -> Result<tonic::transport::Server, RunError> {
    let server =
        tonic::transport::Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)));
    match tls {
        Some(tls) => server.tls_config(tls.clone()).map_err(RunError::Tls),
        None => Ok(server),
    }
}

/// [`start_with_inputs`], serving xDS and policy sync over `tls` when given.
pub async fn start_with_inputs_and_tls(
    config: RunConfig,
    inputs: watch::Receiver<Arc<Inputs>>,
    compiler: Arc<dyn RulesetCompiler>,
    tls: Option<ServerTlsConfig>,
) -> Result<Running, RunError> {
    let mut xds_server = grpc_server(tls.as_ref())?;
    let mut sync_server = grpc_server(tls.as_ref())?;
    let xds_listener = bind(config.xds_listen).await?;
    let sync_listener = bind(config.sync_listen).await?;
    let admin_listener = bind(config.admin_listen).await?;
    let local = |l: &TcpListener, a| l.local_addr().unwrap_or(a);
    let xds_addr = local(&xds_listener, config.xds_listen);
    let sync_addr = local(&sync_listener, config.sync_listen);
    let admin_addr = local(&admin_listener, config.admin_listen);

    let status = Status::new();
    let (models_tx, models_rx) = watch::channel(None);
    let (snap_tx, snap_rx) = watch::channel(None::<Arc<XdsSnapshot>>);
    let (state_tx, state_rx) = watch::channel(None::<Arc<pb::State>>);
    let mut tasks = Vec::new();
    tasks.push(crate::alerts::spawn(inputs.clone(), &status));

    tasks.push(tokio::spawn(
        ModelTask::new(ModelBuilder::new(compiler)).run(inputs, models_tx),
    ));

    // Model -> xDS snapshot (incremental: the translator keeps what it built
    // for unchanged services) + policy-sync state. The snapshot is published
    // before the state is built, so Envoys are not kept waiting for it.
    let mut translator = Translator::new(config.translate.clone());
    let mut models = models_rx.clone();
    let st = status.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let model = models.borrow_and_update().clone();
            if let Some(model) = model {
                st.model(&model.version, model.services.len(), &model.problems);
                let m = Arc::clone(&model);
                let built = tokio::task::spawn_blocking(move || {
                    let snapshot = translator.translate(&m);
                    (translator, snapshot)
                })
                .await;
                let snapshot = match built {
                    Ok((t, snapshot)) => {
                        translator = t;
                        snapshot
                    }
                    Err(e) => {
                        error!(error = %e, "translation failed; xDS is no longer updated");
                        return;
                    }
                };
                snap_tx.send_if_modified(|cur| match cur {
                    Some(prev) if prev.same_versions(&snapshot) => false,
                    _ => {
                        let snapshot = match cur.as_deref() {
                            // The translator's deltas are from its previous
                            // snapshot, which is the published one unless
                            // that one was skipped as equal.
                            Some(prev) if !deltas_from(&snapshot, prev) => {
                                snapshot.with_delta_from(prev)
                            }
                            _ => snapshot,
                        };
                        *cur = Some(Arc::new(snapshot));
                        true
                    }
                });
                match tokio::task::spawn_blocking(move || state_from_model(&model)).await {
                    Ok(state) => {
                        state_tx.send_if_modified(|cur| {
                            if cur.as_ref().map(|s| &s.version) == Some(&state.version) {
                                false
                            } else {
                                *cur = Some(Arc::new(state));
                                true
                            }
                        });
                    }
                    Err(e) => error!(error = %e, "policy-sync state build failed"),
                }
            }
            if models.changed().await.is_err() {
                return;
            }
        }
    }));

    let ads = AdsServer::new(snap_rx.clone(), status.clone()).into_service();
    tasks.push(tokio::spawn(async move {
        let result = xds_server
            .add_service(ads)
            .serve_with_incoming(TcpListenerStream::new(xds_listener))
            .await;
        if let Err(e) = result {
            error!(error = %e, "xDS server stopped");
        }
    }));
    let sync = SyncServer::new(state_rx, status.clone()).into_service();
    tasks.push(tokio::spawn(async move {
        let result = sync_server
            .add_service(sync)
            .serve_with_incoming(TcpListenerStream::new(sync_listener))
            .await;
        if let Err(e) = result {
            error!(error = %e, "policy-sync server stopped");
        }
    }));
    let app = admin_router(status.clone(), models_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, app).await {
            error!(error = %e, "admin server stopped");
        }
    }));
    info!(%xds_addr, %sync_addr, %admin_addr, tls = tls.is_some(), "control plane listening");
    Ok(Running {
        xds_addr,
        sync_addr,
        admin_addr,
        status,
        models: models_rx,
        snapshots: snap_rx,
        leader: always_leader(),
        election: None,
        tasks,
    })
}

/// True when every recorded delta of `snapshot` starts from `prev`'s version
/// of its type.
fn deltas_from(snapshot: &XdsSnapshot, prev: &XdsSnapshot) -> bool {
    snapshot.types.keys().all(|t| {
        snapshot.deltas.get(t).map(|d| &d.from_version) == prev.types.get(t).map(|p| &p.version)
    })
}

#[derive(Clone)]
struct Admin {
    status: Status,
    models: watch::Receiver<Option<Arc<Model>>>,
}

/// The admin HTTP routes: `/status` (JSON), `/metrics` (Prometheus text),
/// `/model` (the current model as JSON), `/healthz`, `/readyz`.
fn admin_router(status: Status, models: watch::Receiver<Option<Arc<Model>>>) -> axum::Router {
    axum::Router::new()
        .route(
            "/status",
            get(|AxumState(a): AxumState<Admin>| async move { axum::Json(a.status.report()) }),
        )
        .route(
            "/metrics",
            get(|AxumState(a): AxumState<Admin>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    a.status.metrics(),
                )
            }),
        )
        .route(
            "/model",
            get(|AxumState(a): AxumState<Admin>| async move {
                let model = a.models.borrow().clone();
                match model {
                    Some(m) => {
                        axum::Json(serde_json::to_value(&*m).unwrap_or_default()).into_response()
                    }
                    None => (StatusCode::SERVICE_UNAVAILABLE, "no model yet").into_response(),
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|AxumState(a): AxumState<Admin>| async move {
                if a.models.borrow().is_some() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "no model yet")
                }
            }),
        )
        .with_state(Admin { status, models })
}
