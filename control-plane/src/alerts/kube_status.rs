//! Writes each GlobalAlert's `status` (`lastExecuted`, `lastEvent` and a
//! `Valid` condition) to the Kubernetes API, from the alert engine's state,
//! at most once per interval per alert and only when it changed; only while
//! this replica is the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::Api;
use tokio::sync::watch;
use tracing::debug;

use super::{AlertEngine, AlertState};
use crate::k8s::GlobalAlert;

/// Default time between two looks at the engine's state.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// What was last written for one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Written {
    last_executed: Option<String>,
    last_event: Option<String>,
    valid: bool,
    message: String,
    transition: String,
}

/// Writes GlobalAlert status from an [`AlertEngine`].
pub struct AlertStatusWriter {
    client: kube::Client,
    engine: AlertEngine,
    leader: watch::Receiver<bool>,
    interval: Duration,
}

impl std::fmt::Debug for AlertStatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertStatusWriter")
            .field("engine", &self.engine)
            .field("leader", &*self.leader.borrow())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn now_rfc3339() -> String {
    super::rfc3339(std::time::SystemTime::now())
}

fn condition(state: &AlertState) -> (bool, String) {
    match &state.problem {
        None => (true, "the alert is evaluated".to_string()),
        Some(p) => (false, p.clone()),
    }
}

impl AlertStatusWriter {
    /// A writer for `engine`'s alerts that writes while `leader` is true.
    pub fn new(
        client: kube::Client,
        engine: AlertEngine,
        leader: watch::Receiver<bool>,
    ) -> AlertStatusWriter {
        AlertStatusWriter {
            client,
            engine,
            leader,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// Looks at the engine's state every `interval` (at least 10 ms).
    pub fn with_interval(mut self, interval: Duration) -> AlertStatusWriter {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let api: Api<GlobalAlert> = Api::all(self.client.clone());
        let mut written: BTreeMap<String, Written> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !*self.leader.borrow() {
                // A new term writes everything again.
                written.clear();
                continue;
            }
            let report = self.engine.report();
            written.retain(|name, _| report.alerts.contains_key(name));
            for (name, state) in &report.alerts {
                let (valid, message) = condition(state);
                let previous = written.get(name);
                let transition = match previous {
                    Some(p) if p.valid == valid => p.transition.clone(),
                    _ => now_rfc3339(),
                };
                let next = Written {
                    last_executed: state.last_evaluated.clone(),
                    last_event: state.last_fired.clone(),
                    valid,
                    message,
                    transition,
                };
                if previous == Some(&next) {
                    continue;
                }
                let patch = serde_json::json!({
                    "status": {
                        "lastExecuted": next.last_executed,
                        "lastEvent": next.last_event,
                        "conditions": [{
                            "type": "Valid",
                            "status": if valid { "True" } else { "False" },
                            "reason": if valid { "Accepted" } else { "Invalid" },
                            "message": next.message,
                            "lastTransitionTime": next.transition,
                        }],
                    }
                });
                match api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        written.insert(name.clone(), next);
                    }
                    Err(e) => debug!(alert = %name, error = %e, "cannot write GlobalAlert status"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::{Instant, SystemTime};

    use axum::extract::{Path, State};
    use axum::routing::patch;
    use serde_json::{json, Value};

    use super::*;
    use crate::source::{Origin, Sourced};

    type Patches = Arc<Mutex<Vec<(String, Value)>>>;

    async fn fake_api() -> (SocketAddr, Patches, tokio::task::JoinHandle<()>) {
        let patches: Patches = Arc::default();
        let app = axum::Router::new()
            .route(
                "/apis/palisade.dev/v1/globalalerts/:name/status",
                patch(
                    |State(p): State<Patches>, Path(name): Path<String>, body: String| async move {
                        let body: Value = serde_json::from_str(&body).unwrap_or_default();
                        p.lock().unwrap().push((name.clone(), body.clone()));
                        axum::Json(json!({
                            "apiVersion": "palisade.dev/v1",
                            "kind": "GlobalAlert",
                            "metadata": {"name": name},
                            "spec": {"description": "d", "severity": 1},
                            "status": body["status"],
                        }))
                    },
                ),
            )
            .with_state(patches.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, patches, task)
    }

    fn alert(name: &str, query: &str) -> Sourced<GlobalAlert> {
        Sourced {
            origin: Origin::Builtin {
                what: "test".into(),
            },
            object: serde_json::from_value(json!({
                "apiVersion": "palisade.dev/v1",
                "kind": "GlobalAlert",
                "metadata": {"name": name},
                "spec": {"description": "d", "severity": 50, "query": query, "period": "1s"}
            }))
            .unwrap(),
        }
    }

    /// Polls `patches` until `cond` holds (bounded).
    async fn wait_for(patches: &Patches, what: &str, cond: impl Fn(&[(String, Value)]) -> bool) {
        for _ in 0..1000 {
            if cond(&patches.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never saw {what}: {:?}", patches.lock().unwrap());
    }

    #[tokio::test]
    async fn writes_status_when_leading_and_changed() {
        let (addr, patches, server) = fake_api().await;
        let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        config.connect_timeout = Some(Duration::from_secs(5));
        let client = kube::Client::try_from(config).unwrap();
        let engine = AlertEngine::new();
        let t0 = Instant::now();
        engine.load(
            &[
                alert("good", "action = denied"),
                alert("bad", "action IN x"),
            ],
            t0,
        );
        let (leader_tx, leader_rx) = watch::channel(false);
        let writer = AlertStatusWriter::new(client, engine.clone(), leader_rx)
            .with_interval(Duration::from_millis(10));
        let task = tokio::spawn(writer.run());

        // Not the leader: nothing is written.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(patches.lock().unwrap().is_empty());

        leader_tx.send_replace(true);
        wait_for(&patches, "both alerts' status", |p| p.len() >= 2).await;
        {
            let p = patches.lock().unwrap();
            let bad = &p.iter().find(|(n, _)| n == "bad").unwrap().1["status"];
            assert_eq!(bad["conditions"][0]["type"], "Valid");
            assert_eq!(bad["conditions"][0]["status"], "False");
            assert!(bad["conditions"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("query column 11: expected `{`"));
            let good = &p.iter().find(|(n, _)| n == "good").unwrap().1["status"];
            assert_eq!(good["conditions"][0]["status"], "True");
            assert_eq!(good["lastExecuted"], Value::Null);
        }
        // Unchanged state: no new writes, however many intervals pass.
        let before = patches.lock().unwrap().len();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(patches.lock().unwrap().len(), before);

        // An evaluation that fires: lastExecuted and lastEvent are written.
        engine.ingest_at(t0, "n", &[r#"{"action":"denied"}"#.to_string()]);
        let fired = engine.evaluate_due(t0 + Duration::from_secs(1), SystemTime::now());
        assert_eq!(fired.len(), 1);
        wait_for(&patches, "lastEvent of `good`", |p| {
            p.iter()
                .any(|(n, b)| n == "good" && b["status"]["lastEvent"].is_string())
        })
        .await;
        {
            let p = patches.lock().unwrap();
            let (_, last) = p.iter().rev().find(|(n, _)| n == "good").unwrap();
            assert_eq!(last["status"]["lastExecuted"], last["status"]["lastEvent"]);
        }
        task.abort();
        server.abort();
    }
}
