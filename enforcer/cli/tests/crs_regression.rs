//! Runs the whole OWASP CRS regression suite in-process through the library
//! API, with the project's overrides file, and requires 0 failures.
//!
//! CRS location: `PALISADE_CRS_DIR`, default `<repo>/../shared/crs`.

use std::path::PathBuf;

use palisade_cli::ftw::overrides::Overrides;
use palisade_cli::ftw::{self, RunOptions};

fn crs_dir() -> PathBuf {
    std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"))
}

#[test]
fn crs_regression_suite_passes() {
    let crs = crs_dir();
    assert!(
        crs.join("rules").is_dir(),
        "no CRS at {} (set PALISADE_CRS_DIR)",
        crs.display()
    );
    let overrides_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../integration/crs/palisade-overrides.yaml");
    let overrides = Overrides::load(&overrides_path).expect("overrides load");
    let ruleset = ftw::load_crs_ruleset(&crs, None).expect("CRS ruleset loads");
    let tests = ftw::load_tests(&ftw::crs_tests_dir(&crs)).expect("CRS tests load");
    assert!(
        tests.len() > 300,
        "expected the full suite, found {} files",
        tests.len()
    );

    let opts = RunOptions {
        overrides: Some(overrides),
        ..RunOptions::default()
    };
    let mut report = Vec::new();
    let summary = ftw::run_suite(&ruleset, &tests, &opts, &mut report).expect("suite runs");
    let report = String::from_utf8_lossy(&report);
    // Failure reports and the footer (time, summary line) go to the test output.
    println!("{report}");
    assert!(
        summary.ran() > 5000,
        "expected the whole suite to run: {}",
        summary.line()
    );
    assert_eq!(summary.failed, 0, "{}", summary.line());
}
