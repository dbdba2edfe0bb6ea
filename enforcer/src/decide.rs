//! Deciding one request: destination service, source identity, HTTP policy,
//! then the WAF; the result says allow or deny, and carries the event to log.
//!
//! Everything here works on [`HttpFacts`] (plain borrowed data extracted from
//! Envoy's `CheckRequest`) and a [`Snapshot`], so it is tested without gRPC.

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::SystemTime;

use palisade_alp::{evaluate, Decision, Peer, Reason, RequestFacts, Verdict};
use palisade_waf::{DisruptiveAction, EngineMode, Intervention, MatchedRule, Ruleset};

use crate::events::{rfc3339, DestinationInfo, Event, PolicyInfo, RuleInfo, SourceInfo};
use crate::snapshot::{Service, Snapshot};
use crate::state::WafMode;

/// Most request headers handed to the WAF; the rest are ignored.
pub const MAX_HEADERS: usize = 1024;

/// The request, as Envoy described it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpFacts<'a> {
    /// Source address.
    pub source_ip: Option<IpAddr>,
    /// Source port.
    pub source_port: u16,
    /// Destination address.
    pub destination_ip: Option<IpAddr>,
    /// Destination port.
    pub destination_port: u16,
    /// `namespace/name` from the route's `palisade.service` context extension.
    pub service: Option<&'a str>,
    /// Method.
    pub method: &'a str,
    /// Path with query, as sent.
    pub path: &'a str,
    /// Host (`:authority`).
    pub host: &'a str,
    /// Protocol (`HTTP/1.1`, `HTTP/2`).
    pub protocol: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// Headers (names lowercase as Envoy sends them, pseudo-headers included).
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The (possibly partial) body.
    pub body: &'a [u8],
}

/// Why the request got its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Nothing objected.
    Clean,
    /// HTTP policy decided.
    Policy,
    /// The WAF decided (or detected).
    Waf,
    /// The destination is not a known service.
    UnknownService,
    /// No snapshot yet.
    NoSnapshot,
    /// The engine failed; the failure mode decided.
    Error,
}

impl Cause {
    /// The name used in events (`reason`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::Clean => "none",
            Cause::Policy => "policy",
            Cause::Waf => "waf",
            Cause::UnknownService => "unknown_service",
            Cause::NoSnapshot => "no_snapshot",
            Cause::Error => "error",
        }
    }
}

/// The decision on one request.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Let it through.
    pub allow: bool,
    /// HTTP status for a denial (403 unless the WAF said otherwise).
    pub status: u16,
    /// `Location` for a WAF redirect.
    pub redirect: Option<String>,
    /// `allowed`, `denied` or `detected`.
    pub action: &'static str,
    /// Why.
    pub cause: Cause,
    /// `namespace/name`, or `unknown`.
    pub service: String,
    /// WAF rule ids that matched and log.
    pub rule_ids: Vec<i64>,
    /// Policy that denied (tier, policy).
    pub denied_by_policy: Option<(String, String)>,
    /// The event to log, when the request was denied or matched a logging rule.
    pub event: Option<Event>,
}

/// What the WAF found.
#[derive(Debug, Default)]
struct WafResult {
    intervention: Option<Intervention>,
    matched: Vec<MatchedRule>,
    anomaly_score: i64,
}

fn engine_mode(mode: WafMode) -> EngineMode {
    match mode {
        WafMode::Off => EngineMode::Off,
        WafMode::DetectionOnly => EngineMode::DetectionOnly,
        WafMode::On => EngineMode::On,
    }
}

/// Runs phases 1 and 2 of the ruleset over the request.
fn run_waf(ruleset: &Ruleset, mode: WafMode, facts: &HttpFacts<'_>) -> WafResult {
    let mut tx = ruleset.transaction();
    tx.set_engine_mode(engine_mode(mode));
    if !facts.request_id.is_empty() {
        tx.set_unique_id(facts.request_id);
    }
    let source_ip = facts.source_ip.map(|i| i.to_string()).unwrap_or_default();
    let destination_ip = facts
        .destination_ip
        .map(|i| i.to_string())
        .unwrap_or_default();
    tx.process_connection(
        &source_ip,
        facts.source_port,
        &destination_ip,
        facts.destination_port,
    );
    tx.process_uri(facts.path, facts.method, facts.protocol);
    let has_host = facts.headers.iter().any(|(n, _)| *n == "host");
    for (name, value) in facts.headers.iter().take(MAX_HEADERS) {
        match *name {
            ":authority" if !has_host => tx.add_request_header(b"Host", value),
            n if n.starts_with(':') => {}
            n => tx.add_request_header(n.as_bytes(), value),
        }
    }
    let mut intervention = tx.process_request_headers();
    if intervention.is_none() {
        // The body as Envoy buffered it (up to its `max_request_bytes`); the
        // ruleset's SecRequestBodyLimit and SecRequestBodyLimitAction decide
        // what happens when it is over the limit.
        if !facts.body.is_empty() {
            intervention = tx.append_request_body(facts.body);
        }
        if intervention.is_none() {
            intervention = tx.process_request_body();
        }
    }
    WafResult {
        intervention,
        matched: tx.matched_rules().to_vec(),
        anomaly_score: tx.anomaly_score(),
    }
}

fn severity_name(severity: Option<u8>) -> String {
    match severity {
        Some(0) => "EMERGENCY",
        Some(1) => "ALERT",
        Some(2) => "CRITICAL",
        Some(3) => "ERROR",
        Some(4) => "WARNING",
        Some(5) => "NOTICE",
        Some(6) => "INFO",
        Some(7) => "DEBUG",
        _ => "",
    }
    .to_string()
}

fn rule_info(rule: &MatchedRule) -> RuleInfo {
    RuleInfo {
        id: rule.id,
        msg: rule.msg.clone(),
        severity: severity_name(rule.severity),
        data: rule.data.clone(),
        tags: rule.tags.clone(),
        file: rule.span.file.to_string(),
        line: rule.span.line,
    }
}

fn policy_info(decision: &Decision) -> Option<PolicyInfo> {
    match &decision.reason {
        Reason::Rule(r) => Some(PolicyInfo {
            tier: r.tier.to_string(),
            policy: r.policy.to_string(),
            rule: Some(r.rule_index),
            action: r.action.as_str().to_string(),
        }),
        Reason::InvalidPath { rule, .. } => Some(PolicyInfo {
            tier: rule.tier.to_string(),
            policy: rule.policy.to_string(),
            rule: Some(rule.rule_index),
            action: "invalid_path".to_string(),
        }),
        Reason::TierDefault { tier } => Some(PolicyInfo {
            tier: tier.to_string(),
            policy: String::new(),
            rule: None,
            action: "default".to_string(),
        }),
        Reason::NoPolicy | Reason::AllTiersPassed => None,
    }
}

/// Builds the parts of an event every decision shares.
struct EventBase<'f, 'a> {
    facts: &'f HttpFacts<'a>,
    service: Option<&'f Service>,
    source: Option<&'f palisade_alp::Identity>,
    version: &'f str,
}

impl EventBase<'_, '_> {
    fn event(&self, action: &'static str, mode: &'static str, cause: Cause) -> Event {
        let f = self.facts;
        Event {
            time: rfc3339(SystemTime::now()),
            request_id: f.request_id.to_string(),
            source: SourceInfo {
                ip: f.source_ip.map(|i| i.to_string()).unwrap_or_default(),
                port: f.source_port,
                namespace: self
                    .source
                    .map(|s| s.namespace().to_string())
                    .unwrap_or_default(),
                pod: self
                    .source
                    .map(|s| s.name().to_string())
                    .unwrap_or_default(),
            },
            destination: DestinationInfo {
                service: self
                    .service
                    .map(|s| s.identity.name().to_string())
                    .unwrap_or_default(),
                namespace: self
                    .service
                    .map(|s| s.identity.namespace().to_string())
                    .unwrap_or_default(),
                ip: f.destination_ip.map(|i| i.to_string()).unwrap_or_default(),
                port: f.destination_port,
            },
            host: f.host.to_string(),
            method: f.method.to_string(),
            path: f.path.to_string(),
            protocol: f.protocol.to_string(),
            action,
            mode,
            reason: cause.as_str(),
            rules: Vec::new(),
            anomaly_score: 0,
            policy: None,
            policy_logs: Vec::new(),
            snapshot_version: self.version.to_string(),
        }
    }
}

fn simple(allow: bool, cause: Cause, service: String, event: Option<Event>) -> Outcome {
    Outcome {
        allow,
        status: 403,
        redirect: None,
        action: if allow { "allowed" } else { "denied" },
        cause,
        service,
        rule_ids: Vec::new(),
        denied_by_policy: None,
        event,
    }
}

/// Decides a request with no snapshot: by the configured failure mode.
pub fn decide_without_snapshot(facts: &HttpFacts<'_>, failure_mode_allow: bool) -> Outcome {
    let base = EventBase {
        facts,
        service: None,
        source: None,
        version: "",
    };
    let event = (!failure_mode_allow).then(|| base.event("denied", "Off", Cause::NoSnapshot));
    simple(
        failure_mode_allow,
        Cause::NoSnapshot,
        facts.service.unwrap_or("unknown").to_string(),
        event,
    )
}

/// Decides a request against a snapshot.
pub fn decide(snapshot: &Snapshot, facts: &HttpFacts<'_>) -> Outcome {
    let settings = &snapshot.settings;
    let service = match facts.service {
        Some(key) => snapshot.service(key),
        None => facts
            .destination_ip
            .and_then(|ip| snapshot.service_at(ip, facts.destination_port)),
    };
    let source = facts
        .source_ip
        .and_then(|ip| snapshot.workload(ip))
        .map(|w| &w.identity);
    let base = EventBase {
        facts,
        service: service.map(|s| &**s),
        source,
        version: &snapshot.version,
    };

    let Some(service) = service else {
        let allow = settings.unknown_service_allow;
        let event = (!allow).then(|| base.event("denied", "Off", Cause::UnknownService));
        return simple(allow, Cause::UnknownService, "unknown".to_string(), event);
    };
    let mode = if settings.waf_enabled {
        service.mode
    } else {
        WafMode::Off
    };

    // HTTP policy.
    let mut policy_logs = Vec::new();
    if settings.alp_enabled && !snapshot.policies.is_empty() {
        let mut request = RequestFacts::new(facts.method, facts.path);
        request.source = Peer {
            ip: facts.source_ip,
            port: Some(facts.source_port),
            identity: source,
        };
        request.destination = Peer {
            ip: facts.destination_ip,
            port: Some(facts.destination_port),
            identity: Some(&service.identity),
        };
        let decision = evaluate(&snapshot.policies, &request);
        policy_logs = decision
            .logged
            .iter()
            .map(|r| PolicyInfo {
                tier: r.tier.to_string(),
                policy: r.policy.to_string(),
                rule: Some(r.rule_index),
                action: r.action.as_str().to_string(),
            })
            .collect();
        if decision.verdict == Verdict::Deny {
            let mut event = base.event("denied", mode.as_str(), Cause::Policy);
            event.policy = policy_info(&decision);
            event.policy_logs = policy_logs;
            let mut outcome = simple(false, Cause::Policy, service.key.clone(), Some(event));
            outcome.denied_by_policy = Some((
                decision.tier().unwrap_or_default().to_string(),
                decision.policy().unwrap_or_default().to_string(),
            ));
            return outcome;
        }
    }

    // WAF.
    let ruleset = match (&service.ruleset, mode) {
        (Some(r), WafMode::On | WafMode::DetectionOnly) => r,
        _ => {
            let event = (!policy_logs.is_empty()).then(|| {
                let mut e = base.event("allowed", mode.as_str(), Cause::Policy);
                e.policy_logs = policy_logs;
                e
            });
            return simple(true, Cause::Clean, service.key.clone(), event);
        }
    };
    let waf = catch_unwind(AssertUnwindSafe(|| run_waf(ruleset, mode, facts)));
    let waf = match waf {
        Ok(w) => w,
        Err(_) => {
            tracing::error!(service = %service.key, "waf engine failed; applying the failure mode");
            let allow = settings.failure_mode_allow;
            let event = base.event(
                if allow { "allowed" } else { "denied" },
                mode.as_str(),
                Cause::Error,
            );
            return simple(allow, Cause::Error, service.key.clone(), Some(event));
        }
    };
    let logged: Vec<&MatchedRule> = waf.matched.iter().filter(|r| r.log).collect();
    let rule_ids: Vec<i64> = logged.iter().map(|r| r.id).collect();
    let blocked = mode == WafMode::On && waf.intervention.is_some();
    let action = if blocked {
        "denied"
    } else if !logged.is_empty() {
        "detected"
    } else {
        "allowed"
    };
    let (status, redirect) = match &waf.intervention {
        Some(i) if blocked => match i.action {
            DisruptiveAction::Redirect => (
                if (300..400).contains(&i.status) {
                    i.status
                } else {
                    302
                },
                i.redirect.clone(),
            ),
            _ => (
                if (400..600).contains(&i.status) {
                    i.status
                } else {
                    403
                },
                None,
            ),
        },
        _ => (403, None),
    };
    let event = (blocked || !logged.is_empty() || !policy_logs.is_empty()).then(|| {
        let cause = if logged.is_empty() && !blocked {
            Cause::Policy
        } else {
            Cause::Waf
        };
        let mut e = base.event(action, mode.as_str(), cause);
        e.rules = logged.iter().map(|r| rule_info(r)).collect();
        e.anomaly_score = waf.anomaly_score;
        e.policy_logs = policy_logs;
        e
    });
    Outcome {
        allow: !blocked,
        status,
        redirect,
        action,
        cause: if blocked || !logged.is_empty() {
            Cause::Waf
        } else {
            Cause::Clean
        },
        service: service.key.clone(),
        rule_ids,
        denied_by_policy: None,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ServiceSpec, SettingsSpec, StateSpec, WorkloadSpec};

    fn snapshot(settings: SettingsSpec, tiers: &str) -> Snapshot {
        let state = StateSpec {
            version: "v1".into(),
            settings,
            services: vec![ServiceSpec {
                namespace: "shop".into(),
                name: "web".into(),
                waf_mode: Some(WafMode::Off),
                labels: [("app".to_string(), "web".to_string())].into(),
                cluster_ips: vec!["10.96.0.10".into()],
                ports: vec![80],
                ..Default::default()
            }],
            tiers: serde_yaml::from_str(tiers).expect("tiers"),
            workloads: vec![WorkloadSpec {
                ips: vec!["10.1.0.5".into()],
                namespace: "clients".into(),
                pod: "c1".into(),
                labels: [("role".to_string(), "client".to_string())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        Snapshot::build(&state, &crate::snapshot::RulesetCache::new()).expect("builds")
    }

    const POLICY: &str = r#"
- name: default
  policies:
    - name: get-only
      selector: app == 'web'
      ingress:
        - action: Log
          source: {selector: "role == 'client'"}
        - action: Allow
          http: {methods: [GET], paths: [{exact: /}, {exact: /robots.txt}]}
"#;

    fn facts<'a>(method: &'a str, path: &'a str) -> HttpFacts<'a> {
        HttpFacts {
            source_ip: Some("10.1.0.9".parse().unwrap()),
            source_port: 40000,
            destination_ip: Some("10.96.0.10".parse().unwrap()),
            destination_port: 80,
            method,
            path,
            host: "web",
            protocol: "HTTP/1.1",
            request_id: "req-1",
            ..Default::default()
        }
    }

    #[test]
    fn policy_decides_with_the_service_from_the_address_or_extension() {
        let snap = snapshot(SettingsSpec::default(), POLICY);
        let ok = decide(&snap, &facts("GET", "/robots.txt"));
        assert!(ok.allow, "{ok:?}");
        assert!(ok.event.is_none());
        assert_eq!(ok.service, "shop/web");

        for (method, path) in [
            ("OPTIONS", "/"),
            ("GET", "/.git/HEAD"),
            ("GET", "/robots.txt/../.git/HEAD"),
            ("GET", "/%2e%2e/.git/HEAD"),
        ] {
            let mut f = facts(method, path);
            f.destination_ip = None;
            f.service = Some("shop/web");
            let out = decide(&snap, &f);
            assert!(!out.allow, "{method} {path}");
            assert_eq!(out.status, 403);
            let event = out.event.expect("event");
            assert_eq!(event.action, "denied");
            assert_eq!(event.reason, "policy");
            let policy = event.policy.expect("policy info");
            assert_eq!(policy.tier, "default");
        }
    }

    #[test]
    fn log_rules_and_source_identity_reach_the_event() {
        let snap = snapshot(SettingsSpec::default(), POLICY);
        let mut f = facts("GET", "/");
        f.source_ip = Some("10.1.0.5".parse().unwrap());
        let out = decide(&snap, &f);
        assert!(out.allow);
        let event = out.event.expect("logged");
        assert_eq!(event.action, "allowed");
        assert_eq!(event.source.namespace, "clients");
        assert_eq!(event.source.pod, "c1");
        assert_eq!(event.destination.service, "web");
        assert_eq!(event.policy_logs.len(), 1);
        assert_eq!(event.policy_logs[0].action, "Log");
    }

    #[test]
    fn unknown_services_follow_the_setting() {
        for allow in [true, false] {
            let snap = snapshot(
                SettingsSpec {
                    unknown_service_allow: allow,
                    ..Default::default()
                },
                "[]",
            );
            let mut f = facts("GET", "/");
            f.destination_port = 81;
            let out = decide(&snap, &f);
            assert_eq!(out.allow, allow);
            assert_eq!(out.cause, Cause::UnknownService);
            assert_eq!(out.event.is_some(), !allow);
            f.service = Some("nope/nothing");
            assert_eq!(decide(&snap, &f).allow, allow);
        }
    }

    #[test]
    fn no_snapshot_uses_the_failure_mode() {
        let f = facts("GET", "/");
        assert!(!decide_without_snapshot(&f, false).allow);
        assert!(decide_without_snapshot(&f, true).allow);
        assert_eq!(
            decide_without_snapshot(&f, false).event.map(|e| e.reason),
            Some("no_snapshot")
        );
    }

    fn waf_snapshot(mode: WafMode) -> Snapshot {
        let rules = "SecRuleEngine On\n\
            SecRule ARGS:q \"@contains evil\" \"id:7,phase:1,deny,status:406,log,msg:'evil',severity:2,tag:t1\"\n\
            SecRule ARGS:go \"@streq away\" \"id:8,phase:1,redirect:https://example.com/,log\"\n\
            SecRule REQUEST_HEADERS:Host \"@streq web\" \"id:9,phase:1,pass,nolog\"\n";
        let state = StateSpec {
            version: "w1".into(),
            settings: SettingsSpec {
                default_ruleset: "r".into(),
                ..Default::default()
            },
            services: vec![ServiceSpec {
                namespace: "shop".into(),
                name: "web".into(),
                waf_mode: Some(mode),
                ..Default::default()
            }],
            rulesets: vec![crate::state::RulesetSource {
                name: "r".into(),
                hash: String::new(),
                files: [("r.conf".to_string(), rules.as_bytes().to_vec())].into(),
            }],
            ..Default::default()
        };
        Snapshot::build(&state, &crate::snapshot::RulesetCache::new()).expect("builds")
    }

    #[test]
    fn waf_modes_decide_and_log() {
        let on = waf_snapshot(WafMode::On);
        let mut f = facts("GET", "/?q=evil");
        f.service = Some("shop/web");
        f.headers = vec![(":authority", b"web".as_slice())];
        let out = decide(&on, &f);
        assert!(!out.allow);
        assert_eq!(
            (out.status, out.action, out.cause),
            (406, "denied", Cause::Waf)
        );
        assert_eq!(out.rule_ids, vec![7]);
        let event = out.event.expect("event");
        assert_eq!(event.rules[0].severity, "CRITICAL");
        assert_eq!(event.rules[0].tags, vec!["t1".to_string()]);
        assert_eq!(
            (event.rules[0].file.as_str(), event.rules[0].line),
            ("r.conf", 2)
        );

        let mut redirect = facts("GET", "/?go=away");
        redirect.service = Some("shop/web");
        let out = decide(&on, &redirect);
        assert!(!out.allow);
        assert_eq!(out.status, 302);
        assert_eq!(out.redirect.as_deref(), Some("https://example.com/"));

        let detect = waf_snapshot(WafMode::DetectionOnly);
        let out = decide(&detect, &f);
        assert!(out.allow);
        assert_eq!(out.action, "detected");
        assert_eq!(out.event.map(|e| e.mode), Some("DetectionOnly"));

        let off = waf_snapshot(WafMode::Off);
        let out = decide(&off, &f);
        assert!(out.allow && out.event.is_none());

        // Clean requests leave no event; nolog rules are not reported.
        let mut clean = facts("GET", "/?q=fine");
        clean.service = Some("shop/web");
        clean.headers = vec![(":authority", b"web".as_slice())];
        let out = decide(&on, &clean);
        assert!(out.allow && out.event.is_none() && out.rule_ids.is_empty());
    }

    #[test]
    fn alp_can_be_disabled() {
        let snap = snapshot(
            SettingsSpec {
                alp_enabled: false,
                ..Default::default()
            },
            POLICY,
        );
        assert!(decide(&snap, &facts("OPTIONS", "/")).allow);
    }
}
