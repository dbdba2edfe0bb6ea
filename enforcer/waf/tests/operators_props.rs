//! Property tests: no operator panics on any input, whatever its argument
//! and capture mode, and `@rx` required literals never reject a match.

use palisade_waf::macros::MacroText;
use palisade_waf::operators::{build, Operator, OperatorContext, OperatorEnv, RegexCache};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

struct Tx {
    capturing: bool,
    expansion: Vec<u8>,
}

impl OperatorContext for Tx {
    fn expand(&self, text: &MacroText) -> Vec<u8> {
        text.expand_with(|_, _, out| out.extend_from_slice(&self.expansion))
    }

    fn capturing(&self) -> bool {
        self.capturing
    }

    fn set_capture(&mut self, index: usize, _value: &[u8]) {
        assert!(index <= 9, "capture index {index}");
    }
}

fn data_files(name: &str) -> std::io::Result<Vec<u8>> {
    match name {
        "nets.data" => Ok(b"# test\n10.0.0.0/8\n::1\n".to_vec()),
        _ => Ok(b"# test\nfoo\nbar baz\n".to_vec()),
    }
}

/// One instance of every operator, with literal and macro arguments.
fn operators() -> &'static [Arc<dyn Operator>] {
    static OPERATORS: OnceLock<Vec<Arc<dyn Operator>>> = OnceLock::new();
    OPERATORS.get_or_init(build_operators)
}

fn build_operators() -> Vec<Arc<dyn Operator>> {
    let cache = RegexCache::new();
    let env = OperatorEnv {
        read_data_file: &data_files,
        regexes: &cache,
    };
    let specs: &[(&str, &str)] = &[
        ("rx", r"(?i)(a+)(b)?\w*\s$"),
        ("rx", r"^%{tx.p}"),
        ("rx", ""),
        ("pm", "foo bar |00|"),
        ("pmFromFile", "x.data"),
        ("detectSQLi", ""),
        ("detectXSS", ""),
        ("eq", "%{tx.n}"),
        ("ge", "5"),
        ("gt", "%{tx.n}"),
        ("le", "-5"),
        ("lt", "%{tx.n}"),
        ("streq", "%{tx.n}"),
        ("strmatch", "ab"),
        ("within", "%{tx.n}"),
        ("contains", "%{tx.n}"),
        ("containsWord", "%{tx.n}"),
        ("beginsWith", "%{tx.n}"),
        ("endsWith", "x"),
        ("ipMatch", "10.0.0.0/8,::1,2001:db8::/32"),
        ("ipMatchFromFile", "nets.data"),
        ("validateByteRange", "1-255"),
        ("validateUrlEncoding", ""),
        ("validateUtf8Encoding", ""),
        ("unconditionalMatch", ""),
        ("noMatch", ""),
    ];
    specs
        .iter()
        .map(|(name, arg)| build(name, arg, &env).unwrap_or_else(|e| panic!("@{name} {arg}: {e}")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn evaluate_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..64),
        expansion in proptest::collection::vec(any::<u8>(), 0..16),
        capturing in any::<bool>(),
    ) {
        for op in operators() {
            let mut tx = Tx { capturing, expansion: expansion.clone() };
            let _ = op.evaluate(&mut tx, &input);
        }
    }

    #[test]
    fn build_never_panics(name_index in 0usize..26, argument in "\\PC{0,24}") {
        let names = [
            "rx", "pm", "pmFromFile", "detectSQLi", "detectXSS", "eq", "ge", "gt", "le", "lt",
            "streq", "strmatch", "within", "contains", "containsWord", "beginsWith", "endsWith",
            "ipMatch", "ipMatchFromFile", "validateByteRange", "validateUrlEncoding",
            "validateUtf8Encoding", "unconditionalMatch", "noMatch", "pmf", "ipMatchF",
        ];
        let cache = RegexCache::new();
        let env = OperatorEnv { read_data_file: &data_files, regexes: &cache };
        if let Ok(op) = build(names[name_index], &argument, &env) {
            let _ = op.required_literals();
            let mut tx = Tx { capturing: true, expansion: b"1".to_vec() };
            let _ = op.evaluate(&mut tx, argument.as_bytes());
        }
    }

    #[test]
    fn rx_rewriter_never_panics(pattern in "[\\\\\\[\\](){}?*+|^$.a-z0-9:<>'#=!&~QEZevhRxo-]{0,24}") {
        let cache = RegexCache::new();
        let env = OperatorEnv { read_data_file: &data_files, regexes: &cache };
        if let Ok(op) = build("rx", &pattern, &env) {
            let mut tx = Tx { capturing: true, expansion: Vec::new() };
            let _ = op.evaluate(&mut tx, pattern.as_bytes());
            if let Some(lits) = op.required_literals() {
                // The pattern text itself is an input; if it matches, it must
                // contain a required literal.
                let mut plain = Tx { capturing: false, expansion: Vec::new() };
                if op.evaluate(&mut plain, pattern.as_bytes()) {
                    prop_assert!(lits.is_satisfied_by(pattern.as_bytes()));
                }
            }
        }
    }
}
