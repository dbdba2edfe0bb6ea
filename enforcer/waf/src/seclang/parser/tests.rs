//! Unit tests for the directive parser: real CRS lines, the argument
//! mini-languages, error reporting and `Include`.

use super::*;
use crate::seclang::MemorySource;

fn act(name: &str, value: Option<&str>) -> ActionSpec {
    ActionSpec {
        name: name.to_string(),
        value: value.map(str::to_string),
    }
}

fn var(spec: &str) -> VariableSpec {
    let mut v = parse_variables(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn key(exclude: bool, count: bool, name: &str, key: &str) -> VariableSpec {
    VariableSpec {
        exclude,
        count,
        name: name.into(),
        selector: Some(Selector::Key(key.into())),
    }
}

fn re(exclude: bool, name: &str, re: &str) -> VariableSpec {
    VariableSpec {
        exclude,
        count: false,
        name: name.into(),
        selector: Some(Selector::Regex(re.into())),
    }
}

fn plain(name: &str) -> VariableSpec {
    VariableSpec {
        exclude: false,
        count: false,
        name: name.into(),
        selector: None,
    }
}

fn op(negated: bool, name: &str, argument: &str) -> OperatorSpec {
    OperatorSpec {
        negated,
        name: name.into(),
        argument: argument.into(),
    }
}

fn one(text: &str) -> Directive {
    let mut parsed = parse_str(text, "t.conf").unwrap_or_else(|e| panic!("{text}: {e:?}"));
    assert_eq!(parsed.len(), 1, "{text}: {parsed:?}");
    parsed.remove(0).node
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(text, "t.conf") {
        Ok(d) => panic!("expected errors for {text:?}, got {d:?}"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn real_crs_rules() {
    let text = r#"SecRule REQUEST_HEADERS:Content-Type "@rx ^[^;\s]+" \
    "id:920470,\
    phase:1,\
    block,\
    t:none,\
    msg:'Illegal Content-Type header',\
    logdata:'%{MATCHED_VAR}',\
    tag:'application-multi',\
    setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
"#;
    let Directive::Rule(rule) = one(text) else {
        panic!("not a rule")
    };
    assert_eq!(
        rule.variables,
        [key(false, false, "REQUEST_HEADERS", "Content-Type")]
    );
    assert_eq!(rule.operator, op(false, "rx", r"^[^;\s]+"));
    assert_eq!(
        rule.actions,
        [
            act("id", Some("920470")),
            act("phase", Some("1")),
            act("block", None),
            act("t", Some("none")),
            act("msg", Some("Illegal Content-Type header")),
            act("logdata", Some("%{MATCHED_VAR}")),
            act("tag", Some("application-multi")),
            act(
                "setvar",
                Some("tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}")
            ),
        ]
    );
}

#[test]
fn rule_table() {
    // (text, variables, operator, number of actions)
    let cases: Vec<(&str, Vec<VariableSpec>, OperatorSpec, usize)> = vec![
        (
            r#"SecRule &TX:crs_setup_version "@eq 0" "id:901001,phase:1,deny,status:500,log""#,
            vec![key(false, true, "TX", "crs_setup_version")],
            op(false, "eq", "0"),
            5,
        ),
        (
            r#"SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|REQUEST_COOKIES_NAMES|ARGS_NAMES|ARGS|XML:/* "@detectSQLi" "id:942100""#,
            vec![
                plain("REQUEST_COOKIES"),
                re(true, "REQUEST_COOKIES", "__utm"),
                plain("REQUEST_COOKIES_NAMES"),
                plain("ARGS_NAMES"),
                plain("ARGS"),
                key(false, false, "XML", "/*"),
            ],
            op(false, "detectSQLi", ""),
            1,
        ),
        (
            r#"SecRule ARGS:/^id_/|ARGS:/a|b\/c/|XML://@* "!@rx \d+""#,
            vec![
                re(false, "ARGS", "^id_"),
                re(false, "ARGS", r"a|b\/c"),
                key(false, false, "XML", "//@*"),
            ],
            op(true, "rx", r"\d+"),
            0,
        ),
        (
            r#"SecRule REQUEST_METHOD "!^(?:GET|HEAD)$" "id:1""#,
            vec![plain("REQUEST_METHOD")],
            op(true, "rx", "^(?:GET|HEAD)$"),
            1,
        ),
        (
            r#"secrule ARGS "" 'id:2'"#,
            vec![plain("ARGS")],
            op(false, "rx", ""),
            1,
        ),
        (
            r#"SecRule TX:/^header_name_920450_/ "@within %{tx.restricted_headers_basic}" "id:3""#,
            vec![re(false, "TX", "^header_name_920450_")],
            op(false, "within", "%{tx.restricted_headers_basic}"),
            1,
        ),
        (
            // Trailing blanks in an operator argument are significant.
            r#"SecRule RESPONSE_BODY "@rx <title>SimAttacker - " "id:4""#,
            vec![plain("RESPONSE_BODY")],
            op(false, "rx", "<title>SimAttacker - "),
            1,
        ),
        (
            r#"SecRule "REQUEST_HEADERS:'/^(?:Content-Type|Accept)$/'|ARGS:'a b'" "@pm x y" "id:5""#,
            vec![
                re(false, "REQUEST_HEADERS", "^(?:Content-Type|Accept)$"),
                key(false, false, "ARGS", "a b"),
            ],
            op(false, "pm", "x y"),
            1,
        ),
        (
            r#"SecRule "ARGS|TX.foo" "@unconditionalMatch" "id:6""#,
            vec![plain("ARGS"), key(false, false, "TX", "foo")],
            op(false, "unconditionalMatch", ""),
            1,
        ),
    ];
    for (text, variables, operator, n_actions) in cases {
        let Directive::Rule(rule) = one(text) else {
            panic!("{text}: not a rule")
        };
        assert_eq!(rule.variables, variables, "{text}");
        assert_eq!(rule.operator, operator, "{text}");
        assert_eq!(rule.actions.len(), n_actions, "{text}");
    }
}

#[test]
fn operators() {
    let cases = [
        ("@rx \\d+", op(false, "rx", "\\d+")),
        ("!@pm a b", op(true, "pm", "a b")),
        ("  @eq 0", op(false, "eq", "0")),
        ("@streq  two", op(false, "streq", " two")),
        ("@detectXSS", op(false, "detectXSS", "")),
        ("! @rx x", op(true, "rx", "x")),
        ("^$", op(false, "rx", "^$")),
        ("!", op(true, "rx", "")),
        ("@rx\tx", op(false, "rx", "x")),
    ];
    for (text, want) in cases {
        assert_eq!(parse_operator(text).as_ref(), Ok(&want), "{text:?}");
    }
    assert!(parse_operator("@ x")
        .unwrap_err()
        .contains("missing operator name"));
    assert!(parse_operator("!@").is_err());
}

#[test]
fn actions_table() {
    let cases: Vec<(&str, Vec<ActionSpec>)> = vec![
        ("", vec![]),
        ("  ", vec![]),
        ("pass", vec![act("pass", None)]),
        (
            "id:1, phase:2 ,t:none,  msg:'a, b'",
            vec![
                act("id", Some("1")),
                act("phase", Some("2")),
                act("t", Some("none")),
                act("msg", Some("a, b")),
            ],
        ),
        (
            "ctl:ruleRemoveTargetById=942100;ARGS:foo,tag:'attack-sqli'",
            vec![
                act("ctl", Some("ruleRemoveTargetById=942100;ARGS:foo")),
                act("tag", Some("attack-sqli")),
            ],
        ),
        ("setvar:'tx.a=b:c'", vec![act("setvar", Some("tx.a=b:c"))]),
        (
            "logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}'",
            vec![act(
                "logdata",
                Some("Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}"),
            )],
        ),
        (
            r"msg:'lama\'s\'hell web shell'",
            vec![act("msg", Some("lama's'hell web shell"))],
        ),
        (
            r"msg:'C:\\',pass",
            vec![act("msg", Some(r"C:\\")), act("pass", None)],
        ),
        (r"msg:'a\d'", vec![act("msg", Some(r"a\d"))]),
        (
            r#"msg:"double, quoted""#,
            vec![act("msg", Some("double, quoted"))],
        ),
        ("msg:''", vec![act("msg", Some(""))]),
        ("msg:", vec![act("msg", Some(""))]),
        ("id:'942100'", vec![act("id", Some("942100"))]),
        (
            "setvar:tx.x='a,b',pass",
            vec![act("setvar", Some("tx.x='a,b'")), act("pass", None)],
        ),
        (
            r"ctl:x=a\,b,pass",
            vec![act("ctl", Some(r"x=a\,b")), act("pass", None)],
        ),
        ("msg:It works fine", vec![act("msg", Some("It works fine"))]),
        (
            "T:None,Deny",
            vec![act("T", Some("None")), act("Deny", None)],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_actions(text).as_ref(), Ok(&want), "{text:?}");
    }
}

#[test]
fn action_errors() {
    let cases = [
        ("id:1,,pass", "empty action"),
        (",pass", "empty action"),
        ("id:1,", "trailing comma after action `id`"),
        (":1", "missing action name before `:1`"),
        ("msg:'open", "unterminated quoted value of action `msg`"),
        (
            "msg:'a' b",
            "unexpected `b` after the quoted value of action `msg`",
        ),
        (
            "deny status:403",
            "invalid action name `deny status` (missing comma?)",
        ),
        (
            "setvar:tx.x='a",
            "unterminated quote in the value of action `setvar`",
        ),
    ];
    for (text, want) in cases {
        let err = parse_actions(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
    }
}

#[test]
fn variables_table() {
    let cases: Vec<(&str, Vec<VariableSpec>)> = vec![
        ("ARGS", vec![plain("ARGS")]),
        ("!ARGS:foo", vec![key(true, false, "ARGS", "foo")]),
        ("&TX:x", vec![key(false, true, "TX", "x")]),
        ("&!TX:x", vec![key(true, true, "TX", "x")]),
        ("ARGS:/^id_/", vec![re(false, "ARGS", "^id_")]),
        (
            "REQUEST_COOKIES:/__utm/",
            vec![re(false, "REQUEST_COOKIES", "__utm")],
        ),
        (
            "ARGS:/a\\/b/|ARGS",
            vec![re(false, "ARGS", "a\\/b"), plain("ARGS")],
        ),
        ("ARGS:/x|y/", vec![re(false, "ARGS", "x|y")]),
        (
            "ARGS:/x/|ARGS:/y/",
            vec![re(false, "ARGS", "x"), re(false, "ARGS", "y")],
        ),
        ("XML:/*", vec![key(false, false, "XML", "/*")]),
        ("XML:/a/b", vec![key(false, false, "XML", "/a/b")]),
        (
            "XML:/a/b|ARGS:/re/",
            vec![key(false, false, "XML", "/a/b"), re(false, "ARGS", "re")],
        ),
        ("xml:/a/", vec![key(false, false, "xml", "/a/")]),
        (
            "ARGS:/x/y|ARGS:/x/y|ARGS",
            vec![
                key(false, false, "ARGS", "/x/y"),
                key(false, false, "ARGS", "/x/y"),
                plain("ARGS"),
            ],
        ),
        ("ARGS:'a|b'", vec![key(false, false, "ARGS", "a|b")]),
        ("ARGS:'/a|b/'", vec![re(false, "ARGS", "a|b")]),
        (r"ARGS:'it\'s'", vec![key(false, false, "ARGS", "it's")]),
        (
            "TX.anomaly_score",
            vec![key(false, false, "TX", "anomaly_score")],
        ),
        (
            " ARGS | ARGS_NAMES ",
            vec![plain("ARGS"), plain("ARGS_NAMES")],
        ),
        (
            "REQUEST_HEADERS:X.Filename",
            vec![key(false, false, "REQUEST_HEADERS", "X.Filename")],
        ),
        (
            "ARGS:json.profile",
            vec![key(false, false, "ARGS", "json.profile")],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_variables(text).as_ref(), Ok(&want), "{text:?}");
    }
    assert_eq!(var("ARGS_NAMES"), plain("ARGS_NAMES"));
}

#[test]
fn variable_errors() {
    let cases = [
        ("", "empty variable list"),
        ("ARGS||ARGS", "empty element in variable list"),
        ("ARGS|", "empty element in variable list"),
        ("ARGS:", "empty selector after `ARGS:`"),
        (
            "ARGS://",
            "empty regular expression in the selector of `ARGS`",
        ),
        ("ARGS:'open", "unterminated quoted selector of `ARGS`"),
        ("ARGS:'a'b", "unexpected `b` after variable `ARGS`"),
        ("@rx", "expected a variable name at `@rx`"),
        ("ARGS-foo", "unexpected `-foo` after variable `ARGS`"),
    ];
    for (text, want) in cases {
        let err = parse_variables(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
    }
}

#[test]
fn other_directives() {
    let cases: Vec<(&str, Directive)> = vec![
        (
            r#"SecAction "id:900990,phase:1,pass,t:none,nolog""#,
            Directive::Action(vec![
                act("id", Some("900990")),
                act("phase", Some("1")),
                act("pass", None),
                act("t", Some("none")),
                act("nolog", None),
            ]),
        ),
        (
            r#"SecDefaultAction "phase:2,log,auditlog,pass""#,
            Directive::DefaultAction(vec![
                act("phase", Some("2")),
                act("log", None),
                act("auditlog", None),
                act("pass", None),
            ]),
        ),
        (
            r#"SecMarker "END-HOST-CHECK""#,
            Directive::Marker("END-HOST-CHECK".into()),
        ),
        ("SecMarker BEGIN", Directive::Marker("BEGIN".into())),
        (
            "SecRuleRemoveById 920100 920200-920300 \"1,2\"",
            Directive::RemoveById(vec![
                IdRange {
                    start: 920100,
                    end: 920100,
                },
                IdRange {
                    start: 920200,
                    end: 920300,
                },
                IdRange { start: 1, end: 1 },
                IdRange { start: 2, end: 2 },
            ]),
        ),
        (
            "SecRuleRemoveByTag attack-sqli",
            Directive::RemoveByTag("attack-sqli".into()),
        ),
        (
            "SecRuleRemoveByMsg \"SQL Injection\"",
            Directive::RemoveByMsg("SQL Injection".into()),
        ),
        (
            "SecRuleRemoveByMsg SQL Injection",
            Directive::RemoveByMsg("SQL Injection".into()),
        ),
        (
            r#"SecRuleUpdateTargetById 942100 "!ARGS:foo""#,
            Directive::UpdateTargetById {
                ids: vec![IdRange {
                    start: 942100,
                    end: 942100,
                }],
                targets: vec![key(true, false, "ARGS", "foo")],
                replaced: None,
            },
        ),
        (
            "SecRuleUpdateTargetById 930120 !ARGS_NAMES:json.profile",
            Directive::UpdateTargetById {
                ids: vec![IdRange {
                    start: 930120,
                    end: 930120,
                }],
                targets: vec![key(true, false, "ARGS_NAMES", "json.profile")],
                replaced: None,
            },
        ),
        (
            r#"SecRuleUpdateTargetById 1,2-3 "ARGS:a|ARGS:b" "ARGS""#,
            Directive::UpdateTargetById {
                ids: vec![IdRange { start: 1, end: 1 }, IdRange { start: 2, end: 3 }],
                targets: vec![
                    key(false, false, "ARGS", "a"),
                    key(false, false, "ARGS", "b"),
                ],
                replaced: Some(vec![plain("ARGS")]),
            },
        ),
        (
            r#"SecRuleUpdateTargetByTag "attack-sqli" "!REQUEST_COOKIES:/^_ga/""#,
            Directive::UpdateTargetByTag {
                tag: "attack-sqli".into(),
                targets: vec![re(true, "REQUEST_COOKIES", "^_ga")],
                replaced: None,
            },
        ),
        (
            r#"SecRuleUpdateTargetByMsg "SQL" ARGS:x"#,
            Directive::UpdateTargetByMsg {
                msg: "SQL".into(),
                targets: vec![key(false, false, "ARGS", "x")],
                replaced: None,
            },
        ),
        (
            r#"SecRuleUpdateActionById 942100 "t:none,t:lowercase""#,
            Directive::UpdateActionById {
                id: 942100,
                actions: vec![act("t", Some("none")), act("t", Some("lowercase"))],
            },
        ),
        (
            "SecRuleEngine DetectionOnly",
            Directive::Config {
                name: "SecRuleEngine".into(),
                args: vec!["DetectionOnly".into()],
            },
        ),
        (
            r#"SecComponentSignature "OWASP_CRS/4.29.0-dev""#,
            Directive::Config {
                name: "SecComponentSignature".into(),
                args: vec!["OWASP_CRS/4.29.0-dev".into()],
            },
        ),
        (
            "SECREQUESTBODYACCESS on",
            Directive::Config {
                name: "SECREQUESTBODYACCESS".into(),
                args: vec!["on".into()],
            },
        ),
        (
            r#"SecAuditLogRelevantStatus "^(?:5|4(?!04))""#,
            Directive::Config {
                name: "SecAuditLogRelevantStatus".into(),
                args: vec!["^(?:5|4(?!04))".into()],
            },
        ),
        (
            "SecUnknownThing",
            Directive::Config {
                name: "SecUnknownThing".into(),
                args: vec![],
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(one(text), want, "{text}");
    }
}

#[test]
fn error_messages_name_file_line_and_token() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("Foo bar", vec!["t.conf:1: unknown directive `Foo`"]),
        ("\n\n  \"id:1\"", vec!["t.conf:3: expected a directive name, found `\"id:1\"`"]),
        (
            "SecRule ARGS",
            vec!["t.conf:1: `SecRule` expects variables, an operator and optional actions, found 1 argument(s)"],
        ),
        (
            "SecRule ARGS \"@rx x\" \"id:1\" extra",
            vec!["t.conf:1: `SecRule` expects variables, an operator and optional actions; unexpected extra argument `extra`"],
        ),
        (
            "# c\nSecRule ARGS|| \"@rx x\" \"id:1\"",
            vec!["t.conf:2: `SecRule`: invalid variables `ARGS||`: empty element in variable list `ARGS||`"],
        ),
        (
            "SecRule ARGS \"@ x\"",
            vec!["t.conf:1: `SecRule`: missing operator name after `@` in `@ x`"],
        ),
        (
            "SecAction \\\n  \"id:1,\\\n  deny status:403\"",
            vec!["t.conf:1: `SecAction`: invalid actions: invalid action name `deny status` (missing comma?)"],
        ),
        ("SecAction", vec!["t.conf:1: `SecAction` expects one action list, found 0 argument(s)"]),
        ("SecMarker \"\"", vec!["t.conf:1: `SecMarker`: empty marker name"]),
        ("SecRuleRemoveById 12a", vec!["t.conf:1: `SecRuleRemoveById`: invalid rule id `12a`"]),
        (
            "SecRuleRemoveById 20-10",
            vec!["t.conf:1: `SecRuleRemoveById`: invalid rule id range `20-10` (start above end)"],
        ),
        (
            "SecRuleRemoveById 99999999999999999999",
            vec!["t.conf:1: `SecRuleRemoveById`: rule id `99999999999999999999` is out of range"],
        ),
        ("SecRuleRemoveById", vec!["t.conf:1: `SecRuleRemoveById` expects rule ids or ranges, found none"]),
        (
            "SecRuleUpdateActionById 1:2 \"pass\"",
            vec!["t.conf:1: `SecRuleUpdateActionById`: chain offsets (`1:2`) are not supported"],
        ),
        (
            "SecRuleUpdateTargetById 1 \"ARGS:\"",
            vec!["t.conf:1: `SecRuleUpdateTargetById`: invalid targets `ARGS:`: empty selector after `ARGS:`"],
        ),
        (
            "Include rules/*.conf",
            vec!["t.conf:1: cannot include `rules/*.conf` when parsing text without a file source"],
        ),
        ("SecRule ARGS \"@rx x", vec!["t.conf:1: unterminated quoted string `\"@rx x`"]),
    ];
    for (text, want) in cases {
        assert_eq!(errors(text), want, "{text:?}");
    }
}

#[test]
fn all_errors_are_collected_and_parsing_resumes() {
    let text = "\
SecRuleEngine On
Bogus 1
SecRule ARGS \"@rx a\" \"id:1,,deny\"
SecRule ARGS \"@rx unterminated
SecAction \\
    \"id:2,\\
    pass\"
SecRule ARGS:/x/ \"@rx ok\" \"id:3\"
  also bogus
";
    let errs = errors(text);
    let lines: Vec<&str> = errs
        .iter()
        .map(|e| e.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        lines,
        ["t.conf:2:", "t.conf:3:", "t.conf:4:", "t.conf:9:"],
        "{errs:#?}"
    );

    // The valid directives around the errors still parse (checked by removing the bad lines).
    let good: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| ![1, 2, 3, 8].contains(i))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let parsed = parse_str(&good, "t.conf").expect("valid");
    assert_eq!(parsed.len(), 3);
}

#[test]
fn spans_are_first_lines() {
    let text = "# header\n\nSecRuleEngine On\nSecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    pass\"\n\nSecMarker END\n";
    let parsed = parse_str(text, "dir/x.conf").expect("valid");
    let spans: Vec<String> = parsed.iter().map(|d| d.span.to_string()).collect();
    assert_eq!(spans, ["dir/x.conf:3", "dir/x.conf:4", "dir/x.conf:8"]);
}

#[test]
fn invalid_utf8_is_reported_per_line() {
    let mut src = MemorySource::default();
    src.insert(
        "bad.conf",
        b"SecRuleEngine On\nSecMarker \xff\xfe\nFoo\n".to_vec(),
    );
    let errs: Vec<String> = parse_file(&src, "bad.conf")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        [
            "bad.conf:2: invalid utf-8 in line `SecMarker \u{fffd}\u{fffd}`",
            "bad.conf:3: unknown directive `Foo`",
        ]
    );
}

fn memory(files: &[(&str, &str)]) -> MemorySource {
    MemorySource::new(files.iter().map(|(n, c)| (*n, c.as_bytes().to_vec())))
}

fn markers(parsed: &[Located<Directive>]) -> Vec<String> {
    parsed
        .iter()
        .map(|d| match &d.node {
            Directive::Marker(m) => format!("{}@{}", m, d.span),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn include_in_memory() {
    let src = memory(&[
        (
            "main.conf",
            "SecMarker A\nInclude \"rules/*.conf\"\nInclude extra.conf\nSecMarker Z\n",
        ),
        ("rules/2.conf", "SecMarker R2\n"),
        ("rules/1.conf", "\nSecMarker R1\nInclude ../extra.conf\n"),
        ("rules/skip.data", "not rules"),
        ("extra.conf", "SecMarker E\n"),
    ]);
    let parsed = parse_file(&src, "main.conf").expect("valid");
    assert_eq!(
        markers(&parsed),
        [
            "A@main.conf:1",
            "R1@rules/1.conf:2",
            "E@extra.conf:1",
            "R2@rules/2.conf:1",
            "E@extra.conf:1",
            "Z@main.conf:4"
        ]
    );
}

#[test]
fn include_errors() {
    let src = memory(&[
        (
            "main.conf",
            "Include none-*.conf\nInclude missing.conf\nInclude [\nSecMarker OK\n",
        ),
        ("loop.conf", "SecMarker L\nInclude loop.conf\n"),
        ("a.conf", "Include b.conf\n"),
        ("b.conf", "\nInclude a.conf\n"),
        ("bad-inner.conf", "SecMarker X\nBogus\n"),
        ("outer.conf", "Include bad-inner.conf\nInclude  \"\" \n"),
    ]);
    let errs = |file: &str| -> Vec<String> {
        parse_file(&src, file)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let main = errs("main.conf");
    assert_eq!(main.len(), 3, "{main:#?}");
    assert_eq!(
        main[0],
        "main.conf:1: include pattern `none-*.conf` matches no files"
    );
    assert!(
        main[1].starts_with("main.conf:2: cannot read `missing.conf`: "),
        "{}",
        main[1]
    );
    assert!(
        main[2].starts_with("main.conf:3: cannot include `[`: invalid glob pattern"),
        "{}",
        main[2]
    );

    assert_eq!(
        errs("loop.conf"),
        ["loop.conf:2: include cycle: `loop.conf` is already being read (loop.conf)"]
    );
    assert_eq!(
        errs("a.conf"),
        ["b.conf:2: include cycle: `a.conf` is already being read (a.conf -> b.conf)"]
    );
    assert_eq!(
        errs("outer.conf"),
        [
            "bad-inner.conf:2: unknown directive `Bogus`",
            "outer.conf:2: `Include`: empty path"
        ]
    );
    assert!(errs("nope.conf")[0].starts_with("nope.conf:0: cannot read `nope.conf`"));
}

#[test]
fn include_depth_is_limited() {
    let files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("f{i}.conf"),
                format!("SecMarker M{i}\nInclude f{}.conf\n", i + 1),
            )
        })
        .chain(std::iter::once((
            "f40.conf".to_string(),
            "SecMarker END\n".to_string(),
        )))
        .collect();
    let src = MemorySource::new(files);
    let errs = parse_file(&src, "f0.conf").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        format!("f31.conf:2: include of `f32.conf` nests deeper than {MAX_INCLUDE_DEPTH} files")
    );
}

#[test]
fn include_on_disk_with_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("crs/rules")).expect("mkdir");
    std::fs::write(
        root.join("main.conf"),
        "SecMarker MAIN\nInclude crs/setup.conf\nInclude 'crs/rules/*.conf'\n",
    )
    .expect("write");
    std::fs::write(root.join("crs/setup.conf"), "SecMarker SETUP\n").expect("write");
    std::fs::write(root.join("crs/rules/b.conf"), "SecMarker B\n").expect("write");
    std::fs::write(
        root.join("crs/rules/a.conf"),
        "SecMarker A\nInclude ../setup.conf\n",
    )
    .expect("write");
    std::fs::write(root.join("crs/rules/a.conf.example"), "Bogus\n").expect("write");
    let main = root.join("main.conf");
    let parsed =
        parse_file(&crate::seclang::FsSource, main.to_str().expect("utf-8")).expect("valid");
    let names: Vec<String> = parsed
        .iter()
        .map(|d| match &d.node {
            Directive::Marker(m) => {
                let file = d
                    .span
                    .file
                    .strip_prefix(root.to_str().unwrap_or(""))
                    .unwrap_or("?");
                format!("{m}@{file}:{}", d.span.line)
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "MAIN@/main.conf:1",
            "SETUP@/crs/setup.conf:1",
            "A@/crs/rules/a.conf:1",
            "SETUP@/crs/rules/../setup.conf:1",
            "B@/crs/rules/b.conf:1"
        ]
    );

    std::fs::write(
        root.join("bad.conf"),
        "SecMarker X\nInclude nothing/*.conf\n",
    )
    .expect("write");
    let bad = root.join("bad.conf");
    let errs = parse_file(&crate::seclang::FsSource, bad.to_str().expect("utf-8")).unwrap_err();
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "{}:2: include pattern `nothing/*.conf` matches no files",
            bad.display()
        )]
    );
}

#[test]
fn crlf_files() {
    let text = "SecRuleEngine On\r\nSecRule ARGS \"@rx a\" \\\r\n    \"id:1,\\\r\n    pass\"\r\nSecMarker X\r\n";
    let parsed = parse_str(text, "w.conf").expect("valid");
    assert_eq!(parsed.len(), 3);
    assert_eq!(
        parsed[0].node,
        Directive::Config {
            name: "SecRuleEngine".into(),
            args: vec!["On".into()]
        }
    );
    let Directive::Rule(rule) = &parsed[1].node else {
        panic!("not a rule")
    };
    assert_eq!(rule.actions, [act("id", Some("1")), act("pass", None)]);
    assert_eq!(parsed[2].node, Directive::Marker("X".into()));
    assert_eq!(parsed[2].span.line, 5);
}

#[test]
fn include_diamonds_are_bounded() {
    // Each file includes the next one twice: 2^30 reads without a budget.
    let files: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("d{i}.conf"),
                format!("Include d{n}.conf\nInclude d{n}.conf\n", n = i + 1),
            )
        })
        .chain(std::iter::once((
            "d30.conf".to_string(),
            "SecMarker END\n".to_string(),
        )))
        .collect();
    let src = MemorySource::new(files);
    let errs = parse_file(&src, "d0.conf").unwrap_err();
    assert!(!errs.is_empty());
    assert!(errs
        .iter()
        .all(|e| e.message == format!("too many included files (more than {MAX_FILES})")));
}

#[test]
fn long_variable_lists_parse_in_linear_time() {
    // Each element starts a regex that never closes; a rescan per element
    // would take quadratic time (minutes here), a single scan is instant.
    let text = "ARGS:/x/y|".repeat(50_000) + "ARGS";
    let vars = parse_variables(&text).expect("valid");
    assert_eq!(vars.len(), 50_001);
    assert_eq!(vars[0], key(false, false, "ARGS", "/x/y"));
}
