//! Builds every operator the OWASP CRS uses (read from `PALISADE_CRS_DIR`,
//! default `<repo>/../shared/crs`), checks every `@rx` pattern compiles, and
//! property-tests the required-literal prefilter hints of the CRS patterns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_waf::operators::{self, Operator, OperatorEnv, RegexCache, RequiredLiterals};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};
use regex_syntax::hir::{self, Hir, HirKind};

fn crs_dir() -> PathBuf {
    match std::env::var_os("PALISADE_CRS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"),
    }
}

/// One `SecRule` operator as written in a CRS file.
#[derive(Debug)]
struct CrsOperator {
    location: String,
    name: String,
    argument: String,
}

/// Extracts the operator string of every `SecRule` line (the first quoted
/// token after the variables).
fn crs_operators() -> Vec<CrsOperator> {
    let rules = crs_dir().join("rules");
    let line_re =
        regex::Regex::new(r#"^\s*SecRule\s+\S+\s+"((?:[^"\\]|\\.)*)""#).expect("static regex");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", rules.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read conf");
        // Join `\`-continued lines, remembering where each directive starts.
        let mut directives: Vec<(usize, String)> = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (n, raw) in text.lines().enumerate() {
            let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
            match raw.strip_suffix('\\') {
                Some(head) => {
                    joined.push_str(head);
                    pending = Some((start, joined));
                }
                None => {
                    joined.push_str(raw);
                    directives.push((start, joined));
                }
            }
        }
        for (n, line) in &directives {
            let Some(caps) = line_re.captures(line) else {
                continue;
            };
            let spec = caps[1].replace("\\\"", "\"");
            let spec = spec.strip_prefix('!').unwrap_or(&spec);
            let (name, argument) = match spec.strip_prefix('@') {
                Some(rest) => match rest.split_once(' ') {
                    Some((name, arg)) => (name.to_string(), arg.to_string()),
                    None => (rest.to_string(), String::new()),
                },
                None => ("rx".to_string(), spec.to_string()),
            };
            out.push(CrsOperator {
                location: format!(
                    "{}:{}",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    *n + 1
                ),
                name,
                argument,
            });
        }
    }
    out
}

fn read_data_file(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(crs_dir().join("rules").join(name))
}

#[test]
fn every_crs_operator_builds() {
    let cache = RegexCache::new();
    let env = OperatorEnv {
        read_data_file: &read_data_file,
        regexes: &cache,
    };
    let ops = crs_operators();
    assert!(ops.len() >= 690, "only {} operators found", ops.len());
    let mut failures = Vec::new();
    for op in &ops {
        if let Err(e) = operators::build(&op.name, &op.argument, &env) {
            failures.push(format!("{}: {e}", op.location));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let rx_count = ops.iter().filter(|o| o.name == "rx").count();
    assert!(rx_count >= 300, "only {rx_count} @rx patterns");
    // Memoisation: the cache holds one entry per distinct pattern.
    let mut distinct: Vec<&str> = ops
        .iter()
        .filter(|o| o.name == "rx" && !o.argument.contains("%{"))
        .map(|o| o.argument.as_str())
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(cache.len(), distinct.len());
}

/// Replaces look-around assertions by the empty regex so proptest can
/// generate from the pattern (inputs are still checked against the real
/// regex before use).
fn strip_looks(h: &Hir) -> Hir {
    match h.kind() {
        HirKind::Look(_) => Hir::empty(),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(strip_looks).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(strip_looks).collect()),
        HirKind::Repetition(rep) => Hir::repetition(hir::Repetition {
            min: rep.min,
            // Keep generated inputs small: at most three extra repetitions.
            max: Some(rep.max.unwrap_or(u32::MAX).min(rep.min.saturating_add(3))),
            greedy: rep.greedy,
            sub: Box::new(strip_looks(&rep.sub)),
        }),
        HirKind::Capture(cap) => Hir::capture(hir::Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(strip_looks(&cap.sub)),
        }),
        _ => h.clone(),
    }
}

#[test]
fn crs_required_literals_never_reject_a_match() {
    let cache = RegexCache::new();
    let env = OperatorEnv {
        read_data_file: &read_data_file,
        regexes: &cache,
    };
    let mut with_literals = 0;
    let mut checked_inputs = 0;
    let mut patterns = 0;
    for op in crs_operators() {
        if op.name != "rx" || op.argument.contains("%{") {
            continue;
        }
        patterns += 1;
        let built: Arc<dyn Operator> =
            operators::build("rx", &op.argument, &env).expect("crs pattern builds");
        let Some(lits) = built.required_literals() else {
            continue;
        };
        with_literals += 1;
        assert!(!lits.literals.is_empty() && lits.literals.iter().all(|l| !l.is_empty()));
        let compiled = cache.get_or_compile(&op.argument).expect("cached");
        checked_inputs +=
            check_pattern(&op.location, compiled.translated(), compiled.regex(), &lits);
    }
    // Most CRS patterns must yield a prefilter, or the engine gains little.
    assert!(
        with_literals * 2 > patterns,
        "only {with_literals} of {patterns} patterns have required literals"
    );
    assert!(
        checked_inputs > 1000,
        "only {checked_inputs} generated inputs matched"
    );
}

/// Generates inputs from the pattern; each one the regex matches must
/// satisfy the literal set. Returns how many matching inputs were checked.
fn check_pattern(
    location: &str,
    translated: &str,
    regex: &regex::bytes::Regex,
    lits: &RequiredLiterals,
) -> usize {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(translated)
        .expect("translated pattern parses");
    let strategy =
        proptest::string::bytes_regex_parsed(&strip_looks(&hir)).expect("generator from HIR");
    let config = Config::default();
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(Default::default()));
    let noise = proptest::collection::vec(proptest::num::u8::ANY, 0..4);
    let mut checked = 0;
    for _ in 0..96 {
        let Ok(core) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let Ok(pre) = noise.new_tree(&mut runner) else {
            continue;
        };
        let mut input = pre.current();
        input.extend(core.current());
        for candidate in [core.current(), input] {
            if regex.is_match(&candidate) {
                checked += 1;
                assert!(
                    lits.is_satisfied_by(&candidate),
                    "{location}: input {:?} matches but contains none of {:?}",
                    String::from_utf8_lossy(&candidate),
                    lits.literals
                        .iter()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    checked
}
