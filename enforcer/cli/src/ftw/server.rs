//! The web server in front of the engine, as far as the CRS suite can tell:
//! raw request bytes in, either the request the WAF sees or the server's own
//! rejection out.
//!
//! The CRS regression suite is written against Apache httpd 2.4 with
//! ModSecurity v2 (`HttpProtocolOptions Strict`, the default), and a few tests
//! expect the server, not the WAF, to answer 400. In production Palisade sits
//! behind Envoy, which rejects the same malformed requests before ext_authz.
//! This model does what both do for the cases the suite covers:
//!
//! - Request line: leading blank lines are skipped; `METHOD SP TARGET SP
//!   VERSION`. The method must be a non-empty token (so `"\tGET"` or
//!   `"     GET"` is a 400). A line with no version (`GET /` or `GET / `) is
//!   an HTTP/0.9 request: no headers are read, the WAF sees protocol
//!   `HTTP/0.9`, and the answer has no status line, which go-ftw reports as
//!   an error. Otherwise the version must be `HTTP/<d>` or `HTTP/<d>.<d>`
//!   with a major version of at least 1 (so `HTTP/0.9` spelled out,
//!   `HTTP\1.0`, `1.1`, `TEST` are 400) and nothing may follow it (a target
//!   containing spaces is a 400).
//! - Target: control characters and a raw `#` fragment are 400; it must be
//!   origin-form (`/…`), `*`, absolute-form (`scheme://…`), or for CONNECT
//!   authority-form with a numeric port.
//! - Header lines: `name: value` with a token name and no control characters
//!   in the value besides tab (a bare CR is a 400); obsolete line folding is
//!   a 400. Fields with the same name (case-insensitive) are merged into the
//!   first with `", "`, as httpd does (Envoy's ext_authz joins them too).
//! - `Host`: required and non-empty for HTTP/1.1; when non-empty it must be
//!   a host name (letters, digits, `-`, `.`, `_`), an IPv4 address or a
//!   bracketed IPv6 address, optionally with a numeric port.
//! - Body framing: `Transfer-Encoding` ending in `chunked` is decoded and any
//!   `Content-Length` dropped (httpd does this); another transfer coding is a
//!   501; `Content-Length` must be digits, the body is cut at that length,
//!   and a body shorter than it means the server would wait for the rest (an
//!   error for the client); no framing means no body.

/// What the server makes of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerOutcome {
    /// The request reaches the WAF.
    Accepted(ParsedRequest),
    /// The server answers by itself; the WAF never sees the request.
    Rejected {
        /// Status the server sends.
        status: u16,
        /// Why (for failure reports).
        reason: String,
    },
    /// The exchange breaks at the HTTP level (the client sees an error).
    Broken(String),
}

/// A request the server accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedRequest {
    /// Method.
    pub method: String,
    /// Request target as sent.
    pub uri: String,
    /// Protocol (`HTTP/1.1`; `HTTP/0.9` for a request line without one).
    pub protocol: String,
    /// Headers after merging duplicates, in first-arrival order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Body after transfer decoding.
    pub body: Vec<u8>,
    /// An HTTP/0.9 request (its answer has no status line).
    pub http09: bool,
}

impl ParsedRequest {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    /// The path of the target, without query (absolute-form reduced to its path).
    pub fn path(&self) -> &str {
        let mut target = self.uri.as_str();
        if let Some(pos) = target.find("://") {
            let after = &target[pos + 3..];
            target = after.find('/').map_or("/", |i| &after[i..]);
        }
        target.split('?').next().unwrap_or(target)
    }
}

fn reject(status: u16, reason: impl Into<String>) -> ServerOutcome {
    ServerOutcome::Rejected {
        status,
        reason: reason.into(),
    }
}

/// Whether `b` is an RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits off one line (without its `\n` and one trailing `\r`).
fn next_line(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = input.iter().position(|&b| b == b'\n')?;
    let line = &input[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, &input[end + 1..]))
}

/// Runs the server model over raw request bytes.
pub fn receive(raw: &[u8]) -> ServerOutcome {
    let mut rest = raw;
    let request_line = loop {
        match next_line(rest) {
            Some(([], after)) => rest = after,
            Some((line, after)) => {
                rest = after;
                break line;
            }
            None => return ServerOutcome::Broken("request line not terminated".into()),
        }
    };
    // The engine takes the request line as text; bytes that are not UTF-8
    // (never in the CRS suite) are replaced rather than refused.
    let request_line = String::from_utf8_lossy(request_line);
    let Some((method, after_method)) = request_line.split_once(' ') else {
        return reject(400, "request line has no target");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return reject(400, format!("invalid method {method:?}"));
    }
    let (uri, version) = match after_method.split_once(' ') {
        Some((uri, version)) => (uri, version),
        None => (after_method, ""),
    };
    if let Err(reason) = check_target(method, uri) {
        return reject(400, reason);
    }
    if version.is_empty() {
        return ServerOutcome::Accepted(ParsedRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            protocol: "HTTP/0.9".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            http09: true,
        });
    }
    let Some(minor_one_or_more) = check_version(version) else {
        return reject(400, format!("invalid protocol {version:?}"));
    };

    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let Some((line, after)) = next_line(rest) else {
            return ServerOutcome::Broken("request head not terminated".into());
        };
        rest = after;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return reject(400, "obsolete header line folding");
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return reject(400, "header line without colon");
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return reject(
                400,
                format!("invalid header name {:?}", String::from_utf8_lossy(name)),
            );
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return reject(
                400,
                format!(
                    "control character in header {}",
                    String::from_utf8_lossy(name)
                ),
            );
        }
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, existing)) => {
                existing.extend_from_slice(b", ");
                existing.extend_from_slice(value);
            }
            None => headers.push((name.to_vec(), value.to_vec())),
        }
    }

    let find = |headers: &[(Vec<u8>, Vec<u8>)], name: &str| {
        headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    };
    match find(&headers, "Host").map(|i| headers[i].1.as_slice()) {
        None | Some(b"") if minor_one_or_more => {
            return reject(400, "HTTP/1.1 request without a host name")
        }
        Some(host) if !host.is_empty() && !valid_host(host) => {
            return reject(
                400,
                format!("invalid Host {:?}", String::from_utf8_lossy(host)),
            )
        }
        _ => {}
    }

    let body = if let Some(te) = find(&headers, "Transfer-Encoding") {
        let coding = headers[te].1.to_ascii_lowercase();
        let last = coding
            .rsplit(|&b| b == b',')
            .next()
            .map(trim_ows)
            .unwrap_or_default();
        if last != b"chunked" {
            return reject(501, "unsupported transfer coding");
        }
        if let Some(cl) = find(&headers, "Content-Length") {
            headers.remove(cl);
        }
        match dechunk(rest) {
            Ok(body) => body,
            Err(Dechunk::Incomplete) => {
                return ServerOutcome::Broken("chunked body not terminated".into())
            }
            Err(Dechunk::Invalid) => return reject(400, "invalid chunked body"),
        }
    } else if let Some(cl) = find(&headers, "Content-Length") {
        let value = &headers[cl].1;
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return reject(
                400,
                format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value)
                ),
            );
        }
        let Some(length) = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return reject(413, "Content-Length too large");
        };
        if rest.len() < length {
            return ServerOutcome::Broken(format!(
                "body has {} of {length} announced bytes; the server would wait for the rest",
                rest.len()
            ));
        }
        rest[..length].to_vec()
    } else {
        Vec::new()
    };

    ServerOutcome::Accepted(ParsedRequest {
        method: method.to_string(),
        uri: uri.to_string(),
        protocol: version.to_string(),
        headers,
        body,
        http09: false,
    })
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Checks the request target; `Err` carries the reason for a 400.
fn check_target(method: &str, uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("empty request target".into());
    }
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("control character in request target".into());
    }
    if uri.contains('#') {
        return Err("fragment in request target".into());
    }
    if method == "CONNECT" {
        let port = uri.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
        let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        return if numeric {
            Ok(())
        } else {
            Err("CONNECT target without a port".into())
        };
    }
    if uri.starts_with('/') || uri == "*" || is_absolute(uri) {
        return Ok(());
    }
    Err(format!("invalid request target {uri:?}"))
}

fn is_absolute(uri: &str) -> bool {
    let Some((scheme, _)) = uri.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// `Some(true)` for HTTP/1.1 and later, `Some(false)` for HTTP/1.0, `None`
/// when the version is not acceptable.
fn check_version(version: &str) -> Option<bool> {
    let number = version.strip_prefix("HTTP/")?;
    let (major, minor) = match number.split_once('.') {
        Some((major, minor)) => (major, Some(minor)),
        None => (number, None),
    };
    let single_digit = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_digit());
    if !single_digit(major) || !minor.is_none_or(single_digit) {
        return None;
    }
    let major: u8 = major.parse().ok()?;
    let minor: u8 = minor.map_or(Some(0), |m| m.parse().ok())?;
    if major == 0 {
        return None;
    }
    Some(major > 1 || minor >= 1)
}

fn valid_host(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        let Some(close) = host.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &host[1..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (&host[..=close], &host[close + 1..])
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, &[][..]),
        }
    };
    let name_ok = name.first() == Some(&b'[')
        || (!name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    let port_ok = port.is_empty()
        || (port[0] == b':' && port.len() > 1 && port[1..].iter().all(u8::is_ascii_digit));
    name_ok && port_ok
}

enum Dechunk {
    Incomplete,
    Invalid,
}

fn dechunk(mut input: &[u8]) -> Result<Vec<u8>, Dechunk> {
    let mut body = Vec::new();
    loop {
        let (line, after) = next_line(input).ok_or(Dechunk::Incomplete)?;
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .map(trim_ows)
            .unwrap_or_default();
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(Dechunk::Invalid);
        }
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or(Dechunk::Invalid)?;
        input = after;
        if size == 0 {
            // Trailer fields up to the blank line; they are not passed on.
            loop {
                let (line, after) = next_line(input).ok_or(Dechunk::Incomplete)?;
                input = after;
                if line.is_empty() {
                    return Ok(body);
                }
            }
        }
        if input.len() < size {
            return Err(Dechunk::Incomplete);
        }
        body.extend_from_slice(&input[..size]);
        input = &input[size..];
        input = if let Some(r) = input.strip_prefix(b"\r\n") {
            r
        } else if let Some(r) = input.strip_prefix(b"\n") {
            r
        } else if input.is_empty() {
            return Err(Dechunk::Incomplete);
        } else {
            return Err(Dechunk::Invalid);
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(raw: &str) -> ParsedRequest {
        match receive(raw.as_bytes()) {
            ServerOutcome::Accepted(req) => req,
            other => panic!("{raw:?} not accepted: {other:?}"),
        }
    }

    fn status(raw: &str) -> Option<u16> {
        match receive(raw.as_bytes()) {
            ServerOutcome::Rejected { status, .. } => Some(status),
            _ => None,
        }
    }

    const H: &str = "Host: localhost\r\n";

    #[test]
    fn plain_request() {
        let req = accepted("GET /a?b=c HTTP/1.1\r\nHost: localhost\r\nX-A:  1 \r\n\r\n");
        assert_eq!(req.method, "GET");
        assert_eq!(req.uri, "/a?b=c");
        assert_eq!(req.protocol, "HTTP/1.1");
        assert_eq!(req.header("x-a"), Some(&b"1"[..]));
        assert_eq!(req.path(), "/a");
        assert!(req.body.is_empty());
    }

    #[test]
    fn rejections_match_the_crs_suite() {
        let cases = [
            format!("     GET /get HTTP/1.1\r\n{H}\r\n"),
            format!("\tGET /get HTTP/1.1\r\n{H}\r\n"),
            format!("CONNECT www.coreruleset.org HTTP/1.1\r\n{H}\r\n"),
            format!("GET /get/index.html:80?I=Like#tag HTTP/1.1\r\n{H}\r\n"),
            format!("GET \\ HTTP/1.1\r\n{H}\r\n"),
            format!("GET \\index.html HTTP\\1.0\r\n{H}\r\n"),
            format!("GET /a?x=<s a=\"b\">c d</s> HTTP/1.1\r\n{H}\r\n"),
            format!("GET / HTTP/1.1\r\n{H}Content-Length: NotDigits\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{H}Content-Length: 3;\r\n\r\nabc"),
            "GET / HTTP/1.1\r\nHost: localhost%00\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\nHost: localhost%1F\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\nHost: \r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\n\r\n".to_string(),
            format!("GET / HTTP/0.9\r\n{H}\r\n"),
            format!("GET / HTTP/0.8\r\n{H}\r\n"),
            format!("GET / 1.1\r\n{H}\r\n"),
            format!("GET / TEST\r\n{H}\r\n"),
            format!("GET / JUNK/1.0\r\n{H}\r\n"),
            format!("GET /#fragment HTTP/1.1\r\n{H}\r\n"),
            format!("GET / HTTP/1.1\r\n{H}SomeHeader: a\rB: c\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{H} folded\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{H}Bad Name: x\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{H}NoColon\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ];
        for raw in cases {
            assert_eq!(status(&raw), Some(400), "{raw:?}");
        }
        let gzip = format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n");
        assert_eq!(status(&gzip), Some(501));
    }

    #[test]
    fn acceptances_match_the_crs_suite() {
        for raw in [
            format!("CONNECT 1.2.3.4:80 HTTP/1.1\r\n{H}\r\n"),
            format!("OPTIONS * HTTP/1.1\r\n{H}\r\n"),
            format!("|GET /get HTTP/1.1\r\n{H}\r\n"),
            format!("GET http://localhost HTTP/1.1\r\n{H}\r\n"),
            format!("GET /?file=\\c HTTP/1.1\r\n{H}\r\n"),
            format!("GET / HTTP/4.0\r\n{H}\r\n"),
            format!("GET / HTTP/2\r\n{H}\r\n"),
            "GET / HTTP/1.0\r\nHost:\r\n\r\n".to_string(),
            "GET / HTTP/1.0\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\nHost: [fe80::f1:01:fe01:1]:80\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\nHost: deadbeef.de:8080\r\n\r\n".to_string(),
            format!("\r\nGET / HTTP/1.1\r\n{H}\r\n"),
            format!("GET /\u{2460} HTTP/1.1\r\n{H}\r\n"),
        ] {
            accepted(&raw);
        }
    }

    #[test]
    fn http09_request() {
        for raw in ["GET / \r\nHost: localhost\r\n\r\n", "GET /\r\n"] {
            let req = accepted(raw);
            assert!(req.http09);
            assert_eq!(req.protocol, "HTTP/0.9");
            assert!(req.headers.is_empty());
        }
    }

    #[test]
    fn duplicate_headers_merge() {
        let req = accepted(
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\ncontent-type: application/xml\r\n\r\n",
        );
        assert_eq!(req.headers.len(), 2);
        assert_eq!(
            req.header("Content-Type"),
            Some(&b"application/json, application/xml"[..])
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(400),
            "merged Host is not a host name"
        );
    }

    #[test]
    fn content_length_framing() {
        let raw = b"POST / HTTP/1.0\r\nContent-Length: 9\r\n\r\ntest=\xac\xed\x00\x05\r\n\r\n";
        let ServerOutcome::Accepted(req) = receive(raw) else {
            panic!("not accepted")
        };
        assert_eq!(req.body, b"test=\xac\xed\x00\x05");
        let req = accepted("POST / HTTP/1.1\r\nHost: h\r\n\r\nignored");
        assert!(req.body.is_empty());
        assert!(matches!(
            receive(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"),
            ServerOutcome::Broken(_)
        ));
    }

    #[test]
    fn chunked_framing() {
        let req = accepted(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nHi \r\n3;x=y\r\nCRS\r\n0\r\nTrailer: t\r\n\r\n",
        );
        assert_eq!(req.body, b"Hi CRS");
        assert_eq!(req.header("Content-Length"), None);
        assert_eq!(req.header("Transfer-Encoding"), Some(&b"chunked"[..]));
        assert!(matches!(
            receive(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nHi"),
            ServerOutcome::Broken(_)
        ));
    }

    #[test]
    fn incomplete_head_is_broken() {
        assert!(matches!(
            receive(b"GET / HTTP/1.1\r\nHost: h\r\n"),
            ServerOutcome::Broken(_)
        ));
        assert!(matches!(receive(b""), ServerOutcome::Broken(_)));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = receive(&raw);
        }

        #[test]
        fn never_panics_on_request_like_text(
            line in "[A-Z\\t |]{0,8} [ -~]{0,40}( HTTP/[0-9.]{0,4})?",
            headers in proptest::collection::vec("[ -~\\t\\r]{0,30}", 0..6),
            body in "[0-9a-fA-F;\\r\\n]{0,40}",
        ) {
            let raw = format!("{line}\r\n{}\r\n\r\n{body}", headers.join("\r\n"));
            if let ServerOutcome::Accepted(req) = receive(raw.as_bytes()) {
                let _ = req.path();
            }
        }
    }

    #[test]
    fn absolute_path() {
        let req = accepted("GET http://h/x/y?q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.path(), "/x/y");
        let req = accepted("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.path(), "/");
    }
}
