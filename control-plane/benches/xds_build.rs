//! Benchmark (not a test): model and xDS build for 1,000 and 10,000 services
//! with endpoints and policies, one Service change pushed to 100 connected
//! delta-xDS clients, and the process's memory. Prints numbers; asserts nothing.
//!
//! Run: `cargo bench -p palisade-control-plane --bench xds_build`

use std::collections::BTreeMap;
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

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
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

fn main() {
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
}
