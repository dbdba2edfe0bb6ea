//! Where the control plane's inputs come from: a `policies/` directory or a
//! Kubernetes cluster. Both produce the same [`Inputs`] (raw objects, each with
//! its [`Origin`]), published through a `tokio::sync::watch` channel; the model
//! builder validates them.

pub mod directory;
pub mod kube;
pub mod manifest;
pub mod rulesets;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;

use crate::k8s::{ApplicationLayer, GlobalAlert, GlobalNetworkPolicy, Tier};

/// Where an object was read from; problems are reported against it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "source", rename_all = "camelCase")]
pub enum Origin {
    /// A file of the policies directory, at a line (1-based; 0 when unknown).
    File {
        /// The file.
        path: PathBuf,
        /// The line the object starts on.
        line: usize,
    },
    /// An object of the Kubernetes API.
    Kubernetes {
        /// Its kind.
        kind: String,
        /// Its namespace (none for cluster-scoped kinds).
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
    /// Something the control plane made itself (the CRS ruleset from a directory).
    Builtin {
        /// What it is.
        what: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Kubernetes {
                kind,
                namespace: Some(ns),
                name,
            } => write!(f, "{kind} {ns}/{name}"),
            Origin::Kubernetes {
                kind,
                namespace: None,
                name,
            } => write!(f, "{kind} {name}"),
            Origin::Builtin { what } => f.write_str(what),
        }
    }
}

/// An object together with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// Where it was read.
    pub origin: Origin,
    /// The object.
    pub object: T,
}

/// A ruleset as a flat set of files (what a ConfigMap holds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesetFiles {
    /// Ruleset name services refer to.
    pub name: String,
    /// File name to content: `modsecdefault.conf`, `crs-setup.conf`, `*.conf`, `*.data`.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Everything a source has read, unvalidated.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// False until the source has read everything once; nothing is served before.
    pub ready: bool,
    /// Services (all of them; the model picks the annotated ones).
    pub services: Vec<Sourced<Service>>,
    /// Endpoint slices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Pods (workload identities).
    pub pods: Vec<Pod>,
    /// Namespaces (their labels).
    pub namespaces: Vec<Namespace>,
    /// Calico GlobalNetworkPolicies.
    pub policies: Vec<Sourced<GlobalNetworkPolicy>>,
    /// Calico Tiers.
    pub tiers: Vec<Sourced<Tier>>,
    /// ApplicationLayer objects (normally one, named `default`).
    pub application_layers: Vec<Sourced<ApplicationLayer>>,
    /// GlobalAlerts.
    pub alerts: Vec<Sourced<GlobalAlert>>,
    /// Rulesets.
    pub rulesets: Vec<Sourced<RulesetFiles>>,
    /// Ruleset used when neither the ApplicationLayer nor the service names one.
    pub default_ruleset: String,
    /// Problems the source found while reading (unparsable files, unknown kinds).
    pub problems: Vec<Problem>,
}

/// A problem found while reading or validating an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Where the object is.
    pub origin: Origin,
    /// Its kind (`Service`, `GlobalNetworkPolicy`, `Ruleset`, `File`, ...).
    pub kind: String,
    /// Its name (namespace/name for namespaced kinds).
    pub name: String,
    /// What is wrong, and what the control plane did about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}: {}",
            self.origin, self.kind, self.name, self.message
        )
    }
}
