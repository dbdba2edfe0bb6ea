//! The policy-sync client: one bidirectional stream to the control plane.
//!
//! The enforcer sends `Hello`, then applies every `State` it receives (built
//! off the async workers) and answers each with an `Ack` (applied, or
//! rejected with the reason while the previous snapshot stays active). Event
//! lines queued by the [`EventSink`](crate::events::EventSink) go up as
//! `EventReport`s. When the stream breaks, the client reconnects with
//! exponential backoff and the last snapshot keeps serving. An `https://`
//! control plane is reached over mutual TLS ([`crate::tls`]).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use palisade_proto::sync::v1 as pb;
use palisade_proto::sync::v1::policy_sync_client::PolicySyncClient;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::ControlPlaneAddr;
use crate::state::StateSpec;
use crate::Shared;

/// Most events per `EventReport`.
pub const REPORT_BATCH: usize = 256;
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Largest State accepted (rulesets included), in bytes.
pub const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Connecting failed.
    #[error("connecting: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The stream failed.
    #[error("stream: {0}")]
    Stream(#[from] tonic::Status),
    /// The outbound half closed.
    #[error("outbound stream closed")]
    Outbound,
}

/// Exponential backoff between reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The delay before the next attempt (doubles each time, up to [`BACKOFF_MAX`]).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    /// Back to the shortest delay (after a session that got somewhere).
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

async fn connect(addr: &ControlPlaneAddr) -> Result<Channel, tonic::transport::Error> {
    match addr {
        ControlPlaneAddr::Http(uri) => {
            Endpoint::from_shared(uri.clone())?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect()
                .await
        }
        ControlPlaneAddr::Https { uri, tls } => {
            let tls = tls.as_ref().map(|t| t.client_config()).unwrap_or_default();
            Endpoint::from_shared(uri.clone())?
                .tls_config(tls)?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect()
                .await
        }
        ControlPlaneAddr::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://palisade-control-plane")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
        }
    }
}

/// How a session ended without error.
enum End {
    Shutdown,
    Closed,
}

fn ack(version: String, result: Result<(), String>) -> pb::EnforcerMessage {
    let (applied, error) = match result {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    };
    pb::EnforcerMessage {
        kind: Some(pb::enforcer_message::Kind::Ack(pb::Ack {
            version,
            applied,
            error,
        })),
    }
}

/// Applies one State off the async workers; returns the Ack result.
async fn apply_state(shared: &Arc<Shared>, state: pb::State) -> Result<(), String> {
    let version = state.version.clone();
    if shared.snapshots.version().as_deref() == Some(version.as_str()) {
        tracing::debug!(%version, "state already active");
        return Ok(());
    }
    let spec = StateSpec::try_from(state).map_err(|e| {
        shared.metrics.snapshot_update(false, &version);
        e.to_string()
    })?;
    let worker = shared.clone();
    match tokio::task::spawn_blocking(move || worker.apply(&spec).map(|_| ())).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => {
            shared.metrics.snapshot_update(false, &version);
            Err(format!("internal error while building the snapshot: {e}"))
        }
    }
}

async fn session(
    addr: &ControlPlaneAddr,
    shared: &Arc<Shared>,
    upstream: &mut mpsc::Receiver<String>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<End, SyncError> {
    let channel = connect(addr).await?;
    let mut client = PolicySyncClient::new(channel)
        .max_decoding_message_size(MAX_STATE_BYTES)
        .max_encoding_message_size(MAX_STATE_BYTES);
    let (tx, rx) = mpsc::channel(64);
    let hello = pb::EnforcerMessage {
        kind: Some(pb::enforcer_message::Kind::Hello(pb::Hello {
            node: shared.node.clone(),
            enforcer_version: env!("CARGO_PKG_VERSION").to_string(),
            active_version: shared.snapshots.version().unwrap_or_default(),
        })),
    };
    tx.send(hello).await.map_err(|_| SyncError::Outbound)?;
    let mut inbound = client.sync(ReceiverStream::new(rx)).await?.into_inner();
    shared.metrics.sync_connected(true);
    tracing::info!("policy sync connected");
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(End::Shutdown);
                }
            }
            message = inbound.message() => {
                let Some(message) = message? else {
                    return Ok(End::Closed);
                };
                backoff.reset();
                match message.kind {
                    Some(pb::control_message::Kind::State(state)) => {
                        let version = state.version.clone();
                        let result = apply_state(shared, state).await;
                        tx.send(ack(version, result)).await.map_err(|_| SyncError::Outbound)?;
                    }
                    Some(pb::control_message::Kind::InSync(in_sync)) => {
                        tracing::info!(version = %in_sync.version, "in sync with the control plane");
                    }
                    None => tracing::debug!("empty control message"),
                }
            }
            Some(line) = upstream.recv() => {
                let mut events_json = vec![line];
                while events_json.len() < REPORT_BATCH {
                    match upstream.try_recv() {
                        Ok(l) => events_json.push(l),
                        Err(_) => break,
                    }
                }
                let report = pb::EnforcerMessage {
                    kind: Some(pb::enforcer_message::Kind::Events(pb::EventReport {
                        events_json,
                        suppressed: shared.events.take_unreported(),
                    })),
                };
                tx.send(report).await.map_err(|_| SyncError::Outbound)?;
            }
            _ = flush.tick() => {
                let suppressed = shared.events.take_unreported();
                if suppressed > 0 {
                    let report = pb::EnforcerMessage {
                        kind: Some(pb::enforcer_message::Kind::Events(pb::EventReport {
                            events_json: Vec::new(),
                            suppressed,
                        })),
                    };
                    tx.send(report).await.map_err(|_| SyncError::Outbound)?;
                }
            }
        }
    }
}

/// Runs the sync client until `shutdown` turns true, reconnecting with backoff.
pub async fn run(
    addr: ControlPlaneAddr,
    shared: Arc<Shared>,
    mut upstream: mpsc::Receiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let result = session(&addr, &shared, &mut upstream, &mut shutdown, &mut backoff).await;
        shared.metrics.sync_connected(false);
        match result {
            Ok(End::Shutdown) => return,
            Ok(End::Closed) => tracing::warn!("policy sync stream closed by the control plane"),
            Err(e) => tracing::warn!(error = %e, "policy sync failed"),
        }
        let delay = backoff.next_delay();
        tracing::debug!(?delay, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], BACKOFF_MIN);
        assert_eq!(delays[1], BACKOFF_MIN * 2);
        assert_eq!(delays[11], BACKOFF_MAX);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
    }
}
