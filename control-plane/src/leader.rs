//! Leader election through a `coordination.k8s.io/v1` Lease: every replica
//! serves xDS and policy sync, but only the Lease holder writes to the
//! Kubernetes API (Warning Events, ApplicationLayer status).
//!
//! One round reads the Lease and then: creates it when absent; renews it when
//! this replica holds it; takes it over when it has expired (`renewTime +
//! leaseDurationSeconds < now`) or has no holder; otherwise follows. Writes
//! replace the Lease with the `resourceVersion` that was read, so of two
//! replicas racing for it exactly one wins and the other gets `409 Conflict`
//! (it then follows). Rounds run every `lease_duration / 3`. A leader whose
//! renewals keep failing gives up leadership once `2/3` of the lease duration
//! has passed since its last successful renewal, before the Lease can expire
//! and be taken by another replica.
//!
//! Leadership is published as a `tokio::sync::watch::Receiver<bool>`.
//!
//! A replica that shuts down steps down ([`LeaderElection::step_down`]): it
//! stops leading first, then clears the Lease's holder, so another replica
//! takes over at its next round instead of waiting for the Lease to expire.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Default Lease name (the chart's `palisade-control-plane`).
pub const DEFAULT_LEASE_NAME: &str = "palisade-control-plane";

/// Default lease duration.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Shortest lease duration accepted; shorter ones are raised to it.
const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);

/// Which Lease to hold, and as whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace; `None` means the client's default namespace.
    pub namespace: Option<String>,
    /// Holder identity (the pod name); must differ between replicas.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
}

impl LeaseConfig {
    /// A config for `identity` with the default name and duration.
    pub fn new(identity: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            name: DEFAULT_LEASE_NAME.to_string(),
            namespace: None,
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
        }
    }

    fn duration(&self) -> Duration {
        self.lease_duration.max(MIN_LEASE_DURATION)
    }

    /// Time between rounds.
    pub fn retry_period(&self) -> Duration {
        self.duration() / 3
    }

    /// How long a leader keeps leadership without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration() * 2 / 3
    }
}

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server refused or failed a request.
    #[error("lease request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The request did not answer in time.
    #[error("lease request timed out after {0:?}")]
    Timeout(Duration),
}

/// What one round found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    /// This replica holds the Lease (created, renewed or taken over).
    Leader,
    /// Another replica holds it, or won a race for it.
    Follower,
}

/// Elects a leader among replicas sharing a Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A running election; dropping it stops renewing (the Lease then expires and
/// another replica takes over); [`LeaderElection::step_down`] releases the
/// Lease at once.
#[derive(Debug)]
pub struct LeaderElection {
    leader: watch::Receiver<bool>,
    task: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
}

impl LeaderElection {
    /// Whether this replica currently leads; follows every change.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Whether this replica leads right now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Stops the election: publishes "not leader", then, if this replica
    /// holds the Lease, clears its holder so another replica takes it over
    /// at its next round. Waits at most one retry period for the API server.
    pub async fn step_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The task ends after its release attempt, which is bounded.
        let _ = (&mut self.task).await;
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A receiver that always says "leader" (no election: a single writer, or a
/// directory source).
pub fn always_leader() -> watch::Receiver<bool> {
    // The sender is dropped: the value stays `true` and `changed()` ends.
    watch::channel(true).1
}

fn conflict_or_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether `lease` may be taken over at `now` (expired or without holder);
/// `default_duration` is used when the Lease has none.
fn expired(spec: &LeaseSpec, now: Timestamp, default_duration: Duration) -> bool {
    if spec.holder_identity.as_deref().unwrap_or("").is_empty() {
        return true;
    }
    let Some(MicroTime(renewed)) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = spec
        .lease_duration_seconds
        .map(i64::from)
        .unwrap_or_else(|| i64::try_from(default_duration.as_secs()).unwrap_or(i64::MAX));
    match (*renewed).checked_add(SignedDuration::from_secs(secs.max(0))) {
        Ok(until) => until < now,
        // Beyond the representable range: never expires.
        Err(_) => false,
    }
}

impl LeaderElector {
    /// An elector for `config`, writing through `client`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaderElector {
        let api = match &config.namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::default_namespaced(client),
        };
        LeaderElector { api, config }
    }

    /// Starts the election in a task (on the current Tokio runtime); dropping
    /// the returned [`LeaderElection`] stops it.
    pub fn spawn(self) -> LeaderElection {
        let (tx, rx) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run_until(tx, async move {
            let _ = stopped.await;
        }));
        LeaderElection {
            leader: rx,
            task,
            stop: Some(stop),
        }
    }

    /// Runs rounds until every receiver of `leader` is gone.
    pub async fn run(self, leader: watch::Sender<bool>) {
        self.run_until(leader, std::future::pending()).await
    }

    /// Runs rounds until every receiver of `leader` is gone or `shutdown`
    /// completes; on shutdown a leader publishes "not leader" and releases
    /// the Lease (see [`LeaderElector::release`]).
    pub async fn run_until(
        self,
        leader: watch::Sender<bool>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let period = self.config.retry_period();
        let deadline = self.config.renew_deadline();
        let mut last_renewal: Option<Instant> = None;
        info!(
            lease = %self.config.name,
            identity = %self.config.identity,
            duration = ?self.config.duration(),
            "leader election started"
        );
        loop {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(period, self.round()).await {
                Ok(r) => r,
                Err(_) => Err(LeaderError::Timeout(period)),
            };
            let leading = *leader.borrow();
            match outcome {
                Ok(Round::Leader) => {
                    last_renewal = Some(started);
                    if !leading {
                        info!(identity = %self.config.identity, "became the leader");
                        leader.send_replace(true);
                    }
                }
                Ok(Round::Follower) => {
                    last_renewal = None;
                    if leading {
                        warn!(identity = %self.config.identity, "leadership lost to another replica");
                        leader.send_replace(false);
                    }
                }
                Err(e) => {
                    let overdue = last_renewal.is_none_or(|t| t.elapsed() >= deadline);
                    if leading && overdue {
                        warn!(error = %e, "cannot renew the lease before the deadline; leadership given up");
                        leader.send_replace(false);
                        last_renewal = None;
                    } else {
                        warn!(error = %e, leading, "lease round failed; retrying");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until((started + period).into()) => {}
                _ = leader.closed() => return,
                _ = &mut shutdown => {
                    let was_leading = leader.send_replace(false);
                    if was_leading {
                        match tokio::time::timeout(period, self.release()).await {
                            Ok(Ok(true)) => info!(identity = %self.config.identity, "stepped down: lease released"),
                            Ok(Ok(false)) => debug!("stepped down: the lease was no longer ours"),
                            Ok(Err(e)) => warn!(error = %e, "stepped down; releasing the lease failed (it will expire)"),
                            Err(_) => warn!("stepped down; releasing the lease timed out (it will expire)"),
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Clears the Lease's holder if this replica holds it, so that another
    /// replica takes it over at once (what client-go does on
    /// `ReleaseOnCancel`). Returns whether the Lease was released; a Lease
    /// held by someone else, or gone, is left alone.
    pub async fn release(&self) -> Result<bool, LeaderError> {
        let mut lease = match self.api.get(&self.config.name).await {
            Ok(lease) => lease,
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(LeaderError::Kube(e)),
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        let now = Timestamp::now();
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else wrote it since: it is not ours any more.
            Err(e) if conflict_or_exists(&e) => Ok(false),
            Err(e) => Err(LeaderError::Kube(e)),
        }
    }

    /// One read-then-write round.
    async fn round(&self) -> Result<Round, LeaderError> {
        let now = Timestamp::now();
        let existing = match self.api.get(&self.config.name).await {
            Ok(lease) => Some(lease),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(LeaderError::Kube(e)),
        };
        let duration_secs = i32::try_from(self.config.duration().as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leader),
                Err(e) if conflict_or_exists(&e) => {
                    debug!("lease created by another replica first");
                    Ok(Round::Follower)
                }
                Err(e) => Err(LeaderError::Kube(e)),
            };
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        if mine {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration_secs);
        } else if expired(&spec, now, self.config.duration()) {
            debug!(previous = ?spec.holder_identity, "lease expired; taking it over");
            spec.holder_identity = Some(self.config.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration_secs);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        } else {
            return Ok(Round::Follower);
        }
        lease.spec = Some(spec);
        // `lease.metadata.resource_version` is the one read: a concurrent
        // writer makes this a 409 Conflict.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Round::Leader),
            Err(e) if conflict_or_exists(&e) => {
                debug!("lease changed by another replica first");
                Ok(Round::Follower)
            }
            Err(e) => Err(LeaderError::Kube(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        holder: Option<&str>,
        renewed_secs_ago: Option<i64>,
        duration: Option<i32>,
    ) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed_secs_ago
                .map(|s| MicroTime(now.checked_sub(SignedDuration::from_secs(s)).unwrap())),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn expiry() {
        let now = Timestamp::now();
        let d = Duration::from_secs(15);
        let cases = [
            ("fresh", spec(Some("a"), Some(1), Some(15)), false),
            ("stale", spec(Some("a"), Some(20), Some(15)), true),
            (
                "stale by default duration",
                spec(Some("a"), Some(20), None),
                true,
            ),
            (
                "fresh by default duration",
                spec(Some("a"), Some(5), None),
                false,
            ),
            ("long duration", spec(Some("a"), Some(20), Some(60)), false),
            ("no holder", spec(None, Some(1), Some(15)), true),
            ("empty holder", spec(Some(""), Some(1), Some(15)), true),
            ("never renewed", spec(Some("a"), None, Some(15)), true),
        ];
        for (name, s, want) in cases {
            assert_eq!(expired(&s, now, d), want, "{name}");
        }
    }

    #[test]
    fn periods() {
        let mut c = LeaseConfig::new("a");
        assert_eq!(c.retry_period(), Duration::from_secs(5));
        assert_eq!(c.renew_deadline(), Duration::from_secs(10));
        c.lease_duration = Duration::ZERO;
        assert_eq!(c.retry_period(), Duration::from_secs(1) / 3);
    }

    #[tokio::test]
    async fn always_leader_stays_true() {
        let mut rx = always_leader();
        assert!(*rx.borrow());
        assert!(rx.changed().await.is_err());
        assert!(*rx.borrow_and_update());
    }
}
