//! Benchmark (not a test): model and xDS build for 1,000 and 10,000 services
//! with endpoints and policies, the incremental rebuild after one Service
//! change, and, with the control plane in its own process, one Service change
//! delivered to 100 delta-xDS clients (in another process) end to end, plus the
//! control plane's memory. Prints numbers; asserts nothing.
//!
//! The end-to-end part runs the real wiring ([`start_with_inputs`]: model
//! task, translation task, ADS server) in a child process
//! (`PALISADE_BENCH_MODE=server`), and its clients in a grandchild
//! (`PALISADE_BENCH_MODE=clients`), both re-executions of this binary. Each
//! round applies one Service change to the inputs (a new EndpointSlice
//! address), and measures, on the wall clock both processes share, from
//! handing the new inputs to the control plane (before any rebuild) to each
//! client receiving the changed ClusterLoadAssignment. The server runs with
//! `MALLOC_ARENA_MAX=2`, as the Helm chart runs the control plane.
//!
//! Run: `cargo bench -p palisade-control-plane --bench xds_build`

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use palisade_control_plane::k8s::GlobalNetworkPolicy;
use palisade_control_plane::model::{Model, ModelBuilder};
use palisade_control_plane::run::{start_with_inputs, RunConfig, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::source::{Inputs, Origin, RulesetFiles, Sourced};
use palisade_control_plane::sync::state_from_model;
use palisade_control_plane::validate::AcceptAll;
use palisade_control_plane::xds::translate::{translate, TranslateConfig, Translator};
use palisade_control_plane::xds::{XdsSnapshot, CLUSTER, ENDPOINT};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use xds_api::pb::envoy::config::core::v3::Node;
use xds_api::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds_api::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

fn origin(what: &str) -> Origin {
    Origin::Builtin {
        what: what.to_string(),
    }
}

fn namespaces(n: usize) -> usize {
    n.div_ceil(100)
}

/// Service `s`'s cluster (and ClusterLoadAssignment) name.
fn cluster_of(n: usize, s: usize) -> String {
    format!("ns-{}/svc-{s}:8080", s % namespaces(n))
}

fn slice_of(n: usize, s: usize, last: u32) -> EndpointSlice {
    let ns = format!("ns-{}", s % namespaces(n));
    let name = format!("svc-{s}");
    let a = (s / 250) % 250;
    let b = s % 250;
    let slice = json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
        "metadata":{"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType":"IPv4","ports":[{"name":"http","port":8080}],
        "endpoints":[{"addresses":[format!("10.{a}.{b}.{last}")]},{"addresses":[format!("10.{a}.{b}.11")]},{"addresses":[format!("10.{a}.{b}.12")]}]});
    serde_json::from_value(slice).unwrap()
}

/// N services in N/100 namespaces, each with a 3-endpoint slice; one policy per 10 services.
fn inputs(n: usize) -> Inputs {
    let mut i = Inputs {
        ready: true,
        default_ruleset: "baseline".into(),
        ..Inputs::default()
    };
    for ns in 0..namespaces(n) {
        let v = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name": format!("ns-{ns}"), "labels": {"team": format!("t{}", ns % 7)}}});
        i.namespaces
            .push(serde_json::from_value::<Namespace>(v).unwrap());
    }
    for s in 0..n {
        let ns = format!("ns-{}", s % namespaces(n));
        let name = format!("svc-{s}");
        let svc = json!({"apiVersion":"v1","kind":"Service","metadata":{"name": name, "namespace": ns, "annotations": {"palisade.dev/waf": if s % 2 == 0 {"On"} else {"DetectionOnly"}}},
            "spec": {"selector": {"app": name}, "ports": [{"name":"http","port":8080}]}});
        i.services.push(Sourced {
            origin: origin("bench"),
            object: serde_json::from_value::<Service>(svc).unwrap(),
        });
        i.endpoint_slices.push(slice_of(n, s, 10));
        if s % 10 == 0 {
            let p = json!({"apiVersion":"crd.projectcalico.org/v1","kind":"GlobalNetworkPolicy","metadata":{"name": format!("default.p-{s}")},
                "spec":{"order": s, "selector": format!("app == '{name}'"), "ingress":[{"action":"Allow","http":{"methods":["GET","HEAD"],"paths":[{"prefix":"/api"},{"exact":"/"}]}}]}});
            i.policies.push(Sourced {
                origin: origin("bench"),
                object: serde_json::from_value::<GlobalNetworkPolicy>(p).unwrap(),
            });
        }
    }
    let mut files = BTreeMap::new();
    files.insert("rules.conf".to_string(), vec![b'#'; 200_000]);
    i.rulesets.push(Sourced {
        origin: origin("bench"),
        object: RulesetFiles {
            name: "baseline".into(),
            files,
        },
    });
    i
}

/// The service a round changes, and that change applied to `inputs`: its
/// slice's first address gets a new last octet.
fn apply_change(inputs: &mut Inputs, n: usize, round: usize) -> usize {
    let s = (round * 7919) % n;
    let last = 20 + (round % 200) as u32;
    inputs.endpoint_slices[s] = slice_of(n, s, last);
    s
}

/// A `/proc/self/status` field such as `VmRSS` or `VmHWM`, in MB (0 when unreadable).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.99)),
        ms(v.last().copied().unwrap_or_default())
    )
}

fn build(n: usize) -> (Model, XdsSnapshot) {
    let cfg = TranslateConfig::default();
    let input = inputs(n);
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..3 {
        let t0 = Instant::now();
        let model = ModelBuilder::new(Arc::new(AcceptAll)).build(&input);
        let t1 = Instant::now();
        let snapshot = translate(&model, &cfg);
        let t2 = Instant::now();
        let state = state_from_model(&model);
        let t3 = Instant::now();
        times.push((t1 - t0, t2 - t1, t3 - t2, t3 - t0));
        assert!(model.problems.is_empty(), "{:?}", model.problems.first());
        std::hint::black_box(&state);
        out = Some((model, snapshot));
    }
    times.sort_by_key(|t| t.3);
    let (m, x, s, total) = times[times.len() / 2];
    let (model, snapshot) = out.unwrap();
    println!(
        "full build {n:>6} services: model {:>7.1} ms, xDS {:>7.1} ms, sync state {:>6.1} ms, total {:>7.1} ms (median of 3); {} clusters, {} endpoints",
        ms(m),
        ms(x),
        ms(s),
        ms(total),
        snapshot.types[CLUSTER].resources.len(),
        snapshot.types[ENDPOINT].resources.len(),
    );
    (model, snapshot)
}

/// The incremental rebuild after one Service's endpoints change, step by step.
fn incremental(n: usize, rounds: usize) {
    let mut input = inputs(n);
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let mut translator = Translator::new(TranslateConfig::default());
    let model = builder.build(&input);
    let mut previous = translator.translate(&model);
    let (mut model_t, mut xds_t, mut state_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut changed = Vec::new();
    for round in 1..=rounds {
        apply_change(&mut input, n, round);
        let t0 = Instant::now();
        let model = builder.build(&input);
        let t1 = Instant::now();
        let snapshot = translator.translate(&model);
        let t2 = Instant::now();
        let state = state_from_model(&model);
        let t3 = Instant::now();
        std::hint::black_box(&state);
        model_t.push(t1 - t0);
        xds_t.push(t2 - t1);
        state_t.push(t3 - t2);
        changed.push(
            snapshot
                .deltas
                .values()
                .map(|d| d.changed.len() + d.removed.len())
                .sum::<usize>(),
        );
        // The incremental result is the full one.
        if round == rounds {
            let full = translate(&model, &TranslateConfig::default());
            assert!(full.same_versions(&snapshot));
        }
        assert!(!previous.same_versions(&snapshot));
        previous = snapshot;
    }
    println!(
        "one Service change, {n:>6} services, {rounds} rounds: model {}; xDS {}; (sync state {}); resources changed per round: {:?}",
        summary(model_t),
        summary(xds_t),
        summary(state_t),
        changed.iter().copied().collect::<HashSet<_>>(),
    );
}

/// Environment variable selecting a child role: `server` or `clients`.
const MODE: &str = "PALISADE_BENCH_MODE";
/// Services, clients, protocol (`delta` or `sotw`) and rounds of a child run.
const SERVICES: &str = "PALISADE_BENCH_SERVICES";
const CLIENTS: &str = "PALISADE_BENCH_CLIENTS";
const PROTOCOL: &str = "PALISADE_BENCH_PROTOCOL";
const ROUNDS: &str = "PALISADE_BENCH_ROUNDS";
/// Environment variable giving the clients process the server's address.
const ADDR: &str = "PALISADE_BENCH_ADDR";
/// How long a child waits for the other side before giving up.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Server process: the control plane's own wiring on bench inputs; starts the
/// clients process, waits until every client has the full state, reads its
/// memory, then runs the change rounds.
async fn server_process() {
    let n = env_usize(SERVICES, 10_000);
    let clients = env_usize(CLIENTS, 100);
    let rounds = env_usize(ROUNDS, 100);
    let protocol = std::env::var(PROTOCOL).unwrap_or_else(|_| "delta".into());
    let (rss_start, hwm_start) = (status_mb("VmRSS"), status_mb("VmHWM"));
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = RunConfig {
        source: SourceConfig::Directory(DirectoryConfig::new("/nonexistent")),
        xds_listen: loopback,
        sync_listen: loopback,
        admin_listen: loopback,
        translate: TranslateConfig::default(),
    };
    let mut current = Arc::new(inputs(n));
    let (inputs_tx, inputs_rx) = watch::channel(Arc::clone(&current));
    let built_at = Instant::now();
    let running = start_with_inputs(config, inputs_rx, Arc::new(AcceptAll))
        .await
        .unwrap();
    let mut snapshots = running.snapshots.clone();
    let snapshot = loop {
        if let Some(s) = snapshots.borrow_and_update().clone() {
            break s;
        }
        let _ = tokio::time::timeout(CHILD_TIMEOUT, snapshots.changed()).await;
    };
    let build_time = built_at.elapsed();
    // Let the policy-sync state be built too before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = snapshot.types[ENDPOINT]
        .resources
        .keys()
        .map(|k| k.to_string())
        .collect();
    drop(snapshot);
    let (rss_built, hwm_built) = (status_mb("VmRSS"), status_mb("VmHWM"));

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "clients")
        .env(ADDR, running.xds_addr.to_string())
        .env(CLIENTS, clients.to_string())
        .env(PROTOCOL, &protocol)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // The clients' lines come through blocking pipes: a thread forwards them.
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        let _ = stdin.write_all(names.join("\n").as_bytes());
        drop(stdin);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let ready = tokio::time::timeout(CHILD_TIMEOUT, line_rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let synced = started.elapsed();
    let (rss_synced, hwm_synced) = (status_mb("VmRSS"), status_mb("VmHWM"));
    let fields: Vec<f64> = ready
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if !ready.starts_with("ready") || fields.len() != 2 {
        println!("{protocol} {n}: the clients process did not report ready ({ready:?})");
        let _ = child.kill();
        let _ = child.wait();
        running.shutdown();
        return;
    }
    println!(
        "server process, {n} services: RSS {rss_start:.0} MB at start (HWM {hwm_start:.0} MB); \
         model + snapshot + sync state built in {:.0} ms; then RSS {rss_built:.0} MB (HWM {hwm_built:.0} MB)",
        ms(build_time)
    );
    println!(
        "server process, {n} services, {clients} {protocol} clients (another process) synced \
         (all {} ClusterLoadAssignments each) in {:.2} s: server RSS {rss_synced:.0} MB (HWM {hwm_synced:.0} MB); \
         clients process RSS {:.0} MB",
        n,
        synced.as_secs_f64(),
        fields[0],
    );

    // Change rounds: the clients print `got <name> <unix nanos>` per received resource.
    let mut per_client = Vec::new();
    let mut last_client = Vec::new();
    let mut incomplete = 0;
    for round in 1..=rounds {
        let mut next = (*current).clone();
        let s = apply_change(&mut next, n, round);
        let target = cluster_of(n, s);
        current = Arc::new(next);
        let t0 = now_nanos();
        let _ = inputs_tx.send(Arc::clone(&current));
        let mut got = 0;
        let mut last = Duration::ZERO;
        while got < clients {
            match tokio::time::timeout(Duration::from_secs(30), line_rx.recv()).await {
                Ok(Some(line)) => {
                    let mut parts = line.split_whitespace();
                    if parts.next() != Some("got") || parts.next() != Some(target.as_str()) {
                        continue;
                    }
                    let at: u128 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(t0);
                    let d = Duration::from_nanos(u64::try_from(at.saturating_sub(t0)).unwrap_or(0));
                    per_client.push(d);
                    last = last.max(d);
                    got += 1;
                }
                _ => break,
            }
        }
        if got < clients {
            incomplete += 1;
        }
        last_client.push(last);
    }
    let (rss_end, hwm_end) = (status_mb("VmRSS"), status_mb("VmHWM"));
    println!(
        "server process, {n} services, {clients} {protocol} clients: one Service change (new endpoint), \
         from handing the inputs to the control plane to a client receiving it, {rounds} rounds: \
         per client {}; last of the {clients} clients per round {}{}; server RSS after the rounds {rss_end:.0} MB (HWM {hwm_end:.0} MB)",
        summary(per_client),
        summary(last_client),
        if incomplete > 0 {
            format!(" ({incomplete} rounds incomplete)")
        } else {
            String::new()
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    running.shutdown();
}

/// Clients process: reads resource names on stdin, connects the clients to
/// the server at `PALISADE_BENCH_ADDR` (each subscribing to every name, as an
/// Envoy with that many EDS clusters does), prints `ready <VmRSS MB> <VmHWM MB>`
/// once each has received every name, then `got <name> <unix nanos>` for every
/// resource received after that, until killed.
async fn clients_process() {
    let clients = env_usize(CLIENTS, 100);
    let sotw = std::env::var(PROTOCOL).as_deref() == Ok("sotw");
    let addr = std::env::var(ADDR).unwrap_or_default();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let names: Arc<Vec<String>> = Arc::new(text.lines().map(str::to_string).collect());
    let want = names.len();
    let (ready_tx, mut ready_rx) = mpsc::channel::<usize>(clients);
    let (got_tx, mut got_rx) = mpsc::unbounded_channel::<(String, u128)>();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let names = Arc::clone(&names);
        let ready_tx = ready_tx.clone();
        let got_tx = got_tx.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client =
                AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
            let node = Some(Node {
                id: format!("bench-{c}"),
                ..Default::default()
            });
            let mut received = HashSet::new();
            let mut ready = false;
            if sotw {
                let (req_tx, req_rx) = mpsc::channel(4);
                let _ = req_tx
                    .send(DiscoveryRequest {
                        node,
                        type_url: ENDPOINT.to_string(),
                        resource_names: (*names).clone(),
                        ..Default::default()
                    })
                    .await;
                let mut stream = client
                    .stream_aggregated_resources(ReceiverStream::new(req_rx))
                    .await
                    .unwrap()
                    .into_inner();
                let mut versions: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                while let Ok(Some(resp)) = stream.message().await {
                    let at = now_nanos();
                    let _ = req_tx
                        .send(DiscoveryRequest {
                            type_url: resp.type_url.clone(),
                            version_info: resp.version_info.clone(),
                            response_nonce: resp.nonce.clone(),
                            resource_names: (*names).clone(),
                            ..Default::default()
                        })
                        .await;
                    // State of the world: every response has everything;
                    // what changed is what differs from the last one.
                    for any in resp.resources {
                        let Ok(cla) = <xds_api::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as prost::Message>::decode(any.value.as_slice()) else {
                            continue;
                        };
                        let name = cla.cluster_name;
                        if ready && versions.get(&name) != Some(&any.value) {
                            let _ = got_tx.send((name.clone(), at));
                        }
                        received.insert(name.clone());
                        versions.insert(name, any.value);
                    }
                    if !ready && received.len() >= want {
                        ready = true;
                        let _ = ready_tx.send(c).await;
                    }
                }
            } else {
                let (req_tx, req_rx) = mpsc::channel(4);
                let _ = req_tx
                    .send(DeltaDiscoveryRequest {
                        node,
                        type_url: ENDPOINT.to_string(),
                        resource_names_subscribe: (*names).clone(),
                        ..Default::default()
                    })
                    .await;
                let mut stream = client
                    .delta_aggregated_resources(ReceiverStream::new(req_rx))
                    .await
                    .unwrap()
                    .into_inner();
                while let Ok(Some(resp)) = stream.message().await {
                    let at = now_nanos();
                    let _ = req_tx
                        .send(DeltaDiscoveryRequest {
                            type_url: resp.type_url.clone(),
                            response_nonce: resp.nonce.clone(),
                            ..Default::default()
                        })
                        .await;
                    for r in resp.resources {
                        if ready {
                            let _ = got_tx.send((r.name.clone(), at));
                        }
                        received.insert(r.name);
                    }
                    if !ready && received.len() >= want {
                        ready = true;
                        let _ = ready_tx.send(c).await;
                    }
                }
            }
        }));
    }
    drop(got_tx);
    for _ in 0..clients {
        if tokio::time::timeout(CHILD_TIMEOUT, ready_rx.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            println!("timeout");
            return;
        }
    }
    println!("ready {:.1} {:.1}", status_mb("VmRSS"), status_mb("VmHWM"));
    let _ = std::io::stdout().flush();
    // Report deliveries until the server kills this process (bounded anyway).
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while let Ok(Some((name, at))) = tokio::time::timeout_at(deadline.into(), got_rx.recv()).await {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "got {name} {at}");
        let _ = out.flush();
    }
    for t in tasks {
        t.abort();
    }
}

/// Runs one server process (which starts its clients process) and waits.
fn run_server(services: usize, clients: usize, protocol: &str, rounds: usize) {
    let status = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "server")
        // As the Helm chart runs the control plane (glibc: two malloc
        // arenas, so memory freed by rebuilds is reused across threads).
        .env("MALLOC_ARENA_MAX", "2")
        .env(SERVICES, services.to_string())
        .env(CLIENTS, clients.to_string())
        .env(PROTOCOL, protocol)
        .env(ROUNDS, rounds.to_string())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("server process ({protocol}, {services} services) failed: {status:?}");
    }
}

fn main() {
    let mode = std::env::var(MODE).unwrap_or_default();
    if mode == "server" || mode == "clients" {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        if mode == "server" {
            runtime.block_on(server_process());
        } else {
            runtime.block_on(clients_process());
        }
        return;
    }
    // `PALISADE_BENCH_ONLY=build|incremental|e2e` runs one part.
    let only = std::env::var("PALISADE_BENCH_ONLY").unwrap_or_default();
    if only == "incremental" {
        incremental(10_000, 200);
        return;
    }
    if only.is_empty() || only == "build" {
        println!(
            "palisade control-plane benchmark (RSS at start {:.0} MB)",
            status_mb("VmRSS")
        );
        drop(build(1_000));
        let large = build(10_000);
        println!(
            "memory with the 10,000-service model and snapshot held: RSS {:.0} MB",
            status_mb("VmRSS")
        );
        drop(large);
        incremental(1_000, 20);
        incremental(10_000, 20);
    }
    if only.is_empty() || only == "e2e" {
        run_server(1_000, 100, "delta", 100);
        run_server(10_000, 100, "delta", 100);
        run_server(10_000, 100, "sotw", 20);
    }
}
