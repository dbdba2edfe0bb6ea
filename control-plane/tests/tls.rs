//! The control plane with mutual TLS (`palisade_control_plane::tls`): a policy-sync
//! client with a certificate from the client CA gets its State; clients without a
//! certificate, with one from another CA, or in plain text are refused; a real
//! Envoy bootstrapped with an mTLS ADS cluster (as the Helm chart writes it) gets
//! its listeners over xDS.
//!
//! Certificates are generated per test with rcgen. Envoy comes from
//! `PALISADE_ENVOY` or `<repo>/.tools/bin/envoy`. Every wait is bounded; Envoy is
//! killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use palisade_control_plane::run::{self, RunConfig, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::tls::server_tls_config;
use palisade_control_plane::xds::translate::TranslateConfig;
use palisade_proto::sync::v1 as pb;
use palisade_proto::sync::v1::policy_sync_client::PolicySyncClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const WAIT: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A CA, a server certificate for `localhost`/127.0.0.1, a client certificate
/// from the same CA, and a client certificate from an unrelated CA, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).expect("ca"), key)
}

fn leaf(
    names: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &ca.0, &ca.1).expect("cert");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = new_ca("palisade-test-ca");
        let other = new_ca("someone-else");
        let (server_crt, server_key) = leaf(&["localhost", "127.0.0.1"], ServerAuth, &ca);
        let (client_crt, client_key) = leaf(&["node-1"], ClientAuth, &ca);
        let (other_crt, other_key) = leaf(&["node-1"], ClientAuth, &other);
        for (name, text) in [
            ("ca.crt", ca.0.pem()),
            ("server.crt", server_crt),
            ("server.key", server_key),
            ("client.crt", client_crt),
            ("client.key", client_key),
            ("other.crt", other_crt),
            ("other.key", other_key),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read")
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The repository's policies, copied so the test owns them.
fn policies_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir").flatten() {
            let p = e.path();
            let dest = to.join(e.file_name());
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    copy(&repo().join("policies"), dir.path());
    dir
}

async fn start_tls(pki: &Pki, policies: &Path, envoy_port: u16) -> run::Running {
    let tls = server_tls_config(
        &pki.path("server.crt"),
        &pki.path("server.key"),
        &pki.path("ca.crt"),
    )
    .expect("TLS files load");
    let mut d = DirectoryConfig::new(policies);
    d.poll_interval = Duration::from_millis(50);
    run::start_with_tls(
        RunConfig {
            source: SourceConfig::Directory(d),
            xds_listen: loopback(),
            sync_listen: loopback(),
            admin_listen: loopback(),
            translate: TranslateConfig {
                listen_host: "127.0.0.1".into(),
                listen_port: envoy_port,
                enforcer_socket: policies.join("enforcer.sock"),
                ext_authz_timeout: Duration::from_millis(500),
            },
        },
        Some(tls),
    )
    .await
    .expect("control plane starts")
}

/// Opens a policy-sync stream with `tls` (or plain text) and returns the first
/// control message, or the error that stopped it.
async fn first_message(
    uri: String,
    tls: Option<ClientTlsConfig>,
) -> Result<(pb::control_message::Kind, mpsc::Sender<pb::EnforcerMessage>), String> {
    let attempt = async {
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| e.to_string())?;
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
        let mut client = PolicySyncClient::new(channel).max_decoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(8);
        tx.send(pb::EnforcerMessage {
            kind: Some(pb::enforcer_message::Kind::Hello(pb::Hello {
                node: "node-1".into(),
                enforcer_version: "test".into(),
                active_version: String::new(),
            })),
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut stream = client
            .sync(ReceiverStream::new(rx))
            .await
            .map_err(|e| format!("{e:?}"))?
            .into_inner();
        let message = stream
            .message()
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("stream closed")?;
        let kind = message.kind.ok_or("empty message")?;
        // Keep the stream open for the caller's ack.
        tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
        Ok((kind, tx))
    };
    tokio::time::timeout(WAIT, attempt)
        .await
        .map_err(|_| "no answer within the bound".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_sync_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let policies = policies_copy();
    let cp = start_tls(&pki, policies.path(), free_port()).await;
    let https = format!("https://127.0.0.1:{}", cp.sync_addr.port());
    let trust = || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.crt")));
    let identity = |crt: &str, key: &str| Identity::from_pem(pki.read(crt), pki.read(key));

    // A certificate from the client CA: State, then the ack shows in /status.
    let (kind, tx) = first_message(
        https.clone(),
        Some(trust().identity(identity("client.crt", "client.key"))),
    )
    .await
    .expect("mTLS client gets a message");
    let pb::control_message::Kind::State(state) = kind else {
        panic!("State first, got {kind:?}")
    };
    assert!(!state.version.is_empty());
    tx.send(pb::EnforcerMessage {
        kind: Some(pb::enforcer_message::Kind::Ack(pb::Ack {
            version: state.version.clone(),
            applied: true,
            error: String::new(),
        })),
    })
    .await
    .expect("send ack");
    let start = Instant::now();
    loop {
        let report = cp.status.report();
        let applied = report
            .nodes
            .get("node-1")
            .and_then(|n| n.enforcer.clone())
            .and_then(|e| e.applied);
        if applied.as_deref() == Some(state.version.as_str()) {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "status never showed the ack: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Refused: no certificate, one from another CA, plain text.
    let refused = [
        ("no client certificate", https.clone(), Some(trust())),
        (
            "certificate from another CA",
            https.clone(),
            Some(trust().identity(identity("other.crt", "other.key"))),
        ),
        (
            "plain text",
            format!("http://127.0.0.1:{}", cp.sync_addr.port()),
            None,
        ),
    ];
    for (what, uri, tls) in refused {
        let result = first_message(uri, tls).await;
        match result {
            Ok((kind, _)) => panic!("{what}: accepted, got {kind:?}"),
            // Refused by the server (closed or a TLS alert), not just slow.
            Err(e) => assert!(!e.contains("within the bound"), "{what}: {e}"),
        }
    }
    cp.shutdown();
}

struct Envoy {
    child: Child,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Envoy whose only static cluster is the ADS connection to `xds` over
    /// mTLS, checking the server's certificate for `localhost` (the shape of
    /// the Helm chart's bootstrap).
    fn start(xds: SocketAddr, pki: &Pki, crt: &str, key: &str) -> Envoy {
        let envoy = std::env::var_os("PALISADE_ENVOY")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".tools/bin/envoy"));
        assert!(
            envoy.is_file(),
            "Envoy not found at {}: run scripts/setup (or set PALISADE_ENVOY)",
            envoy.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let admin_port = free_port();
        let bootstrap = format!(
            r#"node: {{id: node-1, cluster: palisade-node}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{{envoy_grpc: {{cluster_name: palisade_xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: palisade_xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: palisade_xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {ip}, port_value: {port}}}}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          alpn_protocols: [h2]
          tls_params: {{tls_minimum_protocol_version: TLSv1_2}}
          tls_certificates:
          - certificate_chain: {{filename: "{crt}"}}
            private_key: {{filename: "{key}"}}
          validation_context:
            trusted_ca: {{filename: "{ca}"}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: localhost}}
"#,
            ip = xds.ip(),
            port = xds.port(),
            crt = pki.path(crt).display(),
            key = pki.path(key).display(),
            ca = pki.path("ca.crt").display(),
        );
        let path = dir.path().join("bootstrap.yaml");
        std::fs::write(&path, bootstrap).expect("write bootstrap");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log file");
        let child = Command::new(envoy)
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
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    async fn config_dump(&self) -> String {
        self.admin_get("/config_dump").await
    }

    async fn admin_get(&self, path: &str) -> String {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.admin).await else {
            return String::new();
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if s.write_all(request.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Polls the admin config dump until `pred` holds or `limit` passes.
    async fn wait_dump(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let dump = self.config_dump().await;
            if pred(&dump) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(dump);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gets_listeners_over_mtls_ads() {
    let pki = Pki::new();
    let policies = policies_copy();
    let cp = start_tls(&pki, policies.path(), free_port()).await;
    let has_listener = |d: &str| {
        d.contains("\"name\": \"palisade-http\"") && d.contains("envoy.filters.http.ext_authz")
    };

    let envoy = Envoy::start(cp.xds_addr, &pki, "client.crt", "client.key");
    if let Err(dump) = envoy.wait_dump(Duration::from_secs(60), has_listener).await {
        panic!(
            "Envoy never got the listener over mTLS; last dump:\n{}\nlog:\n{}",
            &dump[..dump.len().min(4000)],
            envoy.log()
        );
    }
    let report = cp.status.report();
    assert!(report.nodes.contains_key("node-1"), "{report:?}");
    drop(envoy);

    // A client certificate from another CA: the handshake fails, no config.
    // Wait (bounded) until Envoy has tried the ADS cluster a few times.
    let stranger = Envoy::start(cp.xds_addr, &pki, "other.crt", "other.key");
    let start = Instant::now();
    loop {
        let dump = stranger.config_dump().await;
        assert!(
            !has_listener(&dump),
            "a stranger got config:\n{}",
            stranger.log()
        );
        let stats = stranger
            .admin_get("/stats?filter=^cluster\\.palisade_xds\\.upstream_cx_total$")
            .await;
        let attempts: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("cluster.palisade_xds.upstream_cx_total: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if attempts >= 3 {
            let state = stranger
                .admin_get("/stats?filter=^control_plane\\.connected_state$")
                .await;
            assert!(
                state.contains("control_plane.connected_state: 0"),
                "{state}\n{}",
                stranger.log()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Envoy did not retry the ADS cluster: {stats}\n{}",
            stranger.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cp.shutdown();
}
