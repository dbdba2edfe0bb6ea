//! `palisade-control-plane`: parse flags, set up logging, hand off to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use palisade_control_plane::alerts::kube_status::AlertStatusWriter;
use palisade_control_plane::leader::{LeaseConfig, DEFAULT_LEASE_NAME};
use palisade_control_plane::run::{self, RunConfig, SourceConfig};
use palisade_control_plane::source::directory::DirectoryConfig;
use palisade_control_plane::tls::{self, Role, TlsFiles};
use palisade_control_plane::xds::translate::TranslateConfig;

/// Palisade's control plane: reads a policies directory (standalone) or the
/// Kubernetes API and serves xDS to node Envoys and policy to enforcers.
#[derive(Debug, Parser)]
#[command(name = "palisade-control-plane", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML and exit.
    Crdgen {
        /// Also print Calico's GlobalNetworkPolicy and Tier CRDs.
        #[arg(long)]
        calico: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Read manifests and rulesets from this directory (standalone mode) instead
    /// of the Kubernetes API.
    #[arg(long, env = "PALISADE_POLICIES", value_name = "DIR")]
    policies: Option<PathBuf>,
    /// ADS (xDS) gRPC listen address.
    #[arg(long, env = "PALISADE_XDS_LISTEN", default_value = "0.0.0.0:18000")]
    xds_listen: SocketAddr,
    /// Policy-sync gRPC listen address (enforcers connect here).
    #[arg(long, env = "PALISADE_SYNC_LISTEN", default_value = "0.0.0.0:18001")]
    sync_listen: SocketAddr,
    /// Admin HTTP listen address: /status, /metrics, /model, /healthz, /readyz.
    #[arg(long, env = "PALISADE_ADMIN_LISTEN", default_value = "0.0.0.0:18002")]
    admin_listen: SocketAddr,
    /// Address node Envoys listen on for protected traffic (default
    /// 127.0.0.1:10000 with --policies, 0.0.0.0:10000 otherwise).
    #[arg(
        long,
        visible_alias = "listen",
        env = "PALISADE_LISTEN",
        value_name = "IP:PORT"
    )]
    envoy_listen: Option<SocketAddr>,
    /// Path of the enforcer's ext_authz Unix socket on each node.
    #[arg(
        long,
        env = "PALISADE_ENFORCER_SOCKET",
        default_value = "/var/run/palisade/enforcer.sock"
    )]
    enforcer_socket: PathBuf,
    /// Timeout of Envoy's ext_authz call to the enforcer, in milliseconds.
    #[arg(long, env = "PALISADE_EXT_AUTHZ_TIMEOUT_MS", default_value_t = 500)]
    ext_authz_timeout_ms: u64,
    /// An OWASP CRS release directory (crs-setup.conf.example, rules/); served
    /// as the ruleset `crs`, which becomes the default ruleset.
    #[arg(long, env = "PALISADE_CRS_DIR", value_name = "DIR")]
    crs_dir: Option<PathBuf>,
    /// Engine defaults prepended to rulesets without their own (default:
    /// DIR/modsecdefault.conf of --policies).
    #[arg(long, env = "PALISADE_MODSECDEFAULT", value_name = "FILE")]
    modsecdefault: Option<PathBuf>,
    /// How often the policies directory is checked for changes, in milliseconds.
    #[arg(long, env = "PALISADE_POLL_INTERVAL_MS", default_value_t = 200)]
    poll_interval_ms: u64,
    /// Log format: plain or json (filter with PALISADE_LOG, e.g. `info,palisade_control_plane=debug`).
    #[arg(long, env = "PALISADE_LOG_FORMAT", default_value = "plain")]
    log_format: String,
    /// Server certificate chain (PEM) for xDS and policy sync; with --tls-key
    /// and --tls-client-ca, both are served over mutual TLS.
    #[arg(long, env = "PALISADE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PALISADE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that client certificates (node Envoys, enforcers)
    /// must chain to.
    #[arg(long, env = "PALISADE_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Elect one writer (Warning Events, ApplicationLayer status) among the
    /// replicas through a coordination.k8s.io Lease; ignored with --policies.
    #[arg(
        long,
        env = "PALISADE_LEADER_ELECTION",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PALISADE_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    lease_name: String,
    /// Namespace of the leader-election Lease (default: the client's namespace).
    #[arg(long, env = "PALISADE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Lease duration in seconds; the holder renews every third of it.
    #[arg(long, env = "PALISADE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This replica's identity in the Lease (the pod name; must be unique).
    #[arg(long, env = "POD_NAME")]
    leader_identity: Option<String>,
}

fn init_tracing(format: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "plain" => builder.init(),
        "json" => builder.json().init(),
        other => return Err(format!("--log-format must be plain or json, not `{other}`")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Crdgen { calico }) = cli.command {
        return match palisade_control_plane::k8s::crds_yaml(calico) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("palisade-control-plane: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = cli.run;
    if let Err(e) = init_tracing(&args.log_format) {
        eprintln!("palisade-control-plane: {e}");
        return ExitCode::from(64);
    }
    let tls = TlsFiles::from_options(
        Role::Server,
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
        args.tls_client_ca.as_deref(),
    )
    .and_then(|files| files.map(|f| tls::server_config(&f)).transpose());
    let tls = match tls {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("palisade-control-plane: {e}");
            return ExitCode::from(64);
        }
    };
    let default_listen = if args.policies.is_some() {
        "127.0.0.1:10000"
    } else {
        "0.0.0.0:10000"
    };
    let envoy_listen = args.envoy_listen.unwrap_or_else(|| {
        default_listen
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 10000)))
    });
    let source = match &args.policies {
        Some(dir) => {
            if !dir.is_dir() {
                eprintln!(
                    "palisade-control-plane: --policies {} is not a directory",
                    dir.display()
                );
                return ExitCode::from(64);
            }
            let mut d = DirectoryConfig::new(dir);
            d.crs_dir = args.crs_dir.clone();
            d.modsecdefault = args.modsecdefault.clone();
            d.poll_interval = Duration::from_millis(args.poll_interval_ms.max(10));
            SourceConfig::Directory(d)
        }
        None => {
            let leader_election = if args.leader_election {
                let Some(identity) = args.leader_identity.clone().filter(|i| !i.is_empty()) else {
                    eprintln!(
                        "palisade-control-plane: leader election needs an identity \
                         (POD_NAME or --leader-identity)"
                    );
                    return ExitCode::from(64);
                };
                Some(LeaseConfig {
                    name: args.lease_name.clone(),
                    namespace: args.lease_namespace.clone().filter(|n| !n.is_empty()),
                    identity,
                    lease_duration: Duration::from_secs(args.lease_duration_seconds.max(1)),
                })
            } else {
                None
            };
            SourceConfig::Kubernetes {
                crs_dir: args.crs_dir.clone(),
                modsecdefault: args.modsecdefault.clone(),
                leader_election,
            }
        }
    };
    let config = RunConfig {
        source,
        xds_listen: args.xds_listen,
        sync_listen: args.sync_listen,
        admin_listen: args.admin_listen,
        translate: TranslateConfig {
            listen_host: envoy_listen.ip().to_string(),
            listen_port: envoy_listen.port(),
            enforcer_socket: args.enforcer_socket.clone(),
            ext_authz_timeout: Duration::from_millis(args.ext_authz_timeout_ms.max(1)),
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("palisade-control-plane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kubernetes = args.policies.is_none();
    runtime.block_on(async move {
        let mut running = match run::start_with_tls(config, tls).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::from(64);
            }
        };
        // GlobalAlert status, written by the leader (Kubernetes source only).
        let alert_status = if kubernetes {
            match kube::Client::try_default().await {
                Ok(client) => {
                    let engine = running.status.alerts().clone();
                    let writer = AlertStatusWriter::new(client, engine, running.leader.clone());
                    Some(tokio::spawn(writer.run()))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "GlobalAlert status is not written");
                    None
                }
            }
        } else {
            None
        };
        tokio::select! {
            _ = running.wait() => {
                tracing::error!("a control-plane task stopped");
                ExitCode::FAILURE
            }
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                if let Some(task) = alert_status {
                    task.abort();
                }
                running.stop().await;
                ExitCode::SUCCESS
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
