//! The Kubernetes source against a fake API server (axum on 127.0.0.1:0) that
//! serves list and watch with resourceVersions for every watched kind, closes
//! watches on demand and answers `410 Gone` to a watch from a compacted
//! resourceVersion, forcing a relist. Objects are added, changed and deleted,
//! and the inputs (and the model built from them) follow.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use palisade_control_plane::k8s::WafMode;
use palisade_control_plane::model::{Model, ModelBuilder};
use palisade_control_plane::source::kube::KubeSource;
use palisade_control_plane::source::Inputs;
use palisade_control_plane::validate::AcceptAll;
use serde_json::{json, Value};
use tokio::sync::watch;

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    log: Vec<(u64, String, &'static str, Value)>,
    /// Watches from a resourceVersion below this get 410 Gone.
    min_rv: u64,
}

#[derive(Clone)]
struct Fake {
    store: Arc<Mutex<Store>>,
    /// Bumped on every change; a new "generation" (high bits) closes watches.
    tick: Arc<watch::Sender<(u64, u64)>>,
    lists: Arc<Mutex<BTreeMap<String, u32>>>,
}

const SERVICES: &str = "/api/v1/services";
const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const PODS: &str = "/api/v1/pods";
const NAMESPACES: &str = "/api/v1/namespaces";
const CONFIG_MAPS: &str = "/api/v1/configmaps";
const POLICIES: &str = "/apis/crd.projectcalico.org/v1/globalnetworkpolicies";
const TIERS: &str = "/apis/crd.projectcalico.org/v1/tiers";
const LAYERS: &str = "/apis/palisade.dev/v1/applicationlayers";
// GlobalAlerts are not served: the CRD counts as not installed.

impl Fake {
    fn new() -> Fake {
        let mut store = Store {
            rv: 1,
            ..Store::default()
        };
        for p in [
            SERVICES,
            SLICES,
            PODS,
            NAMESPACES,
            CONFIG_MAPS,
            POLICIES,
            TIERS,
            LAYERS,
        ] {
            store.objects.insert(p.to_string(), BTreeMap::new());
        }
        Fake {
            store: Arc::new(Mutex::new(store)),
            tick: Arc::new(watch::channel((0, 0)).0),
            lists: Arc::default(),
        }
    }

    fn key(obj: &Value) -> String {
        format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or("")
        )
    }

    fn apply(&self, path: &str, mut obj: Value) {
        let mut s = self.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = Fake::key(&obj);
        let existed = s
            .objects
            .get_mut(path)
            .unwrap()
            .insert(key, obj.clone())
            .is_some();
        s.log.push((
            rv,
            path.to_string(),
            if existed { "MODIFIED" } else { "ADDED" },
            obj,
        ));
        drop(s);
        self.tick.send_modify(|t| t.0 += 1);
    }

    fn delete(&self, path: &str, namespace: &str, name: &str) {
        let mut s = self.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        if let Some(mut obj) = s
            .objects
            .get_mut(path)
            .unwrap()
            .remove(&format!("{namespace}/{name}"))
        {
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.log.push((rv, path.to_string(), "DELETED", obj));
        }
        drop(s);
        self.tick.send_modify(|t| t.0 += 1);
    }

    /// Forgets history (watches from older versions get 410) and drops every open watch.
    fn compact_and_disconnect(&self) {
        let mut s = self.store.lock().unwrap();
        s.min_rv = s.rv + 1;
        s.log.clear();
        drop(s);
        self.tick.send_modify(|t| t.1 += 1);
    }

    fn list_count(&self, path: &str) -> u32 {
        self.lists.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn handle(State(fake): State<Fake>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    let q = query(&uri);
    let known = fake.store.lock().unwrap().objects.contains_key(&path);
    if !known {
        let status = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404,"message":"the server could not find the requested resource"});
        return (StatusCode::NOT_FOUND, axum::Json(status)).into_response();
    }
    if q.get("watch").map(String::as_str) != Some("true") {
        *fake.lists.lock().unwrap().entry(path.clone()).or_default() += 1;
        let s = fake.store.lock().unwrap();
        let items: Vec<Value> = s.objects[&path].values().cloned().collect();
        let body = json!({"apiVersion":"v1","kind":"List","metadata":{"resourceVersion": s.rv.to_string()},"items": items});
        return axum::Json(body).into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let gone = from < fake.store.lock().unwrap().min_rv;
    if gone {
        let ev = json!({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"Expired","code":410,"message":"too old resource version"}});
        return Body::from(format!("{ev}\n")).into_response();
    }
    let ticks = fake.tick.subscribe();
    let generation = ticks.borrow().1;
    let stream = futures::stream::unfold(
        (from, ticks, false),
        move |(mut cursor, mut ticks, done)| {
            let fake = fake.clone();
            let path = path.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    let pending: Vec<(u64, String)> = {
                        let s = fake.store.lock().unwrap();
                        s.log
                            .iter()
                            .filter(|(rv, p, _, _)| *rv > cursor && p == &path)
                            .map(|(rv, _, ty, obj)| {
                                (*rv, format!("{}\n", json!({"type": ty, "object": obj})))
                            })
                            .collect()
                    };
                    if let Some(last) = pending.last() {
                        cursor = last.0;
                        let text: String = pending.into_iter().map(|(_, t)| t).collect();
                        return Some((
                            Ok::<_, std::convert::Infallible>(Bytes::from(text)),
                            (cursor, ticks, false),
                        ));
                    }
                    let wait = tokio::time::timeout(Duration::from_secs(30), ticks.changed()).await;
                    if !matches!(wait, Ok(Ok(()))) || ticks.borrow().1 != generation {
                        return None;
                    }
                }
            }
        },
    );
    Body::from_stream(stream).into_response()
}

async fn start_fake() -> (Fake, SocketAddr, tokio::task::JoinHandle<()>) {
    let fake = Fake::new();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, addr, server)
}

fn service(name: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "bookinfo", "annotations": {"palisade.dev/waf": mode}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}
    })
}

/// Waits (bounded) until the inputs satisfy `pred`; returns the model built from them.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<Inputs>>,
    builder: &mut ModelBuilder,
    what: &str,
    pred: impl Fn(&Inputs, &Model) -> bool,
) -> Model {
    let start = Instant::now();
    loop {
        let inputs = rx.borrow_and_update().clone();
        if inputs.ready {
            let model = builder.build(&inputs);
            if pred(&inputs, &model) {
                return model;
            }
        }
        let left = Duration::from_secs(30).saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "inputs never reached: {what}");
        let _ = tokio::time::timeout(left, rx.changed()).await;
    }
}

fn mode_of(model: &Model, name: &str) -> Option<WafMode> {
    model
        .services
        .values()
        .find(|s| s.key.name == name)
        .map(|s| s.mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_source_follows_list_watch_and_410() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (fake, addr, server) = start_fake().await;
    fake.apply(NAMESPACES, json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bookinfo","labels":{"team":"books"}}}));
    fake.apply(SERVICES, service("productpage", "On"));
    fake.apply(SLICES, json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "productpage-x", "namespace": "bookinfo", "labels": {"kubernetes.io/service-name": "productpage"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080}],
        "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}]
    }));
    fake.apply(PODS, json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "productpage-1", "namespace": "bookinfo", "labels": {"app": "productpage", "version": "v1"}},
        "spec": {"serviceAccountName": "bookinfo-productpage", "containers": [{"name": "c"}]},
        "status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}]}
    }));
    fake.apply(POLICIES, json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "default.productpage-get"},
        "spec": {"tier": "default", "selector": "app == 'productpage'", "ingress": [{"action": "Allow", "http": {"methods": ["GET"]}}]}
    }));
    fake.apply(
        LAYERS,
        json!({
            "apiVersion": "palisade.dev/v1", "kind": "ApplicationLayer",
            "metadata": {"name": "default"},
            "spec": {"failureMode": "Allow", "bodyLimitBytes": 4096}
        }),
    );
    fake.apply(CONFIG_MAPS, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rules", "namespace": "palisade", "labels": {"palisade.dev/ruleset": "baseline"}},
        "data": {"rules.conf": "SecRuleEngine On"}
    }));

    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.connect_timeout = Some(Duration::from_secs(5));
    let client = kube::Client::try_from(config).unwrap();
    let (tx, mut rx) = watch::channel(Arc::new(Inputs::default()));
    let source = tokio::spawn(KubeSource::new(client, None, None).run(tx));
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));

    // Initial list.
    let model = wait_for(&mut rx, &mut builder, "productpage listed", |_, m| {
        mode_of(m, "productpage") == Some(WafMode::On)
    })
    .await;
    let pp = model.services.values().next().unwrap();
    assert_eq!(
        pp.ports[0].endpoints,
        ["10.1.0.5:9080".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(pp.service_account, "bookinfo-productpage");
    assert_eq!(pp.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(
        pp.namespace_labels.get("team").map(String::as_str),
        Some("books")
    );
    assert_eq!(pp.policies, ["default/default.productpage-get"]);
    assert!(model.settings.failure_mode_allow);
    assert_eq!(model.settings.body_limit_bytes, 4096);
    assert!(model.rulesets.contains_key("baseline"));
    assert_eq!(model.workloads.len(), 1);

    // Add, change, delete through the watch.
    fake.apply(SERVICES, service("www", "DetectionOnly"));
    wait_for(&mut rx, &mut builder, "www added", |_, m| {
        mode_of(m, "www") == Some(WafMode::DetectionOnly)
    })
    .await;
    fake.apply(SERVICES, service("productpage", "DetectionOnly"));
    wait_for(&mut rx, &mut builder, "productpage changed", |_, m| {
        mode_of(m, "productpage") == Some(WafMode::DetectionOnly)
    })
    .await;
    fake.delete(SERVICES, "bookinfo", "www");
    wait_for(&mut rx, &mut builder, "www deleted", |_, m| {
        mode_of(m, "www").is_none()
    })
    .await;
    assert_eq!(fake.list_count(SERVICES), 1, "no relist expected yet");

    // History is compacted and every watch dropped; meanwhile objects change.
    // The watchers reconnect from their last version, get 410 Gone, relist,
    // and the inputs reflect the new state (including the deletion missed).
    fake.compact_and_disconnect();
    fake.delete(SERVICES, "bookinfo", "productpage");
    fake.apply(SERVICES, service("reviews", "On"));
    fake.compact_and_disconnect();
    let model = wait_for(&mut rx, &mut builder, "relisted after 410", |i, m| {
        i.services.len() == 1 && mode_of(m, "reviews") == Some(WafMode::On)
    })
    .await;
    assert!(mode_of(&model, "productpage").is_none());
    assert!(fake.list_count(SERVICES) >= 2, "the watcher relisted");

    // Watching resumes normally after the relist.
    fake.apply(SERVICES, service("details", "Off"));
    wait_for(
        &mut rx,
        &mut builder,
        "details added after relist",
        |_, m| mode_of(m, "details") == Some(WafMode::Off),
    )
    .await;

    source.abort();
    server.abort();
}

/// Against the cluster of the current kubeconfig: the source lists everything
/// and publishes ready inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn kube_source_against_a_real_cluster() {
    let client = kube::Client::try_default()
        .await
        .expect("a kubeconfig or in-cluster config");
    let (tx, mut rx) = watch::channel(Arc::new(Inputs::default()));
    let source = tokio::spawn(KubeSource::new(client, None, None).run(tx));
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let model = wait_for(&mut rx, &mut builder, "cluster listed", |i, _| i.ready).await;
    eprintln!(
        "{} protected services, {} problems",
        model.services.len(),
        model.problems.len()
    );
    source.abort();
}
