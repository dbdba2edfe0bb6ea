//! Benchmark (not a test): model and xDS build for 1,000 and 10,000 services
//! with endpoints and policies, one Service change pushed to 100 connected
//! delta-xDS clients, and the process's memory. Prints numbers; asserts nothing.
//! The last section runs the xDS server for 10,000 services in a child process
//! and its 100 delta clients in a grandchild (both re-executions of this binary,
//! selected by `PALISADE_BENCH_MODE`), so the server's own memory is measured.
//!
//! Run: `cargo bench -p palisade-control-plane --bench xds_build`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use palisade_control_plane::k8s::GlobalNetworkPolicy;
use palisade_control_plane::model::{Model, ModelBuilder};
use palisade_control_plane::source::{Inputs, Origin, RulesetFiles, Sourced};
use palisade_control_plane::status::Status;
use palisade_control_plane::sync::state_from_model;
use palisade_control_plane::validate::AcceptAll;
use palisade_control_plane::xds::ads::AdsServer;
use palisade_control_plane::xds::translate::{translate, TranslateConfig};
use palisade_control_plane::xds::{XdsSnapshot, CLUSTER, ENDPOINT};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use xds_api::pb::envoy::config::core::v3::Node;
use xds_api::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds_api::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

fn origin(what: &str) -> Origin {
    Origin::Builtin {
        what: what.to_string(),
    }
}

/// N services in N/100 namespaces, each with a 3-endpoint slice; one policy per 10 services.
fn inputs(n: usize, generation: u32) -> Inputs {
    let mut i = Inputs {
        ready: true,
        default_ruleset: "baseline".into(),
        ..Inputs::default()
    };
    let namespaces = n.div_ceil(100);
    for ns in 0..namespaces {
        let v = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name": format!("ns-{ns}"), "labels": {"team": format!("t{}", ns % 7)}}});
        i.namespaces
            .push(serde_json::from_value::<Namespace>(v).unwrap());
    }
    for s in 0..n {
        let ns = format!("ns-{}", s % namespaces);
        let name = format!("svc-{s}");
        // Service 0's endpoints change with `generation`.
        let last = if s == 0 { 20 + generation } else { 10 };
        let svc = json!({"apiVersion":"v1","kind":"Service","metadata":{"name": name, "namespace": ns, "annotations": {"palisade.dev/waf": if s % 2 == 0 {"On"} else {"DetectionOnly"}}},
            "spec": {"selector": {"app": name}, "ports": [{"name":"http","port":8080}]}});
        i.services.push(Sourced {
            origin: origin("bench"),
            object: serde_json::from_value::<Service>(svc).unwrap(),
        });
        let a = (s / 250) % 250;
        let b = s % 250;
        let slice = json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
            "metadata":{"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType":"IPv4","ports":[{"name":"http","port":8080}],
            "endpoints":[{"addresses":[format!("10.{a}.{b}.{last}")]},{"addresses":[format!("10.{a}.{b}.11")]},{"addresses":[format!("10.{a}.{b}.12")]}]});
        i.endpoint_slices
            .push(serde_json::from_value::<EndpointSlice>(slice).unwrap());
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

fn rss_mb() -> f64 {
    status_mb("VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn build(n: usize) -> (Model, XdsSnapshot) {
    let cfg = TranslateConfig::default();
    let input = inputs(n, 0);
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
        "build {n:>6} services: model {:>8.1} ms, xDS {:>8.1} ms, sync state {:>7.1} ms, total {:>8.1} ms (median of 3); {} clusters, {} endpoints",
        m.as_secs_f64() * 1e3,
        x.as_secs_f64() * 1e3,
        s.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        snapshot.types[CLUSTER].resources.len(),
        snapshot.types[ENDPOINT].resources.len(),
    );
    (model, snapshot)
}

async fn push_to_clients(n: usize, clients: usize) {
    let cfg = TranslateConfig::default();
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let model = builder.build(&inputs(n, 0));
    let snapshot = translate(&model, &cfg);
    let names: Vec<String> = snapshot.types[ENDPOINT].resources.keys().cloned().collect();
    let mut current = Arc::new(snapshot);
    let (tx, rx) = watch::channel(Some(current.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AdsServer::new(rx, Status::new()).into_service();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });

    // Connect the clients; each subscribes to every cluster's endpoints and waits for them.
    let (done_tx, mut done_rx) = mpsc::channel::<(usize, Instant)>(clients * 4);
    let (ready_tx, mut ready_rx) = mpsc::channel::<usize>(clients);
    let target = "ns-0/svc-0:8080".to_string();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let names = names.clone();
        let done_tx = done_tx.clone();
        let ready_tx = ready_tx.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client =
                AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
            let (req_tx, req_rx) = mpsc::channel(4);
            req_tx
                .send(DeltaDiscoveryRequest {
                    node: Some(Node {
                        id: format!("bench-{c}"),
                        ..Default::default()
                    }),
                    type_url: ENDPOINT.to_string(),
                    resource_names_subscribe: names,
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut stream = client
                .delta_aggregated_resources(ReceiverStream::new(req_rx))
                .await
                .unwrap()
                .into_inner();
            let mut first = true;
            while let Ok(Some(resp)) = stream.message().await {
                let _ = req_tx
                    .send(DeltaDiscoveryRequest {
                        type_url: resp.type_url.clone(),
                        response_nonce: resp.nonce.clone(),
                        ..Default::default()
                    })
                    .await;
                if first {
                    first = false;
                    let _ = ready_tx.send(c).await;
                } else if resp.resources.iter().any(|r| r.name == target) {
                    let _ = done_tx.send((c, Instant::now())).await;
                }
            }
        }));
    }
    for _ in 0..clients {
        ready_rx.recv().await.unwrap();
    }
    println!(
        "push: {clients} delta clients connected and synced ({n} services, RSS {:.0} MB)",
        rss_mb()
    );

    for round in 1..=3u32 {
        let t0 = Instant::now();
        let model = builder.build(&inputs(n, round));
        let snapshot = Arc::new(translate(&model, &cfg).with_delta_from(&current));
        current = snapshot.clone();
        let built = t0.elapsed();
        let sent = Instant::now();
        tx.send(Some(snapshot)).unwrap();
        let mut latencies = Vec::new();
        while latencies.len() < clients {
            match tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await {
                Ok(Some((_, at))) => latencies.push(at - sent),
                _ => break,
            }
        }
        latencies.sort();
        println!(
            "push round {round}: one Service's endpoints changed; rebuild {:.1} ms; delivered to {}/{clients} clients: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            built.as_secs_f64() * 1e3,
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    for t in tasks {
        t.abort();
    }
    server.abort();
}

/// Environment variable selecting a child role: `server` or `clients`.
const MODE: &str = "PALISADE_BENCH_MODE";
/// Environment variable giving the clients process the server's address.
const ADDR: &str = "PALISADE_BENCH_ADDR";
/// How long a child waits for the other side before giving up.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Server process: builds the model and snapshot for `n` services, serves ADS on an
/// ephemeral 127.0.0.1 port, starts the clients process, waits until every client has
/// the full state, then prints both processes' memory.
async fn server_process(n: usize, clients: usize) {
    let (rss_start, hwm_start) = (status_mb("VmRSS"), status_mb("VmHWM"));
    let cfg = TranslateConfig::default();
    // Keep the builder and the model alive like the running control plane does.
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let model = builder.build(&inputs(n, 0));
    let state = state_from_model(&model);
    let snapshot = Arc::new(translate(&model, &cfg));
    let names: Vec<String> = snapshot.types[ENDPOINT].resources.keys().cloned().collect();
    let (rss_built, hwm_built) = (status_mb("VmRSS"), status_mb("VmHWM"));
    let (_tx, rx) = watch::channel(Some(snapshot.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AdsServer::new(rx, Status::new()).into_service();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "clients")
        .env(ADDR, addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // The clients' names and their ready line go through blocking pipes: use a thread.
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let _ = stdin.write_all(names.join("\n").as_bytes());
        drop(stdin);
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let started = Instant::now();
    let line = tokio::task::spawn_blocking(move || line_rx.recv_timeout(CHILD_TIMEOUT))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let synced = started.elapsed();
    let (rss_synced, hwm_synced) = (status_mb("VmRSS"), status_mb("VmHWM"));
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    std::hint::black_box(&state);

    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if !line.starts_with("ready") || fields.len() != 2 {
        println!("separate processes: the clients process did not report ready ({line:?})");
        return;
    }
    println!(
        "separate processes, {n} services: server process RSS {rss_start:.0} MB at start (HWM {hwm_start:.0} MB), \
         {rss_built:.0} MB after build (HWM {hwm_built:.0} MB)"
    );
    println!(
        "separate processes, {n} services: {clients} delta clients (another process) got the full state \
         ({} endpoint resources each) in {:.2} s; server process RSS {rss_synced:.0} MB, HWM {hwm_synced:.0} MB; \
         clients process RSS {:.0} MB, HWM {:.0} MB",
        snapshot.types[ENDPOINT].resources.len(),
        synced.as_secs_f64(),
        fields[0],
        fields[1],
    );
}

/// Clients process: reads resource names on stdin, connects `clients` delta-xDS streams
/// to the server at `PALISADE_BENCH_ADDR`, waits until each has received every name,
/// prints `ready <VmRSS MB> <VmHWM MB>` and keeps the streams open until killed.
async fn clients_process(clients: usize) {
    let addr = std::env::var(ADDR).unwrap_or_default();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let names: Vec<String> = text.lines().map(str::to_string).collect();
    let want = names.len();
    let (ready_tx, mut ready_rx) = mpsc::channel::<usize>(clients);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let names = names.clone();
        let ready_tx = ready_tx.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client =
                AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
            let (req_tx, req_rx) = mpsc::channel(4);
            req_tx
                .send(DeltaDiscoveryRequest {
                    node: Some(Node {
                        id: format!("bench-{c}"),
                        ..Default::default()
                    }),
                    type_url: ENDPOINT.to_string(),
                    resource_names_subscribe: names,
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut stream = client
                .delta_aggregated_resources(ReceiverStream::new(req_rx))
                .await
                .unwrap()
                .into_inner();
            let mut received = std::collections::HashSet::new();
            let mut ready = false;
            while let Ok(Some(resp)) = stream.message().await {
                let _ = req_tx
                    .send(DeltaDiscoveryRequest {
                        type_url: resp.type_url.clone(),
                        response_nonce: resp.nonce.clone(),
                        ..Default::default()
                    })
                    .await;
                received.extend(resp.resources.into_iter().map(|r| r.name));
                if !ready && received.len() >= want {
                    ready = true;
                    let _ = ready_tx.send(c).await;
                }
            }
        }));
    }
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
    // The server kills this process once it has read its own memory; bounded anyway.
    tokio::time::sleep(CHILD_TIMEOUT).await;
    for t in tasks {
        t.abort();
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
            runtime.block_on(server_process(10_000, 100));
        } else {
            runtime.block_on(clients_process(100));
        }
        return;
    }
    println!(
        "palisade control-plane benchmark (RSS at start {:.0} MB)",
        rss_mb()
    );
    let small = build(1_000);
    drop(small);
    let large = build(10_000);
    println!(
        "memory with the 10,000-service model and snapshot held: RSS {:.0} MB",
        rss_mb()
    );
    drop(large);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(push_to_clients(1_000, 100));
    runtime.block_on(push_to_clients(10_000, 100));
    println!("RSS at end {:.0} MB", rss_mb());
    drop(runtime);
    // The server alone: a fresh process, its clients in yet another one.
    let status = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "server")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("separate processes: server process failed: {status:?}");
    }
}
