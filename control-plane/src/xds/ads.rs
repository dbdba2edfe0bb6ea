//! The Aggregated Discovery Service: state-of-the-world
//! (`StreamAggregatedResources`) and delta (`DeltaAggregatedResources`) over
//! one gRPC stream per Envoy.
//!
//! Protocol rules followed here:
//! - every response carries a fresh nonce; a request whose `response_nonce`
//!   is not the last one sent for its type is stale and only its
//!   subscription changes count;
//! - a request answering a nonce with `error_detail` is a NACK: it is
//!   logged with node, type, version and resources, recorded in
//!   [`Status`], and that version is never sent again
//!   (Envoy keeps what it last accepted; the next change produces a new
//!   version);
//! - on a change, types are pushed in the order CDS, EDS, LDS, RDS.
//!
//! Memory per stream: responses are written from the snapshot's shared
//! resources (see `codec`), and a delta stream remembers what its Envoy has
//! as "every resource it wants, at the versions of the snapshot last pushed"
//! (one `Arc` to that snapshot's type) instead of a name-to-version map. Its
//! explicit subscriptions hold names interned from the snapshot, and equal
//! subscription sets (every Envoy of a cluster asks for the same
//! ClusterLoadAssignments) are one shared set. A delta
//! push of many resources is split into responses of about
//! [`MAX_DELTA_RESPONSE_BYTES`], produced one at a time as the stream
//! drains, so a slow or freshly connected Envoy holds at most a couple of
//! such responses in send buffers, not its whole configuration.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Streaming};
use tracing::{debug, info, warn};
use xds_api::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use super::codec::{delta_resource_size, AdsCodec, DeltaResponse, SotwResponse};
use super::PUSH_ORDER;
use super::{is_wildcard_type, short_hash, TypeDelta, TypeSnapshot, XdsResource, XdsSnapshot};
use crate::status::{Rejection, Status};

/// Snapshots published to the server (`None` until the first model is built).
pub type SnapshotReceiver = watch::Receiver<Option<Arc<XdsSnapshot>>>;

/// A delta push larger than this (encoded resources) is split into several
/// responses of about this size, each with its own nonce.
pub const MAX_DELTA_RESPONSE_BYTES: usize = 128 << 10;

/// Unanswered delta responses remembered per type (for NACK reports); older
/// ones are forgotten, and their late ACK is logged as an unknown nonce.
const MAX_PENDING: usize = 64;

/// Responses queued per stream before the stream task waits for the
/// transport to take them.
const RESPONSE_QUEUE: usize = 2;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
const MAX_DECODING_MESSAGE_SIZE: usize = 64 << 20;
const MAX_ENCODING_MESSAGE_SIZE: usize = 256 << 20;

/// A set of subscribed resource names, shared by the streams that ask for
/// the same names.
type NameSet = Arc<BTreeSet<Arc<str>>>;

type WeakNameSet = Weak<BTreeSet<Arc<str>>>;

/// Distinct subscription sets in use, by a hash of their names.
#[derive(Debug, Default)]
struct NameSets {
    sets: Mutex<HashMap<u64, Vec<WeakNameSet>>>,
}

impl NameSets {
    /// The shared set equal to `names` (which becomes it when none is in use).
    fn intern(&self, names: BTreeSet<Arc<str>>) -> NameSet {
        if names.is_empty() {
            return Arc::new(names);
        }
        let key = foldhash::quality::FixedState::with_seed(7).hash_one(&names);
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = sets.entry(key).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        if let Some(found) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| **s == names)
        {
            return found;
        }
        let set = Arc::new(names);
        bucket.push(Arc::downgrade(&set));
        if sets.len() > 4096 {
            sets.retain(|_, b| {
                b.retain(|w| w.strong_count() > 0);
                !b.is_empty()
            });
        }
        set
    }
}

/// The ADS implementation; cheap to clone.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: SnapshotReceiver,
    status: Status,
    nonce: Arc<AtomicU64>,
    name_sets: Arc<NameSets>,
}

impl AdsServer {
    /// A server for `snapshots`, recording into `status`.
    pub fn new(snapshots: SnapshotReceiver, status: Status) -> AdsServer {
        AdsServer {
            snapshots,
            status,
            nonce: Arc::new(AtomicU64::new(0)),
            name_sets: Arc::default(),
        }
    }

    /// The gRPC service (`envoy.service.discovery.v3.AggregatedDiscoveryService`).
    pub fn into_service(self) -> AdsService {
        AdsService { server: self }
    }

    fn next_nonce(&self) -> String {
        (self.nonce.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }

    /// The resource name `name` as an `Arc` shared with the current snapshot
    /// when it holds that resource.
    fn intern(current: Option<&XdsSnapshot>, type_url: &str, name: String) -> Arc<str> {
        current
            .and_then(|s| s.get(type_url))
            .and_then(|t| t.resources.get_key_value(name.as_str()))
            .map(|(k, _)| Arc::clone(k))
            .unwrap_or_else(|| Arc::from(name))
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// The ADS gRPC service: tonic's routing and framing with [`AdsServer`]'s
/// streams and a codec that writes responses from shared resources.
#[derive(Clone, Debug)]
pub struct AdsService {
    server: AdsServer,
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

struct SotwMethod(AdsServer);

impl StreamingService<DiscoveryRequest> for SotwMethod {
    type Response = SotwResponse;
    type ResponseStream = ResponseStream<SotwResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let server = self.0.clone();
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
            tokio::spawn(
                async move { Sotw::default().run(server, request.into_inner(), tx).await },
            );
            let stream: ResponseStream<SotwResponse> = Box::pin(ReceiverStream::new(rx));
            Ok(Response::new(stream))
        })
    }
}

struct DeltaMethod(AdsServer);

impl StreamingService<DeltaDiscoveryRequest> for DeltaMethod {
    type Response = DeltaResponse;
    type ResponseStream = ResponseStream<DeltaResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let server = self.0.clone();
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
            tokio::spawn(
                async move { Delta::default().run(server, request.into_inner(), tx).await },
            );
            let stream: ResponseStream<DeltaResponse> = Box::pin(ReceiverStream::new(rx));
            Ok(Response::new(stream))
        })
    }
}

impl<B> Service<http::Request<B>> for AdsService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let server = self.server.clone();
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(AdsCodec::<DiscoveryRequest, SotwResponse>::default())
                    .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_ENCODING_MESSAGE_SIZE);
                Ok(grpc.streaming(SotwMethod(server), req).await)
            }),
            DELTA_PATH => Box::pin(async move {
                let mut grpc =
                    Grpc::new(AdsCodec::<DeltaDiscoveryRequest, DeltaResponse>::default())
                        .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE)
                        .max_encoding_message_size(MAX_ENCODING_MESSAGE_SIZE);
                Ok(grpc.streaming(DeltaMethod(server), req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(tonic::body::empty_body());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            }),
        }
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

/// What a state-of-the-world stream last sent for a type: the type's
/// snapshot and the names asked for then (`None`: all of them).
#[derive(Debug)]
struct SotwSent {
    version: String,
    key: String,
    nonce: String,
    snapshot: TypeSnapshot,
    names: Option<NameSet>,
}

impl SotwSent {
    fn names(&self) -> Vec<String> {
        self.snapshot
            .resources
            .keys()
            .filter(|n| self.names.as_ref().is_none_or(|w| w.contains(*n)))
            .map(|n| n.to_string())
            .collect()
    }
}

/// State-of-the-world state of one type on one stream.
#[derive(Debug, Default)]
struct SotwType {
    names: NameSet,
    sent: Option<SotwSent>,
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
        tx: mpsc::Sender<Result<SotwResponse, tonic::Status>>,
    ) {
        let mut snapshots = server.snapshots.clone();
        'stream: loop {
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
                        break 'stream;
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
            let Some(sent) = st.sent.as_ref().filter(|s| s.nonce == req.response_nonce) else {
                debug!(node = %self.node, type_url = %req.type_url, nonce = %req.response_nonce, "stale response nonce ignored");
                return;
            };
            match req.error_detail {
                Some(err) => {
                    st.rejected.insert(sent.key.clone());
                    record_nack(
                        &server.status,
                        &self.node,
                        &req.type_url,
                        &sent.version,
                        sent.names(),
                        err.message,
                    );
                }
                None => record_ack(&server.status, &self.node, &req.type_url, &sent.version),
            }
        } else {
            // A new subscription (first request, or after a reconnect): answer it.
            st.force = true;
        }
        // Envoy repeats its full list on every request: compare before building.
        let asked = req.resource_names.iter().filter(|n| *n != "*");
        let same = asked.clone().count() == st.names.len()
            && asked.clone().all(|n| st.names.contains(n.as_str()));
        if !same {
            let current = server.snapshots.borrow().clone();
            st.names = server.name_sets.intern(
                req.resource_names
                    .into_iter()
                    .filter(|n| n != "*")
                    .map(|n| AdsServer::intern(current.as_deref(), &req.type_url, n))
                    .collect(),
            );
            st.force = true;
        }
    }

    fn push(&mut self, server: &AdsServer, snapshot: &XdsSnapshot) -> Vec<SotwResponse> {
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
            if !st.force && st.sent.as_ref().map(|s| s.key.as_str()) == Some(key.as_str()) {
                continue;
            }
            let resources: Vec<Arc<XdsResource>> = if filtered {
                st.names
                    .iter()
                    .filter_map(|n| ts.resources.get(n))
                    .cloned()
                    .collect()
            } else {
                ts.resources.values().cloned().collect()
            };
            let nonce = server.next_nonce();
            st.sent = Some(SotwSent {
                version: version.clone(),
                key,
                nonce: nonce.clone(),
                snapshot: ts.clone(),
                names: filtered.then(|| Arc::clone(&st.names)),
            });
            st.force = false;
            record_sent(&server.status, &self.node, type_url, &version);
            debug!(node = %self.node, type_url, %version, resources = resources.len(), "sending");
            out.push(SotwResponse {
                version_info: version,
                resources,
                type_url: type_url.to_string(),
                nonce,
            });
        }
        out
    }
}

/// A resource with its name.
type Named = (Arc<str>, Arc<XdsResource>);

/// A delta response not answered yet.
#[derive(Debug)]
struct Pending {
    nonce: String,
    version: String,
    names: Vec<Arc<str>>,
}

/// Delta state of one type on one stream.
///
/// Invariant after every push: the Envoy has exactly the resources of `base`
/// it wants (wildcard, or named in `names`), at `base`'s versions. Between
/// pushes, `fresh` lists names subscribed since (the Envoy has none of them)
/// and `wildcard_fresh` says the wildcard was subscribed since.
#[derive(Debug, Default)]
struct DeltaType {
    subscribed: bool,
    wildcard: bool,
    names: NameSet,
    /// The type's snapshot as of the last push.
    base: Option<TypeSnapshot>,
    /// `initial_resource_versions` of the first request, until the first push.
    initial: Option<HashMap<String, String>>,
    fresh: BTreeSet<Arc<str>>,
    wildcard_fresh: bool,
    pending: VecDeque<Pending>,
    respond: bool,
}

impl DeltaType {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// True when the Envoy had `name` (at `base`'s version) before the
    /// subscription changes since the last push.
    fn had(&self, name: &str) -> bool {
        if self.fresh.contains(name) {
            return false;
        }
        if self.wildcard_fresh {
            self.names.contains(name)
        } else {
            self.wants(name)
        }
    }

    /// What to send and remove to bring the Envoy from what it has to `ts`.
    fn plan(&self, ts: &TypeSnapshot, delta: Option<&TypeDelta>) -> (Vec<Named>, Vec<Arc<str>>) {
        let mut send = Vec::new();
        let mut removed = Vec::new();
        let base = match (&self.initial, &self.base) {
            (None, Some(base)) => base,
            (initial, _) => {
                // First push: compare with what the Envoy says it has.
                let none = HashMap::new();
                let initial = initial.as_ref().unwrap_or(&none);
                for (n, r) in ts.resources.iter() {
                    if self.wants(n) && initial.get(&**n) != Some(&r.version) {
                        send.push((Arc::clone(n), Arc::clone(r)));
                    }
                }
                let mut gone: Vec<Arc<str>> = initial
                    .keys()
                    .filter(|n| self.wants(n) && !ts.resources.contains_key(n.as_str()))
                    .map(|n| Arc::from(n.as_str()))
                    .collect();
                gone.sort();
                removed = gone;
                return (send, removed);
            }
        };
        let had_version = |n: &str| {
            self.had(n)
                .then(|| base.resources.get(n))
                .flatten()
                .map(|r| &r.version)
        };
        if self.wildcard_fresh {
            for (n, r) in ts.resources.iter() {
                if self.wants(n) && had_version(n) != Some(&r.version) {
                    send.push((Arc::clone(n), Arc::clone(r)));
                }
            }
            removed.extend(
                base.resources
                    .keys()
                    .filter(|n| self.had(n) && !ts.resources.contains_key(*n))
                    .cloned(),
            );
            return (send, removed);
        }
        if base.version != ts.version {
            // Only what changed since `base` can differ for names wanted before.
            let computed;
            let d = match delta.filter(|d| d.from_version == base.version) {
                Some(d) => d,
                None => {
                    computed = TypeDelta::between(base, ts);
                    &computed
                }
            };
            for n in &d.changed {
                if self.had(n) {
                    if let Some((k, r)) = ts.resources.get_key_value(n) {
                        send.push((Arc::clone(k), Arc::clone(r)));
                    }
                }
            }
            removed.extend(d.removed.iter().filter(|n| self.had(n)).cloned());
        }
        for n in &self.fresh {
            if let Some((k, r)) = ts.resources.get_key_value(n) {
                send.push((Arc::clone(k), Arc::clone(r)));
            }
        }
        (send, removed)
    }
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
        tx: mpsc::Sender<Result<DeltaResponse, tonic::Status>>,
    ) {
        let mut snapshots = server.snapshots.clone();
        'stream: loop {
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
                for type_url in PUSH_ORDER {
                    // One response at a time: a large push is produced as the
                    // transport drains, never held whole.
                    let mut responses = self.push(&snapshot, type_url);
                    while let Some(response) = responses.next(&server, &self.node) {
                        let Some(st) = self.types.get_mut(type_url) else {
                            break;
                        };
                        st.pending.push_back(Pending {
                            nonce: response.nonce.clone(),
                            version: response.system_version_info.clone(),
                            names: response
                                .resources
                                .iter()
                                .map(|(n, _)| Arc::clone(n))
                                .collect(),
                        });
                        while st.pending.len() > MAX_PENDING {
                            st.pending.pop_front();
                        }
                        if tx.send(Ok(response)).await.is_err() {
                            break 'stream;
                        }
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
            let found = st
                .pending
                .iter()
                .position(|p| p.nonce == req.response_nonce)
                .and_then(|i| st.pending.remove(i));
            match found {
                Some(p) => match req.error_detail {
                    Some(err) => record_nack(
                        &server.status,
                        &self.node,
                        &req.type_url,
                        &p.version,
                        p.names.iter().map(|n| n.to_string()).collect(),
                        err.message,
                    ),
                    None => record_ack(&server.status, &self.node, &req.type_url, &p.version),
                },
                None => {
                    debug!(node = %self.node, type_url = %req.type_url, nonce = %req.response_nonce, "unknown response nonce")
                }
            }
        }
        if !st.subscribed {
            st.subscribed = true;
            st.respond = true;
            st.wildcard =
                is_wildcard_type(&req.type_url) && req.resource_names_subscribe.is_empty();
            if !req.initial_resource_versions.is_empty() {
                st.initial = Some(req.initial_resource_versions.into_iter().collect());
            }
        }
        let mut names: Option<BTreeSet<Arc<str>>> = None;
        if !req.resource_names_subscribe.is_empty() {
            st.respond = true;
            let current = server.snapshots.borrow().clone();
            for name in req.resource_names_subscribe {
                if name == "*" {
                    if !st.wildcard {
                        st.wildcard = true;
                        st.wildcard_fresh = true;
                    }
                    continue;
                }
                let set = names.get_or_insert_with(|| (*st.names).clone());
                if !set.contains(name.as_str()) {
                    let name = AdsServer::intern(current.as_deref(), &req.type_url, name);
                    set.insert(Arc::clone(&name));
                    st.fresh.insert(name);
                }
            }
        }
        for name in req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
                st.wildcard_fresh = false;
            } else {
                names
                    .get_or_insert_with(|| (*st.names).clone())
                    .remove(name.as_str());
                st.fresh.remove(name.as_str());
            }
        }
        if let Some(names) = names {
            st.names = server.name_sets.intern(names);
        }
    }

    /// Plans the push of one type; the responses come from the returned
    /// [`Responses`], one at a time.
    fn push(&mut self, snapshot: &XdsSnapshot, type_url: &str) -> Responses {
        let mut out = Responses::default();
        let Some(st) = self.types.get_mut(type_url) else {
            return out;
        };
        let Some(ts) = snapshot.get(type_url) else {
            return out;
        };
        let unchanged = st.base.as_ref().map(|b| &b.version) == Some(&ts.version)
            && st.initial.is_none()
            && st.fresh.is_empty()
            && !st.wildcard_fresh;
        if unchanged && !st.respond {
            return out;
        }
        let (send, removed) = st.plan(ts, snapshot.deltas.get(type_url));
        st.base = Some(ts.clone());
        st.initial = None;
        st.fresh.clear();
        st.wildcard_fresh = false;
        if send.is_empty() && removed.is_empty() && !st.respond {
            return out;
        }
        st.respond = false;
        debug!(node = %self.node, type_url, version = %ts.version, resources = send.len(), removed = removed.len(), "sending delta");
        out.type_url = type_url.to_string();
        out.version = ts.version.clone();
        out.send = send.into();
        out.removed = removed;
        out.first = true;
        out
    }
}

/// The responses of one delta push, cut to [`MAX_DELTA_RESPONSE_BYTES`].
#[derive(Debug, Default)]
struct Responses {
    type_url: String,
    version: String,
    send: VecDeque<Named>,
    removed: Vec<Arc<str>>,
    /// Nothing produced yet (an empty push still answers once).
    first: bool,
}

impl Responses {
    fn next(&mut self, server: &AdsServer, node: &str) -> Option<DeltaResponse> {
        if !self.first && self.send.is_empty() {
            return None;
        }
        self.first = false;
        let mut resources = Vec::new();
        let mut size = 0;
        while let Some((n, r)) = self.send.front() {
            let s = delta_resource_size(n, r);
            if !resources.is_empty() && size + s > MAX_DELTA_RESPONSE_BYTES {
                break;
            }
            size += s;
            if let Some(item) = self.send.pop_front() {
                resources.push(item);
            }
        }
        // Removals go with the last response (make before break).
        let removed_resources = if self.send.is_empty() {
            std::mem::take(&mut self.removed)
        } else {
            Vec::new()
        };
        record_sent(&server.status, node, &self.type_url, &self.version);
        Some(DeltaResponse {
            system_version_info: self.version.clone(),
            resources,
            type_url: self.type_url.clone(),
            nonce: server.next_nonce(),
            removed_resources,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use xds_api::pb::google::protobuf::Any;

    use super::*;
    use crate::xds::{ENDPOINT, LISTENER};

    fn snapshot(items: &[(&str, &str)]) -> XdsSnapshot {
        let map: BTreeMap<String, XdsResource> = items
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    XdsResource::new(Any {
                        type_url: ENDPOINT.into(),
                        value: v.as_bytes().to_vec(),
                    }),
                )
            })
            .collect();
        XdsSnapshot::from_resources([(ENDPOINT.to_string(), map)])
    }

    fn server(s: &XdsSnapshot) -> (watch::Sender<Option<Arc<XdsSnapshot>>>, AdsServer) {
        let (tx, rx) = watch::channel(Some(Arc::new(s.clone())));
        (tx, AdsServer::new(rx, Status::new()))
    }

    fn subscribe(names: &[&str]) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: ENDPOINT.into(),
            resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    /// All responses of one push: (sent names, removed names).
    fn push(
        d: &mut Delta,
        server: &AdsServer,
        s: &XdsSnapshot,
    ) -> Option<(Vec<String>, Vec<String>)> {
        let mut responses = d.push(s, ENDPOINT);
        let mut out: Option<(Vec<String>, Vec<String>)> = None;
        while let Some(r) = responses.next(server, "n") {
            let o = out.get_or_insert_with(Default::default);
            o.0.extend(r.resources.iter().map(|(n, _)| n.to_string()));
            o.1.extend(r.removed_resources.iter().map(|n| n.to_string()));
        }
        out
    }

    #[test]
    fn delta_sends_only_what_changed() {
        let s1 = snapshot(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let (_tx, server) = server(&s1);
        let mut d = Delta::default();
        d.request(&server, subscribe(&["a", "b", "missing"]));
        assert_eq!(
            push(&mut d, &server, &s1),
            Some((vec!["a".into(), "b".into()], vec![]))
        );
        // Nothing changed: nothing sent.
        assert_eq!(push(&mut d, &server, &s1), None);

        // b changes, c (not subscribed) changes, a is removed.
        let s2 = snapshot(&[("b", "2"), ("c", "2")]).with_delta_from(&s1);
        assert_eq!(
            push(&mut d, &server, &s2),
            Some((vec!["b".into()], vec!["a".into()]))
        );

        // Without the recorded delta (a skipped snapshot), the same result.
        let s3 = snapshot(&[("a", "3"), ("b", "2"), ("c", "3")]);
        assert_eq!(push(&mut d, &server, &s3), Some((vec!["a".into()], vec![])));

        // A new subscription gets the resource even though it did not change;
        // an unsubscribed one is no longer followed.
        d.request(
            &server,
            DeltaDiscoveryRequest {
                type_url: ENDPOINT.into(),
                resource_names_subscribe: vec!["c".into()],
                resource_names_unsubscribe: vec!["a".into()],
                ..Default::default()
            },
        );
        assert_eq!(push(&mut d, &server, &s3), Some((vec!["c".into()], vec![])));
        let s4 = snapshot(&[("a", "4"), ("b", "2"), ("c", "3")]);
        assert_eq!(push(&mut d, &server, &s4), None);
    }

    #[test]
    fn delta_initial_versions_and_wildcard() {
        let s1 = snapshot(&[("a", "1"), ("b", "1")]);
        let (_tx, server) = server(&s1);
        let a_version = s1.types[ENDPOINT].resources["a"].version.clone();
        let mut d = Delta::default();
        let mut req = subscribe(&["*"]);
        req.initial_resource_versions = [
            ("a".to_string(), a_version),
            ("old".to_string(), "x".to_string()),
        ]
        .into();
        d.request(&server, req);
        // The Envoy has a at this version already: only b, and old is removed.
        assert_eq!(
            push(&mut d, &server, &s1),
            Some((vec!["b".into()], vec!["old".into()]))
        );
        let s2 = snapshot(&[("a", "1"), ("b", "1"), ("c", "1")]).with_delta_from(&s1);
        assert_eq!(push(&mut d, &server, &s2), Some((vec!["c".into()], vec![])));
    }

    #[test]
    fn large_pushes_are_split() {
        let big = "x".repeat(100_000);
        let items: Vec<(String, String)> =
            (0..10).map(|i| (format!("r{i}"), big.clone())).collect();
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let s = snapshot(&refs);
        let (_tx, server) = server(&s);
        let mut d = Delta::default();
        d.request(
            &server,
            subscribe(&refs.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
        );
        let mut responses = d.push(&s, ENDPOINT);
        let mut count = 0;
        let mut total = 0;
        while let Some(r) = responses.next(&server, "n") {
            count += 1;
            total += r.resources.len();
            let mut buf = Vec::new();
            r.write(&mut buf);
            assert!(buf.len() < MAX_DELTA_RESPONSE_BYTES + 1024, "{}", buf.len());
        }
        assert_eq!(total, 10);
        assert!(count >= 4, "{count}");
    }

    #[test]
    fn equal_subscriptions_share_one_set() {
        let s = snapshot(&[("a", "1"), ("b", "1")]);
        let (_tx, server) = server(&s);
        let (mut d1, mut d2) = (Delta::default(), Delta::default());
        d1.request(&server, subscribe(&["a", "b"]));
        d2.request(&server, subscribe(&["b", "a"]));
        let (n1, n2) = (&d1.types[ENDPOINT].names, &d2.types[ENDPOINT].names);
        assert!(Arc::ptr_eq(n1, n2));
        // Names are the snapshot's own allocations.
        let (k, _) = s.types[ENDPOINT].resources.get_key_value("a").unwrap();
        assert!(Arc::ptr_eq(n1.get("a").unwrap(), k));
        // A change to one stream's subscription leaves the other's alone.
        d2.request(
            &server,
            DeltaDiscoveryRequest {
                type_url: ENDPOINT.into(),
                resource_names_unsubscribe: vec!["a".into()],
                ..Default::default()
            },
        );
        assert_eq!(d1.types[ENDPOINT].names.len(), 2);
        assert_eq!(d2.types[ENDPOINT].names.len(), 1);
    }

    #[test]
    fn first_subscription_is_answered_even_when_empty() {
        let s = snapshot(&[]);
        let (_tx, server) = server(&s);
        let mut d = Delta::default();
        d.request(
            &server,
            DeltaDiscoveryRequest {
                type_url: LISTENER.into(),
                ..Default::default()
            },
        );
        let mut responses = d.push(&s, LISTENER);
        let r = responses.next(&server, "n").unwrap();
        assert!(r.resources.is_empty());
        assert!(responses.next(&server, "n").is_none());
        assert!(d.push(&s, LISTENER).next(&server, "n").is_none());
    }
}
