//! Table-driven checks of every operator through the public
//! `operators::build` API: (operator, argument, input) -> match and captures,
//! with macro arguments expanded by a small fake transaction.

use std::collections::HashMap;
use std::io;

use palisade_waf::macros::MacroText;
use palisade_waf::operators::{build, OperatorContext, OperatorEnv, OperatorError, RegexCache};

/// A fake transaction: `%{tx.*}` and `%{request_headers.*}` come from `vars`.
#[derive(Default)]
struct Tx {
    vars: HashMap<String, String>,
    capturing: bool,
    captures: HashMap<usize, Vec<u8>>,
}

impl OperatorContext for Tx {
    fn expand(&self, text: &MacroText) -> Vec<u8> {
        text.expand_with(|collection, key, out| {
            let name = format!("{collection}.{}", key.unwrap_or("")).to_ascii_lowercase();
            if let Some(v) = self.vars.get(&name) {
                out.extend_from_slice(v.as_bytes());
            }
        })
    }

    fn capturing(&self) -> bool {
        self.capturing
    }

    fn set_capture(&mut self, index: usize, value: &[u8]) {
        self.captures.insert(index, value.to_vec());
    }
}

fn data_files(name: &str) -> io::Result<Vec<u8>> {
    match name {
        "words.data" => Ok(b"# words\nunion select\n\nsleep(\n".to_vec()),
        "nets.data" => Ok(b"10.0.0.0/8\n::1\n".to_vec()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned())),
    }
}

struct Case {
    op: &'static str,
    arg: &'static str,
    input: &'static [u8],
    matches: bool,
    /// Expected `TX:0` and `TX:1` when the rule captures.
    tx0: Option<&'static [u8]>,
    tx1: Option<&'static [u8]>,
}

const fn case(op: &'static str, arg: &'static str, input: &'static [u8], matches: bool) -> Case {
    Case {
        op,
        arg,
        input,
        matches,
        tx0: None,
        tx1: None,
    }
}

const fn captured(
    op: &'static str,
    arg: &'static str,
    input: &'static [u8],
    tx0: &'static [u8],
    tx1: Option<&'static [u8]>,
) -> Case {
    Case {
        op,
        arg,
        input,
        matches: true,
        tx0: Some(tx0),
        tx1,
    }
}

const CASES: &[Case] = &[
    // @rx
    captured(
        "rx",
        r"^/api/v(\d+)/",
        b"/api/v2/users",
        b"/api/v2/",
        Some(b"2"),
    ),
    captured(
        "rx",
        r"(?i)(union)\s+select",
        b"1 UNION  SELECT",
        b"UNION  SELECT",
        Some(b"UNION"),
    ),
    case("rx", r"(?i)union\s+select", b"1 union-select", false),
    case("rx", r"^abc$", b"x\nabc\ny", true),
    case("rx", r"a.c", b"a\nc", true),
    case("rx", r"\xff", b"\xff", true),
    case("rx", "", b"anything", true),
    case("RX", r"^%{tx.method}$", b"GET", true),
    case("rx", r"^%{tx.method}$", b"POST", false),
    // @pm / @pmFromFile
    captured("pm", "gzip compress deflate", b"x-GZIP", b"gzip", None),
    case("pm", "gzip compress deflate", b"identity", false),
    captured(
        "pmFromFile",
        "words.data",
        b"1 UNION SELECT 2",
        b"union select",
        None,
    ),
    captured("pmf", "words.data", b"sleep(5)", b"sleep(", None),
    case("pmFromFile", "words.data", b"# words", false),
    // @detectSQLi / @detectXSS
    captured("detectSQLi", "", b"1' or '1'='1", b"s&sos", None),
    case("detectSQLi", "", b"hello world", false),
    captured(
        "detectXSS",
        "",
        b"<script>alert(1)</script>",
        b"<script>alert(1)</script>",
        None,
    ),
    case("detectXSS", "", b"hello world", false),
    // numeric comparisons
    case("eq", "0", b"", true),
    case("eq", "%{tx.n}", b"5", true),
    case("ge", "%{tx.threshold}", b"5", true),
    case("ge", "%{tx.threshold}", b"4", false),
    case("gt", "0", b"1", true),
    case("lt", "%{tx.n}", b"4", true),
    case("le", "5", b"6", false),
    // string comparisons
    case("streq", "POST", b"POST", true),
    case("streq", "%{request_headers.host}", b"example.com", true),
    case("streq", "POST", b"post", false),
    case("within", "%{tx.allowed_methods}", b"GET", true),
    case("within", "%{tx.allowed_methods}", b"DELETE", false),
    case("within", "%{tx.allowed_methods}", b"", true),
    case("contains", ".php", b"/x.php", true),
    case("containsWord", "select", b"1 select 2", true),
    case("containsWord", "select", b"selection", false),
    case("beginsWith", "GET /", b"GET / HTTP/1.1", true),
    case(
        "endsWith",
        ".%{request_headers.host}",
        b"www.example.com",
        true,
    ),
    case("endsWith", ".pdf", b"x.PDF", false),
    case("strmatch", "WebZIP", b"Mozilla WebZIP", true),
    // addresses
    case("ipMatch", "127.0.0.1,::1", b"::1", true),
    case("ipMatch", "10.0.0.0/8", b"11.0.0.1", false),
    case("ipMatchFromFile", "nets.data", b"10.9.8.7", true),
    case("ipMatchF", "nets.data", b"192.168.0.1", false),
    // validation
    case("validateByteRange", "32-126", b"tab\there", true),
    case("validateByteRange", "9,10,13,32-126", b"tab\there", false),
    case("validateUrlEncoding", "", b"a%2x", true),
    case("validateUrlEncoding", "", b"a%20b", false),
    case("validateUtf8Encoding", "", b"\xc0\xaf", true),
    case("validateUtf8Encoding", "", b"caf\xc3\xa9", false),
    // constant operators
    case("unconditionalMatch", "", b"", true),
    case("noMatch", "", b"x", false),
];

#[test]
fn operator_table() {
    let cache = RegexCache::new();
    let env = OperatorEnv {
        read_data_file: &data_files,
        regexes: &cache,
    };
    let vars: HashMap<String, String> = [
        ("tx.method", "GET"),
        ("tx.n", "5"),
        ("tx.threshold", "5"),
        ("tx.allowed_methods", "GET HEAD POST OPTIONS"),
        ("request_headers.host", "example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for c in CASES {
        let op = build(c.op, c.arg, &env)
            .unwrap_or_else(|e| panic!("@{} {:?} does not build: {e}", c.op, c.arg));
        for capturing in [false, true] {
            let mut tx = Tx {
                vars: vars.clone(),
                capturing,
                ..Tx::default()
            };
            let label = format!(
                "@{} {:?} on {:?}",
                c.op,
                c.arg,
                String::from_utf8_lossy(c.input)
            );
            assert_eq!(op.evaluate(&mut tx, c.input), c.matches, "{label}");
            if !capturing {
                assert!(tx.captures.is_empty(), "{label}: captured without capture");
                continue;
            }
            if let Some(tx0) = c.tx0 {
                assert_eq!(
                    tx.captures.get(&0).map(Vec::as_slice),
                    Some(tx0),
                    "{label}: TX:0"
                );
            }
            assert_eq!(
                tx.captures.get(&1).map(Vec::as_slice),
                c.tx1,
                "{label}: TX:1"
            );
        }
    }
}

#[test]
fn build_errors() {
    let cache = RegexCache::new();
    let env = OperatorEnv {
        read_data_file: &data_files,
        regexes: &cache,
    };
    type Check = fn(&OperatorError) -> bool;
    let cases: &[(&str, &str, Check)] = &[
        ("nosuchop", "", |e| matches!(e, OperatorError::Unknown(_))),
        ("verifyCC", "\\d", |e| {
            matches!(e, OperatorError::Unknown(_))
        }),
        ("rx", "(", |e| {
            matches!(e, OperatorError::InvalidArgument { .. })
        }),
        ("rx", "(?=x)", |e| {
            matches!(e, OperatorError::InvalidArgument { .. })
        }),
        ("pmFromFile", "missing.data", |e| {
            matches!(e, OperatorError::DataFile { .. })
        }),
        ("ipMatch", "300.1.1.1", |e| {
            matches!(e, OperatorError::InvalidArgument { .. })
        }),
        ("validateByteRange", "1-300", |e| {
            matches!(e, OperatorError::InvalidArgument { .. })
        }),
    ];
    for (name, arg, check) in cases {
        match build(name, arg, &env) {
            Err(e) => {
                assert!(check(&e), "@{name} {arg:?}: unexpected error {e:?}");
                let msg = e.to_string();
                assert!(msg.chars().next().is_some_and(char::is_lowercase), "{msg}");
            }
            Ok(op) => panic!("@{name} {arg:?} built: {op:?}"),
        }
    }
}
