//! Validation before anything is pushed: GlobalNetworkPolicies (Palisade's own
//! rules on top of `palisade-alp`'s compiler, which checks selectors, paths,
//! nets and ports), rulesets (parsed and compiled with `palisade-waf`) and
//! GlobalAlerts (query, durations, metric, condition; see [`crate::alerts`]).

use std::collections::BTreeMap;
use std::fmt;

use crate::alerts::{AlertError, AlertRule};
use crate::k8s::{Action, GlobalAlertSpec, GlobalNetworkPolicySpec, Rule};

/// Ports a `from:to` range may expand to before it is refused.
pub const MAX_PORT_RANGE: u32 = 4096;

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// `http` on a rule whose action is not Allow (Calico's own restriction).
    #[error("ingress rule {index}: `http` is only allowed on Allow rules, not {action}")]
    HttpOnNonAllow {
        /// 1-based rule index.
        index: usize,
        /// The action found.
        action: &'static str,
    },
    /// A path entry with neither or both of `exact` and `prefix`.
    #[error("ingress rule {index} path {path}: exactly one of `exact` and `prefix` must be set")]
    PathKind {
        /// 1-based rule index.
        index: usize,
        /// 1-based path index.
        path: usize,
    },
    /// A path that does not start with `/`.
    #[error("ingress rule {index} path {path}: `{value}` must start with `/`")]
    PathStart {
        /// 1-based rule index.
        index: usize,
        /// 1-based path index.
        path: usize,
        /// The value.
        value: String,
    },
    /// A port that is not a number or a `from:to` range of numbers.
    #[error("ingress rule {index}: port `{port}` is not a number or a range (named ports are not supported)")]
    Port {
        /// 1-based rule index.
        index: usize,
        /// The port as written.
        port: String,
    },
    /// The policy's spec does not convert to the engine's form.
    #[error("{0}")]
    Spec(String),
    /// What `palisade-alp` refused (selectors, nets, methods, ...).
    #[error("{0}")]
    Alp(String),
    /// The tier does not exist.
    #[error("tier `{0}` does not exist")]
    UnknownTier(String),
}

/// Expands Calico port entries (`80`, `"8080"`, `"8000:8100"`) to numbers.
pub fn expand_ports(
    ports: &[k8s_openapi::apimachinery::pkg::util::intstr::IntOrString],
) -> Result<Vec<u32>, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let mut out = Vec::new();
    for p in ports {
        match p {
            IntOrString::Int(n) if (0..=65535).contains(n) => out.push(*n as u32),
            IntOrString::Int(n) => return Err(n.to_string()),
            IntOrString::String(s) => {
                let parse = |t: &str| t.trim().parse::<u16>().ok().map(u32::from);
                if let Some((a, b)) = s.split_once(':') {
                    match (parse(a), parse(b)) {
                        (Some(a), Some(b)) if a <= b && b - a < MAX_PORT_RANGE => out.extend(a..=b),
                        _ => return Err(s.clone()),
                    }
                } else {
                    out.push(parse(s).ok_or_else(|| s.clone())?);
                }
            }
        }
    }
    Ok(out)
}

fn check_rule(index: usize, rule: &Rule) -> Result<(), PolicyProblem> {
    if let Some(http) = &rule.http {
        if rule.action != Action::Allow {
            return Err(PolicyProblem::HttpOnNonAllow {
                index,
                action: rule.action.as_str(),
            });
        }
        for (p, path) in http.paths.iter().enumerate() {
            let value = match (&path.exact, &path.prefix) {
                (Some(v), None) | (None, Some(v)) => v,
                _ => return Err(PolicyProblem::PathKind { index, path: p + 1 }),
            };
            if !value.starts_with('/') {
                return Err(PolicyProblem::PathStart {
                    index,
                    path: p + 1,
                    value: value.clone(),
                });
            }
        }
    }
    for entity in [&rule.source, &rule.destination].into_iter().flatten() {
        for ports in [&entity.ports, &entity.not_ports] {
            expand_ports(ports).map_err(|port| PolicyProblem::Port { index, port })?;
        }
    }
    Ok(())
}

/// Converts a GlobalNetworkPolicy spec into `palisade-alp`'s form.
pub fn to_alp_spec(
    name: &str,
    spec: &GlobalNetworkPolicySpec,
) -> Result<palisade_alp::PolicySpec, PolicyProblem> {
    let value = serde_json::to_value(spec).map_err(|e| PolicyProblem::Spec(e.to_string()))?;
    let mut alp: palisade_alp::PolicySpec =
        serde_json::from_value(value).map_err(|e| PolicyProblem::Spec(e.to_string()))?;
    alp.name = name.to_string();
    Ok(alp)
}

/// Checks one policy the way the enforcer will compile it.
pub fn check_policy(
    name: &str,
    tier: &str,
    spec: &GlobalNetworkPolicySpec,
) -> Result<palisade_alp::PolicySpec, PolicyProblem> {
    for (i, rule) in spec.ingress.iter().enumerate() {
        check_rule(i + 1, rule)?;
    }
    let alp = to_alp_spec(name, spec)?;
    palisade_alp::policy::Policy::compile(tier, &alp)
        .map_err(|e| PolicyProblem::Alp(e.to_string()))?;
    Ok(alp)
}

/// Checks one GlobalAlert the way the alert engine evaluates it: `dataSet`
/// is `waf`, the query parses (errors carry a column), durations, metric,
/// condition, threshold, fields and `${..}` substitutions are valid.
pub fn check_alert(name: &str, spec: &GlobalAlertSpec) -> Result<AlertRule, AlertError> {
    AlertRule::compile(name, spec)
}

/// The outcome of compiling a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesetVerdict {
    /// It compiled.
    Valid {
        /// Number of rules.
        rules: usize,
    },
    /// It did not: `file:line: reason` of the first error, and how many there were.
    Invalid(String),
    /// It could not be checked (the compiler is unavailable); served as is.
    Unchecked(String),
}

/// Compiles rulesets to check them. Implementations must be pure and must not panic.
pub trait RulesetCompiler: Send + Sync + fmt::Debug {
    /// Compiles the flat files of one ruleset.
    fn compile(&self, files: &BTreeMap<String, Vec<u8>>) -> RulesetVerdict;
}

/// Compiles with `palisade-waf`, the engine the enforcer runs.
#[derive(Debug, Default, Clone, Copy)]
pub struct WafCompiler;

impl RulesetCompiler for WafCompiler {
    fn compile(&self, files: &BTreeMap<String, Vec<u8>>) -> RulesetVerdict {
        crate::waf::compile(files)
    }
}

/// Treats every ruleset as valid without compiling it (tests, benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl RulesetCompiler for AcceptAll {
    fn compile(&self, _files: &BTreeMap<String, Vec<u8>>) -> RulesetVerdict {
        RulesetVerdict::Valid { rules: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::GlobalNetworkPolicy;

    fn spec(yaml: &str) -> GlobalNetworkPolicySpec {
        let gnp: GlobalNetworkPolicy = serde_yaml::from_str(&format!(
            "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: p}}\nspec:\n{yaml}"
        ))
        .unwrap();
        gnp.spec
    }

    #[test]
    fn policy_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (
                "  selector: app == 'a'\n  ingress: [{action: Allow, http: {methods: [GET]}}]",
                Ok(()),
            ),
            (
                "  ingress: [{action: Allow, http: {paths: [{exact: /}, {prefix: /static}]}}]",
                Ok(()),
            ),
            (
                "  ingress: [{action: Deny, http: {methods: [GET]}}]",
                Err("only allowed on Allow"),
            ),
            (
                "  ingress: [{action: Allow, http: {paths: [{}]}}]",
                Err("exactly one of"),
            ),
            (
                "  ingress: [{action: Allow, http: {paths: [{exact: /, prefix: /a}]}}]",
                Err("exactly one of"),
            ),
            (
                "  ingress: [{action: Allow, http: {paths: [{prefix: api}]}}]",
                Err("must start"),
            ),
            ("  selector: app == \n", Err("")),
            (
                "  ingress: [{action: Allow, source: {ports: [http]}}]",
                Err("named ports"),
            ),
            (
                "  ingress: [{action: Allow, source: {ports: [80, '8000:8010']}}]",
                Ok(()),
            ),
            (
                "  ingress: [{action: Allow, source: {nets: [not-a-cidr]}}]",
                Err(""),
            ),
        ];
        for (yaml, want) in cases {
            let got = check_policy("p", "default", &spec(yaml));
            match (want, &got) {
                (Ok(()), Ok(_)) => {}
                (Err(needle), Err(e)) => {
                    assert!(e.to_string().contains(needle), "{yaml}: {e}")
                }
                _ => panic!("{yaml}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn alert_queries_are_checked() {
        let mut spec = GlobalAlertSpec {
            description: "d".into(),
            severity: 50,
            query: Some(r#""rule_info" IN {"*942100*"}"#.into()),
            ..Default::default()
        };
        assert!(check_alert("a", &spec).is_ok());
        spec.query = Some(r#""rule_info" IN "*942100*""#.into());
        let e = check_alert("a", &spec).unwrap_err();
        assert_eq!(
            e.to_string(),
            "query column 16: expected `{`, found \"*942100*\""
        );
    }

    #[test]
    fn ports_expand() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let ports = [IntOrString::Int(80), IntOrString::String("90:92".into())];
        assert_eq!(expand_ports(&ports).unwrap(), [80, 90, 91, 92]);
        assert!(expand_ports(&[IntOrString::String("1:65535".into())]).is_err());
        assert!(expand_ports(&[IntOrString::Int(70000)]).is_err());
    }
}
