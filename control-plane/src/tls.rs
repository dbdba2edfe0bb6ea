//! mTLS for the control plane's gRPC servers (xDS and policy sync): loads the
//! server certificate, its private key and the CA that every client (node
//! Envoys, enforcers) must present a certificate from, and checks them up front
//! so a bad file stops the process with a message naming it.
//!
//! Files are read once, at start; new certificates take effect on restart.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A TLS file that cannot be used, or an incomplete set of TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Some but not all of the three TLS settings were given.
    #[error(
        "TLS needs all of --tls-cert (PALISADE_TLS_CERT), --tls-key (PALISADE_TLS_KEY) and \
         --tls-client-ca (PALISADE_TLS_CLIENT_CA); missing {missing}"
    )]
    Incomplete {
        /// The settings that are missing, comma-separated.
        missing: String,
    },
    /// A file could not be read.
    #[error("cannot read TLS {what} {}: {source}", .path.display())]
    Read {
        /// Which file (certificate, private key, client CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("TLS {what} {} holds no PEM certificate{}", .path.display(), detail(.reason))]
    NoCertificate {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The PEM parser's complaint, if any.
        reason: Option<String>,
    },
    /// A key file holds no usable PEM private key.
    #[error("TLS private key {} holds no PEM private key: {reason}", .path.display())]
    NoKey {
        /// Its path.
        path: PathBuf,
        /// The PEM parser's complaint.
        reason: String,
    },
    /// The files parse but do not make a TLS configuration (e.g. the key does
    /// not belong to the certificate, or the CA is not a valid certificate).
    #[error(
        "TLS certificate {}, private key {} and client CA {} do not make a usable \
         configuration: {reason}",
        .cert.display(),
        .key.display(),
        .ca.display()
    )]
    Unusable {
        /// Certificate path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
        /// CA path.
        ca: PathBuf,
        /// The TLS library's complaint.
        reason: String,
    },
}

fn detail(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// The three files of the control plane's mTLS setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    /// The TLS settings from optional flags: `None` (TLS off) when none is
    /// given (an empty path counts as not given), an error naming the missing
    /// ones when only some are.
    pub fn from_options(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        let given = |p: Option<&Path>| p.filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from);
        match (given(cert), given(key), given(client_ca)) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(client_ca)) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            })),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), "--tls-client-ca"),
                ]
                .into_iter()
                .filter_map(|(m, name)| m.then_some(name))
                .collect();
                Err(TlsError::Incomplete {
                    missing: missing.join(", "),
                })
            }
        }
    }

    /// Loads and checks the files; see [`server_tls_config`].
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        server_tls_config(&self.cert, &self.key, &self.client_ca)
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a PEM file that must hold at least one certificate.
fn read_certificates(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(what, path)?;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        if let Err(e) = cert {
            return Err(TlsError::NoCertificate {
                what,
                path: path.to_path_buf(),
                reason: Some(e.to_string()),
            });
        }
        count += 1;
    }
    if count == 0 {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
            reason: None,
        });
    }
    Ok(pem)
}

/// Reads a PEM file that must hold a private key.
fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read("private key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(pem)
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Builds the TLS configuration of the xDS and policy-sync servers: `cert`
/// (PEM chain) and `key` are the server's identity; clients must present a
/// certificate that chains to a CA in `client_ca` (connections without one are
/// refused during the handshake). Every file is read and parsed now, and the
/// set is tried once, so mistakes surface here, naming the file.
pub fn server_tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<ServerTlsConfig, TlsError> {
    let cert_pem = read_certificates("certificate", cert)?;
    let key_pem = read_key(key)?;
    let ca_pem = read_certificates("client CA", client_ca)?;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem));
    // tonic parses the PEM and builds the rustls configuration here: a key
    // that does not match the certificate, or a CA no verifier accepts, fails now.
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|e| TlsError::Unusable {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: client_ca.to_path_buf(),
            reason: chain(&e),
        })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().expect("temp dir");
            let ca_key = rcgen::KeyPair::generate().expect("key");
            let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).expect("ca");
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .expect("params")
                .signed_by(&key, &ca, &ca_key)
                .expect("cert");
            let other = rcgen::KeyPair::generate().expect("key");
            let files = [
                ("ca.crt", ca.pem()),
                ("tls.crt", cert.pem()),
                ("tls.key", key.serialize_pem()),
                ("other.key", other.serialize_pem()),
                ("empty", String::new()),
                (
                    "garbage.crt",
                    "-----BEGIN CERTIFICATE-----\n!!!\n".to_string(),
                ),
            ];
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text).expect("write");
            }
            Pki { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn settings_are_all_or_nothing() {
        let p = |s: &'static str| Some(Path::new(s));
        assert_eq!(TlsFiles::from_options(None, None, None).ok(), Some(None));
        assert_eq!(
            TlsFiles::from_options(p(""), p(""), None).ok(),
            Some(None),
            "empty values (unset environment) mean off"
        );
        let all = TlsFiles::from_options(p("c"), p("k"), p("a")).expect("complete");
        assert_eq!(
            all,
            Some(TlsFiles {
                cert: "c".into(),
                key: "k".into(),
                client_ca: "a".into()
            })
        );
        type Case<'a> = (
            Option<&'a Path>,
            Option<&'a Path>,
            Option<&'a Path>,
            &'a str,
        );
        let cases: &[Case] = &[
            (p("c"), None, None, "missing --tls-key, --tls-client-ca"),
            (p("c"), p("k"), None, "missing --tls-client-ca"),
            (None, p("k"), p("a"), "missing --tls-cert"),
            (p("c"), p(""), p("a"), "missing --tls-key"),
        ];
        for (cert, key, ca, want) in cases {
            let err = TlsFiles::from_options(*cert, *key, *ca).expect_err("incomplete");
            assert!(err.to_string().ends_with(want), "{err} / {want}");
        }
    }

    #[test]
    fn good_files_make_a_config() {
        let pki = Pki::new();
        server_tls_config(
            &pki.path("tls.crt"),
            &pki.path("tls.key"),
            &pki.path("ca.crt"),
        )
        .expect("usable");
    }

    #[test]
    fn bad_files_are_named() {
        let pki = Pki::new();
        // (cert, key, ca, the file the message must name, a word it must contain)
        let cases = [
            (
                "missing.crt",
                "tls.key",
                "ca.crt",
                "missing.crt",
                "cannot read",
            ),
            (
                "tls.crt",
                "missing.key",
                "ca.crt",
                "missing.key",
                "cannot read",
            ),
            (
                "tls.crt",
                "tls.key",
                "missing.crt",
                "missing.crt",
                "client CA",
            ),
            ("empty", "tls.key", "ca.crt", "empty", "no PEM certificate"),
            (
                "garbage.crt",
                "tls.key",
                "ca.crt",
                "garbage.crt",
                "certificate",
            ),
            (
                "tls.crt",
                "tls.crt",
                "ca.crt",
                "tls.crt",
                "no PEM private key",
            ),
            (
                "tls.crt",
                "tls.key",
                "tls.key",
                "tls.key",
                "no PEM certificate",
            ),
            ("tls.crt", "other.key", "ca.crt", "other.key", "usable"),
        ];
        for (cert, key, ca, named, word) in cases {
            let err = server_tls_config(&pki.path(cert), &pki.path(key), &pki.path(ca))
                .expect_err(&format!("{cert} {key} {ca} must fail"));
            let text = err.to_string();
            assert!(
                text.contains(&pki.path(named).display().to_string()) && text.contains(word),
                "{cert} {key} {ca}: {text}"
            );
        }
    }
}
