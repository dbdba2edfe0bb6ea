//! xDS: the [`translate`] step turns the [`Model`](crate::model::Model) into Envoy
//! resources (an [`XdsSnapshot`]), and [`ads`] serves them over the Aggregated
//! Discovery Service, state-of-the-world and delta.
//!
//! Versions are content hashes: each resource's version is the hash of its
//! encoding and each type's version the hash of its resources' names and
//! versions, so a restarted control plane serves the same versions for the
//! same state and an Envoy that reconnects is not sent anything new.

pub mod ads;
pub mod translate;

use std::collections::BTreeMap;

use prost::Message;
use sha1::{Digest, Sha1};
use xds_api::pb::google::protobuf::Any;

/// Cluster (CDS) type URL.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// ClusterLoadAssignment (EDS) type URL.
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Listener (LDS) type URL.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// RouteConfiguration (RDS) type URL.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// The order types are pushed in on a change (Envoy's recommended make-before-break order).
pub const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// True for the types Envoy subscribes to as a whole (wildcard) by default.
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

/// Packs a message into an `Any`.
pub fn to_any<M: Message>(type_url: &str, msg: &M) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: msg.encode_to_vec(),
    }
}

pub(crate) fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha1::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// One resource with its version.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsResource {
    /// Content hash of the encoded resource.
    pub version: String,
    /// The resource.
    pub body: Any,
}

impl XdsResource {
    /// Wraps an encoded resource, computing its version.
    pub fn new(body: Any) -> XdsResource {
        XdsResource {
            version: short_hash(&[&body.value]),
            body,
        }
    }
}

/// The resources of one type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeSnapshot {
    /// Hash of names and resource versions.
    pub version: String,
    /// Resources by name.
    pub resources: BTreeMap<String, XdsResource>,
}

/// What changed in one type since the previous snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeDelta {
    /// The previous snapshot's version of the type.
    pub from_version: String,
    /// Names added or changed.
    pub changed: Vec<String>,
    /// Names removed.
    pub removed: Vec<String>,
}

/// Everything served to Envoys, by type URL.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct XdsSnapshot {
    /// Per type URL.
    pub types: BTreeMap<String, TypeSnapshot>,
    /// Per type URL, the difference from the previous snapshot, when known:
    /// delta streams already in sync with that snapshot look only at these
    /// names instead of comparing every resource.
    pub deltas: BTreeMap<String, TypeDelta>,
}

impl XdsSnapshot {
    /// Builds a snapshot from resources per type, computing versions.
    pub fn from_resources(
        types: impl IntoIterator<Item = (String, BTreeMap<String, XdsResource>)>,
    ) -> XdsSnapshot {
        let mut out = XdsSnapshot::default();
        for (type_url, resources) in types {
            let mut parts: Vec<&[u8]> = Vec::new();
            for (name, r) in &resources {
                parts.push(name.as_bytes());
                parts.push(r.version.as_bytes());
            }
            let version = short_hash(&parts);
            out.types
                .insert(type_url, TypeSnapshot { version, resources });
        }
        for t in PUSH_ORDER {
            out.types
                .entry(t.to_string())
                .or_insert_with(|| TypeSnapshot {
                    version: short_hash(&[]),
                    resources: BTreeMap::new(),
                });
        }
        out
    }

    /// Records the difference from `previous` (see [`XdsSnapshot::deltas`]).
    pub fn with_delta_from(mut self, previous: &XdsSnapshot) -> XdsSnapshot {
        let mut deltas = BTreeMap::new();
        for (type_url, now) in &self.types {
            let Some(before) = previous.types.get(type_url) else {
                continue;
            };
            let changed = now
                .resources
                .iter()
                .filter(|(n, r)| before.resources.get(*n).map(|b| &b.version) != Some(&r.version))
                .map(|(n, _)| n.clone())
                .collect();
            let removed = before
                .resources
                .keys()
                .filter(|n| !now.resources.contains_key(*n))
                .cloned()
                .collect();
            deltas.insert(
                type_url.clone(),
                TypeDelta {
                    from_version: before.version.clone(),
                    changed,
                    removed,
                },
            );
        }
        self.deltas = deltas;
        self
    }

    /// The resources of a type (empty for unknown types).
    pub fn get(&self, type_url: &str) -> Option<&TypeSnapshot> {
        self.types.get(type_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: &[u8]) -> XdsResource {
        XdsResource::new(Any {
            type_url: CLUSTER.into(),
            value: v.to_vec(),
        })
    }

    #[test]
    fn versions_and_deltas() {
        let a = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([("x".to_string(), res(b"1")), ("y".to_string(), res(b"2"))]),
        )]);
        let same = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([("x".to_string(), res(b"1")), ("y".to_string(), res(b"2"))]),
        )]);
        assert_eq!(a.types[CLUSTER].version, same.types[CLUSTER].version);
        let b = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([
                ("x".to_string(), res(b"changed")),
                ("z".to_string(), res(b"3")),
            ]),
        )])
        .with_delta_from(&a);
        assert_ne!(a.types[CLUSTER].version, b.types[CLUSTER].version);
        let d = &b.deltas[CLUSTER];
        assert_eq!(d.from_version, a.types[CLUSTER].version);
        assert_eq!(d.changed, ["x", "z"]);
        assert_eq!(d.removed, ["y"]);
        // Every pushed type exists, empty when nothing was given.
        assert!(b.types[LISTENER].resources.is_empty());
    }
}
