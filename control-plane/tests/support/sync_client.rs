//! Test support for the policy-sync tests: a control plane in directory
//! mode on a copy of `policies/`, and a fake enforcer connected to it.
//! Included with `#[path]` by the test files that use it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use palisade_control_plane::run::{self, RunConfig, Running, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::xds::translate::TranslateConfig;
use palisade_proto::sync::v1 as pb;
use palisade_proto::sync::v1::policy_sync_client::PolicySyncClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Copies the directory tree `from` to `to`.
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Copies the repository's `policies/` into `dir`, writes the `files`
/// (name, content) over it, and starts a control plane on it (directory
/// source polled every 50 ms, every listener on 127.0.0.1 with an ephemeral
/// port).
pub async fn start_on_policies(dir: &Path, files: &[(&str, &str)]) -> Running {
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        dir,
    );
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let mut d = DirectoryConfig::new(dir);
    d.poll_interval = Duration::from_millis(50);
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    run::start(RunConfig {
        source: SourceConfig::Directory(d),
        xds_listen: any,
        sync_listen: any,
        admin_listen: any,
        translate: TranslateConfig::default(),
    })
    .await
    .unwrap()
}

/// An enforcer message of `kind`.
pub fn message(kind: pb::enforcer_message::Kind) -> pb::EnforcerMessage {
    pb::EnforcerMessage { kind: Some(kind) }
}

/// A fake enforcer for node `node-1`: connects to `sync_addr`, says Hello
/// and returns the sender for its further messages and the control
/// plane's stream.
pub async fn connect_enforcer(
    sync_addr: SocketAddr,
) -> (
    mpsc::Sender<pb::EnforcerMessage>,
    tonic::Streaming<pb::ControlMessage>,
) {
    let mut client = PolicySyncClient::connect(format!("http://{sync_addr}"))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel(8);
    tx.send(message(pb::enforcer_message::Kind::Hello(pb::Hello {
        node: "node-1".into(),
        enforcer_version: "test".into(),
        active_version: String::new(),
    })))
    .await
    .unwrap();
    let stream = client
        .sync(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

/// The next control message's kind, within 30 s.
pub async fn next(stream: &mut tonic::Streaming<pb::ControlMessage>) -> pb::control_message::Kind {
    let msg = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a message within the bound")
        .expect("stream ok")
        .expect("stream open");
    msg.kind.expect("a kind")
}
