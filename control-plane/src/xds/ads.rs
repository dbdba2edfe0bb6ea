//! The Aggregated Discovery Service: state-of-the-world
//! (`StreamAggregatedResources`) and delta (`DeltaAggregatedResources`) over
//! one gRPC stream per Envoy.
//!
//! Protocol rules followed here:
//! - every response carries a fresh nonce; a request whose `response_nonce`
//!   is not the last one sent for its type is stale and only its
//!   subscription changes count;
//! - a request answering the last nonce with `error_detail` is a NACK: it is
//!   logged with node, type, version and resources, recorded in
//!   [`Status`](crate::status::Status), and that version is never sent again
//!   (Envoy keeps what it last accepted; the next change produces a new
//!   version);
//! - on a change, types are pushed in the order CDS, EDS, LDS, RDS.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Streaming};
use tracing::{debug, info, warn};
use xds_api::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};

use super::{is_wildcard_type, short_hash, XdsSnapshot, PUSH_ORDER};
use crate::status::{Rejection, Status};

/// Snapshots published to the server (`None` until the first model is built).
pub type SnapshotReceiver = watch::Receiver<Option<Arc<XdsSnapshot>>>;

/// The ADS implementation; cheap to clone.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: SnapshotReceiver,
    status: Status,
    nonce: Arc<AtomicU64>,
}

impl AdsServer {
    /// A server for `snapshots`, recording into `status`.
    pub fn new(snapshots: SnapshotReceiver, status: Status) -> AdsServer {
        AdsServer {
            snapshots,
            status,
            nonce: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The tonic service.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(256 << 20)
    }

    fn next_nonce(&self) -> String {
        (self.nonce.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        let server = self.clone();
        tokio::spawn(async move { Sotw::default().run(server, request.into_inner(), tx).await });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        let server = self.clone();
        tokio::spawn(async move { Delta::default().run(server, request.into_inner(), tx).await });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn node_id(node: Option<&xds_api::pb::envoy::config::core::v3::Node>) -> Option<String> {
    node.map(|n| n.id.clone()).filter(|id| !id.is_empty())
}

fn record_nack(
    status: &Status,
    node: &str,
    type_url: &str,
    version: &str,
    resources: Vec<String>,
    error: String,
) {
    warn!(node, type_url, version, ?resources, %error, "Envoy rejected the configuration (NACK); it keeps the last accepted version and this version is not sent again");
    status.envoy_type(node, type_url, |t| {
        t.nacks += 1;
        t.nacked = Some(Rejection {
            version: version.to_string(),
            error,
            resources,
        });
    });
}

fn record_ack(status: &Status, node: &str, type_url: &str, version: &str) {
    debug!(node, type_url, version, "ACK");
    status.envoy_type(node, type_url, |t| {
        t.acked = Some(version.to_string());
        t.nacked = None;
    });
}

fn record_sent(status: &Status, node: &str, type_url: &str, version: &str) {
    status.envoy_type(node, type_url, |t| {
        t.sent = Some(version.to_string());
        t.responses += 1;
    });
}

/// State-of-the-world state of one type on one stream.
#[derive(Debug, Default)]
struct SotwType {
    names: BTreeSet<String>,
    sent_version: Option<String>,
    sent_key: Option<String>,
    sent_names: Vec<String>,
    nonce: Option<String>,
    rejected: HashSet<String>,
    force: bool,
}

#[derive(Debug, Default)]
struct Sotw {
    node: String,
    types: HashMap<String, SotwType>,
}

impl Sotw {
    async fn run(
        mut self,
        server: AdsServer,
        mut incoming: Streaming<DiscoveryRequest>,
        tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
    ) {
        let mut snapshots = server.snapshots.clone();
        loop {
            tokio::select! {
                msg = incoming.message() => match msg {
                    Ok(Some(req)) => self.request(&server, req),
                    Ok(None) => break,
                    Err(e) => { debug!(node = %self.node, error = %e, "xDS stream error"); break }
                },
                changed = snapshots.changed() => if changed.is_err() { break },
                _ = tx.closed() => break,
            }
            let snapshot = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                for response in self.push(&server, &snapshot) {
                    if tx.send(Ok(response)).await.is_err() {
                        break;
                    }
                }
            }
        }
        if !self.node.is_empty() {
            info!(node = %self.node, "Envoy disconnected (state of the world)");
            server.status.envoy(&self.node, |e| e.connected = false);
        }
    }

    fn request(&mut self, server: &AdsServer, req: DiscoveryRequest) {
        if self.node.is_empty() {
            self.node = node_id(req.node.as_ref()).unwrap_or_else(|| "unknown".into());
            info!(node = %self.node, "Envoy connected (state of the world)");
            server.status.envoy(&self.node, |e| {
                e.connected = true;
                e.protocol = "sotw".into();
            });
        }
        let st = self.types.entry(req.type_url.clone()).or_default();
        if !req.response_nonce.is_empty() {
            if st.nonce.as_deref() != Some(req.response_nonce.as_str()) {
                debug!(node = %self.node, type_url = %req.type_url, nonce = %req.response_nonce, "stale response nonce ignored");
                return;
            }
            let version = st.sent_version.clone().unwrap_or_default();
            match req.error_detail {
                Some(err) => {
                    st.rejected.extend(st.sent_key.clone());
                    record_nack(
                        &server.status,
                        &self.node,
                        &req.type_url,
                        &version,
                        st.sent_names.clone(),
                        err.message,
                    );
                }
                None => record_ack(&server.status, &self.node, &req.type_url, &version),
            }
        } else {
            // A new subscription (first request, or after a reconnect): answer it.
            st.force = true;
        }
        let names: BTreeSet<String> = req
            .resource_names
            .into_iter()
            .filter(|n| n != "*")
            .collect();
        if names != st.names {
            st.names = names;
            st.force = true;
        }
    }

    fn push(&mut self, server: &AdsServer, snapshot: &XdsSnapshot) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        for type_url in PUSH_ORDER {
            let Some(st) = self.types.get_mut(type_url) else {
                continue;
            };
            let Some(ts) = snapshot.get(type_url) else {
                continue;
            };
            let filtered = !is_wildcard_type(type_url) && !st.names.is_empty();
            let version = ts.version.clone();
            // What was sent is identified by the version and, for types
            // answered by name, the names asked for.
            let key = if filtered {
                let mut parts: Vec<&[u8]> = vec![version.as_bytes()];
                parts.extend(st.names.iter().map(|n| n.as_bytes()));
                short_hash(&parts)
            } else {
                version.clone()
            };
            if st.rejected.contains(&key) {
                continue;
            }
            if !st.force && st.sent_key.as_deref() == Some(key.as_str()) {
                continue;
            }
            let resources: Vec<_> = ts
                .resources
                .iter()
                .filter(|(name, _)| !filtered || st.names.contains(*name))
                .collect();
            let nonce = server.next_nonce();
            st.sent_names = resources.iter().map(|(n, _)| (*n).clone()).collect();
            st.sent_version = Some(version.clone());
            st.sent_key = Some(key);
            st.nonce = Some(nonce.clone());
            st.force = false;
            record_sent(&server.status, &self.node, type_url, &version);
            debug!(node = %self.node, type_url, %version, resources = resources.len(), "sending");
            out.push(DiscoveryResponse {
                version_info: version,
                resources: resources.into_iter().map(|(_, r)| r.body.clone()).collect(),
                type_url: type_url.to_string(),
                nonce,
                ..Default::default()
            });
        }
        out
    }
}

/// Delta state of one type on one stream.
#[derive(Debug, Default)]
struct DeltaType {
    subscribed: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// What Envoy has (or was sent): name -> version.
    known: HashMap<String, String>,
    /// Unanswered responses: nonce -> (type version, resource names).
    pending: HashMap<String, (String, Vec<String>)>,
    respond: bool,
    /// The snapshot type version `known` fully reflects (for the current
    /// subscriptions); `None` after a subscription change.
    synced: Option<String>,
}

#[derive(Debug, Default)]
struct Delta {
    node: String,
    types: HashMap<String, DeltaType>,
}

impl Delta {
    async fn run(
        mut self,
        server: AdsServer,
        mut incoming: Streaming<DeltaDiscoveryRequest>,
        tx: mpsc::Sender<Result<DeltaDiscoveryResponse, tonic::Status>>,
    ) {
        let mut snapshots = server.snapshots.clone();
        loop {
            tokio::select! {
                msg = incoming.message() => match msg {
                    Ok(Some(req)) => self.request(&server, req),
                    Ok(None) => break,
                    Err(e) => { debug!(node = %self.node, error = %e, "delta xDS stream error"); break }
                },
                changed = snapshots.changed() => if changed.is_err() { break },
                _ = tx.closed() => break,
            }
            let snapshot = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                for response in self.push(&server, &snapshot) {
                    if tx.send(Ok(response)).await.is_err() {
                        break;
                    }
                }
            }
        }
        if !self.node.is_empty() {
            info!(node = %self.node, "Envoy disconnected (delta)");
            server.status.envoy(&self.node, |e| e.connected = false);
        }
    }

    fn request(&mut self, server: &AdsServer, req: DeltaDiscoveryRequest) {
        if self.node.is_empty() {
            self.node = node_id(req.node.as_ref()).unwrap_or_else(|| "unknown".into());
            info!(node = %self.node, "Envoy connected (delta)");
            server.status.envoy(&self.node, |e| {
                e.connected = true;
                e.protocol = "delta".into();
            });
        }
        let st = self.types.entry(req.type_url.clone()).or_default();
        if !req.response_nonce.is_empty() {
            match st.pending.remove(&req.response_nonce) {
                Some((version, names)) => match req.error_detail {
                    Some(err) => record_nack(
                        &server.status,
                        &self.node,
                        &req.type_url,
                        &version,
                        names,
                        err.message,
                    ),
                    None => record_ack(&server.status, &self.node, &req.type_url, &version),
                },
                None => {
                    debug!(node = %self.node, type_url = %req.type_url, nonce = %req.response_nonce, "unknown response nonce")
                }
            }
        }
        let subscription_change = !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty()
            || !st.subscribed;
        if subscription_change {
            st.synced = None;
        }
        if !st.subscribed {
            st.subscribed = true;
            st.respond = true;
            st.wildcard =
                is_wildcard_type(&req.type_url) && req.resource_names_subscribe.is_empty();
            st.known.extend(req.initial_resource_versions);
        }
        for name in req.resource_names_subscribe {
            if name == "*" {
                st.wildcard = true;
            } else {
                st.names.insert(name);
            }
            st.respond = true;
        }
        for name in req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
            } else {
                st.names.remove(&name);
                st.known.remove(&name);
            }
        }
    }

    fn push(&mut self, server: &AdsServer, snapshot: &XdsSnapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        for type_url in PUSH_ORDER {
            let Some(st) = self.types.get_mut(type_url) else {
                continue;
            };
            let Some(ts) = snapshot.get(type_url) else {
                continue;
            };
            if st.synced.as_deref() == Some(ts.version.as_str()) && !st.respond {
                continue;
            }
            let wanted = |name: &String| st.wildcard || st.names.contains(name);
            let mut resources = Vec::new();
            let mut removed: Vec<String> = Vec::new();
            // Fast path: the stream was in sync with the previous snapshot, so
            // only the names that changed since then can differ.
            let delta = snapshot
                .deltas
                .get(type_url)
                .filter(|d| st.synced.as_deref() == Some(d.from_version.as_str()));
            let candidates: Box<dyn Iterator<Item = (&String, &super::XdsResource)>> = match delta {
                Some(d) => Box::new(
                    d.changed
                        .iter()
                        .filter_map(|n| ts.resources.get_key_value(n)),
                ),
                None => Box::new(ts.resources.iter()),
            };
            for (name, r) in candidates {
                if wanted(name) && st.known.get(name) != Some(&r.version) {
                    resources.push(Resource {
                        name: name.clone(),
                        version: r.version.clone(),
                        resource: Some(r.body.clone()),
                        ..Default::default()
                    });
                }
            }
            match delta {
                Some(d) => removed.extend(
                    d.removed
                        .iter()
                        .filter(|n| st.known.contains_key(*n))
                        .cloned(),
                ),
                None => removed.extend(
                    st.known
                        .keys()
                        .filter(|n| !ts.resources.contains_key(*n))
                        .cloned(),
                ),
            }
            removed.sort();
            st.synced = Some(ts.version.clone());
            if resources.is_empty() && removed.is_empty() && !st.respond {
                continue;
            }
            for r in &resources {
                st.known.insert(r.name.clone(), r.version.clone());
            }
            for n in &removed {
                st.known.remove(n);
            }
            st.respond = false;
            let nonce = server.next_nonce();
            let names: Vec<String> = resources.iter().map(|r| r.name.clone()).collect();
            st.pending
                .insert(nonce.clone(), (ts.version.clone(), names));
            record_sent(&server.status, &self.node, type_url, &ts.version);
            debug!(node = %self.node, type_url, version = %ts.version, resources = resources.len(), removed = removed.len(), "sending delta");
            out.push(DeltaDiscoveryResponse {
                system_version_info: ts.version.clone(),
                resources,
                type_url: type_url.to_string(),
                removed_resources: removed,
                nonce,
                ..Default::default()
            });
        }
        out
    }
}
