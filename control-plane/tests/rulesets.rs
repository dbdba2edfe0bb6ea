//! The rulesets Palisade ships or builds: the baseline ruleset (with the
//! policies directory's modsecdefault.conf) and the CRS from PALISADE_CRS_DIR
//! compile with the WAF engine, and the baseline blocks the SQL injection the
//! demo sends while letting an ordinary request through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use palisade_control_plane::source::rulesets::{load_crs, load_dir};
use palisade_waf::{Intervention, MatchedRule, Ruleset};

const SQLI: &str = "/test/artists.php?artist=0+div+1+union%23foo*%2F*bar%0D%0Aselect%23foo%0D%0A1%2C2%2Ccurrent_user";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn modsecdefault() -> Vec<u8> {
    std::fs::read(repo().join("policies/modsecdefault.conf")).expect("policies/modsecdefault.conf")
}

fn baseline() -> BTreeMap<String, Vec<u8>> {
    let dir = repo().join("policies/rulesets/baseline");
    load_dir("baseline", &dir, Some(&modsecdefault()))
        .expect("baseline ruleset")
        .files
}

fn request(rules: &Ruleset, method: &str, uri: &str) -> (Option<Intervention>, Vec<MatchedRule>) {
    let mut tx = rules.transaction();
    tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
    tx.process_uri(uri, method, "HTTP/1.1");
    tx.add_request_header(b"Host", b"productpage.bookinfo.svc.cluster.local");
    tx.add_request_header(b"User-Agent", b"curl/8.5.0");
    tx.add_request_header(b"Accept", b"*/*");
    let verdict = tx
        .process_request_headers()
        .or_else(|| tx.process_request_body());
    (verdict, tx.matched_rules().to_vec())
}

#[test]
fn baseline_compiles_and_blocks_the_demo_sqli() {
    let rules = Ruleset::load_files(baseline()).unwrap_or_else(|e| panic!("baseline: {e}"));
    assert!(rules.rule_count() >= 10, "{} rules", rules.rule_count());

    let (verdict, matched) = request(&rules, "GET", SQLI);
    let verdict = verdict.expect("the SQL injection is blocked");
    assert_eq!(verdict.status, 403);
    assert!(
        matched.iter().any(|m| (1200..1300).contains(&m.id)),
        "{matched:?}"
    );
    for m in matched.iter().filter(|m| (1000..2000).contains(&m.id)) {
        assert!(
            !m.msg.is_empty() && !m.tags.is_empty() && m.severity.is_some(),
            "{m:?}"
        );
    }

    let table: &[(&str, &str, bool)] = &[
        ("GET", "/productpage", false),
        ("GET", "/static/bootstrap/css/bootstrap.min.css", false),
        ("GET", "/api/v1/products/0/reviews?user=jason", false),
        ("GET", "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", true),
        ("GET", "/download?file=../../etc/passwd", true),
        ("GET", "/.git/HEAD", true),
        ("GET", "/a?id=1%27%20or%20%271%27%3D%271", true),
    ];
    for (method, uri, blocked) in table {
        let (verdict, matched) = request(&rules, method, uri);
        assert_eq!(verdict.is_some(), *blocked, "{method} {uri}: {matched:?}");
    }
}

#[test]
fn crs_ruleset_compiles() {
    let dir = std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/crs"));
    assert!(
        dir.is_dir(),
        "CRS not found at {} (set PALISADE_CRS_DIR)",
        dir.display()
    );
    let crs = load_crs(&dir, Some(&modsecdefault())).expect("CRS directory");
    let rules = Ruleset::load_files(crs.files).unwrap_or_else(|e| panic!("crs: {e}"));
    assert!(rules.rule_count() > 100);
    let (verdict, matched) = request(&rules, "GET", SQLI);
    assert_eq!(verdict.map(|v| v.status), Some(403), "{matched:?}");
    assert!(matched.iter().any(|m| m.id == 942100), "{matched:?}");
}
