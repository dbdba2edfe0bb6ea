//! Palisade against ModSecurity v3.0.15 (the PyPI `libmodsecurity` bindings,
//! in-process in a Python child) on the same requests: the generated corpus
//! (`integration/corpus/generate.py`) and hand-written edge cases
//! (`integration/corpus/edge-cases.jsonl`), CRS at paranoia level 1 and 2.
//!
//! Every difference in the set of logged rule ids must be listed, with its
//! reason, in `integration/modsec/known-differences.tsv`; a listed difference
//! that no longer occurs fails the test too, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use palisade_waf::Ruleset;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crs_dir() -> PathBuf {
    std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/crs"))
}

fn python() -> PathBuf {
    let p = std::env::var_os("PALISADE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/venv/bin/python"));
    assert!(
        p.exists(),
        "no Python with libmodsecurity at {} (run scripts/setup)",
        p.display()
    );
    p
}

/// The CRS as a flat ruleset directory, with an extra settings file.
fn flat_ruleset(dir: &Path, paranoia: u8) {
    let crs = crs_dir();
    std::fs::copy(
        repo().join("policies/modsecdefault.conf"),
        dir.join("modsecdefault.conf"),
    )
    .unwrap();
    let mut setup = std::fs::read_to_string(crs.join("crs-setup.conf.example")).unwrap();
    setup.push_str(&format!(
        "\nSecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={paranoia}\"\n"
    ));
    std::fs::write(dir.join("crs-setup.conf"), setup).unwrap();
    for e in std::fs::read_dir(crs.join("rules")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".conf") || name.ends_with(".data") {
            std::os::unix::fs::symlink(&p, dir.join(&name)).unwrap();
        }
    }
}

fn corpus() -> Vec<Value> {
    let out = Command::new(python())
        .arg(repo().join("integration/corpus/generate.py"))
        .args(["--count", "400", "--seed", "11"])
        .output()
        .expect("run corpus generator");
    assert!(out.status.success());
    let mut reqs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let edge = std::fs::read_to_string(repo().join("integration/corpus/edge-cases.jsonl")).unwrap();
    for l in edge
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        reqs.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("edge-cases.jsonl: {e}: {l}")));
    }
    reqs
}

fn palisade_ids(rs: &Ruleset, req: &Value) -> BTreeSet<i64> {
    let mut tx = rs.transaction();
    let addr = req["remote_addr"].as_str().unwrap_or("127.0.0.1:40000");
    let (ip, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    tx.process_connection(ip, port.parse().unwrap_or(0), "127.0.0.1", 80);
    tx.process_uri(
        req["uri"].as_str().unwrap(),
        req["method"].as_str().unwrap_or("GET"),
        req["version"].as_str().unwrap_or("HTTP/1.1"),
    );
    for h in req["headers"].as_array().unwrap() {
        tx.add_request_header(
            h[0].as_str().unwrap().as_bytes(),
            h[1].as_str().unwrap().as_bytes(),
        );
    }
    if tx.process_request_headers().is_none() {
        if let Some(b) = req["body_b64"].as_str() {
            let body = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
            tx.append_request_body(&body);
        }
        tx.process_request_body();
    }
    tx.process_logging();
    tx.matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect()
}

fn modsec_ids(ruleset: &Path, reqs: &[Value]) -> Vec<BTreeSet<i64>> {
    let mut child = Command::new(python())
        .arg(repo().join("integration/modsec/modsec_eval.py"))
        .arg("--ruleset")
        .arg(ruleset)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start modsec_eval.py");
    let mut input = Vec::new();
    for r in reqs {
        serde_json::to_writer(&mut input, r).unwrap();
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "modsec_eval.py failed");
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        reqs.len(),
        "modsec_eval.py answered {} of {}",
        rows.len(),
        reqs.len()
    );
    rows.iter()
        .map(|r| {
            r["rule_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect()
        })
        .collect()
}

/// (paranoia (0: any), request id (`*`: any), rule id) -> (side it appears on, reason)
fn known() -> BTreeMap<(u8, String, i64), (String, String)> {
    let text =
        std::fs::read_to_string(repo().join("integration/modsec/known-differences.tsv")).unwrap();
    let mut m = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert!(
            f.len() == 5,
            "known-differences.tsv:{}: want 5 tab-separated fields",
            n + 1
        );
        m.insert(
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].parse().unwrap(),
            ),
            (f[3].to_string(), f[4].to_string()),
        );
    }
    m
}

#[test]
fn same_rules_fire_as_modsecurity_v3() {
    let reqs = corpus();
    let known = known();
    let mut unexpected = Vec::new();
    let mut seen = BTreeSet::new();
    let mut compared = 0;
    for paranoia in [1u8, 2] {
        let dir = tempfile::tempdir().unwrap();
        flat_ruleset(dir.path(), paranoia);
        let rs = Ruleset::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let reference = modsec_ids(dir.path(), &reqs);
        for (req, theirs) in reqs.iter().zip(&reference) {
            let ours = palisade_ids(&rs, req);
            let id = req["id"].to_string().trim_matches('"').to_string();
            compared += 1;
            for (rule, side) in ours
                .difference(theirs)
                .map(|r| (*r, "palisade"))
                .chain(theirs.difference(&ours).map(|r| (*r, "modsecurity")))
            {
                // Exact entries first, then wildcards: paranoia 0 = any, request * = any.
                let candidates = [
                    (paranoia, id.clone(), rule),
                    (paranoia, "*".to_string(), rule),
                    (0, id.clone(), rule),
                    (0, "*".to_string(), rule),
                ];
                let hit = candidates
                    .into_iter()
                    .find(|k| known.get(k).is_some_and(|(s, _)| s == side));
                match hit {
                    Some(key) => {
                        seen.insert(key);
                    }
                    _ => unexpected.push(format!(
                        "PL{paranoia} request {id}: rule {rule} only in {side} (palisade {ours:?}, modsecurity {theirs:?}) uri={}",
                        req["uri"]
                    )),
                }
            }
        }
    }
    let stale: Vec<_> = known.keys().filter(|k| !seen.contains(*k)).collect();
    eprintln!(
        "compared {compared} evaluations; {} known differences, {} unexpected, {} stale",
        seen.len(),
        unexpected.len(),
        stale.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected differences:\n{}",
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed differences that no longer occur: {stale:?}"
    );
}
