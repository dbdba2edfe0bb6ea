//! Running one stage in-process: go-ftw's request bytes → the server model →
//! the engine (phases 1-2) → the albedo stand-in → the engine (phases 3-4) →
//! logging (phase 5) → the rendered log and response.

use std::net::IpAddr;

use palisade_waf::{DisruptiveAction, Intervention, Ruleset};

use super::backend::{self, render_response};
use super::build::build_request;
use super::check::StageResult;
use super::log::{ids_in, render, LogContext};
use super::schema::Input;
use super::server::{receive, ServerOutcome};
use crate::request::{run_request, run_response, Connection, HttpRequest, HttpResponse};

/// Everything a stage produced, for checking and for failure reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageRun {
    /// What the client saw and what the log says.
    pub result: StageResult,
    /// The request the WAF saw, in one line (`METHOD URI PROTOCOL`), or why
    /// it never reached the WAF.
    pub summary: String,
    /// A problem of the harness itself (the request could not be built).
    pub harness_error: Option<String>,
    /// Whether the request reached the WAF (the server model accepted it).
    pub reached_waf: bool,
}

/// The address `dest_addr` stands for (`localhost` and names resolve to loopback).
pub fn server_ip(dest_addr: &str) -> String {
    match dest_addr
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip.to_string(),
        Err(_) => "127.0.0.1".to_string(),
    }
}

/// Runs one stage. `unique_id` names the transaction; `client_port` is the
/// client's source port.
pub fn run_stage(ruleset: &Ruleset, input: &Input, unique_id: &str, client_port: u16) -> StageRun {
    let raw = match build_request(input) {
        Ok(raw) => raw,
        Err(e) => {
            return StageRun {
                summary: "request not built".into(),
                harness_error: Some(format!("cannot build request: {e}")),
                ..StageRun::default()
            }
        }
    };
    let req = match receive(&raw) {
        ServerOutcome::Accepted(req) => req,
        ServerOutcome::Rejected { status, reason } => {
            let resp = HttpResponse {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            };
            return StageRun {
                result: StageResult {
                    response: Ok((status, render_response(&resp))),
                    ..StageResult::default()
                },
                summary: format!("server answered {status} before the WAF: {reason}"),
                harness_error: None,
                reached_waf: false,
            };
        }
        ServerOutcome::Broken(reason) => {
            return StageRun {
                result: StageResult {
                    response: Err(reason.clone()),
                    ..StageResult::default()
                },
                summary: format!("exchange broken before the WAF: {reason}"),
                harness_error: None,
                reached_waf: false,
            }
        }
    };
    let summary = format!("{} {} {}", req.method, req.uri, req.protocol);
    let conn = Connection {
        client_ip: "127.0.0.1".to_string(),
        client_port,
        server_ip: server_ip(&input.dest_addr),
        server_port: input.port,
    };
    let http = HttpRequest {
        method: req.method.clone(),
        uri: req.uri.clone(),
        protocol: req.protocol.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
    };
    let mut tx = ruleset.transaction();
    tx.set_unique_id(unique_id);
    let mut intervention = run_request(&mut tx, &conn, &http).intervention;
    let response: Result<HttpResponse, String> = if req.http09 {
        Err("HTTP/0.9 answer has no status line".to_string())
    } else if let Some(i) = &intervention {
        intervention_response(i)
    } else {
        let resp = backend::respond(&req);
        match run_response(&mut tx, &resp) {
            Some(i) => {
                let replaced = intervention_response(&i);
                intervention = Some(i);
                replaced
            }
            None => Ok(resp),
        }
    };
    tx.process_logging();

    let hostname = req
        .header("Host")
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| input.dest_addr.clone());
    let ctx = LogContext {
        hostname,
        uri: req.uri.clone(),
        unique_id: unique_id.to_string(),
    };
    let log_lines = render(
        tx.matched_rules(),
        intervention.as_ref().map(|i| i.status),
        &ctx,
    );
    let logged_ids = ids_in(&log_lines);
    StageRun {
        result: StageResult {
            response: response.map(|r| (r.status, render_response(&r))),
            log_lines,
            logged_ids,
        },
        summary,
        harness_error: None,
        reached_waf: true,
    }
}

/// The response a disruptive action produces (`drop` closes the connection:
/// the client sees an error).
fn intervention_response(i: &Intervention) -> Result<HttpResponse, String> {
    let mut headers = Vec::new();
    match i.action {
        DisruptiveAction::Drop => return Err(format!("connection dropped by rule {}", i.rule_id)),
        DisruptiveAction::Redirect => {
            if let Some(location) = &i.redirect {
                headers.push(("Location".to_string(), location.clone()));
            }
        }
        DisruptiveAction::Deny => {}
    }
    Ok(HttpResponse {
        status: i.status,
        headers,
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(server_ip("localhost"), "127.0.0.1");
        assert_eq!(server_ip("10.0.0.5"), "10.0.0.5");
        assert_eq!(server_ip("[::1]"), "::1");
        assert_eq!(server_ip("example.com"), "127.0.0.1");
    }

    #[test]
    fn redirect_response_carries_location() {
        let i = Intervention {
            status: 302,
            redirect: Some("/x".into()),
            action: DisruptiveAction::Redirect,
            rule_id: 1,
            phase: 1,
        };
        let resp = intervention_response(&i).expect("a response");
        assert_eq!(resp.status, 302);
        assert_eq!(
            resp.headers,
            vec![("Location".to_string(), "/x".to_string())]
        );
        let drop = Intervention {
            action: DisruptiveAction::Drop,
            redirect: None,
            ..i
        };
        assert!(intervention_response(&drop).is_err());
    }
}
