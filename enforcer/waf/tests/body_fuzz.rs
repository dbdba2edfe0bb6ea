//! Property tests for the request body processors: arbitrary bytes and mutations of
//! valid bodies must never panic or hang, and generated well-formed bodies must come
//! back as the values that were put in. Inputs that once failed are replayed as
//! ordinary tests at the end.

use palisade_waf::body::multipart;
use palisade_waf::body::urlencoded;
use palisade_waf::body::xml::XmlDocument;
use palisade_waf::body::{json, BodyLimits};
use proptest::prelude::*;

const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

const MULTIPART_SEED: &str = concat!(
    "--XyZ\r\n",
    "Content-Disposition: form-data; name=\"a\"\r\n",
    "\r\n",
    "1\r\n",
    "--XyZ\r\n",
    "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n",
    "Content-Type: text/plain\r\n",
    "\r\n",
    "hello\r\n",
    "--XyZ--\r\n",
);

const JSON_SEED: &str = r#"{"a":[1,{"b":"x\u00e9\n","c":[true,false,null]}],"":-1.5e3}"#;

const XML_SEED: &str = concat!(
    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e \"v\">]>",
    "<r a=\"1\"><b c='2'>t&e;<![CDATA[x]]></b><!-- c --><d/></r>",
);

const URLENCODED_SEED: &str = "a=1&b=%41%2&c+d=e+f&&=&g";

/// One edit applied to a seed body.
#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'\r'),
        Just(b'\n'),
        Just(b'-'),
        Just(b'"'),
        Just(b'\\'),
        Just(b'{'),
        Just(b'['),
        Just(b'<'),
        Just(b'>'),
        Just(b'&'),
        Just(b'%'),
        Just(b';'),
        Just(b'='),
        Just(0u8),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(p, b)| Edit::Insert(p, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting).prop_map(|(p, b)| Edit::Replace(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Duplicate(p, n)),
    ]
}

fn mutate(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut body = seed.as_bytes().to_vec();
    for e in edits {
        let len = body.len();
        match *e {
            Edit::Insert(p, b) => body.insert(p % (len + 1), b),
            Edit::Delete(p) if len > 0 => {
                body.remove(p % len);
            }
            Edit::Replace(p, b) if len > 0 => body[p % len] = b,
            Edit::Duplicate(p, n) if len > 0 => {
                let start = p % len;
                let end = (start + n).min(len);
                let copy = body[start..end].to_vec();
                body.splice(end..end, copy);
            }
            _ => {}
        }
    }
    body
}

fn small_limits() -> BodyLimits {
    BodyLimits {
        max_depth: 8,
        max_args: 50,
    }
}

/// Every processor on one input; none may panic.
fn run_all(body: &[u8]) {
    let limits = BodyLimits::default();
    let parsed = urlencoded::parse(body, b'&');
    assert!(parsed.pairs.len() <= body.len());
    let _ = json::parse(body, &limits);
    let _ = json::parse_partial(body, &small_limits());
    let m = multipart::parse(CT, body, &limits);
    let _ = m.flags.strict_error();
    let _ = multipart::parse(body, MULTIPART_SEED.as_bytes(), &limits);
    if let Ok(doc) = XmlDocument::parse(body, &limits) {
        for xpath in ["/*", "//@*", "/", "//*", "//text()", "/*/*/@*"] {
            let _ = doc.select(xpath);
        }
    }
    let (partial, error) = XmlDocument::parse_partial(body, &small_limits());
    for xpath in ["/*", "//@*", "//*"] {
        let _ = partial.select(xpath);
    }
    assert_eq!(
        error.is_none(),
        XmlDocument::parse(body, &small_limits()).is_ok()
    );
}

/// Percent-encodes every byte.
fn percent_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// A JSON value with a bounded shape, and the number of scalars it holds.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::Value::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(serde_json::Value::Number),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z]{0,4}", inner), 0..6)
                .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
        ]
    })
}

fn scalars(value: &serde_json::Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    // Depth-first, left to right, as the parser meets them.
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
            serde_json::Value::Object(map) => stack.extend(map.values().rev()),
            serde_json::Value::String(s) => out.push(s.as_bytes().to_vec()),
            serde_json::Value::Null => out.push(Vec::new()),
            serde_json::Value::Bool(b) => out.push(b.to_string().into_bytes()),
            serde_json::Value::Number(n) => out.push(n.to_string().into_bytes()),
        }
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&body);
    }

    #[test]
    fn mutated_multipart_never_panics(edits in prop::collection::vec(edit(), 1..12)) {
        run_all(&mutate(MULTIPART_SEED, &edits));
    }

    #[test]
    fn mutated_json_never_panics(edits in prop::collection::vec(edit(), 1..12)) {
        run_all(&mutate(JSON_SEED, &edits));
    }

    #[test]
    fn mutated_xml_never_panics(edits in prop::collection::vec(edit(), 1..12)) {
        run_all(&mutate(XML_SEED, &edits));
    }

    #[test]
    fn mutated_urlencoded_never_panics(edits in prop::collection::vec(edit(), 1..12)) {
        run_all(&mutate(URLENCODED_SEED, &edits));
    }

    #[test]
    fn mutated_content_type_never_panics(
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let ct = mutate("multipart/form-data; boundary=\"XyZ\"", &edits);
        let m = multipart::parse(&ct, MULTIPART_SEED.as_bytes(), &BodyLimits::default());
        prop_assert!(m.error.is_some() || !m.flags.parse_error);
    }

    #[test]
    fn urlencoded_round_trip(
        pairs in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8)),
            0..8,
        ),
    ) {
        let input: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", percent_all(n), percent_all(v)))
            .collect();
        let parsed = urlencoded::parse(input.join("&").as_bytes(), b'&');
        prop_assert!(!parsed.invalid_encoding);
        prop_assert_eq!(parsed.pairs, pairs);
    }

    #[test]
    fn json_accepts_what_serde_writes(value in json_value()) {
        let text = serde_json::to_vec(&value).expect("serialize");
        let args = json::parse(&text, &BodyLimits::default());
        prop_assert!(args.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&text), args);
        let values: Vec<Vec<u8>> = args.unwrap_or_default().into_iter().map(|(_, v)| v).collect();
        prop_assert_eq!(values, scalars(&value));
    }

    #[test]
    fn json_accepts_whatever_serde_accepts(body in r#"[\[\]{}",:0-9aelnrstu\-.E \\]{0,24}"#) {
        let body = body.as_bytes();
        if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
            prop_assert!(json::parse(body, &BodyLimits::default()).is_ok());
        }
    }

    #[test]
    fn multipart_round_trip(
        fields in prop::collection::vec(
            ("[a-zA-Z0-9_.]{1,8}", prop::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'x'), Just(b' '), any::<u8>()
                    .prop_filter("no dash", |b| *b != b'-')],
                0..40,
            )),
            1..6,
        ),
        long in 0usize..9000,
    ) {
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for (i, (name, value)) in fields.iter().enumerate() {
            let mut value = value.clone();
            if i == 0 {
                value.extend(std::iter::repeat_n(b'v', long));
            }
            body.extend_from_slice(b"--XyZ\r\n");
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\r\n");
            expected.push((name.as_bytes().to_vec(), value));
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        let m = multipart::parse(CT, &body, &BodyLimits::default());
        prop_assert_eq!(m.error, None);
        prop_assert!(!m.flags.parse_error && !m.flags.invalid_part);
        prop_assert_eq!(m.args, expected);
    }

    #[test]
    fn xml_text_and_attributes_round_trip(
        items in prop::collection::vec(("[a-z]{1,6}", "[^\u{0}-\u{1f}\u{fffe}\u{ffff}]{0,10}", "[ -~]{0,8}"), 1..8),
    ) {
        let mut doc = String::from("<root>");
        let mut text = String::new();
        let mut attributes = Vec::new();
        for (name, content, attribute) in &items {
            doc.push_str(&format!(
                "<{name} v=\"{}\">{}</{name}>",
                xml_escape(attribute),
                xml_escape(content)
            ));
            text.push_str(content);
            attributes.push(attribute.as_bytes().to_vec());
        }
        doc.push_str("</root>");
        let parsed = XmlDocument::parse(doc.as_bytes(), &BodyLimits::default());
        prop_assert!(parsed.is_ok(), "{}: {:?}", doc, parsed);
        let parsed = parsed.unwrap_or_default();
        prop_assert_eq!(parsed.select("/*"), vec![text.into_bytes()]);
        prop_assert_eq!(parsed.select("//@*"), attributes);
    }
}

// Inputs that once broke a processor, replayed on every run.

#[test]
fn regression_inputs() {
    let cases: &[&[u8]] = &[
        b"",
        b"\r",
        b"--XyZ",
        b"--XyZ--",
        b"--XyZ\r\n--XyZ--",
        b"--XyZ\r\nContent-Disposition: form-data; name=\"",
        b"--XyZ\r\nContent-Disposition: form-data; name=\\\r\n\r\n--XyZ--",
        b"--XyZ\r\n \r\n",
        b"\"\\ud800",
        b"\"\\u",
        b"[\"\\ud800\\",
        b"<a:b xmlns:a='x' c:d='1'/>",
        b"<!DOCTYPE a [<!ENTITY x SYSTEM 'http://e/'>]><a>&x;</a>",
        b"%",
        b"%%%=%",
        b"<r><?xml?></r",
        b"<r><!DOCTYPE [<x>]",
        b"<\xc3\xa9 a='\xc3\xa9'>\xc3\xa9&#xD800;&#1114112;&",
        b"<r a='1' a='2'><b",
    ];
    for body in cases {
        run_all(body);
    }
}

#[test]
fn deep_inputs_fail_cleanly() {
    let json = "[".repeat(200_000);
    assert!(json::parse(json.as_bytes(), &BodyLimits::default()).is_err());
    let xml = format!("{}{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
    assert!(XmlDocument::parse(xml.as_bytes(), &BodyLimits::default()).is_err());
    let limits = BodyLimits {
        max_depth: 60_000,
        max_args: 10,
    };
    let doc = XmlDocument::parse(xml.as_bytes(), &limits).expect("within the limit");
    assert_eq!(doc.select("/*"), vec![Vec::<u8>::new()]);
    assert_eq!(doc.select("//a").len(), 50_000);
    // Linear, not quadratic, on deep documents.
    assert_eq!(doc.select("//*").len(), 50_000);
    assert_eq!(doc.select("//a//a").len(), 49_999);
    let with_text = format!("{}x{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
    let doc = XmlDocument::parse(with_text.as_bytes(), &limits).expect("within the limit");
    assert!(doc.select("//a").iter().all(|v| v == b"x"));
    // Unclosed: the partial tree stops at the depth limit.
    let unclosed = "<a>y".repeat(100_000);
    let (partial, error) = XmlDocument::parse_partial(unclosed.as_bytes(), &BodyLimits::default());
    assert!(error.is_some());
    assert_eq!(partial.select("//a").len(), 512);
}

#[test]
fn pathological_inputs_stay_bounded() {
    let limits = BodyLimits::default();

    // Many part headers, many folded lines.
    let mut body = String::from("--XyZ\r\nContent-Disposition: form-data; name=a\r\n");
    for i in 0..50_000 {
        body.push_str(&format!("X-{i}: v\r\n"));
    }
    body.push_str("X-Fold: start\r\n");
    body.push_str(&" x\r\n".repeat(100_000));
    body.push_str("\r\nvalue\r\n--XyZ--\r\n");
    let m = multipart::parse(CT, body.as_bytes(), &limits);
    assert!(m.flags.header_folding);
    assert_eq!(m.error.as_deref(), Some("Multipart: Part header too long."));
    assert_eq!(m.args, vec![(b"a".to_vec(), b"value".to_vec())]);

    // A boundary made of dashes against lines made of dashes.
    let ct = format!("multipart/form-data; boundary={}", "-".repeat(200));
    let dashes = format!("{}\n", "-".repeat(4000)).repeat(250);
    let _ = multipart::parse(ct.as_bytes(), dashes.as_bytes(), &limits);

    // Long keys at depth with many values: the name budget stops it.
    let key = "k".repeat(1000);
    let mut json = String::new();
    for _ in 0..500 {
        json.push_str(&format!("{{\"{key}\":"));
    }
    json.push('[');
    json.push_str(&"1,".repeat(20_000));
    json.push('1');
    let (args, err) = json::parse_partial(
        json.as_bytes(),
        &BodyLimits {
            max_depth: 1000,
            max_args: 100_000,
        },
    );
    assert!(err.is_some_and(|e| e.message.contains("budget")));
    assert!(args.len() < 100);

    // Many urlencoded pieces.
    let query = "a=1&".repeat(200_000);
    assert_eq!(
        urlencoded::parse(query.as_bytes(), b'&').pairs.len(),
        200_000
    );
}
