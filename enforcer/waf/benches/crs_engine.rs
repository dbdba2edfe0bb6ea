//! Engine-only benchmark: the whole OWASP CRS at paranoia level 1 in On mode
//! over the generated request corpus (integration/corpus/generate.py), in
//! process. Prints compile time, per-request median/p99 and where time goes.
//! It asserts nothing; `integration/bench/waf_bench.py` puts these numbers
//! side by side with ModSecurity v3.0.15 in one run.
//!
//! `cargo bench -p palisade-waf --bench crs_engine [-- COUNT] [--cold]
//! [--no-verdict-cache] [--corpus FILE]`
//!
//! Before the measured pass over the corpus (seed 7, or `--corpus FILE`),
//! the engine evaluates a warm-up corpus of as many different requests
//! (seed 8, same mix): the measured requests are new to the engine, as live
//! traffic is, and only what recurs between the two (header values,
//! parameter names) is known to the verdict cache. `--no-verdict-cache`
//! turns that cache off. The measured requests run through
//! `measured_request` (not inlined), the function to toggle callgrind on.
//!
//! `--threads N` then evaluates the measured corpus again on N threads at
//! once, five times each, sharing the ruleset (and its verdict cache) as
//! the enforcer's workers do, and prints the requests per second and each
//! thread's median: what the shared cache's locks cost under concurrency.
//!
//! `--cold` writes over a 64 MiB buffer before each measured request, so
//! every request starts with the engine's data evicted from the CPU caches,
//! as a proxy at moderate load sees it (a request every few milliseconds,
//! other processes running in between).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use palisade_waf::Ruleset;
use serde_json::Value;

/// The allocator `palisade-enforcer` and `palisade eval` run the engine with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let cold = std::env::args().any(|a| a == "--cold");
    let mut evict = if cold {
        vec![0u8; 64 << 20]
    } else {
        Vec::new()
    };
    let crs = std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/crs"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo().join("policies/modsecdefault.conf"),
        dir.path().join("modsecdefault.conf"),
    )
    .expect("modsecdefault.conf");
    std::os::unix::fs::symlink(
        crs.join("crs-setup.conf.example"),
        dir.path().join("crs-setup.conf"),
    )
    .expect("link");
    for e in std::fs::read_dir(crs.join("rules")).expect("rules") {
        let p = e.expect("entry").path();
        let n = p.file_name().expect("name").to_string_lossy().into_owned();
        if n.ends_with(".conf") || n.ends_with(".data") {
            std::os::unix::fs::symlink(&p, dir.path().join(n)).expect("link");
        }
    }
    let t = Instant::now();
    let rs = Ruleset::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let compile = t.elapsed();

    if std::env::args().any(|a| a == "--no-verdict-cache") {
        rs.set_verdict_cache(false);
    }
    let file = std::env::args().skip_while(|a| a != "--corpus").nth(1);
    let (reqs, bodies) = match file {
        Some(f) => parse_corpus(&std::fs::read(f).expect("corpus file")),
        None => corpus(count, 7),
    };
    let (warm, warm_bodies) = corpus(reqs.len(), 8);
    for (r, b) in warm.iter().zip(&warm_bodies) {
        run_request(&rs, r, b);
    }
    let mut all = Vec::new();
    let mut benign = Vec::new();
    let mut attack = Vec::new();
    let mut blocked = 0;
    let mut slowest: Vec<(f64, usize)> = Vec::new();
    for (i, (r, b)) in reqs.iter().zip(&bodies).enumerate() {
        if cold {
            // One write per cache line, outside the timed part.
            for (k, byte) in evict.iter_mut().step_by(64).enumerate() {
                *byte = byte.wrapping_add(k as u8);
            }
            std::hint::black_box(&evict);
        }
        let (blk, us) = measured_request(&rs, r, b);
        slowest.push((us, i));
        blocked += blk as usize;
        all.push(us);
        if r["attack"].as_bool().unwrap_or(false) {
            attack.push(us)
        } else {
            benign.push(us)
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (p(0.5), p(0.99), v.len())
    };
    let stats = rs.stats();
    println!(
        "CRS compile: {:.0} ms, {} rules, {} transformation chains, {} prefiltered rules",
        compile.as_secs_f64() * 1e3,
        rs.rule_count(),
        stats.transformation_chains,
        stats.prefiltered_rules
    );
    for (name, v) in [
        ("all", &mut all),
        ("benign", &mut benign),
        ("attack", &mut attack),
    ] {
        let (m, p99, n) = stat(v);
        println!("{name:>7}: median {m:8.1} µs   p99 {p99:8.1} µs   n={n}");
    }
    println!("blocked {blocked}/{}", reqs.len());
    let (values, bytes) = rs.verdict_cache_usage();
    println!(
        "verdict cache: {values} values, {:.1} KiB counted",
        bytes as f64 / 1024.0
    );
    let threads: Option<usize> = std::env::args()
        .skip_while(|a| a != "--threads")
        .nth(1)
        .and_then(|n| n.parse().ok());
    if let Some(n) = threads {
        concurrent(&rs, &reqs, &bodies, n);
    }
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (us, i) in slowest.iter().take(5) {
        let r = &reqs[*i];
        let ct = r["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h[0].as_str() == Some("Content-Type"))
            .and_then(|h| h[1].as_str())
            .unwrap_or("-");
        println!(
            "slow: {us:9.1} µs  {} {} [{ct}] body={}B",
            r["method"],
            r["uri"],
            bodies[*i].len()
        );
    }
}

/// Evaluates `reqs` five times on each of `n` threads at once; prints the
/// requests per second of all threads and each thread's median.
fn concurrent(rs: &Ruleset, reqs: &[Value], bodies: &[Vec<u8>], n: usize) {
    const PASSES: usize = 5;
    let start = Instant::now();
    let medians: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::with_capacity(reqs.len() * PASSES);
                    for _ in 0..PASSES {
                        for (r, b) in reqs.iter().zip(bodies) {
                            times.push(run_request(rs, r, b).1);
                        }
                    }
                    times.sort_by(|a, b| a.total_cmp(b));
                    times[times.len() / 2]
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let total = (reqs.len() * PASSES * n) as f64;
    let medians: Vec<String> = medians.iter().map(|m| format!("{m:.1}")).collect();
    println!(
        "{n} threads: {:.0} requests/s, per-thread medians {} µs",
        total / elapsed,
        medians.join(" ")
    );
}

/// `count` requests of the generated corpus with `seed`, and their bodies.
fn corpus(count: usize, seed: u32) -> (Vec<Value>, Vec<Vec<u8>>) {
    let python = std::env::var("PALISADE_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(repo().join("integration/corpus/generate.py"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("corpus generator");
    parse_corpus(&out.stdout)
}

/// Requests (JSON lines in the `palisade eval` format) and their bodies.
fn parse_corpus(text: &[u8]) -> (Vec<Value>, Vec<Vec<u8>>) {
    let reqs: Vec<Value> = String::from_utf8_lossy(text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let bodies = reqs
        .iter()
        .map(|r| {
            r["body_b64"]
                .as_str()
                .map(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .expect("b64")
                })
                .unwrap_or_default()
        })
        .collect();
    (reqs, bodies)
}

/// Evaluates one request (phases 1 and 2): whether it was blocked, and the
/// microseconds it took.
fn run_request(rs: &Ruleset, r: &Value, body: &[u8]) -> (bool, f64) {
    let t = Instant::now();
    let mut tx = rs.transaction();
    tx.process_connection("10.1.2.3", 40000, "10.0.0.2", 80);
    tx.process_uri(
        r["uri"].as_str().unwrap_or("/"),
        r["method"].as_str().unwrap_or("GET"),
        "HTTP/1.1",
    );
    for h in r["headers"].as_array().into_iter().flatten() {
        tx.add_request_header(
            h[0].as_str().unwrap_or("").as_bytes(),
            h[1].as_str().unwrap_or("").as_bytes(),
        );
    }
    let mut blocked = tx.process_request_headers().is_some();
    if !blocked {
        tx.append_request_body(body);
        blocked = tx.process_request_body().is_some();
    }
    (blocked, t.elapsed().as_secs_f64() * 1e6)
}

/// [`run_request`] for a measured request (callgrind:
/// `--toggle-collect=*measured_request*`).
#[inline(never)]
fn measured_request(rs: &Ruleset, r: &Value, body: &[u8]) -> (bool, f64) {
    run_request(rs, r, body)
}
