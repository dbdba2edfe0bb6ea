//! The bytes go-ftw puts on the wire for a stage's input.
//!
//! This reproduces go-ftw's `BuildRequest` so that the in-process run sees the
//! same request a real go-ftw run sends:
//!
//! - `encoded_request` is decoded (base64; line breaks inside are ignored, as
//!   Go's decoder does) and used verbatim.
//! - Otherwise the request line is `METHOD URI VERSION\r\n` exactly as given,
//!   then the headers in order as `Name: value\r\n`, a blank line and the body.
//! - The body is `data` run through the template subset of
//!   [`super::template`] subset, or `encoded_data` decoded.
//! - With `autocomplete_headers` (the default) and a non-empty body: a
//!   missing `Content-Type` becomes `application/x-www-form-urlencoded`, and
//!   when the content type is exactly that, a body with no `%` and no `+` in
//!   it is URL-encoded pair by pair (`key=value` around `&`, as Go's
//!   `url.QueryEscape`; a trailing `&` is dropped).
//! - Whatever `autocomplete_headers` says, when a `Content-Type` value
//!   contains `multipart/form-data;` every `\n` of the body becomes `\r\n`.
//! - With `autocomplete_headers`: `Connection: close` is added unless a
//!   `Connection` header exists, and `Content-Length` unless one exists, when
//!   the body is non-empty or the method matches go-ftw's
//!   `^POST|PUT|PATCH|DELETE$` (which, unanchored as Go reads it, means
//!   "starts with POST, contains PUT or PATCH, or ends with DELETE").

use base64::Engine as _;

use super::schema::Input;
use super::template::{self, TemplateError};

/// Why a stage's request could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// `encoded_request` or `encoded_data` is not base64.
    #[error("invalid base64 in {field}: {message}")]
    Base64 {
        /// Which field.
        field: &'static str,
        /// The decoder's complaint.
        message: String,
    },
    /// `data` and `encoded_request` are both set (go-ftw refuses this too).
    #[error("'data' and 'encoded_request' must not be set together")]
    DataAndEncodedRequest,
    /// `data` is a template this harness cannot expand.
    #[error("data template: {0}")]
    Template(#[from] TemplateError),
}

const FORM_URLENCODED: &str = "application/x-www-form-urlencoded";

/// Builds the raw request bytes for `input`.
pub fn build_request(input: &Input) -> Result<Vec<u8>, BuildError> {
    if let Some(encoded) = &input.encoded_request {
        if input.data.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(BuildError::DataAndEncodedRequest);
        }
        return decode_base64("encoded_request", encoded);
    }
    let mut headers = input.headers.clone();
    let mut data = body_data(input)?;

    if !data.is_empty() && input.autocomplete_headers {
        if !has_header(&headers, "Content-Type") {
            headers.push(("Content-Type".to_string(), FORM_URLENCODED.to_string()));
        }
        let is_form = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("Content-Type") && v.eq_ignore_ascii_case(FORM_URLENCODED)
        });
        if is_form && !data.contains(&b'%') && !data.contains(&b'+') {
            data = encode_form(&data);
        }
    }
    let multipart = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Content-Type")
            && v.to_ascii_lowercase().contains("multipart/form-data;")
    });
    if multipart {
        data = lf_to_crlf(&data);
    }
    if input.autocomplete_headers {
        if !has_header(&headers, "Connection") {
            headers.push(("Connection".to_string(), "close".to_string()));
        }
        if !has_header(&headers, "Content-Length")
            && (!data.is_empty() || method_takes_body(&input.method))
        {
            headers.push(("Content-Length".to_string(), data.len().to_string()));
        }
    }

    let mut raw = Vec::with_capacity(64 + data.len());
    raw.extend_from_slice(input.method.as_bytes());
    raw.push(b' ');
    raw.extend_from_slice(input.uri.as_bytes());
    raw.push(b' ');
    raw.extend_from_slice(input.version.as_bytes());
    raw.extend_from_slice(b"\r\n");
    for (name, value) in &headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&data);
    Ok(raw)
}

/// The body go-ftw sends: `data` (a template) or `encoded_data`.
fn body_data(input: &Input) -> Result<Vec<u8>, BuildError> {
    if let Some(data) = &input.data {
        if data.contains("{{") {
            return Ok(template::expand(data)?.into_bytes());
        }
        return Ok(data.as_bytes().to_vec());
    }
    if let Some(encoded) = &input.encoded_data {
        return decode_base64("encoded_data", encoded);
    }
    Ok(Vec::new())
}

fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, BuildError> {
    let cleaned: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .map_err(|e| BuildError::Base64 {
            field,
            message: e.to_string(),
        })
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// go-ftw's `^POST|PUT|PATCH|DELETE$`, read the way Go's regexp reads it.
fn method_takes_body(method: &str) -> bool {
    method.starts_with("POST")
        || method.contains("PUT")
        || method.contains("PATCH")
        || method.ends_with("DELETE")
}

/// go-ftw's `encodeDataParameters` for bodies that are not yet escaped.
fn encode_form(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 2);
    let mut rest = data;
    while !rest.is_empty() {
        let (token, next) = match rest.iter().position(|&b| b == b'&') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        match token.iter().position(|&b| b == b'=') {
            Some(eq) => {
                query_escape(&token[..eq], &mut out);
                out.push(b'=');
                query_escape(&token[eq + 1..], &mut out);
            }
            None => query_escape(token, &mut out),
        }
        out.push(b'&');
        rest = next;
    }
    out.pop();
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => {
                out.push(b'%');
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
}

/// Every `\n` becomes `\r\n` (an existing `\r\n` becomes `\r\r\n`, as in go-ftw).
fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    for &b in data {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(method: &str, headers: &[(&str, &str)], data: Option<&str>) -> Input {
        Input {
            method: method.into(),
            uri: "/p".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            data: data.map(str::to_string),
            ..Input::default()
        }
    }

    fn text(raw: &[u8]) -> String {
        String::from_utf8_lossy(raw).into_owned()
    }

    #[test]
    fn get_gets_connection_close_only() {
        let raw = build_request(&input("GET", &[("Host", "h")], None)).expect("build");
        assert_eq!(
            text(&raw),
            "GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn post_without_body_gets_zero_length() {
        let raw = build_request(&input("POST", &[], None)).expect("build");
        assert_eq!(
            text(&raw),
            "POST /p HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn form_data_is_typed_and_encoded() {
        let raw = build_request(&input("POST", &[], Some("a=b c&d=<x>&flag&"))).expect("build");
        assert_eq!(
            text(&raw),
            "POST /p HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: 20\r\n\r\na=b+c&d=%3Cx%3E&flag"
        );
    }

    #[test]
    fn escaped_or_plus_data_is_left_alone() {
        for data in ["a=%27x", "a=b+c", "a=%zz"] {
            let raw = build_request(&input("POST", &[], Some(data))).expect("build");
            assert!(text(&raw).ends_with(&format!("\r\n\r\n{data}")), "{data}");
        }
    }

    #[test]
    fn other_content_types_are_not_encoded() {
        let headers = [("Content-Type", "application/json")];
        let raw = build_request(&input("POST", &headers, Some("{\"a\": 1}"))).expect("build");
        assert!(text(&raw).ends_with("Content-Length: 8\r\n\r\n{\"a\": 1}"));
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let raw = build_request(&input("POST", &headers, Some("a=b c"))).expect("build");
        assert!(text(&raw).ends_with("\r\n\r\na=b c"));
    }

    #[test]
    fn no_autocomplete_sends_exactly_what_is_given() {
        let mut i = input("POST", &[("Content-Length", "3")], Some("a b"));
        i.autocomplete_headers = false;
        let raw = build_request(&i).expect("build");
        assert_eq!(
            text(&raw),
            "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\na b"
        );
    }

    #[test]
    fn multipart_gets_crlf_even_without_autocomplete() {
        let mut i = input(
            "POST",
            &[("Content-Type", "multipart/form-data; boundary=x")],
            Some("--x\nA\r\n--x--\n"),
        );
        i.autocomplete_headers = false;
        let raw = build_request(&i).expect("build");
        assert!(text(&raw).ends_with("\r\n\r\n--x\r\nA\r\r\n--x--\r\n"));
    }

    #[test]
    fn existing_headers_are_kept_case_insensitively() {
        let headers = [("connection", "keep-alive"), ("content-length", "99")];
        let raw = build_request(&input("POST", &headers, Some("x"))).expect("build");
        assert_eq!(
            text(&raw),
            "POST /p HTTP/1.1\r\nconnection: keep-alive\r\ncontent-length: 99\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nx"
        );
    }

    #[test]
    fn method_body_regex_quirks() {
        for (method, takes) in [
            ("POST", true),
            ("POSTX", true),
            ("XPUTX", true),
            ("PATCH", true),
            ("XDELETE", true),
            ("DELETEX", false),
            ("GET", false),
            ("OPTIONS", false),
        ] {
            assert_eq!(method_takes_body(method), takes, "{method}");
        }
    }

    #[test]
    fn encoded_request_and_data() {
        let mut i = Input {
            encoded_request: Some("R0VU\nIC8=".into()),
            ..Input::default()
        };
        assert_eq!(build_request(&i).expect("decode"), b"GET /");
        i.data = Some("x".into());
        assert_eq!(build_request(&i), Err(BuildError::DataAndEncodedRequest));
        let bad = Input {
            encoded_request: Some("@@".into()),
            ..Input::default()
        };
        assert!(matches!(
            build_request(&bad),
            Err(BuildError::Base64 { .. })
        ));
        let mut enc = input("POST", &[("Content-Type", "text/plain")], None);
        enc.encoded_data = Some("AAE=".into());
        assert!(build_request(&enc)
            .expect("build")
            .ends_with(b"\r\n\r\n\x00\x01"));
    }

    #[test]
    fn data_templates_expand() {
        let headers = [("Content-Type", "text/plain")];
        let raw =
            build_request(&input("POST", &headers, Some("{{ \"ab\" | repeat 3 }}"))).expect("b");
        assert!(text(&raw).ends_with("Content-Length: 6\r\n\r\nababab"));
        let err = build_request(&input("POST", &headers, Some("{{ .X }}"))).expect_err("bad");
        assert!(matches!(err, BuildError::Template(_)));
    }
}
