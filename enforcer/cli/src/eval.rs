//! `palisade eval`: JSON-lines requests in, one JSON-lines verdict out per
//! request, in the same order.
//!
//! Input line: `{"id":…, "method":"GET", "uri":"/a?b=c", "version":"HTTP/1.1",
//! "headers":[["Host","x"],…], "body_b64":"…", "remote_addr":"1.2.3.4:5678"}`
//! (`version`, `headers`, `body_b64` and `remote_addr` optional; `id` is any
//! JSON value and is echoed back).
//!
//! Output line: `{"id":…, "status":200, "rule_ids":[…], "anomaly_score":N,
//! "eval_us":F}`, where `rule_ids` are the rules that matched and would be
//! logged, and `eval_us` the microseconds spent in the engine: creating the
//! transaction and phases 1-2.
//! A line that cannot be understood yields `{"id":…, "line":N, "error":"…"}`
//! and the run goes on.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use base64::Engine as _;
use palisade_waf::Ruleset;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::{logged_rule_ids, run_request, Connection, HttpRequest};

/// One request line of the input.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    /// Caller's identifier, echoed back.
    #[serde(default)]
    pub id: Value,
    /// Method.
    pub method: String,
    /// Request target (path and query).
    pub uri: String,
    /// Protocol; `HTTP/1.1` when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Header fields, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body, base64 (standard alphabet).
    #[serde(default)]
    pub body_b64: Option<String>,
    /// Client address, `ip:port` or `ip`.
    #[serde(default)]
    pub remote_addr: Option<String>,
}

/// The verdict for one request.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalVerdict {
    /// The request's `id`.
    pub id: Value,
    /// 200 when allowed, else the intervention's status.
    pub status: u16,
    /// Every rule that matched and would be logged, in match order.
    pub rule_ids: Vec<i64>,
    /// Inbound anomaly score.
    pub anomaly_score: i64,
    /// Microseconds spent in the engine (phases 1-2).
    pub eval_us: f64,
}

/// An input line that could not be evaluated.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalError {
    /// The request's `id`, when it could be read.
    pub id: Value,
    /// 1-based line number in the input.
    pub line: usize,
    /// What was wrong.
    pub error: String,
}

/// Why a request line was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not valid JSON, or not the request shape.
    #[error("invalid request json: {0}")]
    Json(#[from] serde_json::Error),
    /// `body_b64` is not base64.
    #[error("invalid body_b64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// `remote_addr` is neither `ip:port` nor `ip`.
    #[error("invalid remote_addr {0:?}: expected ip:port or ip")]
    RemoteAddr(String),
    /// The method or URI is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

/// Turns a parsed input line into the request and connection to evaluate.
pub fn to_http(req: &EvalRequest) -> Result<(Connection, HttpRequest), RequestError> {
    if req.method.is_empty() {
        return Err(RequestError::Empty("method"));
    }
    if req.uri.is_empty() {
        return Err(RequestError::Empty("uri"));
    }
    let body = match &req.body_b64 {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64.trim())?,
        None => Vec::new(),
    };
    let mut conn = Connection::default();
    if let Some(addr) = &req.remote_addr {
        let (ip, port) = parse_remote_addr(addr)?;
        conn.client_ip = ip;
        conn.client_port = port;
    }
    let http = HttpRequest {
        method: req.method.clone(),
        uri: req.uri.clone(),
        protocol: req
            .version
            .clone()
            .unwrap_or_else(|| "HTTP/1.1".to_string()),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body,
    };
    Ok((conn, http))
}

fn parse_remote_addr(addr: &str) -> Result<(String, u16), RequestError> {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return Ok((sock.ip().to_string(), sock.port()));
    }
    if let Ok(ip) = addr
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        return Ok((ip.to_string(), 0));
    }
    Err(RequestError::RemoteAddr(addr.to_string()))
}

/// Evaluates one request against `ruleset`.
pub fn evaluate(ruleset: &Ruleset, req: &EvalRequest) -> Result<EvalVerdict, RequestError> {
    let (conn, http) = to_http(req)?;
    // The transaction's creation counts too (the ModSecurity reference's
    // time includes its `Transaction` constructor).
    let start = Instant::now();
    let mut tx = ruleset.transaction();
    let creation = start.elapsed();
    let mut outcome = run_request(&mut tx, &conn, &http);
    outcome.engine_time += creation;
    Ok(EvalVerdict {
        id: req.id.clone(),
        status: outcome.intervention.as_ref().map_or(200, |i| i.status),
        rule_ids: logged_rule_ids(tx.matched_rules()),
        anomaly_score: tx.anomaly_score(),
        eval_us: outcome.engine_time.as_nanos() as f64 / 1000.0,
    })
}

/// Counts of one `eval` run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Requests evaluated.
    pub evaluated: usize,
    /// Lines answered with an error.
    pub errors: usize,
}

/// Reads JSON lines from `input` until EOF and writes one line per input
/// line to `output` (blank lines are skipped). Output is flushed after every
/// line so that a caller can stream requests interactively.
pub fn run<R: BufRead, W: Write>(
    ruleset: &Ruleset,
    input: R,
    mut output: W,
) -> io::Result<EvalStats> {
    let mut stats = EvalStats::default();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line_no = index + 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let result = serde_json::from_str::<EvalRequest>(text)
            .map_err(RequestError::from)
            .and_then(|req| evaluate(ruleset, &req));
        match result {
            Ok(verdict) => {
                serde_json::to_writer(&mut output, &verdict)?;
                stats.evaluated += 1;
            }
            Err(err) => {
                let error = EvalError {
                    id: salvage_id(text),
                    line: line_no,
                    error: err.to_string(),
                };
                serde_json::to_writer(&mut output, &error)?;
                stats.errors += 1;
            }
        }
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(stats)
}

/// The `id` of a line that did not parse as a request, when the line is at
/// least a JSON object.
fn salvage_id(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map.get("id").cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EvalRequest {
        serde_json::from_str(text).expect("valid request")
    }

    #[test]
    fn full_request_converts() {
        let req = parse(
            r#"{"id":"a","method":"POST","uri":"/x?y=1","version":"HTTP/1.0",
               "headers":[["Host","h"],["X","1"]],"body_b64":"aGk=","remote_addr":"10.1.2.3:5678"}"#,
        );
        let (conn, http) = to_http(&req).expect("convert");
        assert_eq!(conn.client_ip, "10.1.2.3");
        assert_eq!(conn.client_port, 5678);
        assert_eq!(http.protocol, "HTTP/1.0");
        assert_eq!(http.body, b"hi");
        assert_eq!(http.headers[1], (b"X".to_vec(), b"1".to_vec()));
    }

    #[test]
    fn defaults_apply() {
        let req = parse(r#"{"method":"GET","uri":"/"}"#);
        let (conn, http) = to_http(&req).expect("convert");
        assert_eq!(req.id, Value::Null);
        assert_eq!(http.protocol, "HTTP/1.1");
        assert!(http.body.is_empty());
        assert_eq!(conn, Connection::default());
    }

    #[test]
    fn remote_addr_forms() {
        let cases = [
            ("1.2.3.4:80", Some(("1.2.3.4", 80))),
            ("1.2.3.4", Some(("1.2.3.4", 0))),
            ("[::1]:443", Some(("::1", 443))),
            ("::1", Some(("::1", 0))),
            ("host:80", None),
            ("1.2.3.4:99999", None),
        ];
        for (input, want) in cases {
            let got = parse_remote_addr(input).ok();
            let want = want.map(|(ip, port)| (ip.to_string(), port));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn bad_fields_are_errors() {
        let cases = [
            (r#"{"method":"GET","uri":"/","body_b64":"!!"}"#, "body_b64"),
            (
                r#"{"method":"GET","uri":"/","remote_addr":"nope"}"#,
                "remote_addr",
            ),
            (r#"{"method":"","uri":"/"}"#, "method"),
            (r#"{"method":"GET","uri":""}"#, "uri"),
        ];
        for (text, word) in cases {
            let err = to_http(&parse(text)).expect_err(text);
            assert!(err.to_string().contains(word), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_shapes_are_rejected() {
        for text in [
            r#"{"method":"GET","uri":"/","extra":1}"#,
            r#"{"method":"GET"}"#,
            r#"{"method":"GET","uri":"/","headers":[["only-name"]]}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<EvalRequest>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn salvaged_ids() {
        assert_eq!(salvage_id(r#"{"id":7,"uri":1}"#), Value::from(7));
        assert_eq!(salvage_id("[1]"), Value::Null);
        assert_eq!(salvage_id("{"), Value::Null);
    }

    #[test]
    fn error_line_shape() {
        let err = EvalError {
            id: Value::from("x"),
            line: 3,
            error: "bad".into(),
        };
        let text = serde_json::to_string(&err).expect("json");
        assert_eq!(text, r#"{"id":"x","line":3,"error":"bad"}"#);
    }

    #[test]
    fn verdict_shape() {
        let v = EvalVerdict {
            id: Value::from(1),
            status: 403,
            rule_ids: vec![942100, 949110],
            anomaly_score: 10,
            eval_us: 12.5,
        };
        let text = serde_json::to_string(&v).expect("json");
        assert_eq!(
            text,
            r#"{"id":1,"status":403,"rule_ids":[942100,949110],"anomaly_score":10,"eval_us":12.5}"#
        );
    }
}
