//! The enforcer and the control plane over mutual TLS, as the Helm chart runs
//! them: the control plane serves policy sync with `palisade_control_plane::tls`,
//! the enforcer connects to `https://localhost:PORT` with its client
//! certificate and the CA from its flags, applies the State and acks it; an
//! enforcer whose certificate comes from another CA never gets a State.
//!
//! Certificates are generated with rcgen; everything runs in-process on
//! 127.0.0.1 with ephemeral ports and bounded waits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use palisade_control_plane::run::{self, RunConfig, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::tls::{server_config, Role, TlsFiles};
use palisade_control_plane::xds::translate::TranslateConfig;
use palisade_enforcer::config::{Args, Config};

const WAIT: Duration = Duration::from_secs(30);

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).expect("ca"), key)
}

fn leaf(names: &[&str], ca: &(rcgen::Certificate, rcgen::KeyPair)) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.signed_by(&key, &ca.0, &ca.1).expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// CA, server certificate (localhost), node certificate, and a node
/// certificate from an unrelated CA, written as PEM files.
fn pki(dir: &Path) {
    let ca_pair = ca("palisade-test-ca");
    let other = ca("someone-else");
    let (server_crt, server_key) = leaf(&["localhost", "127.0.0.1"], &ca_pair);
    let (node_crt, node_key) = leaf(&["palisade-node"], &ca_pair);
    let (other_crt, other_key) = leaf(&["palisade-node"], &other);
    for (name, text) in [
        ("ca.crt", ca_pair.0.pem()),
        ("server.crt", server_crt),
        ("server.key", server_key),
        ("node.crt", node_crt),
        ("node.key", node_key),
        ("other.crt", other_crt),
        ("other.key", other_key),
    ] {
        std::fs::write(dir.join(name), text).expect("write");
    }
}

fn policies_copy(to: &Path) {
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
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        to,
    );
}

/// An enforcer configured from flags, as the chart's environment would set them.
async fn enforcer(
    dir: &Path,
    name: &str,
    sync: SocketAddr,
    crt: &Path,
    key: &Path,
) -> palisade_enforcer::Running {
    let socket = dir.join(format!("{name}.sock"));
    let uri = format!("https://localhost:{}", sync.port());
    let ca = dir.join("ca.crt");
    let argv: Vec<PathBuf> = vec![
        "palisade-enforcer".into(),
        "--socket".into(),
        socket,
        "--metrics-addr".into(),
        "off".into(),
        "--node".into(),
        name.into(),
        "--control-plane".into(),
        uri.into(),
        "--tls-cert".into(),
        crt.into(),
        "--tls-key".into(),
        key.into(),
        "--tls-ca".into(),
        ca,
        "--events-file".into(),
        dir.join(format!("{name}.events")),
    ];
    let config = Config::try_from(<Args as clap::Parser>::parse_from(argv)).expect("config");
    palisade_enforcer::start(config)
        .await
        .expect("enforcer starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcer_syncs_policy_over_mtls() {
    let dir = tempfile::tempdir().expect("temp dir");
    pki(dir.path());
    let policies = dir.path().join("policies");
    policies_copy(&policies);
    let tls = server_config(&TlsFiles {
        role: Role::Server,
        cert: dir.path().join("server.crt"),
        key: dir.path().join("server.key"),
        ca: dir.path().join("ca.crt"),
    })
    .expect("server TLS");
    let mut source = DirectoryConfig::new(&policies);
    source.poll_interval = Duration::from_millis(50);
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let cp = run::start_with_tls(
        RunConfig {
            source: SourceConfig::Directory(source),
            xds_listen: any,
            sync_listen: any,
            admin_listen: any,
            translate: TranslateConfig::default(),
        },
        Some(tls),
    )
    .await
    .expect("control plane starts");

    // The node's certificate: the State is applied and acked.
    let node = enforcer(
        dir.path(),
        "node-a",
        cp.sync_addr,
        &dir.path().join("node.crt"),
        &dir.path().join("node.key"),
    )
    .await;
    let start = Instant::now();
    let version = loop {
        let report = cp.status.report();
        let acked = report
            .nodes
            .get("node-a")
            .and_then(|n| n.enforcer.clone())
            .and_then(|e| e.applied);
        if let Some(v) = acked.filter(|v| node.shared.snapshots.version().as_ref() == Some(v)) {
            break v;
        }
        assert!(start.elapsed() < WAIT, "no acked State: {report:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!version.is_empty());

    // A certificate from another CA: refused at the handshake, never a State
    // (waits for a few reconnects, bounded).
    let stranger = enforcer(
        dir.path(),
        "node-b",
        cp.sync_addr,
        &dir.path().join("other.crt"),
        &dir.path().join("other.key"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stranger.shared.snapshots.version(), None);
    let report = cp.status.report();
    assert!(
        report
            .nodes
            .get("node-b")
            .and_then(|n| n.enforcer.as_ref())
            .is_none(),
        "{report:?}"
    );
    stranger.stop().await;
    node.stop().await;
    cp.shutdown();
}
