//! Runs the ModSecurity v3 transformation vectors in
//! `transformations_cases.txt` against `palisade_waf::transformations`.

use std::path::Path;

use palisade_waf::transformations::Transformation;

/// Decodes the table's escapes (`\\`, `\t`, `\n`, `\r`, `\xHH`).
fn unescape(field: &str, line: usize) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        match next {
            Some(b'\\') => out.push(b'\\'),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let hex = field.get(i + 2..i + 4).unwrap_or("");
                let b = u8::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("line {line}: bad \\x escape in {field:?}"));
                out.push(b);
                i += 2;
            }
            _ => panic!("line {line}: bad escape in {field:?}"),
        }
        i += 2;
    }
    out
}

struct Case {
    line: usize,
    name: String,
    input: Vec<u8>,
    want: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transformations_cases.txt");
    let text = std::fs::read_to_string(&path).expect("read transformations_cases.txt");
    let mut cases = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut fields = raw.splitn(3, '\t');
        let (Some(name), Some(input), Some(want)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("line {line}: expected three tab-separated fields");
        };
        cases.push(Case {
            line,
            name: name.to_owned(),
            input: unescape(input, line),
            want: unescape(want, line),
        });
    }
    cases
}

#[test]
fn modsecurity_vectors() {
    let cases = cases();
    assert!(cases.len() > 300, "only {} cases loaded", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let Some(t) = Transformation::from_name(&case.name) else {
            failures.push(format!(
                "line {}: unknown transformation {}",
                case.line, case.name
            ));
            continue;
        };
        let got = (t.apply)(&case.input);
        if *got != *case.want {
            failures.push(format!(
                "line {}: {}({:?}) = {:?}, want {:?}",
                case.line,
                case.name,
                String::from_utf8_lossy(&case.input),
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&case.want),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_transformation_has_vectors() {
    let cases = cases();
    for t in palisade_waf::transformations::ALL {
        assert!(
            cases
                .iter()
                .any(|c| Transformation::from_name(&c.name) == Some(*t)),
            "no vector for {}",
            t.name
        );
    }
}
