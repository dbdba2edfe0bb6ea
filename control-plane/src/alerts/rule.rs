//! A GlobalAlert checked and compiled into an [`AlertRule`]: the parsed
//! query, durations, metric, condition and templates; and the evaluation of
//! one rule over a set of events (group, compute the metric, compare).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::fields::{Field, WafEvent};
use super::query::{Query, QueryError};
use crate::k8s::GlobalAlertSpec;

/// `period` when none is given (Calico's default).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5 * 60);

/// `lookback` when none is given (Calico's default).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(10 * 60);

/// Shortest `period` accepted.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// Longest `period` or `lookback` accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most groups one event may fall in (aggregating by several fields that hold
/// several values each multiplies them).
pub const MAX_COMBINATIONS: usize = 64;

/// Most groups one evaluation keeps; events of further groups are not counted.
pub const MAX_GROUPS: usize = 10_000;

/// What is computed per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Number of events.
    Count,
    /// Mean of `field`.
    Avg,
    /// Largest `field`.
    Max,
    /// Smallest `field`.
    Min,
    /// Sum of `field`.
    Sum,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "count" => Metric::Count,
            "avg" => Metric::Avg,
            "max" => Metric::Max,
            "min" => Metric::Min,
            "sum" => Metric::Sum,
            _ => return None,
        })
    }

    /// The name used in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Count => "count",
            Metric::Avg => "avg",
            Metric::Max => "max",
            Metric::Min => "min",
            Metric::Sum => "sum",
        }
    }
}

/// How the metric is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl Condition {
    fn parse(s: &str) -> Option<Condition> {
        Some(match s {
            "eq" => Condition::Eq,
            "not_eq" => Condition::NotEq,
            "gt" => Condition::Gt,
            "gte" => Condition::Gte,
            "lt" => Condition::Lt,
            "lte" => Condition::Lte,
            _ => return None,
        })
    }

    /// The name used in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Eq => "eq",
            Condition::NotEq => "not_eq",
            Condition::Gt => "gt",
            Condition::Gte => "gte",
            Condition::Lt => "lt",
            Condition::Lte => "lte",
        }
    }

    /// True when `value <condition> threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::Eq => value == threshold,
            Condition::NotEq => value != threshold,
            Condition::Gt => value > threshold,
            Condition::Gte => value >= threshold,
            Condition::Lt => value < threshold,
            Condition::Lte => value <= threshold,
        }
    }
}

/// Why a GlobalAlert is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// A data set other than `waf`.
    #[error("dataSet `{0}` is not supported (Palisade has `waf`)")]
    DataSet(String),
    /// The query does not parse.
    #[error("{0}")]
    Query(#[from] QueryError),
    /// A period or lookback that is not a Go duration.
    #[error("{field} `{value}`: {reason}")]
    Duration {
        /// `period` or `lookback`.
        field: &'static str,
        /// As written.
        value: String,
        /// Why.
        reason: String,
    },
    /// An unknown metric.
    #[error("metric `{0}` is not one of count, avg, max, min, sum")]
    Metric(String),
    /// An unknown condition.
    #[error("condition `{0}` is not one of eq, not_eq, gt, gte, lt, lte")]
    Condition(String),
    /// A metric without its condition or threshold.
    #[error("metric `{metric}` needs `{missing}`")]
    Incomplete {
        /// The metric.
        metric: &'static str,
        /// `condition`, `threshold` or `field`.
        missing: &'static str,
    },
    /// A threshold that is NaN or infinite.
    #[error("threshold must be a finite number")]
    Threshold,
    /// An unknown field in `aggregateBy` or `field`.
    #[error("{what}: unknown field `{name}` (known: {known})")]
    UnknownField {
        /// `aggregateBy` or `field`.
        what: &'static str,
        /// The name.
        name: String,
        /// The known fields.
        known: String,
    },
    /// A metric over a text field.
    #[error("field `{0}` is not numeric (numeric: source_port, destination_port, rule_id, anomaly_score)")]
    NotNumeric(String),
    /// A severity outside 1-100.
    #[error("severity {0} is not within 1-100")]
    Severity(i32),
    /// A `${..}` that names nothing it can be filled from.
    #[error("{what}: `${{{name}}}` is not an aggregateBy field or the metric")]
    Substitution {
        /// `summary` or `description`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A `${` without its `}`.
    #[error("{0}: unterminated `${{`")]
    Unterminated(&'static str),
}

/// Parses a Go duration (`300ms`, `1.5h`, `1h30m`, `10s`); units `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`. `0` alone is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err("negative duration".into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: f64 = num.parse().map_err(|_| format!("bad number `{num}`"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit after `{num}` (ns, us, ms, s, m, h)")),
            other => return Err(format!("unknown unit `{other}` (ns, us, ms, s, m, h)")),
        };
        total += n * scale;
        rest = next;
    }
    if !total.is_finite() || total > 1e12 {
        return Err("duration too long".into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// A piece of a summary or description template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// An aggregateBy field.
    Key(Field),
    /// The metric's value.
    Value,
}

/// `summary` or `description` with its `${..}` substitutions resolved to
/// aggregateBy fields or the metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    fn compile(
        what: &'static str,
        text: &str,
        aggregate_by: &[Field],
        metric: Option<Metric>,
    ) -> Result<Template, AlertError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let end = after.find('}').ok_or(AlertError::Unterminated(what))?;
            let name = after[..end].trim();
            let part = match Field::from_name(name) {
                Some(f) if aggregate_by.contains(&f) => Part::Key(f),
                _ if metric.is_some_and(|m| m.name() == name) => Part::Value,
                _ => {
                    return Err(AlertError::Substitution {
                        what,
                        name: name.to_string(),
                    })
                }
            };
            parts.push(part);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// The text for one group.
    pub fn render(&self, group: &Group) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Key(f) => {
                    if let Some((_, v)) = group.keys.iter().find(|(k, _)| k == f) {
                        out.push_str(v);
                    }
                }
                Part::Value => {
                    if let Some(v) = group.value {
                        out.push_str(&format_value(v));
                    }
                }
            }
        }
        out
    }
}

/// A number as alerts print it: integers without a fraction.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// A checked GlobalAlert, ready to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// The alert's name.
    pub name: String,
    /// Severity 1-100.
    pub severity: i32,
    /// Selects the events.
    pub query: Query,
    /// Evaluation interval.
    pub period: Duration,
    /// Window each evaluation looks at.
    pub lookback: Duration,
    /// Grouping fields.
    pub aggregate_by: Vec<Field>,
    /// The metric; none fires for every group with events.
    pub metric: Option<Metric>,
    /// The field avg/max/min/sum are computed over.
    pub field: Option<Field>,
    /// The comparison (set when `metric` is).
    pub condition: Condition,
    /// The threshold (0 when there is no metric).
    pub threshold: f64,
    /// One-line summary template (the description when the spec has none).
    pub summary: Template,
    /// Description template.
    pub description: Template,
}

fn duration(
    field: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, AlertError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let err = |reason: String| AlertError::Duration {
        field,
        value: value.to_string(),
        reason,
    };
    let d = parse_duration(value).map_err(err)?;
    if d < MIN_PERIOD {
        return Err(err(format!("must be at least {}s", MIN_PERIOD.as_secs())));
    }
    if d > MAX_DURATION {
        return Err(err(format!(
            "must be at most {}h",
            MAX_DURATION.as_secs() / 3600
        )));
    }
    Ok(d)
}

fn known_field(what: &'static str, name: &str) -> Result<Field, AlertError> {
    Field::from_name(name).ok_or_else(|| AlertError::UnknownField {
        what,
        name: name.to_string(),
        known: Field::names(),
    })
}

impl AlertRule {
    /// Checks and compiles the spec of the alert called `name`.
    pub fn compile(name: &str, spec: &GlobalAlertSpec) -> Result<AlertRule, AlertError> {
        match spec.data_set.as_deref() {
            None | Some("waf") => {}
            Some(other) => return Err(AlertError::DataSet(other.to_string())),
        }
        if !(1..=100).contains(&spec.severity) {
            return Err(AlertError::Severity(spec.severity));
        }
        let query = Query::parse(spec.query.as_deref().unwrap_or(""))?;
        let period = duration("period", spec.period.as_deref(), DEFAULT_PERIOD)?;
        let lookback = duration("lookback", spec.lookback.as_deref(), DEFAULT_LOOKBACK)?;
        let mut aggregate_by = Vec::new();
        for a in &spec.aggregate_by {
            let f = known_field("aggregateBy", a)?;
            if !aggregate_by.contains(&f) {
                aggregate_by.push(f);
            }
        }
        let metric = match spec.metric.as_deref() {
            None | Some("") => None,
            Some(m) => Some(Metric::parse(m).ok_or_else(|| AlertError::Metric(m.to_string()))?),
        };
        let field = match spec.field.as_deref() {
            None | Some("") => None,
            Some(f) => Some(known_field("field", f)?),
        };
        let (condition, threshold) = match metric {
            None => (Condition::Gt, 0.0),
            Some(m) => {
                if m != Metric::Count {
                    let f = field.ok_or(AlertError::Incomplete {
                        metric: m.name(),
                        missing: "field",
                    })?;
                    if !f.is_numeric() {
                        return Err(AlertError::NotNumeric(f.name().to_string()));
                    }
                }
                let c = spec.condition.as_deref().ok_or(AlertError::Incomplete {
                    metric: m.name(),
                    missing: "condition",
                })?;
                let c = Condition::parse(c).ok_or_else(|| AlertError::Condition(c.to_string()))?;
                let t = spec.threshold.ok_or(AlertError::Incomplete {
                    metric: m.name(),
                    missing: "threshold",
                })?;
                if !t.is_finite() {
                    return Err(AlertError::Threshold);
                }
                (c, t)
            }
        };
        let description =
            Template::compile("description", &spec.description, &aggregate_by, metric)?;
        let summary = match spec.summary.as_deref() {
            Some(s) if !s.is_empty() => Template::compile("summary", s, &aggregate_by, metric)?,
            _ => description.clone(),
        };
        Ok(AlertRule {
            name: name.to_string(),
            severity: spec.severity,
            query,
            period,
            lookback,
            aggregate_by,
            metric,
            field,
            condition,
            threshold,
            summary,
            description,
        })
    }

    /// Groups `events` (those the query selects) by `aggregateBy`, computes
    /// the metric per group and compares it with the threshold. Without
    /// `aggregateBy` there is exactly one group, even with no events (so
    /// `count lt 1` can fire on silence); with it, only groups that have events.
    pub fn evaluate<'a>(&self, events: impl IntoIterator<Item = &'a WafEvent>) -> Evaluation {
        let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
        let mut truncated = false;
        if self.aggregate_by.is_empty() {
            groups.insert(Vec::new(), Acc::default());
        }
        for event in events {
            if !self.query.matches(event) {
                continue;
            }
            let numbers = match (self.metric, self.field) {
                (Some(m), Some(f)) if m != Metric::Count => event.numbers(f),
                _ => Vec::new(),
            };
            for keys in self.combinations(event) {
                let len = groups.len();
                let acc = match groups.entry(keys) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        if len >= MAX_GROUPS {
                            truncated = true;
                            continue;
                        }
                        v.insert(Acc::default())
                    }
                };
                acc.add(&numbers);
            }
        }
        let groups = groups
            .into_iter()
            .map(|(keys, acc)| {
                let value = match self.metric {
                    None | Some(Metric::Count) => Some(acc.count as f64),
                    Some(Metric::Sum) => Some(acc.sum),
                    Some(Metric::Avg) => (acc.n > 0).then(|| acc.sum / acc.n as f64),
                    Some(Metric::Max) => acc.max,
                    Some(Metric::Min) => acc.min,
                };
                let fired = match self.metric {
                    None => acc.count > 0,
                    Some(_) => value.is_some_and(|v| self.condition.holds(v, self.threshold)),
                };
                Group {
                    keys: self.aggregate_by.iter().copied().zip(keys).collect(),
                    count: acc.count,
                    value,
                    fired,
                }
            })
            .collect();
        Evaluation { groups, truncated }
    }

    /// The group keys `event` falls under: one value per aggregateBy field
    /// (`""` for a field it lacks), every combination when fields hold
    /// several values, at most [`MAX_COMBINATIONS`].
    fn combinations(&self, event: &WafEvent) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = vec![Vec::new()];
        for f in &self.aggregate_by {
            let mut values: Vec<String> = event
                .values(*f)
                .into_iter()
                .map(|v| v.into_owned())
                .collect();
            values.sort();
            values.dedup();
            if values.is_empty() {
                values.push(String::new());
            }
            let mut next = Vec::new();
            'outer: for prefix in &out {
                for v in &values {
                    if next.len() >= MAX_COMBINATIONS {
                        break 'outer;
                    }
                    let mut k = prefix.clone();
                    k.push(v.clone());
                    next.push(k);
                }
            }
            out = next;
        }
        out
    }
}

#[derive(Debug, Default)]
struct Acc {
    count: u64,
    n: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Acc {
    fn add(&mut self, numbers: &[f64]) {
        self.count += 1;
        for &x in numbers {
            self.n += 1;
            self.sum += x;
            self.min = Some(self.min.map_or(x, |m| m.min(x)));
            self.max = Some(self.max.map_or(x, |m| m.max(x)));
        }
    }
}

/// One group's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The aggregateBy fields and this group's values.
    pub keys: Vec<(Field, String)>,
    /// Events in the group.
    pub count: u64,
    /// The metric (none for avg/max/min over no values).
    pub value: Option<f64>,
    /// The condition held.
    pub fired: bool,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// One evaluation's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Per group, in key order.
    pub groups: Vec<Group>,
    /// Some events fell in groups past [`MAX_GROUPS`] and were not counted.
    pub truncated: bool,
}

impl Evaluation {
    /// The groups that fired.
    pub fn fired(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.fired)
    }

    /// The largest value over all groups (the alert's gauge).
    pub fn max_value(&self) -> Option<f64> {
        self.groups
            .iter()
            .filter_map(|g| g.value)
            .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::GlobalAlert;

    fn spec(yaml: &str) -> GlobalAlertSpec {
        let a: GlobalAlert = serde_yaml::from_str(&format!(
            "apiVersion: palisade.dev/v1\nkind: GlobalAlert\nmetadata: {{name: a}}\nspec:\n  description: d\n  severity: 50\n{yaml}"
        ))
        .unwrap();
        a.spec
    }

    fn ev(dest: &str, rules: &[i64], score: i64) -> WafEvent {
        let rules: Vec<String> = rules
            .iter()
            .map(|id| format!(r#"{{"id":{id},"msg":"m{id}"}}"#))
            .collect();
        WafEvent::from_json(
            "n",
            &format!(
                r#"{{"destination":{{"service":"{dest}","namespace":"web"}},"action":"denied",
                    "rules":[{}],"anomaly_score":{score}}}"#,
                rules.join(",")
            ),
        )
        .unwrap()
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("1s", Ok(1000)),
            ("5m", Ok(300_000)),
            ("1h30m", Ok(5_400_000)),
            ("1.5h", Ok(5_400_000)),
            ("300ms", Ok(300)),
            ("2m0.5s", Ok(120_500)),
            ("0", Ok(0)),
            ("", Err("empty")),
            ("5", Err("missing unit")),
            ("5d", Err("unknown unit `d`")),
            ("-1s", Err("negative")),
            ("m", Err("expected a number")),
            ("1.2.3s", Err("bad number")),
        ];
        for (s, want) in cases {
            match (parse_duration(s), want) {
                (Ok(d), Ok(ms)) => assert_eq!(d.as_millis() as u64, *ms, "{s}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{s}: {e}"),
                (got, _) => panic!("{s}: {got:?}"),
            }
        }
    }

    #[test]
    fn compile_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (
                "  dataSet: waf\n  query: '\"rule_info\" IN {\"*942100*\"}'",
                Ok(()),
            ),
            (
                "  query: action = denied\n  metric: count\n  condition: gt\n  threshold: 5",
                Ok(()),
            ),
            ("  dataSet: flows", Err("dataSet `flows` is not supported")),
            ("  query: 'rule_info IN {'", Err("query column 15")),
            ("  period: 5x", Err("period `5x`: unknown unit")),
            ("  period: 100ms", Err("at least 1s")),
            ("  lookback: 48h", Err("at most 24h")),
            (
                "  metric: median\n  condition: gt\n  threshold: 1",
                Err("metric `median`"),
            ),
            ("  metric: count\n  threshold: 1", Err("needs `condition`")),
            ("  metric: count\n  condition: gt", Err("needs `threshold`")),
            (
                "  metric: count\n  condition: above\n  threshold: 1",
                Err("condition `above`"),
            ),
            (
                "  metric: avg\n  condition: gt\n  threshold: 1",
                Err("needs `field`"),
            ),
            (
                "  metric: avg\n  field: host\n  condition: gt\n  threshold: 1",
                Err("not numeric"),
            ),
            (
                "  metric: max\n  field: anomaly_score\n  condition: gt\n  threshold: 1",
                Ok(()),
            ),
            (
                "  aggregateBy: [destination_name, nope]",
                Err("aggregateBy: unknown field `nope`"),
            ),
            ("  field: nope", Err("field: unknown field")),
            (
                "  summary: 'on ${destination_name}'",
                Err("`${destination_name}` is not"),
            ),
            (
                "  summary: 'on ${destination_name}'\n  aggregateBy: [destination_name]",
                Ok(()),
            ),
            (
                "  summary: 'x ${count}'\n  metric: count\n  condition: gt\n  threshold: 1",
                Ok(()),
            ),
            ("  summary: 'x ${count'", Err("unterminated")),
        ];
        for (yaml, want) in cases {
            let got = AlertRule::compile("a", &spec(yaml));
            match (want, &got) {
                (Ok(()), Ok(_)) => {}
                (Err(needle), Err(e)) => assert!(e.to_string().contains(needle), "{yaml}: {e}"),
                _ => panic!("{yaml}: want {want:?}, got {got:?}"),
            }
        }
        let mut s = spec("");
        s.severity = 0;
        assert_eq!(AlertRule::compile("a", &s), Err(AlertError::Severity(0)));
        let r = AlertRule::compile("a", &spec("")).unwrap();
        assert_eq!((r.period, r.lookback), (DEFAULT_PERIOD, DEFAULT_LOOKBACK));
    }

    #[test]
    fn conditions() {
        let cases = [
            (Condition::Eq, 5.0, true),
            (Condition::Eq, 4.0, false),
            (Condition::NotEq, 4.0, true),
            (Condition::NotEq, 5.0, false),
            (Condition::Gt, 4.0, true),
            (Condition::Gt, 5.0, false),
            (Condition::Gte, 5.0, true),
            (Condition::Gte, 6.0, false),
            (Condition::Lt, 6.0, true),
            (Condition::Lt, 5.0, false),
            (Condition::Lte, 5.0, true),
            (Condition::Lte, 4.0, false),
        ];
        for (c, threshold, want) in cases {
            assert_eq!(c.holds(5.0, threshold), want, "5 {} {threshold}", c.name());
            assert_eq!(Condition::parse(c.name()), Some(c));
        }
    }

    #[test]
    fn metrics_table() {
        // www: scores 5, 10, 15 (one event has two rules); api: score 20.
        let events = [
            ev("www", &[942100], 5),
            ev("www", &[942100, 949110], 10),
            ev("www", &[920350], 15),
            ev("api", &[942100], 20),
        ];
        let agg = "  aggregateBy: [destination_name]\n";
        // (spec, [(group, value, fired)])
        type Want<'a> = &'a [(&'a str, Option<f64>, bool)];
        let cases: &[(&str, Want)] = &[
            (
                "  metric: count\n  condition: gt\n  threshold: 2",
                &[("api", Some(1.0), false), ("www", Some(3.0), true)],
            ),
            (
                "  metric: count\n  condition: eq\n  threshold: 1",
                &[("api", Some(1.0), true), ("www", Some(3.0), false)],
            ),
            (
                "  metric: sum\n  field: anomaly_score\n  condition: gte\n  threshold: 30",
                &[("api", Some(20.0), false), ("www", Some(30.0), true)],
            ),
            (
                "  metric: avg\n  field: anomaly_score\n  condition: lt\n  threshold: 15",
                &[("api", Some(20.0), false), ("www", Some(10.0), true)],
            ),
            (
                "  metric: max\n  field: anomaly_score\n  condition: lte\n  threshold: 15",
                &[("api", Some(20.0), false), ("www", Some(15.0), true)],
            ),
            (
                "  metric: min\n  field: anomaly_score\n  condition: not_eq\n  threshold: 5",
                &[("api", Some(20.0), true), ("www", Some(5.0), false)],
            ),
            (
                "  metric: max\n  field: rule_id\n  condition: gt\n  threshold: 949000",
                &[
                    ("api", Some(942100.0), false),
                    ("www", Some(949110.0), true),
                ],
            ),
            (
                "  query: 'rule_id = 942100'\n  metric: count\n  condition: gte\n  threshold: 2",
                &[("api", Some(1.0), false), ("www", Some(2.0), true)],
            ),
            // No metric: every group with events fires.
            ("  query: 'rule_id = 920350'", &[("www", Some(1.0), true)]),
        ];
        for (yaml, want) in cases {
            let rule = AlertRule::compile("a", &spec(&format!("{agg}{yaml}"))).unwrap();
            let got = rule.evaluate(&events);
            let got: Vec<_> = got
                .groups
                .iter()
                .map(|g| (g.keys[0].1.as_str(), g.value, g.fired))
                .collect();
            assert_eq!(got, *want, "{yaml}");
        }
    }

    #[test]
    fn single_group_and_silence() {
        let rule = AlertRule::compile(
            "a",
            &spec("  metric: count\n  condition: lt\n  threshold: 1"),
        )
        .unwrap();
        let e = rule.evaluate(&[]);
        assert_eq!(e.groups.len(), 1);
        assert!(e.groups[0].fired);
        assert_eq!(e.max_value(), Some(0.0));
        let rule = AlertRule::compile(
            "a",
            &spec("  metric: avg\n  field: anomaly_score\n  condition: lt\n  threshold: 1"),
        )
        .unwrap();
        let e = rule.evaluate(&[]);
        assert_eq!(e.groups[0].value, None);
        assert!(!e.groups[0].fired);
        let rule = AlertRule::compile("a", &spec("")).unwrap();
        assert!(!rule.evaluate(&[]).groups[0].fired);
        assert!(rule.evaluate(&[ev("www", &[], 0)]).groups[0].fired);
    }

    #[test]
    fn multi_valued_grouping_and_templates() {
        let rule = AlertRule::compile(
            "a",
            &spec(
                "  aggregateBy: [destination_name, rule_id]\n  metric: count\n  condition: gt\n  threshold: 0\n  summary: '${count} hits of ${rule_id} on ${destination_name}'",
            ),
        )
        .unwrap();
        let e = rule.evaluate(&[
            ev("www", &[942100, 949110], 5),
            ev("www", &[942100], 5),
            ev("api", &[], 1),
        ]);
        let got: Vec<_> = e.groups.iter().map(|g| (g.to_string(), g.count)).collect();
        assert_eq!(
            got,
            [
                ("destination_name=api,rule_id=".to_string(), 1),
                ("destination_name=www,rule_id=942100".to_string(), 2),
                ("destination_name=www,rule_id=949110".to_string(), 1),
            ]
        );
        assert_eq!(rule.summary.render(&e.groups[1]), "2 hits of 942100 on www");
        // The description doubles as the summary when there is none.
        let rule = AlertRule::compile("a", &spec("")).unwrap();
        assert_eq!(rule.summary.render(&e.groups[0]), "d");
    }

    #[test]
    fn groups_are_bounded() {
        let rule = AlertRule::compile("a", &spec("  aggregateBy: [rule_id, rule_msg]")).unwrap();
        let ids: Vec<i64> = (0..100).collect();
        let e = rule.evaluate(&[ev("www", &ids, 1)]);
        assert_eq!(e.groups.len(), MAX_COMBINATIONS);
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(2.5), "2.5");
    }
}
