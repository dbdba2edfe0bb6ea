//! A fake control plane for tests: a real tonic `PolicySync` server on
//! 127.0.0.1 that hands each enforcer connection to the test, and collects
//! the acks and event reports it sends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use palisade_proto::sync::v1 as pb;
use palisade_proto::sync::v1::policy_sync_server::{PolicySync, PolicySyncServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// One enforcer connection: its Hello, and the sender of its control stream
/// (drop it to close the stream).
#[derive(Debug)]
pub struct Connection {
    /// What the enforcer said first.
    pub hello: pb::Hello,
    /// Messages to the enforcer.
    pub tx: mpsc::Sender<Result<pb::ControlMessage, Status>>,
}

impl Connection {
    /// Sends a full state.
    pub async fn send_state(&self, state: pb::State) {
        self.tx
            .send(Ok(pb::ControlMessage {
                kind: Some(pb::control_message::Kind::State(state)),
            }))
            .await
            .expect("enforcer stream open");
    }

    /// Sends the InSync marker.
    pub async fn send_in_sync(&self, version: &str) {
        self.tx
            .send(Ok(pb::ControlMessage {
                kind: Some(pb::control_message::Kind::InSync(pb::InSync {
                    version: version.to_string(),
                })),
            }))
            .await
            .expect("enforcer stream open");
    }
}

struct Service {
    connections: mpsc::UnboundedSender<Connection>,
    acks: mpsc::UnboundedSender<pb::Ack>,
    events: mpsc::UnboundedSender<pb::EventReport>,
}

#[tonic::async_trait]
impl PolicySync for Service {
    type SyncStream = ReceiverStream<Result<pb::ControlMessage, Status>>;

    async fn sync(
        &self,
        request: Request<Streaming<pb::EnforcerMessage>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await?.and_then(|m| m.kind) {
            Some(pb::enforcer_message::Kind::Hello(h)) => h,
            other => {
                return Err(Status::invalid_argument(format!(
                    "expected hello, got {other:?}"
                )))
            }
        };
        let (tx, rx) = mpsc::channel(16);
        let _ = self.connections.send(Connection { hello, tx });
        let acks = self.acks.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                match message.kind {
                    Some(pb::enforcer_message::Kind::Ack(a)) => {
                        let _ = acks.send(a);
                    }
                    Some(pb::enforcer_message::Kind::Events(e)) => {
                        let _ = events.send(e);
                    }
                    _ => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The fake control plane.
pub struct FakeControlPlane {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Enforcer connections, in order.
    pub connections: mpsc::UnboundedReceiver<Connection>,
    /// Acks from every connection.
    pub acks: mpsc::UnboundedReceiver<pb::Ack>,
    /// Event reports from every connection.
    pub events: mpsc::UnboundedReceiver<pb::EventReport>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeControlPlane {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> FakeControlPlane {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind control plane");
        let addr = listener.local_addr().expect("addr");
        let (conn_tx, connections) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let service = Service {
            connections: conn_tx,
            acks: ack_tx,
            events: ev_tx,
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(
                    PolicySyncServer::new(service).max_encoding_message_size(256 * 1024 * 1024),
                )
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        FakeControlPlane {
            addr,
            connections,
            acks,
            events,
            task,
        }
    }

    /// Stops serving (existing streams break).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// The next connection (bounded wait).
    pub async fn next_connection(&mut self, limit: Duration) -> Connection {
        tokio::time::timeout(limit, self.connections.recv())
            .await
            .expect("an enforcer connects in time")
            .expect("control plane running")
    }

    /// The next ack for `version` (earlier acks are skipped; bounded wait).
    pub async fn ack_for(&mut self, version: &str, limit: Duration) -> pb::Ack {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ack = tokio::time::timeout_at(deadline, self.acks.recv())
                .await
                .unwrap_or_else(|_| panic!("no ack for {version} in {limit:?}"))
                .expect("control plane running");
            if ack.version == version {
                return ack;
            }
        }
    }
}

/// A `palisade.sync.v1.State` with services on one ruleset name each.
pub fn pb_ruleset(source: &palisade_enforcer::state::RulesetSource) -> pb::Ruleset {
    pb::Ruleset {
        name: source.name.clone(),
        hash: source.hash.clone(),
        files: source
            .files
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Settings a test control plane sends (WAF and ALP on, logs collected).
pub fn pb_settings(default_ruleset: &str) -> pb::Settings {
    pb::Settings {
        waf_enabled: true,
        alp_enabled: true,
        default_waf_mode: pb::WafMode::On as i32,
        failure_mode_allow: false,
        unknown_service_allow: false,
        body_limit_bytes: 0,
        collect_logs: true,
        log_interval_seconds: 1,
        log_requests_per_interval: 1000,
        default_ruleset: default_ruleset.to_string(),
    }
}

/// A service with labels `app: NAME`.
pub fn pb_service(namespace: &str, name: &str, mode: pb::WafMode) -> pb::Service {
    pb::Service {
        name: name.to_string(),
        namespace: namespace.to_string(),
        waf_mode: mode as i32,
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// A path match.
pub fn pb_path(exact: Option<&str>, prefix: Option<&str>) -> pb::PathMatch {
    pb::PathMatch {
        kind: match (exact, prefix) {
            (Some(e), _) => Some(pb::path_match::Kind::Exact(e.to_string())),
            (_, Some(p)) => Some(pb::path_match::Kind::Prefix(p.to_string())),
            _ => None,
        },
    }
}

/// A rule with an HTTP match.
pub fn pb_rule(action: &str, methods: &[&str], paths: Vec<pb::PathMatch>) -> pb::Rule {
    pb::Rule {
        action: action.to_string(),
        http: Some(pb::HttpMatch {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            paths,
        }),
        ..Default::default()
    }
}
