//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::events::EventOutput;
use crate::tls::{ClientTls, Role, TlsError, TlsFiles};

/// Where the control plane's policy-sync service listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlPlaneAddr {
    /// `http://host:port`.
    Http(String),
    /// `https://host:port`: mutual TLS. `tls` is the client certificate and
    /// server CA; [`Config`] fills it from `--tls-*`. (Without it, no server
    /// certificate is trusted and connecting fails.)
    Https {
        /// The address as given.
        uri: String,
        /// Loaded TLS material.
        tls: Option<ClientTls>,
    },
    /// `unix:PATH` (or `unix://PATH`).
    Unix(PathBuf),
}

/// A control-plane address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not `http://host:port`, `https://host:port` or `unix:PATH`.
    #[error(
        "control plane address `{0}` must be http://HOST:PORT, https://HOST:PORT or unix:PATH"
    )]
    ControlPlane(String),
    /// A TLS file cannot be used, or the TLS settings are incomplete.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An `https://` control plane without the TLS files.
    #[error(
        "control plane `{0}` is https: give --tls-cert, --tls-key and --tls-ca \
         (PALISADE_TLS_CERT, PALISADE_TLS_KEY, PALISADE_TLS_CA)"
    )]
    TlsRequired(String),
    /// TLS files without an `https://` control plane to use them for.
    #[error("--tls-cert, --tls-key and --tls-ca need an https://HOST:PORT control plane{0}")]
    TlsUnused(String),
    /// A metrics address that is not HOST:PORT or `off`.
    #[error("metrics address `{0}` must be IP:PORT or off")]
    MetricsAddr(String),
    /// Neither a socket nor a TCP listener.
    #[error("nothing to listen on: give --socket or --listen-tcp")]
    NoListener,
}

impl std::str::FromStr for ControlPlaneAddr {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(ConfigError::ControlPlane(s.to_string()));
            }
            return Ok(ControlPlaneAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("https://") {
            if rest.is_empty() {
                return Err(ConfigError::ControlPlane(s.to_string()));
            }
            return Ok(ControlPlaneAddr::Https {
                uri: s.to_string(),
                tls: None,
            });
        }
        match s.strip_prefix("http://") {
            Some(rest) if !rest.is_empty() => Ok(ControlPlaneAddr::Http(s.to_string())),
            _ => Err(ConfigError::ControlPlane(s.to_string())),
        }
    }
}

/// What to do with requests the enforcer cannot decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailureMode {
    /// Let them through.
    Allow,
    /// Refuse them (403).
    Deny,
}

/// `palisade-enforcer` flags.
#[derive(Debug, Parser)]
#[command(
    name = "palisade-enforcer",
    version,
    about = "Palisade's node enforcer: Envoy ext_authz with HTTP policy and the WAF"
)]
pub struct Args {
    /// Unix socket for the ext_authz gRPC service (an empty value, e.g. from
    /// the environment, disables it).
    #[arg(
        long,
        env = "PALISADE_SOCKET",
        default_value = "/var/run/palisade/enforcer.sock"
    )]
    pub socket: PathBuf,
    /// Also serve ext_authz on this TCP address.
    #[arg(long, env = "PALISADE_LISTEN_TCP")]
    pub listen_tcp: Option<SocketAddr>,
    /// Address of the /metrics and /ready endpoint ("off" to disable).
    #[arg(long, env = "PALISADE_METRICS_ADDR", default_value = "0.0.0.0:9094")]
    pub metrics_addr: String,
    /// Policy-sync service of the control plane: http://HOST:PORT,
    /// https://HOST:PORT (mutual TLS: needs --tls-cert, --tls-key, --tls-ca)
    /// or unix:PATH.
    #[arg(long, env = "PALISADE_CONTROL_PLANE")]
    pub control_plane: Option<ControlPlaneAddr>,
    /// Client certificate chain (PEM) presented to an https:// control plane.
    #[arg(long, env = "PALISADE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PALISADE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) the control plane's server certificate must chain to.
    #[arg(long, env = "PALISADE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A local state file (YAML or JSON) to start from, or to run without a control plane.
    #[arg(long, env = "PALISADE_STATE")]
    pub state: Option<PathBuf>,
    /// This node's name, sent to the control plane.
    #[arg(long, env = "NODE_NAME", default_value = "standalone")]
    pub node: String,
    /// Append event lines to this file instead of stdout.
    #[arg(long, env = "PALISADE_EVENTS_FILE")]
    pub events_file: Option<PathBuf>,
    /// Decision while no snapshot exists.
    #[arg(long, env = "PALISADE_FAILURE_MODE", value_enum, default_value_t = FailureMode::Deny)]
    pub failure_mode: FailureMode,
    /// Threads that serve Check requests: 1 runs every task on one thread (a
    /// current-thread runtime, the cheapest per Check); N > 1 runs a
    /// multi-threaded runtime with N workers. Snapshot builds always run on
    /// separate blocking threads.
    #[arg(
        long,
        env = "PALISADE_WORKERS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub workers: u16,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Unix socket path.
    pub socket: Option<PathBuf>,
    /// TCP listener.
    pub listen_tcp: Option<SocketAddr>,
    /// Metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// Control plane.
    pub control_plane: Option<ControlPlaneAddr>,
    /// Local state file.
    pub state: Option<PathBuf>,
    /// Node name.
    pub node: String,
    /// Event output.
    pub events: EventOutput,
    /// Allow requests while no snapshot exists.
    pub failure_mode_allow: bool,
}

impl Config {
    /// A configuration serving only a Unix socket, with defaults otherwise
    /// (no metrics endpoint, no control plane, events to stdout, deny without a snapshot).
    pub fn with_socket(socket: impl Into<PathBuf>) -> Config {
        Config {
            socket: Some(socket.into()),
            listen_tcp: None,
            metrics_addr: None,
            control_plane: None,
            state: None,
            node: "standalone".to_string(),
            events: EventOutput::Stdout,
            failure_mode_allow: false,
        }
    }
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let socket = (!args.socket.as_os_str().is_empty()).then_some(args.socket);
        if socket.is_none() && args.listen_tcp.is_none() {
            return Err(ConfigError::NoListener);
        }
        let metrics_addr = match args.metrics_addr.as_str() {
            "" | "off" => None,
            a => Some(
                a.parse()
                    .map_err(|_| ConfigError::MetricsAddr(a.to_string()))?,
            ),
        };
        let tls = TlsFiles::from_options(
            Role::Client,
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
            args.tls_ca.as_deref(),
        )?;
        let control_plane = match (args.control_plane, tls) {
            (Some(ControlPlaneAddr::Https { uri, .. }), Some(files)) => {
                let tls = ClientTls::load(files, &uri)?;
                Some(ControlPlaneAddr::Https {
                    uri,
                    tls: Some(tls),
                })
            }
            (Some(ControlPlaneAddr::Https { uri, .. }), None) => {
                return Err(ConfigError::TlsRequired(uri))
            }
            (Some(ControlPlaneAddr::Http(uri)), Some(_)) => {
                return Err(ConfigError::TlsUnused(format!(", not `{uri}`")))
            }
            (Some(ControlPlaneAddr::Unix(path)), Some(_)) => {
                return Err(ConfigError::TlsUnused(format!(
                    ", not `unix:{}`",
                    path.display()
                )))
            }
            (None, Some(_)) => return Err(ConfigError::TlsUnused(String::new())),
            (addr, None) => addr,
        };
        Ok(Config {
            socket,
            listen_tcp: args.listen_tcp,
            metrics_addr,
            control_plane,
            state: args.state,
            node: args.node,
            events: match args.events_file {
                Some(p) => EventOutput::File(p),
                None => EventOutput::Stdout,
            },
            failure_mode_allow: args.failure_mode == FailureMode::Allow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_plane_addresses() {
        let cases: &[(&str, Option<ControlPlaneAddr>)] = &[
            (
                "http://127.0.0.1:9000",
                Some(ControlPlaneAddr::Http("http://127.0.0.1:9000".into())),
            ),
            (
                "unix:/run/cp.sock",
                Some(ControlPlaneAddr::Unix("/run/cp.sock".into())),
            ),
            (
                "unix:///run/cp.sock",
                Some(ControlPlaneAddr::Unix("/run/cp.sock".into())),
            ),
            ("unix:", None),
            (
                "https://x:1",
                Some(ControlPlaneAddr::Https {
                    uri: "https://x:1".into(),
                    tls: None,
                }),
            ),
            ("https://", None),
            ("x:1", None),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<ControlPlaneAddr>().ok(), *want, "{text}");
        }
    }

    #[test]
    fn builds_config_from_flags() {
        let args = Args::parse_from([
            "palisade-enforcer",
            "--socket",
            "/tmp/e.sock",
            "--metrics-addr",
            "off",
            "--failure-mode",
            "allow",
            "--control-plane",
            "unix:/tmp/cp.sock",
        ]);
        let config = Config::try_from(args).expect("valid");
        assert_eq!(config.metrics_addr, None);
        assert!(config.failure_mode_allow);
        assert_eq!(
            config.control_plane,
            Some(ControlPlaneAddr::Unix("/tmp/cp.sock".into()))
        );
        let mut args = Args::parse_from(["palisade-enforcer"]);
        args.socket = PathBuf::new();
        assert_eq!(Config::try_from(args).err(), Some(ConfigError::NoListener));
    }

    #[test]
    fn tls_files_go_with_an_https_control_plane() {
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
        let path = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(path("ca.crt"), ca.pem()).expect("write");
        std::fs::write(path("tls.crt"), cert.pem()).expect("write");
        std::fs::write(path("tls.key"), key.serialize_pem()).expect("write");
        let tls = [
            "--tls-cert".to_string(),
            path("tls.crt"),
            "--tls-key".to_string(),
            path("tls.key"),
            "--tls-ca".to_string(),
            path("ca.crt"),
        ];
        let https = "https://palisade-control-plane.palisade.svc:18001";
        // (control plane, with the TLS flags, Ok(TLS loaded) or Err(part of the message))
        let cases: &[(Option<&str>, bool, Result<bool, &str>)] = &[
            (Some(https), true, Ok(true)),
            (Some("http://cp:18001"), false, Ok(false)),
            (None, false, Ok(false)),
            (Some(https), false, Err("is https: give --tls-cert")),
            (Some("http://cp:18001"), true, Err("not `http://cp:18001`")),
            (
                Some("unix:/run/cp.sock"),
                true,
                Err("not `unix:/run/cp.sock`"),
            ),
            (None, true, Err("need an https://HOST:PORT control plane")),
        ];
        for (cp, with_tls, want) in cases {
            let mut argv = vec!["palisade-enforcer".to_string()];
            if let Some(cp) = cp {
                argv.extend(["--control-plane".to_string(), cp.to_string()]);
            }
            if *with_tls {
                argv.extend(tls.iter().cloned());
            }
            let got = Config::try_from(Args::parse_from(&argv));
            match (got, want) {
                (Ok(config), Ok(loaded)) => {
                    let has_tls = matches!(
                        config.control_plane,
                        Some(ControlPlaneAddr::Https { tls: Some(_), .. })
                    );
                    assert_eq!(has_tls, *loaded, "{argv:?}");
                }
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{argv:?}: {e}"),
                (got, want) => panic!("{argv:?}: got {got:?}, want {want:?}"),
            }
        }
        // A missing file is named.
        let mut argv = vec!["palisade-enforcer", "--control-plane", https];
        let missing = path("missing.key");
        let args = [
            "--tls-cert",
            &tls[1],
            "--tls-key",
            &missing,
            "--tls-ca",
            &tls[5],
        ];
        argv.extend(args);
        let err = Config::try_from(Args::parse_from(&argv)).expect_err("missing key");
        assert!(err.to_string().contains(&missing), "{err}");
    }
}
