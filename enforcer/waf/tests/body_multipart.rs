//! Multipart body processor: arguments, files, part headers and every MULTIPART_* flag.

use palisade_waf::body::multipart::{parse, FilePart, Multipart};
use palisade_waf::body::BodyLimits;

const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

fn mp(content_type: &[u8], body: &str) -> Multipart {
    parse(content_type, body.as_bytes(), &BodyLimits::default())
}

/// Joins lines with CRLF (each line, including the last, gets one).
fn crlf(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn well_formed_body() {
    let body = crlf(&[
        "--XyZ",
        "Content-Disposition: form-data; name=\"a\"",
        "",
        "1",
        "--XyZ",
        "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"",
        "Content-Type: text/plain",
        "",
        "hello",
        "world",
        "--XyZ",
        "Content-Disposition: form-data; name=b",
        "",
        "line1",
        "line2",
        "",
        "--XyZ--",
    ]);
    let m = mp(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.args, pairs(&[("a", "1"), ("b", "line1\r\nline2\r\n")]));
    assert_eq!(
        m.files,
        vec![FilePart {
            name: b"f".to_vec(),
            filename: b"x.txt".to_vec(),
            size: 12,
        }]
    );
    assert_eq!(
        m.part_headers,
        pairs(&[
            ("a", "Content-Disposition: form-data; name=\"a\""),
            (
                "f",
                "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\""
            ),
            ("f", "Content-Type: text/plain"),
            ("b", "Content-Disposition: form-data; name=b"),
        ])
    );
    assert!(!m.flags.strict_error(), "{:?}", m.flags);
    assert_eq!(m.flags.unmatched_boundary_value, 2);
    assert!(!m.flags.unmatched_boundary);
}

/// The names of the flags that are set (strict_error included as `strict`).
fn set_flags(m: &Multipart) -> Vec<&'static str> {
    let f = &m.flags;
    let all = [
        ("boundary_quoted", f.boundary_quoted),
        ("boundary_whitespace", f.boundary_whitespace),
        ("data_after", f.data_after),
        ("data_before", f.data_before),
        ("file_limit_exceeded", f.file_limit_exceeded),
        ("header_folding", f.header_folding),
        ("invalid_header_folding", f.invalid_header_folding),
        ("invalid_part", f.invalid_part),
        ("invalid_quoting", f.invalid_quoting),
        ("lf_line", f.lf_line),
        ("missing_semicolon", f.missing_semicolon),
        ("crlf_lf_lines", f.crlf_lf_lines),
        ("unmatched_boundary", f.unmatched_boundary),
        ("parse_error", f.parse_error),
        ("strict", f.strict_error()),
    ];
    all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
}

struct Case {
    what: &'static str,
    content_type: &'static str,
    body: String,
    args: &'static [(&'static str, &'static str)],
    files: usize,
    flags: &'static [&'static str],
    /// Substring of the error message, if an error is expected.
    error: Option<&'static str>,
}

fn simple_part(name_param: &str, value: &str) -> Vec<String> {
    vec![
        "--XyZ".to_string(),
        format!("Content-Disposition: form-data; {name_param}"),
        String::new(),
        value.to_string(),
    ]
}

fn body_of(lines: Vec<String>) -> String {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    crlf(&refs)
}

fn one_field(name_param: &str, value: &str) -> String {
    let mut lines = simple_part(name_param, value);
    lines.push("--XyZ--".into());
    body_of(lines)
}

/// A part whose header block is followed directly by a final boundary without a line
/// break: ModSecurity then completes the body, so the header error is the last one.
fn headers_only(headers: &[&str]) -> String {
    let mut body = String::from("--XyZ\r\n");
    for h in headers {
        body.push_str(h);
        body.push_str("\r\n");
    }
    body.push_str("\r\n--XyZ--");
    body
}

const OK_CT: &str = "multipart/form-data; boundary=XyZ";

fn cases() -> Vec<Case> {
    let ok = one_field("name=\"a\"", "1");
    vec![
        Case {
            what: "plain",
            content_type: OK_CT,
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &[],
            error: None,
        },
        Case {
            what: "quoted boundary",
            content_type: "multipart/form-data; boundary=\"XyZ\"",
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &["boundary_quoted", "strict"],
            error: None,
        },
        Case {
            what: "whitespace before =",
            content_type: "multipart/form-data; boundary =XyZ",
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &["boundary_whitespace", "strict"],
            error: None,
        },
        Case {
            what: "missing semicolon",
            content_type: "multipart/form-data boundary=XyZ",
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &["missing_semicolon", "strict"],
            error: None,
        },
        Case {
            what: "charset after boundary is tolerated",
            content_type: "multipart/form-data; boundary=XyZ; charset=utf-8",
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &[],
            error: None,
        },
        Case {
            what: "mime type case-insensitive",
            content_type: "Multipart/Form-Data; boundary=XyZ",
            body: ok.clone(),
            args: &[("a", "1")],
            files: 0,
            flags: &[],
            error: None,
        },
        Case {
            what: "data before",
            content_type: OK_CT,
            body: format!("preamble\r\n{ok}"),
            args: &[("a", "1")],
            files: 0,
            flags: &["data_before", "strict"],
            error: None,
        },
        Case {
            what: "data after",
            content_type: OK_CT,
            body: format!("{ok}epilogue"),
            args: &[("a", "1")],
            files: 0,
            flags: &["data_after", "strict"],
            error: None,
        },
        Case {
            what: "header folding",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                "Content-Disposition: form-data;".into(),
                " name=\"a\"".into(),
                String::new(),
                "1".into(),
                "--XyZ--".into(),
            ]),
            args: &[("a", "1")],
            files: 0,
            flags: &["header_folding", "strict"],
            error: None,
        },
        Case {
            what: "invalid header folding",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                "Content-Disposition: form-data;".into(),
                "\x0bname=\"a\"".into(),
                String::new(),
                "1".into(),
                "--XyZ--".into(),
            ]),
            args: &[("a", "1")],
            files: 0,
            flags: &["header_folding", "invalid_header_folding", "strict"],
            error: None,
        },
        Case {
            what: "invalid quoting (single quotes)",
            content_type: OK_CT,
            body: one_field("name='a'", "1"),
            args: &[("a", "1")],
            files: 0,
            flags: &["invalid_quoting", "strict"],
            error: None,
        },
        Case {
            what: "invalid quoting (quote in token)",
            content_type: OK_CT,
            body: one_field("name=a'b", "1"),
            args: &[("a'b", "1")],
            files: 0,
            flags: &["invalid_quoting", "strict"],
            error: None,
        },
        Case {
            what: "LF lines",
            content_type: OK_CT,
            body: ok.replace("\r\n", "\n"),
            args: &[("a", "1")],
            files: 0,
            flags: &["lf_line", "strict"],
            error: None,
        },
        Case {
            what: "mixed CRLF and LF lines",
            content_type: OK_CT,
            body: ok.replacen("\r\n", "\n", 1),
            args: &[("a", "1")],
            files: 0,
            flags: &["lf_line", "crlf_lf_lines", "strict"],
            error: None,
        },
        Case {
            what: "boundary where part data should begin",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                "Content-Disposition: form-data; name=\"a\"".into(),
                String::new(),
                "--XyZ".into(),
                "Content-Disposition: form-data; name=\"b\"".into(),
                String::new(),
                "2".into(),
                "--XyZ--".into(),
            ]),
            args: &[(
                "a",
                "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2",
            )],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: None,
        },
        Case {
            what: "final boundary right after the first one, no line break",
            content_type: OK_CT,
            body: "--XyZ\r\n--XyZ--".into(),
            args: &[],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: None,
        },
        Case {
            what: "unmatched boundary, final boundary without line break",
            content_type: OK_CT,
            body: body_of(simple_part("name=\"a\"", "x --XyZ y")) + "--XyZ--",
            args: &[("a", "x --XyZ y")],
            files: 0,
            flags: &["unmatched_boundary"],
            error: None,
        },
        Case {
            what: "unmatched boundary overwritten by a later boundary",
            content_type: OK_CT,
            body: one_field("name=\"a\"", "--other"),
            args: &[("a", "--other")],
            files: 0,
            flags: &[],
            error: None,
        },
        Case {
            what: "file part",
            content_type: OK_CT,
            body: one_field("name=\"f\"; filename=\"a.php\"", "<?php ?>"),
            args: &[],
            files: 1,
            flags: &[],
            error: None,
        },
        Case {
            what: "filename* alongside filename",
            content_type: OK_CT,
            body: one_field(
                "name=\"f\"; filename=\"a\"; filename*=UTF-8''%e2%82%ac.txt",
                "x",
            ),
            args: &[],
            files: 1,
            flags: &[],
            error: None,
        },
        Case {
            what: "empty filename is a field",
            content_type: OK_CT,
            body: one_field("name=\"f\"; filename=\"\"", "x"),
            args: &[("f", "x")],
            files: 0,
            flags: &[],
            error: None,
        },
        Case {
            what: "escaped quote in a quoted name",
            content_type: OK_CT,
            body: one_field(r#"name="a\"b\\c\d""#, "1"),
            args: &[("a\"b\\c\\d", "1")],
            files: 0,
            flags: &[],
            error: None,
        },
        // Errors.
        Case {
            what: "final boundary missing",
            content_type: OK_CT,
            body: body_of(simple_part("name=\"a\"", "1")),
            args: &[],
            files: 0,
            flags: &[],
            error: Some("Final boundary missing"),
        },
        Case {
            what: "no boundaries",
            content_type: OK_CT,
            body: "just text\r\n".into(),
            args: &[],
            files: 0,
            flags: &["data_before", "strict"],
            error: Some("No boundaries found in payload"),
        },
        Case {
            what: "garbage after boundary",
            content_type: OK_CT,
            body: format!("--XyZ junk\r\n{ok}"),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary: --XyZ junk"),
        },
        Case {
            what: "quoted boundary in body",
            content_type: "multipart/form-data; boundary=\"XyZ\"",
            body: format!("--\"XyZ\"\r\n{ok}"),
            args: &[],
            files: 0,
            flags: &["boundary_quoted", "parse_error", "strict"],
            error: Some("Invalid boundary (quotes)"),
        },
        Case {
            what: "whitespace before boundary in body",
            content_type: OK_CT,
            body: format!("-- XyZ\r\n{ok}"),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary (whitespace)"),
        },
        Case {
            what: "duplicate final boundary cannot happen after completion",
            content_type: OK_CT,
            body: format!("{ok}{ok}"),
            args: &[("a", "1")],
            files: 0,
            flags: &["data_after", "strict"],
            error: None,
        },
        Case {
            what: "missing Content-Disposition",
            content_type: OK_CT,
            body: headers_only(&["Content-Type: text/plain"]),
            args: &[],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Part missing Content-Disposition header"),
        },
        Case {
            what: "Content-Disposition not form-data",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: attachment; name=a"]),
            args: &[],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Invalid Content-Disposition header (-1)"),
        },
        Case {
            what: "unknown Content-Disposition parameter",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; name=a; size=3"]),
            args: &[("a", "")],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Invalid Content-Disposition header (-11)"),
        },
        Case {
            what: "missing name",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; filename=\"x\""]),
            args: &[],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Content-Disposition header missing name field"),
        },
        Case {
            what: "duplicate name parameter",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; name=a; name=b"]),
            args: &[("a", "")],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Invalid Content-Disposition header (-14)"),
        },
        Case {
            what: "junk after quoted value",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; name=\"a\"x"]),
            args: &[("a", "")],
            files: 0,
            flags: &["invalid_part", "invalid_quoting", "strict"],
            error: Some("Invalid Content-Disposition header (-12)"),
        },
        Case {
            what: "unterminated quote",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; name=\"a"]),
            args: &[],
            files: 0,
            flags: &["invalid_part", "invalid_quoting", "strict"],
            error: Some("Invalid Content-Disposition header (-15)"),
        },
        Case {
            what: "header without colon",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                "Content-Disposition: form-data; name=a".into(),
                "no colon here".into(),
                String::new(),
                "1".into(),
                "--XyZ--".into(),
            ]),
            // The bad line is skipped; the part itself is fine.
            args: &[("a", "1")],
            files: 0,
            flags: &[],
            error: Some("Invalid part header (colon missing): no colon here"),
        },
        Case {
            what: "folding without a header",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                " folded".into(),
                "Content-Disposition: form-data; name=a".into(),
                String::new(),
                "1".into(),
                "--XyZ--".into(),
            ]),
            args: &[("a", "1")],
            files: 0,
            flags: &["header_folding", "strict"],
            error: Some("Invalid part header (folding error)"),
        },
        Case {
            what: "header line too long",
            content_type: OK_CT,
            body: body_of(vec![
                "--XyZ".into(),
                format!("X-Long: {}", "a".repeat(5000)),
                "--XyZ--".into(),
            ]),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Part header line over 4096 bytes long"),
        },
        Case {
            what: "nul byte in part header",
            content_type: OK_CT,
            body: headers_only(&["Content-Disposition: form-data; name=a", "X-A: b\0"]),
            args: &[("a", "")],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Nul byte in part headers."),
        },
        Case {
            what: "a later error replaces an earlier one, as in ModSecurity",
            content_type: OK_CT,
            body: one_field("name=a; size=3", "1"),
            args: &[],
            files: 0,
            flags: &["invalid_part", "strict"],
            error: Some("Final boundary missing."),
        },
        // Content-Type problems.
        Case {
            what: "not multipart",
            content_type: "application/x-www-form-urlencoded",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid MIME type"),
        },
        Case {
            what: "no boundary",
            content_type: "multipart/form-data",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Boundary not found in C-T"),
        },
        Case {
            what: "capitalised boundary parameter",
            content_type: "multipart/form-data; Boundary=XyZ",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary in C-T (case sensitivity)"),
        },
        Case {
            what: "two boundary parameters",
            content_type: "multipart/form-data; boundary=XyZ; boundary=abc",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Multiple boundary parameters in C-T"),
        },
        Case {
            what: "half-quoted boundary",
            content_type: "multipart/form-data; boundary=\"XyZ",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary in C-T (quote)"),
        },
        Case {
            what: "invalid boundary characters",
            content_type: "multipart/form-data; boundary=X{Z",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary in C-T (characters)"),
        },
        Case {
            what: "empty boundary",
            content_type: "multipart/form-data; boundary=",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary in C-T (empty)"),
        },
        Case {
            what: "extra parameter before boundary",
            content_type: "multipart/form-data; charset=utf-8; boundary=XyZ",
            body: ok.clone(),
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Invalid boundary in C-T (malformed)"),
        },
        Case {
            what: "empty content type",
            content_type: "",
            body: ok,
            args: &[],
            files: 0,
            flags: &["parse_error", "strict"],
            error: Some("Content-Type header not available"),
        },
    ]
}

#[test]
fn flag_and_error_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let m = mp(case.content_type.as_bytes(), &case.body);
        let ok = m.args == pairs(case.args)
            && m.files.len() == case.files
            && set_flags(&m) == case.flags
            && match (case.error, &m.error) {
                (None, None) => true,
                (Some(want), Some(got)) => got.starts_with("Multipart: ") && got.contains(want),
                _ => false,
            };
        if !ok {
            failures.push(format!(
                "{}: args {:?} files {} flags {:?} error {:?}",
                case.what,
                m.args
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>(),
                m.files.len(),
                set_flags(&m),
                m.error
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn empty_body_is_not_an_error() {
    let m = mp(CT, "");
    assert_eq!(m, Multipart::default());
}

#[test]
fn folded_header_is_recorded_joined() {
    let body = crlf(&[
        "--XyZ",
        "Content-Disposition: form-data;",
        "\tname=\"a\"",
        "Content-Type:text/plain",
        "",
        "1",
        "--XyZ--",
    ]);
    let m = mp(CT, &body);
    assert_eq!(
        m.part_headers,
        pairs(&[
            ("a", "Content-Disposition: form-data; name=\"a\""),
            ("a", "Content-Type:text/plain"),
        ])
    );
}

#[test]
fn file_sizes_count_inner_line_breaks_only() {
    let body = crlf(&[
        "--XyZ",
        "Content-Disposition: form-data; name=\"f\"; filename=\"a\"",
        "",
        "ab",
        "",
        "cd",
        "--XyZ--",
    ]);
    let m = mp(CT, &body);
    assert_eq!(m.files[0].size, "ab\r\n\r\ncd".len());
}

#[test]
fn long_data_lines_are_kept_whole() {
    let value = "v".repeat(10_000);
    let body = one_field("name=a", &value);
    let m = mp(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.args, vec![(b"a".to_vec(), value.into_bytes())]);
}

#[test]
fn cr_at_the_buffer_edge() {
    // A CR that would land in the last byte of the 4096-byte buffer is held back.
    let value = format!("{}\r\nz", "v".repeat(4095));
    let body = one_field("name=a", &value);
    let m = mp(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.args, vec![(b"a".to_vec(), value.into_bytes())]);
}

#[test]
fn args_limit() {
    let mut lines = Vec::new();
    for i in 0..3 {
        lines.extend(simple_part(&format!("name=n{i}"), "v"));
    }
    lines.push("--XyZ--".into());
    let limits = BodyLimits {
        max_depth: 10,
        max_args: 2,
    };
    let m = parse(CT, body_of(lines).as_bytes(), &limits);
    assert_eq!(m.args.len(), 2);
    assert!(m
        .error
        .as_deref()
        .is_some_and(|e| e.contains("Too many arguments")));
}

#[test]
fn duplicate_field_names_are_all_kept() {
    let mut lines = simple_part("name=\"u\"", "1");
    lines.extend(simple_part("name=\"u\"", "2"));
    lines.push("--XyZ--".into());
    let m = mp(CT, &body_of(lines));
    assert_eq!(m.args, pairs(&[("u", "1"), ("u", "2")]));
}

// Bodies shaped like the ones the CRS regression tests send (written with `data: |`
// in YAML, so lines end with LF only).

#[test]
fn lf_only_body_with_part_content_type() {
    let body = concat!(
        "------WebKitFormBoundary\n",
        "Content-Disposition: form-data; name=\"username\"\n",
        "Content-Type: text/plain; charset=utf-7\n",
        "\n",
        "+ADw-script+AD4-\n",
        "------WebKitFormBoundary\n",
        "Content-Disposition: form-data; name=\"_charset_\"\n",
        "\n",
        "utf-8\n",
        "------WebKitFormBoundary--\n",
    );
    let m = mp(
        b"multipart/form-data; boundary=----WebKitFormBoundary",
        body,
    );
    assert_eq!(m.error, None);
    assert_eq!(
        m.args,
        pairs(&[("username", "+ADw-script+AD4-"), ("_charset_", "utf-8")])
    );
    assert_eq!(
        m.part_headers,
        pairs(&[
            (
                "username",
                "Content-Disposition: form-data; name=\"username\""
            ),
            ("username", "Content-Type: text/plain; charset=utf-7"),
            (
                "_charset_",
                "Content-Disposition: form-data; name=\"_charset_\""
            ),
        ])
    );
    assert_eq!(set_flags(&m), ["lf_line", "strict"]);
}

#[test]
fn lf_only_file_upload() {
    let body = concat!(
        "----------397236876\n",
        "Content-Disposition: form-data; name=\"fileRap\"; filename=\"file=.txt\"\n",
        "Content-Type: text/plain\n",
        "\n",
        "555-555-0199@example.com\n",
        "----------397236876--\n",
    );
    let m = mp(b"multipart/form-data; boundary=--------397236876", body);
    assert_eq!(m.error, None);
    assert!(m.args.is_empty());
    assert_eq!(
        m.files,
        vec![FilePart {
            name: b"fileRap".to_vec(),
            filename: b"file=.txt".to_vec(),
            size: "555-555-0199@example.com".len(),
        }]
    );
}

#[test]
fn control_character_in_part_header_name() {
    let body = concat!(
        "--boundary\r\n",
        "\x0eContent-Disposition: form-data; name=\"file\"; filename=\"1.php\"\r\n",
        "Content-Disposition: form-data; name=\"post\"\r\n",
        "\r\n",
        "<?php system('id'); ?>\r\n",
        "--boundary--",
    );
    let m = mp(b"multipart/form-data; boundary=boundary", body);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Invalid part header (contains invalid character).")
    );
    assert_eq!(m.args, pairs(&[("post", "<?php system('id'); ?>")]));
    assert!(m.files.is_empty());
    assert_eq!(
        m.part_headers,
        pairs(&[("post", "Content-Disposition: form-data; name=\"post\"")])
    );
}

#[test]
fn strict_error_folds_exactly_modsecurity_flags() {
    use palisade_waf::body::multipart::MultipartFlags;
    let folded: &[fn(&mut MultipartFlags)] = &[
        |f| f.parse_error = true,
        |f| f.boundary_quoted = true,
        |f| f.boundary_whitespace = true,
        |f| f.data_before = true,
        |f| f.data_after = true,
        |f| f.header_folding = true,
        |f| f.lf_line = true,
        |f| f.missing_semicolon = true,
        |f| f.invalid_quoting = true,
        |f| f.invalid_part = true,
        |f| f.invalid_header_folding = true,
        |f| f.file_limit_exceeded = true,
    ];
    for set in folded {
        let mut flags = MultipartFlags::default();
        set(&mut flags);
        assert!(flags.strict_error(), "{flags:?}");
    }
    let not_folded = MultipartFlags {
        unmatched_boundary: true,
        unmatched_boundary_value: 1,
        crlf_lf_lines: true,
        ..MultipartFlags::default()
    };
    assert!(!not_folded.strict_error());
    assert!(!MultipartFlags::default().strict_error());
}
