//! Loads the whole OWASP CRS (from PALISADE_CRS_DIR) and checks a few
//! well-known decisions end to end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use palisade_waf::Ruleset;

fn crs_dir() -> PathBuf {
    std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"))
}

fn load_crs(extra: &str) -> Ruleset {
    let crs = crs_dir();
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("zz-setup.conf");
    std::fs::write(&setup, extra).unwrap();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/modsecdefault.conf");
    let mut paths: Vec<PathBuf> = vec![default, crs.join("crs-setup.conf.example"), setup];
    let mut rules: Vec<PathBuf> = std::fs::read_dir(crs.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    rules.sort();
    paths.extend(rules);
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let start = Instant::now();
    let rs = Ruleset::load_paths(&refs).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    eprintln!(
        "compiled {} rules in {:?}: {:?}",
        rs.rule_count(),
        start.elapsed(),
        rs.stats()
    );
    rs
}

fn eval(rs: &Ruleset, method: &str, uri: &str) -> (Option<u16>, Vec<i64>) {
    let mut tx = rs.transaction();
    tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
    tx.process_uri(uri, method, "HTTP/1.1");
    for (k, v) in [
        ("Host", "localhost"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        ),
        ("Accept", "text/html,application/xhtml+xml"),
    ] {
        tx.add_request_header(k.as_bytes(), v.as_bytes());
    }
    let mut st = tx.process_request_headers().map(|i| i.status);
    if st.is_none() {
        st = tx.process_request_body().map(|i| i.status);
    }
    tx.process_logging();
    (
        st,
        tx.matched_rules()
            .iter()
            .filter(|m| m.log)
            .map(|m| m.id)
            .collect(),
    )
}

#[test]
fn crs_blocks_sqli_and_passes_benign() {
    let rs = load_crs("");
    let (status, ids) = eval(
        &rs,
        "GET",
        "/test/artists.php?artist=0+div+1+union%23foo*%2F*bar%0D%0Aselect%23foo%0D%0A1%2C2%2Ccurrent_user",
    );
    assert_eq!(status, Some(403), "{ids:?}");
    assert!(ids.contains(&942100), "{ids:?}");
    assert!(ids.contains(&949110), "{ids:?}");
    let (status, ids) = eval(&rs, "GET", "/products?id=42&sort=price");
    assert_eq!((status, ids), (None, vec![]));
}
