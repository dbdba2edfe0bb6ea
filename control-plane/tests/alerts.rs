//! GlobalAlert evaluation end to end: a control plane on a policies directory
//! with alerts of a 1s period; a fake enforcer reports events over policy
//! sync; the alert fires and shows in `/status` and `/metrics` (read over
//! HTTP), a non-matching alert does not, and an invalid one is a problem.

use std::net::SocketAddr;
use std::time::Duration;

use palisade_proto::sync::v1 as pb;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/sync_client.rs"]
mod support;
use support::{connect_enforcer, message as send, start_on_policies};

const ALERTS: &str = r#"
apiVersion: palisade.dev/v1
kind: GlobalAlert
metadata:
  name: sqli-burst
spec:
  summary: "SQL injection against ${destination_namespace}/${destination_name}: ${count}"
  description: "CRS 942100 matched at least 3 times"
  severity: 80
  dataSet: waf
  query: '"rule_info" IN {"*942100*"} AND action = denied'
  period: 1s
  lookback: 10m
  aggregateBy: [destination_namespace, destination_name]
  metric: count
  condition: gte
  threshold: 3
---
apiVersion: palisade.dev/v1
kind: GlobalAlert
metadata:
  name: quiet
spec:
  description: "DELETE requests"
  severity: 10
  dataSet: waf
  query: 'method = DELETE'
  period: 1s
  metric: count
  condition: gt
  threshold: 0
---
apiVersion: palisade.dev/v1
kind: GlobalAlert
metadata:
  name: broken
spec:
  description: "never valid"
  severity: 10
  dataSet: waf
  query: 'rule_info IN ("*942100*")'
  period: 1s
"#;

/// GET `path` from the admin server; the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8(buf).unwrap()
    };
    let text = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .expect("an answer within the bound");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn event(dest: &str, rule: i64, action: &str, method: &str) -> String {
    serde_json::json!({
        "time": "2026-11-21T10:00:00.000Z",
        "request_id": format!("req-{rule}"),
        "source": {"ip": "10.0.0.9", "port": 40000, "namespace": "shop", "pod": "cart-1"},
        "destination": {"service": dest, "namespace": "web", "ip": "10.1.0.1", "port": 8080},
        "host": "www.example", "method": method, "path": "/?id=1%27%20or%201=1",
        "protocol": "HTTP/1.1", "action": action, "mode": "On", "reason": "waf",
        "rules": [{"id": rule, "msg": "SQL Injection Attack Detected via libinjection",
                   "severity": "CRITICAL", "data": "", "tags": ["attack-sqli"],
                   "file": "REQUEST-942-APPLICATION-ATTACK-SQLI.conf", "line": 46}],
        "anomaly_score": 5,
        "snapshot_version": "v1"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_events_fire_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_on_policies(dir.path(), &[("alerts.yaml", ALERTS)]).await;

    // A fake enforcer: Hello, State, InSync, then an event report.
    let (tx, mut stream) = connect_enforcer(cp.sync_addr).await;
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("State and InSync within the bound")
            .expect("stream ok")
            .expect("stream open");
    }
    tx.send(send(pb::enforcer_message::Kind::Events(pb::EventReport {
        events_json: vec![
            event("www", 942100, "denied", "GET"),
            event("www", 942100, "denied", "POST"),
            event("www", 942100, "denied", "GET"),
            // Detected only: not selected by the query.
            event("www", 942100, "detected", "GET"),
            // Another service: two events, under the threshold.
            event("api", 942100, "denied", "GET"),
            event("api", 942100, "denied", "GET"),
            // Another rule.
            event("www", 941100, "denied", "GET"),
        ],
        suppressed: 0,
    })))
    .await
    .unwrap();

    // Poll /status until the alert has fired and the quiet one was evaluated
    // (both have a 1s period); the loop is bounded.
    let mut status = Value::Null;
    for _ in 0..600 {
        status = serde_json::from_str(&get(cp.admin_addr, "/status").await).unwrap();
        let alerts = &status["alerts"]["alerts"];
        let fired = alerts["sqli-burst"]["firedTotal"].as_u64().unwrap_or(0);
        let quiet = alerts["quiet"]["evaluations"].as_u64().unwrap_or(0);
        if fired >= 1 && quiet >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = &status["alerts"]["alerts"];
    let sqli = &alerts["sqli-burst"];
    assert!(sqli["firedTotal"].as_u64().unwrap_or(0) >= 1, "{status:#}");
    assert_eq!(sqli["active"], true);
    assert_eq!(sqli["severity"], 80);
    assert!(sqli["lastEvaluated"].is_string(), "{sqli:#}");
    assert!(sqli["lastFired"].is_string(), "{sqli:#}");
    assert_eq!(sqli["lastValue"], 3.0);
    assert_eq!(sqli["lastFiredValue"], 3.0);
    let groups = sqli["lastFiredGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{sqli:#}");
    assert_eq!(groups[0]["keys"]["destination_name"], "www");
    assert_eq!(groups[0]["keys"]["destination_namespace"], "web");
    assert_eq!(groups[0]["summary"], "SQL injection against web/www: 3");
    let quiet = &alerts["quiet"];
    assert!(quiet["evaluations"].as_u64().unwrap_or(0) >= 1, "{quiet:#}");
    assert_eq!(quiet["firedTotal"], 0);
    assert_eq!(quiet["lastValue"], 0.0);
    assert_eq!(status["alerts"]["eventsReceived"], 7);
    assert_eq!(status["alerts"]["eventsBuffered"], 7);
    // The invalid alert is reported like any refused object.
    let broken = &alerts["broken"];
    assert_eq!(broken["active"], false);
    let problem = status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "GlobalAlert" && p["name"] == "broken")
        .unwrap_or_else(|| panic!("no problem for `broken`: {status:#}"));
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.starts_with("query column 14: expected `{`"),
        "{message}"
    );
    assert_eq!(broken["problem"].as_str(), Some(message));

    let metrics = get(cp.admin_addr, "/metrics").await;
    let fired_line = metrics
        .lines()
        .find(|l| l.starts_with("palisade_alerts_fired_total{alert=\"sqli-burst\"} "))
        .unwrap_or_else(|| panic!("no fired counter: {metrics}"));
    let fired: u64 = fired_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(fired >= 1, "{fired_line}");
    assert!(
        metrics.contains("palisade_alert_last_value{alert=\"sqli-burst\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_alerts_fired_total{alert=\"quiet\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_alert_window_events 7\n"),
        "{metrics}"
    );

    drop(tx);
    cp.shutdown();
}
