//! The `palisade-enforcer` binary: parses flags, sets up logging, builds the
//! async runtime (`--workers`) and runs the enforcer until SIGINT/SIGTERM.
//! Exits 64 on bad configuration.

use clap::Parser;
use palisade_enforcer::config::{Args, Config};

/// mimalloc: the engine's per-request allocations cost noticeably less than
/// with glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("PALISADE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The runtime for `workers` Check threads: one thread runs a current-thread
/// runtime (no work-stealing queues or cross-thread wake-ups: measurably less
/// CPU per Check, see docs/enforcer.md), more a multi-threaded one.
fn runtime(workers: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(workers));
        b
    };
    builder
        .enable_all()
        .thread_name("palisade-enforcer")
        .build()
}

fn main() {
    init_tracing();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(64);
        }
        // --help and --version.
        Err(e) => e.exit(),
    };
    let workers = args.workers;
    let config = match Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade-enforcer: {e}");
            std::process::exit(64);
        }
    };
    let runtime = match runtime(workers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("palisade-enforcer: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        match palisade_enforcer::start(config).await {
            Ok(running) => running.wait_for_shutdown_signal().await,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                let code = match e {
                    palisade_enforcer::StartError::Listen { .. } => 1,
                    _ => 64,
                };
                std::process::exit(code);
            }
        }
    });
}
