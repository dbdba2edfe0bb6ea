//! mTLS for the control plane's gRPC servers (xDS and policy sync): the server
//! certificate, its private key and the CA that every client (node Envoys,
//! enforcers) must present a certificate from, checked up front so a bad file
//! stops the process with a message naming it.
//!
//! Reading and checking the files is shared with the enforcers
//! ([`palisade_proto::tls`]); this module builds tonic's server configuration
//! from them. Files are read once, at start; new certificates take effect on
//! restart.

use std::path::Path;

pub use palisade_proto::tls::{Role, TlsError, TlsFiles};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Builds the TLS configuration of the xDS and policy-sync servers: `cert`
/// (PEM chain) and `key` are the server's identity; clients must present a
/// certificate that chains to a CA in `client_ca` (connections without one are
/// refused during the handshake). See [`server_config`].
pub fn server_tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<ServerTlsConfig, TlsError> {
    server_config(&TlsFiles {
        role: Role::Server,
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        ca: client_ca.to_path_buf(),
    })
}

/// Builds the servers' TLS configuration from `files` (their `ca` is the
/// client CA). Every file is read and parsed now, and the set is tried once,
/// so mistakes surface here, naming the file.
pub fn server_config(files: &TlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let pem = files.read()?;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(pem.cert, pem.key))
        .client_ca_root(Certificate::from_pem(pem.ca));
    // tonic parses the PEM and builds the rustls configuration here: a key
    // that does not match the certificate, or a CA no verifier accepts, fails now.
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|e| files.unusable(None, &e))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_must_belong_to_the_certificate() {
        // A self-signed certificate serves as its own client CA here; reading
        // and checking each file is tested in `palisade_proto::tls`.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |n: &str| dir.path().join(n);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .and_then(|params| params.self_signed(&key))
            .expect("cert");
        let other = rcgen::KeyPair::generate().expect("key").serialize_pem();
        std::fs::write(path("tls.crt"), cert.pem()).expect("write");
        std::fs::write(path("tls.key"), key.serialize_pem()).expect("write");
        std::fs::write(path("other.key"), other).expect("write");
        server_tls_config(&path("tls.crt"), &path("tls.key"), &path("tls.crt")).expect("usable");
        let err = server_tls_config(&path("tls.crt"), &path("other.key"), &path("tls.crt"))
            .expect_err("someone else's key");
        let text = err.to_string();
        assert!(
            text.contains("unusable") && text.contains(&path("other.key").display().to_string()),
            "{text}"
        );
    }
}
