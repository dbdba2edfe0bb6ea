//! Scenario tests: rules and a request in, matched rule ids and the decision out.

use palisade_waf::{EngineMode, Ruleset};

struct Req<'a> {
    method: &'a str,
    uri: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn get(uri: &str) -> Req<'_> {
    Req {
        method: "GET",
        uri,
        headers: &[("Host", "example.com")],
        body: b"",
    }
}

/// Runs phases 1-2 (and 5); returns (status if disrupted, logged rule ids).
fn run(rules: &str, req: &Req<'_>) -> (Option<u16>, Vec<i64>) {
    let rs = Ruleset::from_text(rules).unwrap_or_else(|e| panic!("{e:?}"));
    let mut tx = rs.transaction();
    tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
    tx.process_uri(req.uri, req.method, "HTTP/1.1");
    for (k, v) in req.headers {
        tx.add_request_header(k.as_bytes(), v.as_bytes());
    }
    let mut status = tx.process_request_headers().map(|i| i.status);
    if status.is_none() {
        tx.append_request_body(req.body);
        status = tx.process_request_body().map(|i| i.status);
    }
    tx.process_logging();
    let ids = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect();
    (status, ids)
}

#[test]
fn deny_in_on_mode_and_detect_in_detection_only() {
    let rules = r#"
        SecRuleEngine On
        SecRule ARGS "@rx (?i)union\s+select" "id:10,phase:2,deny,status:403,msg:'sqli'"
    "#;
    assert_eq!(
        run(rules, &get("/?q=1%20UNION%20SELECT%202")),
        (Some(403), vec![10])
    );
    let detect = rules.replace("SecRuleEngine On", "SecRuleEngine DetectionOnly");
    assert_eq!(
        run(&detect, &get("/?q=1%20union%20select%202")),
        (None, vec![10])
    );
    assert_eq!(run(rules, &get("/?q=hello")), (None, vec![]));
}

#[test]
fn chains_need_every_link() {
    let rules = r#"
        SecRule REQUEST_METHOD "@streq POST" "id:20,phase:1,deny,chain"
            SecRule &REQUEST_HEADERS:Content-Length "@eq 0"
    "#;
    assert_eq!(
        run(
            rules,
            &Req {
                method: "POST",
                ..get("/")
            }
        ),
        (Some(403), vec![20])
    );
    let with_len = Req {
        method: "POST",
        headers: &[("Host", "x"), ("Content-Length", "0")],
        ..get("/")
    };
    assert_eq!(run(rules, &with_len), (None, vec![]));
}

#[test]
fn anomaly_scoring_with_setvar_macros_and_block() {
    let rules = r#"
        SecDefaultAction "phase:2,log,auditlog,pass"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.critical=5,setvar:tx.score=0"
        SecRule ARGS "@contains evil" "id:2,phase:2,block,setvar:'tx.score=+%{tx.critical}'"
        SecRule ARGS_NAMES "@contains evil" "id:3,phase:2,block,setvar:'tx.score=+%{tx.critical}'"
        SecRule TX:score "@ge 10" "id:4,phase:2,deny,status:406,logdata:'score %{tx.score}'"
    "#;
    // `block` follows SecDefaultAction (pass): only the threshold rule denies.
    assert_eq!(run(rules, &get("/?evil=evil")), (Some(406), vec![2, 3, 4]));
    assert_eq!(run(rules, &get("/?a=evil")), (None, vec![2]));
}

#[test]
fn skip_after_markers_and_paranoia_gating() {
    let rules = r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
        SecRule TX:pl "@lt 2" "id:2,phase:1,pass,nolog,skipAfter:END-PL2"
        SecRule REQUEST_URI "@contains /" "id:3,phase:1,pass,log"
        SecMarker END-PL2
        SecRule REQUEST_URI "@contains /" "id:4,phase:1,pass,log"
    "#;
    assert_eq!(run(rules, &get("/x")).1, vec![4]);
}

#[test]
fn exclusions_and_runtime_ctl() {
    let rules = r#"
        SecRule REQUEST_FILENAME "@streq /login" "id:5,phase:1,pass,nolog,ctl:ruleRemoveTargetById=10;ARGS:password"
        SecRule ARGS|!ARGS:token "@contains '" "id:10,phase:2,pass,log"
    "#;
    assert_eq!(run(rules, &get("/login?password=a'b")).1, Vec::<i64>::new());
    assert_eq!(run(rules, &get("/other?password=a'b")).1, vec![10]);
    assert_eq!(run(rules, &get("/other?token=a'b")).1, Vec::<i64>::new());
}

#[test]
fn transformations_apply_in_order_and_capture_feeds_chain() {
    let rules = r#"
        SecRule ARGS:x "@rx ^(\w+)-(\d+)$" "id:30,phase:2,pass,log,capture,t:none,t:urlDecodeUni,t:lowercase,chain"
            SecRule TX:2 "@eq 42"
    "#;
    assert_eq!(run(rules, &get("/?x=ABC%2d42")).1, vec![30]);
    assert_eq!(run(rules, &get("/?x=abc-41")).1, Vec::<i64>::new());
}

#[test]
fn engine_mode_override_per_transaction() {
    let rs = Ruleset::from_text(
        r#"SecRuleEngine On
           SecRule REQUEST_URI "@contains attack" "id:1,phase:1,deny""#,
    )
    .unwrap();
    let mut tx = rs.transaction();
    tx.set_engine_mode(EngineMode::DetectionOnly);
    tx.process_uri("/attack", "GET", "HTTP/1.1");
    assert!(tx.process_request_headers().is_none());
    assert_eq!(tx.matched_rules()[0].id, 1);
}

#[test]
fn json_body_args() {
    let rules = r#"
        SecRequestBodyAccess On
        SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
        SecRule ARGS "@contains <script>" "id:2,phase:2,deny"
    "#;
    let req = Req {
        method: "POST",
        uri: "/api",
        headers: &[("Host", "x"), ("Content-Type", "application/json")],
        body: br#"{"a":{"b":"<script>alert(1)</script>"}}"#,
    };
    assert_eq!(run(rules, &req), (Some(403), vec![2]));
}

#[test]
fn compile_errors_name_file_and_line() {
    let err = Ruleset::from_text("SecRuleEngine On\nSecRule ARGS \"@nope x\" \"id:1,deny\"\n")
        .unwrap_err();
    let text = err.errors[0].to_string();
    assert!(text.contains("<inline>:2"), "{text}");
    assert!(text.contains("nope"), "{text}");
    let err = Ruleset::from_text("SecBogus On\n").unwrap_err();
    assert!(err.errors[0].to_string().contains("SecBogus"));
    let err = Ruleset::from_text("SecRule ARGS \"@rx x\" \"phase:2,deny\"\n").unwrap_err();
    assert!(err.errors[0].to_string().contains("no id"));
}

fn post(body: &[u8]) -> Req<'_> {
    Req {
        method: "POST",
        uri: "/submit",
        headers: &[
            ("Host", "x"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body,
    }
}

#[test]
fn body_limit_reject_denies_in_on_mode_only() {
    let rules = r#"
        SecRuleEngine On
        SecRequestBodyAccess On
        SecRequestBodyLimit 16
        SecRequestBodyLimitAction Reject
        SecRule ARGS "@contains evil" "id:1,phase:2,deny,log"
    "#;
    // 24 bytes > 16: rejected before any rule sees the body.
    assert_eq!(
        run(rules, &post(b"a=aaaaaaaaaaaaaaaaaaaaaa")),
        (Some(403), vec![])
    );
    assert_eq!(run(rules, &post(b"a=ok")), (None, vec![]));
    let detect = rules.replace("SecRuleEngine On", "SecRuleEngine DetectionOnly");
    assert_eq!(
        run(&detect, &post(b"a=aaaaaaaaaaaaaaaaaaaaaa")),
        (None, vec![])
    );
}

#[test]
fn body_limit_process_partial_inspects_the_first_bytes() {
    let rules = r#"
        SecRuleEngine On
        SecRequestBodyAccess On
        SecRequestBodyLimit 16
        SecRequestBodyLimitAction ProcessPartial
        SecRule ARGS "@contains evil" "id:1,phase:2,deny,log"
        SecRule INBOUND_DATA_ERROR "@eq 1" "id:2,phase:2,pass,log"
    "#;
    // "evil" within the first 16 bytes is seen; beyond them it is not.
    assert_eq!(
        run(rules, &post(b"a=evil&b=xxxxxxxxxxxxxxxx")),
        (Some(403), vec![1])
    );
    assert_eq!(
        run(rules, &post(b"a=xxxxxxxxxxxxxxxx&b=evil")),
        (None, vec![2])
    );
}

#[test]
fn no_files_limit_applies_to_bodies_without_files() {
    let rules = r#"
        SecRuleEngine On
        SecRequestBodyAccess On
        SecRequestBodyLimit 1000
        SecRequestBodyNoFilesLimit 8
        SecRequestBodyLimitAction Reject
    "#;
    assert_eq!(run(rules, &post(b"a=123456789")).0, Some(403));
    assert_eq!(run(rules, &post(b"a=1")).0, None);
}

#[test]
fn arguments_limit_caps_parsed_arguments() {
    let rules = r#"
        SecArgumentsLimit 3
        SecRule &ARGS "@gt 3" "id:1,phase:2,deny,log"
        SecRule ARGS:d "@streq 4" "id:2,phase:2,deny,log"
    "#;
    assert_eq!(run(rules, &get("/?a=1&b=2&c=3&d=4")), (None, vec![]));
}

/// Skip checks keep one untransformed union per named member
/// (`REQUEST_HEADERS:X-Data`) and per scalar, which serves the chains whose
/// trigger bytes the values lack; the others are made from the values. Each
/// rule must still see exactly what its own chain makes of its own member,
/// in whatever order the rules ask.
#[test]
fn skip_checks_of_named_members_and_scalars() {
    let rules = [
        r#"SecRule REQUEST_HEADERS:X-Data "@contains secret" "id:20,phase:1,pass,t:base64Decode""#,
        r#"SecRule REQUEST_HEADERS:X-Data "@contains secret" "id:21,phase:1,pass,t:none""#,
        r#"SecRule REQUEST_HEADERS:X-Data "@contains secret" "id:22,phase:1,pass,t:urlDecodeUni,t:lowercase""#,
        r#"SecRule REQUEST_HEADERS:X-Other "@contains secret" "id:23,phase:1,pass,t:base64Decode""#,
        r#"SecRule REQUEST_HEADERS:X-Other "@contains secret" "id:24,phase:1,pass,t:length""#,
        r#"SecRule REQUEST_FILENAME "@contains secret" "id:25,phase:1,pass,t:urlDecodeUni""#,
        r#"SecRule REQUEST_FILENAME "@contains secret" "id:26,phase:1,pass,t:none""#,
    ];
    let headers_with = |data: Option<&'static str>| {
        let mut h = vec![("Host", "example.com"), ("X-Other-Not", "c2VjcmV0")];
        if let Some(d) = data {
            h.push(("x-data", d));
        }
        h
    };
    let cases: [(&str, Option<&str>, &[i64]); 6] = [
        ("/a", Some("c2VjcmV0"), &[20]),
        ("/a", Some("SECRET"), &[22]),
        ("/a", Some("sec%72et"), &[22]),
        ("/a", Some("secret"), &[21, 22]),
        ("/a", None, &[]),
        ("/a/s%2565cret", None, &[25]),
    ];
    // Forward and reversed: the first rule to ask makes the member's
    // untransformed union, under a chain with or without trigger bytes.
    for order in [false, true] {
        let mut list: Vec<&str> = rules.to_vec();
        if order {
            list.reverse();
        }
        let text = format!("SecRuleEngine On\n{}\n", list.join("\n"));
        for (uri, data, want) in cases {
            let headers = headers_with(data);
            let r = Req {
                method: "GET",
                uri,
                headers: &headers,
                body: b"",
            };
            let (status, mut ids) = run(&text, &r);
            ids.sort();
            assert_eq!(status, None);
            assert_eq!(ids, want, "{uri} {data:?} reversed={order}");
        }
    }
    // The same value under an absent member and a present one.
    let text = format!("SecRuleEngine On\n{}\n", rules.join("\n"));
    let headers = [("Host", "example.com"), ("X-Other", "c2VjcmV0")];
    let r = Req {
        method: "GET",
        uri: "/",
        headers: &headers,
        body: b"",
    };
    assert_eq!(run(&text, &r), (None, vec![23]));
}
