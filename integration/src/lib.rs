//! Helpers shared by Palisade's integration tests: locating tools such as Helm,
//! reading Kubernetes manifests, and validating objects offline against the
//! Kubernetes API types and CRD schemas.
//!
//! ```
//! use palisade_integration::manifest;
//!
//! let docs = manifest::parse_documents("kind: A\n---\n# empty\n---\nkind: B\n").unwrap();
//! assert_eq!(docs.len(), 2);
//! ```

pub mod manifest;
pub mod openapi;
pub mod tools;
pub mod typed;
