//! Model → Envoy resources, explicit mode: one HTTP listener whose virtual hosts
//! are the protected services' DNS names (with and without the port), the
//! ext_authz filter calling the node's enforcer over its Unix socket, the
//! router, per-route `context_extensions` naming the service, and one EDS
//! cluster per service port.
//!
//! The [`Translator`] is incremental: it keeps, per service, the model it
//! translated and what came out (clusters, ClusterLoadAssignments, encoded
//! virtual hosts). A service whose model is the same (the model builder
//! hands unchanged services over as the same `Arc`) is not looked at again;
//! a changed one is re-translated, and each of its resources whose content
//! hash did not change keeps its previous `Arc` and version, so delta
//! streams get only what really changed. The route configuration is
//! re-assembled from the cached virtual-host encodings only when a virtual
//! host changed (not for an endpoint change), and its version is a hash of
//! the virtual hosts' hashes. [`translate`] is the same thing from scratch.
//!
//! A transparent (TPROXY) mode would add per-service listeners with original
//! destination matching; it would reuse the clusters and routes built here.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use palisade_proto::envoy::extensions::filters::http::ext_authz::v3 as ext_authz;
use palisade_proto::envoy::extensions::upstreams::http::v3 as upstream_http;
use xds_api::pb::envoy::config::cluster::v3 as cluster;
use xds_api::pb::envoy::config::core::v3 as core;
use xds_api::pb::envoy::config::endpoint::v3 as endpoint;
use xds_api::pb::envoy::config::listener::v3 as listener;
use xds_api::pb::envoy::config::route::v3 as route;
use xds_api::pb::envoy::extensions::filters::http::router::v3 as router;
use xds_api::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use xds_api::pb::google::protobuf;

use prost::Message;
use sha1::{Digest, Sha1};

use super::{
    to_any, ResourceMap, TypeSnapshot, XdsResource, XdsSnapshot, CLUSTER, ENDPOINT, LISTENER,
    PUSH_ORDER, ROUTE,
};
use crate::k8s::WafMode;
use crate::model::{Model, ServiceKey, ServiceModel, Settings};

/// The key in `context_extensions` naming the service (`namespace/name`); the
/// enforcer reads it.
pub const CONTEXT_SERVICE_KEY: &str = "palisade.service";
/// Name of the cluster pointing at the enforcer's socket.
pub const ENFORCER_CLUSTER: &str = "palisade-enforcer";
/// Name of the listener.
pub const LISTENER_NAME: &str = "palisade-http";
/// Name of the route configuration.
pub const ROUTE_CONFIG_NAME: &str = "palisade-routes";
/// The ext_authz filter's name (also the key of its per-route config).
pub const EXT_AUTHZ_FILTER: &str = "envoy.filters.http.ext_authz";

const EXT_AUTHZ_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const EXT_AUTHZ_PER_ROUTE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HTTP_PROTOCOL_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const HTTP_PROTOCOL_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Node-side settings the model does not carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateConfig {
    /// Address node Envoys listen on for protected traffic.
    pub listen_host: String,
    /// Port of that listener.
    pub listen_port: u16,
    /// Path of the enforcer's ext_authz Unix socket on every node.
    pub enforcer_socket: PathBuf,
    /// ext_authz call timeout.
    pub ext_authz_timeout: Duration,
}

impl Default for TranslateConfig {
    fn default() -> TranslateConfig {
        TranslateConfig {
            listen_host: "0.0.0.0".into(),
            listen_port: 10000,
            enforcer_socket: PathBuf::from("/var/run/palisade/enforcer.sock"),
            ext_authz_timeout: Duration::from_millis(500),
        }
    }
}

fn duration(d: Duration) -> protobuf::Duration {
    protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn ads_source() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

fn socket_address(ip: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

fn lb_endpoint(address: core::Address) -> endpoint::LbEndpoint {
    endpoint::LbEndpoint {
        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
            endpoint::Endpoint {
                address: Some(address),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// Name of the cluster for one service port: `<namespace>/<name>:<port>`.
pub fn cluster_name(svc: &ServiceModel, port: u16) -> String {
    format!("{}/{}:{port}", svc.key.namespace, svc.key.name)
}

fn enforcer_cluster(cfg: &TranslateConfig) -> cluster::Cluster {
    let options = upstream_http::HttpProtocolOptions {
        upstream_protocol_options: Some(
            upstream_http::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                upstream_http::http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        upstream_http::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            core::Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
        ),
    };
    let pipe = core::Address {
        address: Some(core::address::Address::Pipe(core::Pipe {
            path: cfg.enforcer_socket.to_string_lossy().into_owned(),
            mode: 0,
        })),
    };
    cluster::Cluster {
        name: ENFORCER_CLUSTER.to_string(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(duration(Duration::from_secs(1))),
        typed_extension_protocol_options: [(
            HTTP_PROTOCOL_OPTIONS_KEY.to_string(),
            to_any(HTTP_PROTOCOL_OPTIONS_TYPE, &options),
        )]
        .into_iter()
        .collect(),
        load_assignment: Some(endpoint::ClusterLoadAssignment {
            cluster_name: ENFORCER_CLUSTER.to_string(),
            endpoints: vec![endpoint::LocalityLbEndpoints {
                lb_endpoints: vec![lb_endpoint(pipe)],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service_cluster(name: &str) -> cluster::Cluster {
    cluster::Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(duration(Duration::from_secs(5))),
        ..Default::default()
    }
}

fn load_assignment(
    name: &str,
    endpoints: &[std::net::SocketAddr],
) -> endpoint::ClusterLoadAssignment {
    endpoint::ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![endpoint::LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|a| lb_endpoint(socket_address(&a.ip().to_string(), a.port())))
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn ext_authz_filter(settings: &Settings, cfg: &TranslateConfig) -> ext_authz::ExtAuthz {
    ext_authz::ExtAuthz {
        services: Some(ext_authz::ext_authz::Services::GrpcService(
            core::GrpcService {
                target_specifier: Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(
                    core::grpc_service::EnvoyGrpc {
                        cluster_name: ENFORCER_CLUSTER.to_string(),
                        ..Default::default()
                    },
                )),
                timeout: Some(duration(cfg.ext_authz_timeout)),
                ..Default::default()
            },
        )),
        failure_mode_allow: settings.failure_mode_allow,
        with_request_body: Some(ext_authz::BufferSettings {
            max_request_bytes: settings.body_limit_bytes,
            allow_partial_message: true,
            pack_as_bytes: true,
        }),
        clear_route_cache: false,
        transport_api_version: core::ApiVersion::V3 as i32,
        stat_prefix: "palisade".to_string(),
        failure_mode_allow_header_add: settings.failure_mode_allow,
        encode_raw_headers: true,
    }
}

fn listener(settings: &Settings, cfg: &TranslateConfig) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "palisade".to_string(),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads_source()),
                route_config_name: ROUTE_CONFIG_NAME.to_string(),
            },
        )),
        http_filters: vec![
            hcm::HttpFilter {
                name: EXT_AUTHZ_FILTER.to_string(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(to_any(
                    EXT_AUTHZ_TYPE,
                    &ext_authz_filter(settings, cfg),
                ))),
                ..Default::default()
            },
            hcm::HttpFilter {
                name: "envoy.filters.http.router".to_string(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(to_any(
                    ROUTER_TYPE,
                    &router::Router::default(),
                ))),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    listener::Listener {
        name: LISTENER_NAME.to_string(),
        address: Some(socket_address(&cfg.listen_host, cfg.listen_port)),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(to_any(
                    HCM_TYPE, &manager,
                ))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Host names of one service: `name.ns.svc.cluster.local`, `name.ns.svc`,
/// `name.ns`, each bare (for the first port) and with `:port`.
fn domains(svc: &ServiceModel, port: u16, first: bool) -> Vec<String> {
    let base = [
        svc.dns_name(),
        format!("{}.{}.svc", svc.key.name, svc.key.namespace),
        format!("{}.{}", svc.key.name, svc.key.namespace),
    ];
    let mut out = Vec::new();
    for b in &base {
        if first {
            out.push(b.clone());
        }
        out.push(format!("{b}:{port}"));
    }
    if first {
        out.extend(svc.hosts.iter().cloned());
    }
    out
}

/// Whether a service's requests go through ext_authz: the settings this
/// depends on are the translation's "inspect key".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InspectKey {
    alp_enabled: bool,
    waf_enabled: bool,
}

impl InspectKey {
    fn of(settings: &Settings) -> InspectKey {
        InspectKey {
            alp_enabled: settings.alp_enabled,
            waf_enabled: settings.waf_enabled,
        }
    }

    fn inspects(self, svc: &ServiceModel) -> bool {
        self.alp_enabled || (self.waf_enabled && svc.mode != WafMode::Off)
    }

    /// Whether checks for `svc` need the request body (its WAF runs).
    fn needs_body(self, svc: &ServiceModel) -> bool {
        self.waf_enabled && svc.mode != WafMode::Off
    }
}

/// The per-route ext_authz settings: off when nothing inspects the service;
/// otherwise the service's name as context extension, and no body buffering
/// when only HTTP policy applies (it never reads the body).
fn per_route(inspect: bool, body: bool, svc: &ServiceModel) -> ext_authz::ExtAuthzPerRoute {
    let settings = if inspect {
        ext_authz::ext_authz_per_route::Override::CheckSettings(ext_authz::CheckSettings {
            context_extensions: [(CONTEXT_SERVICE_KEY.to_string(), svc.key.to_string())]
                .into_iter()
                .collect(),
            disable_request_body_buffering: !body,
            ..Default::default()
        })
    } else {
        ext_authz::ext_authz_per_route::Override::Disabled(true)
    };
    ext_authz::ExtAuthzPerRoute {
        r#override: Some(settings),
    }
}

fn virtual_host(
    svc: &ServiceModel,
    port: u16,
    domains: Vec<String>,
    per_route: &protobuf::Any,
) -> route::VirtualHost {
    route::VirtualHost {
        name: format!("{}:{}", svc.key, port),
        domains,
        routes: vec![route::Route {
            name: svc.key.to_string(),
            r#match: Some(route::RouteMatch {
                path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                    cluster_name(svc, port),
                )),
                ..Default::default()
            })),
            typed_per_filter_config: [(EXT_AUTHZ_FILTER.to_string(), per_route.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One virtual host of a service port, encoded, with what it takes to
/// re-encode it when another service already claims one of its domains.
#[derive(Debug, PartialEq)]
struct VirtualHostPart {
    port: u16,
    domains: Vec<String>,
    encoded: Vec<u8>,
    hash: [u8; 20],
}

/// What one service translated to.
#[derive(Debug)]
struct Translated {
    model: Arc<ServiceModel>,
    /// Cluster and ClusterLoadAssignment per cluster name (a repeated port
    /// number yields one cluster; the last port wins, as in a map).
    clusters: BTreeMap<Arc<str>, (Arc<XdsResource>, Arc<XdsResource>)>,
    vhosts: Vec<VirtualHostPart>,
}

fn sha1(bytes: &[u8]) -> [u8; 20] {
    Sha1::digest(bytes).into()
}

fn translate_service(svc: &Arc<ServiceModel>, inspect: InspectKey) -> Translated {
    let per_route = to_any(
        EXT_AUTHZ_PER_ROUTE_TYPE,
        &per_route(inspect.inspects(svc), inspect.needs_body(svc), svc),
    );
    let mut clusters = BTreeMap::new();
    let mut vhosts = Vec::new();
    for (i, port) in svc.ports.iter().enumerate() {
        let name = cluster_name(svc, port.port);
        let cluster = XdsResource::new(to_any(CLUSTER, &service_cluster(&name)));
        let endpoints =
            XdsResource::new(to_any(ENDPOINT, &load_assignment(&name, &port.endpoints)));
        clusters.insert(Arc::from(name), (Arc::new(cluster), Arc::new(endpoints)));
        let domains = domains(svc, port.port, i == 0);
        let encoded = virtual_host(svc, port.port, domains.clone(), &per_route).encode_to_vec();
        vhosts.push(VirtualHostPart {
            port: port.port,
            hash: sha1(&encoded),
            domains,
            encoded,
        });
    }
    Translated {
        model: Arc::clone(svc),
        clusters,
        vhosts,
    }
}

/// Changes to one resource map, applied on a copy of the previous map.
#[derive(Debug, Default)]
struct MapChanges {
    set: Vec<(Arc<str>, Arc<XdsResource>)>,
    remove: Vec<Arc<str>>,
}

impl MapChanges {
    fn apply(self, map: &mut Arc<ResourceMap>) {
        if self.set.is_empty() && self.remove.is_empty() {
            return;
        }
        let mut next = (**map).clone();
        for n in self.remove {
            next.remove(&n);
        }
        for (n, r) in self.set {
            next.insert(n, r);
        }
        *map = Arc::new(next);
    }
}

/// Turns models into snapshots, re-translating only what changed since the
/// previous model (see the module docs).
#[derive(Debug)]
pub struct Translator {
    cfg: TranslateConfig,
    inspect: Option<InspectKey>,
    services: BTreeMap<ServiceKey, Translated>,
    clusters: Arc<ResourceMap>,
    endpoints: Arc<ResourceMap>,
    listener: Option<Arc<XdsResource>>,
    routes: Option<Arc<XdsResource>>,
    previous: Option<XdsSnapshot>,
}

impl Translator {
    /// A translator with empty caches.
    pub fn new(cfg: TranslateConfig) -> Translator {
        let enforcer = XdsResource::new(to_any(CLUSTER, &enforcer_cluster(&cfg)));
        let clusters = ResourceMap::from([(Arc::from(ENFORCER_CLUSTER), Arc::new(enforcer))]);
        Translator {
            cfg,
            inspect: None,
            services: BTreeMap::new(),
            clusters: Arc::new(clusters),
            endpoints: Arc::default(),
            listener: None,
            routes: None,
            previous: None,
        }
    }

    /// The snapshot for `model`, with its differences from the previous
    /// snapshot this translator made recorded in [`XdsSnapshot::deltas`].
    pub fn translate(&mut self, model: &Model) -> XdsSnapshot {
        let inspect = InspectKey::of(&model.settings);
        let mut routes_dirty = self.routes.is_none();
        if self.inspect != Some(inspect) {
            // Every route's ext_authz override may change.
            self.inspect = Some(inspect);
            routes_dirty = true;
            for t in self.services.values_mut() {
                *t = translate_service(&t.model, inspect);
            }
        }
        let mut clusters = MapChanges::default();
        let mut endpoints = MapChanges::default();

        // Walk the model and the cache together (both sorted by key).
        let mut replaced: Vec<(ServiceKey, Translated)> = Vec::new();
        let mut gone: Vec<ServiceKey> = Vec::new();
        {
            let mut cached = self.services.iter_mut().peekable();
            for (key, svc) in &model.services {
                // Cached services before this key are gone from the model.
                while let Some((k, _)) = cached.peek() {
                    if *k < key {
                        if let Some((k, _)) = cached.next() {
                            gone.push(k.clone());
                        }
                    } else {
                        break;
                    }
                }
                let old = match cached.peek() {
                    Some((k, _)) if *k == key => cached.next().map(|(_, t)| t),
                    _ => None,
                };
                match old {
                    Some(t) if Arc::ptr_eq(&t.model, svc) => {}
                    Some(t) if *t.model == **svc => t.model = Arc::clone(svc),
                    old => {
                        let old: Option<&Translated> = old.map(|t| &*t);
                        let mut new = translate_service(svc, inspect);
                        let old_clusters = old.map(|t| &t.clusters);
                        for (name, (c, e)) in new.clusters.iter_mut() {
                            let before = old_clusters.and_then(|o| o.get(name));
                            match before {
                                Some((oc, _)) if oc.version == c.version => *c = Arc::clone(oc),
                                _ => clusters.set.push((Arc::clone(name), Arc::clone(c))),
                            }
                            match before {
                                Some((_, oe)) if oe.version == e.version => *e = Arc::clone(oe),
                                _ => endpoints.set.push((Arc::clone(name), Arc::clone(e))),
                            }
                        }
                        for name in old_clusters.into_iter().flat_map(|o| o.keys()) {
                            if !new.clusters.contains_key(name) {
                                clusters.remove.push(Arc::clone(name));
                                endpoints.remove.push(Arc::clone(name));
                            }
                        }
                        if old.map(|t| &t.vhosts) != Some(&new.vhosts) {
                            routes_dirty = true;
                        }
                        replaced.push((key.clone(), new));
                    }
                }
            }
            gone.extend(cached.map(|(k, _)| k.clone()));
        }
        for key in gone {
            if let Some(t) = self.services.remove(&key) {
                routes_dirty = true;
                for name in t.clusters.keys() {
                    clusters.remove.push(Arc::clone(name));
                    endpoints.remove.push(Arc::clone(name));
                }
            }
        }
        for (key, t) in replaced {
            self.services.insert(key, t);
        }
        // Removals first, so a name moving between services is kept.
        clusters.apply(&mut self.clusters);
        endpoints.apply(&mut self.endpoints);

        let listener = XdsResource::new(to_any(LISTENER, &listener(&model.settings, &self.cfg)));
        if self.listener.as_ref().map(|l| &l.version) != Some(&listener.version) {
            self.listener = Some(Arc::new(listener));
        }
        if routes_dirty {
            self.routes = Some(Arc::new(self.route_configuration()));
        }

        let mut types = std::collections::BTreeMap::new();
        let previous = self.previous.take();
        let maps: [(&str, Arc<ResourceMap>); 4] = [
            (CLUSTER, Arc::clone(&self.clusters)),
            (ENDPOINT, Arc::clone(&self.endpoints)),
            (
                LISTENER,
                Arc::new(single(LISTENER_NAME, self.listener.as_ref())),
            ),
            (
                ROUTE,
                Arc::new(single(ROUTE_CONFIG_NAME, self.routes.as_ref())),
            ),
        ];
        for (type_url, map) in maps {
            let before = previous.as_ref().and_then(|p| p.types.get(type_url));
            let ts = match before {
                Some(b) if Arc::ptr_eq(&b.resources, &map) || same_single(&b.resources, &map) => {
                    b.clone()
                }
                _ => TypeSnapshot::new(map),
            };
            types.insert(type_url.to_string(), ts);
        }
        let mut snapshot = XdsSnapshot {
            types,
            deltas: BTreeMap::new(),
        };
        if let Some(p) = &previous {
            snapshot = snapshot.with_delta_from(p);
        }
        debug_assert!(PUSH_ORDER.iter().all(|t| snapshot.types.contains_key(*t)));
        self.previous = Some(XdsSnapshot {
            types: snapshot.types.clone(),
            deltas: BTreeMap::new(),
        });
        snapshot
    }

    /// The route configuration from the cached virtual hosts, in service key
    /// order; a domain already claimed by an earlier virtual host (two
    /// services naming the same extra host) stays with its first owner.
    fn route_configuration(&self) -> XdsResource {
        let total: usize = self
            .services
            .values()
            .flat_map(|t| &t.vhosts)
            .map(|v| v.encoded.len() + 8)
            .sum();
        let count: usize = self
            .services
            .values()
            .flat_map(|t| &t.vhosts)
            .map(|v| v.domains.len())
            .sum();
        let mut used: HashSet<&str> = HashSet::with_capacity(count);
        let mut body = Vec::with_capacity(total + ROUTE_CONFIG_NAME.len() + 8);
        let mut version = Sha1::new();
        version.update(ROUTE_CONFIG_NAME.as_bytes());
        // RouteConfiguration: name (1), virtual_hosts (2).
        put_field(&mut body, 1, ROUTE_CONFIG_NAME.as_bytes());
        for t in self.services.values() {
            for v in &t.vhosts {
                let mut kept = Vec::new();
                let mut all = true;
                for d in &v.domains {
                    if used.insert(d) {
                        kept.push(d.clone());
                    } else {
                        all = false;
                    }
                }
                if all {
                    put_field(&mut body, 2, &v.encoded);
                    version.update(v.hash);
                } else if !kept.is_empty() {
                    let per_route = to_any(
                        EXT_AUTHZ_PER_ROUTE_TYPE,
                        &per_route(
                            self.inspect.is_some_and(|i| i.inspects(&t.model)),
                            self.inspect.is_some_and(|i| i.needs_body(&t.model)),
                            &t.model,
                        ),
                    );
                    let encoded = virtual_host(&t.model, v.port, kept, &per_route).encode_to_vec();
                    put_field(&mut body, 2, &encoded);
                    version.update(sha1(&encoded));
                }
            }
        }
        let version = hex::encode(version.finalize())[..16].to_string();
        XdsResource::with_version(
            version,
            protobuf::Any {
                type_url: ROUTE.to_string(),
                value: body,
            },
        )
    }
}

fn put_field(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    prost::encoding::encode_key(
        u32::from(tag),
        prost::encoding::WireType::LengthDelimited,
        buf,
    );
    prost::encoding::encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

fn single(name: &str, r: Option<&Arc<XdsResource>>) -> ResourceMap {
    r.map(|r| (Arc::from(name), Arc::clone(r)))
        .into_iter()
        .collect()
}

/// Two one-resource maps holding the same resource.
fn same_single(a: &ResourceMap, b: &ResourceMap) -> bool {
    a.len() == 1
        && b.len() == 1
        && a.iter()
            .zip(b.iter())
            .all(|((na, ra), (nb, rb))| na == nb && Arc::ptr_eq(ra, rb))
}

/// Builds every resource for the model from scratch.
pub fn translate(model: &Model, cfg: &TranslateConfig) -> XdsSnapshot {
    Translator::new(cfg.clone()).translate(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortModel, ServiceModel};
    use xds_api::pb::envoy::config::route::v3::RouteConfiguration;

    fn service(ns: &str, name: &str, hosts: &[&str], last_octet: u8) -> ServiceModel {
        ServiceModel {
            key: ServiceKey {
                namespace: ns.into(),
                name: name.into(),
            },
            mode: WafMode::On,
            ruleset: "baseline".into(),
            labels: BTreeMap::new(),
            namespace_labels: BTreeMap::new(),
            service_account: "default".into(),
            cluster_ips: Vec::new(),
            ports: vec![PortModel {
                name: "http".into(),
                port: 80,
                endpoints: vec![format!("10.0.0.{last_octet}:8080").parse().unwrap()],
            }],
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            policies: Vec::new(),
        }
    }

    fn model(services: Vec<ServiceModel>) -> Model {
        Model {
            services: services
                .into_iter()
                .map(|s| (s.key.clone(), Arc::new(s)))
                .collect(),
            ..Model::default()
        }
    }

    #[test]
    fn route_configuration_matches_prost_and_dedups_domains() {
        let m = model(vec![
            service("a", "one", &["shared.example"], 1),
            service("b", "two", &["shared.example", "own.example"], 2),
        ]);
        let s = translate(&m, &TranslateConfig::default());
        let r = &s.types[ROUTE].resources[ROUTE_CONFIG_NAME];
        let rc = RouteConfiguration::decode(r.body.value.as_slice()).unwrap();
        assert_eq!(rc.virtual_hosts.len(), 2);
        assert!(rc.virtual_hosts[0]
            .domains
            .contains(&"shared.example".to_string()));
        assert!(!rc.virtual_hosts[1]
            .domains
            .contains(&"shared.example".to_string()));
        assert!(rc.virtual_hosts[1]
            .domains
            .contains(&"own.example".to_string()));
        // The assembled bytes are what prost writes for the decoded message.
        assert_eq!(rc.encode_to_vec(), r.body.value);
    }

    #[test]
    fn body_is_buffered_only_where_the_waf_runs() {
        let inspect = InspectKey {
            alp_enabled: true,
            waf_enabled: true,
        };
        for (mode, buffered) in [
            (WafMode::On, true),
            (WafMode::DetectionOnly, true),
            (WafMode::Off, false),
        ] {
            let mut svc = service("n", "a", &[], 1);
            svc.mode = mode;
            let r = per_route(inspect.inspects(&svc), inspect.needs_body(&svc), &svc);
            let Some(ext_authz::ext_authz_per_route::Override::CheckSettings(c)) = r.r#override
            else {
                panic!("{mode:?}: policy still checks the service");
            };
            assert_eq!(c.disable_request_body_buffering, !buffered, "{mode:?}");
            assert_eq!(c.context_extensions[CONTEXT_SERVICE_KEY], "n/a");
        }
        // Neither policy nor WAF: no check at all.
        let off = InspectKey {
            alp_enabled: false,
            waf_enabled: true,
        };
        let mut svc = service("n", "a", &[], 1);
        svc.mode = WafMode::Off;
        let r = per_route(off.inspects(&svc), off.needs_body(&svc), &svc);
        assert_eq!(
            r.r#override,
            Some(ext_authz::ext_authz_per_route::Override::Disabled(true))
        );
        // Envoy sends headers as raw bytes (header_map).
        assert!(
            ext_authz_filter(&Settings::default(), &TranslateConfig::default()).encode_raw_headers
        );
    }

    #[test]
    fn endpoint_change_touches_one_resource() {
        let cfg = TranslateConfig::default();
        let mut t = Translator::new(cfg.clone());
        let a = t.translate(&model(vec![
            service("n", "a", &[], 1),
            service("n", "b", &[], 2),
        ]));
        let b = t.translate(&model(vec![
            service("n", "a", &[], 9),
            service("n", "b", &[], 2),
        ]));
        assert_eq!(b.deltas[ENDPOINT].changed.len(), 1);
        assert_eq!(&*b.deltas[ENDPOINT].changed[0], "n/a:80");
        for type_url in [CLUSTER, LISTENER, ROUTE] {
            assert_eq!(a.types[type_url].version, b.types[type_url].version);
            assert!(b.deltas[type_url].changed.is_empty());
        }
        // Unchanged resources keep their version and allocation.
        let (ra, rb) = (
            &a.types[ENDPOINT].resources["n/b:80"],
            &b.types[ENDPOINT].resources["n/b:80"],
        );
        assert!(Arc::ptr_eq(ra, rb));
        // Same as a translation from scratch.
        let full = translate(
            &model(vec![service("n", "a", &[], 9), service("n", "b", &[], 2)]),
            &cfg,
        );
        assert!(full.same_versions(&b));
    }
}
