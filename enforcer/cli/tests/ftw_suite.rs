//! The harness end to end on a small self-written suite (tests/data/ftw)
//! against self-written rules (tests/data/rules): every part of a stage —
//! request building, the server model, the WAF, the albedo stand-in and the
//! log — has to work for these cases to pass.

use std::path::PathBuf;

use palisade_cli::ftw::overrides::Overrides;
use palisade_cli::ftw::{self, RunOptions};
use palisade_cli::ruleset::load_files;
use regex::Regex;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn run(opts: &RunOptions) -> (ftw::Summary, String) {
    let ruleset = load_files(&[data("rules/test-rules.conf")]).expect("rules load");
    let tests = ftw::load_tests(&data("ftw")).expect("tests load");
    let mut out = Vec::new();
    let summary = ftw::run_suite(&ruleset, &tests, opts, &mut out).expect("runs");
    (summary, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn self_test_suite_passes() {
    let (summary, report) = run(&RunOptions::default());
    println!("{report}");
    assert_eq!(
        (summary.passed, summary.failed, summary.skipped),
        (11, 0, 0),
        "{report}"
    );
    assert_eq!(summary.stages, 12);
    assert_eq!(
        summary.stages_stopped_by_server, 1,
        "only 100001-5 is refused by the server"
    );
    assert_eq!(
        report.lines().last(),
        Some("11 passed, 0 failed, 0 skipped")
    );
}

#[test]
fn include_and_exclude_skip_cases() {
    let opts = RunOptions {
        // An include match wins over an exclude match, as in go-ftw.
        include: Some(Regex::new("^100001-[6-8]$").expect("regex")),
        exclude: Some(Regex::new("^100001-").expect("regex")),
        record: true,
        ..RunOptions::default()
    };
    let (summary, _) = run(&opts);
    assert_eq!((summary.passed, summary.failed, summary.skipped), (3, 0, 8));
    let ids: Vec<&str> = summary.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["100001-6", "100001-7", "100001-8"]);
    let http09 = &summary.records[0].stages[0];
    assert_eq!(http09.status, None, "HTTP/0.9 gets no status line");
    assert_eq!(http09.request, "GET / HTTP/0.9");
    assert_eq!(
        http09.logged_ids,
        vec![100005],
        "the WAF saw the 0.9 request"
    );
    assert_eq!(summary.records[1].stages.len(), 2);
}

#[test]
fn overrides_can_ignore_and_can_make_cases_fail() {
    let text = r#"
version: v0
meta: {engine: palisade, platform: test}
test_overrides:
  - rule_id: 100001
    test_ids: [1]
    reason: "ignored for the test"
  - rule_id: 100004
    test_ids: [1]
    reason: "expect an id that never appears"
    output:
      log:
        expect_ids: [999999]
"#;
    let overrides = Overrides::parse(&data("x.yaml"), text).expect("parses");
    let opts = RunOptions {
        overrides: Some(overrides),
        verbose: true,
        ..RunOptions::default()
    };
    let (summary, report) = run(&opts);
    assert_eq!(
        (summary.passed, summary.failed, summary.skipped),
        (9, 1, 1),
        "{report}"
    );
    assert_eq!(summary.ignored, 1);
    assert!(
        report.contains("IGNORED 100001-1: ignored for the test"),
        "{report}"
    );
    let failure = &summary.failures[0];
    assert_eq!(failure.id, "100004-1");
    assert_eq!(failure.expected_ids, vec![999999]);
    assert!(failure.logged_ids.contains(&100004), "{failure:?}");
    assert!(report.contains("FAIL 100004-1"), "{report}");
    assert!(
        report.contains("[id \"100004\"]"),
        "verbose prints the log: {report}"
    );
}
