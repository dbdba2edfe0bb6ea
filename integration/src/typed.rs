//! Checking objects against the Kubernetes API types of `k8s-openapi`.
//!
//! k8s-openapi's deserialisers ignore fields they do not know, so a typo such
//! as `contianers` would pass a plain `from_value`. [`check`] therefore
//! deserialises the object into its typed struct, serialises it back and
//! compares the two: every field of the original that did not survive the
//! round trip is reported by its JSON path. Types and values are compared too,
//! so `replicas: "2"` (a string where an integer belongs) fails to
//! deserialise and is reported.
//!
//! k8s-openapi fills absent required lists with empty ones, so the round trip
//! alone would accept a Pod without `containers`. The object is therefore
//! also validated against the type's JSON schema (k8s-openapi's `schemars`
//! support, generated from the Kubernetes OpenAPI document): required fields,
//! value types and enums. Finally resource quantities (`cpu: 100m`) are
//! checked for the Kubernetes quantity syntax, which the `Quantity` newtype
//! does not enforce.

use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::openapi;

/// Why an object is not a valid instance of its Kubernetes type.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TypedError {
    /// No built-in type is known for this apiVersion and kind (a custom
    /// resource, or a kind this checker does not cover).
    #[error("no built-in type for {api_version} {kind}")]
    UnknownKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The object does not deserialise into its type.
    #[error("{kind}: does not deserialise: {message}")]
    Deserialize {
        /// The object's kind.
        kind: String,
        /// serde's message.
        message: String,
    },
    /// Fields were dropped or changed by the round trip (unknown fields).
    #[error("{kind}: fields not in the API schema: {}", paths.join(", "))]
    UnknownFields {
        /// The object's kind.
        kind: String,
        /// JSON paths of the dropped or changed fields.
        paths: Vec<String>,
    },
    /// The object breaks its type's schema (a missing required field, a bad
    /// enum value, a malformed quantity).
    #[error("{kind}: {}", violations.join("; "))]
    Schema {
        /// The object's kind.
        kind: String,
        /// Each violation, `path: message`.
        violations: Vec<String>,
    },
}

/// Checks `obj` against the k8s-openapi type its `apiVersion` and `kind` name.
pub fn check(obj: &Value) -> Result<(), TypedError> {
    use k8s_openapi::api::{apps, coordination, core, networking, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;

    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match (api_version, kind) {
        ("v1", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(kind, obj),
        ("v1", "Secret") => roundtrip::<core::v1::Secret>(kind, obj),
        ("v1", "Service") => roundtrip::<core::v1::Service>(kind, obj),
        ("v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(kind, obj),
        ("v1", "Namespace") => roundtrip::<core::v1::Namespace>(kind, obj),
        ("v1", "Pod") => roundtrip::<core::v1::Pod>(kind, obj),
        ("apps/v1", "Deployment") => roundtrip::<apps::v1::Deployment>(kind, obj),
        ("apps/v1", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(kind, obj),
        ("policy/v1", "PodDisruptionBudget") => {
            roundtrip::<policy::v1::PodDisruptionBudget>(kind, obj)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            roundtrip::<rbac::v1::ClusterRole>(kind, obj)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            roundtrip::<rbac::v1::ClusterRoleBinding>(kind, obj)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => roundtrip::<rbac::v1::Role>(kind, obj),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            roundtrip::<rbac::v1::RoleBinding>(kind, obj)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            roundtrip::<networking::v1::NetworkPolicy>(kind, obj)
        }
        ("coordination.k8s.io/v1", "Lease") => roundtrip::<coordination::v1::Lease>(kind, obj),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            roundtrip::<apiextensions::v1::CustomResourceDefinition>(kind, obj)
        }
        _ => Err(TypedError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }),
    }
}

/// Checks `obj` against `T`: a deserialise-serialise round trip, then `T`'s
/// JSON schema, then quantity syntax.
pub fn roundtrip<T: DeserializeOwned + Serialize + JsonSchema>(
    kind: &str,
    obj: &Value,
) -> Result<(), TypedError> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| TypedError::Deserialize {
        kind: kind.to_owned(),
        message: e.to_string(),
    })?;
    let back = serde_json::to_value(&typed).map_err(|e| TypedError::Deserialize {
        kind: kind.to_owned(),
        message: format!("does not serialise back: {e}"),
    })?;
    let mut paths = Vec::new();
    lost_fields(obj, &back, "", &mut paths);
    if !paths.is_empty() {
        return Err(TypedError::UnknownFields {
            kind: kind.to_owned(),
            paths,
        });
    }
    let mut schema =
        serde_json::to_value(schemars::schema_for!(T)).map_err(|e| TypedError::Schema {
            kind: kind.to_owned(),
            violations: vec![format!("no schema: {e}")],
        })?;
    relax_any_json(&mut schema);
    let mut violations: Vec<String> = openapi::validate(&schema, obj)
        .iter()
        .map(ToString::to_string)
        .collect();
    bad_quantities(obj, "", false, &mut violations);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(TypedError::Schema {
            kind: kind.to_owned(),
            violations,
        })
    }
}

/// k8s-openapi describes apiextensions' `JSON` (any JSON value: a CRD's `enum`,
/// `default`, `example`) as `type: object`; make such schemas accept anything.
fn relax_any_json(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let any = map
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.starts_with("JSON represents any valid JSON value"));
            if any {
                map.remove("type");
                map.insert(
                    "x-kubernetes-preserve-unknown-fields".into(),
                    Value::Bool(true),
                );
            }
            for v in map.values_mut() {
                relax_any_json(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(relax_any_json),
        _ => {}
    }
}

/// Kubernetes' quantity syntax: a signed decimal number with an optional
/// binary (Ki..Ei), decimal (m, k, M..E) or exponent suffix.
fn quantity_re() -> Option<&'static regex::Regex> {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$",
        )
        .ok()
    })
    .as_ref()
}

/// Reports values under `resources.requests`/`resources.limits` (and
/// `sizeLimit`) that are not quantities.
fn bad_quantities(v: &Value, path: &str, in_resources: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, sub) in map {
                let p = format!("{path}.{k}");
                if k == "sizeLimit" || (in_resources && (k == "requests" || k == "limits")) {
                    let values: Vec<(String, &Value)> = match sub {
                        Value::Object(m) => {
                            m.iter().map(|(n, q)| (format!("{p}.{n}"), q)).collect()
                        }
                        other => vec![(p.clone(), other)],
                    };
                    for (qp, q) in values {
                        let ok = match q {
                            Value::String(s) => quantity_re().is_some_and(|re| re.is_match(s)),
                            Value::Number(_) => true,
                            _ => false,
                        };
                        if !ok {
                            out.push(format!("{qp}: {q} is not a Kubernetes quantity"));
                        }
                    }
                } else {
                    bad_quantities(sub, &p, k == "resources", out);
                }
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                bad_quantities(it, &format!("{path}[{i}]"), false, out);
            }
        }
        _ => {}
    }
}

/// Appends to `out` the JSON path of every part of `orig` that `back` does not
/// reproduce. A field whose value is `null` counts as absent (the API server
/// treats it so); fields `back` adds are ignored.
pub fn lost_fields(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => lost_fields(v, bv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            if o.len() != b.len() {
                out.push(format!("{path} (length {} became {})", o.len(), b.len()));
                return;
            }
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                lost_fields(ov, bv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(o), Value::Number(b)) => {
            if o.as_f64() != b.as_f64() {
                out.push(format!("{path} ({o} became {b})"));
            }
        }
        (o, b) if o == b => {}
        (o, b) => out.push(format!("{path} ({} became {})", short(o), short(b))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let cut = s.char_indices().nth(40).map_or(s.len(), |(i, _)| i);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(container: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [container]}
                }
            }
        })
    }

    #[test]
    fn valid_objects_pass() {
        let ok = deployment(
            json!({"name": "c", "image": "i", "ports": [{"containerPort": 80}],
            "resources": {"limits": {"memory": "1Gi"}}}),
        );
        assert_eq!(check(&ok), Ok(()));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "b"}, "binaryData": {"z.gz": "AAEC"}});
        assert_eq!(check(&cm), Ok(()));
    }

    #[test]
    fn typos_and_wrong_types_fail() {
        let cases: &[(Value, &str)] = &[
            (
                deployment(json!({"name": "c", "image": "i", "imagePullPolicey": "Always"})),
                ".spec.template.spec.containers[0].imagePullPolicey",
            ),
            (
                deployment(
                    json!({"name": "c", "image": "i", "securityContext": {"runAsNonRot": true}}),
                ),
                ".spec.template.spec.containers[0].securityContext.runAsNonRot",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                    "spec": {"ports": [{"port": 80}], "selecotr": {"a": "b"}}}),
                ".spec.selecotr",
            ),
        ];
        for (obj, path) in cases {
            match check(obj) {
                Err(TypedError::UnknownFields { paths, .. }) => {
                    assert_eq!(paths, vec![path.to_string()]);
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        let mut bad = deployment(json!({"name": "c", "image": "i"}));
        bad["spec"]["replicas"] = json!("2");
        assert!(matches!(check(&bad), Err(TypedError::Deserialize { .. })));
        let mut missing = deployment(json!({"name": "c", "image": "i"}));
        missing["spec"]["template"]["spec"]
            .as_object_mut()
            .map(|m| m.remove("containers"));
        match check(&missing) {
            Err(TypedError::Schema { violations, .. }) => {
                assert_eq!(
                    violations,
                    vec![".spec.template.spec: required field \"containers\" is missing"]
                );
            }
            other => panic!("{other:?}"),
        }
        let no_name = deployment(json!({"image": "i"}));
        assert!(matches!(check(&no_name), Err(TypedError::Schema { .. })));
        let quantity = deployment(json!({"name": "c", "image": "i",
            "resources": {"limits": {"memory": "512MB"}, "requests": {"cpu": "100m"}}}));
        match check(&quantity) {
            Err(TypedError::Schema { violations, .. }) => {
                assert_eq!(violations.len(), 1, "{violations:?}");
                assert!(violations[0].contains("limits.memory"), "{violations:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_kinds_are_reported() {
        let obj = json!({"apiVersion": "palisade.dev/v1", "kind": "ApplicationLayer"});
        assert!(matches!(check(&obj), Err(TypedError::UnknownKind { .. })));
    }

    #[test]
    fn nulls_count_as_absent() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "annotations": null}});
        assert_eq!(check(&cm), Ok(()));
    }
}
