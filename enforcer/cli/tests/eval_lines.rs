//! `palisade eval` end to end through the library: JSON lines in, verdicts
//! out, bad lines answered with an error line without losing the rest.

use std::io::Cursor;
use std::path::PathBuf;

use palisade_cli::eval;
use palisade_cli::ruleset::load_files;
use serde_json::Value;

const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule ARGS "@contains attack" "id:10,phase:2,deny,status:403,log,msg:'attack',setvar:tx.anomaly_score=+5"
SecRule REQUEST_HEADERS:X-Note "@streq yes" "id:11,phase:1,pass,log"
SecRule REQUEST_HEADERS:X-Note "@streq quiet" "id:12,phase:1,pass,nolog"
SecRule REMOTE_ADDR "@ipMatch 10.0.0.0/8" "id:13,phase:1,pass,log"
"#;

fn verdicts(input: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.conf");
    std::fs::write(&path, RULES).expect("write rules");
    let ruleset = load_files(&[PathBuf::from(&path)]).expect("rules load");
    let mut out = Vec::new();
    eval::run(&ruleset, Cursor::new(input.as_bytes()), &mut out).expect("runs");
    String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is json"))
        .collect()
}

#[test]
fn verdicts_in_order_with_errors_in_place() {
    let input = [
        r#"{"id":"a","method":"GET","uri":"/?q=an+attack","headers":[["Host","h"]]}"#,
        r#"{"id":2,"method":"GET","uri":"/","headers":[["Host","h"],["X-Note","yes"]],"remote_addr":"10.1.2.3:5555"}"#,
        "this is not json",
        "",
        r#"{"id":{"n":4},"method":"POST","uri":"/","headers":[["Content-Type","application/x-www-form-urlencoded"]],"body_b64":"cT1hdHRhY2s="}"#,
        r#"{"id":5,"method":"GET","uri":"/","body_b64":"***"}"#,
        r#"{"id":6,"method":"GET","uri":"/","headers":[["X-Note","quiet"]]}"#,
    ]
    .join("\n");
    let out = verdicts(&input);
    assert_eq!(out.len(), 6, "{out:?}");

    assert_eq!(out[0]["id"], "a");
    assert_eq!(out[0]["status"], 403);
    assert_eq!(out[0]["rule_ids"], serde_json::json!([10]));
    assert_eq!(out[0]["anomaly_score"], 5);
    assert!(out[0]["eval_us"].as_f64().is_some_and(|us| us >= 0.0));

    assert_eq!(out[1]["status"], 200);
    assert_eq!(out[1]["rule_ids"], serde_json::json!([11, 13]));

    assert_eq!(out[2]["line"], 3);
    assert_eq!(out[2]["id"], Value::Null);
    assert!(out[2]["error"].as_str().is_some_and(|e| e.contains("json")));

    assert_eq!(out[3]["id"], serde_json::json!({"n": 4}));
    assert_eq!(out[3]["status"], 403);

    assert_eq!(out[4]["id"], 5);
    assert_eq!(out[4]["line"], 6);
    assert!(out[4]["error"]
        .as_str()
        .is_some_and(|e| e.contains("body_b64")));

    assert_eq!(
        out[5]["rule_ids"],
        serde_json::json!([]),
        "nolog rules are not listed"
    );
}
