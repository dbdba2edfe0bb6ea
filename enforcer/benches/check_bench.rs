//! Check-path benchmark for the enforcer without Envoy: the cost of one Check
//! in process (protobuf decode, `check`, response, metrics, encode) and over
//! the real Unix socket against the release binary, with the enforcer's own
//! CPU time per Check read from `/proc`. Not a test; prints numbers only.
//!
//! ```text
//! cargo bench -p palisade-enforcer --bench check_bench -- [inproc] [grpc] [--seconds S]
//!     [--conns 1,8,32] [--crs] [--hold] [--callgrind]
//! ```
//!
//! Requests are shaped like Envoy's (ext_authz with `encode_raw_headers` and
//! `pack_as_bytes`): the proxy bench's corpus of ten benign browser requests
//! with Envoy's added headers, the `palisade.service` context extension,
//! socket addresses and a request time. Two services: `shop/alp` (WAF off,
//! one HTTP policy) and, with `--crs` (needs the CRS at `PALISADE_CRS_DIR`),
//! `shop/web` (CRS v4 PL1, On). `--hold` keeps the enforcer running after the
//! gRPC run until Enter is pressed (to attach `perf`); `--callgrind` runs it
//! under valgrind's callgrind and prints the enforcer's user-space
//! instructions per Check (deterministic where CPU time on a shared machine
//! is not; all threads, measured window only).

#[path = "../tests/support/check_client.rs"]
mod check_client;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use check_client::{channel, peer};
use palisade_enforcer::check::{check, response};
use palisade_enforcer::config::Config;
use palisade_enforcer::events::EventOutput;
use prost::Message;
use xds_api::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use xds_api::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use xds_api::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use xds_api::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The proxy bench's corpus: method, path, content type, body.
const CORPUS: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/", None, ""),
    ("GET", "/index.html", None, ""),
    (
        "GET",
        "/products?category=shoes&page=2&sort=price",
        None,
        "",
    ),
    ("GET", "/products/12345", None, ""),
    ("GET", "/search?q=red+running+shoes&lang=en", None, ""),
    ("GET", "/static/app.js?v=1.2.3", None, ""),
    ("GET", "/api/v1/cart?session=9f8e7d6c5b4a", None, ""),
    (
        "POST",
        "/api/v1/cart",
        Some("application/x-www-form-urlencoded"),
        "item=12345&quantity=2&colour=red",
    ),
    (
        "POST",
        "/api/v1/orders",
        Some("application/json"),
        r#"{"items":[{"id":12345,"qty":2}],"address":{"street":"1 Main St","city":"Springfield"},"note":"leave at the door"}"#,
    ),
    (
        "GET",
        "/account/orders?from=2025-01-01&to=2025-12-31",
        None,
        "",
    ),
];

const BROWSER_HEADERS: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate"),
    ("cookie", "session=9f8e7d6c5b4a; theme=dark"),
];

/// The corpus as Envoy's ext_authz filter would describe it for `service`.
fn corpus(service: &str) -> Vec<CheckRequest> {
    CORPUS
        .iter()
        .enumerate()
        .map(|(i, (method, path, ctype, body))| {
            let request_id = format!("3e9df8dc-e9f3-42b0-bf1c-{i:012}");
            let mut headers: Vec<(String, String)> = vec![
                (":authority".into(), "shop.test".into()),
                (":path".into(), (*path).into()),
                (":method".into(), (*method).into()),
                (":scheme".into(), "http".into()),
            ];
            headers.extend(
                BROWSER_HEADERS
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
            );
            if let Some(ctype) = ctype {
                headers.push(("content-type".into(), (*ctype).into()));
                headers.push(("content-length".into(), body.len().to_string()));
            }
            headers.push(("x-forwarded-proto".into(), "http".into()));
            headers.push(("x-request-id".into(), request_id.clone()));
            CheckRequest {
                attributes: Some(AttributeContext {
                    source: peer("127.0.0.1", 40000 + i as u32),
                    destination: peer("127.0.0.1", 10000),
                    context_extensions: HashMap::from([(
                        "palisade.service".to_string(),
                        service.to_string(),
                    )]),
                    request: Some(Request {
                        time: Some(xds_api::pb::google::protobuf::Timestamp {
                            seconds: 1_795_000_000,
                            nanos: 1234,
                        }),
                        http: Some(HttpRequest {
                            id: "12345678901234567890".into(),
                            method: (*method).into(),
                            path: (*path).into(),
                            host: "shop.test".into(),
                            scheme: "http".into(),
                            protocol: "HTTP/1.1".into(),
                            size: body.len() as i64,
                            header_map: Some(HeaderMap {
                                headers: headers
                                    .into_iter()
                                    .map(|(key, value)| HeaderValue {
                                        key,
                                        raw_value: value.into_bytes(),
                                        ..Default::default()
                                    })
                                    .collect(),
                            }),
                            raw_body: body.as_bytes().to_vec(),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            }
        })
        .collect()
}

/// Writes a state file: `shop/alp` (policy only) and, with the CRS,
/// `shop/web` (CRS PL1 On).
fn write_state(dir: &Path, crs: Option<&Path>) -> PathBuf {
    let mut state = String::from(
        "version: bench\n\
         settings: {defaultWafMode: On, unknownServiceAllow: false}\n\
         services:\n  - {namespace: shop, name: alp, wafMode: Off, labels: {app: alp}}\n",
    );
    if crs.is_some() {
        state.push_str("  - {namespace: shop, name: web, wafMode: On, ruleset: crs}\n");
    }
    state.push_str(
        "tiers:\n  - name: default\n    policies:\n      - name: alp\n        \
         selector: app == 'alp'\n        ingress:\n          \
         - {action: Deny, http: {paths: [{prefix: /admin}]}}\n          \
         - {action: Allow, http: {methods: [GET, POST]}}\n",
    );
    if let Some(crs) = crs {
        state.push_str(&format!(
            "rulesets:\n  - name: crs\n    paths:\n      \
             - modsecdefault.conf={ROOT}/policies/modsecdefault.conf\n      \
             - crs-setup.conf={crs}/crs-setup.conf.example\n      - {crs}/rules\n",
            crs = crs.display()
        ));
    }
    let path = dir.join("state.yaml");
    std::fs::write(&path, state).expect("write the state file");
    path
}

fn crs_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ROOT).join("../shared/crs"));
    dir.join("rules").is_dir().then_some(dir)
}

/// Nanoseconds per iteration of `f` over `iterations`.
fn per_op(iterations: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..iterations / 10 {
        f(i);
    }
    let started = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn inproc(crs: Option<&Path>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = Config::with_socket(dir.path().join("enforcer.sock"));
    config.state = Some(write_state(dir.path(), crs));
    config.events = EventOutput::None;
    let running = runtime
        .block_on(palisade_enforcer::start(config))
        .expect("enforcer starts");
    let shared = running.shared.clone();

    let mut services = vec![("shop/alp", 200_000)];
    if crs.is_some() {
        services.push(("shop/web", 5_000));
    }
    println!("in process, ns per Check (mean over the corpus):");
    for (service, iterations) in services {
        let requests = corpus(service);
        let encoded: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
        let n = requests.len() as u32;
        let decode = per_op(iterations, |i| {
            let r = CheckRequest::decode(encoded[(i % n) as usize].as_slice()).expect("decodes");
            std::hint::black_box(r);
        });
        let wire = per_op(iterations, |i| {
            let facts = palisade_enforcer::wire::decode_check_request(&encoded[(i % n) as usize])
                .expect("decodes");
            std::hint::black_box(facts);
        });
        let decide = per_op(iterations, |i| {
            let outcome = check(&shared, &requests[(i % n) as usize]);
            assert!(outcome.allow, "{service}: corpus request {} denied", i % n);
            std::hint::black_box(outcome);
        });
        let outcome = check(&shared, &requests[0]);
        let encode = per_op(iterations, |_| {
            let bytes = response(&outcome).encode_to_vec();
            std::hint::black_box(bytes);
        });
        let metrics = per_op(iterations, |_| {
            shared.metrics.decision(&outcome.service, outcome.action);
            shared.metrics.check_duration(Duration::from_micros(50));
        });
        let bytes = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
        println!(
            "  {service}: prost decode {decode:.0} (request {bytes} B), wire decode {wire:.0}, \
             check {decide:.0}, response+encode {encode:.0}, metrics {metrics:.0}"
        );
    }
    runtime.block_on(running.stop());
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')').
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 here.
    field(11) + field(12)
}

fn ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Enforcer {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_enforcer(crs: Option<&Path>, callgrind: bool) -> Enforcer {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("enforcer.sock");
    let state = write_state(dir.path(), crs);
    let binary = env!("CARGO_BIN_EXE_palisade-enforcer");
    let mut command = if callgrind {
        let mut c = Command::new("valgrind");
        c.args(["--tool=callgrind", "--quiet"])
            .arg(format!(
                "--callgrind-out-file={}/callgrind.out.%p",
                dir.path().display()
            ))
            .arg(binary);
        c
    } else {
        Command::new(binary)
    };
    let child = command
        .arg("--socket")
        .arg(&socket)
        .arg("--state")
        .arg(&state)
        .args(["--metrics-addr", "off", "--events-file"])
        .arg(dir.path().join("events.log"))
        .env("PALISADE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the enforcer binary");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    Enforcer { child, socket, dir }
}

/// One load run: `conns` HTTP/2 connections, one outstanding Check each.
async fn load(
    socket: &Path,
    service: &str,
    conns: usize,
    seconds: u64,
    pid: u32,
    callgrind: Option<&Path>,
) -> Load {
    let requests = Arc::new(corpus(service));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(AuthorizationClient::new(channel(socket).await));
    }
    // Warm-up.
    for client in &mut clients {
        for r in requests.iter() {
            client.check(r.clone()).await.expect("check");
        }
    }
    if let Some(dir) = callgrind {
        callgrind_control("-z", pid, dir);
    }
    let ticks = cpu_ticks(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut client) in clients.into_iter().enumerate() {
        let requests = requests.clone();
        let stop = stop.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let request = requests[i % requests.len()].clone();
                i += 1;
                let t = Instant::now();
                let answer: CheckResponse =
                    client.check(request).await.expect("check").into_inner();
                latencies.push(t.elapsed());
                assert_eq!(answer.status.map(|s| s.code), Some(0), "allowed");
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - ticks) as f64 / ticks_per_second();
    let instructions = callgrind.map(|dir| callgrind_control("-d", pid, dir));
    latencies.sort();
    let n = latencies.len().max(1);
    let pct = |p: usize| {
        latencies
            .get(n * p / 100)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let count = done.load(Ordering::Relaxed) as f64;
    Load {
        rate: count / elapsed,
        p50: pct(50),
        p99: pct(99),
        cpu_us: cpu / count.max(1.0) * 1e6,
        instructions: instructions.map(|i| i as f64 / count.max(1.0)),
    }
}

/// What one load run measured.
struct Load {
    /// Checks per second.
    rate: f64,
    /// Median latency, microseconds.
    p50: f64,
    /// 99th percentile latency, microseconds.
    p99: f64,
    /// Enforcer CPU time (user + system) per Check, microseconds.
    cpu_us: f64,
    /// Enforcer instructions per Check (user space, under callgrind).
    instructions: Option<f64>,
}

/// Runs `callgrind_control FLAG PID` (`-z` zeroes, `-d` dumps); after a dump,
/// returns the instructions counted since the last zeroing.
fn callgrind_control(flag: &str, pid: u32, dir: &Path) -> u64 {
    let before: Vec<PathBuf> = dump_files(dir);
    let status = Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) || flag != "-d" {
        return 0;
    }
    let dump = dump_files(dir).into_iter().find(|f| !before.contains(f));
    let text = dump
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dump_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("callgrind.out."))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn grpc(crs: Option<&Path>, conns: &[usize], seconds: u64, hold: bool, callgrind: bool) {
    let enforcer = spawn_enforcer(crs, callgrind);
    let dumps = callgrind.then(|| enforcer.dir.path().to_path_buf());
    let pid = enforcer.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut services = vec!["shop/alp"];
    if crs.is_some() {
        services.push("shop/web");
    }
    println!("over the Unix socket (tonic client, release enforcer binary):");
    for service in services {
        for &c in conns {
            let l = runtime.block_on(load(
                &enforcer.socket,
                service,
                c,
                seconds,
                pid,
                dumps.as_deref(),
            ));
            let instructions = l
                .instructions
                .map(|i| format!(", {i:.0} instructions per Check"))
                .unwrap_or_default();
            println!(
                "  {service} conns {c}: {:.0} Check/s, p50 {:.0} us, p99 {:.0} us, \
                 enforcer CPU {:.1} us per Check{instructions}",
                l.rate, l.p50, l.p99, l.cpu_us
            );
        }
    }
    if hold {
        println!(
            "enforcer pid {pid} on {}; Enter stops it",
            enforcer.socket.display()
        );
        let _ = std::io::stdin().lock().lines().next();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds = value("--seconds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let conns: Vec<usize> = value("--conns")
        .map(|s| s.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    let crs = if args.iter().any(|a| a == "--crs") {
        let dir = crs_dir();
        if dir.is_none() {
            eprintln!("CRS not found (PALISADE_CRS_DIR): CRS service skipped");
        }
        dir
    } else {
        None
    };
    let modes: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| matches!(*a, "inproc" | "grpc"))
        .collect();
    let all = modes.is_empty();
    if all || modes.contains(&"inproc") {
        inproc(crs.as_deref());
    }
    if all || modes.contains(&"grpc") {
        grpc(
            crs.as_deref(),
            &conns,
            seconds,
            args.iter().any(|a| a == "--hold"),
            args.iter().any(|a| a == "--callgrind"),
        );
    }
}
