//! The incremental rebuild: a model builder and xDS translator that have seen
//! a sequence of changes produce exactly what a fresh build of the final
//! inputs produces; a resource whose content did not change keeps its
//! version; and delta-xDS clients of the real ADS server receive only the
//! resources that changed, while state-of-the-world clients get everything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use palisade_control_plane::k8s::{ApplicationLayer, GlobalNetworkPolicy};
use palisade_control_plane::model::{Model, ModelBuilder};
use palisade_control_plane::source::{Inputs, Origin, RulesetFiles, Sourced};
use palisade_control_plane::status::Status;
use palisade_control_plane::validate::AcceptAll;
use palisade_control_plane::xds::ads::AdsServer;
use palisade_control_plane::xds::translate::{translate, TranslateConfig, Translator};
use palisade_control_plane::xds::{XdsSnapshot, CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use xds_api::pb::envoy::config::core::v3::Node;
use xds_api::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds_api::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest,
};

fn origin() -> Origin {
    Origin::Builtin {
        what: "test".into(),
    }
}

/// A deterministic xorshift generator (no dependency, reproducible failures).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One service's inputs, all valid.
#[derive(Clone, Debug)]
struct Svc {
    ns: usize,
    mode: &'static str,
    hosts: Option<String>,
    ports: Vec<u16>,
    endpoints: Vec<u8>,
    app: String,
}

#[derive(Clone, Debug)]
struct World {
    services: BTreeMap<usize, Svc>,
    namespace_labels: Vec<String>,
    pods: Vec<(usize, String, String)>,
    policies: BTreeMap<usize, String>,
    failure_mode_allow: bool,
    alp: bool,
}

impl World {
    fn new(rng: &mut Rng, n: usize) -> World {
        let mut w = World {
            services: BTreeMap::new(),
            namespace_labels: vec!["a".into(), "b".into(), "c".into()],
            pods: Vec::new(),
            policies: BTreeMap::new(),
            failure_mode_allow: false,
            alp: true,
        };
        for s in 0..n {
            w.services.insert(s, w.random_service(rng, s));
        }
        w.policies.insert(0, "app == 'app-1'".into());
        w.policies.insert(1, "team == 'a'".into());
        w
    }

    fn random_service(&self, rng: &mut Rng, s: usize) -> Svc {
        Svc {
            ns: rng.below(3),
            mode: ["On", "DetectionOnly", "Off"][rng.below(3)],
            hosts: (rng.below(4) == 0).then(|| format!("shared-{}.example", rng.below(2))),
            ports: if rng.below(3) == 0 {
                vec![80, 8080]
            } else {
                vec![80]
            },
            endpoints: (0..1 + rng.below(3)).map(|i| i as u8 + 1).collect(),
            app: format!("app-{}", s % 3),
        }
    }

    /// Applies one random change and says what it was.
    fn change(&mut self, rng: &mut Rng) -> String {
        let keys: Vec<usize> = self.services.keys().copied().collect();
        let pick = keys[rng.below(keys.len())];
        match rng.below(11) {
            0..=3 => {
                let e = &mut self.services.get_mut(&pick).unwrap().endpoints;
                let i = rng.below(e.len());
                e[i] = e[i].wrapping_add(1 + rng.below(50) as u8);
                format!("endpoints of {pick}")
            }
            4 => {
                let s = self.services.get_mut(&pick).unwrap();
                s.mode = ["On", "DetectionOnly", "Off"][rng.below(3)];
                format!("mode of {pick}")
            }
            5 => {
                let s = self.services.get_mut(&pick).unwrap();
                s.hosts = (rng.below(2) == 0).then(|| format!("shared-{}.example", rng.below(2)));
                format!("hosts of {pick}")
            }
            6 => {
                if self.services.len() > 2 {
                    self.services.remove(&pick);
                    format!("remove {pick}")
                } else {
                    "nothing".into()
                }
            }
            7 => {
                let s = keys.iter().max().copied().unwrap_or(0) + 1;
                let svc = self.random_service(rng, s);
                self.services.insert(s, svc);
                format!("add {s}")
            }
            8 => {
                let ns = rng.below(3);
                self.namespace_labels[ns] = ["a", "b", "c"][rng.below(3)].to_string();
                format!("labels of namespace {ns}")
            }
            9 => {
                let p = rng.below(3);
                if self.policies.remove(&p).is_none() {
                    self.policies
                        .insert(p, format!("app == 'app-{}'", rng.below(3)));
                }
                format!("policy {p}")
            }
            _ => match rng.below(3) {
                0 => {
                    self.pods.push((
                        rng.below(3),
                        format!("pod-{}", rng.below(1000)),
                        format!("app-{}", rng.below(3)),
                    ));
                    "add pod".into()
                }
                1 => {
                    self.failure_mode_allow = !self.failure_mode_allow;
                    "failure mode".into()
                }
                _ => {
                    self.alp = !self.alp;
                    "alp toggle".into()
                }
            },
        }
    }

    fn inputs(&self) -> Inputs {
        let mut i = Inputs {
            ready: true,
            default_ruleset: "baseline".into(),
            ..Inputs::default()
        };
        for (ns, team) in self.namespace_labels.iter().enumerate() {
            i.namespaces.push(
                serde_json::from_value::<Namespace>(json!({"apiVersion":"v1","kind":"Namespace",
                    "metadata":{"name": format!("ns-{ns}"), "labels": {"team": team}}}))
                .unwrap(),
            );
        }
        for (s, svc) in &self.services {
            let name = format!("svc-{s}");
            let ns = format!("ns-{}", svc.ns);
            let mut annotations = json!({"palisade.dev/waf": svc.mode});
            if let Some(h) = &svc.hosts {
                annotations["palisade.dev/hosts"] = json!(h);
            }
            let ports: Vec<_> = svc
                .ports
                .iter()
                .map(|p| json!({"name": format!("p{p}"), "port": p}))
                .collect();
            i.services.push(Sourced {
                origin: origin(),
                object: serde_json::from_value::<Service>(
                    json!({"apiVersion":"v1","kind":"Service",
                    "metadata":{"name": name, "namespace": ns, "annotations": annotations},
                    "spec":{"selector":{"app": svc.app}, "ports": ports}}),
                )
                .unwrap(),
            });
            let slice_ports: Vec<_> = svc
                .ports
                .iter()
                .map(|p| json!({"name": format!("p{p}"), "port": u32::from(*p) + 1000}))
                .collect();
            let endpoints: Vec<_> = svc
                .endpoints
                .iter()
                .map(|e| json!({"addresses": [format!("10.{}.{}.{e}", s / 250, s % 250)]}))
                .collect();
            i.endpoint_slices.push(
                serde_json::from_value::<EndpointSlice>(json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
                    "metadata":{"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                    "addressType":"IPv4","ports": slice_ports,"endpoints": endpoints}))
                .unwrap(),
            );
        }
        for (ns, name, app) in &self.pods {
            i.pods.push(
                serde_json::from_value::<Pod>(json!({"apiVersion":"v1","kind":"Pod",
                    "metadata":{"name": name, "namespace": format!("ns-{ns}"), "labels": {"app": app, "extra": name}},
                    "spec":{"serviceAccountName": format!("sa-{name}"), "containers":[{"name":"c"}]},
                    "status":{"podIP":"10.9.9.9"}}))
                .unwrap(),
            );
        }
        for (p, selector) in &self.policies {
            i.policies.push(Sourced {
                origin: origin(),
                object: serde_json::from_value::<GlobalNetworkPolicy>(json!({"apiVersion":"crd.projectcalico.org/v1","kind":"GlobalNetworkPolicy",
                    "metadata":{"name": format!("default.p{p}")},
                    "spec":{"selector": selector, "ingress":[{"action":"Allow","http":{"methods":["GET"]}}]}}))
                .unwrap(),
            });
        }
        i.application_layers.push(Sourced {
            origin: origin(),
            object: serde_json::from_value::<ApplicationLayer>(
                json!({"apiVersion":"palisade.dev/v1","kind":"ApplicationLayer",
                "metadata":{"name":"default"},
                "spec":{"failureMode": if self.failure_mode_allow {"Allow"} else {"Deny"},
                        "applicationLayerPolicy": if self.alp {"Enabled"} else {"Disabled"}}}),
            )
            .unwrap(),
        });
        i.rulesets.push(Sourced {
            origin: origin(),
            object: RulesetFiles {
                name: "baseline".into(),
                files: BTreeMap::from([("a.conf".to_string(), b"SecRuleEngine On".to_vec())]),
            },
        });
        i
    }
}

fn assert_same_snapshot(incremental: &XdsSnapshot, full: &XdsSnapshot, what: &str) {
    for t in PUSH_ORDER {
        let (a, b) = (&incremental.types[t], &full.types[t]);
        assert_eq!(a.version, b.version, "{t} version after {what}");
        assert_eq!(a.resources.len(), b.resources.len(), "{t} after {what}");
        for ((na, ra), (nb, rb)) in a.resources.iter().zip(b.resources.iter()) {
            assert_eq!(na, nb, "{t} after {what}");
            assert_eq!(ra, rb, "{t} {na} after {what}");
        }
    }
}

#[test]
fn incremental_equals_full_rebuild_for_random_changes() {
    for seed in [1u64, 7, 42, 1234, 99_991] {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut world = World::new(&mut rng, 12);
        let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
        let mut translator = Translator::new(TranslateConfig::default());
        let mut previous: Option<(Model, XdsSnapshot)> = None;
        for step in 0..60 {
            let what = if step == 0 {
                "start".to_string()
            } else {
                world.change(&mut rng)
            };
            let inputs = world.inputs();
            let model = builder.build(&inputs);
            assert!(model.problems.is_empty(), "{:?}", model.problems);
            let snapshot = translator.translate(&model);

            let fresh = ModelBuilder::new(Arc::new(AcceptAll)).build(&inputs);
            assert_eq!(model, fresh, "seed {seed} step {step}: model after {what}");
            let full = translate(&fresh, &TranslateConfig::default());
            assert_same_snapshot(
                &snapshot,
                &full,
                &format!("seed {seed} step {step}: {what}"),
            );

            if let Some((prev_model, prev)) = &previous {
                // Unchanged services are handed over as the same Arc.
                for (k, s) in &model.services {
                    if let Some(p) = prev_model.services.get(k) {
                        if p == s {
                            assert!(Arc::ptr_eq(p, s), "{k} re-made after {what}");
                        }
                    }
                }
                // The recorded deltas are exactly the resources whose version moved.
                for t in PUSH_ORDER {
                    let (before, now) = (&prev.types[t], &snapshot.types[t]);
                    let d = &snapshot.deltas[t];
                    assert_eq!(d.from_version, before.version);
                    let mut expected: Vec<&str> = now
                        .resources
                        .iter()
                        .filter(|(n, r)| {
                            before.resources.get(*n).map(|b| &b.version) != Some(&r.version)
                        })
                        .map(|(n, _)| &**n)
                        .collect();
                    expected.sort();
                    let mut got: Vec<&str> = d.changed.iter().map(|n| &**n).collect();
                    got.sort();
                    assert_eq!(got, expected, "{t} changed after {what}");
                    let removed: Vec<&str> = before
                        .resources
                        .keys()
                        .filter(|n| !now.resources.contains_key(*n))
                        .map(|n| &**n)
                        .collect();
                    let mut got: Vec<&str> = d.removed.iter().map(|n| &**n).collect();
                    got.sort();
                    assert_eq!(got, removed, "{t} removed after {what}");
                }
            }
            previous = Some((model, snapshot));
        }
    }
}

#[test]
fn an_endpoint_change_moves_one_resource_version() {
    let mut rng = Rng(5);
    let mut world = World::new(&mut rng, 30);
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let mut translator = Translator::new(TranslateConfig::default());
    let before = translator.translate(&builder.build(&world.inputs()));
    let svc = world.services.get_mut(&3).unwrap();
    svc.endpoints[0] = svc.endpoints[0].wrapping_add(100);
    let ns = svc.ns;
    let after = translator.translate(&builder.build(&world.inputs()));
    let changed = format!("ns-{ns}/svc-3:80");
    for t in PUSH_ORDER {
        for (name, r) in after.types[t].resources.iter() {
            let old = &before.types[t].resources[name];
            if t == ENDPOINT && **name == *changed {
                assert_ne!(old.version, r.version);
            } else {
                assert_eq!(old.version, r.version, "{t} {name}");
                assert!(Arc::ptr_eq(old, r), "{t} {name} was re-made");
            }
        }
        if t != ENDPOINT {
            assert_eq!(before.types[t].version, after.types[t].version, "{t}");
        }
    }
    let names: Vec<&str> = after.deltas[ENDPOINT]
        .changed
        .iter()
        .map(|n| &**n)
        .collect();
    assert_eq!(names, [changed.as_str()]);
}

async fn serve(snapshot: XdsSnapshot) -> (watch::Sender<Option<Arc<XdsSnapshot>>>, SocketAddr) {
    let (tx, rx) = watch::channel(Some(Arc::new(snapshot)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AdsServer::new(rx, Status::new()).into_service();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (tx, addr)
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

async fn next<T: prost::Message + Default>(s: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), s.message())
        .await
        .expect("a response within the bound")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_clients_get_only_changed_resources() {
    let mut rng = Rng(11);
    let mut world = World::new(&mut rng, 40);
    let mut builder = ModelBuilder::new(Arc::new(AcceptAll));
    let mut translator = Translator::new(TranslateConfig::default());
    let first = translator.translate(&builder.build(&world.inputs()));
    let eds_names: Vec<String> = first.types[ENDPOINT]
        .resources
        .keys()
        .map(|k| k.to_string())
        .collect();
    let (tx, addr) = serve(first.clone()).await;

    let mut c = client(addr).await;
    let (req_tx, req_rx) = mpsc::channel(16);
    for (t, names) in [
        (CLUSTER, Vec::new()),
        (ENDPOINT, eds_names.clone()),
        (LISTENER, Vec::new()),
        (ROUTE, vec!["palisade-routes".to_string()]),
    ] {
        req_tx
            .send(DeltaDiscoveryRequest {
                node: Some(Node {
                    id: "delta-test".into(),
                    ..Default::default()
                }),
                type_url: t.into(),
                resource_names_subscribe: names,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut stream = c
        .delta_aggregated_resources(ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    let ack = |r: &DeltaDiscoveryResponse| DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..Default::default()
    };
    // The full state first, every resource as the snapshot has it.
    let mut have: BTreeMap<(String, String), String> = BTreeMap::new();
    let total: usize = PUSH_ORDER
        .iter()
        .map(|t| first.types[*t].resources.len())
        .sum();
    while have.len() < total {
        let r = next(&mut stream).await;
        req_tx.send(ack(&r)).await.unwrap();
        for res in r.resources {
            let body = res.resource.expect("a resource body");
            assert_eq!(
                body,
                first.types[&r.type_url].resources[res.name.as_str()].body
            );
            have.insert((r.type_url.clone(), res.name), res.version);
        }
    }

    // Two endpoint changes, published one after the other: the client gets
    // exactly one ClusterLoadAssignment each, nothing else in between.
    let mut expected = Vec::new();
    let mut previous = first;
    for s in [7usize, 23] {
        let svc = world.services.get_mut(&s).unwrap();
        svc.endpoints[0] = svc.endpoints[0].wrapping_add(1);
        expected.push(format!("ns-{}/svc-{s}:80", svc.ns));
        let next_snapshot = translator.translate(&builder.build(&world.inputs()));
        assert!(!next_snapshot.same_versions(&previous));
        previous = next_snapshot.clone();
        tx.send(Some(Arc::new(next_snapshot))).unwrap();
        // Wait for this change before publishing the next one (the watch
        // channel would otherwise merge them).
        let r = next(&mut stream).await;
        req_tx.send(ack(&r)).await.unwrap();
        assert_eq!(r.type_url, ENDPOINT);
        assert!(r.removed_resources.is_empty());
        let names: Vec<&str> = r.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [expected.last().unwrap().as_str()]);
        let got = &r.resources[0];
        let want = &previous.types[ENDPOINT].resources[got.name.as_str()];
        assert_eq!(got.version, want.version);
        assert_eq!(got.resource.as_ref(), Some(&want.body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_clients_get_every_resource_written_by_the_codec() {
    let mut rng = Rng(3);
    let world = World::new(&mut rng, 25);
    let model = ModelBuilder::new(Arc::new(AcceptAll)).build(&world.inputs());
    let snapshot = translate(&model, &TranslateConfig::default());
    let (_tx, addr) = serve(snapshot.clone()).await;
    let mut c = client(addr).await;
    let (req_tx, req_rx) = mpsc::channel(4);
    let names: Vec<String> = snapshot.types[ENDPOINT]
        .resources
        .keys()
        .take(10)
        .map(|k| k.to_string())
        .collect();
    for (t, names) in [(CLUSTER, Vec::new()), (ENDPOINT, names.clone())] {
        req_tx
            .send(DiscoveryRequest {
                node: Some(Node {
                    id: "sotw-test".into(),
                    ..Default::default()
                }),
                type_url: t.into(),
                resource_names: names,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut stream = c
        .stream_aggregated_resources(ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        let r = next(&mut stream).await;
        let ts = &snapshot.types[&r.type_url];
        assert_eq!(r.version_info, ts.version);
        let expected: Vec<_> = if r.type_url == ENDPOINT {
            names
                .iter()
                .map(|n| ts.resources[n.as_str()].body.clone())
                .collect()
        } else {
            ts.resources.values().map(|r| r.body.clone()).collect()
        };
        assert_eq!(r.resources, expected, "{}", r.type_url);
        seen.insert(r.type_url.clone(), r.nonce.clone());
    }
}
