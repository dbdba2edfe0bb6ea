//! GlobalAlert evaluation: enforcers' WAF events (reported over policy sync)
//! are kept in a bounded window; every alert is evaluated every `period` over
//! the last `lookback` of that window, grouped by `aggregateBy`, and when its
//! metric meets the condition it fires: a structured log line (target
//! `palisade::alerts`), `palisade_alerts_fired_total{alert}` and
//! `palisade_alert_last_value{alert}` on `/metrics`, and its state in
//! `GET /status` (`alerts`).
//!
//! - [`query`]: Calico's query language (`"rule_info" IN {"*942100*"} AND
//!   action = denied`), parsed with positioned errors.
//! - [`fields`]: the `waf` data set, i.e. how an event's JSON maps to the
//!   field names queries use.
//! - [`rule`]: a checked alert and one evaluation (group, metric, condition).
//! - [`window`]: the event window, bounded by the longest lookback and by
//!   [`window::DEFAULT_CAPACITY`] events (what the cap drops is counted).
//! - [`kube_status`]: with the Kubernetes source, each GlobalAlert's
//!   `status` (`lastExecuted`, `lastEvent`, a `Valid` condition).
//!
//! Time is the control plane's: an event belongs to the window from the
//! moment its report arrives, so clocks of nodes do not matter. Invalid
//! alerts are reported like other refused objects (a warning log line, and
//! in `/status` `problems`); an alert that was valid before keeps its last
//! good version.

pub mod fields;
pub mod kube_status;
pub mod query;
pub mod rule;
pub mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use fields::{Field, WafEvent};
pub use query::{Query, QueryError};
pub use rule::{AlertError, AlertRule, Evaluation, Group};
pub use window::EventWindow;

use crate::k8s::{GlobalAlert, GlobalAlertSpec};
use crate::source::{Inputs, Origin, Problem, Sourced};

/// Event lines longer than this are not parsed (counted as unparsable).
pub const MAX_EVENT_LINE_BYTES: usize = 1 << 20;

/// Fired groups remembered per alert for `/status`.
pub const MAX_REPORTED_GROUPS: usize = 20;

/// One group of one firing, as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredGroup {
    /// aggregateBy field to value.
    pub keys: BTreeMap<String, String>,
    /// The metric's value.
    pub value: Option<f64>,
    /// The summary with substitutions.
    pub summary: String,
}

/// What `/status` shows of one alert.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    /// A valid version is being evaluated.
    pub active: bool,
    /// Why the current spec is refused.
    pub problem: Option<String>,
    /// Severity of the version evaluated.
    pub severity: Option<i32>,
    /// Evaluations so far.
    pub evaluations: u64,
    /// When it was last evaluated (RFC 3339).
    pub last_evaluated: Option<String>,
    /// The metric at the last evaluation (largest over groups).
    pub last_value: Option<f64>,
    /// Events the last evaluation looked at (in its lookback, before the query).
    pub last_window_events: usize,
    /// When it last fired (RFC 3339).
    pub last_fired: Option<String>,
    /// The largest value among the groups that fired last.
    pub last_fired_value: Option<f64>,
    /// The groups that fired last (at most [`MAX_REPORTED_GROUPS`]).
    pub last_fired_groups: Vec<FiredGroup>,
    /// Groups fired, summed over evaluations.
    pub fired_total: u64,
}

/// The alert part of `/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsReport {
    /// Per alert name.
    pub alerts: BTreeMap<String, AlertState>,
    /// Events in the window.
    pub events_buffered: usize,
    /// Events received.
    pub events_received: u64,
    /// Events dropped because the window was full.
    pub events_dropped: u64,
    /// Event lines that were not JSON objects.
    pub events_unparsable: u64,
}

/// One group of one alert that fired (also logged).
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    /// The alert.
    pub alert: String,
    /// Its severity.
    pub severity: i32,
    /// Summary, substituted.
    pub summary: String,
    /// Description, substituted.
    pub description: String,
    /// The group.
    pub group: Group,
    /// `eq`, `gt`, ... (none without a metric).
    pub condition: Option<&'static str>,
    /// The threshold (none without a metric).
    pub threshold: Option<f64>,
}

#[derive(Debug)]
struct Entry {
    spec: GlobalAlertSpec,
    rule: Option<Arc<AlertRule>>,
    problem: Option<Problem>,
    next_due: Option<Instant>,
    state: AlertState,
}

#[derive(Debug, Default)]
struct Inner {
    window: EventWindow,
    alerts: BTreeMap<String, Entry>,
    received: u64,
    unparsable: u64,
}

/// The alert engine: the event window and every alert's state. Cheap to
/// clone (shared); safe to use from any task.
#[derive(Clone, Debug, Default)]
pub struct AlertEngine {
    inner: Arc<Mutex<Inner>>,
}

fn rfc3339(t: SystemTime) -> String {
    use k8s_openapi::jiff::Timestamp;
    match Timestamp::try_from(t) {
        Ok(ts) => Timestamp::from_second(ts.as_second())
            .unwrap_or(ts)
            .to_string(),
        Err(_) => String::new(),
    }
}

/// A Prometheus label value escaped for the text exposition format.
pub(crate) fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl AlertEngine {
    /// An engine with an empty window of the default capacity.
    pub fn new() -> AlertEngine {
        AlertEngine::default()
    }

    /// An engine whose window holds at most `capacity` events.
    pub fn with_capacity(capacity: usize) -> AlertEngine {
        let engine = AlertEngine::default();
        engine.lock().window = EventWindow::new(capacity, rule::DEFAULT_LOOKBACK);
        engine
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the event lines `node` reported, arriving now.
    pub fn ingest(&self, node: &str, lines: &[String]) {
        self.ingest_at(Instant::now(), node, lines);
    }

    /// Adds the event lines `node` reported, arriving at `now`.
    pub fn ingest_at(&self, now: Instant, node: &str, lines: &[String]) {
        let mut parsed = Vec::with_capacity(lines.len());
        let mut bad = 0u64;
        for line in lines {
            if line.len() > MAX_EVENT_LINE_BYTES {
                bad += 1;
                continue;
            }
            match WafEvent::from_json(node, line) {
                Ok(e) => parsed.push(e),
                Err(e) => {
                    debug!(node, error = %e, "event not kept for alerts");
                    bad += 1;
                }
            }
        }
        let mut inner = self.lock();
        inner.received += lines.len() as u64;
        inner.unparsable += bad;
        for e in parsed {
            inner.window.push(now, e);
        }
    }

    /// Replaces the alert set with `alerts` (a source's GlobalAlerts). An
    /// unchanged alert keeps its schedule; a new or changed one is first
    /// evaluated one period after `now`. A refused spec keeps the last good
    /// version of the alert, if there is one.
    pub fn load(&self, alerts: &[Sourced<GlobalAlert>], now: Instant) {
        let mut new_problems = Vec::new();
        {
            let mut inner = self.lock();
            let mut seen: BTreeMap<String, &Origin> = BTreeMap::new();
            for sourced in alerts {
                let name = sourced.object.metadata.name.clone().unwrap_or_default();
                if let Some(first) = seen.get(name.as_str()) {
                    let p = Problem {
                        origin: sourced.origin.clone(),
                        kind: "GlobalAlert".into(),
                        name: name.clone(),
                        message: format!("also defined at {first}; this one is not used"),
                    };
                    debug!("{p}");
                    continue;
                }
                seen.insert(name.clone(), &sourced.origin);
                let spec = &sourced.object.spec;
                if let Some(entry) = inner.alerts.get_mut(&name) {
                    if entry.spec == *spec {
                        if let Some(p) = &mut entry.problem {
                            p.origin = sourced.origin.clone();
                        }
                        continue;
                    }
                }
                let previous = inner.alerts.remove(&name);
                let entry = match crate::validate::check_alert(&name, spec) {
                    Ok(rule) => {
                        info!(alert = %name, period = ?rule.period, lookback = ?rule.lookback, "alert loaded");
                        let mut state = previous.map(|p| p.state).unwrap_or_default();
                        state.active = true;
                        state.problem = None;
                        state.severity = Some(rule.severity);
                        Entry {
                            spec: spec.clone(),
                            next_due: Some(now + rule.period),
                            rule: Some(Arc::new(rule)),
                            problem: None,
                            state,
                        }
                    }
                    Err(e) => {
                        let kept = previous.as_ref().and_then(|p| p.rule.clone());
                        let note = if kept.is_some() {
                            "; the last good version stays in force"
                        } else {
                            "; it is not evaluated"
                        };
                        let problem = Problem {
                            origin: sourced.origin.clone(),
                            kind: "GlobalAlert".into(),
                            name: name.clone(),
                            message: format!("{e}{note}"),
                        };
                        new_problems.push(problem.clone());
                        let mut state = previous
                            .as_ref()
                            .map(|p| p.state.clone())
                            .unwrap_or_default();
                        state.active = kept.is_some();
                        state.problem = Some(problem.message.clone());
                        Entry {
                            spec: spec.clone(),
                            next_due: previous.and_then(|p| p.next_due),
                            rule: kept,
                            problem: Some(problem),
                            state,
                        }
                    }
                };
                inner.alerts.insert(name, entry);
            }
            inner
                .alerts
                .retain(|name, _| seen.contains_key(name.as_str()));
            let retention = inner
                .alerts
                .values()
                .filter_map(|e| e.rule.as_ref().map(|r| r.lookback))
                .max()
                .unwrap_or(rule::DEFAULT_LOOKBACK);
            inner.window.set_retention(retention);
        }
        for p in new_problems {
            warn!("{p}");
        }
    }

    /// When the next alert is due (none without valid alerts).
    pub fn next_due(&self) -> Option<Instant> {
        self.lock().alerts.values().filter_map(|e| e.next_due).min()
    }

    /// Evaluates every alert due at `now` (`wall` is the same moment, for
    /// the timestamps shown), logs what fired and returns it.
    pub fn evaluate_due(&self, now: Instant, wall: SystemTime) -> Vec<Firing> {
        let stamp = rfc3339(wall);
        let mut firings = Vec::new();
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            inner.window.expire(now);
            for (name, entry) in inner.alerts.iter_mut() {
                let Some(rule) = entry.rule.clone() else {
                    continue;
                };
                if entry.next_due.is_some_and(|due| due > now) {
                    continue;
                }
                let mut next = entry.next_due.unwrap_or(now) + rule.period;
                if next <= now {
                    // Overdue by more than a period: do not catch up in a burst.
                    next = now + rule.period;
                }
                entry.next_due = Some(next);
                let window_events = inner.window.since(now, rule.lookback).count();
                let eval = rule.evaluate(inner.window.since(now, rule.lookback));
                if eval.truncated {
                    warn!(alert = %name, max = rule::MAX_GROUPS, "too many groups; some events were not counted");
                }
                let state = &mut entry.state;
                state.evaluations += 1;
                state.last_evaluated = Some(stamp.clone());
                state.last_value = eval.max_value();
                state.last_window_events = window_events;
                let fired: Vec<&Group> = eval.fired().collect();
                if fired.is_empty() {
                    continue;
                }
                state.fired_total += fired.len() as u64;
                state.last_fired = Some(stamp.clone());
                state.last_fired_value = fired
                    .iter()
                    .filter_map(|g| g.value)
                    .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))));
                state.last_fired_groups = fired
                    .iter()
                    .take(MAX_REPORTED_GROUPS)
                    .map(|g| FiredGroup {
                        keys: g
                            .keys
                            .iter()
                            .map(|(k, v)| (k.name().to_string(), v.clone()))
                            .collect(),
                        value: g.value,
                        summary: rule.summary.render(g),
                    })
                    .collect();
                for g in fired {
                    firings.push(Firing {
                        alert: name.clone(),
                        severity: rule.severity,
                        summary: rule.summary.render(g),
                        description: rule.description.render(g),
                        group: g.clone(),
                        condition: rule.metric.map(|_| rule.condition.name()),
                        threshold: rule.metric.map(|_| rule.threshold),
                    });
                }
            }
        }
        for f in &firings {
            let group: BTreeMap<&str, &str> = f
                .group
                .keys
                .iter()
                .map(|(k, v)| (k.name(), v.as_str()))
                .collect();
            let group = serde_json::to_string(&group).unwrap_or_default();
            warn!(
                target: "palisade::alerts",
                alert = %f.alert,
                severity = f.severity,
                summary = %f.summary,
                description = %f.description,
                group = %group,
                value = f.group.value,
                events = f.group.count,
                condition = f.condition,
                threshold = f.threshold,
                "alert fired"
            );
        }
        firings
    }

    /// What `/status` shows.
    pub fn report(&self) -> AlertsReport {
        let inner = self.lock();
        AlertsReport {
            alerts: inner
                .alerts
                .iter()
                .map(|(n, e)| (n.clone(), e.state.clone()))
                .collect(),
            events_buffered: inner.window.len(),
            events_received: inner.received,
            events_dropped: inner.window.dropped(),
            events_unparsable: inner.unparsable,
        }
    }

    /// Problems of the current alert specs.
    pub fn problems(&self) -> Vec<Problem> {
        self.lock()
            .alerts
            .values()
            .filter_map(|e| e.problem.clone())
            .collect()
    }

    /// Appends the alert metrics (Prometheus text exposition) to `out`.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let inner = self.lock();
        let _ = writeln!(
            out,
            "# HELP palisade_alerts_fired_total GlobalAlert firings (one per group per evaluation)."
        );
        let _ = writeln!(out, "# TYPE palisade_alerts_fired_total counter");
        for (name, e) in &inner.alerts {
            let _ = writeln!(
                out,
                "palisade_alerts_fired_total{{alert=\"{}\"}} {}",
                escape_label(name),
                e.state.fired_total
            );
        }
        let _ = writeln!(
            out,
            "# HELP palisade_alert_last_value A GlobalAlert's metric at its last evaluation (the largest over groups)."
        );
        let _ = writeln!(out, "# TYPE palisade_alert_last_value gauge");
        for (name, e) in &inner.alerts {
            if let Some(v) = e.state.last_value {
                let _ = writeln!(
                    out,
                    "palisade_alert_last_value{{alert=\"{}\"}} {v}",
                    escape_label(name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP palisade_alert_evaluations_total GlobalAlert evaluations."
        );
        let _ = writeln!(out, "# TYPE palisade_alert_evaluations_total counter");
        for (name, e) in &inner.alerts {
            let _ = writeln!(
                out,
                "palisade_alert_evaluations_total{{alert=\"{}\"}} {}",
                escape_label(name),
                e.state.evaluations
            );
        }
        let _ = writeln!(
            out,
            "# HELP palisade_alert_window_events Events held for alert evaluation."
        );
        let _ = writeln!(out, "# TYPE palisade_alert_window_events gauge");
        let _ = writeln!(out, "palisade_alert_window_events {}", inner.window.len());
        let _ = writeln!(
            out,
            "# HELP palisade_alert_events_dropped_total Events dropped because the alert window was full."
        );
        let _ = writeln!(out, "# TYPE palisade_alert_events_dropped_total counter");
        let _ = writeln!(
            out,
            "palisade_alert_events_dropped_total {}",
            inner.window.dropped()
        );
        let _ = writeln!(
            out,
            "# HELP palisade_alert_events_unparsable_total Reported event lines that were not JSON objects."
        );
        let _ = writeln!(out, "# TYPE palisade_alert_events_unparsable_total counter");
        let _ = writeln!(
            out,
            "palisade_alert_events_unparsable_total {}",
            inner.unparsable
        );
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Runs the alerts of `inputs` (reloaded on every change, once the source is
/// ready) on `engine` until the task is aborted.
pub async fn run(mut inputs: watch::Receiver<Arc<Inputs>>, engine: AlertEngine) {
    let mut inputs_open = true;
    loop {
        if inputs_open {
            let current = inputs.borrow_and_update().clone();
            if current.ready {
                engine.load(&current.alerts, Instant::now());
            }
        }
        loop {
            let due = engine.next_due();
            if !inputs_open && due.is_none() {
                return;
            }
            tokio::select! {
                changed = inputs.changed(), if inputs_open => {
                    if changed.is_err() {
                        inputs_open = false;
                        continue;
                    }
                    break;
                }
                _ = sleep_until(due) => {
                    engine.evaluate_due(Instant::now(), SystemTime::now());
                }
            }
        }
    }
}

/// Spawns [`run`] on the alert engine of `status`, with the current span.
pub fn spawn(
    inputs: watch::Receiver<Arc<Inputs>>,
    status: &crate::status::Status,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    tokio::spawn(run(inputs, status.alerts().clone()).in_current_span())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn alerts(yaml: &str) -> Vec<Sourced<GlobalAlert>> {
        serde_yaml::Deserializer::from_str(yaml)
            .enumerate()
            .map(|(i, doc)| Sourced {
                origin: Origin::File {
                    path: "alerts.yaml".into(),
                    line: i + 1,
                },
                object: serde::Deserialize::deserialize(doc).unwrap(),
            })
            .collect()
    }

    const SQLI: &str = r#"
apiVersion: palisade.dev/v1
kind: GlobalAlert
metadata: {name: sqli}
spec:
  summary: "SQLi against ${destination_name}: ${count}"
  description: "d"
  severity: 80
  dataSet: waf
  query: '"rule_info" IN {"*942100*"}'
  period: 1m
  lookback: 5m
  aggregateBy: [destination_name]
  metric: count
  condition: gte
  threshold: 2
"#;

    fn sqli(dest: &str) -> String {
        format!(
            r#"{{"destination":{{"service":"{dest}"}},"rules":[{{"id":942100,"msg":"SQLi"}}]}}"#
        )
    }

    #[test]
    fn evaluates_on_schedule_and_fires() {
        let engine = AlertEngine::new();
        let t0 = Instant::now();
        let m = Duration::from_secs(60);
        engine.load(&alerts(SQLI), t0);
        assert_eq!(engine.next_due(), Some(t0 + m));
        engine.ingest_at(
            t0,
            "n1",
            &[
                sqli("www"),
                sqli("www"),
                sqli("api"),
                "not json".into(),
                r#"{"rules":[]}"#.into(),
            ],
        );
        // Not due yet.
        assert!(engine
            .evaluate_due(t0 + m / 2, SystemTime::now())
            .is_empty());
        assert_eq!(engine.report().alerts["sqli"].evaluations, 0);
        let fired = engine.evaluate_due(t0 + m, SystemTime::now());
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].summary, "SQLi against www: 2");
        assert_eq!(fired[0].group.value, Some(2.0));
        assert_eq!(fired[0].condition, Some("gte"));
        let r = engine.report();
        assert_eq!(
            (r.events_received, r.events_unparsable, r.events_buffered),
            (5, 1, 4)
        );
        let s = &r.alerts["sqli"];
        assert_eq!(
            (s.evaluations, s.fired_total, s.last_value),
            (1, 1, Some(2.0))
        );
        assert!(s.last_fired.as_deref().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(s.last_fired_groups[0].keys["destination_name"], "www");
        let mut metrics = String::new();
        engine.write_metrics(&mut metrics);
        assert!(
            metrics.contains("palisade_alerts_fired_total{alert=\"sqli\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("palisade_alert_last_value{alert=\"sqli\"} 2\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("palisade_alert_events_unparsable_total 1\n"),
            "{metrics}"
        );
        // Next period, the events are 6 minutes old: outside the 5m lookback.
        assert_eq!(engine.next_due(), Some(t0 + 2 * m));
        assert!(engine
            .evaluate_due(t0 + 6 * m, SystemTime::now())
            .is_empty());
        let s = &engine.report().alerts["sqli"];
        assert_eq!((s.evaluations, s.fired_total), (2, 1));
        // Overdue evaluations do not burst: the next is a period after now.
        assert_eq!(engine.next_due(), Some(t0 + 7 * m));
        // Expired events left the window (retention = the longest lookback).
        assert_eq!(engine.report().events_buffered, 0);
    }

    #[test]
    fn invalid_alerts_are_problems_and_keep_last_good() {
        let engine = AlertEngine::new();
        let t0 = Instant::now();
        engine.load(&alerts(SQLI), t0);
        let broken = SQLI.replace(r#"IN {"*942100*"}'"#, r#"IN {"*942100*"'"#);
        engine.load(&alerts(&broken), t0);
        let problems = engine.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, "GlobalAlert");
        assert!(
            problems[0]
                .message
                .starts_with("query column 27: expected `,` or `}`"),
            "{}",
            problems[0].message
        );
        assert!(problems[0]
            .message
            .ends_with("the last good version stays in force"));
        let s = &engine.report().alerts["sqli"];
        assert!(s.active);
        // Still evaluated with the last good version, on the same schedule.
        assert_eq!(engine.next_due(), Some(t0 + Duration::from_secs(60)));
        engine.ingest_at(t0, "n", &[sqli("www"), sqli("www")]);
        assert_eq!(
            engine
                .evaluate_due(t0 + Duration::from_secs(60), SystemTime::now())
                .len(),
            1
        );
        // Fixed: no problem; removed: gone.
        engine.load(&alerts(SQLI), t0);
        assert!(engine.problems().is_empty());
        engine.load(&[], t0);
        assert!(engine.report().alerts.is_empty());
        assert_eq!(engine.next_due(), None);
        // Never valid: not evaluated.
        engine.load(&alerts(&broken), t0);
        assert!(!engine.report().alerts["sqli"].active);
        assert!(engine.problems()[0]
            .message
            .ends_with("it is not evaluated"));
        assert_eq!(engine.next_due(), None);
    }

    #[test]
    fn unchanged_alerts_keep_their_schedule() {
        let engine = AlertEngine::new();
        let t0 = Instant::now();
        engine.load(&alerts(SQLI), t0);
        engine.load(&alerts(SQLI), t0 + Duration::from_secs(30));
        assert_eq!(engine.next_due(), Some(t0 + Duration::from_secs(60)));
        let changed = SQLI.replace("threshold: 2", "threshold: 3");
        engine.load(&alerts(&changed), t0 + Duration::from_secs(30));
        assert_eq!(engine.next_due(), Some(t0 + Duration::from_secs(90)));
    }

    #[test]
    fn repository_example_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/alerts.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let engine = AlertEngine::new();
        engine.load(&alerts(&text), Instant::now());
        assert!(engine.problems().is_empty(), "{:?}", engine.problems());
        assert!(engine.report().alerts["waf-sqli-burst"].active);
    }

    #[test]
    fn window_is_capped() {
        let engine = AlertEngine::with_capacity(3);
        let lines: Vec<String> = (0..5).map(|_| sqli("www")).collect();
        engine.ingest("n", &lines);
        let r = engine.report();
        assert_eq!((r.events_buffered, r.events_dropped), (3, 2));
    }
}
