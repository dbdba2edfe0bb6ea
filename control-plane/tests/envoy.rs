//! End-to-end tests with a real Envoy bootstrapped with only the ADS cluster:
//! it gets listeners, routes, clusters and endpoints from the control plane in
//! directory mode (state of the world and delta), follows a file edit, and
//! rejects an invalid resource, which is reported and not sent again.
//!
//! Envoy comes from `PALISADE_ENVOY` or `<repo>/.tools/bin/envoy` (installed by
//! `scripts/setup`). Every wait is a bounded poll; every process is killed on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_control_plane::run::{self, RunConfig, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::status::Status;
use palisade_control_plane::xds::ads::AdsServer;
use palisade_control_plane::xds::translate::TranslateConfig;
use palisade_control_plane::xds::{to_any, XdsResource, XdsSnapshot, CLUSTER, LISTENER, ROUTE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("PALISADE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/bin/envoy"));
    assert!(
        path.is_file(),
        "Envoy not found at {}: run scripts/setup (or set PALISADE_ENVOY)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

struct Envoy {
    child: Child,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    fn start(xds: SocketAddr, node: &str, delta: bool) -> Envoy {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let api_type = if delta { "DELTA_GRPC" } else { "GRPC" };
        let bootstrap = format!(
            r#"node: {{id: "{node}", cluster: palisade}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {ip}, port_value: {port}}}}}}}
"#,
            ip = xds.ip(),
            port = xds.port()
        );
        let path = dir.path().join("bootstrap.yaml");
        std::fs::write(&path, bootstrap).unwrap();
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "info",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start envoy");
        Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("envoy.log")).unwrap_or_default()
    }

    async fn config_dump(&self) -> String {
        http_get(self.admin, "/config_dump?include_eds")
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Polls config_dump (at most `limit`) until `pred` holds; returns the dump.
    async fn wait_dump(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let dump = self.config_dump().await;
            if pred(&dump) {
                return dump;
            }
            assert!(
                start.elapsed() < limit,
                "Envoy config did not reach the expected state; last dump:\n{}\nlog:\n{}",
                &dump[..dump.len().min(4000)],
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Copies the repository's policies (manifests, rulesets, modsecdefault) to a temp dir.
fn policies_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let p = e.path();
            let dest = to.join(e.file_name());
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&repo().join("policies"), dir.path());
    dir
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start_directory_mode(dir: &Path, envoy_port: u16) -> run::Running {
    let mut d = DirectoryConfig::new(dir);
    d.poll_interval = Duration::from_millis(50);
    run::start(RunConfig {
        source: SourceConfig::Directory(d),
        xds_listen: loopback(),
        sync_listen: loopback(),
        admin_listen: loopback(),
        translate: TranslateConfig {
            listen_host: "127.0.0.1".into(),
            listen_port: envoy_port,
            enforcer_socket: dir.join("enforcer.sock"),
            ext_authz_timeout: Duration::from_millis(500),
        },
    })
    .await
    .expect("control plane starts")
}

async fn directory_mode(delta: bool) {
    let policies = policies_copy();
    let cp = start_directory_mode(policies.path(), free_port()).await;
    let node = if delta { "node-delta" } else { "node-sotw" };
    let envoy = Envoy::start(cp.xds_addr, node, delta);

    let dump = envoy
        .wait_dump(Duration::from_secs(60), |d| {
            d.contains("productpage.bookinfo.svc.cluster.local") && d.contains("127.0.0.1\",\n")
                || (d.contains("productpage.bookinfo.svc.cluster.local")
                    && d.contains("\"port_value\": 18080"))
        })
        .await;
    for needle in [
        "\"name\": \"palisade-http\"",
        "envoy.filters.http.ext_authz",
        "palisade.service",
        "bookinfo/productpage",
        "web/www",
        "www.web.svc.cluster.local",
        "bookinfo/productpage:9080",
        "palisade-enforcer",
        "enforcer.sock",
        "\"failure_mode_allow\"",
        "\"encode_raw_headers\": true",
    ] {
        // failure_mode_allow is false (Deny) in the example, so Envoy leaves it out.
        if needle == "\"failure_mode_allow\"" {
            assert!(!dump.contains(needle), "failure_mode_allow should be false");
            continue;
        }
        assert!(dump.contains(needle), "config_dump lacks {needle}");
    }

    // Annotate a new service by adding a file: it appears within the bounded wait.
    std::fs::write(
        policies.path().join("reviews.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations:\n    palisade.dev/waf: DetectionOnly\n    palisade.dev/upstream: 127.0.0.1:18081\nspec:\n  ports: [{name: http, port: 9080}]\n",
    )
    .unwrap();
    let edited = Instant::now();
    envoy
        .wait_dump(Duration::from_secs(20), |d| {
            d.contains("reviews.bookinfo.svc.cluster.local") && d.contains("\"port_value\": 18081")
        })
        .await;
    eprintln!(
        "{node}: new service in Envoy's config {:?} after the edit",
        edited.elapsed()
    );

    // Remove it again: it disappears.
    std::fs::remove_file(policies.path().join("reviews.yaml")).unwrap();
    envoy
        .wait_dump(Duration::from_secs(20), |d| {
            !d.contains("reviews.bookinfo.svc.cluster.local")
        })
        .await;

    // The status shows the node with every type acknowledged.
    let start = Instant::now();
    loop {
        let (code, body) = http_get(cp.admin_addr, "/status").await.unwrap();
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let types = &v["nodes"][node]["envoy"]["types"];
        let synced = [
            "Cluster",
            "ClusterLoadAssignment",
            "Listener",
            "RouteConfiguration",
        ]
        .iter()
        .all(|t| !types[t]["acked"].is_null() && types[t]["acked"] == types[t]["sent"]);
        if synced {
            assert_eq!(
                v["nodes"][node]["envoy"]["protocol"],
                if delta { "delta" } else { "sotw" }
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "status never showed the node in sync: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = http_get(cp.admin_addr, "/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!(
            "palisade_xds_in_sync{{node=\"{node}\",type=\"Listener\"}} 1"
        )),
        "{metrics}"
    );
    drop(envoy);
    cp.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gets_config_from_directory_sotw() {
    directory_mode(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gets_config_from_directory_delta() {
    directory_mode(true).await;
}

/// A snapshot with one listener, one route configuration and one cluster; the
/// route configuration repeats a domain when `bad` (Envoy rejects that).
fn handmade_snapshot(listen_port: u16, marker: &str, bad: bool) -> XdsSnapshot {
    use xds_api::pb::envoy::config::cluster::v3 as cluster;
    use xds_api::pb::envoy::config::core::v3 as core;
    use xds_api::pb::envoy::config::listener::v3 as listener;
    use xds_api::pb::envoy::config::route::v3 as route;
    use xds_api::pb::envoy::extensions::filters::http::router::v3 as router;
    use xds_api::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;

    let ads = core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    };
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "t".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads),
                route_config_name: "routes".into(),
            },
        )),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(to_any(
                "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                &router::Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let lst = listener::Listener {
        name: "l".into(),
        address: Some(core::Address {
            address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(listen_port))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(to_any(
                    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    &manager,
                ))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut domains = vec![format!("{marker}.example")];
    if bad {
        domains.push(format!("{marker}.example"));
    }
    let routes = route::RouteConfiguration {
        name: "routes".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "v".into(),
            domains,
            ..Default::default()
        }],
        ..Default::default()
    };
    let c = cluster::Cluster {
        name: format!("static-{marker}"),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(xds_api::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    let one = |type_url: &str, name: &str, any| {
        (
            type_url.to_string(),
            BTreeMap::from([(name.to_string(), XdsResource::new(any))]),
        )
    };
    XdsSnapshot::from_resources([
        one(LISTENER, "l", to_any(LISTENER, &lst)),
        one(ROUTE, "routes", to_any(ROUTE, &routes)),
        one(CLUSTER, &c.name.clone(), to_any(CLUSTER, &c)),
    ])
}

async fn nack_is_reported_and_not_resent(delta: bool) {
    let status = Status::new();
    let mut port = free_port();
    let mut good = handmade_snapshot(port, "good", false);
    let (tx, rx) = watch::channel(Some(Arc::new(good.clone())));
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let xds = listener.local_addr().unwrap();
    let service = AdsServer::new(rx, status.clone()).into_service();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    let node = if delta { "nack-delta" } else { "nack-sotw" };
    let envoy = Envoy::start(xds, node, delta);
    // What /status says of one resource type of this node's Envoy.
    let type_status = |s: &Status, kind: &str| {
        s.report()
            .nodes
            .get(node)
            .and_then(|n| n.envoy.clone())
            .and_then(|e| e.types.get(kind).cloned())
    };
    let route_status = |s: &Status| type_status(s, "RouteConfiguration");
    let listener_status = |s: &Status| type_status(s, "Listener");
    let mut good_version = good.types[ROUTE].version.clone();
    let start = Instant::now();
    let mut retries = 0;
    loop {
        let listener_version = good.types[LISTENER].version.clone();
        let listener = listener_status(&status);
        if route_status(&status).and_then(|t| t.acked) == Some(good_version.clone())
            && listener.as_ref().and_then(|t| t.acked.clone()) == Some(listener_version.clone())
        {
            break;
        }
        // The listener's port was free when picked, but another process
        // may have bound it since: move the listener to another port.
        let nacked = listener.and_then(|t| t.nacked);
        if let Some(n) = nacked.filter(|n| n.version == listener_version) {
            assert!(
                n.error.contains("already in use") && retries < 5,
                "listener rejected: {}",
                n.error
            );
            retries += 1;
            port = free_port();
            good = handmade_snapshot(port, "good", false);
            good_version = good.types[ROUTE].version.clone();
            tx.send(Some(Arc::new(good.clone()))).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "good routes never acknowledged; log:\n{}",
            envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    envoy
        .wait_dump(Duration::from_secs(20), |d| d.contains("good.example"))
        .await;

    // Push the invalid route configuration.
    let bad = handmade_snapshot(port, "bad", true);
    let bad_version = bad.types[ROUTE].version.clone();
    tx.send(Some(Arc::new(bad))).unwrap();
    let start = Instant::now();
    let rejected = loop {
        if let Some(n) = route_status(&status).and_then(|t| t.nacked) {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no NACK recorded; log:\n{}",
            envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rejected.version, bad_version);
    assert!(
        rejected.error.to_lowercase().contains("domain"),
        "{}",
        rejected.error
    );
    let responses = route_status(&status).map(|t| t.responses).unwrap_or(0);

    // A later change to another type must not re-send the rejected routes.
    let mut next = handmade_snapshot(port, "bad", true);
    let other = handmade_snapshot(port, "other", false);
    next.types
        .insert(CLUSTER.to_string(), other.types[CLUSTER].clone());
    tx.send(Some(Arc::new(next))).unwrap();
    envoy
        .wait_dump(Duration::from_secs(20), |d| d.contains("static-other"))
        .await;
    let after = route_status(&status).unwrap();
    assert_eq!(
        after.responses, responses,
        "the rejected route configuration was sent again"
    );
    assert_eq!(after.acked.as_deref(), Some(good_version.as_str()));
    // Envoy still serves the last accepted routes.
    let dump = envoy.config_dump().await;
    assert!(dump.contains("good.example") && !dump.contains("bad.example"));
    // The NACK shows in /status's data.
    let report = status.report();
    assert_eq!(
        report.nodes[node].envoy.as_ref().unwrap().types["RouteConfiguration"].nacks,
        1
    );
    drop(envoy);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resource_is_nacked_reported_and_not_resent_sotw() {
    nack_is_reported_and_not_resent(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resource_is_nacked_reported_and_not_resent_delta() {
    nack_is_reported_and_not_resent(true).await;
}

/// The enforcer binary: `PALISADE_ENFORCER`, or beside this test's target dir.
fn enforcer_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PALISADE_ENFORCER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let path = debug.join("palisade-enforcer");
    assert!(
        path.is_file(),
        "palisade-enforcer not found at {}: build it (cargo build -p palisade-enforcer) or set PALISADE_ENFORCER",
        path.display()
    );
    path
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tiny upstream answering 200 "upstream ok" to everything.
async fn upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream ok")
                    .await;
            });
        }
    });
    (addr, task)
}

async fn status_of(envoy_port: u16, method: &str, host: &str, path: &str) -> u16 {
    let addr = SocketAddr::from(([127, 0, 0, 1], envoy_port));
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: palisade-test\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Polls until the request gets `want` (bounded); returns how long it took.
async fn expect_status(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    want: u16,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = status_of(port, method, host, path).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{method} {host}{path}: got {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SQLI: &str = "/test/artists.php?artist=0+div+1+union%23foo*%2F*bar%0D%0Aselect%23foo%0D%0A1%2C2%2Ccurrent_user";
const PRODUCTPAGE: &str = "productpage.bookinfo.svc.cluster.local";
const WWW: &str = "www.web.svc.cluster.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_envoy_and_enforcer_follows_policy_files() {
    let (up, up_task) = upstream().await;
    let policies = policies_copy();
    for f in ["bookinfo.yaml", "www.yaml"] {
        let p = policies.path().join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("127.0.0.1:18080", &up.to_string())).unwrap();
    }
    let envoy_port = free_port();
    let cp = start_directory_mode(policies.path(), envoy_port).await;
    let socket = policies.path().join("enforcer.sock");
    let events = policies.path().join("events.log");
    let enforcer = Process(
        Command::new(enforcer_binary())
            .arg("--socket")
            .arg(&socket)
            .arg("--control-plane")
            .arg(format!("http://{}", cp.sync_addr))
            .args(["--node", "traffic-node", "--metrics-addr", "off"])
            .arg("--events-file")
            .arg(&events)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the enforcer"),
    );
    let envoy = Envoy::start(cp.xds_addr, "traffic-node", false);
    let limit = Duration::from_secs(60);

    expect_status(envoy_port, "GET", PRODUCTPAGE, "/productpage", 200, limit).await;
    expect_status(envoy_port, "GET", PRODUCTPAGE, SQLI, 403, limit).await;
    expect_status(envoy_port, "OPTIONS", PRODUCTPAGE, "/", 403, limit).await;
    expect_status(envoy_port, "GET", WWW, "/", 200, limit).await;
    expect_status(envoy_port, "GET", WWW, "/robots.txt", 200, limit).await;
    expect_status(envoy_port, "GET", WWW, "/.git/HEAD", 403, limit).await;
    expect_status(envoy_port, "GET", WWW, "/about", 403, limit).await;

    // Allow /about on www by editing the policy file.
    let www = policies.path().join("www.yaml");
    let text = std::fs::read_to_string(&www).unwrap();
    std::fs::write(
        &www,
        text.replace(
            "          - exact: /robots.txt\n",
            "          - exact: /robots.txt\n          - exact: /about\n",
        ),
    )
    .unwrap();
    let took = expect_status(
        envoy_port,
        "GET",
        WWW,
        "/about",
        200,
        Duration::from_secs(20),
    )
    .await;
    eprintln!("policy edit reached traffic in {took:?}");

    // Switch productpage to DetectionOnly: the injection is logged, not blocked.
    let bookinfo = policies.path().join("bookinfo.yaml");
    let text = std::fs::read_to_string(&bookinfo).unwrap();
    std::fs::write(
        &bookinfo,
        text.replace(
            "palisade.dev/waf: \"On\"",
            "palisade.dev/waf: DetectionOnly",
        ),
    )
    .unwrap();
    let took = expect_status(
        envoy_port,
        "GET",
        PRODUCTPAGE,
        SQLI,
        200,
        Duration::from_secs(20),
    )
    .await;
    eprintln!("mode edit reached traffic in {took:?}");

    // The node's Envoy and enforcer are reported in sync.
    let report = cp.status.report();
    let node = &report.nodes["traffic-node"];
    let e = node.enforcer.as_ref().expect("enforcer status");
    assert!(e.connected);
    assert!(node.envoy.as_ref().is_some_and(|e| e.connected));
    drop(envoy);
    drop(enforcer);
    cp.shutdown();
    up_task.abort();
}
