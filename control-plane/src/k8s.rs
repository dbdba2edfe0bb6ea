//! Kubernetes resource types the control plane reads and writes, and the CRDs
//! generated from them.
//!
//! - [`ApplicationLayer`] and [`GlobalAlert`]: Palisade's own API group `palisade.dev/v1`.
//! - [`GlobalNetworkPolicy`] and [`Tier`]: Calico's `crd.projectcalico.org/v1`, read as
//!   Calico clusters store them.
//!
//! The Helm chart's CRDs are generated from these types:
//!
//! ```
//! let crds = palisade_control_plane::k8s::crds(true);
//! assert_eq!(crds.len(), 4);
//! let yaml = palisade_control_plane::k8s::crds_yaml(false).unwrap();
//! assert!(yaml.contains("applicationlayers.palisade.dev"));
//! ```

pub mod application_layer;
pub mod calico;
pub mod global_alert;

pub use application_layer::{
    ApplicationLayer, ApplicationLayerSpec, ApplicationLayerStatus, FailureMode, LogCollection,
    Toggle, WafMode,
};
pub use calico::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkPolicySpec, HttpMatch, HttpPath,
    PolicyType, Rule, ServiceAccountMatch, Tier, TierSpec,
};
pub use global_alert::{GlobalAlert, GlobalAlertSpec, GlobalAlertStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Service annotation selecting the WAF mode: `On`, `DetectionOnly` or `Off`.
pub const ANNOTATION_WAF: &str = "palisade.dev/waf";
/// Service annotation naming the ruleset (default: the cluster default).
pub const ANNOTATION_RULESET: &str = "palisade.dev/ruleset";
/// Service annotation listing upstream endpoints as `host:port[,host:port...]`;
/// used instead of EndpointSlices (the standalone mode has no cluster to ask).
pub const ANNOTATION_UPSTREAM: &str = "palisade.dev/upstream";
/// Service annotation listing extra host names (comma-separated) the service
/// answers to, besides its cluster DNS names.
pub const ANNOTATION_HOSTS: &str = "palisade.dev/hosts";
/// Calico's annotation: `"true"` protects the service with the cluster default mode.
pub const ANNOTATION_CALICO_L7_LOGGING: &str = "projectcalico.org/l7-logging";
/// ConfigMap label marking a ruleset; its value names the ruleset (empty: the
/// ConfigMap's name).
pub const LABEL_RULESET: &str = "palisade.dev/ruleset";

/// Every CRD Palisade defines; with `calico`, also Calico's `GlobalNetworkPolicy`
/// and `Tier` (for clusters without Calico).
pub fn crds(calico: bool) -> Vec<CustomResourceDefinition> {
    let mut out = vec![ApplicationLayer::crd(), GlobalAlert::crd()];
    if calico {
        out.push(GlobalNetworkPolicy::crd());
        out.push(Tier::crd());
    }
    out
}

/// [`crds`] as one multi-document YAML stream.
pub fn crds_yaml(calico: bool) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds(calico) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_names_and_scopes() {
        let crds = crds(true);
        let names: Vec<_> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "applicationlayers.palisade.dev",
                "globalalerts.palisade.dev",
                "globalnetworkpolicies.crd.projectcalico.org",
                "tiers.crd.projectcalico.org"
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.scope, "Cluster");
        }
    }

    #[test]
    fn gnp_reads_calico_fields() {
        let yaml = r#"
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: default.productpage-get}
spec:
  tier: default
  order: 100
  selector: app == 'productpage'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
      source: {serviceAccounts: {names: [a]}, ports: [80, "8000:9000"]}
      http:
        methods: [GET]
        paths: [{exact: /}, {prefix: /static}]
"#;
        let gnp: GlobalNetworkPolicy = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(gnp.spec.order, Some(100.0));
        let rule = &gnp.spec.ingress[0];
        assert_eq!(rule.action, Action::Allow);
        let http = rule.http.as_ref().unwrap();
        assert_eq!(http.paths[1].prefix.as_deref(), Some("/static"));
        assert_eq!(rule.source.as_ref().unwrap().ports.len(), 2);
    }
}
