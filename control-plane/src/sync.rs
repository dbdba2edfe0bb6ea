//! The policy-sync server (`palisade.sync.v1.PolicySync`): one stream per
//! enforcer. The enforcer says Hello with its node name; it is sent the full
//! [`State`](pb::State) and `InSync`, then a new State (and `InSync`) whenever the model
//! changes. Acks record which version each node applied; event reports are
//! counted, logged and fed to the alert engine ([`crate::alerts`]).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use palisade_proto::sync::v1 as pb;
use palisade_proto::sync::v1::policy_sync_server::{PolicySync, PolicySyncServer};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Streaming};
use tracing::{debug, info, warn};

use crate::k8s::WafMode;
use crate::model::Model;
use crate::status::{Rejection, Status};
use crate::validate::expand_ports;

/// Largest State message (CRS with its data files is about 1 MB).
pub const MAX_STATE_BYTES: usize = 256 << 20;

/// Order sent for tiers without one (Calico evaluates them last).
pub const TIER_ORDER_LAST: f64 = f64::MAX;

fn waf_mode(mode: WafMode) -> pb::WafMode {
    match mode {
        WafMode::On => pb::WafMode::On,
        WafMode::DetectionOnly => pb::WafMode::DetectionOnly,
        WafMode::Off => pb::WafMode::Off,
    }
}

fn ports(ports: &[String]) -> Vec<u32> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let list: Vec<IntOrString> = ports
        .iter()
        .map(|p| IntOrString::String(p.clone()))
        .collect();
    expand_ports(&list).unwrap_or_default()
}

fn entity(e: &palisade_alp::EntityRuleSpec) -> pb::EntityMatch {
    pb::EntityMatch {
        selector: e.selector.clone(),
        namespace_selector: e.namespace_selector.clone(),
        nets: e.nets.clone(),
        not_nets: e.not_nets.clone(),
        not_selector: e.not_selector.clone(),
        service_accounts: e
            .service_accounts
            .as_ref()
            .map(|sa| pb::ServiceAccountMatch {
                names: sa.names.clone(),
                selector: sa.selector.clone(),
            }),
        ports: ports(&e.ports),
    }
}

/// The State every enforcer gets for `model` (explicit mode: every node's
/// Envoy serves every protected service, so the state is the same on all nodes).
pub fn state_from_model(model: &Model) -> pb::State {
    let s = &model.settings;
    pb::State {
        version: model.version.clone(),
        settings: Some(pb::Settings {
            waf_enabled: s.waf_enabled,
            alp_enabled: s.alp_enabled,
            default_waf_mode: waf_mode(s.default_waf_mode) as i32,
            failure_mode_allow: s.failure_mode_allow,
            unknown_service_allow: s.failure_mode_allow,
            body_limit_bytes: u64::from(s.body_limit_bytes),
            collect_logs: s.collect_logs,
            log_interval_seconds: s.log_interval_seconds,
            log_requests_per_interval: s.log_requests_per_interval,
            default_ruleset: s.default_ruleset.clone(),
        }),
        services: model
            .services
            .values()
            .map(|svc| pb::Service {
                name: svc.key.name.clone(),
                namespace: svc.key.namespace.clone(),
                waf_mode: waf_mode(svc.mode) as i32,
                ruleset: svc.ruleset.clone(),
                labels: svc.labels.clone().into_iter().collect(),
                namespace_labels: svc.namespace_labels.clone().into_iter().collect(),
                service_account: svc.service_account.clone(),
                cluster_ips: svc.cluster_ips.clone(),
                ports: svc.ports.iter().map(|p| u32::from(p.port)).collect(),
                policies: svc.policies.clone(),
            })
            .collect(),
        rulesets: model
            .rulesets
            .values()
            .map(|r| pb::Ruleset {
                name: r.name.clone(),
                hash: r.hash.clone(),
                files: r
                    .files
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
        tiers: model
            .tiers
            .iter()
            .map(|t| pb::Tier {
                name: t.name.clone(),
                order: t.order.unwrap_or(TIER_ORDER_LAST),
                default_action: t.default_action.clone().unwrap_or_else(|| "Deny".into()),
                policies: t
                    .policies
                    .iter()
                    .map(|p| pb::Policy {
                        name: p.name.clone(),
                        order: p.order.unwrap_or(0.0),
                        has_order: p.order.is_some(),
                        selector: p.selector.clone(),
                        namespace_selector: p.namespace_selector.clone(),
                        service_account_selector: p.service_account_selector.clone(),
                        types: p.types.clone(),
                        ingress: p
                            .ingress
                            .iter()
                            .map(|r| pb::Rule {
                                action: r.action.clone(),
                                http: r.http.as_ref().map(|h| pb::HttpMatch {
                                    methods: h.methods.clone(),
                                    paths: h
                                        .paths
                                        .iter()
                                        .map(|m| pb::PathMatch {
                                            kind: match (&m.exact, &m.prefix) {
                                                (Some(e), _) => {
                                                    Some(pb::path_match::Kind::Exact(e.clone()))
                                                }
                                                (None, Some(p)) => {
                                                    Some(pb::path_match::Kind::Prefix(p.clone()))
                                                }
                                                (None, None) => None,
                                            },
                                        })
                                        .collect(),
                                }),
                                source: Some(entity(&r.source)),
                                destination: Some(entity(&r.destination)),
                                protocol: r.protocol.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        workloads: model
            .workloads
            .iter()
            .map(|w| pb::Workload {
                ips: w.ips.clone(),
                namespace: w.namespace.clone(),
                pod: w.pod.clone(),
                service_account: w.service_account.clone(),
                labels: w.labels.clone().into_iter().collect(),
                namespace_labels: w.namespace_labels.clone().into_iter().collect(),
                service_account_labels: Default::default(),
            })
            .collect(),
    }
}

/// States published to the server (`None` until the first model).
pub type StateReceiver = watch::Receiver<Option<Arc<pb::State>>>;

/// The PolicySync implementation; cheap to clone.
#[derive(Clone, Debug)]
pub struct SyncServer {
    states: StateReceiver,
    status: Status,
}

impl SyncServer {
    /// A server for `states`, recording into `status`.
    pub fn new(states: StateReceiver, status: Status) -> SyncServer {
        SyncServer { states, status }
    }

    /// The tonic service.
    pub fn into_service(self) -> PolicySyncServer<SyncServer> {
        PolicySyncServer::new(self)
            .max_decoding_message_size(MAX_STATE_BYTES)
            .max_encoding_message_size(MAX_STATE_BYTES)
    }
}

type ControlStream = Pin<Box<dyn Stream<Item = Result<pb::ControlMessage, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl PolicySync for SyncServer {
    type SyncStream = ControlStream;

    async fn sync(
        &self,
        request: Request<Streaming<pb::EnforcerMessage>>,
    ) -> Result<Response<Self::SyncStream>, tonic::Status> {
        let (tx, rx) = mpsc::channel(4);
        let server = self.clone();
        tokio::spawn(async move { server.stream(request.into_inner(), tx).await });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl SyncServer {
    async fn stream(
        self,
        mut incoming: Streaming<pb::EnforcerMessage>,
        tx: mpsc::Sender<Result<pb::ControlMessage, tonic::Status>>,
    ) {
        // The first message must be Hello.
        let hello = match incoming.message().await {
            Ok(Some(pb::EnforcerMessage {
                kind: Some(pb::enforcer_message::Kind::Hello(h)),
            })) => h,
            Ok(_) => {
                let _ = tx
                    .send(Err(tonic::Status::invalid_argument(
                        "the first message must be Hello",
                    )))
                    .await;
                return;
            }
            Err(e) => {
                debug!(error = %e, "policy-sync stream failed before Hello");
                return;
            }
        };
        let node = if hello.node.is_empty() {
            "unknown".to_string()
        } else {
            hello.node.clone()
        };
        info!(%node, enforcer_version = %hello.enforcer_version, active_version = %hello.active_version, "enforcer connected");
        self.status.enforcer(&node, |e| {
            e.connected = true;
            e.enforcer_version = hello.enforcer_version.clone();
            if !hello.active_version.is_empty() {
                e.applied = Some(hello.active_version.clone());
            }
        });
        let mut states = self.states.clone();
        let mut sent: Option<String> = None;
        loop {
            let state = states.borrow_and_update().clone();
            if let Some(state) = state {
                if sent.as_deref() != Some(state.version.as_str()) {
                    let version = state.version.clone();
                    debug!(%node, %version, "sending state");
                    let msgs = [
                        pb::ControlMessage {
                            kind: Some(pb::control_message::Kind::State((*state).clone())),
                        },
                        pb::ControlMessage {
                            kind: Some(pb::control_message::Kind::InSync(pb::InSync {
                                version: version.clone(),
                            })),
                        },
                    ];
                    let mut closed = false;
                    for m in msgs {
                        if tx.send(Ok(m)).await.is_err() {
                            closed = true;
                            break;
                        }
                    }
                    if closed {
                        break;
                    }
                    self.status
                        .enforcer(&node, |e| e.sent = Some(version.clone()));
                    sent = Some(version);
                }
            }
            tokio::select! {
                changed = states.changed() => if changed.is_err() { break },
                msg = incoming.message() => match msg {
                    Ok(Some(m)) => self.message(&node, m),
                    Ok(None) => break,
                    Err(e) => { debug!(%node, error = %e, "policy-sync stream error"); break }
                },
                _ = tx.closed() => break,
            }
        }
        info!(%node, "enforcer disconnected");
        self.status.enforcer(&node, |e| e.connected = false);
    }

    fn message(&self, node: &str, msg: pb::EnforcerMessage) {
        match msg.kind {
            Some(pb::enforcer_message::Kind::Ack(ack)) if ack.applied => {
                debug!(node, version = %ack.version, "enforcer applied");
                self.status.enforcer(node, |e| {
                    e.applied = Some(ack.version.clone());
                    e.rejected = None;
                });
            }
            Some(pb::enforcer_message::Kind::Ack(ack)) => {
                warn!(node, version = %ack.version, error = %ack.error, "enforcer rejected the state; it keeps its last good snapshot");
                self.status.enforcer(node, |e| {
                    e.rejected = Some(Rejection {
                        version: ack.version.clone(),
                        error: ack.error.clone(),
                        resources: Vec::new(),
                    });
                });
            }
            Some(pb::enforcer_message::Kind::Events(report)) => {
                let n = report.events_json.len() as u64;
                for event in &report.events_json {
                    info!(target: "palisade::events", node, event = %event, "enforcer event");
                }
                self.status.alerts().ingest(node, &report.events_json);
                self.status.enforcer(node, |e| {
                    e.events += n;
                    e.events_suppressed += report.suppressed;
                });
            }
            Some(pb::enforcer_message::Kind::Hello(_)) => {
                debug!(node, "repeated Hello ignored");
            }
            None => {}
        }
    }
}
