//! `envoy.service.auth.v3.Authorization/Check`: turns Envoy's `CheckRequest`
//! into [`HttpFacts`], decides, records metrics and events, and answers OK or
//! PERMISSION_DENIED with a denied HTTP response.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};
use xds_api::pb::envoy::config::core::v3::{
    address, socket_address, Address, HeaderValue, HeaderValueOption,
};
use xds_api::pb::envoy::r#type::v3::HttpStatus;
use xds_api::pb::envoy::service::auth::v3::authorization_server::Authorization;
use xds_api::pb::envoy::service::auth::v3::{
    check_response, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use xds_api::pb::google::rpc;

use crate::decide::{decide, decide_without_snapshot, HttpFacts, Outcome};
use crate::Shared;

/// The context extension that names the destination service (`namespace/name`).
pub const SERVICE_EXTENSION: &str = "palisade.service";

/// gRPC code for PERMISSION_DENIED.
const PERMISSION_DENIED: i32 = 7;

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct AuthorizationService {
    shared: Arc<Shared>,
}

impl AuthorizationService {
    /// A service over the shared enforcer state.
    pub fn new(shared: Arc<Shared>) -> AuthorizationService {
        AuthorizationService { shared }
    }
}

fn socket(address: Option<&Address>) -> (Option<IpAddr>, u16) {
    let Some(address::Address::SocketAddress(sa)) = address.and_then(|a| a.address.as_ref()) else {
        return (None, 0);
    };
    let port = match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(p).unwrap_or(0),
        _ => 0,
    };
    (sa.address.parse().ok(), port)
}

/// The facts of a decoded `CheckRequest` (the prost types; the server
/// decodes the wire format directly with [`crate::wire`], to the same result).
pub fn facts(request: &CheckRequest) -> HttpFacts<'_> {
    let attrs = request.attributes.as_ref();
    let (source_ip, source_port) = socket(
        attrs
            .and_then(|a| a.source.as_ref())
            .and_then(|p| p.address.as_ref()),
    );
    let (destination_ip, destination_port) = socket(
        attrs
            .and_then(|a| a.destination.as_ref())
            .and_then(|p| p.address.as_ref()),
    );
    let service = attrs
        .and_then(|a| a.context_extensions.get(SERVICE_EXTENSION))
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    let http = attrs
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let mut facts = HttpFacts {
        source_ip,
        source_port,
        destination_ip,
        destination_port,
        service,
        ..Default::default()
    };
    if let Some(http) = http {
        facts.method = &http.method;
        facts.path = &http.path;
        facts.host = &http.host;
        facts.protocol = &http.protocol;
        facts.body = if http.raw_body.is_empty() {
            http.body.as_bytes()
        } else {
            &http.raw_body
        };
        match &http.header_map {
            Some(map) if !map.headers.is_empty() => {
                facts.headers = map
                    .headers
                    .iter()
                    .map(|h| {
                        let value: &[u8] = if h.raw_value.is_empty() {
                            h.value.as_bytes()
                        } else {
                            &h.raw_value
                        };
                        (h.key.as_str(), value)
                    })
                    .collect();
            }
            _ => {
                facts.headers = http
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_bytes()))
                    .collect();
                // Stable order (the map is unordered).
                facts.headers.sort_by(|a, b| a.0.cmp(b.0));
            }
        }
        complete_facts(&mut facts, &http.id);
    }
    facts
}

/// Fills what the headers imply: the request id (`x-request-id`, else
/// Envoy's `id`) and, when Envoy sent no host, the host from `:authority` or
/// `host`.
pub(crate) fn complete_facts<'a>(facts: &mut HttpFacts<'a>, envoy_id: &'a str) {
    facts.request_id = facts
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .unwrap_or(envoy_id);
    if facts.host.is_empty() {
        facts.host = facts
            .headers
            .iter()
            .find(|(k, _)| *k == ":authority" || k.eq_ignore_ascii_case("host"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .unwrap_or("");
    }
}

/// Decides a `CheckRequest` against the shared state (no gRPC involved).
pub fn check(shared: &Shared, request: &CheckRequest) -> Outcome {
    check_facts(shared, &facts(request))
}

/// Decides a request against the active snapshot (or the failure mode) and
/// emits its event, if any.
pub fn check_facts(shared: &Shared, facts: &HttpFacts<'_>) -> Outcome {
    let snapshot = shared.snapshots.current();
    match &*snapshot {
        Some(snapshot) => {
            let outcome = decide(snapshot, facts);
            if let Some(event) = &outcome.event {
                if snapshot.settings.collect_logs {
                    shared.events.emit(
                        event,
                        snapshot.settings.log_interval,
                        snapshot.settings.log_requests_per_interval,
                    );
                }
            }
            outcome
        }
        None => {
            let outcome = decide_without_snapshot(facts, shared.failure_mode_allow);
            if let Some(event) = &outcome.event {
                shared
                    .events
                    .emit(event, Some(std::time::Duration::from_secs(5)), 100);
            }
            outcome
        }
    }
}

/// Counts a decided Check in the metrics (decision, rule hits, policy
/// denial, engine failure, duration since `started`).
pub fn record(shared: &Shared, outcome: &Outcome, started: Instant) {
    let metrics = &shared.metrics;
    metrics.decision(&outcome.service, outcome.action);
    for id in &outcome.rule_ids {
        metrics.rule_hit(*id);
    }
    if let Some((tier, policy)) = &outcome.denied_by_policy {
        metrics.policy_denial(tier, policy);
    }
    if outcome.cause == crate::decide::Cause::Error {
        metrics.engine_failure();
    }
    metrics.check_duration(started.elapsed());
    tracing::debug!(
        service = %outcome.service,
        action = outcome.action,
        status = outcome.status,
        "check"
    );
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `CheckResponse` for an outcome.
pub fn response(outcome: &Outcome) -> CheckResponse {
    if outcome.allow {
        return CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(check_response::HttpResponse::OkResponse(
                OkHttpResponse::default(),
            )),
            ..Default::default()
        };
    }
    let mut headers = vec![header("content-type", "text/plain; charset=utf-8")];
    if let Some(location) = &outcome.redirect {
        headers.push(header("location", location));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: PERMISSION_DENIED,
            message: format!("denied ({})", outcome.cause.as_str()),
            ..Default::default()
        }),
        http_response: Some(check_response::HttpResponse::DeniedResponse(
            DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(outcome.status),
                }),
                headers,
                body: "Forbidden by Palisade\n".to_string(),
            },
        )),
        ..Default::default()
    }
}

/// The tonic `Authorization` service, for embedding the enforcer in another
/// tonic server. The enforcer's own listeners serve Check through
/// [`crate::server`] instead, which decodes without prost's allocations.
#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let outcome = check(&self.shared, &request);
        let response = response(&outcome);
        record(&self.shared, &outcome, started);
        Ok(Response::new(response))
    }
}
