//! The enforcer's view of the control plane's `State`: a plain, serde-friendly
//! model both the policy-sync stream (protobuf) and local state files
//! (`--state`, JSON or YAML) convert into before a snapshot is built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use palisade_alp::{EntityRuleSpec, HttpMatchSpec, PathMatchSpec, PolicySpec, RuleSpec, TierSpec};
use palisade_proto::sync::v1 as pb;
use serde::{Deserialize, Serialize};

/// Per-service WAF mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WafMode {
    /// No rules run.
    Off,
    /// Rules run and log; nothing is blocked.
    DetectionOnly,
    /// Rules run and block.
    On,
}

impl WafMode {
    /// The SecLang / annotation spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            WafMode::Off => "Off",
            WafMode::DetectionOnly => "DetectionOnly",
            WafMode::On => "On",
        }
    }

    fn from_pb(value: i32) -> Option<WafMode> {
        match pb::WafMode::try_from(value).ok()? {
            pb::WafMode::Unspecified => None,
            pb::WafMode::Off => Some(WafMode::Off),
            pb::WafMode::DetectionOnly => Some(WafMode::DetectionOnly),
            pb::WafMode::On => Some(WafMode::On),
        }
    }
}

/// Cluster-wide settings (the ApplicationLayer resource).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingsSpec {
    /// Whether the WAF runs at all.
    pub waf_enabled: bool,
    /// Whether HTTP policy is evaluated.
    pub alp_enabled: bool,
    /// Mode of services that do not set one (`None` = DetectionOnly).
    pub default_waf_mode: Option<WafMode>,
    /// Allow requests the enforcer cannot decide (internal errors).
    pub failure_mode_allow: bool,
    /// Allow requests for services the enforcer does not know.
    pub unknown_service_allow: bool,
    /// Body limit for Envoy's `with_request_body` (the control plane's concern;
    /// the enforcer inspects what Envoy sends, under the ruleset's own limit).
    pub body_limit_bytes: u64,
    /// Whether events are written and reported.
    pub collect_logs: bool,
    /// Event rate-limit window, in seconds (0 = no limit).
    pub log_interval_seconds: u32,
    /// Events per window (0 = no limit).
    pub log_requests_per_interval: u32,
    /// Ruleset of services that do not name one.
    pub default_ruleset: String,
}

impl Default for SettingsSpec {
    fn default() -> Self {
        SettingsSpec {
            waf_enabled: true,
            alp_enabled: true,
            default_waf_mode: Some(WafMode::DetectionOnly),
            failure_mode_allow: false,
            unknown_service_allow: true,
            body_limit_bytes: 0,
            collect_logs: true,
            log_interval_seconds: 5,
            log_requests_per_interval: 0,
            default_ruleset: String::new(),
        }
    }
}

/// A protected service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// WAF mode (`None` = the settings' default).
    pub waf_mode: Option<WafMode>,
    /// Ruleset name (empty = the settings' default).
    pub ruleset: String,
    /// Labels of the service's pods.
    pub labels: BTreeMap<String, String>,
    /// Labels of its namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// Its pods' service account.
    pub service_account: String,
    /// Cluster IPs (for matching the destination address).
    pub cluster_ips: Vec<String>,
    /// Ports (empty = any).
    pub ports: Vec<u16>,
}

/// A ruleset's flat files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesetSource {
    /// Name.
    pub name: String,
    /// Content hash (empty = unknown, always recompile).
    pub hash: String,
    /// File name to content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A workload's identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadSpec {
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
    /// Service account labels.
    pub service_account_labels: BTreeMap<String, String>,
}

/// Everything one snapshot is built from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateSpec {
    /// Opaque version.
    pub version: String,
    /// Settings.
    pub settings: SettingsSpec,
    /// Protected services.
    pub services: Vec<ServiceSpec>,
    /// Rulesets.
    pub rulesets: Vec<RulesetSource>,
    /// Policy tiers.
    pub tiers: Vec<TierSpec>,
    /// Workload table.
    pub workloads: Vec<WorkloadSpec>,
}

/// A protobuf `State` that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    /// A path match with no kind.
    #[error(
        "tier `{tier}` policy `{policy}` ingress rule {rule}: path match without exact or prefix"
    )]
    EmptyPathMatch {
        /// Tier.
        tier: String,
        /// Policy.
        policy: String,
        /// Rule index.
        rule: usize,
    },
    /// A port above 65535.
    #[error("{0}: port {1} is out of range")]
    Port(String, u32),
}

fn port(context: impl Fn() -> String, p: u32) -> Result<u16, InvalidState> {
    u16::try_from(p).map_err(|_| InvalidState::Port(context(), p))
}

fn entity_from_pb(
    e: Option<pb::EntityMatch>,
    context: &dyn Fn() -> String,
) -> Result<EntityRuleSpec, InvalidState> {
    let Some(e) = e else {
        return Ok(EntityRuleSpec::default());
    };
    Ok(EntityRuleSpec {
        selector: e.selector,
        namespace_selector: e.namespace_selector,
        nets: e.nets,
        not_nets: e.not_nets,
        not_selector: e.not_selector,
        service_accounts: e
            .service_accounts
            .map(|s| palisade_alp::spec::ServiceAccountMatchSpec {
                names: s.names,
                selector: s.selector,
            }),
        ports: e
            .ports
            .into_iter()
            .map(|p| port(context, p).map(|p| p.to_string()))
            .collect::<Result<_, _>>()?,
    })
}

fn tier_from_pb(t: pb::Tier) -> Result<TierSpec, InvalidState> {
    let tier_name = t.name.clone();
    let mut policies = Vec::with_capacity(t.policies.len());
    for p in t.policies {
        let mut ingress = Vec::with_capacity(p.ingress.len());
        for (i, r) in p.ingress.into_iter().enumerate() {
            let context = || format!("tier `{tier_name}` policy `{}` ingress rule {i}", p.name);
            let http = match r.http {
                None => None,
                Some(h) => {
                    let mut paths = Vec::with_capacity(h.paths.len());
                    for m in h.paths {
                        paths.push(match m.kind {
                            Some(pb::path_match::Kind::Exact(e)) => PathMatchSpec {
                                exact: Some(e),
                                prefix: None,
                            },
                            Some(pb::path_match::Kind::Prefix(x)) => PathMatchSpec {
                                exact: None,
                                prefix: Some(x),
                            },
                            None => {
                                return Err(InvalidState::EmptyPathMatch {
                                    tier: tier_name.clone(),
                                    policy: p.name.clone(),
                                    rule: i,
                                })
                            }
                        });
                    }
                    Some(HttpMatchSpec {
                        methods: h.methods,
                        paths,
                    })
                }
            };
            ingress.push(RuleSpec {
                action: r.action,
                http,
                source: entity_from_pb(r.source, &context)?,
                destination: entity_from_pb(r.destination, &context)?,
                protocol: r.protocol,
            });
        }
        policies.push(PolicySpec {
            name: p.name,
            order: p.has_order.then_some(p.order),
            selector: p.selector,
            namespace_selector: p.namespace_selector,
            service_account_selector: p.service_account_selector,
            types: p.types,
            ingress,
        });
    }
    Ok(TierSpec {
        name: t.name,
        order: Some(t.order),
        default_action: (!t.default_action.is_empty()).then_some(t.default_action),
        policies,
    })
}

impl TryFrom<pb::State> for StateSpec {
    type Error = InvalidState;

    fn try_from(s: pb::State) -> Result<Self, Self::Error> {
        let settings = s.settings.unwrap_or_default();
        let settings = SettingsSpec {
            waf_enabled: settings.waf_enabled,
            alp_enabled: settings.alp_enabled,
            default_waf_mode: WafMode::from_pb(settings.default_waf_mode),
            failure_mode_allow: settings.failure_mode_allow,
            unknown_service_allow: settings.unknown_service_allow,
            body_limit_bytes: settings.body_limit_bytes,
            collect_logs: settings.collect_logs,
            log_interval_seconds: settings.log_interval_seconds,
            log_requests_per_interval: settings.log_requests_per_interval,
            default_ruleset: settings.default_ruleset,
        };
        let mut services = Vec::with_capacity(s.services.len());
        for svc in s.services {
            let context = || format!("service {}/{}", svc.namespace, svc.name);
            let ports = svc
                .ports
                .iter()
                .map(|p| port(context, *p))
                .collect::<Result<_, _>>()?;
            services.push(ServiceSpec {
                waf_mode: WafMode::from_pb(svc.waf_mode),
                ports,
                name: svc.name,
                namespace: svc.namespace,
                ruleset: svc.ruleset,
                labels: svc.labels.into_iter().collect(),
                namespace_labels: svc.namespace_labels.into_iter().collect(),
                service_account: svc.service_account,
                cluster_ips: svc.cluster_ips,
            });
        }
        Ok(StateSpec {
            version: s.version,
            settings,
            services,
            rulesets: s
                .rulesets
                .into_iter()
                .map(|r| RulesetSource {
                    name: r.name,
                    hash: r.hash,
                    files: r.files.into_iter().collect(),
                })
                .collect(),
            tiers: s
                .tiers
                .into_iter()
                .map(tier_from_pb)
                .collect::<Result<_, _>>()?,
            workloads: s
                .workloads
                .into_iter()
                .map(|w| WorkloadSpec {
                    ips: w.ips,
                    namespace: w.namespace,
                    pod: w.pod,
                    service_account: w.service_account,
                    labels: w.labels.into_iter().collect(),
                    namespace_labels: w.namespace_labels.into_iter().collect(),
                    service_account_labels: w.service_account_labels.into_iter().collect(),
                })
                .collect(),
        })
    }
}

/// A local state file (`--state`): the same state, with rulesets given as
/// files on disk or inline text.
///
/// ```yaml
/// version: "1"
/// settings: {defaultRuleset: crs}
/// services:
///   - {namespace: shop, name: web, wafMode: On, clusterIps: [10.96.0.10], ports: [80]}
/// rulesets:
///   - name: crs
///     files: {modsecdefault.conf: "SecRuleEngine On\n"}
///     paths:
///       - crs-setup.conf=/opt/crs/crs-setup.conf.example
///       - /opt/crs/rules        # a directory adds its *.conf and *.data
/// tiers: []
/// workloads: []
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StateFile {
    /// Version (default `file`).
    pub version: String,
    /// Settings.
    pub settings: SettingsSpec,
    /// Services.
    pub services: Vec<ServiceSpec>,
    /// Rulesets.
    pub rulesets: Vec<RulesetFileSpec>,
    /// Tiers.
    pub tiers: Vec<TierSpec>,
    /// Workloads.
    pub workloads: Vec<WorkloadSpec>,
}

/// A ruleset in a state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RulesetFileSpec {
    /// Name.
    pub name: String,
    /// Inline files: name to text.
    pub files: BTreeMap<String, String>,
    /// `PATH` or `NAME=PATH`; a directory adds its `*.conf` and `*.data`
    /// files. Relative paths are resolved from the state file's directory.
    pub paths: Vec<String>,
}

/// A state file that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid YAML/JSON for the schema.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_yaml::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, StateFileError> {
    std::fs::read(path).map_err(|source| StateFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Adds the files of a directory (`*.conf`, `*.data`) or one file to `files`.
pub fn add_ruleset_path(
    files: &mut BTreeMap<String, Vec<u8>>,
    name: Option<&str>,
    path: &Path,
) -> Result<(), StateFileError> {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| StateFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| StateFileError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(".conf") || file_name.ends_with(".data") {
                files.insert(file_name, read(&entry.path())?);
            }
        }
        return Ok(());
    }
    let key = match name {
        Some(n) => n.to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    files.insert(key, read(path)?);
    Ok(())
}

/// A content hash for files (stable within one build of the enforcer).
pub fn hash_files(files: &BTreeMap<String, Vec<u8>>) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl StateFile {
    /// Reads and parses a state file (YAML, which includes JSON).
    pub fn load(path: &Path) -> Result<StateSpec, StateFileError> {
        let text = read(path)?;
        let file: StateFile =
            serde_yaml::from_slice(&text).map_err(|source| StateFileError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        file.resolve(path.parent().unwrap_or(Path::new(".")))
    }

    /// Reads the ruleset files, resolving relative paths from `base`.
    pub fn resolve(self, base: &Path) -> Result<StateSpec, StateFileError> {
        let mut rulesets = Vec::with_capacity(self.rulesets.len());
        for r in self.rulesets {
            let mut files: BTreeMap<String, Vec<u8>> = r
                .files
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for entry in &r.paths {
                let (name, p) = match entry.split_once('=') {
                    Some((n, p)) => (Some(n), p),
                    None => (None, entry.as_str()),
                };
                add_ruleset_path(&mut files, name, &base.join(p))?;
            }
            rulesets.push(RulesetSource {
                name: r.name,
                hash: hash_files(&files),
                files,
            });
        }
        Ok(StateSpec {
            version: if self.version.is_empty() {
                "file".to_string()
            } else {
                self.version
            },
            settings: self.settings,
            services: self.services,
            rulesets,
            tiers: self.tiers,
            workloads: self.workloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_protobuf_state() {
        let state = pb::State {
            version: "7".into(),
            settings: Some(pb::Settings {
                waf_enabled: true,
                default_waf_mode: pb::WafMode::On as i32,
                log_interval_seconds: 5,
                ..Default::default()
            }),
            services: vec![pb::Service {
                name: "web".into(),
                namespace: "shop".into(),
                waf_mode: pb::WafMode::DetectionOnly as i32,
                ports: vec![80],
                ..Default::default()
            }],
            tiers: vec![pb::Tier {
                name: "default".into(),
                order: 1.0,
                default_action: String::new(),
                policies: vec![pb::Policy {
                    name: "p".into(),
                    has_order: false,
                    order: 0.0,
                    ingress: vec![pb::Rule {
                        action: "Allow".into(),
                        http: Some(pb::HttpMatch {
                            methods: vec!["GET".into()],
                            paths: vec![pb::PathMatch {
                                kind: Some(pb::path_match::Kind::Prefix("/pub".into())),
                            }],
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        let spec = StateSpec::try_from(state).expect("converts");
        assert_eq!(spec.settings.default_waf_mode, Some(WafMode::On));
        assert_eq!(spec.services[0].waf_mode, Some(WafMode::DetectionOnly));
        assert_eq!(spec.tiers[0].policies[0].order, None);
        assert_eq!(spec.tiers[0].default_action, None);
        let http = spec.tiers[0].policies[0].ingress[0]
            .http
            .as_ref()
            .expect("http");
        assert_eq!(http.paths[0].prefix.as_deref(), Some("/pub"));
    }

    #[test]
    fn rejects_bad_protobuf_state() {
        let state = pb::State {
            services: vec![pb::Service {
                ports: vec![70000],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            StateSpec::try_from(state),
            Err(InvalidState::Port(_, 70000))
        ));
        let state = pb::State {
            tiers: vec![pb::Tier {
                name: "t".into(),
                policies: vec![pb::Policy {
                    name: "p".into(),
                    ingress: vec![pb::Rule {
                        http: Some(pb::HttpMatch {
                            methods: vec![],
                            paths: vec![pb::PathMatch { kind: None }],
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            StateSpec::try_from(state),
            Err(InvalidState::EmptyPathMatch { .. })
        ));
    }

    #[test]
    fn loads_a_state_file_with_ruleset_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
        std::fs::write(dir.path().join("rules/a.conf"), "SecRule ARGS x id:1").expect("write");
        std::fs::write(dir.path().join("rules/a.data"), "x\n").expect("write");
        std::fs::write(dir.path().join("rules/README"), "ignored").expect("write");
        std::fs::write(dir.path().join("setup.example"), "# setup").expect("write");
        let yaml = r#"
settings: {defaultRuleset: crs, unknownServiceAllow: false}
services:
  - {namespace: shop, name: web, wafMode: On, clusterIps: [10.0.0.1], ports: [80]}
rulesets:
  - name: crs
    files: {modsecdefault.conf: "SecRuleEngine On"}
    paths: [crs-setup.conf=setup.example, rules]
tiers:
  - name: default
    policies: [{name: p, ingress: [{action: Allow}]}]
"#;
        let path = dir.path().join("state.yaml");
        std::fs::write(&path, yaml).expect("write");
        let state = StateFile::load(&path).expect("loads");
        assert_eq!(state.version, "file");
        assert!(!state.settings.unknown_service_allow);
        assert!(state.settings.waf_enabled, "defaults apply");
        let files: Vec<&str> = state.rulesets[0].files.keys().map(String::as_str).collect();
        assert_eq!(
            files,
            ["a.conf", "a.data", "crs-setup.conf", "modsecdefault.conf"]
        );
        assert_eq!(state.services[0].waf_mode, Some(WafMode::On));
        assert!(!state.rulesets[0].hash.is_empty());
    }
}
