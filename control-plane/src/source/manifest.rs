//! Reading Kubernetes manifests from YAML text: several documents per file,
//! each dispatched on `apiVersion`/`kind` into the typed object, with the line
//! it starts on so problems can name file and line.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;

use super::{Origin, Problem, RulesetFiles};
use crate::k8s::{ApplicationLayer, GlobalAlert, GlobalNetworkPolicy, Tier, LABEL_RULESET};

/// The API version Calico's CRDs are stored under.
pub const CALICO_CRD_API_VERSION: &str = "crd.projectcalico.org/v1";
/// The API version Calico users write (served by Calico's API server).
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";

/// One object read from a manifest.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    /// v1 Service.
    Service(Service),
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// v1 Pod.
    Pod(Pod),
    /// v1 Namespace.
    Namespace(Namespace),
    /// Calico GlobalNetworkPolicy (either API version).
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// Calico Tier (either API version).
    Tier(Tier),
    /// palisade.dev/v1 ApplicationLayer.
    ApplicationLayer(ApplicationLayer),
    /// palisade.dev/v1 GlobalAlert.
    GlobalAlert(GlobalAlert),
    /// A v1 ConfigMap labelled `palisade.dev/ruleset`.
    Ruleset(RulesetFiles),
}

/// A [`Manifest`] with where it starts.
#[derive(Clone, Debug)]
pub struct Located {
    /// File and line of the document.
    pub origin: Origin,
    /// The object.
    pub manifest: Manifest,
}

/// Splits YAML text into documents: `(first line, text)`, 1-based lines.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_separator =
            line == "---" || line.starts_with("--- ") || line.starts_with("---\t") || line == "...";
        if is_separator {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs
}

/// Parses every document of a manifest file. Documents that fail are reported
/// (file and line) and left out; empty documents are skipped.
pub fn parse(path: &Path, text: &str) -> (Vec<Located>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (start, doc) in documents(text) {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: start,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                let line = e
                    .location()
                    .map(|l| start + l.line().saturating_sub(1))
                    .unwrap_or(start);
                problems.push(Problem {
                    origin: Origin::File {
                        path: path.to_path_buf(),
                        line,
                    },
                    kind: "File".into(),
                    name: path.display().to_string(),
                    message: format!("invalid YAML: {e}"),
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        match parse_value(value) {
            Ok(Some(manifest)) => out.push(Located { origin, manifest }),
            Ok(None) => {}
            Err((kind, name, message)) => {
                problems.push(Problem {
                    origin,
                    kind,
                    name,
                    message,
                });
            }
        }
    }
    (out, problems)
}

fn str_field<'a>(value: &'a serde_yaml::Value, key: &str) -> &'a str {
    value.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn typed<T: DeserializeOwned>(
    value: serde_yaml::Value,
    kind: &str,
    name: &str,
) -> Result<T, (String, String, String)> {
    serde_yaml::from_value(value).map_err(|e| {
        (
            kind.to_string(),
            name.to_string(),
            format!("invalid {kind}: {e}"),
        )
    })
}

/// Dispatches one parsed document. `Ok(None)` for kinds that carry nothing for
/// Palisade (ConfigMaps without the ruleset label).
pub fn parse_value(value: serde_yaml::Value) -> Result<Option<Manifest>, (String, String, String)> {
    let api_version = str_field(&value, "apiVersion").to_string();
    let kind = str_field(&value, "kind").to_string();
    let meta = value.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err((kind, name, "metadata.name is missing".into()));
    }
    let manifest = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Service") => Manifest::Service(typed(value, &kind, &name)?),
        ("v1", "Pod") => Manifest::Pod(typed(value, &kind, &name)?),
        ("v1", "Namespace") => Manifest::Namespace(typed(value, &kind, &name)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            Manifest::EndpointSlice(typed(value, &kind, &name)?)
        }
        ("v1", "ConfigMap") => {
            let cm: ConfigMap = typed(value, &kind, &name)?;
            match ruleset_from_config_map(&cm) {
                Some(r) => Manifest::Ruleset(r),
                None => return Ok(None),
            }
        }
        (CALICO_CRD_API_VERSION | CALICO_API_VERSION, "GlobalNetworkPolicy") => {
            Manifest::GlobalNetworkPolicy(typed(value, &kind, &name)?)
        }
        (CALICO_CRD_API_VERSION | CALICO_API_VERSION, "Tier") => {
            Manifest::Tier(typed(value, &kind, &name)?)
        }
        ("palisade.dev/v1", "ApplicationLayer") => {
            Manifest::ApplicationLayer(typed(value, &kind, &name)?)
        }
        ("palisade.dev/v1", "GlobalAlert") => Manifest::GlobalAlert(typed(value, &kind, &name)?),
        _ => {
            return Err((
                kind.clone(),
                name,
                format!("unsupported kind `{kind}` of `{api_version}`, ignored"),
            ))
        }
    };
    Ok(Some(manifest))
}

/// Reads a ruleset from a ConfigMap labelled `palisade.dev/ruleset` (data and
/// binaryData keys are file names). `None` when the label is absent.
pub fn ruleset_from_config_map(cm: &ConfigMap) -> Option<RulesetFiles> {
    let labels = cm.metadata.labels.as_ref()?;
    let label = labels.get(LABEL_RULESET)?;
    let name = if label.is_empty() {
        cm.metadata.name.clone().unwrap_or_default()
    } else {
        label.clone()
    };
    let mut files = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        files.insert(k.clone(), v.clone().into_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        files.insert(k.clone(), v.0.clone());
    }
    Some(RulesetFiles { name, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lines() {
        let text = "# c\na: 1\n---\nb: 2\n--- \nc: 3\n";
        let docs = documents(text);
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), [1, 4, 6]);
    }

    #[test]
    fn parse_reports_file_and_line() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\nspec: {ports: [{port: notanumber}]}\n---\nkey: [unclosed\n";
        let (objs, problems) = parse(Path::new("x.yaml"), text);
        assert_eq!(objs.len(), 1);
        assert!(matches!(objs[0].manifest, Manifest::Namespace(_)));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0].origin,
            Origin::File {
                path: "x.yaml".into(),
                line: 5
            }
        );
        assert!(
            problems[0].message.contains("invalid Service"),
            "{}",
            problems[0].message
        );
        match &problems[1].origin {
            Origin::File { line, .. } => assert!(*line >= 10, "{line}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn calico_v3_is_read_as_crd() {
        let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {selector: all()}\n";
        let (objs, problems) = parse(Path::new("p.yaml"), text);
        assert!(problems.is_empty());
        match &objs[0].manifest {
            Manifest::GlobalNetworkPolicy(p) => {
                assert_eq!(p.spec.selector.as_deref(), Some("all()"))
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn ruleset_config_map() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, labels: {palisade.dev/ruleset: ''}}\ndata: {a.conf: 'SecRuleEngine On'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n";
        let (objs, problems) = parse(Path::new("r.yaml"), text);
        assert!(problems.is_empty());
        assert_eq!(objs.len(), 1);
        match &objs[0].manifest {
            Manifest::Ruleset(r) => {
                assert_eq!(r.name, "cm");
                assert_eq!(r.files["a.conf"], b"SecRuleEngine On");
            }
            m => panic!("{m:?}"),
        }
    }
}
