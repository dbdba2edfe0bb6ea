//! Palisade control plane: watches Kubernetes (or a `policies/` directory),
//! validates what it reads, and serves xDS to node Envoys and policy to enforcers.

pub mod alerts;
pub mod k8s;
pub mod leader;
pub mod model;
pub mod run;
pub mod source;
pub mod status;
pub mod sync;
pub mod tls;
pub mod validate;
mod waf;
pub mod xds;
