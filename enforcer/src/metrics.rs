//! Prometheus metrics and the HTTP endpoint that serves them (`/metrics`),
//! with readiness (`/ready`: 200 once a snapshot is active).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `palisade_enforcer_decisions_total` | counter | `service`, `action` (allowed, denied, detected) |
//! | `palisade_enforcer_rule_hits_total` | counter | `rule_id` |
//! | `palisade_enforcer_policy_denials_total` | counter | `tier`, `policy` |
//! | `palisade_enforcer_check_duration_seconds` | histogram | |
//! | `palisade_enforcer_snapshot_info` | gauge (1) | `version` (the active one) |
//! | `palisade_enforcer_snapshot_updates_total` | counter | `result` (applied, rejected) |
//! | `palisade_enforcer_events_suppressed_total` | counter | |
//! | `palisade_enforcer_engine_failures_total` | counter | |
//! | `palisade_enforcer_sync_connected` | gauge | |
//! | `palisade_enforcer_verdict_cache_values` | gauge | (values the active rulesets' verdict caches hold) |
//! | `palisade_enforcer_verdict_cache_bytes` | gauge | (bytes they count for them; at most 16 MiB per ruleset) |

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::Shared;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    service: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule_id: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    tier: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The enforcer's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    rule_hits: Family<RuleLabels, Counter>,
    policy_denials: Family<PolicyLabels, Counter>,
    check_duration: Histogram,
    snapshot_info: Family<VersionLabels, Gauge>,
    active_version: Mutex<Option<String>>,
    snapshot_updates: Family<ResultLabels, Counter>,
    events_suppressed: Counter,
    engine_failures: Counter,
    sync_connected: Gauge,
    verdict_cache_values: Gauge,
    verdict_cache_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("palisade_enforcer");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Check decisions by service and action",
            decisions.clone(),
        );
        let rule_hits = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_hits",
            "WAF rules matched, by rule id",
            rule_hits.clone(),
        );
        let policy_denials = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_denials",
            "Requests denied by HTTP policy, by tier and policy",
            policy_denials.clone(),
        );
        let check_duration = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        registry.register(
            "check_duration_seconds",
            "Time from a Check request's arrival (its headers) to its decision",
            check_duration.clone(),
        );
        let snapshot_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "snapshot_info",
            "The active snapshot version (value 1)",
            snapshot_info.clone(),
        );
        let snapshot_updates = Family::<ResultLabels, Counter>::default();
        registry.register(
            "snapshot_updates",
            "Snapshot updates applied or rejected",
            snapshot_updates.clone(),
        );
        let events_suppressed = Counter::default();
        registry.register(
            "events_suppressed",
            "Events dropped by the rate limit or a full queue",
            events_suppressed.clone(),
        );
        let engine_failures = Counter::default();
        registry.register(
            "engine_failures",
            "Requests decided by the failure mode after an internal error",
            engine_failures.clone(),
        );
        let sync_connected = Gauge::default();
        registry.register(
            "sync_connected",
            "1 while the policy-sync stream is up",
            sync_connected.clone(),
        );
        let verdict_cache_values = Gauge::default();
        registry.register(
            "verdict_cache_values",
            "Values the active rulesets' verdict caches hold",
            verdict_cache_values.clone(),
        );
        let verdict_cache_bytes = Gauge::default();
        registry.register(
            "verdict_cache_bytes",
            "Bytes the active rulesets' verdict caches count for their values",
            verdict_cache_bytes.clone(),
        );
        Metrics {
            registry,
            decisions,
            rule_hits,
            policy_denials,
            check_duration,
            snapshot_info,
            active_version: Mutex::new(None),
            snapshot_updates,
            events_suppressed,
            engine_failures,
            sync_connected,
            verdict_cache_values,
            verdict_cache_bytes,
        }
    }

    /// Counts one decision.
    pub fn decision(&self, service: &str, action: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                service: service.to_string(),
                action,
            })
            .inc();
    }

    /// Counts one WAF rule hit.
    pub fn rule_hit(&self, rule_id: i64) {
        self.rule_hits.get_or_create(&RuleLabels { rule_id }).inc();
    }

    /// Counts one policy denial.
    pub fn policy_denial(&self, tier: &str, policy: &str) {
        self.policy_denials
            .get_or_create(&PolicyLabels {
                tier: tier.to_string(),
                policy: policy.to_string(),
            })
            .inc();
    }

    /// Records how long a Check took.
    pub fn check_duration(&self, elapsed: Duration) {
        self.check_duration.observe(elapsed.as_secs_f64());
    }

    /// Records a snapshot update result and, when applied, the new version.
    pub fn snapshot_update(&self, applied: bool, version: &str) {
        self.snapshot_updates
            .get_or_create(&ResultLabels {
                result: if applied { "applied" } else { "rejected" },
            })
            .inc();
        if !applied {
            return;
        }
        let mut active = match self.active_version.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = active.take() {
            self.snapshot_info.remove(&VersionLabels { version: old });
        }
        self.snapshot_info
            .get_or_create(&VersionLabels {
                version: version.to_string(),
            })
            .set(1);
        *active = Some(version.to_string());
    }

    /// Sets the suppressed-events counter to the sink's running total.
    pub fn events_suppressed(&self, total: u64) {
        let now = self.events_suppressed.get();
        if total > now {
            self.events_suppressed.inc_by(total - now);
        }
    }

    /// Counts a request decided by the failure mode.
    pub fn engine_failure(&self) {
        self.engine_failures.inc();
    }

    /// Sets the verdict cache gauges (values, bytes).
    pub fn verdict_cache(&self, values: usize, bytes: usize) {
        self.verdict_cache_values
            .set(i64::try_from(values).unwrap_or(i64::MAX));
        self.verdict_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Marks the sync stream up or down.
    pub fn sync_connected(&self, up: bool) {
        self.sync_connected.set(i64::from(up));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared
        .metrics
        .events_suppressed(shared.events.suppressed_total());
    let (values, bytes) = shared.snapshots.load().map_or((0, 0), |s| {
        s.rulesets().values().fold((0, 0), |(v, b), r| {
            let (rv, rb) = r.ruleset.verdict_cache_usage();
            (v + rv, b + rb)
        })
    });
    shared.metrics.verdict_cache(values, bytes);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.snapshots.version() {
        Some(v) => (StatusCode::OK, format!("ready: snapshot {v}\n")),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot yet\n".to_string(),
        ),
    }
}

/// The `/metrics`, `/ready` and `/healthz` routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

/// Binds the metrics endpoint; returns the bound address and the server future.
pub async fn bind(
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(shared);
    Ok((local, async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_names() {
        let m = Metrics::new();
        m.decision("shop/web", "denied");
        m.rule_hit(942100);
        m.policy_denial("default", "get-only");
        m.check_duration(Duration::from_micros(300));
        m.snapshot_update(true, "v1");
        m.snapshot_update(true, "v2");
        m.snapshot_update(false, "v3");
        m.events_suppressed(4);
        m.sync_connected(true);
        let text = m.encode();
        for want in [
            r#"palisade_enforcer_decisions_total{service="shop/web",action="denied"} 1"#,
            r#"palisade_enforcer_rule_hits_total{rule_id="942100"} 1"#,
            r#"palisade_enforcer_policy_denials_total{tier="default",policy="get-only"} 1"#,
            "palisade_enforcer_check_duration_seconds_count 1",
            r#"palisade_enforcer_snapshot_info{version="v2"} 1"#,
            r#"palisade_enforcer_snapshot_updates_total{result="rejected"} 1"#,
            "palisade_enforcer_events_suppressed_total 4",
            "palisade_enforcer_sync_connected 1",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
        assert!(!text.contains(r#"version="v1""#), "old version removed");
    }
}
