//! mTLS for the policy-sync connection to an `https://` control plane: the
//! enforcer's client certificate and key, and the CA the control plane's
//! server certificate must chain to. Files are read and checked once, when the
//! configuration is built, so a bad file stops the enforcer at start with a
//! message naming it; new certificates take effect on restart.
//!
//! Reading and checking the files is shared with the control plane
//! ([`palisade_proto::tls`]); this module builds tonic's client configuration
//! from them.

use palisade_proto::tls::TlsPem;
pub use palisade_proto::tls::{Role, TlsError, TlsFiles};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Loaded TLS material for the policy-sync client. Its `Debug` leaves the
/// key out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    files: TlsFiles,
    pem: TlsPem,
}

impl ClientTls {
    /// Reads and checks `files` (their `ca` is the CA the control plane's
    /// certificate must chain to) for connecting to `uri`
    /// (`https://HOST:PORT`; HOST is the name the server certificate must
    /// carry).
    pub fn load(files: TlsFiles, uri: &str) -> Result<ClientTls, TlsError> {
        let tls = ClientTls {
            pem: files.read()?,
            files,
        };
        // tonic builds the rustls client here: a key that does not belong to
        // the certificate, or an unusable address, fails now rather than on
        // every reconnect.
        Endpoint::from_shared(uri.to_string())
            .map_err(|e| tls.files.unusable(Some(uri), &e))?
            .tls_config(tls.client_config())
            .map_err(|e| tls.files.unusable(Some(uri), &e))?;
        Ok(tls)
    }

    /// Where the material came from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// tonic's client TLS settings: this identity, and only the configured CA
    /// as trust root. The server name checked is the address's host.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .identity(Identity::from_pem(&self.pem.cert, &self.pem.key))
            .ca_certificate(Certificate::from_pem(&self.pem.ca))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_good_files_and_refuses_a_foreign_key() {
        // A self-signed certificate serves as its own CA here; reading and
        // checking each file is tested in `palisade_proto::tls`.
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let other = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["node".to_string()])
            .and_then(|params| params.self_signed(&key))
            .expect("cert");
        let path = |n: &str| dir.path().join(n);
        for (name, text) in [
            ("tls.crt", cert.pem()),
            ("tls.key", key.serialize_pem()),
            ("other.key", other.serialize_pem()),
        ] {
            std::fs::write(path(name), text).expect("write");
        }
        let files = |key: &str| TlsFiles {
            role: Role::Client,
            cert: path("tls.crt"),
            key: path(key),
            ca: path("tls.crt"),
        };
        let uri = "https://palisade-control-plane.palisade.svc:18001";
        let tls = ClientTls::load(files("tls.key"), uri).expect("usable");
        assert_eq!(tls.files(), &files("tls.key"));
        assert!(!format!("{tls:?}").contains("PRIVATE"), "no key in Debug");
        let text = ClientTls::load(files("other.key"), uri)
            .expect_err("someone else's key")
            .to_string();
        assert!(
            text.contains(&format!("unusable TLS configuration for {uri}"))
                && text.contains(&path("other.key").display().to_string()),
            "{text}"
        );
        let text = ClientTls::load(files("tls.key"), "https://bad host")
            .expect_err("bad address")
            .to_string();
        assert!(text.contains("for https://bad host"), "{text}");
    }
}
