//! The Kubernetes source (placeholder while it is written).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::Inputs;

/// Reads the cluster.
#[derive(Clone)]
pub struct KubeSource {
    client: kube::Client,
    crs_dir: Option<PathBuf>,
    modsecdefault: Option<PathBuf>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource").field("crs_dir", &self.crs_dir).finish_non_exhaustive()
    }
}

impl KubeSource {
    /// A source reading through `client`.
    pub fn new(client: kube::Client, crs_dir: Option<PathBuf>, modsecdefault: Option<PathBuf>) -> KubeSource {
        KubeSource { client, crs_dir, modsecdefault }
    }

    /// Runs until the receivers are gone.
    pub async fn run(self, tx: watch::Sender<Arc<Inputs>>) {
        let _ = (&self.client, &self.modsecdefault);
        tx.closed().await;
    }
}
