//! `ApplicationLayer` (palisade.dev/v1, cluster-scoped): the cluster-wide switches
//! for the WAF and application-layer policy, in the shape Calico users know.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default request body limit the WAF inspects (bytes) when the resource does not set one.
pub const DEFAULT_BODY_LIMIT_BYTES: u64 = 131_072;
/// Default event log interval (seconds).
pub const DEFAULT_LOG_INTERVAL_SECONDS: u32 = 5;
/// Default number of requests logged per interval.
pub const DEFAULT_LOG_REQUESTS_PER_INTERVAL: u32 = 100;

/// Cluster-wide application-layer settings. Only the object named `default`
/// (or, when there is none, the first by name) is used.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "palisade.dev",
    version = "v1",
    kind = "ApplicationLayer",
    plural = "applicationlayers",
    status = "ApplicationLayerStatus",
    doc = "Cluster-wide settings for Palisade's web application firewall and application-layer policy.",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"WAF","type":"string","jsonPath":".spec.webApplicationFirewall"}"#,
    printcolumn = r#"{"name":"ALP","type":"string","jsonPath":".spec.applicationLayerPolicy"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.defaultWafMode"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationLayerSpec {
    /// Whether the WAF runs at all (default Enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_application_firewall: Option<Toggle>,
    /// Whether GlobalNetworkPolicy `http` rules are enforced (default Enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_layer_policy: Option<Toggle>,
    /// How WAF and policy events are collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_collection: Option<LogCollection>,
    /// Mode for services that do not name one (annotated with Calico's
    /// `projectcalico.org/l7-logging: "true"`); default DetectionOnly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_waf_mode: Option<WafMode>,
    /// Largest request body (bytes) sent to the enforcer for inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit_bytes: Option<u64>,
    /// What Envoy and the enforcer do when no decision can be made (default Deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
    /// Ruleset used by services that do not name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ruleset: Option<String>,
}

/// Enabled or Disabled, as Calico's operator resources spell it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Toggle {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

impl Toggle {
    /// True for `Enabled`.
    pub fn is_enabled(self) -> bool {
        self == Toggle::Enabled
    }
}

/// WAF mode of a service, as the `palisade.dev/waf` annotation spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum WafMode {
    /// Inspect and block.
    On,
    /// Inspect and log, never block.
    DetectionOnly,
    /// Do not inspect.
    Off,
}

impl WafMode {
    /// Parses an annotation value (exact spelling, as the CRD enum).
    pub fn parse(s: &str) -> Option<WafMode> {
        match s.trim() {
            "On" => Some(WafMode::On),
            "DetectionOnly" => Some(WafMode::DetectionOnly),
            "Off" => Some(WafMode::Off),
            _ => None,
        }
    }

    /// The spelling used in annotations and the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            WafMode::On => "On",
            WafMode::DetectionOnly => "DetectionOnly",
            WafMode::Off => "Off",
        }
    }
}

/// What happens to a request the data plane cannot decide.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailureMode {
    /// Let it through.
    Allow,
    /// Answer 403.
    Deny,
}

/// Calico's `logCollection` block.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogCollection {
    /// Whether events are logged and reported (default Enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_logs: Option<Toggle>,
    /// Length of one rate-limit interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_interval_seconds: Option<u32>,
    /// Requests logged per interval; the rest are counted as suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_requests_per_interval: Option<u32>,
}

/// Observed state written by the control plane.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationLayerStatus {
    /// `Ready` (settings in force) and `RulesetsValid` (every ruleset compiles;
    /// the message names file, line and reason of the first failure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
