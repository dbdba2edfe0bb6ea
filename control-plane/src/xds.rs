//! xDS: the [`translate`] step turns the [`Model`](crate::model::Model) into Envoy
//! resources (an [`XdsSnapshot`]), and [`ads`] serves them over the Aggregated
//! Discovery Service, state-of-the-world and delta.
//!
//! Versions are content hashes: each resource's version is a hash of its
//! content and each type's version the hash of its resources' names and
//! versions, so a restarted control plane serves the same versions for the
//! same state and an Envoy that reconnects is not sent anything new.
//!
//! Memory: a resource is encoded once, held behind an `Arc`, and shared by
//! every snapshot it is unchanged in and by every stream that sends it; the
//! ADS server writes responses straight from these shared encodings (see
//! [`ads`]), so a connected Envoy costs its subscription and a few counters,
//! not a copy of the configuration.

pub mod ads;
mod codec;
pub mod translate;

use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Content hash of the resource.
    pub version: String,
    /// The resource.
    pub body: Any,
}

impl XdsResource {
    /// Wraps an encoded resource, computing its version (the hash of its encoding).
    pub fn new(body: Any) -> XdsResource {
        XdsResource {
            version: short_hash(&[&body.value]),
            body,
        }
    }

    /// Wraps an encoded resource whose version was computed elsewhere (a
    /// content hash of its parts, for resources assembled from cached parts).
    pub(crate) fn with_version(version: String, body: Any) -> XdsResource {
        XdsResource { version, body }
    }
}

/// Resources of one type by name. Names and resources are `Arc`s shared
/// between snapshots (an unchanged resource is the same allocation in every
/// snapshot) and with the ADS streams that send them.
pub type ResourceMap = BTreeMap<Arc<str>, Arc<XdsResource>>;

/// The resources of one type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeSnapshot {
    /// Hash of names and resource versions.
    pub version: String,
    /// Resources by name.
    pub resources: Arc<ResourceMap>,
}

impl TypeSnapshot {
    /// Wraps resources, computing the type version.
    pub fn new(resources: Arc<ResourceMap>) -> TypeSnapshot {
        TypeSnapshot {
            version: type_version(&resources),
            resources,
        }
    }
}

fn type_version(resources: &ResourceMap) -> String {
    let mut h = Sha1::new();
    for (name, r) in resources {
        for p in [name.as_bytes(), r.version.as_bytes()] {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// What changed in one type since the previous snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeDelta {
    /// The previous snapshot's version of the type.
    pub from_version: String,
    /// Names added or changed.
    pub changed: Vec<Arc<str>>,
    /// Names removed.
    pub removed: Vec<Arc<str>>,
}

impl TypeDelta {
    /// The difference between two versions of a type (a merge of the two
    /// sorted maps; resources shared by both are recognised by pointer).
    pub fn between(before: &TypeSnapshot, now: &TypeSnapshot) -> TypeDelta {
        let mut delta = TypeDelta {
            from_version: before.version.clone(),
            ..TypeDelta::default()
        };
        if Arc::ptr_eq(&before.resources, &now.resources) {
            return delta;
        }
        let mut old = before.resources.iter().peekable();
        let mut new = now.resources.iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((o, _)), None) => {
                    delta.removed.push(Arc::clone(o));
                    old.next();
                }
                (None, Some((n, _))) => {
                    delta.changed.push(Arc::clone(n));
                    new.next();
                }
                (Some((o, ro)), Some((n, rn))) => match o.cmp(n) {
                    std::cmp::Ordering::Less => {
                        delta.removed.push(Arc::clone(o));
                        old.next();
                    }
                    std::cmp::Ordering::Greater => {
                        delta.changed.push(Arc::clone(n));
                        new.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if !Arc::ptr_eq(ro, rn) && ro.version != rn.version {
                            delta.changed.push(Arc::clone(n));
                        }
                        old.next();
                        new.next();
                    }
                },
            }
        }
        delta
    }
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
        XdsSnapshot::from_shared(types.into_iter().map(|(t, resources)| {
            let map: ResourceMap = resources
                .into_iter()
                .map(|(n, r)| (Arc::from(n), Arc::new(r)))
                .collect();
            (t, Arc::new(map))
        }))
    }

    /// Builds a snapshot from shared resources per type, computing type
    /// versions; every pushed type exists (empty when not given).
    pub fn from_shared(types: impl IntoIterator<Item = (String, Arc<ResourceMap>)>) -> XdsSnapshot {
        let mut out = XdsSnapshot::default();
        for (type_url, resources) in types {
            out.types.insert(type_url, TypeSnapshot::new(resources));
        }
        for t in PUSH_ORDER {
            out.types
                .entry(t.to_string())
                .or_insert_with(|| TypeSnapshot::new(Arc::default()));
        }
        out
    }

    /// Records the difference from `previous` (see [`XdsSnapshot::deltas`]).
    pub fn with_delta_from(mut self, previous: &XdsSnapshot) -> XdsSnapshot {
        self.deltas = self
            .types
            .iter()
            .filter_map(|(type_url, now)| {
                let before = previous.types.get(type_url)?;
                Some((type_url.clone(), TypeDelta::between(before, now)))
            })
            .collect();
        self
    }

    /// The resources of a type (empty for unknown types).
    pub fn get(&self, type_url: &str) -> Option<&TypeSnapshot> {
        self.types.get(type_url)
    }

    /// True when both snapshots serve the same versions of every type.
    pub fn same_versions(&self, other: &XdsSnapshot) -> bool {
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(other.types.iter())
                .all(|((ta, a), (tb, b))| ta == tb && a.version == b.version)
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

    fn names(v: &[Arc<str>]) -> Vec<&str> {
        v.iter().map(|n| &**n).collect()
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
        assert!(a.same_versions(&same));
        let b = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([
                ("w".to_string(), res(b"0")),
                ("x".to_string(), res(b"changed")),
                ("z".to_string(), res(b"3")),
            ]),
        )])
        .with_delta_from(&a);
        assert_ne!(a.types[CLUSTER].version, b.types[CLUSTER].version);
        assert!(!a.same_versions(&b));
        let d = &b.deltas[CLUSTER];
        assert_eq!(d.from_version, a.types[CLUSTER].version);
        assert_eq!(names(&d.changed), ["w", "x", "z"]);
        assert_eq!(names(&d.removed), ["y"]);
        // Every pushed type exists, empty when nothing was given.
        assert!(b.types[LISTENER].resources.is_empty());
        assert!(b.deltas[LISTENER].changed.is_empty());
    }

    #[test]
    fn equal_content_is_not_a_change() {
        let a = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([("x".to_string(), res(b"1"))]),
        )]);
        // Re-encoded, equal content: same version, no delta.
        let b = XdsSnapshot::from_resources([(
            CLUSTER.to_string(),
            BTreeMap::from([("x".to_string(), res(b"1"))]),
        )])
        .with_delta_from(&a);
        assert!(b.deltas[CLUSTER].changed.is_empty());
        assert!(b.deltas[CLUSTER].removed.is_empty());
    }
}
