//! Parses the whole OWASP CRS (from `PALISADE_CRS_DIR`, default
//! `<repo>/../shared/crs`) and checks there are no errors and that the
//! directive counts match an independent line count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use palisade_waf::seclang::{
    parse_file, parse_str, ruleset_files, Directive, FsSource, Located, Selector,
};

fn crs_dir() -> PathBuf {
    match std::env::var_os("PALISADE_CRS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"),
    }
}

/// The CRS files to parse, setup first.
fn crs_files() -> Vec<PathBuf> {
    let dir = crs_dir();
    let mut files = vec![
        dir.join("crs-setup.conf.example"),
        dir.join("crs-test-setup.conf"),
    ];
    let rules = dir.join("rules");
    let listed = ruleset_files(&FsSource, rules.to_str().expect("utf-8 path"))
        .unwrap_or_else(|e| panic!("listing {}: {e}", rules.display()));
    files.extend(listed.into_iter().map(PathBuf::from));
    files
}

/// Counts directive lines by name with a plain line scan, the way `grep -c
/// '^\s*SecRule\s'` would: continuation lines never start with `Sec`, and
/// comment lines start with `#`.
fn grep_counts(text: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if !line.starts_with("Sec") {
            continue;
        }
        let name = line.split(|c: char| c.is_whitespace()).next().unwrap_or("");
        *counts.entry(name.to_string()).or_insert(0) += 1;
    }
    counts
}

fn directive_name(d: &Directive) -> String {
    match d {
        Directive::Rule(_) => "SecRule".into(),
        Directive::Action(_) => "SecAction".into(),
        Directive::Marker(_) => "SecMarker".into(),
        Directive::DefaultAction(_) => "SecDefaultAction".into(),
        Directive::RemoveById(_) => "SecRuleRemoveById".into(),
        Directive::RemoveByTag(_) => "SecRuleRemoveByTag".into(),
        Directive::RemoveByMsg(_) => "SecRuleRemoveByMsg".into(),
        Directive::UpdateTargetById { .. } => "SecRuleUpdateTargetById".into(),
        Directive::UpdateTargetByTag { .. } => "SecRuleUpdateTargetByTag".into(),
        Directive::UpdateTargetByMsg { .. } => "SecRuleUpdateTargetByMsg".into(),
        Directive::UpdateActionById { .. } => "SecRuleUpdateActionById".into(),
        Directive::Config { name, .. } => name.clone(),
    }
}

fn parse_all() -> Vec<(PathBuf, Vec<Located<Directive>>)> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in crs_files() {
        match parse_file(&FsSource, path.to_str().expect("utf-8 path")) {
            Ok(directives) => out.push((path, directives)),
            Err(errs) => errors.extend(errs.into_iter().map(|e| e.to_string())),
        }
    }
    assert!(
        errors.is_empty(),
        "{} parse errors:\n{}",
        errors.len(),
        errors.join("\n")
    );
    out
}

#[test]
fn crs_parses_without_errors_and_counts_match() {
    let parsed = parse_all();
    assert!(
        parsed.len() >= 25,
        "expected the CRS rule files, got {}",
        parsed.len()
    );
    let mut total_rules = 0;
    for (path, directives) in &parsed {
        let text = std::fs::read_to_string(path).expect("readable");
        let want = grep_counts(&text);
        let mut got = BTreeMap::new();
        for d in directives {
            *got.entry(directive_name(&d.node)).or_insert(0) += 1;
        }
        assert_eq!(got, want, "directive counts in {}", path.display());
        total_rules += got.get("SecRule").copied().unwrap_or(0);
        // Spans point at lines that start the directive.
        let lines: Vec<&str> = text.lines().collect();
        for d in directives {
            let line = lines[d.span.line as usize - 1].trim_start();
            assert!(
                line.starts_with("Sec"),
                "{}: span points at {line:?}",
                d.span
            );
            assert_eq!(&*d.span.file, path.to_str().unwrap());
        }
    }
    assert!(total_rules > 600, "only {total_rules} SecRules");
}

#[test]
fn crs_spot_checks() {
    let parsed = parse_all();
    let all: Vec<&Located<Directive>> = parsed.iter().flat_map(|(_, d)| d).collect();
    let rule_with_id = |id: &str| {
        all.iter()
            .find_map(|d| match &d.node {
                Directive::Rule(r)
                    if r.actions
                        .iter()
                        .any(|a| a.name == "id" && a.value.as_deref() == Some(id)) =>
                {
                    Some(r)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("rule {id} not found"))
    };

    // Every rule and action has an id, except chained rules.
    let mut chained_next = false;
    for d in &all {
        let actions = match &d.node {
            Directive::Rule(r) => &r.actions,
            Directive::Action(a) => a,
            _ => continue,
        };
        let has_id = actions.iter().any(|a| a.name == "id");
        assert!(
            has_id != chained_next,
            "{}: id presence does not match chaining",
            d.span
        );
        chained_next = actions.iter().any(|a| a.name == "chain");
    }

    // 942100 uses @detectSQLi with no argument.
    let r = rule_with_id("942100");
    assert_eq!(r.operator.name, "detectSQLi");
    assert_eq!(r.operator.argument, "");
    assert!(!r.operator.negated);

    // Regex selectors with escapes, and excluded regex selectors.
    let r = rule_with_id("921250");
    assert_eq!(
        r.variables[0].selector,
        Some(Selector::Regex(r"\x22?\x24Version".into()))
    );
    assert_eq!(
        (r.operator.name.as_str(), r.operator.argument.as_str()),
        ("streq", "1")
    );
    let r = rule_with_id("942431");
    let names: Vec<_> = r
        .variables
        .iter()
        .map(|v| (v.exclude, v.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (false, "ARGS_NAMES"),
            (true, "ARGS_NAMES"),
            (true, "ARGS_NAMES"),
            (false, "ARGS"),
            (false, "XML"),
            (false, "XML")
        ]
    );
    assert_eq!(
        r.variables[1].selector,
        Some(Selector::Regex(r"^[\w]+\[[\w\-]+\]\[[\w\-]*?\]$".into()))
    );
    assert_eq!(r.variables[5].selector, Some(Selector::Key("//@*".into())));
    assert!(
        r.operator.argument.starts_with(r"((?:(?:[!-\+\-:->@"),
        "{}",
        r.operator.argument
    );

    // XML:/* keeps its key.
    let r = rule_with_id("941100");
    assert!(r
        .variables
        .iter()
        .any(|v| v.name == "XML" && v.selector == Some(Selector::Key("/*".into()))));

    // Single-quoted action values lose their quotes; `\'` is a quote.
    let r = rule_with_id("920620");
    let msg = r
        .actions
        .iter()
        .find(|a| a.name == "msg")
        .and_then(|a| a.value.as_deref());
    assert!(
        msg.is_some_and(|m| !m.starts_with('\'') && !m.ends_with('\'')),
        "{msg:?}"
    );
    let quoted = all.iter().any(|d| match &d.node {
        Directive::Rule(r) => r.actions.iter().any(|a| {
            a.value
                .as_deref()
                .is_some_and(|v| v.contains("prefix 'UP' to User-Agent"))
        }),
        _ => false,
    });
    assert!(quoted, "the msg with \\'UP\\' lost its quotes");

    // SecRuleUpdateTargetById from 999.
    let update = all
        .iter()
        .find_map(|d| match &d.node {
            Directive::UpdateTargetById { ids, targets, .. } if ids[0].start == 932240 => {
                Some(targets)
            }
            _ => None,
        })
        .expect("SecRuleUpdateTargetById 932240");
    assert!(update[0].exclude);
    assert_eq!(
        update[0].selector,
        Some(Selector::Regex(r"^_ga(?:_\w+)?$".into()))
    );
}

#[test]
fn crs_parse_str_matches_parse_file() {
    for path in crs_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path.to_str().unwrap();
        let from_str = parse_str(&text, name).expect("parses");
        let from_file = parse_file(&FsSource, name).expect("parses");
        assert_eq!(from_str, from_file, "{name}");
    }
}
