//! The control plane's model: one consistent, validated view of what should be
//! enforced, built from a source's [`Inputs`](crate::source::Inputs) and shared
//! (as `Arc<Model>`) with the xDS and policy-sync servers through
//! `tokio::sync::watch`.
//!
//! Services are held as `Arc<ServiceModel>`: the builder hands a service that
//! did not change over to the next model as the same `Arc`, which is how the
//! xDS translation knows, without comparing, what it need not redo.

mod build;

pub use build::{ModelBuilder, ModelTask};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::k8s::WafMode;
use crate::source::Problem;

/// Cluster-wide settings (from the ApplicationLayer, with defaults).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The WAF runs.
    pub waf_enabled: bool,
    /// GlobalNetworkPolicy `http` rules are enforced.
    pub alp_enabled: bool,
    /// Mode for services selected by Calico's l7-logging annotation.
    pub default_waf_mode: WafMode,
    /// Allow requests that cannot be decided (Envoy's failure_mode_allow too).
    pub failure_mode_allow: bool,
    /// Body bytes sent for inspection.
    pub body_limit_bytes: u32,
    /// Events are logged and reported.
    pub collect_logs: bool,
    /// Event rate-limit interval.
    pub log_interval_seconds: u32,
    /// Events per interval.
    pub log_requests_per_interval: u32,
    /// Ruleset of services that name none.
    pub default_ruleset: String,
}

impl Default for Settings {
    fn default() -> Settings {
        use crate::k8s::application_layer::*;
        Settings {
            waf_enabled: true,
            alp_enabled: true,
            default_waf_mode: WafMode::DetectionOnly,
            failure_mode_allow: false,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES as u32,
            collect_logs: true,
            log_interval_seconds: DEFAULT_LOG_INTERVAL_SECONDS,
            log_requests_per_interval: DEFAULT_LOG_REQUESTS_PER_INTERVAL,
            default_ruleset: crate::source::rulesets::BASELINE_RULESET.to_string(),
        }
    }
}

/// `namespace/name` of a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One port of a protected service and where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortModel {
    /// Port name (may be empty).
    pub name: String,
    /// Service port.
    pub port: u16,
    /// Ready upstream endpoints.
    pub endpoints: Vec<SocketAddr>,
}

/// A service Palisade protects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceModel {
    /// Namespace and name.
    pub key: ServiceKey,
    /// WAF mode.
    pub mode: WafMode,
    /// Ruleset name.
    pub ruleset: String,
    /// Labels policies select on (the pods', or the service selector's).
    pub labels: BTreeMap<String, String>,
    /// Labels of the namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// Service account of the pods.
    pub service_account: String,
    /// Cluster IPs.
    pub cluster_ips: Vec<String>,
    /// Ports, in the Service's order.
    pub ports: Vec<PortModel>,
    /// Extra host names (`palisade.dev/hosts`).
    pub hosts: Vec<String>,
    /// `tier/policy` names selecting this service.
    pub policies: Vec<String>,
}

impl ServiceModel {
    /// Cluster DNS name, `<name>.<namespace>.svc.cluster.local`.
    pub fn dns_name(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.key.name, self.key.namespace)
    }
}

/// A validated ruleset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesetModel {
    /// Name.
    pub name: String,
    /// Content hash (hex SHA-1 over names and contents).
    pub hash: String,
    /// The files.
    #[serde(skip)]
    pub files: Arc<BTreeMap<String, Vec<u8>>>,
    /// Rules compiled (0 when unchecked).
    pub rules: usize,
}

/// A pod's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadModel {
    /// Pod IPs.
    pub ips: Vec<String>,
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Service account.
    pub service_account: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Namespace labels.
    pub namespace_labels: BTreeMap<String, String>,
}

/// The validated model.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// Content hash of everything below; equal models have equal versions.
    pub version: String,
    /// Settings.
    pub settings: Settings,
    /// Protected services (serialized as a list, in key order); an unchanged
    /// service is the same `Arc` as in the previous model.
    #[serde(serialize_with = "serialize_values")]
    pub services: BTreeMap<ServiceKey, Arc<ServiceModel>>,
    /// Tiers with their policies, validated.
    pub tiers: Vec<palisade_alp::TierSpec>,
    /// Rulesets, validated.
    pub rulesets: BTreeMap<String, RulesetModel>,
    /// Workload identities.
    pub workloads: Vec<WorkloadModel>,
    /// What was refused or is suspicious, and where.
    #[serde(skip)]
    pub problems: Vec<Problem>,
}

fn serialize_values<S: serde::Serializer>(
    map: &BTreeMap<ServiceKey, Arc<ServiceModel>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(map.values().map(|s| &**s))
}
