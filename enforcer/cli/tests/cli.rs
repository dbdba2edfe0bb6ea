//! The `palisade` binary: arguments, exit statuses (0 ok, 1 failures or lint
//! errors, 64 bad configuration) and the shape of what it prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn palisade(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("PALISADE_CRS_DIR")
        .env_remove("PALISADE_RULESET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("palisade exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lint_ok_and_errors() {
    let rules = data("rules/test-rules.conf");
    let out = palisade(&["lint", "--ruleset", rules.to_str().expect("utf8")], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim(), "ok: 5 rules in 1 file");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        "SecRule ARGS \"@rx a\" \"id:1,phase:2,pass\"\nSecRule NOPE \"@rx a\" \"id:2\"\n",
    )
    .expect("write");
    let out = palisade(&["lint", "--ruleset", bad.to_str().expect("utf8")], "");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("bad.conf:2: "), "{text}");

    let out = palisade(&["lint", "--ruleset", "/nonexistent/palisade.conf"], "");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn ftw_runs_and_reports() {
    let rules = data("rules/test-rules.conf");
    let tests = data("ftw");
    let args = [
        "ftw",
        "--ruleset",
        rules.to_str().expect("utf8"),
        "--tests",
        tests.to_str().expect("utf8"),
    ];
    let out = palisade(&args, "");
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(
        text.lines().last(),
        Some("11 passed, 0 failed, 0 skipped"),
        "{text}"
    );
    assert!(text.contains("ran 11 cases (12 stages) in "), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = dir.path().join("o.yaml");
    std::fs::write(
        &overrides,
        "test_overrides:\n  - rule_id: 100001\n    test_ids: [3]\n    reason: r\n    output: {status: 403}\n",
    )
    .expect("write");
    let results = dir.path().join("results.jsonl");
    let mut with_overrides = args.to_vec();
    with_overrides.extend(["--overrides", overrides.to_str().expect("utf8")]);
    with_overrides.extend(["--results", results.to_str().expect("utf8")]);
    let out = palisade(&with_overrides, "");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL 100001-3 (rule 100001, test 3, stage 1/1)"),
        "{text}"
    );
    assert!(text.contains("- status: expected [403], got 200"), "{text}");
    assert_eq!(text.lines().last(), Some("10 passed, 1 failed, 0 skipped"));
    let lines = std::fs::read_to_string(&results).expect("results written");
    assert_eq!(lines.lines().count(), 11);
    assert!(
        lines.contains(r#""id":"100001-3","passed":false"#),
        "{lines}"
    );
}

#[test]
fn bad_configuration_exits_64() {
    let rules = data("rules/test-rules.conf");
    let rules = rules.to_str().expect("utf8");
    for args in [
        vec!["ftw"],
        vec!["ftw", "--ruleset", rules],
        vec![
            "ftw",
            "--ruleset",
            rules,
            "--tests",
            "/nonexistent/palisade-tests",
        ],
        vec!["ftw", "--crs", "/nonexistent/palisade-crs"],
        vec![
            "ftw",
            "--ruleset",
            rules,
            "--tests",
            rules,
            "--include",
            "(",
        ],
        vec!["eval"],
        vec!["eval", "--ruleset", "/nonexistent/palisade.conf"],
        vec!["no-such-command"],
    ] {
        let out = palisade(&args, "");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
    assert_eq!(palisade(&["--help"], "").status.code(), Some(0));
}

#[test]
fn eval_reads_stdin_lines() {
    let rules = data("rules/test-rules.conf");
    let input = "{\"id\":1,\"method\":\"GET\",\"uri\":\"/?a=attack\"}\nnot json\n";
    let out = palisade(&["eval", "--ruleset", rules.to_str().expect("utf8")], input);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0]
        .starts_with(r#"{"id":1,"status":200,"rule_ids":[100001],"anomaly_score":0,"eval_us":"#));
    assert!(lines[1].starts_with(r#"{"id":null,"line":2,"error":"#));
}
