//! One HTTP exchange as the engine sees it, and the code that drives a
//! [`Transaction`] through it: connection, request line, headers, body
//! (phases 1-2), then optionally a response (phases 3-4) and logging (phase 5).

use std::time::{Duration, Instant};

use palisade_waf::{Intervention, MatchedRule, Transaction};

/// Both ends of the connection a request arrived on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Client address (REMOTE_ADDR).
    pub client_ip: String,
    /// Client port (REMOTE_PORT).
    pub client_port: u16,
    /// Server address (SERVER_ADDR).
    pub server_ip: String,
    /// Server port (SERVER_PORT).
    pub server_port: u16,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            client_ip: "127.0.0.1".to_string(),
            client_port: 40000,
            server_ip: "127.0.0.1".to_string(),
            server_port: 80,
        }
    }
}

/// A request as the server received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, as sent.
    pub method: String,
    /// Request target (path and query, or absolute/authority form), as sent.
    pub uri: String,
    /// Protocol of the request line (`HTTP/1.1`).
    pub protocol: String,
    /// Header fields in arrival order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body, after transfer decoding.
    pub body: Vec<u8>,
}

/// A response to run through phases 3 and 4.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// What phases 1-2 decided, and how long the engine took.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestOutcome {
    /// The disruptive action that ended the request, if any.
    pub intervention: Option<Intervention>,
    /// Time spent inside the engine for phases 1-2.
    pub engine_time: Duration,
}

/// Feeds the connection and the request to `tx` and runs phases 1 and 2.
/// Phase 2 is skipped when phase 1 (or the body limit) already disrupted.
pub fn run_request(tx: &mut Transaction, conn: &Connection, req: &HttpRequest) -> RequestOutcome {
    let start = Instant::now();
    tx.process_connection(
        &conn.client_ip,
        conn.client_port,
        &conn.server_ip,
        conn.server_port,
    );
    tx.process_uri(&req.uri, &req.method, &req.protocol);
    for (name, value) in &req.headers {
        tx.add_request_header(name, value);
    }
    let mut intervention = tx.process_request_headers();
    if intervention.is_none() && !req.body.is_empty() {
        intervention = tx.append_request_body(&req.body);
    }
    if intervention.is_none() {
        intervention = tx.process_request_body();
    }
    RequestOutcome {
        intervention,
        engine_time: start.elapsed(),
    }
}

/// Runs phases 3 and 4 with `resp`; returns the intervention, if one happened.
pub fn run_response(tx: &mut Transaction, resp: &HttpResponse) -> Option<Intervention> {
    for (name, value) in &resp.headers {
        tx.add_response_header(name.as_bytes(), value.as_bytes());
    }
    let mut intervention = tx.process_response_headers(resp.status, "HTTP/1.1");
    if intervention.is_none() && !resp.body.is_empty() {
        intervention = tx.append_response_body(&resp.body);
    }
    if intervention.is_none() {
        intervention = tx.process_response_body();
    }
    intervention
}

/// Ids of the matched rules that would be written to the error log
/// (`log`, not `nolog`), first occurrence order, each id once.
pub fn logged_rule_ids(rules: &[MatchedRule]) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::new();
    for rule in rules.iter().filter(|r| r.log) {
        if !ids.contains(&rule.id) {
            ids.push(rule.id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use palisade_waf::seclang::Span;

    use super::*;

    fn rule(id: i64, log: bool) -> MatchedRule {
        MatchedRule {
            id,
            phase: 2,
            msg: String::new(),
            data: String::new(),
            severity: None,
            tags: Vec::new(),
            span: Span {
                file: Arc::from("x.conf"),
                line: 1,
            },
            log,
            disruptive: false,
            matched_var_name: String::new(),
            matched_var: Vec::new(),
            operator: String::new(),
        }
    }

    #[test]
    fn logged_ids_skip_nolog_and_duplicates() {
        let rules = [rule(3, true), rule(1, false), rule(2, true), rule(3, true)];
        assert_eq!(logged_rule_ids(&rules), vec![3, 2]);
    }

    #[test]
    fn default_connection_is_loopback() {
        let conn = Connection::default();
        assert_eq!(conn.client_ip, "127.0.0.1");
        assert_eq!(conn.server_port, 80);
    }
}
