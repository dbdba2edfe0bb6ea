//! Compiled tiers and policies, and request evaluation with Calico's
//! `GlobalNetworkPolicy` semantics.
//!
//! [`evaluate`] walks the tiers in order (by `order`, a tier without one last,
//! then by name). In each tier it considers the policies that select the
//! destination (by `order`, a policy without one last, then by name) and their
//! ingress rules in order:
//!
//! - a matching `Log` rule is recorded and evaluation continues;
//! - the first other matching rule decides: `Allow` and `Deny` end evaluation,
//!   `Pass` skips the rest of the tier and goes on with the next one;
//! - a tier that has policies selecting the destination but no matching rule
//!   applies its default action: `Deny`, or `Pass` to the next tier.
//!
//! When no tier selects the destination, or every tier that did passed, the
//! request is allowed (Calico's profiles allow by default in Kubernetes).
//!
//! A rule matches when every criterion it states holds: protocol (HTTP is TCP),
//! `http.methods` (exact, case-sensitive), `http.paths` (`exact` or `prefix` on
//! the [normalised](crate::path::normalize) path, prefixes on segment
//! boundaries), and the `source`/`destination` entity rules (selector,
//! namespaceSelector, notSelector, serviceAccounts names and selector, nets,
//! notNets, ports). Selector criteria never match a peer without an identity
//! (an address outside the workload table), as in Calico. When the path could
//! not be normalised and evaluation reaches a rule that matches on paths, the
//! request is denied ([`Reason::InvalidPath`]); policies that never look at
//! paths are unaffected.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use ipnet::IpNet;

use crate::identity::Identity;
use crate::path::{self, PathError};
use crate::selector::{Selector, SelectorError};
use crate::spec::{EntityRuleSpec, HttpMatchSpec, PolicySpec, RuleSpec, TierSpec};

/// A rule's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Allow the request.
    Allow,
    /// Deny the request.
    Deny,
    /// Record the match and keep evaluating.
    Log,
    /// Skip to the next tier.
    Pass,
}

impl Action {
    /// Parses `Allow`, `Deny`, `Log` or `Pass` (case-insensitive).
    pub fn parse(text: &str) -> Option<Action> {
        match text.to_ascii_lowercase().as_str() {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            "log" => Some(Action::Log),
            "pass" => Some(Action::Pass),
            _ => None,
        }
    }

    /// Calico's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Log => "Log",
            Action::Pass => "Pass",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tier does when its policies select the destination but no rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TierDefault {
    /// Deny the request (Calico's default).
    #[default]
    Deny,
    /// Go on with the next tier.
    Pass,
}

/// What is wrong with a policy, without where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// A selector does not parse.
    #[error("invalid {field}: {source}")]
    Selector {
        /// Which field (`selector`, `source.namespaceSelector`...).
        field: &'static str,
        /// The parse error.
        #[source]
        source: SelectorError,
    },
    /// An action other than Allow, Deny, Log or Pass.
    #[error("unknown action `{0}` (expected Allow, Deny, Log or Pass)")]
    Action(String),
    /// A tier default action other than Deny or Pass.
    #[error("unknown tier default action `{0}` (expected Deny or Pass)")]
    TierDefault(String),
    /// A path match with neither or both of `exact` and `prefix`.
    #[error("a path match needs exactly one of `exact` and `prefix`")]
    PathMatchShape,
    /// A path that is not a valid origin-form path.
    #[error("invalid path `{path}`: {reason}")]
    Path {
        /// The path as written.
        path: String,
        /// Why.
        reason: String,
    },
    /// A CIDR that does not parse.
    #[error("invalid net `{0}`")]
    Net(String),
    /// A port or range that does not parse (named ports are not supported).
    #[error("invalid port `{0}` (expected a number or `lo:hi`; named ports are unsupported)")]
    Port(String),
    /// An HTTP method that is empty or has characters HTTP does not allow.
    #[error("invalid http method `{0}`")]
    Method(String),
    /// An order that is not a number.
    #[error("order is not a number")]
    Order,
    /// A tier or policy without a name.
    #[error("missing name")]
    MissingName,
    /// Two tiers, or two policies in a tier, with the same name.
    #[error("duplicate name `{0}`")]
    Duplicate(String),
}

/// A policy that failed validation, with where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct PolicyError {
    /// `tier NAME`, `tier NAME policy NAME` or `tier NAME policy NAME ingress rule N`.
    pub location: String,
    /// What is wrong.
    #[source]
    pub kind: PolicyErrorKind,
}

/// An endpoint of the request: address, port and identity when known.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer<'a> {
    /// IP address.
    pub ip: Option<IpAddr>,
    /// Port.
    pub port: Option<u16>,
    /// Identity from the workload table (source) or the service (destination).
    pub identity: Option<&'a Identity>,
}

/// Everything evaluation looks at.
#[derive(Clone, Debug)]
pub struct RequestFacts<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The normalised path, or why the raw path could not be normalised.
    pub path: Result<String, PathError>,
    /// Who sends.
    pub source: Peer<'a>,
    /// The protected service (the policy's endpoint).
    pub destination: Peer<'a>,
}

impl<'a> RequestFacts<'a> {
    /// Facts for a method and a raw path (normalised here), with unknown peers.
    pub fn new(method: &'a str, raw_path: &str) -> RequestFacts<'a> {
        RequestFacts {
            method,
            path: path::normalize(raw_path),
            source: Peer::default(),
            destination: Peer::default(),
        }
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the request through.
    Allow,
    /// Refuse it (403).
    Deny,
}

/// A rule, by where it sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// Tier name.
    pub tier: Arc<str>,
    /// Policy name.
    pub policy: Arc<str>,
    /// Index in the policy's ingress rules (0-based).
    pub rule_index: usize,
    /// The rule's action.
    pub action: Action,
}

/// Why the verdict is what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No tier has a policy selecting the destination.
    NoPolicy,
    /// Every tier that selected the destination passed.
    AllTiersPassed,
    /// An Allow or Deny rule matched.
    Rule(RuleRef),
    /// A tier selected the destination and no rule matched; its default applied.
    TierDefault {
        /// The tier.
        tier: Arc<str>,
    },
    /// The path could not be normalised and this rule matches on paths.
    InvalidPath {
        /// The rule that needed the path.
        rule: RuleRef,
        /// Why normalisation failed.
        error: PathError,
    },
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// `Log` rules that matched on the way, in evaluation order.
    pub logged: Vec<RuleRef>,
}

impl Decision {
    /// The tier that decided, if a tier did.
    pub fn tier(&self) -> Option<&str> {
        match &self.reason {
            Reason::Rule(r) | Reason::InvalidPath { rule: r, .. } => Some(&r.tier),
            Reason::TierDefault { tier } => Some(tier),
            Reason::NoPolicy | Reason::AllTiersPassed => None,
        }
    }

    /// The policy that decided, if a rule did.
    pub fn policy(&self) -> Option<&str> {
        match &self.reason {
            Reason::Rule(r) | Reason::InvalidPath { rule: r, .. } => Some(&r.policy),
            _ => None,
        }
    }

    /// The index of the rule that decided, if a rule did.
    pub fn rule_index(&self) -> Option<usize> {
        match &self.reason {
            Reason::Rule(r) | Reason::InvalidPath { rule: r, .. } => Some(r.rule_index),
            _ => None,
        }
    }
}

/// A compiled path match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The normalised path equals this.
    Exact(String),
    /// The normalised path starts with this on a segment boundary.
    Prefix(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path::prefix_matches(p, path),
        }
    }
}

/// A compiled HTTP match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpMatch {
    /// Methods (empty = any).
    pub methods: Vec<String>,
    /// Paths (empty = any).
    pub paths: Vec<PathMatch>,
}

/// A compiled entity rule.
#[derive(Clone, Debug, Default)]
pub struct EntityMatch {
    /// Endpoint selector.
    pub selector: Option<Selector>,
    /// Namespace selector.
    pub namespace_selector: Option<Selector>,
    /// Endpoints excluded.
    pub not_selector: Option<Selector>,
    /// Service account names (empty = any).
    pub service_account_names: BTreeSet<String>,
    /// Service account selector.
    pub service_account_selector: Option<Selector>,
    /// Address must be in one of these (empty = any).
    pub nets: Vec<IpNet>,
    /// Address must be in none of these.
    pub not_nets: Vec<IpNet>,
    /// Port must be in one of these (empty = any).
    pub ports: Vec<RangeInclusive<u16>>,
}

impl EntityMatch {
    fn matches(&self, peer: &Peer<'_>) -> bool {
        if !self.nets.is_empty() {
            match peer.ip {
                Some(ip) if self.nets.iter().any(|n| n.contains(&ip)) => {}
                _ => return false,
            }
        }
        if let Some(ip) = peer.ip {
            if self.not_nets.iter().any(|n| n.contains(&ip)) {
                return false;
            }
        }
        if !self.ports.is_empty() {
            match peer.port {
                Some(p) if self.ports.iter().any(|r| r.contains(&p)) => {}
                _ => return false,
            }
        }
        let needs_identity = self.selector.is_some()
            || self.namespace_selector.is_some()
            || !self.service_account_names.is_empty()
            || self.service_account_selector.is_some();
        let Some(id) = peer.identity else {
            return !needs_identity;
        };
        if let Some(s) = &self.selector {
            if !s.matches(id.labels()) {
                return false;
            }
        }
        if let Some(s) = &self.namespace_selector {
            if !s.matches(id.namespace_labels()) {
                return false;
            }
        }
        if let Some(s) = &self.not_selector {
            if s.matches(id.labels()) {
                return false;
            }
        }
        if !self.service_account_names.is_empty()
            && !self.service_account_names.contains(id.service_account())
        {
            return false;
        }
        if let Some(s) = &self.service_account_selector {
            if !s.matches(id.service_account_labels()) {
                return false;
            }
        }
        true
    }
}

/// A compiled ingress rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// HTTP criteria.
    pub http: HttpMatch,
    /// Source criteria.
    pub source: EntityMatch,
    /// Destination criteria.
    pub destination: EntityMatch,
    /// Whether the protocol criterion admits TCP (always true when absent).
    pub admits_tcp: bool,
}

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Name.
    pub name: Arc<str>,
    /// Order (`None` = last).
    pub order: Option<f64>,
    /// Endpoint selector.
    pub selector: Selector,
    /// Namespace selector (`None` = any namespace).
    pub namespace_selector: Option<Selector>,
    /// Service account selector (`None` = any).
    pub service_account_selector: Option<Selector>,
    /// Whether the policy has the `Ingress` type.
    pub ingress_type: bool,
    /// Ingress rules.
    pub ingress: Vec<Rule>,
}

impl Policy {
    /// Whether the policy applies to inbound requests for this destination.
    pub fn selects(&self, destination: &Identity) -> bool {
        self.ingress_type
            && self.selector.matches(destination.labels())
            && self
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(destination.namespace_labels()))
            && self
                .service_account_selector
                .as_ref()
                .is_none_or(|s| s.matches(destination.service_account_labels()))
    }
}

/// A compiled tier.
#[derive(Clone, Debug)]
pub struct Tier {
    /// Name.
    pub name: Arc<str>,
    /// Order (`None` = last).
    pub order: Option<f64>,
    /// Default action.
    pub default_action: TierDefault,
    /// Policies in evaluation order.
    pub policies: Vec<Policy>,
}

/// All tiers, in evaluation order. Cheap to share behind an `Arc`.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    tiers: Vec<Tier>,
}

fn by_order_then_name(a: (Option<f64>, &str), b: (Option<f64>, &str)) -> Ordering {
    let order = match (a.0, b.0) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    order.then_with(|| a.1.cmp(b.1))
}

fn selector(
    text: &str,
    field: &'static str,
    location: &dyn Fn() -> String,
) -> Result<Option<Selector>, PolicyError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Selector::parse(text)
        .map(Some)
        .map_err(|source| PolicyError {
            location: location(),
            kind: PolicyErrorKind::Selector { field, source },
        })
}

fn check_order(order: Option<f64>, location: &dyn Fn() -> String) -> Result<(), PolicyError> {
    match order {
        Some(o) if o.is_nan() => Err(PolicyError {
            location: location(),
            kind: PolicyErrorKind::Order,
        }),
        _ => Ok(()),
    }
}

fn compile_path(text: &str) -> Result<String, PolicyErrorKind> {
    let bad = |reason: String| PolicyErrorKind::Path {
        path: text.to_string(),
        reason,
    };
    if text.contains(['?', '#']) {
        return Err(bad("a policy path cannot hold a query or fragment".into()));
    }
    path::normalize(text).map_err(|e| bad(e.to_string()))
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn compile_http(spec: &HttpMatchSpec) -> Result<HttpMatch, PolicyErrorKind> {
    let mut http = HttpMatch::default();
    for m in &spec.methods {
        if m.is_empty() || !m.chars().all(is_token_char) {
            return Err(PolicyErrorKind::Method(m.clone()));
        }
        http.methods.push(m.clone());
    }
    for p in &spec.paths {
        http.paths.push(match (&p.exact, &p.prefix) {
            (Some(e), None) => PathMatch::Exact(compile_path(e)?),
            (None, Some(pre)) => PathMatch::Prefix(compile_path(pre)?),
            _ => return Err(PolicyErrorKind::PathMatchShape),
        });
    }
    Ok(http)
}

fn compile_port(text: &str) -> Result<RangeInclusive<u16>, PolicyErrorKind> {
    let bad = || PolicyErrorKind::Port(text.to_string());
    let (lo, hi) = match text.split_once(':') {
        Some((lo, hi)) => (lo, hi),
        None => (text, text),
    };
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

fn compile_nets(nets: &[String]) -> Result<Vec<IpNet>, PolicyErrorKind> {
    nets.iter()
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| PolicyErrorKind::Net(n.clone()))
        })
        .collect()
}

fn compile_entity(
    spec: &EntityRuleSpec,
    side: &'static str,
    location: &dyn Fn() -> String,
) -> Result<EntityMatch, PolicyError> {
    let wrap = |kind| PolicyError {
        location: location(),
        kind,
    };
    let (sel, ns, not, sa) = if side == "source" {
        (
            "source.selector",
            "source.namespaceSelector",
            "source.notSelector",
            "source.serviceAccounts.selector",
        )
    } else {
        (
            "destination.selector",
            "destination.namespaceSelector",
            "destination.notSelector",
            "destination.serviceAccounts.selector",
        )
    };
    let (names, sa_selector) = match &spec.service_accounts {
        Some(s) => (
            s.names.iter().cloned().collect(),
            selector(&s.selector, sa, location)?,
        ),
        None => (BTreeSet::new(), None),
    };
    Ok(EntityMatch {
        selector: selector(&spec.selector, sel, location)?,
        namespace_selector: selector(&spec.namespace_selector, ns, location)?,
        not_selector: selector(&spec.not_selector, not, location)?,
        service_account_names: names,
        service_account_selector: sa_selector,
        nets: compile_nets(&spec.nets).map_err(wrap)?,
        not_nets: compile_nets(&spec.not_nets).map_err(wrap)?,
        ports: spec
            .ports
            .iter()
            .map(|p| compile_port(p))
            .collect::<Result<_, _>>()
            .map_err(wrap)?,
    })
}

fn admits_tcp(protocols: &[String]) -> bool {
    protocols.is_empty()
        || protocols
            .iter()
            .any(|p| p.eq_ignore_ascii_case("tcp") || p.trim() == "6")
}

impl Rule {
    /// Compiles one ingress rule; `location` names it in errors.
    pub fn compile(spec: &RuleSpec, location: &dyn Fn() -> String) -> Result<Rule, PolicyError> {
        let wrap = |kind| PolicyError {
            location: location(),
            kind,
        };
        let action = Action::parse(&spec.action)
            .ok_or_else(|| wrap(PolicyErrorKind::Action(spec.action.clone())))?;
        let http = match &spec.http {
            Some(h) => compile_http(h).map_err(wrap)?,
            None => HttpMatch::default(),
        };
        Ok(Rule {
            action,
            http,
            source: compile_entity(&spec.source, "source", location)?,
            destination: compile_entity(&spec.destination, "destination", location)?,
            admits_tcp: admits_tcp(&spec.protocol),
        })
    }
}

impl Policy {
    /// Compiles one policy of tier `tier` (used in error locations).
    pub fn compile(tier: &str, spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let location = || format!("tier `{tier}` policy `{}`", spec.name);
        if spec.name.is_empty() {
            return Err(PolicyError {
                location: location(),
                kind: PolicyErrorKind::MissingName,
            });
        }
        check_order(spec.order, &location)?;
        let ingress = spec
            .ingress
            .iter()
            .enumerate()
            .map(|(i, r)| Rule::compile(r, &|| format!("{} ingress rule {i}", location())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            name: Arc::from(spec.name.as_str()),
            order: spec.order,
            selector: selector(&spec.selector, "selector", &location)?.unwrap_or_default(),
            namespace_selector: selector(&spec.namespace_selector, "namespaceSelector", &location)?,
            service_account_selector: selector(
                &spec.service_account_selector,
                "serviceAccountSelector",
                &location,
            )?,
            ingress_type: spec.types.is_empty()
                || spec.types.iter().any(|t| t.eq_ignore_ascii_case("ingress")),
            ingress,
        })
    }
}

impl Tier {
    /// Compiles one tier and sorts its policies.
    pub fn compile(spec: &TierSpec) -> Result<Tier, PolicyError> {
        let location = || format!("tier `{}`", spec.name);
        let wrap = |kind| PolicyError {
            location: location(),
            kind,
        };
        if spec.name.is_empty() {
            return Err(wrap(PolicyErrorKind::MissingName));
        }
        check_order(spec.order, &location)?;
        let default_action = match spec.default_action.as_deref().map(str::trim) {
            None | Some("") => TierDefault::Deny,
            Some(a) if a.eq_ignore_ascii_case("deny") => TierDefault::Deny,
            Some(a) if a.eq_ignore_ascii_case("pass") => TierDefault::Pass,
            Some(a) => return Err(wrap(PolicyErrorKind::TierDefault(a.to_string()))),
        };
        let mut names = BTreeSet::new();
        let mut policies = Vec::with_capacity(spec.policies.len());
        for p in &spec.policies {
            if !names.insert(p.name.as_str()) {
                return Err(wrap(PolicyErrorKind::Duplicate(p.name.clone())));
            }
            policies.push(Policy::compile(&spec.name, p)?);
        }
        policies.sort_by(|a, b| by_order_then_name((a.order, &a.name), (b.order, &b.name)));
        Ok(Tier {
            name: Arc::from(spec.name.as_str()),
            order: spec.order,
            default_action,
            policies,
        })
    }
}

impl PolicySet {
    /// Validates and compiles tiers (in any order; they are sorted here).
    pub fn compile(specs: &[TierSpec]) -> Result<PolicySet, PolicyError> {
        let mut names = BTreeSet::new();
        let mut tiers = Vec::with_capacity(specs.len());
        for spec in specs {
            if !names.insert(spec.name.as_str()) {
                return Err(PolicyError {
                    location: format!("tier `{}`", spec.name),
                    kind: PolicyErrorKind::Duplicate(spec.name.clone()),
                });
            }
            tiers.push(Tier::compile(spec)?);
        }
        Ok(PolicySet::new(tiers))
    }

    /// A set from compiled tiers (sorted here).
    pub fn new(mut tiers: Vec<Tier>) -> PolicySet {
        tiers.sort_by(|a, b| by_order_then_name((a.order, &a.name), (b.order, &b.name)));
        PolicySet { tiers }
    }

    /// Tiers in evaluation order.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// Whether there are no policies at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.iter().all(|t| t.policies.is_empty())
    }

    /// `(tier, policy)` names of the policies that select a destination, in
    /// evaluation order.
    pub fn selecting<'s>(&'s self, destination: &Identity) -> Vec<(&'s str, &'s str)> {
        self.tiers
            .iter()
            .flat_map(|t| {
                t.policies
                    .iter()
                    .filter(|p| p.selects(destination))
                    .map(move |p| (&*t.name, &*p.name))
            })
            .collect()
    }
}

enum RuleOutcome {
    NoMatch,
    Match,
    InvalidPath(PathError),
}

fn rule_matches(rule: &Rule, facts: &RequestFacts<'_>) -> RuleOutcome {
    if !rule.admits_tcp {
        return RuleOutcome::NoMatch;
    }
    if !rule.http.methods.is_empty() && !rule.http.methods.iter().any(|m| m == facts.method) {
        return RuleOutcome::NoMatch;
    }
    if !rule.source.matches(&facts.source) || !rule.destination.matches(&facts.destination) {
        return RuleOutcome::NoMatch;
    }
    if !rule.http.paths.is_empty() {
        match &facts.path {
            Ok(p) => {
                if !rule.http.paths.iter().any(|m| m.matches(p)) {
                    return RuleOutcome::NoMatch;
                }
            }
            Err(e) => return RuleOutcome::InvalidPath(e.clone()),
        }
    }
    RuleOutcome::Match
}

/// Decides a request (see the module docs for the semantics).
pub fn evaluate(set: &PolicySet, facts: &RequestFacts<'_>) -> Decision {
    let mut logged = Vec::new();
    let Some(destination) = facts.destination.identity else {
        return Decision {
            verdict: Verdict::Allow,
            reason: Reason::NoPolicy,
            logged,
        };
    };
    let mut any_selected = false;
    for tier in &set.tiers {
        let mut selected = false;
        let mut passed = false;
        'policies: for policy in &tier.policies {
            if !policy.selects(destination) {
                continue;
            }
            selected = true;
            for (rule_index, rule) in policy.ingress.iter().enumerate() {
                let outcome = rule_matches(rule, facts);
                if matches!(outcome, RuleOutcome::NoMatch) {
                    continue;
                }
                let rule_ref = RuleRef {
                    tier: tier.name.clone(),
                    policy: policy.name.clone(),
                    rule_index,
                    action: rule.action,
                };
                if let RuleOutcome::InvalidPath(error) = outcome {
                    return Decision {
                        verdict: Verdict::Deny,
                        reason: Reason::InvalidPath {
                            rule: rule_ref,
                            error,
                        },
                        logged,
                    };
                }
                match rule.action {
                    Action::Log => logged.push(rule_ref),
                    Action::Allow => {
                        return Decision {
                            verdict: Verdict::Allow,
                            reason: Reason::Rule(rule_ref),
                            logged,
                        }
                    }
                    Action::Deny => {
                        return Decision {
                            verdict: Verdict::Deny,
                            reason: Reason::Rule(rule_ref),
                            logged,
                        }
                    }
                    Action::Pass => {
                        passed = true;
                        break 'policies;
                    }
                }
            }
        }
        any_selected |= selected;
        if selected && !passed && tier.default_action == TierDefault::Deny {
            return Decision {
                verdict: Verdict::Deny,
                reason: Reason::TierDefault {
                    tier: tier.name.clone(),
                },
                logged,
            };
        }
    }
    Decision {
        verdict: Verdict::Allow,
        reason: if any_selected {
            Reason::AllTiersPassed
        } else {
            Reason::NoPolicy
        },
        logged,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn web() -> Identity {
        Identity::new(
            "shop",
            "web",
            "web-sa",
            labels(&[("app", "web")]),
            labels(&[("env", "prod")]),
            BTreeMap::new(),
        )
    }

    fn client() -> Identity {
        Identity::new(
            "clients",
            "client-1",
            "frontend",
            labels(&[("role", "client")]),
            labels(&[("team", "a")]),
            labels(&[("trusted", "yes")]),
        )
    }

    fn set(yaml: &str) -> PolicySet {
        let specs: Vec<TierSpec> = serde_yaml::from_str(yaml).expect("yaml");
        PolicySet::compile(&specs).expect("compiles")
    }

    struct Case {
        method: &'static str,
        path: &'static str,
        source: Option<Identity>,
        source_ip: Option<&'static str>,
        want: Verdict,
        decided_by: Option<(&'static str, &'static str, usize)>,
    }

    fn case(method: &'static str, path: &'static str, want: Verdict) -> Case {
        Case {
            method,
            path,
            source: None,
            source_ip: None,
            want,
            decided_by: None,
        }
    }

    fn run(set: &PolicySet, cases: &[Case]) {
        let dest = web();
        for c in cases {
            let mut facts = RequestFacts::new(c.method, c.path);
            facts.destination.identity = Some(&dest);
            facts.source.identity = c.source.as_ref();
            facts.source.ip = c.source_ip.map(|s| s.parse().expect("ip"));
            let d = evaluate(set, &facts);
            assert_eq!(d.verdict, c.want, "{} {}: {d:?}", c.method, c.path);
            if let Some((tier, policy, idx)) = c.decided_by {
                assert_eq!(
                    (d.tier(), d.policy(), d.rule_index()),
                    (Some(tier), Some(policy), Some(idx)),
                    "{} {}",
                    c.method,
                    c.path
                );
            }
        }
    }

    #[test]
    fn methods_are_exact_and_case_sensitive() {
        let s = set(r#"
- name: default
  policies:
    - name: get-only
      selector: app == 'web'
      ingress:
        - action: Allow
          http: {methods: [GET]}
"#);
        run(
            &s,
            &[
                Case {
                    decided_by: Some(("default", "get-only", 0)),
                    ..case("GET", "/", Verdict::Allow)
                },
                case("get", "/", Verdict::Deny),
                case("OPTIONS", "/", Verdict::Deny),
                case("POST", "/", Verdict::Deny),
            ],
        );
    }

    #[test]
    fn path_allow_list_uses_normalised_paths() {
        let s = set(r#"
- name: default
  policies:
    - name: paths
      ingress:
        - action: Allow
          http:
            paths: [{exact: /}, {exact: /robots.txt}, {prefix: /pub}]
"#);
        run(
            &s,
            &[
                case("GET", "/", Verdict::Allow),
                case("GET", "/robots.txt", Verdict::Allow),
                case("GET", "/robots.txt?x=1", Verdict::Allow),
                case("GET", "/x/../robots.txt", Verdict::Allow),
                case("GET", "/pub", Verdict::Allow),
                case("GET", "/pub/a/b", Verdict::Allow),
                case("GET", "/public", Verdict::Deny),
                case("GET", "/.git/HEAD", Verdict::Deny),
                case("GET", "/phpinfo.php", Verdict::Deny),
                case("GET", "/robots.txt/../.git/HEAD", Verdict::Deny),
                case("GET", "/%2e%2e/.git/HEAD", Verdict::Deny),
                case("GET", "/pub/%2e%2e/secret", Verdict::Deny),
                case("GET", "/pub%2F..%2Fsecret", Verdict::Deny),
            ],
        );
    }

    #[test]
    fn invalid_paths_only_matter_to_path_rules() {
        let s = set(r#"
- name: default
  policies:
    - name: deny-admin
      order: 1
      ingress:
        - action: Deny
          http: {paths: [{prefix: /admin}]}
        - action: Allow
"#);
        let dest = web();
        let mut facts = RequestFacts::new("GET", "/%2e%2e/admin");
        facts.destination.identity = Some(&dest);
        let d = evaluate(&s, &facts);
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(matches!(d.reason, Reason::InvalidPath { .. }), "{d:?}");
        run(
            &s,
            &[
                case("GET", "/admin/x", Verdict::Deny),
                case("GET", "//admin", Verdict::Deny),
                case("GET", "/a/../admin", Verdict::Deny),
                case("GET", "/administrator", Verdict::Allow),
            ],
        );
        let open = set(r#"
- name: default
  policies:
    - name: allow-all
      ingress: [{action: Allow}]
"#);
        run(&open, &[case("GET", "/a%2Fb", Verdict::Allow)]);
    }

    #[test]
    fn tiers_order_pass_and_defaults() {
        let s = set(r#"
- name: platform
  order: 100
  policies:
    - name: z-pass-internal
      order: 10
      ingress:
        - action: Log
        - action: Pass
          source: {namespaceSelector: "team == 'a'"}
    - name: a-block-options
      order: 20
      ingress:
        - action: Deny
          http: {methods: [OPTIONS]}
        - action: Allow
          http: {methods: [GET]}
- name: app
  order: 200
  policies:
    - name: only-post
      ingress:
        - action: Allow
          http: {methods: [POST]}
- name: never-selects
  order: 300
  policies:
    - name: other
      selector: app == 'db'
      ingress: [{action: Deny}]
"#);
        run(
            &s,
            &[
                // Not from team a: the platform tier decides.
                Case {
                    decided_by: Some(("platform", "a-block-options", 0)),
                    ..case("OPTIONS", "/", Verdict::Deny)
                },
                Case {
                    decided_by: Some(("platform", "a-block-options", 1)),
                    ..case("GET", "/", Verdict::Allow)
                },
                // Nothing matches in platform: its default (Deny).
                case("POST", "/", Verdict::Deny),
                // From team a: passed to the app tier.
                Case {
                    source: Some(client()),
                    decided_by: Some(("app", "only-post", 0)),
                    ..case("POST", "/", Verdict::Allow)
                },
                Case {
                    source: Some(client()),
                    ..case("GET", "/", Verdict::Deny)
                },
            ],
        );
        let dest = web();
        let mut facts = RequestFacts::new("POST", "/");
        facts.destination.identity = Some(&dest);
        let d = evaluate(&s, &facts);
        assert_eq!(
            d.reason,
            Reason::TierDefault {
                tier: "platform".into()
            }
        );
        assert_eq!(d.logged.len(), 1);
        assert_eq!(&*d.logged[0].policy, "z-pass-internal");
    }

    #[test]
    fn tier_pass_default_and_end_of_tiers() {
        let s = set(r#"
- name: t1
  order: 1
  defaultAction: Pass
  policies:
    - name: p
      ingress: [{action: Deny, http: {methods: [DELETE]}}]
"#);
        let dest = web();
        let mut facts = RequestFacts::new("GET", "/");
        facts.destination.identity = Some(&dest);
        let d = evaluate(&s, &facts);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Allow, Reason::AllTiersPassed)
        );
        facts.method = "DELETE";
        assert_eq!(evaluate(&s, &facts).verdict, Verdict::Deny);
    }

    #[test]
    fn no_selecting_policy_allows() {
        let s = set(r#"
- name: default
  policies:
    - name: db-only
      selector: app == 'db'
      ingress: [{action: Deny}]
    - name: egress-only
      types: [Egress]
      ingress: [{action: Deny}]
    - name: other-namespace
      namespaceSelector: env == 'dev'
      ingress: [{action: Deny}]
"#);
        let dest = web();
        let mut facts = RequestFacts::new("GET", "/");
        facts.destination.identity = Some(&dest);
        let d = evaluate(&s, &facts);
        assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::NoPolicy));
        let unknown = RequestFacts::new("GET", "/");
        assert_eq!(evaluate(&s, &unknown).verdict, Verdict::Allow);
    }

    #[test]
    fn policy_order_then_name_and_missing_order_last() {
        let s = set(r#"
- name: default
  policies:
    - name: no-order
      ingress: [{action: Deny}]
    - name: b
      order: 5
      ingress: [{action: Allow, http: {methods: [GET]}}]
    - name: a
      order: 5
      ingress: [{action: Deny, http: {methods: [GET, PUT]}}]
    - name: first
      order: 1.5
      ingress: [{action: Allow, http: {methods: [PUT]}}]
"#);
        run(
            &s,
            &[
                Case {
                    decided_by: Some(("default", "a", 0)),
                    ..case("GET", "/", Verdict::Deny)
                },
                Case {
                    decided_by: Some(("default", "first", 0)),
                    ..case("PUT", "/", Verdict::Allow)
                },
                Case {
                    decided_by: Some(("default", "no-order", 0)),
                    ..case("POST", "/", Verdict::Deny)
                },
            ],
        );
        let names: Vec<&str> = s.tiers()[0].policies.iter().map(|p| &*p.name).collect();
        assert_eq!(names, ["first", "a", "b", "no-order"]);
    }

    #[test]
    fn source_criteria() {
        let s = set(r#"
- name: default
  policies:
    - name: p
      ingress:
        - action: Allow
          http: {methods: [A]}
          source: {selector: "role == 'client'"}
        - action: Allow
          http: {methods: [B]}
          source: {serviceAccounts: {names: [frontend]}}
        - action: Allow
          http: {methods: [C]}
          source: {serviceAccounts: {selector: "trusted == 'yes'"}}
        - action: Allow
          http: {methods: [D]}
          source: {nets: [10.0.0.0/8], notNets: [10.9.0.0/16]}
        - action: Allow
          http: {methods: [E]}
          source: {notSelector: "role == 'client'"}
        - action: Allow
          http: {methods: [F]}
          source: {selector: all()}
        - action: Allow
          http: {methods: [G]}
          protocol: UDP
        - action: Allow
          http: {methods: [H]}
          source: {namespaceSelector: "projectcalico.org/name == 'clients'"}
"#);
        let from = |method, source: Option<Identity>, ip: Option<&'static str>, want| Case {
            source,
            source_ip: ip,
            ..case(method, "/", want)
        };
        use Verdict::{Allow, Deny};
        run(
            &s,
            &[
                from("A", Some(client()), None, Allow),
                from("A", None, None, Deny),
                from("A", Some(web()), None, Deny),
                from("B", Some(client()), None, Allow),
                from("B", Some(web()), None, Deny),
                from("C", Some(client()), None, Allow),
                from("C", Some(web()), None, Deny),
                from("D", None, Some("10.1.2.3"), Allow),
                from("D", None, Some("10.9.2.3"), Deny),
                from("D", None, Some("192.168.1.1"), Deny),
                from("D", None, None, Deny),
                from("E", Some(client()), None, Deny),
                from("E", Some(web()), None, Allow),
                from("E", None, None, Allow),
                from("F", None, Some("10.1.2.3"), Deny),
                from("F", Some(web()), None, Allow),
                from("G", Some(client()), None, Deny),
                from("H", Some(client()), None, Allow),
                from("H", Some(web()), None, Deny),
            ],
        );
    }

    #[test]
    fn rejects_invalid_policies() {
        let cases: &[(&str, &str)] = &[
            (
                "[{name: t, policies: [{name: p, selector: 'app ==' }]}]",
                "tier `t` policy `p`: invalid selector",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow}, {action: Maybe}]}]}]",
                "tier `t` policy `p` ingress rule 1: unknown action `Maybe`",
            ),
            (
                "[{name: t, defaultAction: Allow, policies: []}]",
                "tier `t`: unknown tier default action",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, http: {paths: [{}]}}]}]}]",
                "needs exactly one of",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, http: {paths: [{exact: a}]}}]}]}]",
                "invalid path `a`",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, http: {paths: [{prefix: '/a?b'}]}}]}]}]",
                "query or fragment",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, source: {nets: [10.0.0.0/33]}}]}]}]",
                "invalid net",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, destination: {ports: [http]}}]}]}]",
                "invalid port `http`",
            ),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, http: {methods: ['GE T']}}]}]}]",
                "invalid http method",
            ),
            (
                "[{name: t, policies: [{name: p}, {name: p}]}]",
                "duplicate name `p`",
            ),
            ("[{name: t}, {name: t}]", "duplicate name `t`"),
            ("[{name: t, policies: [{selector: all()}]}]", "missing name"),
            (
                "[{name: t, policies: [{name: p, ingress: [{action: Allow, source: {serviceAccounts: {selector: '(('}}}]}]}]",
                "source.serviceAccounts.selector",
            ),
        ];
        for (yaml, want) in cases {
            let specs: Vec<TierSpec> = serde_yaml::from_str(yaml).expect(yaml);
            let err = PolicySet::compile(&specs).expect_err(yaml).to_string();
            assert!(err.contains(want), "{yaml}: got `{err}`, want `{want}`");
        }
    }

    #[test]
    fn destination_ports_and_nets() {
        let s = set(r#"
- name: default
  policies:
    - name: p
      ingress:
        - action: Allow
          destination: {ports: [8080, "9000:9010"]}
"#);
        let dest = web();
        for (port, want) in [
            (Some(8080), Verdict::Allow),
            (Some(9005), Verdict::Allow),
            (Some(80), Verdict::Deny),
            (None, Verdict::Deny),
        ] {
            let mut facts = RequestFacts::new("GET", "/");
            facts.destination.identity = Some(&dest);
            facts.destination.port = port;
            assert_eq!(evaluate(&s, &facts).verdict, want, "{port:?}");
        }
    }
}
