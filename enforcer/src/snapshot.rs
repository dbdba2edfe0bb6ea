//! The snapshot: everything the enforcer knows, as one immutable value.
//!
//! A [`Snapshot`] is built from a [`StateSpec`] off the request path (ruleset
//! compilation takes a while), reusing compiled rulesets whose content hash
//! did not change ([`RulesetCache`]), then published through a
//! [`SnapshotStore`] (`ArcSwapOption`): Check handlers load the current one
//! without locks, and a failed build leaves the previous snapshot in place.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use palisade_alp::{Identity, PolicyError, PolicySet};
use palisade_waf::{LoadError, Ruleset};

use crate::state::{SettingsSpec, StateSpec, WafMode};

/// Settings as the request path uses them.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Whether the WAF runs at all.
    pub waf_enabled: bool,
    /// Whether HTTP policy is evaluated.
    pub alp_enabled: bool,
    /// Mode of services that do not set one.
    pub default_waf_mode: WafMode,
    /// Allow requests the enforcer cannot decide.
    pub failure_mode_allow: bool,
    /// Allow requests for unknown services.
    pub unknown_service_allow: bool,
    /// The body limit the control plane configures Envoy's `with_request_body`
    /// with (`None` = unset). The enforcer inspects what Envoy sends; the
    /// ruleset's own `SecRequestBodyLimit` and its action apply to it.
    pub body_limit_bytes: Option<usize>,
    /// Whether events are written and reported.
    pub collect_logs: bool,
    /// Event rate-limit window (`None` = no limit).
    pub log_interval: Option<Duration>,
    /// Events per window (0 = no limit).
    pub log_requests_per_interval: u32,
}

impl From<&SettingsSpec> for Settings {
    fn from(s: &SettingsSpec) -> Self {
        Settings {
            waf_enabled: s.waf_enabled,
            alp_enabled: s.alp_enabled,
            default_waf_mode: s.default_waf_mode.unwrap_or(WafMode::DetectionOnly),
            failure_mode_allow: s.failure_mode_allow,
            unknown_service_allow: s.unknown_service_allow,
            body_limit_bytes: match s.body_limit_bytes {
                0 => None,
                n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            },
            collect_logs: s.collect_logs,
            log_interval: match s.log_interval_seconds {
                0 => None,
                n => Some(Duration::from_secs(u64::from(n))),
            },
            log_requests_per_interval: s.log_requests_per_interval,
        }
    }
}

/// A compiled ruleset and the hash it was compiled from.
#[derive(Clone, Debug)]
pub struct CompiledRuleset {
    /// Content hash.
    pub hash: String,
    /// The compiled rules.
    pub ruleset: Ruleset,
}

/// A protected service.
#[derive(Debug)]
pub struct Service {
    /// `namespace/name`.
    pub key: String,
    /// WAF mode in effect.
    pub mode: WafMode,
    /// Ruleset name.
    pub ruleset_name: String,
    /// Compiled ruleset (`None` when the mode is Off or the WAF is disabled).
    pub ruleset: Option<Ruleset>,
    /// Identity policies select on.
    pub identity: Identity,
}

/// A workload from the workload table.
#[derive(Debug)]
pub struct Workload {
    /// Identity (namespace, pod, service account, labels).
    pub identity: Identity,
}

/// Why a state could not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A ruleset failed to compile.
    #[error("ruleset `{name}`: {source}")]
    Ruleset {
        /// Ruleset name.
        name: String,
        /// The compile errors.
        #[source]
        source: LoadError,
    },
    /// Compiling a ruleset panicked (an engine bug); the state is rejected.
    #[error("ruleset `{name}`: compilation failed unexpectedly: {message}")]
    RulesetPanicked {
        /// Ruleset name.
        name: String,
        /// The panic message.
        message: String,
    },
    /// A service names a ruleset the state does not hold.
    #[error("service `{service}` uses ruleset `{ruleset}`, which the state does not contain")]
    MissingRuleset {
        /// `namespace/name`.
        service: String,
        /// Ruleset name (empty when no default ruleset is set).
        ruleset: String,
    },
    /// Policies failed validation.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// An IP address that does not parse.
    #[error("{context}: invalid ip address `{address}`")]
    Address {
        /// Where.
        context: String,
        /// The text.
        address: String,
    },
    /// Two services with the same namespace and name, or two rulesets with one name.
    #[error("duplicate {0}")]
    Duplicate(String),
}

/// Everything the enforcer knows, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Opaque version from the control plane.
    pub version: String,
    /// Settings.
    pub settings: Settings,
    /// HTTP policy.
    pub policies: PolicySet,
    services: HashMap<String, Arc<Service>>,
    by_address: HashMap<(IpAddr, u16), Arc<Service>>,
    by_ip: HashMap<IpAddr, Arc<Service>>,
    workloads: HashMap<IpAddr, Arc<Workload>>,
    rulesets: BTreeMap<String, CompiledRuleset>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

fn parse_ip(context: impl Fn() -> String, text: &str) -> Result<IpAddr, BuildError> {
    text.trim().parse().map_err(|_| BuildError::Address {
        context: context(),
        address: text.to_string(),
    })
}

impl Snapshot {
    /// Builds a snapshot, reusing compiled rulesets from `cache` whose hash is
    /// unchanged (and adding new ones to it). CPU-heavy: call it off the
    /// request path.
    pub fn build(state: &StateSpec, cache: &RulesetCache) -> Result<Snapshot, BuildError> {
        let settings = Settings::from(&state.settings);
        let policies = PolicySet::compile(&state.tiers)?;

        let mut rulesets = BTreeMap::new();
        for source in &state.rulesets {
            if rulesets.contains_key(&source.name) {
                return Err(BuildError::Duplicate(format!("ruleset `{}`", source.name)));
            }
            let cached = (!source.hash.is_empty())
                .then(|| cache.get(&source.hash))
                .flatten();
            let ruleset = match cached {
                Some(r) => r,
                None => {
                    let files = source.files.clone();
                    let ruleset = std::panic::catch_unwind(move || Ruleset::load_files(files))
                        .map_err(|p| BuildError::RulesetPanicked {
                            name: source.name.clone(),
                            message: panic_message(p.as_ref()),
                        })?
                        .map_err(|e| BuildError::Ruleset {
                            name: source.name.clone(),
                            source: e,
                        })?;
                    if !source.hash.is_empty() {
                        cache.insert(&source.hash, &ruleset);
                    }
                    ruleset
                }
            };
            rulesets.insert(
                source.name.clone(),
                CompiledRuleset {
                    hash: source.hash.clone(),
                    ruleset,
                },
            );
        }

        let default_ruleset = &state.settings.default_ruleset;
        let mut services = HashMap::new();
        let mut by_address = HashMap::new();
        let mut by_ip = HashMap::new();
        for s in &state.services {
            let key = format!("{}/{}", s.namespace, s.name);
            let mode = s.waf_mode.unwrap_or(settings.default_waf_mode);
            let ruleset_name = if s.ruleset.is_empty() {
                default_ruleset.clone()
            } else {
                s.ruleset.clone()
            };
            let needs_rules = settings.waf_enabled && mode != WafMode::Off;
            let ruleset = match rulesets.get(&ruleset_name) {
                Some(c) => Some(c.ruleset.clone()),
                None if needs_rules => {
                    return Err(BuildError::MissingRuleset {
                        service: key,
                        ruleset: ruleset_name,
                    })
                }
                None => None,
            };
            let identity = Identity::new(
                s.namespace.clone(),
                s.name.clone(),
                s.service_account.clone(),
                s.labels.clone(),
                s.namespace_labels.clone(),
                BTreeMap::new(),
            );
            let service = Arc::new(Service {
                key: key.clone(),
                mode,
                ruleset_name,
                ruleset: ruleset.filter(|_| needs_rules),
                identity,
            });
            for ip in &s.cluster_ips {
                let ip = parse_ip(|| format!("service `{key}`"), ip)?;
                if s.ports.is_empty() {
                    by_ip.insert(ip, service.clone());
                }
                for port in &s.ports {
                    by_address.insert((ip, *port), service.clone());
                }
            }
            if services.insert(key.clone(), service).is_some() {
                return Err(BuildError::Duplicate(format!("service `{key}`")));
            }
        }

        let mut workloads = HashMap::new();
        for w in &state.workloads {
            let workload = Arc::new(Workload {
                identity: Identity::new(
                    w.namespace.clone(),
                    w.pod.clone(),
                    w.service_account.clone(),
                    w.labels.clone(),
                    w.namespace_labels.clone(),
                    w.service_account_labels.clone(),
                ),
            });
            for ip in &w.ips {
                let ip = parse_ip(|| format!("workload `{}/{}`", w.namespace, w.pod), ip)?;
                workloads.insert(ip, workload.clone());
            }
        }

        Ok(Snapshot {
            version: state.version.clone(),
            settings,
            policies,
            services,
            by_address,
            by_ip,
            workloads,
            rulesets,
        })
    }

    /// The service `namespace/name`.
    pub fn service(&self, key: &str) -> Option<&Arc<Service>> {
        self.services.get(key)
    }

    /// The service whose cluster IP and port are the destination address.
    pub fn service_at(&self, ip: IpAddr, port: u16) -> Option<&Arc<Service>> {
        self.by_address
            .get(&(ip, port))
            .or_else(|| self.by_ip.get(&ip))
    }

    /// The workload with this IP.
    pub fn workload(&self, ip: IpAddr) -> Option<&Arc<Workload>> {
        self.workloads.get(&ip)
    }

    /// Number of services.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Compiled rulesets by name.
    pub fn rulesets(&self) -> &BTreeMap<String, CompiledRuleset> {
        &self.rulesets
    }
}

/// Compiled rulesets by content hash, so a ruleset that comes back (a
/// rollback, or alternating versions) is not compiled again. Holds the
/// [`RulesetCache::CAPACITY`] most recently used.
#[derive(Debug, Default)]
pub struct RulesetCache {
    entries: Mutex<CacheEntries>,
}

/// A use clock, and each hash's ruleset with the clock value of its last use.
#[derive(Debug, Default)]
struct CacheEntries {
    clock: u64,
    map: HashMap<String, (u64, Ruleset)>,
}

impl RulesetCache {
    /// Most rulesets kept.
    pub const CAPACITY: usize = 8;

    /// An empty cache.
    pub fn new() -> RulesetCache {
        RulesetCache::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The ruleset compiled from files with this hash, if cached.
    pub fn get(&self, hash: &str) -> Option<Ruleset> {
        let mut guard = self.lock();
        let CacheEntries { clock, map } = &mut *guard;
        *clock += 1;
        let now = *clock;
        map.get_mut(hash).map(|(used, r)| {
            *used = now;
            r.clone()
        })
    }

    /// Caches a ruleset, evicting the least recently used beyond capacity.
    pub fn insert(&self, hash: &str, ruleset: &Ruleset) {
        let mut guard = self.lock();
        let CacheEntries { clock, map } = &mut *guard;
        *clock += 1;
        map.insert(hash.to_string(), (*clock, ruleset.clone()));
        while map.len() > Self::CAPACITY {
            let oldest = map
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
    }

    /// Number of cached rulesets.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The active snapshot, swapped atomically.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: ArcSwapOption<Snapshot>,
}

impl SnapshotStore {
    /// An empty store (no snapshot yet).
    pub fn new() -> SnapshotStore {
        SnapshotStore::default()
    }

    /// The active snapshot, if any.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The active snapshot without touching its reference count (the cheap
    /// load for the request path; hold the guard only while deciding).
    pub fn current(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// Publishes a new snapshot.
    pub fn store(&self, snapshot: Arc<Snapshot>) {
        self.current.store(Some(snapshot));
    }

    /// The active version, if any.
    pub fn version(&self) -> Option<String> {
        self.current.load().as_ref().map(|s| s.version.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ServiceSpec;

    fn service(ns: &str, name: &str, mode: Option<WafMode>) -> ServiceSpec {
        ServiceSpec {
            namespace: ns.into(),
            name: name.into(),
            waf_mode: mode,
            cluster_ips: vec!["10.96.0.10".into()],
            ports: vec![80],
            ..Default::default()
        }
    }

    #[test]
    fn builds_and_indexes_services_and_workloads() {
        let state = StateSpec {
            version: "1".into(),
            settings: SettingsSpec {
                waf_enabled: false,
                ..Default::default()
            },
            services: vec![service("shop", "web", Some(WafMode::On)), {
                let mut s = service("shop", "any-port", None);
                s.cluster_ips = vec!["10.96.0.11".into()];
                s.ports.clear();
                s
            }],
            workloads: vec![crate::state::WorkloadSpec {
                ips: vec!["10.1.0.5".into()],
                namespace: "clients".into(),
                pod: "c1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let snap = Snapshot::build(&state, &RulesetCache::new()).expect("builds");
        assert_eq!(snap.service_count(), 2);
        let web = snap.service("shop/web").expect("web");
        assert_eq!(web.mode, WafMode::On);
        assert!(web.ruleset.is_none(), "waf disabled: no ruleset needed");
        let ip: IpAddr = "10.96.0.10".parse().unwrap();
        assert_eq!(
            snap.service_at(ip, 80).map(|s| s.key.as_str()),
            Some("shop/web")
        );
        assert!(snap.service_at(ip, 81).is_none());
        let ip2: IpAddr = "10.96.0.11".parse().unwrap();
        assert_eq!(
            snap.service_at(ip2, 1234).map(|s| s.key.as_str()),
            Some("shop/any-port")
        );
        let w = snap
            .workload("10.1.0.5".parse().unwrap())
            .expect("workload");
        assert_eq!(w.identity.name(), "c1");
    }

    #[test]
    fn rejects_bad_states() {
        let missing_ruleset = StateSpec {
            services: vec![service("shop", "web", Some(WafMode::On))],
            ..Default::default()
        };
        assert!(matches!(
            Snapshot::build(&missing_ruleset, &RulesetCache::new()),
            Err(BuildError::MissingRuleset { .. })
        ));
        let bad_ip = StateSpec {
            services: vec![{
                let mut s = service("shop", "web", Some(WafMode::Off));
                s.cluster_ips = vec!["10.0.0.300".into()];
                s
            }],
            ..Default::default()
        };
        assert!(matches!(
            Snapshot::build(&bad_ip, &RulesetCache::new()),
            Err(BuildError::Address { .. })
        ));
        let dup = StateSpec {
            services: vec![
                service("shop", "web", Some(WafMode::Off)),
                service("shop", "web", Some(WafMode::Off)),
            ],
            ..Default::default()
        };
        assert!(matches!(
            Snapshot::build(&dup, &RulesetCache::new()),
            Err(BuildError::Duplicate(_))
        ));
        let bad_policy = StateSpec {
            tiers: vec![palisade_alp::TierSpec {
                name: "t".into(),
                default_action: Some("Allow".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            Snapshot::build(&bad_policy, &RulesetCache::new()),
            Err(BuildError::Policy(_))
        ));
    }

    fn with_ruleset(hash: &str, text: &str) -> StateSpec {
        StateSpec {
            version: hash.into(),
            settings: SettingsSpec {
                default_ruleset: "r".into(),
                ..Default::default()
            },
            services: vec![service("shop", "web", Some(WafMode::On))],
            rulesets: vec![crate::state::RulesetSource {
                name: "r".into(),
                hash: hash.into(),
                files: [("rules.conf".to_string(), text.as_bytes().to_vec())].into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn compiles_rulesets_and_reuses_them_by_hash() {
        let cache = RulesetCache::new();
        let good = "SecRuleEngine On\nSecRule ARGS \"@contains x\" \"id:1,phase:1,deny\"\n";
        let snap = Snapshot::build(&with_ruleset("h1", good), &cache).expect("builds");
        assert!(snap
            .service("shop/web")
            .and_then(|s| s.ruleset.as_ref())
            .is_some());
        assert_eq!(cache.len(), 1);
        // Same hash: the cached ruleset is used, the files are not compiled again.
        let garbage = "this is not seclang";
        assert!(Snapshot::build(&with_ruleset("h1", garbage), &cache).is_ok());
        // New hash, broken files: rejected with the file and line.
        let err = Snapshot::build(&with_ruleset("h2", garbage), &cache).expect_err("rejected");
        let text = err.to_string();
        assert!(
            text.contains("ruleset `r`") && text.contains("rules.conf"),
            "{text}"
        );
        // No hash: always compiled.
        assert!(Snapshot::build(&with_ruleset("", garbage), &cache).is_err());
    }

    #[test]
    fn ruleset_cache_evicts_the_least_recently_used() {
        let cache = RulesetCache::new();
        let r = Ruleset::from_text("SecRuleEngine On").expect("compiles");
        for i in 0..RulesetCache::CAPACITY {
            cache.insert(&format!("h{i}"), &r);
        }
        assert!(cache.get("h0").is_some(), "touch h0");
        cache.insert("new", &r);
        assert_eq!(cache.len(), RulesetCache::CAPACITY);
        assert!(cache.get("h0").is_some());
        assert!(cache.get("h1").is_none(), "h1 was the least recently used");
        assert!(cache.get("new").is_some());
    }

    #[test]
    fn store_swaps() {
        let store = SnapshotStore::new();
        assert!(store.load().is_none());
        let snap = Snapshot::build(
            &StateSpec {
                version: "v1".into(),
                ..Default::default()
            },
            &RulesetCache::new(),
        )
        .expect("builds");
        store.store(Arc::new(snap));
        assert_eq!(store.version().as_deref(), Some("v1"));
    }
}
