//! mTLS for the policy-sync connection to an `https://` control plane: the
//! enforcer's client certificate and key, and the CA the control plane's
//! server certificate must chain to. Files are read and checked once, when the
//! configuration is built, so a bad file stops the enforcer at start with a
//! message naming it; new certificates take effect on restart.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A TLS file that cannot be used, or an incomplete set of TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// Some but not all of the three TLS settings were given.
    #[error(
        "TLS needs all of --tls-cert (PALISADE_TLS_CERT), --tls-key (PALISADE_TLS_KEY) and \
         --tls-ca (PALISADE_TLS_CA); missing {missing}"
    )]
    Incomplete {
        /// The settings that are missing, comma-separated.
        missing: String,
    },
    /// A file could not be read.
    #[error("cannot read TLS {what} {}: {reason}", .path.display())]
    Read {
        /// Which file (certificate, private key, CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
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
    /// The files parse but do not make a TLS client (e.g. the key does not
    /// belong to the certificate).
    #[error(
        "TLS certificate {}, private key {} and CA {} do not make a usable \
         configuration for {uri}: {reason}",
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
        /// The control-plane address.
        uri: String,
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

/// The paths of the enforcer's TLS files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Client certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) the control plane's certificate must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The TLS settings from optional flags: `None` when none is given (an
    /// empty path counts as not given), an error naming the missing ones when
    /// only some are.
    pub fn from_options(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        let given = |p: Option<&Path>| p.filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from);
        match (given(cert), given(key), given(ca)) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles { cert, key, ca })),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), "--tls-ca"),
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

    /// Reads and checks the files for connecting to `uri` (`https://HOST:PORT`;
    /// HOST is the name the server certificate must carry).
    pub fn load(&self, uri: &str) -> Result<ClientTls, TlsError> {
        let tls = ClientTls {
            files: self.clone(),
            cert_pem: read_certificates("certificate", &self.cert)?,
            key_pem: read_key(&self.key)?,
            ca_pem: read_certificates("CA", &self.ca)?,
        };
        // tonic builds the rustls client here: a key that does not belong to
        // the certificate, or an unusable address, fails now rather than on
        // every reconnect.
        let unusable = |reason: String| TlsError::Unusable {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
            uri: uri.to_string(),
            reason,
        };
        Endpoint::from_shared(uri.to_string())
            .map_err(|e| unusable(chain(&e)))?
            .tls_config(tls.client_config())
            .map_err(|e| unusable(chain(&e)))?;
        Ok(tls)
    }
}

/// Loaded TLS material for the policy-sync client.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    files: TlsFiles,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

impl fmt::Debug for ClientTls {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Where the material came from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// tonic's client TLS settings: this identity, and only the configured CA
    /// as trust root. The server name checked is the address's host.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["node".to_string()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("cert");
        let other = rcgen::KeyPair::generate().expect("key");
        for (name, text) in [
            ("ca.crt", ca.pem()),
            ("tls.crt", cert.pem()),
            ("tls.key", key.serialize_pem()),
            ("other.key", other.serialize_pem()),
            ("empty", String::new()),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn settings_are_all_or_nothing() {
        let p = |s: &'static str| Some(Path::new(s));
        assert_eq!(TlsFiles::from_options(None, None, None), Ok(None));
        assert_eq!(TlsFiles::from_options(p(""), None, p("")), Ok(None));
        type Case<'a> = (
            Option<&'a Path>,
            Option<&'a Path>,
            Option<&'a Path>,
            &'a str,
        );
        let cases: &[Case] = &[
            (p("c"), None, None, "missing --tls-key, --tls-ca"),
            (p("c"), p("k"), None, "missing --tls-ca"),
            (None, p("k"), p("a"), "missing --tls-cert"),
        ];
        for (cert, key, ca, want) in cases {
            let err = TlsFiles::from_options(*cert, *key, *ca).expect_err("incomplete");
            assert!(err.to_string().ends_with(want), "{err} / {want}");
        }
    }

    #[test]
    fn loads_good_files_and_names_bad_ones() {
        let dir = pki();
        let path = |n: &str| dir.path().join(n);
        let files = |c: &str, k: &str, a: &str| TlsFiles {
            cert: path(c),
            key: path(k),
            ca: path(a),
        };
        let uri = "https://palisade-control-plane.palisade.svc:18001";
        let tls = files("tls.crt", "tls.key", "ca.crt")
            .load(uri)
            .expect("usable");
        assert!(!format!("{tls:?}").contains("PRIVATE"), "no key in Debug");
        // (cert, key, ca, the file the message names, a word it contains)
        let cases = [
            ("nope.crt", "tls.key", "ca.crt", "nope.crt", "cannot read"),
            ("tls.crt", "nope.key", "ca.crt", "nope.key", "cannot read"),
            ("tls.crt", "tls.key", "nope.crt", "nope.crt", "CA"),
            ("empty", "tls.key", "ca.crt", "empty", "no PEM certificate"),
            (
                "tls.crt",
                "ca.crt",
                "ca.crt",
                "ca.crt",
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
        for (c, k, a, named, word) in cases {
            let err = files(c, k, a)
                .load(uri)
                .expect_err(&format!("{c} {k} {a} must fail"));
            let text = err.to_string();
            assert!(
                text.contains(&path(named).display().to_string()) && text.contains(word),
                "{c} {k} {a}: {text}"
            );
        }
    }
}
