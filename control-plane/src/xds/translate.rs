//! Model → Envoy resources, explicit mode: one HTTP listener whose virtual hosts
//! are the protected services' DNS names (with and without the port), the
//! ext_authz filter calling the node's enforcer over its Unix socket, the
//! router, per-route `context_extensions` naming the service, and one EDS
//! cluster per service port.
//!
//! A transparent (TPROXY) mode would add per-service listeners with original
//! destination matching; it would reuse the clusters and routes built here.

use std::collections::BTreeMap;
use std::path::PathBuf;
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

use super::{to_any, XdsResource, XdsSnapshot, CLUSTER, ENDPOINT, LISTENER, ROUTE};
use crate::k8s::WafMode;
use crate::model::{Model, ServiceModel};

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

fn ext_authz_filter(model: &Model, cfg: &TranslateConfig) -> ext_authz::ExtAuthz {
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
        failure_mode_allow: model.settings.failure_mode_allow,
        with_request_body: Some(ext_authz::BufferSettings {
            max_request_bytes: model.settings.body_limit_bytes,
            allow_partial_message: true,
            pack_as_bytes: true,
        }),
        clear_route_cache: false,
        transport_api_version: core::ApiVersion::V3 as i32,
        stat_prefix: "palisade".to_string(),
        failure_mode_allow_header_add: model.settings.failure_mode_allow,
    }
}

fn listener(model: &Model, cfg: &TranslateConfig) -> listener::Listener {
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
                    &ext_authz_filter(model, cfg),
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

fn per_route(model: &Model, svc: &ServiceModel) -> ext_authz::ExtAuthzPerRoute {
    let inspect =
        model.settings.alp_enabled || (model.settings.waf_enabled && svc.mode != WafMode::Off);
    let settings = if inspect {
        ext_authz::ext_authz_per_route::Override::CheckSettings(ext_authz::CheckSettings {
            context_extensions: [(CONTEXT_SERVICE_KEY.to_string(), svc.key.to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        })
    } else {
        ext_authz::ext_authz_per_route::Override::Disabled(true)
    };
    ext_authz::ExtAuthzPerRoute {
        r#override: Some(settings),
    }
}

fn route_configuration(model: &Model) -> route::RouteConfiguration {
    let mut virtual_hosts = Vec::new();
    let mut used = std::collections::HashSet::new();
    for svc in model.services.values() {
        let per_route = to_any(EXT_AUTHZ_PER_ROUTE_TYPE, &per_route(model, svc));
        for (i, port) in svc.ports.iter().enumerate() {
            // Domains must be unique across virtual hosts; a duplicate (two
            // services claiming one extra host) keeps its first owner.
            let domains: Vec<String> = domains(svc, port.port, i == 0)
                .into_iter()
                .filter(|d| used.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            virtual_hosts.push(route::VirtualHost {
                name: format!("{}:{}", svc.key, port.port),
                domains,
                routes: vec![route::Route {
                    name: svc.key.to_string(),
                    r#match: Some(route::RouteMatch {
                        path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(route::route::Action::Route(route::RouteAction {
                        cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                            cluster_name(svc, port.port),
                        )),
                        ..Default::default()
                    })),
                    typed_per_filter_config: [(EXT_AUTHZ_FILTER.to_string(), per_route.clone())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    route::RouteConfiguration {
        name: ROUTE_CONFIG_NAME.to_string(),
        virtual_hosts,
        ..Default::default()
    }
}

/// Builds every resource for the model.
pub fn translate(model: &Model, cfg: &TranslateConfig) -> XdsSnapshot {
    let mut clusters = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let enforcer = enforcer_cluster(cfg);
    clusters.insert(
        ENFORCER_CLUSTER.to_string(),
        XdsResource::new(to_any(CLUSTER, &enforcer)),
    );
    for svc in model.services.values() {
        for port in &svc.ports {
            let name = cluster_name(svc, port.port);
            clusters.insert(
                name.clone(),
                XdsResource::new(to_any(CLUSTER, &service_cluster(&name))),
            );
            endpoints.insert(
                name.clone(),
                XdsResource::new(to_any(ENDPOINT, &load_assignment(&name, &port.endpoints))),
            );
        }
    }
    let listeners = BTreeMap::from([(
        LISTENER_NAME.to_string(),
        XdsResource::new(to_any(LISTENER, &listener(model, cfg))),
    )]);
    let routes = BTreeMap::from([(
        ROUTE_CONFIG_NAME.to_string(),
        XdsResource::new(to_any(ROUTE, &route_configuration(model))),
    )]);
    XdsSnapshot::from_resources([
        (CLUSTER.to_string(), clusters),
        (ENDPOINT.to_string(), endpoints),
        (LISTENER.to_string(), listeners),
        (ROUTE.to_string(), routes),
    ])
}
