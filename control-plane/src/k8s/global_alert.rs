//! `GlobalAlert` (palisade.dev/v1, cluster-scoped): alert rules over WAF events,
//! with the fields of Calico's GlobalAlert.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An alert raised when events matching `query` in `dataSet` cross `threshold`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "palisade.dev",
    version = "v1",
    kind = "GlobalAlert",
    plural = "globalalerts",
    status = "GlobalAlertStatus",
    doc = "An alert rule over Palisade's WAF events (Calico GlobalAlert fields).",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "DataSet", type_ = "string", json_path = ".spec.dataSet"),
    printcolumn(name = "Severity", type_ = "integer", json_path = ".spec.severity")
)]
#[serde(rename_all = "camelCase")]
pub struct GlobalAlertSpec {
    /// One-line summary; `${field}` substitutions name aggregated fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Human description of the alert.
    pub description: String,
    /// Severity 1-100.
    pub severity: i32,
    /// Events searched: `waf` is the one Palisade produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set: Option<String>,
    /// Selection over event fields, e.g. `"rule_info" IN {"*942100*"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// How often the alert is evaluated (Go duration, e.g. `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// How far back each evaluation looks (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<String>,
    /// Fields events are grouped by before `metric` is computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregate_by: Vec<String>,
    /// Field the metric is computed over (for avg/max/min/sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `count`, `avg`, `max`, `min` or `sum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `eq`, `not_eq`, `gt`, `gte`, `lt` or `lte`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Value the metric is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// Observed state of an alert.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalAlertStatus {
    /// Whether the alert is evaluated and healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the alert last fired (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// When the alert was last evaluated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_executed: Option<String>,
}
