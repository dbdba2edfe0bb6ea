//! Mutual-TLS files shared by the control plane (server) and the enforcers
//! (clients): the all-or-nothing `--tls-*` settings, reading and checking the
//! PEM certificate chain, private key and CA, and the errors that name the
//! file at fault.
//!
//! Only the file handling lives here; each side turns the checked PEM into
//! its own tonic configuration (`palisade_control_plane::tls`,
//! `palisade_enforcer::tls`) and reports a set that does not work together
//! with [`TlsFiles::unusable`]. Files are read once, at start; new
//! certificates take effect on restart.

// The crate allows everything for its generated code; this module is written
// by hand and held to the workspace's usual lints.
#![warn(missing_docs, missing_debug_implementations, clippy::all)]

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Which end of a mutual-TLS connection the files are for. It decides what
/// the CA is for, and so the name of its setting and how messages call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A server (the control plane): the CA is the one every client
    /// certificate must chain to, set by `--tls-client-ca`.
    Server,
    /// A client (an enforcer): the CA is the one the server's certificate
    /// must chain to, set by `--tls-ca`.
    Client,
}

impl Role {
    /// The command-line flag of the CA setting.
    pub fn ca_flag(self) -> &'static str {
        match self {
            Role::Server => "--tls-client-ca",
            Role::Client => "--tls-ca",
        }
    }

    /// The environment variable of the CA setting.
    pub fn ca_env(self) -> &'static str {
        match self {
            Role::Server => "PALISADE_TLS_CLIENT_CA",
            Role::Client => "PALISADE_TLS_CA",
        }
    }

    /// What messages call the CA file.
    pub fn ca_name(self) -> &'static str {
        match self {
            Role::Server => "client CA",
            Role::Client => "CA",
        }
    }
}

/// A TLS file that cannot be used, or an incomplete set of TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// Some but not all of the three TLS settings were given.
    #[error(
        "incomplete TLS settings: give all of --tls-cert (PALISADE_TLS_CERT), --tls-key \
         (PALISADE_TLS_KEY) and {} ({}); missing {missing}",
        .role.ca_flag(),
        .role.ca_env()
    )]
    Incomplete {
        /// The side the settings are for.
        role: Role,
        /// The flags that are missing, comma-separated.
        missing: String,
    },
    /// A file could not be read.
    #[error("cannot read TLS {what} file {}: {reason}", .path.display())]
    Read {
        /// Which file (certificate, private key, CA, client CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error, as text (so the error stays `Clone` and `Eq`).
        reason: String,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("no PEM certificate in TLS {what} file {}{}", .path.display(), detail(.reason))]
    NoCertificate {
        /// Which file (certificate, CA, client CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The PEM parser's complaint, if any.
        reason: Option<String>,
    },
    /// A key file holds no usable PEM private key.
    #[error("no PEM private key in TLS private key file {}: {reason}", .path.display())]
    NoKey {
        /// Its path.
        path: PathBuf,
        /// The PEM parser's complaint.
        reason: String,
    },
    /// The files parse but do not make a TLS configuration (e.g. the key does
    /// not belong to the certificate, or a client's address is unusable).
    #[error(
        "unusable TLS configuration{}: certificate {}, private key {} and {} {} do not work \
         together: {reason}",
        target(.uri),
        .files.cert.display(),
        .files.key.display(),
        .files.role.ca_name(),
        .files.ca.display()
    )]
    Unusable {
        /// The files (boxed: they would make every `Result` of this error large).
        files: Box<TlsFiles>,
        /// The address a client connects to (none for a server).
        uri: Option<String>,
        /// The TLS library's complaint, with its causes.
        reason: String,
    },
}

fn detail(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn target(uri: &Option<String>) -> String {
    uri.as_ref()
        .map(|u| format!(" for {u}"))
        .unwrap_or_default()
}

/// The three files of one side's mutual-TLS setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The side they are for; names the CA in settings and messages.
    pub role: Role,
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) the peer's certificate must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The TLS settings from optional flags: `None` (TLS off) when none is
    /// given (an empty path counts as not given, as an unset environment
    /// variable does), an error naming the missing ones when only some are.
    pub fn from_options(
        role: Role,
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        let given = |p: Option<&Path>| p.filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from);
        match (given(cert), given(key), given(ca)) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                role,
                cert,
                key,
                ca,
            })),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), role.ca_flag()),
                ]
                .into_iter()
                .filter_map(|(m, name)| m.then_some(name))
                .collect();
                Err(TlsError::Incomplete {
                    role,
                    missing: missing.join(", "),
                })
            }
        }
    }

    /// Reads the three files and checks that the certificate and CA files
    /// each hold at least one PEM certificate and the key file a PEM private
    /// key. Whether they work together is for the TLS library to say; report
    /// its complaint with [`TlsFiles::unusable`].
    pub fn read(&self) -> Result<TlsPem, TlsError> {
        Ok(TlsPem {
            cert: read_certificates("certificate", &self.cert)?,
            key: read_key(&self.key)?,
            ca: read_certificates(self.role.ca_name(), &self.ca)?,
        })
    }

    /// The error for files that parse but that the TLS library refuses
    /// (`error`, with its causes); `uri` is the address a client connects to.
    pub fn unusable(&self, uri: Option<&str>, error: &dyn std::error::Error) -> TlsError {
        TlsError::Unusable {
            files: Box::new(self.clone()),
            uri: uri.map(str::to_owned),
            reason: error_chain(error),
        }
    }
}

/// The checked contents of a [`TlsFiles`] set, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPem {
    /// The certificate chain.
    pub cert: Vec<u8>,
    /// The private key.
    pub key: Vec<u8>,
    /// The CA certificate(s).
    pub ca: Vec<u8>,
}

impl fmt::Debug for TlsPem {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem").finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a PEM file that must hold at least one certificate, every one of
/// which parses; `what` names the file in errors.
pub fn read_certificates(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(what, path)?;
    let no_certificate = |reason| TlsError::NoCertificate {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| no_certificate(Some(e.to_string())))?;
        count += 1;
    }
    if count == 0 {
        return Err(no_certificate(None));
    }
    Ok(pem)
}

/// Reads a PEM file that must hold a private key.
pub fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read("private key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(pem)
}

/// An error and its sources on one line, leaving out a source whose text the
/// line already holds.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

    /// A self-signed certificate (serving as CA too) and its key, an empty
    /// file and a broken PEM certificate; whether they work together is not
    /// this module's business.
    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .and_then(|params| params.self_signed(&key))
            .expect("cert");
        for (name, text) in [
            ("ca.crt", cert.pem()),
            ("tls.crt", cert.pem()),
            ("tls.key", key.serialize_pem()),
            ("empty", String::new()),
            (
                "garbage.crt",
                "-----BEGIN CERTIFICATE-----\n!!!\n".to_string(),
            ),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn settings_are_all_or_nothing() {
        let p = |s: &'static str| Some(Path::new(s));
        for role in [Role::Server, Role::Client] {
            assert_eq!(TlsFiles::from_options(role, None, None, None), Ok(None));
            assert_eq!(
                TlsFiles::from_options(role, p(""), p(""), None),
                Ok(None),
                "empty values (unset environment) mean off"
            );
            assert_eq!(
                TlsFiles::from_options(role, p("c"), p("k"), p("a")),
                Ok(Some(TlsFiles {
                    role,
                    cert: "c".into(),
                    key: "k".into(),
                    ca: "a".into()
                }))
            );
        }
        type Case<'a> = (
            Role,
            Option<&'a Path>,
            Option<&'a Path>,
            Option<&'a Path>,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Role::Server,
                p("c"),
                None,
                None,
                "missing --tls-key, --tls-client-ca",
            ),
            (
                Role::Server,
                p("c"),
                p("k"),
                None,
                "missing --tls-client-ca",
            ),
            (Role::Server, None, p("k"), p("a"), "missing --tls-cert"),
            (Role::Server, p("c"), p(""), p("a"), "missing --tls-key"),
            (
                Role::Client,
                p("c"),
                None,
                None,
                "missing --tls-key, --tls-ca",
            ),
            (Role::Client, p("c"), p("k"), None, "missing --tls-ca"),
            (Role::Client, None, p("k"), p("a"), "missing --tls-cert"),
        ];
        for (role, cert, key, ca, want) in cases {
            let err = TlsFiles::from_options(*role, *cert, *key, *ca).expect_err("incomplete");
            let text = err.to_string();
            assert!(text.ends_with(want), "{text} / {want}");
            assert!(text.contains(role.ca_env()), "{text}");
        }
    }

    #[test]
    fn reads_good_files_and_names_bad_ones() {
        let dir = pki();
        let path = |n: &str| dir.path().join(n);
        let files = |role, c: &str, k: &str, a: &str| TlsFiles {
            role,
            cert: path(c),
            key: path(k),
            ca: path(a),
        };
        let pem = files(Role::Client, "tls.crt", "tls.key", "ca.crt")
            .read()
            .expect("good files");
        assert_eq!(pem.key, std::fs::read(path("tls.key")).expect("read"));
        assert!(!format!("{pem:?}").contains("PRIVATE"), "no key in Debug");
        // (role, cert, key, ca, the file the message names, a word it contains)
        let cases = [
            (
                Role::Server,
                "nope.crt",
                "tls.key",
                "ca.crt",
                "nope.crt",
                "cannot read",
            ),
            (
                Role::Server,
                "tls.crt",
                "nope.key",
                "ca.crt",
                "nope.key",
                "cannot read",
            ),
            (
                Role::Server,
                "tls.crt",
                "tls.key",
                "nope.crt",
                "nope.crt",
                "client CA",
            ),
            (
                Role::Client,
                "tls.crt",
                "tls.key",
                "nope.crt",
                "nope.crt",
                "TLS CA",
            ),
            (
                Role::Server,
                "empty",
                "tls.key",
                "ca.crt",
                "empty",
                "no PEM certificate",
            ),
            (
                Role::Server,
                "garbage.crt",
                "tls.key",
                "ca.crt",
                "garbage.crt",
                "certificate",
            ),
            (
                Role::Server,
                "tls.crt",
                "tls.crt",
                "ca.crt",
                "tls.crt",
                "no PEM private key",
            ),
            (
                Role::Client,
                "tls.crt",
                "ca.crt",
                "ca.crt",
                "ca.crt",
                "no PEM private key",
            ),
            (
                Role::Server,
                "tls.crt",
                "tls.key",
                "tls.key",
                "tls.key",
                "no PEM certificate",
            ),
            (
                Role::Client,
                "tls.crt",
                "tls.key",
                "tls.key",
                "tls.key",
                "no PEM certificate",
            ),
        ];
        for (role, c, k, a, named, word) in cases {
            let err = files(role, c, k, a)
                .read()
                .expect_err(&format!("{c} {k} {a} must fail"));
            let text = err.to_string();
            assert!(
                text.contains(&path(named).display().to_string()) && text.contains(word),
                "{c} {k} {a}: {text}"
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn unusable_names_every_file_and_the_causes() {
        let files = TlsFiles {
            role: Role::Server,
            cert: "/etc/tls/tls.crt".into(),
            key: "/etc/tls/tls.key".into(),
            ca: "/etc/tls/ca.crt".into(),
        };
        let cause = Outer(std::io::Error::other("key mismatch"));
        let server = files.unusable(None, &cause).to_string();
        assert_eq!(
            server,
            "unusable TLS configuration: certificate /etc/tls/tls.crt, private key \
             /etc/tls/tls.key and client CA /etc/tls/ca.crt do not work together: outer: key \
             mismatch"
        );
        let client = TlsFiles {
            role: Role::Client,
            ..files
        };
        let text = client
            .unusable(Some("https://cp:18001"), &cause)
            .to_string();
        assert!(
            text.starts_with("unusable TLS configuration for https://cp:18001: ")
                && text.contains(" and CA /etc/tls/ca.crt "),
            "{text}"
        );
    }

    #[test]
    fn error_chain_skips_repeated_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        let inner = || std::io::Error::other("inner");
        assert_eq!(error_chain(&Outer(inner())), "outer: inner");
        assert_eq!(error_chain(&Repeats(inner())), "outer: inner");
    }
}
