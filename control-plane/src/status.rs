//! What every node has applied, for `GET /status` and `/metrics`: per node the
//! xDS versions its Envoy acknowledged or rejected and the policy versions its
//! enforcer applied, plus the model version and its problems, and the state
//! of the GlobalAlerts (the [`AlertEngine`] lives here, so the policy-sync
//! server that receives events and the admin server that shows them share it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;

use crate::alerts::{escape_label, AlertEngine, AlertsReport};
use crate::source::Problem;

/// Short name of an xDS type URL (`Cluster`, `ClusterLoadAssignment`, ...).
pub fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// A rejected version and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The version rejected.
    pub version: String,
    /// The reason given.
    pub error: String,
    /// Resource names in the rejected response.
    pub resources: Vec<String>,
}

/// One xDS type on one Envoy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct XdsTypeStatus {
    /// Last version sent.
    pub sent: Option<String>,
    /// Last version acknowledged.
    pub acked: Option<String>,
    /// Last rejection (cleared by a later ACK).
    pub nacked: Option<Rejection>,
    /// Responses sent.
    pub responses: u64,
    /// NACKs received.
    pub nacks: u64,
}

/// One Envoy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyStatus {
    /// A stream is open.
    pub connected: bool,
    /// `sotw` or `delta`.
    pub protocol: String,
    /// Per type (short names).
    pub types: BTreeMap<String, XdsTypeStatus>,
}

/// One enforcer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforcerStatus {
    /// A stream is open.
    pub connected: bool,
    /// Enforcer build.
    pub enforcer_version: String,
    /// Last state version sent.
    pub sent: Option<String>,
    /// Last version applied.
    pub applied: Option<String>,
    /// Last rejection.
    pub rejected: Option<Rejection>,
    /// Events received.
    pub events: u64,
    /// Events the enforcer dropped by rate limit.
    pub events_suppressed: u64,
}

/// Per node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Its Envoy.
    pub envoy: Option<EnvoyStatus>,
    /// Its enforcer.
    pub enforcer: Option<EnforcerStatus>,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// Current model version (none before the first model).
    pub model_version: Option<String>,
    /// Protected services.
    pub services: usize,
    /// Problems of the current model.
    pub problems: Vec<Problem>,
    /// Per node id.
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Models built.
    pub model_updates: u64,
    /// Seconds since the Unix epoch of the last model update.
    pub updated_at: Option<u64>,
    /// GlobalAlerts: per alert its last evaluation and firing, and the
    /// event window.
    pub alerts: AlertsReport,
}

/// Shared, cheaply cloned status registry.
#[derive(Clone, Debug, Default)]
pub struct Status {
    inner: Arc<Mutex<StatusReport>>,
    alerts: AlertEngine,
}

impl Status {
    /// An empty registry.
    pub fn new() -> Status {
        Status::default()
    }

    fn lock(&self) -> MutexGuard<'_, StatusReport> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the report (problems include those of GlobalAlerts).
    pub fn report(&self) -> StatusReport {
        let mut r = self.lock().clone();
        r.alerts = self.alerts.report();
        for p in self.alerts.problems() {
            if !r.problems.contains(&p) {
                r.problems.push(p);
            }
        }
        r
    }

    /// The alert engine: enforcers' events go in, alert state comes out.
    pub fn alerts(&self) -> &AlertEngine {
        &self.alerts
    }

    /// Records a new model.
    pub fn model(&self, version: &str, services: usize, problems: &[Problem]) {
        let mut r = self.lock();
        r.model_version = Some(version.to_string());
        r.services = services;
        r.problems = problems.to_vec();
        r.model_updates += 1;
        r.updated_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
    }

    /// Changes one Envoy's entry.
    pub fn envoy<R>(&self, node: &str, f: impl FnOnce(&mut EnvoyStatus) -> R) -> R {
        let mut r = self.lock();
        let node = r.nodes.entry(node.to_string()).or_default();
        f(node.envoy.get_or_insert_with(EnvoyStatus::default))
    }

    /// Changes one xDS type of one Envoy.
    pub fn envoy_type<R>(
        &self,
        node: &str,
        type_url: &str,
        f: impl FnOnce(&mut XdsTypeStatus) -> R,
    ) -> R {
        self.envoy(node, |e| {
            f(e.types.entry(short_type(type_url).to_string()).or_default())
        })
    }

    /// Changes one enforcer's entry.
    pub fn enforcer<R>(&self, node: &str, f: impl FnOnce(&mut EnforcerStatus) -> R) -> R {
        let mut r = self.lock();
        let node = r.nodes.entry(node.to_string()).or_default();
        f(node.enforcer.get_or_insert_with(EnforcerStatus::default))
    }

    /// Renders Prometheus text exposition.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let r = self.lock();
        let mut out = String::new();
        let esc = escape_label;
        let _ = writeln!(
            out,
            "# HELP palisade_model_updates_total Models built and published."
        );
        let _ = writeln!(out, "# TYPE palisade_model_updates_total counter");
        let _ = writeln!(out, "palisade_model_updates_total {}", r.model_updates);
        let _ = writeln!(
            out,
            "# HELP palisade_services Protected services in the model."
        );
        let _ = writeln!(out, "# TYPE palisade_services gauge");
        let _ = writeln!(out, "palisade_services {}", r.services);
        let _ = writeln!(
            out,
            "# HELP palisade_problems Objects refused or suspicious in the current model."
        );
        let _ = writeln!(out, "# TYPE palisade_problems gauge");
        let alert_problems = self
            .alerts
            .problems()
            .into_iter()
            .filter(|p| !r.problems.contains(p))
            .count();
        let _ = writeln!(
            out,
            "palisade_problems {}",
            r.problems.len() + alert_problems
        );
        let _ = writeln!(
            out,
            "# HELP palisade_xds_connected Envoys with an open xDS stream."
        );
        let _ = writeln!(out, "# TYPE palisade_xds_connected gauge");
        let envoys = r
            .nodes
            .values()
            .filter(|n| n.envoy.as_ref().is_some_and(|e| e.connected));
        let _ = writeln!(out, "palisade_xds_connected {}", envoys.count());
        let _ = writeln!(
            out,
            "# HELP palisade_sync_connected Enforcers with an open policy-sync stream."
        );
        let _ = writeln!(out, "# TYPE palisade_sync_connected gauge");
        let enforcers = r
            .nodes
            .values()
            .filter(|n| n.enforcer.as_ref().is_some_and(|e| e.connected));
        let _ = writeln!(out, "palisade_sync_connected {}", enforcers.count());
        let _ = writeln!(
            out,
            "# HELP palisade_xds_responses_total xDS responses sent."
        );
        let _ = writeln!(out, "# TYPE palisade_xds_responses_total counter");
        for (node, n) in &r.nodes {
            for (t, s) in n.envoy.iter().flat_map(|e| e.types.iter()) {
                let _ = writeln!(
                    out,
                    "palisade_xds_responses_total{{node=\"{}\",type=\"{t}\"}} {}",
                    esc(node),
                    s.responses
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP palisade_xds_nacks_total xDS responses Envoy rejected."
        );
        let _ = writeln!(out, "# TYPE palisade_xds_nacks_total counter");
        for (node, n) in &r.nodes {
            for (t, s) in n.envoy.iter().flat_map(|e| e.types.iter()) {
                let _ = writeln!(
                    out,
                    "palisade_xds_nacks_total{{node=\"{}\",type=\"{t}\"}} {}",
                    esc(node),
                    s.nacks
                );
            }
        }
        let _ = writeln!(out, "# HELP palisade_xds_in_sync 1 when the node's Envoy acknowledged the last version sent, per type.");
        let _ = writeln!(out, "# TYPE palisade_xds_in_sync gauge");
        for (node, n) in &r.nodes {
            for (t, s) in n.envoy.iter().flat_map(|e| e.types.iter()) {
                let v = u8::from(s.sent.is_some() && s.sent == s.acked);
                let _ = writeln!(
                    out,
                    "palisade_xds_in_sync{{node=\"{}\",type=\"{t}\"}} {v}",
                    esc(node)
                );
            }
        }
        let _ = writeln!(out, "# HELP palisade_enforcer_in_sync 1 when the node's enforcer applied the last state sent.");
        let _ = writeln!(out, "# TYPE palisade_enforcer_in_sync gauge");
        for (node, n) in &r.nodes {
            if let Some(e) = &n.enforcer {
                let v = u8::from(e.sent.is_some() && e.sent == e.applied);
                let _ = writeln!(
                    out,
                    "palisade_enforcer_in_sync{{node=\"{}\"}} {v}",
                    esc(node)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP palisade_enforcer_events_total WAF and policy events reported by enforcers."
        );
        let _ = writeln!(out, "# TYPE palisade_enforcer_events_total counter");
        for (node, n) in &r.nodes {
            if let Some(e) = &n.enforcer {
                let _ = writeln!(
                    out,
                    "palisade_enforcer_events_total{{node=\"{}\"}} {}",
                    esc(node),
                    e.events
                );
            }
        }
        drop(r);
        self.alerts.write_metrics(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_renders() {
        let s = Status::new();
        s.envoy_type(
            "n1",
            "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            |t| {
                t.sent = Some("v1".into());
                t.acked = Some("v1".into());
                t.responses += 1;
            },
        );
        s.enforcer("n1", |e| e.events += 3);
        let r = s.report();
        assert_eq!(
            r.nodes["n1"].envoy.as_ref().unwrap().types["Cluster"]
                .acked
                .as_deref(),
            Some("v1")
        );
        let m = s.metrics();
        assert!(
            m.contains("palisade_xds_in_sync{node=\"n1\",type=\"Cluster\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("palisade_enforcer_events_total{node=\"n1\"} 3"),
            "{m}"
        );
    }
}
