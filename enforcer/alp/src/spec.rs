//! Uncompiled policy, as Calico users write it: `GlobalNetworkPolicy` specs
//! grouped into tiers, with Calico's (camelCase) field names.
//!
//! These types deserialize from the `spec` of a `GlobalNetworkPolicy` (YAML or
//! JSON) and from the enforcer's local state files; [`crate::PolicySet::compile`]
//! validates them and builds the evaluable [`crate::PolicySet`]. Unknown fields
//! are ignored (Calico's L3/L4-only fields do not concern HTTP policy).

use serde::{Deserialize, Deserializer, Serialize};

/// A tier and its policies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TierSpec {
    /// Tier name (`default` is Calico's default tier).
    pub name: String,
    /// Lower orders are evaluated first; a tier without an order comes last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// `Deny` (the default) or `Pass`: what happens when policies in the tier
    /// select the destination but none of their rules match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
    /// The tier's policies.
    pub policies: Vec<PolicySpec>,
}

/// One `GlobalNetworkPolicy` spec (only what concerns inbound HTTP).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicySpec {
    /// Policy name (unique within its tier).
    pub name: String,
    /// Lower orders are evaluated first; a policy without an order comes last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoints the policy applies to (empty = `all()`).
    pub selector: String,
    /// Namespaces whose endpoints the policy applies to (empty = any).
    pub namespace_selector: String,
    /// Service accounts whose endpoints the policy applies to (empty = any).
    pub service_account_selector: String,
    /// `Ingress` and/or `Egress`; empty means `Ingress`. Only ingress applies
    /// to HTTP requests arriving at a service.
    pub types: Vec<String>,
    /// Inbound rules, in order.
    pub ingress: Vec<RuleSpec>,
}

/// One ingress rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleSpec {
    /// `Allow`, `Deny`, `Log` or `Pass`.
    pub action: String,
    /// HTTP match (methods and paths).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpMatchSpec>,
    /// Who sends the request.
    pub source: EntityRuleSpec,
    /// Where it goes (the selected endpoint).
    pub destination: EntityRuleSpec,
    /// IP protocols (`TCP`, `UDP`, numbers...): a single value or a list;
    /// empty means any. HTTP is TCP.
    #[serde(
        deserialize_with = "one_or_many_protocols",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub protocol: Vec<String>,
}

/// Calico's `HTTPMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMatchSpec {
    /// Methods; case-sensitive, exact (empty = any).
    pub methods: Vec<String>,
    /// Paths (empty = any).
    pub paths: Vec<PathMatchSpec>,
}

/// One path match: exactly one of `exact` and `prefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PathMatchSpec {
    /// The normalised path equals this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The normalised path starts with this on a segment boundary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Calico's `EntityRule` (the parts an enforcer can check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntityRuleSpec {
    /// Endpoint label selector.
    pub selector: String,
    /// Namespace label selector.
    pub namespace_selector: String,
    /// CIDRs the address must be in.
    pub nets: Vec<String>,
    /// CIDRs the address must not be in.
    pub not_nets: Vec<String>,
    /// Endpoints that must not match.
    pub not_selector: String,
    /// Service account names and/or selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatchSpec>,
    /// Ports: numbers or `"lo:hi"` ranges.
    #[serde(deserialize_with = "ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// Calico's `ServiceAccountMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccountMatchSpec {
    /// Service account names (any of them).
    pub names: Vec<String>,
    /// Service account label selector.
    pub selector: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(u64),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Scalar),
    Many(Vec<Scalar>),
}

fn one_or_many_protocols<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.into_string()],
        Some(OneOrMany::Many(v)) => v.into_iter().map(Scalar::into_string).collect(),
    })
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Scalar>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(Scalar::into_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_calico_policy_spec() {
        let yaml = r#"
order: 100
selector: app == 'web'
namespaceSelector: kubernetes.io/metadata.name == "shop"
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source:
      serviceAccounts:
        names: [frontend]
      ports: [80, "8000:8080"]
    http:
      methods: ["GET", "HEAD"]
      paths:
        - exact: /
        - prefix: /static
egress:
  - action: Allow
"#;
        let spec: PolicySpec = serde_yaml::from_str(yaml).expect("parses");
        assert_eq!(spec.order, Some(100.0));
        assert_eq!(spec.ingress.len(), 1);
        let rule = &spec.ingress[0];
        assert_eq!(rule.protocol, vec!["TCP".to_string()]);
        assert_eq!(
            rule.source.ports,
            vec!["80".to_string(), "8000:8080".to_string()]
        );
        let http = rule.http.as_ref().expect("http");
        assert_eq!(http.paths[1].prefix.as_deref(), Some("/static"));
        let sa = rule
            .source
            .service_accounts
            .as_ref()
            .expect("service accounts");
        assert_eq!(sa.names, vec!["frontend".to_string()]);
    }

    #[test]
    fn protocol_may_be_a_number() {
        let rule: RuleSpec = serde_json::from_str(r#"{"action":"Allow","protocol":6}"#).unwrap();
        assert_eq!(rule.protocol, vec!["6".to_string()]);
    }
}
