//! Security events: one JSON object per request that was denied or matched a
//! logging rule, written as a line to stdout or a file, rate-limited per
//! interval, and queued for the control plane (`EventReport`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

/// The source of a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SourceInfo {
    /// IP address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Namespace from the workload table (empty when unknown).
    pub namespace: String,
    /// Pod from the workload table (empty when unknown).
    pub pod: String,
}

/// The destination of a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DestinationInfo {
    /// Service name (empty when unknown).
    pub service: String,
    /// Namespace (empty when unknown).
    pub namespace: String,
    /// IP address.
    pub ip: String,
    /// Port.
    pub port: u16,
}

/// A WAF rule that matched.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleInfo {
    /// Rule id.
    pub id: i64,
    /// Expanded `msg`.
    pub msg: String,
    /// Severity name (`CRITICAL`, ...), empty when unset.
    pub severity: String,
    /// Expanded `logdata`.
    pub data: String,
    /// Tags.
    pub tags: Vec<String>,
    /// File the rule is defined in.
    pub file: String,
    /// Line.
    pub line: u32,
}

/// The policy rule that decided (or logged) a request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyInfo {
    /// Tier.
    pub tier: String,
    /// Policy (empty when the tier's default action decided).
    pub policy: String,
    /// Rule index (absent when the tier's default action decided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// `Allow`, `Deny`, `Log`, `Pass`, or `default` for a tier default.
    pub action: String,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339 UTC time.
    pub time: String,
    /// `x-request-id`.
    pub request_id: String,
    /// Who sent it.
    pub source: SourceInfo,
    /// Where it went.
    pub destination: DestinationInfo,
    /// Host header.
    pub host: String,
    /// Method.
    pub method: String,
    /// Path as sent (with query).
    pub path: String,
    /// Protocol (`HTTP/1.1`).
    pub protocol: String,
    /// `allowed`, `denied` or `detected`.
    pub action: &'static str,
    /// WAF mode of the service (`On`, `DetectionOnly`, `Off`).
    pub mode: &'static str,
    /// What decided: `waf`, `policy`, `unknown_service`, `no_snapshot`, `error`.
    pub reason: &'static str,
    /// Matched WAF rules that log.
    pub rules: Vec<RuleInfo>,
    /// Inbound anomaly score.
    pub anomaly_score: i64,
    /// Policy rule that denied the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyInfo>,
    /// Policy `Log` rules that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_logs: Vec<PolicyInfo>,
    /// Snapshot version that decided.
    pub snapshot_version: String,
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Where event lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventOutput {
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// Not written locally (still reported upstream).
    None,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
}

/// Rate-limits, writes and queues events.
#[derive(Debug)]
pub struct EventSink {
    window: Mutex<Window>,
    suppressed: AtomicU64,
    unreported_suppressed: AtomicU64,
    local: Option<mpsc::Sender<String>>,
    upstream: mpsc::Sender<String>,
}

/// Receiving ends of an [`EventSink`]'s queues.
#[derive(Debug)]
pub struct EventQueues {
    /// Lines for the local writer (absent for [`EventOutput::None`]).
    pub local: Option<mpsc::Receiver<String>>,
    /// JSON objects for the control plane.
    pub upstream: mpsc::Receiver<String>,
}

/// Queue depth for each destination; events beyond it are dropped and counted.
pub const QUEUE_DEPTH: usize = 4096;

impl EventSink {
    /// A sink and the queues a writer and the sync client drain.
    pub fn new(output: &EventOutput) -> (EventSink, EventQueues) {
        let (local_tx, local_rx) = match output {
            EventOutput::None => (None, None),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                (Some(tx), Some(rx))
            }
        };
        let (up_tx, up_rx) = mpsc::channel(QUEUE_DEPTH);
        (
            EventSink {
                window: Mutex::new(Window {
                    started: Instant::now(),
                    count: 0,
                }),
                suppressed: AtomicU64::new(0),
                unreported_suppressed: AtomicU64::new(0),
                local: local_tx,
                upstream: up_tx,
            },
            EventQueues {
                local: local_rx,
                upstream: up_rx,
            },
        )
    }

    /// Admits one event under the rate limit (`per_interval` events per
    /// `interval`; no limit when either is zero/absent).
    fn admit(&self, interval: Option<Duration>, per_interval: u32) -> bool {
        let (Some(interval), true) = (interval, per_interval > 0) else {
            return true;
        };
        let mut w = match self.window.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if now.duration_since(w.started) >= interval {
            w.started = now;
            w.count = 0;
        }
        if w.count < per_interval {
            w.count += 1;
            true
        } else {
            false
        }
    }

    /// Emits an event unless rate-limited; returns whether it was emitted.
    pub fn emit(&self, event: &Event, interval: Option<Duration>, per_interval: u32) -> bool {
        if !self.admit(interval, per_interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            self.unreported_suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let line = match serde_json::to_string(event) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialise event");
                return false;
            }
        };
        if let Some(local) = &self.local {
            if local.try_send(line.clone()).is_err() {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.upstream.try_send(line).is_err() {
            self.unreported_suppressed.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Events dropped by the rate limit or full queues, in total.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// Takes the count of events not reported upstream since the last call.
    pub fn take_unreported(&self) -> u64 {
        self.unreported_suppressed.swap(0, Ordering::Relaxed)
    }
}

/// Writes event lines to their output until `shutdown` resolves (then writes
/// what is queued) or the queue closes.
pub async fn write_events(
    output: EventOutput,
    mut lines: mpsc::Receiver<String>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut file = match &output {
        EventOutput::File(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open events file; events go to stdout");
                None
            }
        },
        _ => None,
    };
    tokio::pin!(shutdown);
    let mut stopping = false;
    loop {
        let first = if stopping {
            match lines.try_recv() {
                Ok(l) => l,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(l) => l,
                    None => return,
                },
                _ = &mut shutdown => {
                    stopping = true;
                    continue;
                }
            }
        };
        let mut batch = first;
        batch.push('\n');
        while let Ok(more) = lines.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        let result = match file.as_mut() {
            Some(f) => f.write_all(batch.as_bytes()).and_then(|_| f.flush()),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(batch.as_bytes()).and_then(|_| out.flush())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            time: rfc3339(UNIX_EPOCH),
            request_id: "r1".into(),
            source: SourceInfo::default(),
            destination: DestinationInfo::default(),
            host: "h".into(),
            method: "GET".into(),
            path: "/".into(),
            protocol: "HTTP/1.1".into(),
            action: "denied",
            mode: "On",
            reason: "waf",
            rules: vec![],
            anomaly_score: 5,
            policy: None,
            policy_logs: vec![],
            snapshot_version: "1".into(),
        }
    }

    #[test]
    fn formats_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_763_728_496, "2025-11-21T12:34:56.000Z"),
            (4_102_444_799, "2099-12-31T23:59:59.000Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn rate_limits_per_window_and_counts_suppressed() {
        let (sink, mut queues) = EventSink::new(&EventOutput::None);
        let window = Some(Duration::from_secs(3600));
        let emitted = (0..5).filter(|_| sink.emit(&event(), window, 2)).count();
        assert_eq!(emitted, 2);
        assert_eq!(sink.suppressed_total(), 3);
        assert_eq!(sink.take_unreported(), 3);
        assert_eq!(sink.take_unreported(), 0);
        let line = queues.upstream.try_recv().expect("queued");
        let json: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(json["action"], "denied");
        assert_eq!(json["anomaly_score"], 5);
        assert!(json.get("policy").is_none());
        // No limit configured.
        assert!((0..10).all(|_| sink.emit(&event(), None, 2)));
        assert!((0..10).all(|_| sink.emit(&event(), window, 0)));
    }
}
