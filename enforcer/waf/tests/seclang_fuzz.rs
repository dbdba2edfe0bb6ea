//! Property tests for the SecLang parser: arbitrary text, arbitrary bytes and
//! mutations of real CRS directives must parse to `Ok` or `Err`, never panic
//! or hang. Inputs that once failed are replayed as ordinary tests at the end.

use std::path::PathBuf;
use std::sync::OnceLock;

use palisade_waf::seclang::{
    parse_actions, parse_file, parse_str, parse_variables, FileSource, MemorySource,
};
use proptest::prelude::*;

/// A few CRS-shaped directives used when the CRS is not available.
const FALLBACK: &[&str] = &[
    "SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|ARGS_NAMES|ARGS|XML:/* \"@detectSQLi\" \\\n    \"id:942100,\\\n    phase:2,\\\n    block,\\\n    msg:'SQL Injection Attack Detected via libinjection',\\\n    logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}',\\\n    setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'\"",
    "SecAction \\\n    \"id:900990,\\\n    phase:1,\\\n    pass,\\\n    t:none,\\\n    nolog,\\\n    tag:'OWASP_CRS',\\\n    setvar:tx.crs_setup_version=4290\"",
    "SecRuleUpdateTargetById 932240 \"!REQUEST_COOKIES:/^_ga(?:_\\w+)?$/\"",
    "SecMarker \"END-REQUEST-942-APPLICATION-ATTACK-SQLI\"",
    "#SecAction \\\n#    \"id:900000,\\\n#    pass\"",
];

fn crs_dir() -> PathBuf {
    match std::env::var_os("PALISADE_CRS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"),
    }
}

/// Real directives (with their continuation lines) from the CRS, or the
/// fallback sample.
fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        let rules = crs_dir().join("rules");
        if let Ok(entries) = std::fs::read_dir(&rules) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            {
                let Ok(text) = std::fs::read_to_string(path) else {
                    continue;
                };
                let mut current = String::new();
                for line in text.lines() {
                    current.push_str(line);
                    current.push('\n');
                    if !line.trim_end().ends_with('\\') {
                        if current.trim_start().starts_with("Sec") {
                            out.push(std::mem::take(&mut current));
                        }
                        current.clear();
                    }
                }
            }
        }
        if out.is_empty() {
            out = FALLBACK.iter().map(|s| s.to_string()).collect();
        }
        out
    })
}

/// One edit applied to a real directive.
#[derive(Clone, Debug)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(vec![
        "\"",
        "'",
        "\\",
        "\\\n",
        "\n",
        "|",
        ",",
        ":",
        "/",
        "!",
        "&",
        "@",
        "#",
        " ",
        "\r\n",
        "%{",
        "é",
        "\u{0}",
        "Include x",
        "\\\"",
        "\\'",
    ]);
    prop_oneof![
        (any::<usize>(), special.prop_map(str::to_string))
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), any::<String>()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), 0usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

/// The char boundary at or before `i % (len + 1)`.
fn boundary(text: &str, i: usize) -> usize {
    let mut at = i % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, m: &Mutation) {
    match m {
        Mutation::Insert(i, s) => {
            let at = boundary(text, *i);
            text.insert_str(at, s);
        }
        Mutation::Delete(i, n) => {
            let start = boundary(text, *i);
            let end = boundary(text, start + n);
            if end > start {
                text.replace_range(start..end, "");
            }
        }
        Mutation::Replace(i, c) => {
            let at = boundary(text, *i);
            if let Some(old) = text[at..].chars().next() {
                text.replace_range(at..at + old.len_utf8(), &c.to_string());
            }
        }
        Mutation::Truncate(i) => {
            let at = boundary(text, *i);
            text.truncate(at);
        }
        Mutation::Duplicate(i, n) => {
            let start = boundary(text, *i);
            let end = boundary(text, start + n).max(start);
            let piece = text[start..end].to_string();
            text.insert_str(end, &piece);
        }
    }
}

/// Text built from SecLang's special characters and keywords.
fn seclang_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "SecRule",
        "SecAction",
        "SecMarker",
        "Include",
        "SecRuleRemoveById",
        "SecRuleUpdateTargetById",
        "SecRuleUpdateActionById",
        "SecDefaultAction",
        "ARGS",
        "ARGS:/x/",
        "XML:/*",
        "!",
        "&",
        "|",
        "\"",
        "'",
        "\\",
        "\n",
        " ",
        "\t",
        "#",
        "@rx",
        "@",
        ":",
        ",",
        "id:1",
        "msg:'a, b'",
        "/",
        "\\\n",
        "\r",
        "1-2",
        "%{tx.x}",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|v| v.concat())
}

/// A file source where every name is `text` (so `Include` loops are tried).
fn self_including(text: &str) -> MemorySource {
    let mut src = MemorySource::default();
    for name in ["main.conf", "x", "x.conf", "a.conf", "rules/r.conf"] {
        src.insert(name, format!("{text}\nInclude x\nInclude *.conf\n"));
    }
    src
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_str(&text, "fuzz.conf");
        let _ = parse_actions(&text);
        let _ = parse_variables(&text);
    }

    #[test]
    fn seclang_soup_never_panics(text in seclang_soup()) {
        let _ = parse_str(&text, "fuzz.conf");
        let _ = parse_actions(&text);
        let _ = parse_variables(&text);
        let src = self_including(&text);
        let _ = parse_file(&src, "main.conf");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut src = MemorySource::default();
        src.insert("bytes.conf", bytes);
        let _ = parse_file(&src, "bytes.conf");
    }

    #[test]
    fn mutated_crs_directives_never_panic(
        index in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut text = corpus[index.index(corpus.len())].clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        let _ = parse_str(&text, "mutated.conf");
        let src = self_including(&text);
        let _ = parse_file(&src, "main.conf");
        // The argument mini-languages on their own, too.
        for piece in text.split(['"', '\n']) {
            let _ = parse_actions(piece);
            let _ = parse_variables(piece);
        }
    }

    #[test]
    fn unmutated_crs_directives_parse(index in any::<prop::sample::Index>()) {
        let corpus = corpus();
        let text = &corpus[index.index(corpus.len())];
        let parsed = parse_str(text, "crs.conf");
        prop_assert!(parsed.as_ref().is_ok_and(|d| d.len() == 1), "{text}: {parsed:?}");
    }
}

/// Inputs that once broke an invariant (or are close to the edges), replayed
/// as ordinary tests.
#[test]
fn regressions() {
    let cases: &[&str] = &[
        "",
        "\\",
        "\\\n",
        "\"",
        "'",
        "#",
        "# SecRule x \\",
        "SecRule \"",
        "SecRule ARGS \"@rx \\",
        "SecRule ARGS \"@rx \\\\\"",
        "SecRule ARGS:/ \"@rx x\"",
        "SecRule ARGS:/\\ \"@rx x\"",
        "SecRule ARGS:'\\ \"@rx x\"",
        "SecRule ARGS:/é\\é/ \"@rx x\"",
        "SecRule &!&! x",
        "SecAction \"msg:'\\\"",
        "SecAction \"msg:'é\\é',id:1\"",
        "SecAction \"setvar:x='é\"",
        "SecAction \"id:1,ctl:a=\\é\"",
        "SecRuleRemoveById -",
        "SecRuleRemoveById 1-",
        "SecRuleRemoveById -1",
        "SecRuleUpdateActionById : x",
        "\u{feff}",
        "\u{feff}\u{feff}SecMarker x",
        "SecMarker \"a\\\n",
        "\r\r\r\n\\\r\n",
    ];
    for text in cases {
        let _ = parse_str(text, "regression.conf");
        let _ = parse_actions(text);
        let _ = parse_variables(text);
        let src = self_including(text);
        let _ = parse_file(&src, "main.conf");
    }
}

#[test]
fn corpus_mutation_helpers_stay_on_char_boundaries() {
    let mut text = String::from("aé€𝄞b");
    for m in [
        Mutation::Insert(2, "x".into()),
        Mutation::Delete(3, 3),
        Mutation::Replace(5, 'q'),
        Mutation::Duplicate(1, 4),
        Mutation::Truncate(7),
    ] {
        apply(&mut text, &m);
        assert!(text.is_char_boundary(text.len()));
    }
    // The self-including source really is read (and the cycle reported).
    let src = self_including("SecMarker A");
    assert!(src.read("x").is_ok());
    let errs = parse_file(&src, "main.conf").unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("include cycle")),
        "{errs:?}"
    );
}
