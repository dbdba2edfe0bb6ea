//! The backend behind the WAF during a CRS run: an in-process stand-in for
//! go-ftw's "albedo" server (github.com/coreruleset/albedo).
//!
//! Albedo answers `POST /reflect` (and `POST /reflect/…`) with the response
//! described by the JSON body `{"status": N, "headers": {…}, "body": "…",
//! "encodedBody": "<base64>"}` (keys matched case-insensitively, as Go's
//! `encoding/json` does; unknown keys ignored). A body that is not such JSON
//! gets `400 Invalid JSON in request body`; a status outside 100-599 (other
//! than 0, meaning 200) gets `400 Invalid status code: N`. Every other request
//! gets an empty `200`. Like Go's `net/http`, a non-empty body without a
//! `Content-Type` gets one sniffed from its first bytes, header names are
//! canonicalised (`content-type` → `Content-Type`), and `Content-Length` is
//! set. The `Date` header Go adds is left out so runs are reproducible.

use base64::Engine as _;
use serde_json::Value;

use super::server::ParsedRequest;
use crate::request::HttpResponse;

/// The response albedo would send for `req`.
pub fn respond(req: &ParsedRequest) -> HttpResponse {
    let path = req.path();
    if req.method == "POST" && (path == "/reflect" || path.starts_with("/reflect/")) {
        reflect(&req.body)
    } else {
        finish(200, Vec::new(), Vec::new())
    }
}

fn error(status: u16, message: &str) -> HttpResponse {
    finish(status, Vec::new(), message.as_bytes().to_vec())
}

fn reflect(body: &[u8]) -> HttpResponse {
    let Ok(Value::Object(spec)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "Invalid JSON in request body");
    };
    let field = |name: &str| {
        spec.get(name).or_else(|| {
            spec.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    };
    let status = match field("status") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) => n,
            None => return error(400, "Invalid JSON in request body"),
        },
        Some(_) => return error(400, "Invalid JSON in request body"),
    };
    let mut headers = Vec::new();
    match field("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let Value::String(value) = value else {
                    return error(400, "Invalid JSON in request body");
                };
                headers.push((canonical_header_name(name), value.clone()));
            }
        }
        Some(_) => return error(400, "Invalid JSON in request body"),
    }
    let text = |name: &str| match field(name) {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => None,
    };
    let (Some(plain), Some(encoded)) = (text("body"), text("encodedBody")) else {
        return error(400, "Invalid JSON in request body");
    };
    if (status > 0 && status < 100) || status >= 600 {
        return error(400, &format!("Invalid status code: {status}"));
    }
    let status = match u16::try_from(status) {
        Ok(0) | Err(_) => 200,
        Ok(s) => s,
    };
    let body = if !plain.is_empty() {
        plain.into_bytes()
    } else if encoded.is_empty() {
        Vec::new()
    } else {
        let cleaned: String = encoded
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        match base64::engine::general_purpose::STANDARD.decode(cleaned) {
            Ok(bytes) => bytes,
            // Albedo has already sent the status line by then; only the body says so.
            Err(_) => b"invalid base64 encoding of response body".to_vec(),
        }
    };
    finish(status, headers, body)
}

fn finish(status: u16, mut headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
    headers.sort();
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !body.is_empty() && !has(&headers, "Content-Type") {
        headers.push((
            "Content-Type".to_string(),
            sniff_content_type(&body).to_string(),
        ));
    }
    if !has(&headers, "Content-Length") {
        headers.push(("Content-Length".to_string(), body.len().to_string()));
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: names made of token characters
/// get each dash-separated word capitalised; other names stay as they are.
pub fn canonical_header_name(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The part of Go's `http.DetectContentType` that matters for textual
/// bodies: HTML and XML signatures, byte-order marks, a few binary magic
/// numbers, then `text/plain` unless the first 512 bytes hold binary bytes.
pub fn sniff_content_type(body: &[u8]) -> &'static str {
    let data = &body[..body.len().min(512)];
    let html_tags: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    let trimmed = {
        let start = data
            .iter()
            .position(|b| !b"\t\n\x0c\r ".contains(b))
            .unwrap_or(data.len());
        &data[start..]
    };
    for tag in html_tags {
        if trimmed.len() > tag.len()
            && trimmed[..tag.len()].eq_ignore_ascii_case(tag)
            && (trimmed[tag.len()] == b' ' || trimmed[tag.len()] == b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    let magic: [(&[u8], &str); 7] = [
        (b"%PDF-", "application/pdf"),
        (b"%!PS-Adobe-", "application/postscript"),
        (b"\xFE\xFF", "text/plain; charset=utf-16be"),
        (b"\xFF\xFE", "text/plain; charset=utf-16le"),
        (b"\xEF\xBB\xBF", "text/plain; charset=utf-8"),
        (b"\x1F\x8B\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
    ];
    for (prefix, kind) in magic {
        if data.starts_with(prefix) {
            return kind;
        }
    }
    let binary = |b: &u8| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    if data.iter().any(binary) {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// The status line's reason phrase for common codes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The response as text on the wire (what `response_contains` is matched against).
pub fn render_response(resp: &HttpResponse) -> String {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        reason_phrase(resp.status)
    );
    for (name, value) in &resp.headers {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(&String::from_utf8_lossy(&resp.body));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, body: &str) -> ParsedRequest {
        ParsedRequest {
            method: "POST".into(),
            uri: path.into(),
            protocol: "HTTP/1.1".into(),
            body: body.as_bytes().to_vec(),
            ..ParsedRequest::default()
        }
    }

    fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
        resp.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn default_is_empty_200() {
        let mut req = post("/get", "");
        req.method = "GET".into();
        let resp = respond(&req);
        assert_eq!(resp.status, 200);
        assert!(resp.body.is_empty());
        assert_eq!(header(&resp, "Content-Length"), Some("0"));
        assert_eq!(header(&resp, "Content-Type"), None);
        let mut get_reflect = post("/reflect", r#"{"status":500}"#);
        get_reflect.method = "GET".into();
        assert_eq!(respond(&get_reflect).status, 200, "only POST reflects");
    }

    #[test]
    fn reflect_forms() {
        let resp = respond(&post("/reflect?x=1", r#"{"body":"<?php echo 1; ?>"}"#));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"<?php echo 1; ?>");
        assert_eq!(
            header(&resp, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(header(&resp, "Content-Length"), Some("16"));

        let resp = respond(&post(
            "/reflect/x",
            r#"{"Status":302,"headers":{"location":"/a","content-type":"text/html"},"EncodedBody":"PGI+"}"#,
        ));
        assert_eq!(resp.status, 302);
        assert_eq!(resp.body, b"<b>");
        assert_eq!(header(&resp, "Location"), Some("/a"));
        assert_eq!(header(&resp, "Content-Type"), Some("text/html"));

        let resp = respond(&post("/reflect", r#"{"fileuploaderror":"x"}"#));
        assert_eq!((resp.status, resp.body.len()), (200, 0));
    }

    #[test]
    fn reflect_errors() {
        let cases = [
            ("not json", 400, "Invalid JSON in request body"),
            (r#"{"status":"x"}"#, 400, "Invalid JSON in request body"),
            (
                r#"{"headers":{"a":1}}"#,
                400,
                "Invalid JSON in request body",
            ),
            (r#"{"status":99}"#, 400, "Invalid status code: 99"),
            (r#"{"status":600}"#, 400, "Invalid status code: 600"),
            (
                r#"{"status":201,"encodedBody":"@@"}"#,
                201,
                "invalid base64 encoding of response body",
            ),
        ];
        for (body, status, text) in cases {
            let resp = respond(&post("/reflect", body));
            assert_eq!(resp.status, status, "{body}");
            assert_eq!(String::from_utf8_lossy(&resp.body), text, "{body}");
        }
    }

    #[test]
    fn sniffing() {
        let cases: [(&[u8], &str); 7] = [
            (b"  <html><body>", "text/html; charset=utf-8"),
            (b"<TITLE>x", "text/html; charset=utf-8"),
            (b"<?xml version='1.0'?>", "text/xml; charset=utf-8"),
            (b"<?php", "text/plain; charset=utf-8"),
            (b"plain \xc3\xa9", "text/plain; charset=utf-8"),
            (b"a\x00b", "application/octet-stream"),
            (b"%PDF-1.4", "application/pdf"),
        ];
        for (body, want) in cases {
            assert_eq!(sniff_content_type(body), want, "{body:?}");
        }
    }

    #[test]
    fn canonical_names() {
        for (name, want) in [
            ("content-type", "Content-Type"),
            ("X-FOO-bar", "X-Foo-Bar"),
            ("x_y", "X_y"),
            ("bad name", "bad name"),
        ] {
            assert_eq!(canonical_header_name(name), want);
        }
    }

    #[test]
    fn rendering() {
        let resp = HttpResponse {
            status: 403,
            headers: vec![("A".into(), "b".into())],
            body: b"no".to_vec(),
        };
        assert_eq!(
            render_response(&resp),
            "HTTP/1.1 403 Forbidden\r\nA: b\r\n\r\nno"
        );
    }
}
