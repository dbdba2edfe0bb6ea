//! Building the [`Model`] from [`Inputs`]: validation, with the last good
//! version of every refused object kept in force.
//!
//! The builder is incremental. Sources hand over complete [`Inputs`] on every
//! change, so each build still walks every object once, but it redoes work
//! only for what changed:
//! - a service is rebuilt only when the fingerprint of what it is built from
//!   changed (the fields of the Service the model reads, its EndpointSlices,
//!   its namespace's labels, the pods of its namespace when it has a
//!   selector, and the cluster defaults); otherwise the previous
//!   `Arc<ServiceModel>` is reused, and the xDS translation skips it;
//! - a service's policies are re-selected only when the service or the
//!   policy set changed;
//! - a policy is re-validated only when its spec or tier changed, the policy
//!   set recompiled only when the tiers changed, and a ruleset re-hashed only
//!   when its files changed;
//! - the model version is a hash of per-part hashes (each service's is kept
//!   with it), not of the whole model's JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;
use sha1::{Digest, Sha1};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Model, PortModel, RulesetModel, ServiceKey, ServiceModel, Settings, WorkloadModel};
use crate::k8s::{
    calico::DEFAULT_TIER, ApplicationLayer, FailureMode, GlobalNetworkPolicySpec, Toggle, WafMode,
    ANNOTATION_CALICO_L7_LOGGING, ANNOTATION_HOSTS, ANNOTATION_RULESET, ANNOTATION_UPSTREAM,
    ANNOTATION_WAF,
};
use crate::source::{Inputs, Origin, Problem, RulesetFiles, Sourced};
use crate::validate::{self, RulesetCompiler, RulesetVerdict};

/// Hash maps on the rebuild path (foldhash: fast, and good enough for keys
/// that are not attacker-chosen hash-flooding material in a control plane).
type FastMap<K, V> = foldhash::HashMap<K, V>;

/// The hasher of input fingerprints: foldhash's quality variant with a fixed
/// seed (a 64-bit fingerprint; a collision would keep a stale service, with
/// probability about 2^-64 per change).
fn fingerprinter() -> impl Hasher {
    foldhash::quality::FixedState::with_seed(0x5041_4c49_5341_4445).build_hasher()
}

/// Label EndpointSlices carry to name their Service.
const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// Builds models, remembering the last good version of each object and what
/// each service and policy gave last time (see the module docs).
#[derive(Debug)]
pub struct ModelBuilder {
    compiler: Arc<dyn RulesetCompiler>,
    verdicts: HashMap<String, RulesetVerdict>,
    last_good_rulesets: HashMap<String, RulesetModel>,
    last_good_policies: HashMap<String, (String, palisade_alp::PolicySpec)>,
    last_good_tiers: HashMap<String, palisade_alp::TierSpec>,
    last_good_settings: Option<(Option<String>, Settings)>,
    /// Per policy: the input last validated and the outcome.
    policy_checks: HashMap<String, PolicyCheck>,
    /// The compiled policy set and what it was compiled from.
    policy_set: Option<CompiledPolicies>,
    /// Bumped whenever the policy set changes.
    policy_generation: u64,
    /// Per service: what it was built from and what came out.
    services: FastMap<ServiceKey, ServiceEntry>,
    /// Bumped on every build (marks the services seen in it).
    epoch: u64,
}

/// A policy's last validation.
#[derive(Debug)]
struct PolicyCheck {
    tier: String,
    spec: GlobalNetworkPolicySpec,
    result: Result<palisade_alp::PolicySpec, validate::PolicyProblem>,
}

/// The policy set compiled from some tiers.
#[derive(Debug)]
struct CompiledPolicies {
    tiers: Vec<palisade_alp::TierSpec>,
    set: Result<Arc<palisade_alp::PolicySet>, String>,
    /// Hash of the tiers' JSON (a part of the model version).
    digest: [u8; 20],
}

/// One service's cached build.
#[derive(Debug)]
struct ServiceEntry {
    /// The build this service was last seen in.
    epoch: u64,
    /// Fingerprint of the inputs `outcome` was built from.
    fingerprint: u64,
    /// The service without its policies, none (not protected), or why it
    /// was refused.
    outcome: Result<Option<Arc<ServiceModel>>, String>,
    /// The last service built without error (kept in force when refused).
    last_good: Option<Arc<ServiceModel>>,
    /// The service with its policies, for one outcome and policy generation.
    resolved: Option<Resolved>,
}

/// A service with its policies.
#[derive(Debug)]
struct Resolved {
    base: Arc<ServiceModel>,
    generation: u64,
    model: Arc<ServiceModel>,
    /// Hash of the service's JSON (a part of the model version).
    digest: [u8; 20],
}

fn problem(origin: &Origin, kind: &str, name: &str, message: impl Into<String>) -> Problem {
    Problem {
        origin: origin.clone(),
        kind: kind.to_string(),
        name: name.to_string(),
        message: message.into(),
    }
}

fn keep_note(kept: bool) -> &'static str {
    if kept {
        "; the last good version stays in force"
    } else {
        "; it is not used"
    }
}

/// Hex SHA-1 of a ruleset's names and contents.
pub fn ruleset_hash(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = Sha1::new();
    for (name, content) in files {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((content.len() as u64).to_le_bytes());
        h.update(content);
    }
    hex::encode(h.finalize())
}

impl ModelBuilder {
    /// A builder validating rulesets with `compiler`.
    pub fn new(compiler: Arc<dyn RulesetCompiler>) -> ModelBuilder {
        ModelBuilder {
            compiler,
            verdicts: HashMap::new(),
            last_good_rulesets: HashMap::new(),
            last_good_policies: HashMap::new(),
            last_good_tiers: HashMap::new(),
            last_good_settings: None,
            policy_checks: HashMap::new(),
            policy_set: None,
            policy_generation: 0,
            services: FastMap::default(),
            epoch: 0,
        }
    }

    /// Builds the model for `inputs`.
    pub fn build(&mut self, inputs: &Inputs) -> Model {
        let mut problems = inputs.problems.clone();
        let rulesets = self.rulesets(&inputs.rulesets, &mut problems);
        let mut settings = self.settings(&inputs.application_layers, &mut problems);
        if settings.default_ruleset.is_empty() {
            settings.default_ruleset = inputs.default_ruleset.clone();
        }
        if !rulesets.contains_key(&settings.default_ruleset) {
            problems.push(problem(
                &Origin::Builtin {
                    what: "settings".into(),
                },
                "Ruleset",
                &settings.default_ruleset,
                "the default ruleset does not exist; services using it get no WAF rules",
            ));
        }
        let tiers = self.tiers(inputs, &mut problems);
        let (policy_set, tiers_digest) = self.policy_set(&tiers, &mut problems);

        let namespaces: HashMap<String, BTreeMap<String, String>> = inputs
            .namespaces
            .iter()
            .filter_map(|ns| {
                Some((
                    ns.metadata.name.clone()?,
                    ns.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let namespace_fingerprints: FastMap<&str, u64> = namespaces
            .iter()
            .map(|(n, labels)| (n.as_str(), fingerprint_of(labels)))
            .collect();
        let mut pods_by_ns: HashMap<&str, Vec<&Pod>> = HashMap::new();
        for pod in &inputs.pods {
            if let Some(ns) = pod.metadata.namespace.as_deref() {
                pods_by_ns.entry(ns).or_default().push(pod);
            }
        }
        let mut pod_fingerprints: FastMap<String, u64> = FastMap::default();
        let workloads = workloads(&inputs.pods, &namespaces);
        let mut slices: SliceIndex<'_> = FastMap::default();
        for slice in &inputs.endpoint_slices {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE_NAME));
            if let (Some(ns), Some(svc)) = (slice.metadata.namespace.as_deref(), service) {
                slices.entry((ns, svc.as_str())).or_default().push(slice);
            }
        }
        // What every service depends on.
        let global = {
            let mut h = fingerprinter();
            settings.default_waf_mode.hash(&mut h);
            settings.default_ruleset.hash(&mut h);
            for name in rulesets.keys() {
                name.hash(&mut h);
            }
            h.finish()
        };

        self.epoch += 1;
        let epoch = self.epoch;
        let generation = self.policy_generation;
        let mut services: Vec<(ServiceKey, Arc<ServiceModel>)> =
            Vec::with_capacity(inputs.services.len());
        // Services are unique by key and their JSON holds the key: a sum of
        // their hashes identifies the set whatever the input order.
        let mut services_digest: u128 = 0;
        for svc in &inputs.services {
            let Some(key) = service_key(&svc.object) else {
                continue;
            };
            let fingerprint = {
                let pods = selects_pods(&svc.object).then(|| {
                    let ns = key.namespace.as_str();
                    match pod_fingerprints.get(ns) {
                        Some(f) => *f,
                        None => {
                            let f = pods_fingerprint(
                                pods_by_ns.get(ns).map(Vec::as_slice).unwrap_or_default(),
                            );
                            pod_fingerprints.insert(ns.to_string(), f);
                            f
                        }
                    }
                });
                service_fingerprint(
                    &svc.object,
                    &key,
                    &slices,
                    namespace_fingerprints.get(key.namespace.as_str()).copied(),
                    pods,
                    global,
                )
            };
            let entry = match self.services.get_mut(&key) {
                Some(e) => e,
                None => self.services.entry(key.clone()).or_insert(ServiceEntry {
                    epoch: 0,
                    fingerprint: fingerprint.wrapping_add(1),
                    outcome: Ok(None),
                    last_good: None,
                    resolved: None,
                }),
            };
            if entry.epoch == epoch {
                problems.push(problem(
                    &svc.origin,
                    "Service",
                    &key.to_string(),
                    "defined more than once; the first definition is used",
                ));
                continue;
            }
            entry.epoch = epoch;
            if entry.fingerprint != fingerprint {
                entry.fingerprint = fingerprint;
                let outcome = service(
                    svc,
                    &key,
                    &slices,
                    &settings,
                    &rulesets,
                    &namespaces,
                    &pods_by_ns,
                );
                // Rebuilt with the same result (say, a pod that does not change
                // which one is picked): the previous Arc stays.
                let same = matches!((&outcome, &entry.outcome), (Ok(Some(new)), Ok(Some(old))) if *new == **old);
                if !same {
                    entry.outcome = outcome.map(|m| m.map(Arc::new));
                }
            }
            let chosen = match &entry.outcome {
                Ok(Some(model)) => {
                    entry.last_good = Some(Arc::clone(model));
                    Some(Arc::clone(model))
                }
                Ok(None) => {
                    entry.last_good = None;
                    None
                }
                Err(message) => {
                    let kept = entry.last_good.clone();
                    problems.push(problem(
                        &svc.origin,
                        "Service",
                        &key.to_string(),
                        format!("{message}{}", keep_note(kept.is_some())),
                    ));
                    kept
                }
            };
            let Some(base) = chosen else {
                continue;
            };
            let fresh = entry
                .resolved
                .as_ref()
                .is_some_and(|r| r.generation == generation && Arc::ptr_eq(&r.base, &base));
            if !fresh {
                let identity = palisade_alp::Identity::new(
                    &key.namespace,
                    &key.name,
                    &base.service_account,
                    base.labels.clone(),
                    base.namespace_labels.clone(),
                    BTreeMap::new(),
                );
                let policies: Vec<String> = policy_set
                    .selecting(&identity)
                    .into_iter()
                    .map(|(t, p)| format!("{t}/{p}"))
                    .collect();
                match &mut entry.resolved {
                    // Same service, same policies: the model stays the same Arc.
                    Some(r) if Arc::ptr_eq(&r.base, &base) && r.model.policies == policies => {
                        r.generation = generation;
                    }
                    resolved => {
                        let mut model = (*base).clone();
                        model.policies = policies;
                        *resolved = Some(Resolved {
                            digest: json_digest(&model),
                            base,
                            generation,
                            model: Arc::new(model),
                        });
                    }
                }
            }
            if let Some(r) = &entry.resolved {
                let mut d = [0u8; 16];
                d.copy_from_slice(&r.digest[..16]);
                services_digest = services_digest.wrapping_add(u128::from_le_bytes(d));
                services.push((key, Arc::clone(&r.model)));
            }
        }
        self.services.retain(|_, e| e.epoch == epoch);

        let mut model = Model {
            version: String::new(),
            settings,
            services: services.into_iter().collect(),
            tiers,
            rulesets,
            workloads,
            problems: Vec::new(),
        };
        model.version = model_version(&model, services_digest, &tiers_digest);
        problems.sort();
        problems.dedup();
        model.problems = problems;
        model
    }

    /// The policy set for `tiers`, compiled again only when they changed.
    fn policy_set(
        &mut self,
        tiers: &[palisade_alp::TierSpec],
        problems: &mut Vec<Problem>,
    ) -> (Arc<palisade_alp::PolicySet>, [u8; 20]) {
        let current = self.policy_set.as_ref().filter(|c| c.tiers == tiers);
        let compiled = match current {
            Some(c) => c,
            None => {
                self.policy_generation += 1;
                let set = palisade_alp::PolicySet::compile(tiers)
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                self.policy_set.insert(CompiledPolicies {
                    tiers: tiers.to_vec(),
                    set,
                    digest: json_digest(&tiers),
                })
            }
        };
        let set = match &compiled.set {
            Ok(set) => Arc::clone(set),
            Err(e) => {
                problems.push(problem(
                    &Origin::Builtin {
                        what: "policies".into(),
                    },
                    "PolicySet",
                    "all",
                    format!("{e}; policies are not enforced"),
                ));
                Arc::new(palisade_alp::PolicySet::new(Vec::new()))
            }
        };
        (set, compiled.digest)
    }

    fn settings(
        &mut self,
        layers: &[Sourced<ApplicationLayer>],
        problems: &mut Vec<Problem>,
    ) -> Settings {
        let chosen = layers
            .iter()
            .find(|l| l.object.metadata.name.as_deref() == Some("default"))
            .or_else(|| layers.iter().min_by_key(|l| l.object.metadata.name.clone()));
        let Some(layer) = chosen else {
            self.last_good_settings = None;
            return Settings {
                default_ruleset: String::new(),
                ..Settings::default()
            };
        };
        let name = layer.object.metadata.name.clone().unwrap_or_default();
        for other in layers {
            if !std::ptr::eq(other, layer) {
                problems.push(problem(
                    &other.origin,
                    "ApplicationLayer",
                    other.object.metadata.name.as_deref().unwrap_or(""),
                    format!("ignored: only one ApplicationLayer is used (`{name}`)"),
                ));
            }
        }
        let spec = &layer.object.spec;
        let defaults = Settings::default();
        let body = spec
            .body_limit_bytes
            .unwrap_or(u64::from(defaults.body_limit_bytes));
        let logs = spec.log_collection.clone().unwrap_or_default();
        let interval = logs
            .log_interval_seconds
            .unwrap_or(defaults.log_interval_seconds);
        let mut errors = Vec::new();
        let body_limit_bytes = match u32::try_from(body) {
            Ok(b) if b > 0 => b,
            _ => {
                errors.push(format!(
                    "bodyLimitBytes {body} must be between 1 and {}",
                    u32::MAX
                ));
                defaults.body_limit_bytes
            }
        };
        if interval == 0 {
            errors.push("logCollection.logIntervalSeconds must be at least 1".to_string());
        }
        if let Some(r) = &spec.default_ruleset {
            if r.trim().is_empty() {
                errors.push("defaultRuleset must not be empty".to_string());
            }
        }
        if !errors.is_empty() {
            let kept = self
                .last_good_settings
                .as_ref()
                .filter(|(n, _)| n.as_deref() == Some(&name));
            problems.push(problem(
                &layer.origin,
                "ApplicationLayer",
                &name,
                format!("{}{}", errors.join("; "), keep_note(kept.is_some())),
            ));
            return kept.map(|(_, s)| s.clone()).unwrap_or(Settings {
                default_ruleset: String::new(),
                ..defaults
            });
        }
        let settings = Settings {
            waf_enabled: spec.web_application_firewall.is_none_or(Toggle::is_enabled),
            alp_enabled: spec.application_layer_policy.is_none_or(Toggle::is_enabled),
            default_waf_mode: spec.default_waf_mode.unwrap_or(defaults.default_waf_mode),
            failure_mode_allow: spec.failure_mode == Some(FailureMode::Allow),
            body_limit_bytes,
            collect_logs: logs.collect_logs.is_none_or(Toggle::is_enabled),
            log_interval_seconds: interval,
            log_requests_per_interval: logs
                .log_requests_per_interval
                .unwrap_or(defaults.log_requests_per_interval),
            default_ruleset: spec.default_ruleset.clone().unwrap_or_default(),
        };
        self.last_good_settings = Some((Some(name), settings.clone()));
        settings
    }

    fn rulesets(
        &mut self,
        inputs: &[Sourced<RulesetFiles>],
        problems: &mut Vec<Problem>,
    ) -> BTreeMap<String, RulesetModel> {
        let mut out = BTreeMap::new();
        let mut live_hashes = BTreeSet::new();
        for r in inputs {
            let name = &r.object.name;
            if out.contains_key(name) {
                problems.push(problem(
                    &r.origin,
                    "Ruleset",
                    name,
                    "defined more than once; the first is used",
                ));
                continue;
            }
            // Unchanged files: the last good model's hash and shared copy.
            let unchanged = self
                .last_good_rulesets
                .get(name)
                .filter(|prev| *prev.files == r.object.files)
                .map(|prev| (prev.hash.clone(), Arc::clone(&prev.files)));
            let hash = match &unchanged {
                Some((hash, _)) => hash.clone(),
                None => ruleset_hash(&r.object.files),
            };
            live_hashes.insert(hash.clone());
            let verdict = match self.verdicts.get(&hash) {
                Some(v) => v.clone(),
                None => {
                    let v = self.compiler.compile(&r.object.files);
                    self.verdicts.insert(hash.clone(), v.clone());
                    v
                }
            };
            let rules = match verdict {
                RulesetVerdict::Valid { rules } => rules,
                RulesetVerdict::Unchecked(why) => {
                    problems.push(problem(
                        &r.origin,
                        "Ruleset",
                        name,
                        format!("not validated: {why}"),
                    ));
                    0
                }
                RulesetVerdict::Invalid(why) => {
                    let kept = self.last_good_rulesets.get(name).cloned();
                    problems.push(problem(
                        &r.origin,
                        "Ruleset",
                        name,
                        format!("does not compile: {why}{}", keep_note(kept.is_some())),
                    ));
                    if let Some(k) = kept {
                        live_hashes.insert(k.hash.clone());
                        out.insert(name.clone(), k);
                    }
                    continue;
                }
            };
            let files = match unchanged {
                Some((_, files)) => files,
                None => Arc::new(r.object.files.clone()),
            };
            let model = RulesetModel {
                name: name.clone(),
                hash,
                files,
                rules,
            };
            self.last_good_rulesets.insert(name.clone(), model.clone());
            out.insert(name.clone(), model);
        }
        self.last_good_rulesets.retain(|n, _| out.contains_key(n));
        self.verdicts.retain(|h, _| live_hashes.contains(h));
        out
    }

    fn tiers(
        &mut self,
        inputs: &Inputs,
        problems: &mut Vec<Problem>,
    ) -> Vec<palisade_alp::TierSpec> {
        let mut tiers: BTreeMap<String, palisade_alp::TierSpec> = BTreeMap::new();
        for t in &inputs.tiers {
            let name = t.object.metadata.name.clone().unwrap_or_default();
            let spec = palisade_alp::TierSpec {
                name: name.clone(),
                order: t.object.spec.order,
                default_action: t.object.spec.default_action.map(|a| a.as_str().to_string()),
                policies: Vec::new(),
            };
            let result = if tiers.contains_key(&name) {
                Err("defined more than once".to_string())
            } else {
                palisade_alp::policy::Tier::compile(&spec)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            match result {
                Ok(()) => {
                    self.last_good_tiers.insert(name.clone(), spec.clone());
                    tiers.insert(name, spec);
                }
                Err(e) => {
                    let kept = self.last_good_tiers.get(&name).cloned();
                    problems.push(problem(
                        &t.origin,
                        "Tier",
                        &name,
                        format!("{e}{}", keep_note(kept.is_some())),
                    ));
                    if let Some(k) = kept {
                        tiers.entry(name).or_insert(k);
                    }
                }
            }
        }
        self.last_good_tiers.retain(|n, _| tiers.contains_key(n));
        tiers
            .entry(DEFAULT_TIER.to_string())
            .or_insert_with(|| palisade_alp::TierSpec {
                name: DEFAULT_TIER.to_string(),
                order: None,
                default_action: None,
                policies: Vec::new(),
            });

        let mut names = BTreeSet::new();
        let mut sorted: Vec<_> = inputs.policies.iter().collect();
        sorted.sort_by(|a, b| a.object.metadata.name.cmp(&b.object.metadata.name));
        for p in sorted {
            let name = p.object.metadata.name.clone().unwrap_or_default();
            if !names.insert(name.clone()) {
                problems.push(problem(
                    &p.origin,
                    "GlobalNetworkPolicy",
                    &name,
                    "defined more than once; the first is used",
                ));
                continue;
            }
            let tier = p
                .object
                .spec
                .tier
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| DEFAULT_TIER.to_string());
            let result = if tiers.contains_key(&tier) {
                self.check_policy(&name, &tier, &p.object.spec)
            } else {
                Err(validate::PolicyProblem::UnknownTier(tier.clone()))
            };
            match result {
                Ok(spec) => {
                    self.last_good_policies
                        .insert(name.clone(), (tier.clone(), spec.clone()));
                    if let Some(t) = tiers.get_mut(&tier) {
                        t.policies.push(spec);
                    }
                }
                Err(e) => {
                    let kept = self
                        .last_good_policies
                        .get(&name)
                        .filter(|(t, _)| tiers.contains_key(t))
                        .cloned();
                    problems.push(problem(
                        &p.origin,
                        "GlobalNetworkPolicy",
                        &name,
                        format!("{e}{}", keep_note(kept.is_some())),
                    ));
                    if let Some((t, spec)) = kept {
                        if let Some(t) = tiers.get_mut(&t) {
                            t.policies.push(spec);
                        }
                    }
                }
            }
        }
        self.last_good_policies.retain(|n, _| names.contains(n));
        self.policy_checks.retain(|n, _| names.contains(n));
        tiers.into_values().collect()
    }

    /// [`validate::check_policy`], remembered until the policy changes.
    fn check_policy(
        &mut self,
        name: &str,
        tier: &str,
        spec: &GlobalNetworkPolicySpec,
    ) -> Result<palisade_alp::PolicySpec, validate::PolicyProblem> {
        if let Some(c) = self.policy_checks.get(name) {
            if c.tier == tier && c.spec == *spec {
                return c.result.clone();
            }
        }
        let result = validate::check_policy(name, tier, spec);
        self.policy_checks.insert(
            name.to_string(),
            PolicyCheck {
                tier: tier.to_string(),
                spec: spec.clone(),
                result: result.clone(),
            },
        );
        result
    }
}

/// Builds one service's model (without its policies). Everything read here
/// must be covered by [`service_fingerprint`].
fn service(
    svc: &Sourced<Service>,
    key: &ServiceKey,
    slices: &SliceIndex<'_>,
    settings: &Settings,
    rulesets: &BTreeMap<String, RulesetModel>,
    namespaces: &HashMap<String, BTreeMap<String, String>>,
    pods_by_ns: &HashMap<&str, Vec<&Pod>>,
) -> Result<Option<ServiceModel>, String> {
    let annotations = svc.object.metadata.annotations.clone().unwrap_or_default();
    let mode = match (
        annotations.get(ANNOTATION_WAF),
        annotations.get(ANNOTATION_CALICO_L7_LOGGING),
    ) {
        (Some(v), _) => WafMode::parse(v).ok_or_else(|| {
            format!("annotation {ANNOTATION_WAF}: `{v}` is not On, DetectionOnly or Off")
        })?,
        (None, Some(v)) if v.trim() == "true" => settings.default_waf_mode,
        _ => return Ok(None),
    };
    let ruleset = match annotations.get(ANNOTATION_RULESET).map(|s| s.trim()) {
        Some(r) if !r.is_empty() => {
            if !rulesets.contains_key(r) {
                return Err(format!(
                    "annotation {ANNOTATION_RULESET}: ruleset `{r}` does not exist"
                ));
            }
            r.to_string()
        }
        _ => settings.default_ruleset.clone(),
    };
    let upstream = match annotations.get(ANNOTATION_UPSTREAM) {
        Some(list) => Some(parse_upstreams(list)?),
        None => None,
    };
    let hosts: Vec<String> = annotations
        .get(ANNOTATION_HOSTS)
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for h in &hosts {
        if !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:*[]".contains(&b))
        {
            return Err(format!(
                "annotation {ANNOTATION_HOSTS}: `{h}` is not a host name"
            ));
        }
    }
    let spec = svc.object.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let pod = pods_by_ns.get(key.namespace.as_str()).and_then(|pods| {
        pods.iter()
            .filter(|p| {
                !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
            })
            .min_by_key(|p| p.metadata.name.clone())
    });
    let mut labels = selector.clone();
    if let Some(pod) = pod {
        labels.extend(pod.metadata.labels.clone().unwrap_or_default());
    }
    let service_account = pod
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string());

    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let port = u16::try_from(p.port).map_err(|_| format!("port {} is out of range", p.port))?;
        let name = p.name.clone().unwrap_or_default();
        let endpoints = match &upstream {
            Some(list) => list.clone(),
            None => slice_endpoints(slices, key, &name),
        };
        ports.push(PortModel {
            name,
            port,
            endpoints,
        });
    }
    if ports.is_empty() {
        return Err("the Service has no ports".to_string());
    }
    Ok(Some(ServiceModel {
        key: key.clone(),
        mode,
        ruleset,
        labels,
        namespace_labels: namespaces.get(&key.namespace).cloned().unwrap_or_default(),
        service_account,
        cluster_ips: spec
            .cluster_ips
            .clone()
            .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
            .unwrap_or_default()
            .into_iter()
            .filter(|ip| ip != "None" && !ip.is_empty())
            .collect(),
        ports,
        hosts,
        policies: Vec::new(),
    }))
}

/// Whether a service's model depends on the pods of its namespace (it picks
/// one by its selector).
fn selects_pods(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

fn fingerprint_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = fingerprinter();
    value.hash(&mut h);
    h.finish()
}

/// Fingerprint of the pods of a namespace, as [`service`] reads them.
fn pods_fingerprint(pods: &[&Pod]) -> u64 {
    let mut h = fingerprinter();
    pods.len().hash(&mut h);
    for p in pods {
        p.metadata.name.hash(&mut h);
        p.metadata.labels.hash(&mut h);
        p.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_ref())
            .hash(&mut h);
    }
    h.finish()
}

/// Fingerprint of everything [`service`] builds a service from: the
/// annotations and spec fields it reads, the service's EndpointSlices, its
/// namespace's labels, its namespace's pods (when it has a selector), and
/// the cluster defaults (`global`). Equal fingerprints mean the previous
/// result can be reused.
fn service_fingerprint(
    svc: &Service,
    key: &ServiceKey,
    slices: &SliceIndex<'_>,
    namespace: Option<u64>,
    pods: Option<u64>,
    global: u64,
) -> u64 {
    let mut h = fingerprinter();
    global.hash(&mut h);
    key.hash(&mut h);
    namespace.hash(&mut h);
    pods.hash(&mut h);
    let annotations = svc.metadata.annotations.as_ref();
    for a in [
        ANNOTATION_WAF,
        ANNOTATION_CALICO_L7_LOGGING,
        ANNOTATION_RULESET,
        ANNOTATION_UPSTREAM,
        ANNOTATION_HOSTS,
    ] {
        annotations.and_then(|m| m.get(a)).hash(&mut h);
    }
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.selector.as_ref()).hash(&mut h);
    spec.and_then(|s| s.cluster_ips.as_ref()).hash(&mut h);
    spec.and_then(|s| s.cluster_ip.as_ref()).hash(&mut h);
    match spec.and_then(|s| s.ports.as_ref()) {
        Some(ports) => {
            ports.len().hash(&mut h);
            for p in ports {
                p.port.hash(&mut h);
                p.name.hash(&mut h);
            }
        }
        None => usize::MAX.hash(&mut h),
    }
    match slices.get(&(key.namespace.as_str(), key.name.as_str())) {
        Some(list) => {
            list.len().hash(&mut h);
            for slice in list {
                for p in slice.ports.iter().flatten() {
                    p.name.hash(&mut h);
                    p.port.hash(&mut h);
                }
                0xffu8.hash(&mut h);
                for ep in slice.endpoints.iter().flatten() {
                    ep.conditions.as_ref().and_then(|c| c.ready).hash(&mut h);
                    ep.addresses.hash(&mut h);
                }
                0xfeu8.hash(&mut h);
            }
        }
        None => usize::MAX.hash(&mut h),
    }
    h.finish()
}

/// SHA-1 of a value's JSON.
fn json_digest<T: Serialize + ?Sized>(value: &T) -> [u8; 20] {
    let json = serde_json::to_vec(value).unwrap_or_default();
    Sha1::digest(&json).into()
}

fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        name: svc.metadata.name.clone()?,
    })
}

/// Parses `host:port[,host:port...]` (IP addresses only; IPv6 in brackets).
pub fn parse_upstreams(list: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addr = item
            .parse::<SocketAddr>()
            .or_else(|_| match item.rsplit_once(':') {
                Some(("localhost", port)) => format!("127.0.0.1:{port}").parse(),
                _ => item.parse::<SocketAddr>(),
            })
            .map_err(|_| format!("annotation {ANNOTATION_UPSTREAM}: `{item}` is not IP:port"))?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err(format!(
            "annotation {ANNOTATION_UPSTREAM} lists no endpoint"
        ));
    }
    Ok(out)
}

/// EndpointSlices by (namespace, service name).
type SliceIndex<'a> = FastMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>;

/// Ready endpoints of the service's slices for the service port named `port_name`.
fn slice_endpoints(slices: &SliceIndex<'_>, key: &ServiceKey, port_name: &str) -> Vec<SocketAddr> {
    let mut out = BTreeSet::new();
    let Some(list) = slices.get(&(key.namespace.as_str(), key.name.as_str())) else {
        return Vec::new();
    };
    for slice in list {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    out.insert(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn workloads(
    pods: &[Pod],
    namespaces: &HashMap<String, BTreeMap<String, String>>,
) -> Vec<WorkloadModel> {
    let mut out: Vec<WorkloadModel> = pods
        .iter()
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let mut ips: Vec<String> = status
                .pod_ips
                .iter()
                .flatten()
                .map(|ip| ip.ip.clone())
                .collect();
            if ips.is_empty() {
                ips.extend(status.pod_ip.clone());
            }
            if ips.is_empty() {
                return None;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            Some(WorkloadModel {
                ips,
                namespace_labels: namespaces.get(&namespace).cloned().unwrap_or_default(),
                namespace,
                pod: pod.metadata.name.clone().unwrap_or_default(),
                service_account: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".to_string()),
                labels: pod.metadata.labels.clone().unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    out
}

/// Content hash of a model (everything but the version and the problems),
/// from the hashes of its parts: settings, each service (kept with it),
/// tiers (kept with the compiled policy set), rulesets and workloads.
fn model_version(model: &Model, services: u128, tiers: &[u8; 20]) -> String {
    let mut h = Sha1::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(&json_digest(&model.settings));
    part(&(model.services.len() as u64).to_le_bytes());
    part(&services.to_le_bytes());
    part(tiers);
    part(&json_digest(&model.rulesets));
    part(&json_digest(&model.workloads));
    hex::encode(h.finalize())[..16].to_string()
}

/// Runs a [`ModelBuilder`] on every new [`Inputs`] and publishes models.
#[derive(Debug)]
pub struct ModelTask {
    builder: ModelBuilder,
}

impl ModelTask {
    /// A task using `builder`.
    pub fn new(builder: ModelBuilder) -> ModelTask {
        ModelTask { builder }
    }

    /// Builds a model for each change of `inputs` (once it is ready) and
    /// publishes it when its version differs; logs problems as they appear.
    pub async fn run(
        self,
        mut inputs: watch::Receiver<Arc<Inputs>>,
        out: watch::Sender<Option<Arc<Model>>>,
    ) {
        let mut builder = self.builder;
        let mut reported: BTreeSet<Problem> = BTreeSet::new();
        loop {
            let current = inputs.borrow_and_update().clone();
            if current.ready {
                let result = tokio::task::spawn_blocking(move || {
                    let model = builder.build(&current);
                    (builder, model)
                })
                .await;
                let (b, model) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(error = %e, "model build failed; the control plane stops serving changes");
                        return;
                    }
                };
                builder = b;
                let now: BTreeSet<Problem> = model.problems.iter().cloned().collect();
                for p in now.difference(&reported) {
                    warn!(origin = %p.origin, kind = %p.kind, name = %p.name, "{}: {}", p.origin, p.message);
                }
                for p in reported.difference(&now) {
                    info!(origin = %p.origin, kind = %p.kind, name = %p.name, "resolved: {}", p.origin);
                }
                reported = now;
                let changed = out
                    .borrow()
                    .as_ref()
                    .map(|m| m.version != model.version || m.problems != model.problems)
                    .unwrap_or(true);
                if changed {
                    info!(version = %model.version, services = model.services.len(), rulesets = model.rulesets.len(), "model updated");
                    if out.send(Some(Arc::new(model))).is_err() {
                        return;
                    }
                }
            }
            if inputs.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::directory::load_once;
    use crate::source::manifest::{parse, Manifest};
    use crate::validate::AcceptAll;

    fn builder() -> ModelBuilder {
        ModelBuilder::new(Arc::new(AcceptAll))
    }

    fn inputs(yaml: &str) -> Inputs {
        let (objs, problems) = parse(Path::new("t.yaml"), yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let mut inputs = Inputs {
            ready: true,
            default_ruleset: "baseline".into(),
            ..Inputs::default()
        };
        inputs.rulesets.push(Sourced {
            origin: Origin::Builtin {
                what: "test".into(),
            },
            object: RulesetFiles {
                name: "baseline".into(),
                files: BTreeMap::new(),
            },
        });
        for o in objs {
            let origin = o.origin;
            match o.manifest {
                Manifest::Service(s) => inputs.services.push(Sourced { origin, object: s }),
                Manifest::EndpointSlice(s) => inputs.endpoint_slices.push(s),
                Manifest::Pod(p) => inputs.pods.push(p),
                Manifest::Namespace(n) => inputs.namespaces.push(n),
                Manifest::GlobalNetworkPolicy(p) => {
                    inputs.policies.push(Sourced { origin, object: p })
                }
                Manifest::Tier(t) => inputs.tiers.push(Sourced { origin, object: t }),
                Manifest::ApplicationLayer(a) => inputs
                    .application_layers
                    .push(Sourced { origin, object: a }),
                Manifest::GlobalAlert(a) => inputs.alerts.push(Sourced { origin, object: a }),
                Manifest::Ruleset(r) => inputs.rulesets.push(Sourced { origin, object: r }),
            }
        }
        inputs
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: n\n  annotations: {palisade.dev/waf: 'On'}\nspec:\n  selector: {app: s}\n  ports: [{name: http, port: 80}]\n";

    #[test]
    fn repository_policies_build() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let model = builder().build(&load_once(&dir));
        let problems: Vec<_> = model
            .problems
            .iter()
            .filter(|p| !p.message.starts_with("not validated"))
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        let pp = model
            .services
            .values()
            .find(|s| s.key.name == "productpage")
            .unwrap();
        assert_eq!(pp.mode, WafMode::On);
        assert_eq!(
            pp.ports[0].endpoints,
            ["127.0.0.1:18080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(pp.policies, ["default/default.productpage-get-only"]);
        let www = model
            .services
            .values()
            .find(|s| s.key.name == "www")
            .unwrap();
        assert_eq!(www.mode, WafMode::DetectionOnly);
        assert_eq!(www.policies, ["default/default.www-allow-list"]);
        assert_eq!(model.settings.default_ruleset, "baseline");
        assert!(!model.settings.failure_mode_allow);
        assert_eq!(model.version.len(), 16);
    }

    #[test]
    fn versions_follow_content() {
        let mut b = builder();
        let a = b.build(&inputs(SVC));
        let again = b.build(&inputs(SVC));
        assert_eq!(a.version, again.version);
        let changed = b.build(&inputs(&SVC.replace("'On'", "DetectionOnly")));
        assert_ne!(a.version, changed.version);
        assert_ne!(a.version, builder().build(&inputs("")).version);
    }

    #[test]
    fn endpoints_from_slices_and_l7_logging() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: n\n  annotations: {projectcalico.org/l7-logging: 'true'}\nspec:\n  ports: [{name: http, port: 80}, {name: grpc, port: 81}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s-1, namespace: n, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\nports: [{name: http, port: 8080}, {name: grpc, port: 9090}]\nendpoints:\n  - addresses: [10.0.0.1]\n  - addresses: [10.0.0.2]\n    conditions: {ready: false}\n";
        let model = builder().build(&inputs(yaml));
        let s = model.services.values().next().unwrap();
        assert_eq!(s.mode, WafMode::DetectionOnly);
        assert_eq!(
            s.ports[0].endpoints,
            ["10.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            s.ports[1].endpoints,
            ["10.0.0.1:9090".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn refused_objects_keep_last_good() {
        let policy = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  selector: app == 's'\n  ingress: [{action: Allow, http: {methods: [GET]}}]\n";
        let mut b = builder();
        let good = b.build(&inputs(&format!("{SVC}{policy}")));
        assert!(good.problems.is_empty(), "{:?}", good.problems);
        assert_eq!(
            good.tiers.iter().map(|t| t.policies.len()).sum::<usize>(),
            1
        );

        // A Deny rule with http is refused; the Allow version stays.
        let bad = b.build(&inputs(&format!(
            "{SVC}{}",
            policy.replace("Allow", "Deny")
        )));
        assert_eq!(bad.tiers, good.tiers);
        assert_eq!(bad.problems.len(), 1);
        assert!(bad.problems[0].message.contains("only allowed on Allow"));
        assert!(bad.problems[0].message.contains("last good version stays"));
        assert_eq!(
            bad.problems[0].origin,
            Origin::File {
                path: "t.yaml".into(),
                line: 11
            }
        );

        // A bad annotation keeps the service as it was.
        let bad_svc = b.build(&inputs(&SVC.replace("'On'", "Maybe")));
        assert_eq!(bad_svc.services, b.build(&inputs(SVC)).services);
        let fresh = builder().build(&inputs(&SVC.replace("'On'", "Maybe")));
        assert!(fresh.services.is_empty());
        assert!(fresh.problems[0]
            .message
            .contains("not On, DetectionOnly or Off"));
    }

    #[derive(Debug)]
    struct Refuse;
    impl RulesetCompiler for Refuse {
        fn compile(&self, files: &BTreeMap<String, Vec<u8>>) -> RulesetVerdict {
            if files.contains_key("bad.conf") {
                RulesetVerdict::Invalid("bad.conf:3: unknown operator".into())
            } else {
                RulesetVerdict::Valid { rules: files.len() }
            }
        }
    }

    #[test]
    fn invalid_ruleset_keeps_last_good() {
        let mut b = ModelBuilder::new(Arc::new(Refuse));
        let mut i = inputs(SVC);
        i.rulesets[0]
            .object
            .files
            .insert("a.conf".into(), b"SecRuleEngine On".to_vec());
        let good = b.build(&i);
        assert_eq!(good.rulesets["baseline"].rules, 1);
        i.rulesets[0]
            .object
            .files
            .insert("bad.conf".into(), b"x".to_vec());
        let bad = b.build(&i);
        assert_eq!(
            bad.rulesets["baseline"].hash,
            good.rulesets["baseline"].hash
        );
        assert!(
            bad.problems[0].message.contains("bad.conf:3"),
            "{:?}",
            bad.problems
        );
        // Without a last good version the ruleset is left out.
        let fresh = ModelBuilder::new(Arc::new(Refuse)).build(&i);
        assert!(fresh.rulesets.is_empty());
    }
}
