//! The directory source (`--policies DIR`): YAML manifests anywhere under DIR
//! (several documents per file), rulesets as sub-directories of `DIR/rulesets/`,
//! and optionally the CRS from `PALISADE_CRS_DIR`. The tree is polled (sizes and
//! modification times every 200 ms by default) and re-read on any change.
//!
//! A file that fails to parse keeps its last good version in force; the
//! failure is reported with file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info};

use super::manifest::{self, Located, Manifest};
use super::rulesets::{self, BASELINE_RULESET, CRS_RULESET, MODSECDEFAULT};
use super::{Inputs, Origin, Problem, Sourced};

/// Message prefix of problems that do not invalidate the rest of a file.
const IGNORED_KIND: &str = "unsupported kind";

/// Settings of the directory source.
#[derive(Clone, Debug)]
pub struct DirectoryConfig {
    /// The policies directory.
    pub dir: PathBuf,
    /// A CRS release directory to serve as the `crs` ruleset.
    pub crs_dir: Option<PathBuf>,
    /// The engine defaults prepended to rulesets that lack one
    /// (default `DIR/modsecdefault.conf`).
    pub modsecdefault: Option<PathBuf>,
    /// How often the tree is checked for changes.
    pub poll_interval: Duration,
}

impl DirectoryConfig {
    /// Defaults for DIR: no CRS, `DIR/modsecdefault.conf`, 200 ms polling.
    pub fn new(dir: impl Into<PathBuf>) -> DirectoryConfig {
        DirectoryConfig {
            dir: dir.into(),
            crs_dir: None,
            modsecdefault: None,
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// Reads and watches a policies directory.
#[derive(Debug)]
pub struct DirectorySource {
    config: DirectoryConfig,
    /// Objects of each file as last parsed without errors.
    last_good: HashMap<PathBuf, Vec<Located>>,
}

impl DirectorySource {
    /// A source for `config`.
    pub fn new(config: DirectoryConfig) -> DirectorySource {
        DirectorySource {
            config,
            last_good: HashMap::new(),
        }
    }

    fn manifest_files(&self) -> Vec<PathBuf> {
        let rulesets_dir = self.config.dir.join("rulesets");
        let mut out = Vec::new();
        let mut stack = vec![self.config.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if hidden {
                    continue;
                }
                if path.is_dir() {
                    if path != rulesets_dir {
                        stack.push(path);
                    }
                } else if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                ) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// Reads the whole directory once.
    pub fn load(&mut self) -> Inputs {
        let mut inputs = Inputs {
            ready: true,
            ..Inputs::default()
        };
        let dir = self.config.dir.clone();
        let mut problems = Vec::new();

        let files = self.manifest_files();
        self.last_good.retain(|p, _| files.contains(p));
        for path in files {
            let (objects, file_problems) = match std::fs::read_to_string(&path) {
                Ok(text) => manifest::parse(&path, &text),
                Err(e) => (
                    Vec::new(),
                    vec![Problem {
                        origin: Origin::File {
                            path: path.clone(),
                            line: 0,
                        },
                        kind: "File".into(),
                        name: path.display().to_string(),
                        message: format!("cannot read: {e}"),
                    }],
                ),
            };
            let fatal = file_problems
                .iter()
                .any(|p| !p.message.starts_with(IGNORED_KIND));
            let objects = if fatal {
                let kept = self.last_good.get(&path).cloned().unwrap_or_default();
                for mut p in file_problems {
                    if !kept.is_empty() {
                        p.message
                            .push_str("; the previous version of the file stays in force");
                    }
                    problems.push(p);
                }
                kept
            } else {
                problems.extend(file_problems);
                self.last_good.insert(path.clone(), objects.clone());
                objects
            };
            for located in objects {
                add(&mut inputs, located);
            }
        }

        // Rulesets.
        let modsecdefault_path = self
            .config
            .modsecdefault
            .clone()
            .unwrap_or_else(|| dir.join(MODSECDEFAULT));
        let modsecdefault = std::fs::read(&modsecdefault_path).ok();
        let rulesets_dir = dir.join("rulesets");
        let mut names = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&rulesets_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                else {
                    continue;
                };
                if path.is_dir() && !name.starts_with('.') {
                    names.push((name, path));
                }
            }
        }
        names.sort();
        for (name, path) in names {
            match rulesets::load_dir(&name, &path, modsecdefault.as_deref()) {
                Ok(files) => inputs.rulesets.push(Sourced {
                    origin: Origin::File {
                        path: path.clone(),
                        line: 0,
                    },
                    object: files,
                }),
                Err(e) => problems.push(Problem {
                    origin: Origin::File {
                        path: path.clone(),
                        line: 0,
                    },
                    kind: "Ruleset".into(),
                    name,
                    message: e.to_string(),
                }),
            }
        }
        inputs.default_ruleset = BASELINE_RULESET.to_string();
        if let Some(crs) = &self.config.crs_dir {
            match rulesets::load_crs(crs, modsecdefault.as_deref()) {
                Ok(files) => {
                    inputs.rulesets.retain(|r| r.object.name != CRS_RULESET);
                    inputs.rulesets.push(Sourced {
                        origin: Origin::Builtin {
                            what: format!("CRS from {}", crs.display()),
                        },
                        object: files,
                    });
                    inputs.default_ruleset = CRS_RULESET.to_string();
                }
                Err(e) => problems.push(Problem {
                    origin: Origin::Builtin {
                        what: "PALISADE_CRS_DIR".into(),
                    },
                    kind: "Ruleset".into(),
                    name: CRS_RULESET.into(),
                    message: e.to_string(),
                }),
            }
        }
        inputs.problems = problems;
        inputs
    }

    /// Publishes the directory's contents now and after every change, until
    /// the receivers are gone.
    pub async fn run(mut self, tx: watch::Sender<Arc<Inputs>>) {
        let dir = self.config.dir.clone();
        let mut signature = rulesets::tree_signature(&dir);
        let inputs = self.load();
        info!(dir = %dir.display(), services = inputs.services.len(), policies = inputs.policies.len(), rulesets = inputs.rulesets.len(), "policies directory read");
        if tx.send(Arc::new(inputs)).is_err() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            let now = rulesets::tree_signature(&dir);
            if now == signature {
                continue;
            }
            signature = now;
            let inputs = self.load();
            debug!(dir = %dir.display(), "policies directory changed");
            if tx.send(Arc::new(inputs)).is_err() {
                return;
            }
        }
    }
}

/// Adds one object to the inputs.
fn add(inputs: &mut Inputs, located: Located) {
    let origin = located.origin;
    match located.manifest {
        Manifest::Service(o) => inputs.services.push(Sourced { origin, object: o }),
        Manifest::EndpointSlice(o) => inputs.endpoint_slices.push(o),
        Manifest::Pod(o) => inputs.pods.push(o),
        Manifest::Namespace(o) => inputs.namespaces.push(o),
        Manifest::GlobalNetworkPolicy(o) => inputs.policies.push(Sourced { origin, object: o }),
        Manifest::Tier(o) => inputs.tiers.push(Sourced { origin, object: o }),
        Manifest::ApplicationLayer(o) => inputs
            .application_layers
            .push(Sourced { origin, object: o }),
        Manifest::GlobalAlert(o) => inputs.alerts.push(Sourced { origin, object: o }),
        Manifest::Ruleset(o) => inputs.rulesets.push(Sourced { origin, object: o }),
    }
}

/// Reads every manifest of a directory tree (for tests and tools): the objects,
/// and the problems found.
pub fn load_once(dir: &Path) -> Inputs {
    DirectorySource::new(DirectoryConfig::new(dir)).load()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_policies() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[test]
    fn repository_examples_load_cleanly() {
        let inputs = load_once(&repo_policies());
        assert!(inputs.problems.is_empty(), "{:?}", inputs.problems);
        let names: Vec<_> = inputs
            .services
            .iter()
            .filter_map(|s| s.object.metadata.name.clone())
            .collect();
        assert!(names.contains(&"productpage".to_string()), "{names:?}");
        assert!(names.contains(&"www".to_string()), "{names:?}");
        assert_eq!(inputs.application_layers.len(), 1);
        assert!(inputs.policies.len() >= 2);
        assert!(inputs
            .rulesets
            .iter()
            .any(|r| r.object.name == BASELINE_RULESET));
        assert_eq!(inputs.default_ruleset, BASELINE_RULESET);
    }

    #[test]
    fn broken_file_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ns.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )
        .unwrap();
        let mut source = DirectorySource::new(DirectoryConfig::new(dir.path()));
        assert_eq!(source.load().namespaces.len(), 1);
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: [a\n",
        )
        .unwrap();
        let inputs = source.load();
        assert_eq!(inputs.namespaces.len(), 1);
        assert_eq!(inputs.problems.len(), 1);
        assert!(inputs.problems[0].message.contains("previous version"));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(source.load().namespaces.len(), 0);
    }
}
