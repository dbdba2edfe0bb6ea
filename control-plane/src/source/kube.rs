//! The Kubernetes source: kube-rs reflectors for Services, EndpointSlices,
//! Pods, Namespaces, ruleset ConfigMaps (label `palisade.dev/ruleset`),
//! Calico's GlobalNetworkPolicies and Tiers, and Palisade's ApplicationLayers
//! and GlobalAlerts. Every change (debounced briefly) publishes a new
//! [`Inputs`] made from the stores; nothing is published before every kind
//! has been listed once (a CRD that is not installed counts as listed and
//! empty), so a restarted control plane never serves a partial cluster.
//!
//! Watch restarts, `410 Gone` and relists are handled by kube-rs' watcher
//! with its default backoff.
//!
//! [`ProblemReporter`] turns model problems about Kubernetes objects into
//! Warning Events, and writes the ApplicationLayer's status conditions; only
//! while this replica leads (see [`crate::leader`]): a follower logs instead.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::manifest::ruleset_from_config_map;
use super::rulesets::{self, BASELINE_RULESET, CRS_RULESET};
use super::{Inputs, Origin, Problem, Sourced};
use crate::k8s::{ApplicationLayer, GlobalAlert, GlobalNetworkPolicy, Tier, LABEL_RULESET};
use crate::model::Model;

/// How long changes are gathered before a new [`Inputs`] is published.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Reads the cluster.
#[derive(Clone)]
pub struct KubeSource {
    client: kube::Client,
    crs_dir: Option<PathBuf>,
    modsecdefault: Option<PathBuf>,
}

impl Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("crs_dir", &self.crs_dir)
            .field("modsecdefault", &self.modsecdefault)
            .finish_non_exhaustive()
    }
}

/// One watched kind: its store and whether it has been listed.
struct Watched<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    ready: Arc<AtomicBool>,
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    /// Starts the reflector; `optional` kinds (CRDs) count as listed when the
    /// API says they do not exist.
    fn spawn(
        api: Api<K>,
        config: watcher::Config,
        optional: bool,
        changed: Arc<Notify>,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Watched<K> {
        let (store, writer) = reflector::store();
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        let kind = K::kind(&K::DynamicType::default()).to_string();
        tasks.push(tokio::spawn(async move {
            let stream = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) && !flag.swap(true, Ordering::Relaxed) {
                            debug!(%kind, "listed");
                        }
                        changed.notify_one();
                    }
                    Err(e) => {
                        let missing = matches!(&e, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404)
                            || matches!(&e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 404);
                        if optional && missing {
                            if !flag.swap(true, Ordering::Relaxed) {
                                info!(%kind, "not installed in the cluster; treated as empty");
                                changed.notify_one();
                            }
                        } else {
                            warn!(%kind, error = %e, "watch failed; retrying");
                        }
                    }
                }
            }
        }));
        Watched { store, ready }
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn objects(&self) -> Vec<K> {
        let mut out: Vec<K> = self.store.state().iter().map(|o| (**o).clone()).collect();
        out.sort_by_key(|o| (o.namespace(), o.name_any()));
        out
    }

    fn sourced(&self) -> Vec<Sourced<K>> {
        self.objects()
            .into_iter()
            .map(|o| Sourced {
                origin: Origin::Kubernetes {
                    kind: K::kind(&K::DynamicType::default()).to_string(),
                    namespace: o.namespace(),
                    name: o.name_any(),
                },
                object: o,
            })
            .collect()
    }
}

impl KubeSource {
    /// A source reading through `client`; `crs_dir` adds the `crs` ruleset.
    pub fn new(
        client: kube::Client,
        crs_dir: Option<PathBuf>,
        modsecdefault: Option<PathBuf>,
    ) -> KubeSource {
        KubeSource {
            client,
            crs_dir,
            modsecdefault,
        }
    }

    /// Watches the cluster and publishes inputs until the receivers are gone.
    pub async fn run(self, tx: watch::Sender<Arc<Inputs>>) {
        let c = self.client.clone();
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let cfg = watcher::Config::default;
        let n = &changed;
        let services =
            Watched::<Service>::spawn(Api::all(c.clone()), cfg(), false, n.clone(), &mut tasks);
        let slices = Watched::<EndpointSlice>::spawn(
            Api::all(c.clone()),
            cfg(),
            false,
            n.clone(),
            &mut tasks,
        );
        let pods = Watched::<Pod>::spawn(Api::all(c.clone()), cfg(), false, n.clone(), &mut tasks);
        let namespaces =
            Watched::<Namespace>::spawn(Api::all(c.clone()), cfg(), false, n.clone(), &mut tasks);
        let config_maps = Watched::<ConfigMap>::spawn(
            Api::all(c.clone()),
            cfg().labels(LABEL_RULESET),
            false,
            n.clone(),
            &mut tasks,
        );
        let policies = Watched::<GlobalNetworkPolicy>::spawn(
            Api::all(c.clone()),
            cfg(),
            true,
            n.clone(),
            &mut tasks,
        );
        let tiers = Watched::<Tier>::spawn(Api::all(c.clone()), cfg(), true, n.clone(), &mut tasks);
        let layers = Watched::<ApplicationLayer>::spawn(
            Api::all(c.clone()),
            cfg(),
            true,
            n.clone(),
            &mut tasks,
        );
        let alerts =
            Watched::<GlobalAlert>::spawn(Api::all(c.clone()), cfg(), true, n.clone(), &mut tasks);

        // The CRS ruleset (static files) is read once.
        let mut builtin = Vec::new();
        let mut builtin_problems = Vec::new();
        if let Some(dir) = &self.crs_dir {
            let default = self
                .modsecdefault
                .as_ref()
                .and_then(|p| std::fs::read(p).ok());
            match rulesets::load_crs(dir, default.as_deref()) {
                Ok(files) => builtin.push(Sourced {
                    origin: Origin::Builtin {
                        what: format!("CRS from {}", dir.display()),
                    },
                    object: files,
                }),
                Err(e) => builtin_problems.push(Problem {
                    origin: Origin::Builtin {
                        what: "PALISADE_CRS_DIR".into(),
                    },
                    kind: "Ruleset".into(),
                    name: CRS_RULESET.into(),
                    message: e.to_string(),
                }),
            }
        }

        let mut announced = false;
        loop {
            tokio::select! {
                _ = changed.notified() => {}
                _ = tx.closed() => break,
            }
            tokio::time::sleep(DEBOUNCE).await;
            let ready = services.ready()
                && slices.ready()
                && pods.ready()
                && namespaces.ready()
                && config_maps.ready()
                && policies.ready()
                && tiers.ready()
                && layers.ready()
                && alerts.ready();
            if !ready {
                continue;
            }
            let mut rulesets = builtin.clone();
            for cm in config_maps.objects() {
                if let Some(files) = ruleset_from_config_map(&cm) {
                    rulesets.push(Sourced {
                        origin: Origin::Kubernetes {
                            kind: "ConfigMap".into(),
                            namespace: cm.namespace(),
                            name: cm.name_any(),
                        },
                        object: files,
                    });
                }
            }
            let default_ruleset = if builtin.is_empty() {
                BASELINE_RULESET
            } else {
                CRS_RULESET
            }
            .to_string();
            let inputs = Inputs {
                ready: true,
                services: services.sourced(),
                endpoint_slices: slices.objects(),
                pods: pods.objects(),
                namespaces: namespaces.objects(),
                policies: policies.sourced(),
                tiers: tiers.sourced(),
                application_layers: layers.sourced(),
                alerts: alerts.sourced(),
                rulesets,
                default_ruleset,
                problems: builtin_problems.clone(),
            };
            if !announced {
                info!(
                    services = inputs.services.len(),
                    policies = inputs.policies.len(),
                    "cluster state listed"
                );
                announced = true;
            }
            if tx.send(Arc::new(inputs)).is_err() {
                break;
            }
        }
        for t in tasks {
            t.abort();
        }
    }
}

/// Reports model problems about Kubernetes objects as Warning Events (once per
/// problem) and keeps the ApplicationLayer's `RulesetsValid` condition current.
pub struct ProblemReporter {
    client: kube::Client,
    recorder: Recorder,
    leader: watch::Receiver<bool>,
}

impl Debug for ProblemReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProblemReporter").finish_non_exhaustive()
    }
}

fn reference(origin: &Origin) -> Option<ObjectReference> {
    let Origin::Kubernetes {
        kind,
        namespace,
        name,
    } = origin
    else {
        return None;
    };
    let api_version = match kind.as_str() {
        "GlobalNetworkPolicy" | "Tier" => "crd.projectcalico.org/v1",
        "ApplicationLayer" | "GlobalAlert" => "palisade.dev/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        _ => "v1",
    };
    Some(ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.clone()),
        name: Some(name.clone()),
        namespace: namespace.clone(),
        ..Default::default()
    })
}

impl ProblemReporter {
    /// A reporter writing through `client` (always: a single writer).
    pub fn new(client: kube::Client) -> ProblemReporter {
        ProblemReporter::with_leader(client, crate::leader::always_leader())
    }

    /// A reporter writing through `client` while `leader` says `true`; a
    /// follower logs what it would have written.
    pub fn with_leader(client: kube::Client, leader: watch::Receiver<bool>) -> ProblemReporter {
        let recorder = Recorder::new(client.clone(), Reporter::from("palisade-control-plane"));
        ProblemReporter {
            client,
            recorder,
            leader,
        }
    }

    /// Follows `models` (and leadership) until the models' sender is gone.
    pub async fn run(mut self, mut models: watch::Receiver<Option<Arc<Model>>>) {
        let mut reported: BTreeSet<Problem> = BTreeSet::new();
        let mut last_condition: Option<(String, String)> = None;
        let mut was_leader = false;
        let mut leader_open = true;
        loop {
            let leading = *self.leader.borrow_and_update();
            if leading != was_leader {
                // A new leader (re)writes everything current; a former leader
                // starts logging from scratch.
                reported.clear();
                last_condition = None;
                was_leader = leading;
            }
            let model = models.borrow_and_update().clone();
            if let Some(model) = model {
                let now: BTreeSet<Problem> = model.problems.iter().cloned().collect();
                for p in now.difference(&reported) {
                    let Some(object) = reference(&p.origin) else {
                        continue;
                    };
                    if !leading {
                        info!(
                            object = %p.origin,
                            problem = %p.message,
                            "not the leader: Warning Event not written"
                        );
                        continue;
                    }
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "Rejected".into(),
                        note: Some(p.message.chars().take(1000).collect()),
                        action: "Validate".into(),
                        secondary: None,
                    };
                    if let Err(e) = self.recorder.publish(&event, &object).await {
                        debug!(error = %e, "cannot publish event");
                    }
                }
                reported = now;
                let ruleset_problems: Vec<&Problem> = model
                    .problems
                    .iter()
                    .filter(|p| p.kind == "Ruleset")
                    .collect();
                let condition = if ruleset_problems.is_empty() {
                    ("True".to_string(), "every ruleset compiles".to_string())
                } else {
                    let first = ruleset_problems[0];
                    (
                        "False".to_string(),
                        format!("ruleset {}: {}", first.name, first.message),
                    )
                };
                if last_condition.as_ref() != Some(&condition) {
                    if leading {
                        self.write_condition(&condition.0, &condition.1).await;
                    } else {
                        info!(
                            status = %condition.0,
                            message = %condition.1,
                            "not the leader: ApplicationLayer RulesetsValid condition not written"
                        );
                    }
                    last_condition = Some(condition);
                }
            }
            tokio::select! {
                changed = models.changed() => if changed.is_err() { return },
                changed = self.leader.changed(), if leader_open => {
                    // A closed leadership channel keeps its last value.
                    if changed.is_err() {
                        leader_open = false;
                    }
                }
            }
        }
    }

    async fn write_condition(&self, status: &str, message: &str) {
        let api: Api<ApplicationLayer> = Api::all(self.client.clone());
        let Ok(list) = api.list(&Default::default()).await else {
            return;
        };
        let now = jiff_now();
        for layer in list.items {
            let name = layer.name_any();
            let patch = serde_json::json!({
                "status": {
                    "observedGeneration": layer.metadata.generation,
                    "conditions": [{
                        "type": "RulesetsValid",
                        "status": status,
                        "reason": if status == "True" { "Compiled" } else { "CompileError" },
                        "message": message,
                        "lastTransitionTime": now,
                        "observedGeneration": layer.metadata.generation,
                    }]
                }
            });
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                debug!(%name, error = %e, "cannot write ApplicationLayer status");
            }
        }
    }
}

/// Current time in RFC 3339 (seconds).
fn jiff_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    let secs = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    secs.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_shape() {
        let t = super::jiff_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
