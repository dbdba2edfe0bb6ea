//! Leader election against a fake API server (axum on 127.0.0.1:0) that
//! serves one `coordination.k8s.io/v1` Lease with GET, POST (create) and PUT
//! (replace), keeps a resourceVersion and answers `409 Conflict` to a replace
//! carrying a stale one (and to a create of an existing Lease). It can also be
//! switched "down" (every request gets 503). Every other request (Events,
//! ApplicationLayer list and status) is recorded, so the problem reporter can
//! be shown to write only while it leads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use palisade_control_plane::leader::{LeaderElection, LeaderElector, LeaseConfig};
use palisade_control_plane::model::Model;
use palisade_control_plane::source::kube::ProblemReporter;
use palisade_control_plane::source::{Origin, Problem};
use serde_json::{json, Value};
use tokio::sync::watch;

const NAMESPACE: &str = "palisade";
const LEASE: &str = "palisade-control-plane";

#[derive(Default)]
struct Store {
    rv: u64,
    lease: Option<Value>,
}

#[derive(Clone, Default)]
struct Fake {
    store: Arc<Mutex<Store>>,
    down: Arc<AtomicBool>,
    /// The next replace first loses a race: another replica renews the Lease
    /// (new resourceVersion) just before it is applied.
    race: Arc<AtomicBool>,
    /// Requests other than the Lease's: (method, path).
    writes: Arc<Mutex<Vec<(Method, String)>>>,
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "message": message, "code": code.as_u16()
        })),
    )
        .into_response()
}

impl Fake {
    fn unavailable(&self) -> Option<Response> {
        self.down.load(Ordering::SeqCst).then(|| {
            status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "down",
            )
        })
    }

    fn lease(&self) -> Option<Value> {
        self.store.lock().unwrap().lease.clone()
    }

    fn holder(&self) -> Option<String> {
        self.lease()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }
}

async fn get_lease(State(f): State<Fake>, Path((ns, name)): Path<(String, String)>) -> Response {
    if let Some(r) = f.unavailable() {
        return r;
    }
    match f.lease() {
        Some(l) if ns == NAMESPACE && name == LEASE => Json(l).into_response(),
        _ => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
    }
}

async fn create_lease(
    State(f): State<Fake>,
    Path(ns): Path<String>,
    Json(mut body): Json<Value>,
) -> Response {
    if let Some(r) = f.unavailable() {
        return r;
    }
    if ns != NAMESPACE || body["metadata"]["name"] != LEASE {
        return status(StatusCode::FORBIDDEN, "Forbidden", "only the one lease");
    }
    let mut s = f.store.lock().unwrap();
    if s.lease.is_some() {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            "lease already exists",
        );
    }
    s.rv += 1;
    body["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    body["metadata"]["namespace"] = json!(NAMESPACE);
    s.lease = Some(body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn replace_lease(
    State(f): State<Fake>,
    Path((ns, name)): Path<(String, String)>,
    Json(mut body): Json<Value>,
) -> Response {
    if let Some(r) = f.unavailable() {
        return r;
    }
    let mut s = f.store.lock().unwrap();
    if f.race.swap(false, Ordering::SeqCst) {
        if let Some(lease) = s.lease.as_mut() {
            lease["spec"]["holderIdentity"] = json!("replica-x");
            lease["spec"]["leaseDurationSeconds"] = json!(3600);
            lease["spec"]["renewTime"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
        }
        s.rv += 1;
        let rv = s.rv.to_string();
        if let Some(lease) = s.lease.as_mut() {
            lease["metadata"]["resourceVersion"] = json!(rv);
        }
    }
    let Some(current) = s.lease.clone() else {
        return status(StatusCode::NOT_FOUND, "NotFound", "lease not found");
    };
    if ns != NAMESPACE || name != LEASE {
        return status(StatusCode::NOT_FOUND, "NotFound", "lease not found");
    }
    let Some(sent) = body["metadata"]["resourceVersion"].as_str() else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "this fake requires a resourceVersion",
        );
    };
    if Some(sent) != current["metadata"]["resourceVersion"].as_str() {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified",
        );
    }
    s.rv += 1;
    body["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    s.lease = Some(body.clone());
    Json(body).into_response()
}

const LAYER: &str = r#"{"apiVersion": "palisade.dev/v1", "kind": "ApplicationLayer",
    "metadata": {"name": "default", "generation": 1, "resourceVersion": "5"},
    "spec": {"failureMode": "Allow", "bodyLimitBytes": 4096}}"#;

/// Everything but the Lease: records the request and answers plausibly.
async fn other(State(f): State<Fake>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    f.writes
        .lock()
        .unwrap()
        .push((method.clone(), path.clone()));
    let layer: Value = serde_json::from_str(LAYER).unwrap();
    if method == Method::GET && path == "/apis/palisade.dev/v1/applicationlayers" {
        return Json(json!({
            "apiVersion": "palisade.dev/v1", "kind": "ApplicationLayerList",
            "metadata": {"resourceVersion": "5"}, "items": [layer]
        }))
        .into_response();
    }
    if path.ends_with("/status") {
        return Json(layer).into_response();
    }
    // Events: echo what was sent.
    let mut echo: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if echo.is_object() {
        echo["metadata"]["resourceVersion"] = json!("1");
    }
    (StatusCode::CREATED, Json(echo)).into_response()
}

async fn serve(fake: Fake) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/:ns/leases/:name",
            get(get_lease).put(replace_lease),
        )
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/:ns/leases",
            post(create_lease),
        )
        .fallback(other)
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

fn client(addr: SocketAddr) -> kube::Client {
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.default_namespace = "elsewhere".into();
    kube::Client::try_from(config).unwrap()
}

fn elector(addr: SocketAddr, identity: &str) -> LeaderElection {
    let client = client(addr);
    let lease = LeaseConfig {
        name: LEASE.into(),
        namespace: Some(NAMESPACE.into()),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
    };
    LeaderElector::new(client, lease).spawn()
}

/// Polls `cond` every 20 ms for at most `limit`; panics with `what` otherwise.
async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_leader_then_takeover_after_expiry() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    let a = elector(addr, "replica-a");
    let b = elector(addr, "replica-b");

    wait_until("a leader", Duration::from_secs(30), || {
        a.is_leader() || b.is_leader()
    })
    .await;
    // Several renewal periods: never two leaders, and the holder is the leader.
    for _ in 0..100 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (leader, follower, follower_id) = if a.is_leader() {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    assert!(leader.is_leader(), "leadership changed without a failure");
    assert!(!follower.is_leader());
    let first = fake.holder().unwrap();
    assert_ne!(first, follower_id);
    let lease = fake.lease().unwrap();
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
    assert!(lease["spec"]["renewTime"].is_string(), "{lease}");

    // The leader stops renewing; the follower takes over once it expires.
    let mut rx = follower.receiver();
    drop(leader);
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| *l))
        .await
        .expect("follower took over")
        .unwrap();
    assert_eq!(fake.holder().as_deref(), Some(follower_id));
    let lease = fake.lease().unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");

    drop(follower);
    server.abort();
}

#[tokio::test]
async fn leader_gives_up_when_it_cannot_renew_and_returns() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    let a = elector(addr, "replica-a");
    let mut rx = a.receiver();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| *l))
        .await
        .expect("sole replica leads")
        .unwrap();

    fake.down.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| !*l))
        .await
        .expect("leadership given up while the API is down")
        .unwrap();

    fake.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| *l))
        .await
        .expect("leadership back once the API answers")
        .unwrap();
    assert_eq!(fake.holder().as_deref(), Some("replica-a"));

    drop(a);
    server.abort();
}

#[tokio::test]
async fn stale_lease_of_a_gone_replica_is_taken_over_and_fresh_one_is_not() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let old = now
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(60))
        .unwrap();
    // Fresh for an hour: held by someone else, never taken.
    {
        let mut s = fake.store.lock().unwrap();
        s.rv = 7;
        s.lease = Some(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NAMESPACE, "resourceVersion": "7"},
            "spec": {"holderIdentity": "replica-old", "leaseDurationSeconds": 3600,
                     "renewTime": old.to_string(), "leaseTransitions": 4}
        }));
    }
    let a = elector(addr, "replica-a");
    // A few rounds (period 2/3 s) while the lease is fresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!a.is_leader());
    assert_eq!(fake.holder().as_deref(), Some("replica-old"));

    // Expired: renewed 60 s ago with a 10 s duration.
    {
        let mut s = fake.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv.to_string();
        let lease = s.lease.as_mut().unwrap();
        lease["spec"]["leaseDurationSeconds"] = json!(10);
        lease["metadata"]["resourceVersion"] = json!(rv);
    }
    let mut rx = a.receiver();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| *l))
        .await
        .expect("expired lease taken over")
        .unwrap();
    let lease = fake.lease().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    assert_eq!(lease["spec"]["leaseTransitions"], 5);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);

    drop(a);
    server.abort();
}

#[tokio::test]
async fn a_lost_race_is_a_conflict_and_the_winner_keeps_the_lease() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    {
        let mut s = fake.store.lock().unwrap();
        s.rv = 3;
        s.lease = Some(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NAMESPACE, "resourceVersion": "3"},
            "spec": {"holderIdentity": "replica-old", "leaseDurationSeconds": 1,
                     "renewTime": "2020-01-01T00:00:00Z"}
        }));
    }
    fake.race.store(true, Ordering::SeqCst);
    let a = elector(addr, "replica-a");
    let rx = a.receiver();
    // The takeover of the expired lease meets the race and gets 409.
    wait_until("the racing replace", Duration::from_secs(30), || {
        !fake.race.load(Ordering::SeqCst)
    })
    .await;
    // Later rounds see the winner's fresh lease and follow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!a.is_leader());
    assert!(!rx.has_changed().unwrap(), "never leader, not even briefly");
    assert_eq!(fake.holder().as_deref(), Some("replica-x"));

    drop(a);
    server.abort();
}

fn problem(kind: &str, name: &str, message: &str) -> Problem {
    Problem {
        origin: Origin::Kubernetes {
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        },
        kind: kind.into(),
        name: name.into(),
        message: message.into(),
    }
}

fn model(problems: Vec<Problem>) -> Option<Arc<Model>> {
    Some(Arc::new(Model {
        version: format!("v{}", problems.len()),
        problems,
        ..Model::default()
    }))
}

#[tokio::test]
async fn reporter_writes_only_while_leading() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    let (lead_tx, lead_rx) = watch::channel(false);
    let (models_tx, models_rx) = watch::channel(model(vec![problem(
        "GlobalNetworkPolicy",
        "default.bad",
        "ingress rule 1: bad",
    )]));
    let reporter = tokio::spawn(ProblemReporter::with_leader(client(addr), lead_rx).run(models_rx));

    // A follower writes nothing (checked after it had time to act).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.writes.lock().unwrap().is_empty(), "follower wrote");

    // Leading: the Event and the ApplicationLayer condition are written.
    lead_tx.send_replace(true);
    let wrote = |f: &Fake, method: Method, suffix: &str| {
        f.writes
            .lock()
            .unwrap()
            .iter()
            .any(|(m, p)| *m == method && p.ends_with(suffix))
    };
    wait_until("Event and status written", Duration::from_secs(30), || {
        wrote(&fake, Method::POST, "/events")
            && wrote(&fake, Method::PATCH, "/applicationlayers/default/status")
    })
    .await;

    // Following again: a new problem is only logged.
    lead_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.writes.lock().unwrap().clear();
    models_tx.send_replace(model(vec![
        problem("GlobalNetworkPolicy", "default.bad", "ingress rule 1: bad"),
        problem("Ruleset", "crs", "rules.conf:3: unknown operator"),
    ]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        fake.writes.lock().unwrap().is_empty(),
        "former leader wrote"
    );

    drop(models_tx);
    tokio::time::timeout(Duration::from_secs(30), reporter)
        .await
        .expect("reporter ends with its models")
        .unwrap();
    server.abort();
}

#[tokio::test]
async fn stepping_down_releases_the_lease_for_the_next_replica() {
    let fake = Fake::default();
    let (addr, server) = serve(fake.clone()).await;
    let a = elector(addr, "replica-a");
    let mut ra = a.receiver();
    tokio::time::timeout(Duration::from_secs(30), ra.wait_for(|l| *l))
        .await
        .expect("replica-a leads")
        .unwrap();
    let b = elector(addr, "replica-b");
    assert_eq!(fake.holder().as_deref(), Some("replica-a"));

    // Stepping down publishes "not leader" and clears the holder before it
    // returns; the Lease stays, with a one-second duration.
    a.step_down().await;
    assert!(!*ra.borrow(), "still leading after stepping down");
    let lease = fake.lease().expect("lease kept");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "holder not cleared: {lease}"
    );
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 1, "{lease}");

    // The other replica takes the released Lease.
    let mut rb = b.receiver();
    tokio::time::timeout(Duration::from_secs(30), rb.wait_for(|l| *l))
        .await
        .expect("replica-b took over")
        .unwrap();
    assert_eq!(fake.holder().as_deref(), Some("replica-b"));

    // A follower stepping down leaves the Lease alone.
    let c = elector(addr, "replica-c");
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.step_down().await;
    assert_eq!(fake.holder().as_deref(), Some("replica-b"));

    drop(b);
    server.abort();
}
