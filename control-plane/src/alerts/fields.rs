//! The `waf` data set: the fields a GlobalAlert query, `aggregateBy` and
//! `field` may name, and [`WafEvent`], the compact form an enforcer's JSON
//! event line is kept in while it sits in the alert window.
//!
//! | field | from the event JSON | kind |
//! | --- | --- | --- |
//! | `node` | the node whose enforcer reported it | text |
//! | `request_id` | `request_id` | text |
//! | `source_ip` / `source_port` | `source.ip` / `source.port` | text / number |
//! | `source_namespace` / `source_name` | `source.namespace` / `source.pod` | text |
//! | `destination_ip` / `destination_port` | `destination.ip` / `destination.port` | text / number |
//! | `destination_namespace` / `destination_name` | `destination.namespace` / `destination.service` | text |
//! | `host`, `method`, `path`, `protocol` | same names | text |
//! | `action` | `action`: `allowed`, `denied` or `detected` | text |
//! | `mode` | `mode`: `On`, `DetectionOnly`, `Off` | text |
//! | `reason` | `reason`: `waf`, `policy`, ... | text |
//! | `rule_info` | one `"<id>: <msg>"` per matched rule | text, many |
//! | `rule_id` / `rule_msg` / `rule_severity` | `rules[].id` / `.msg` / `.severity` | number / text / text, many |
//! | `rule_tag` | every `rules[].tags[]` | text, many |
//! | `anomaly_score` | `anomaly_score` | number |
//! | `policy_tier` / `policy_name` / `policy_action` | `policy.tier` / `.policy` / `.action` | text |
//!
//! An empty string in the event (an unknown namespace, say) is no value at all.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// Longest text kept per field value (longer values are cut at a character
/// boundary), so one event's share of the window stays small.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Most rules kept per event.
pub const MAX_RULES: usize = 32;

/// Most tags kept per rule.
pub const MAX_TAGS: usize = 16;

/// A field of the `waf` data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Node of the reporting enforcer.
    Node,
    /// `x-request-id`.
    RequestId,
    /// Client IP.
    SourceIp,
    /// Client port.
    SourcePort,
    /// Client namespace.
    SourceNamespace,
    /// Client pod.
    SourceName,
    /// Destination IP.
    DestinationIp,
    /// Destination port.
    DestinationPort,
    /// Destination namespace.
    DestinationNamespace,
    /// Destination service.
    DestinationName,
    /// Host header.
    Host,
    /// HTTP method.
    Method,
    /// Path with query.
    Path,
    /// Protocol (`HTTP/1.1`).
    Protocol,
    /// `allowed`, `denied` or `detected`.
    Action,
    /// WAF mode of the service.
    Mode,
    /// What decided.
    Reason,
    /// `"<id>: <msg>"` per matched rule.
    RuleInfo,
    /// Matched rule ids.
    RuleId,
    /// Matched rule messages.
    RuleMsg,
    /// Matched rule severities.
    RuleSeverity,
    /// Tags of the matched rules.
    RuleTag,
    /// Inbound anomaly score.
    AnomalyScore,
    /// Tier of the deciding policy rule.
    PolicyTier,
    /// Name of the deciding policy.
    PolicyName,
    /// Action of the deciding policy rule.
    PolicyAction,
}

impl Field {
    /// Every field, in documentation order.
    pub const ALL: [Field; 26] = [
        Field::Node,
        Field::RequestId,
        Field::SourceIp,
        Field::SourcePort,
        Field::SourceNamespace,
        Field::SourceName,
        Field::DestinationIp,
        Field::DestinationPort,
        Field::DestinationNamespace,
        Field::DestinationName,
        Field::Host,
        Field::Method,
        Field::Path,
        Field::Protocol,
        Field::Action,
        Field::Mode,
        Field::Reason,
        Field::RuleInfo,
        Field::RuleId,
        Field::RuleMsg,
        Field::RuleSeverity,
        Field::RuleTag,
        Field::AnomalyScore,
        Field::PolicyTier,
        Field::PolicyName,
        Field::PolicyAction,
    ];

    /// The name queries use.
    pub fn name(self) -> &'static str {
        match self {
            Field::Node => "node",
            Field::RequestId => "request_id",
            Field::SourceIp => "source_ip",
            Field::SourcePort => "source_port",
            Field::SourceNamespace => "source_namespace",
            Field::SourceName => "source_name",
            Field::DestinationIp => "destination_ip",
            Field::DestinationPort => "destination_port",
            Field::DestinationNamespace => "destination_namespace",
            Field::DestinationName => "destination_name",
            Field::Host => "host",
            Field::Method => "method",
            Field::Path => "path",
            Field::Protocol => "protocol",
            Field::Action => "action",
            Field::Mode => "mode",
            Field::Reason => "reason",
            Field::RuleInfo => "rule_info",
            Field::RuleId => "rule_id",
            Field::RuleMsg => "rule_msg",
            Field::RuleSeverity => "rule_severity",
            Field::RuleTag => "rule_tag",
            Field::AnomalyScore => "anomaly_score",
            Field::PolicyTier => "policy_tier",
            Field::PolicyName => "policy_name",
            Field::PolicyAction => "policy_action",
        }
    }

    /// The field called `name` (exact, lowercase), if any.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// True for fields whose values are numbers (what `avg`, `max`, `min` and
    /// `sum` can be computed over).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Field::SourcePort | Field::DestinationPort | Field::RuleId | Field::AnomalyScore
        )
    }

    /// Comma-separated names of every field, for error messages.
    pub fn names() -> String {
        Field::ALL.map(Field::name).join(", ")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One matched rule, as kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleRef {
    /// Rule id.
    pub id: i64,
    /// Message.
    pub msg: Box<str>,
    /// Severity name.
    pub severity: Box<str>,
    /// Tags.
    pub tags: Vec<Box<str>>,
}

/// An enforcer event reduced to the `waf` data set's fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WafEvent {
    /// Reporting node.
    pub node: Box<str>,
    /// `x-request-id`.
    pub request_id: Box<str>,
    /// Client IP.
    pub source_ip: Box<str>,
    /// Client port.
    pub source_port: Option<i64>,
    /// Client namespace.
    pub source_namespace: Box<str>,
    /// Client pod.
    pub source_name: Box<str>,
    /// Destination IP.
    pub destination_ip: Box<str>,
    /// Destination port.
    pub destination_port: Option<i64>,
    /// Destination namespace.
    pub destination_namespace: Box<str>,
    /// Destination service.
    pub destination_name: Box<str>,
    /// Host header.
    pub host: Box<str>,
    /// Method.
    pub method: Box<str>,
    /// Path.
    pub path: Box<str>,
    /// Protocol.
    pub protocol: Box<str>,
    /// `allowed`, `denied` or `detected`.
    pub action: Box<str>,
    /// WAF mode.
    pub mode: Box<str>,
    /// What decided.
    pub reason: Box<str>,
    /// Matched rules.
    pub rules: Vec<RuleRef>,
    /// Inbound anomaly score.
    pub anomaly_score: Option<i64>,
    /// Deciding policy's tier.
    pub policy_tier: Box<str>,
    /// Deciding policy.
    pub policy_name: Box<str>,
    /// Deciding policy rule's action.
    pub policy_action: Box<str>,
}

/// Why an event line was not kept.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The line is not JSON.
    #[error("event is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The line is JSON but not an object.
    #[error("event is not a JSON object")]
    NotObject,
}

fn cut(s: &str) -> Box<str> {
    if s.len() <= MAX_VALUE_BYTES {
        return s.into();
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

fn text(v: &Value, path: &[&str]) -> Box<str> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "".into(),
        }
    }
    match cur {
        Value::String(s) => cut(s),
        Value::Number(n) => cut(&n.to_string()),
        Value::Bool(b) => cut(&b.to_string()),
        _ => "".into(),
    }
}

fn number(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl WafEvent {
    /// Reads one event line as the enforcer writes it, reported by `node`.
    /// Unknown fields are ignored; missing ones are empty.
    pub fn from_json(node: &str, line: &str) -> Result<WafEvent, EventError> {
        let v: Value = serde_json::from_str(line).map_err(EventError::Json)?;
        if !v.is_object() {
            return Err(EventError::NotObject);
        }
        let rules = match v.get("rules") {
            Some(Value::Array(list)) => list
                .iter()
                .take(MAX_RULES)
                .map(|r| RuleRef {
                    id: number(r, &["id"]).unwrap_or(0),
                    msg: text(r, &["msg"]),
                    severity: text(r, &["severity"]),
                    tags: match r.get("tags") {
                        Some(Value::Array(tags)) => tags
                            .iter()
                            .filter_map(Value::as_str)
                            .take(MAX_TAGS)
                            .map(cut)
                            .collect(),
                        _ => Vec::new(),
                    },
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(WafEvent {
            node: cut(node),
            request_id: text(&v, &["request_id"]),
            source_ip: text(&v, &["source", "ip"]),
            source_port: number(&v, &["source", "port"]),
            source_namespace: text(&v, &["source", "namespace"]),
            source_name: text(&v, &["source", "pod"]),
            destination_ip: text(&v, &["destination", "ip"]),
            destination_port: number(&v, &["destination", "port"]),
            destination_namespace: text(&v, &["destination", "namespace"]),
            destination_name: text(&v, &["destination", "service"]),
            host: text(&v, &["host"]),
            method: text(&v, &["method"]),
            path: text(&v, &["path"]),
            protocol: text(&v, &["protocol"]),
            action: text(&v, &["action"]),
            mode: text(&v, &["mode"]),
            reason: text(&v, &["reason"]),
            rules,
            anomaly_score: number(&v, &["anomaly_score"]),
            policy_tier: text(&v, &["policy", "tier"]),
            policy_name: text(&v, &["policy", "policy"]),
            policy_action: text(&v, &["policy", "action"]),
        })
    }

    fn single(&self, field: Field) -> Option<&str> {
        let s: &str = match field {
            Field::Node => &self.node,
            Field::RequestId => &self.request_id,
            Field::SourceIp => &self.source_ip,
            Field::SourceNamespace => &self.source_namespace,
            Field::SourceName => &self.source_name,
            Field::DestinationIp => &self.destination_ip,
            Field::DestinationNamespace => &self.destination_namespace,
            Field::DestinationName => &self.destination_name,
            Field::Host => &self.host,
            Field::Method => &self.method,
            Field::Path => &self.path,
            Field::Protocol => &self.protocol,
            Field::Action => &self.action,
            Field::Mode => &self.mode,
            Field::Reason => &self.reason,
            Field::PolicyTier => &self.policy_tier,
            Field::PolicyName => &self.policy_name,
            Field::PolicyAction => &self.policy_action,
            _ => return None,
        };
        (!s.is_empty()).then_some(s)
    }

    /// Calls `f` on each value of `field` until it returns true; true when it did.
    pub fn any_value(&self, field: Field, f: &mut dyn FnMut(&str) -> bool) -> bool {
        let number = |n: Option<i64>, f: &mut dyn FnMut(&str) -> bool| match n {
            Some(n) => f(&n.to_string()),
            None => false,
        };
        match field {
            Field::SourcePort => number(self.source_port, f),
            Field::DestinationPort => number(self.destination_port, f),
            Field::AnomalyScore => number(self.anomaly_score, f),
            Field::RuleInfo => self
                .rules
                .iter()
                .any(|r| f(&format!("{}: {}", r.id, r.msg))),
            Field::RuleId => self.rules.iter().any(|r| f(&r.id.to_string())),
            Field::RuleMsg => self.rules.iter().any(|r| !r.msg.is_empty() && f(&r.msg)),
            Field::RuleSeverity => self
                .rules
                .iter()
                .any(|r| !r.severity.is_empty() && f(&r.severity)),
            Field::RuleTag => self
                .rules
                .iter()
                .flat_map(|r| r.tags.iter())
                .any(|t| !t.is_empty() && f(t)),
            _ => self.single(field).is_some_and(f),
        }
    }

    /// Every value of `field` (none when the event lacks it).
    pub fn values(&self, field: Field) -> Vec<Cow<'_, str>> {
        if let Some(s) = self.single(field) {
            return vec![Cow::Borrowed(s)];
        }
        let mut out = Vec::new();
        self.any_value(field, &mut |v| {
            out.push(Cow::Owned(v.to_string()));
            false
        });
        out
    }

    /// Every numeric value of `field` (none for text fields).
    pub fn numbers(&self, field: Field) -> Vec<f64> {
        match field {
            Field::SourcePort => self.source_port.map(|n| n as f64).into_iter().collect(),
            Field::DestinationPort => self
                .destination_port
                .map(|n| n as f64)
                .into_iter()
                .collect(),
            Field::AnomalyScore => self.anomaly_score.map(|n| n as f64).into_iter().collect(),
            Field::RuleId => self.rules.iter().map(|r| r.id as f64).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"time":"2026-11-21T10:00:00.000Z","request_id":"r1",
        "source":{"ip":"10.0.0.9","port":40000,"namespace":"shop","pod":"cart-1"},
        "destination":{"service":"www","namespace":"web","ip":"10.1.0.1","port":8080},
        "host":"www.example","method":"GET","path":"/?id=1' or 1=1","protocol":"HTTP/1.1",
        "action":"denied","mode":"On","reason":"waf",
        "rules":[{"id":942100,"msg":"SQL Injection Attack Detected via libinjection","severity":"CRITICAL",
                  "data":"x","tags":["attack-sqli","OWASP_CRS"],"file":"f","line":1},
                 {"id":949110,"msg":"Inbound Anomaly Score Exceeded","severity":"","tags":[]}],
        "anomaly_score":5,"policy":{"tier":"default","policy":"p","rule":1,"action":"Deny"},
        "snapshot_version":"v"}"#;

    #[test]
    fn maps_every_field() {
        let e = WafEvent::from_json("node-1", EVENT).unwrap();
        let cases: &[(&str, &[&str])] = &[
            ("node", &["node-1"]),
            ("request_id", &["r1"]),
            ("source_ip", &["10.0.0.9"]),
            ("source_port", &["40000"]),
            ("source_namespace", &["shop"]),
            ("source_name", &["cart-1"]),
            ("destination_ip", &["10.1.0.1"]),
            ("destination_port", &["8080"]),
            ("destination_namespace", &["web"]),
            ("destination_name", &["www"]),
            ("host", &["www.example"]),
            ("method", &["GET"]),
            ("path", &["/?id=1' or 1=1"]),
            ("protocol", &["HTTP/1.1"]),
            ("action", &["denied"]),
            ("mode", &["On"]),
            ("reason", &["waf"]),
            (
                "rule_info",
                &[
                    "942100: SQL Injection Attack Detected via libinjection",
                    "949110: Inbound Anomaly Score Exceeded",
                ],
            ),
            ("rule_id", &["942100", "949110"]),
            (
                "rule_msg",
                &[
                    "SQL Injection Attack Detected via libinjection",
                    "Inbound Anomaly Score Exceeded",
                ],
            ),
            ("rule_severity", &["CRITICAL"]),
            ("rule_tag", &["attack-sqli", "OWASP_CRS"]),
            ("anomaly_score", &["5"]),
            ("policy_tier", &["default"]),
            ("policy_name", &["p"]),
            ("policy_action", &["Deny"]),
        ];
        assert_eq!(cases.len(), Field::ALL.len());
        for (name, want) in cases {
            let field = Field::from_name(name).unwrap();
            assert_eq!(field.name(), *name);
            let got = e.values(field);
            assert_eq!(
                got,
                want.iter().map(|s| Cow::Borrowed(*s)).collect::<Vec<_>>(),
                "{name}"
            );
        }
        assert_eq!(e.numbers(Field::RuleId), [942100.0, 949110.0]);
        assert_eq!(e.numbers(Field::AnomalyScore), [5.0]);
        assert!(e.numbers(Field::Host).is_empty());
    }

    #[test]
    fn lenient_and_bounded() {
        let e = WafEvent::from_json("n", r#"{"source":{"namespace":""},"path":7}"#).unwrap();
        assert!(e.values(Field::SourceNamespace).is_empty());
        assert_eq!(e.values(Field::Path), [Cow::Borrowed("7")]);
        assert!(e.values(Field::RuleId).is_empty());
        let long = format!(r#"{{"path":"{}é"}}"#, "a".repeat(MAX_VALUE_BYTES - 1));
        let e = WafEvent::from_json("n", &long).unwrap();
        assert_eq!(e.path.len(), MAX_VALUE_BYTES - 1);
        assert!(WafEvent::from_json("n", "[1]").is_err());
        assert!(WafEvent::from_json("n", "{").is_err());
    }
}
