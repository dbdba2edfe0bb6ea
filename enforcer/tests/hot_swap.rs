//! Hot swap under load: a real Envoy and the enforcer, fed by a fake control
//! plane over the policy-sync stream, while a load generator sends mixed
//! traffic whose expected answers hold in every version. Rulesets and
//! policies (the CRS plus a per-version rule file) change 20 times (plus one broken update that must be rejected);
//! no request may fail or be decided wrongly, and every new version must be
//! acknowledged and observably active.

#[path = "support/control_plane.rs"]
mod control_plane;
#[path = "support/harness.rs"]
mod harness;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::{pb_path, pb_rule, pb_ruleset, pb_service, pb_settings, FakeControlPlane};
use harness::{crs_ruleset, inline_ruleset, request, wait_for, Envoy, Route, Upstream};
use palisade_enforcer::config::{Config, ControlPlaneAddr};
use palisade_enforcer::events::EventOutput;
use palisade_enforcer::state::{hash_files, RulesetSource};
use palisade_proto::sync::v1 as pb;

const WAIT: Duration = Duration::from_secs(20);

/// Version `n`: a file that blocks `probe=v<n>` and the common marker (with
/// the CRS PL1 in front when `crs` is given), and a policy that denies the
/// prefix `/blocked-v<n>` (plus GET/POST only). Every version's ruleset has
/// new content, so every swap compiles the whole ruleset again.
fn state(crs: Option<&RulesetSource>, n: u32) -> pb::State {
    let rules = format!(
        "SecRule ARGS:q \"@contains evil-common\" \"id:1000,phase:2,deny,status:403,log,msg:'common'\"\n\
         SecRule ARGS:probe \"@streq v{n}\" \"id:{id},phase:1,deny,status:403,log,msg:'probe v{n}'\"\n",
        id = 2000 + n
    );
    let mut files = match crs {
        Some(crs) => crs.files.clone(),
        None => [(
            "modsecdefault.conf".to_string(),
            b"SecRuleEngine On\nSecRequestBodyAccess On\n".to_vec(),
        )]
        .into(),
    };
    files.insert("zz-swap.conf".to_string(), rules.into_bytes());
    let ruleset = RulesetSource {
        name: "swap".into(),
        hash: hash_files(&files),
        files,
    };
    pb::State {
        version: format!("v{n}"),
        settings: Some(pb_settings("swap")),
        services: vec![pb_service("shop", "web", pb::WafMode::On)],
        rulesets: vec![pb_ruleset(&ruleset)],
        tiers: vec![pb::Tier {
            name: "default".into(),
            order: 100.0,
            default_action: "Deny".into(),
            policies: vec![pb::Policy {
                name: format!("web-v{n}"),
                selector: "app == 'web'".into(),
                ingress: vec![
                    pb_rule(
                        "Deny",
                        &[],
                        vec![pb_path(None, Some(&format!("/blocked-v{n}")))],
                    ),
                    pb_rule("Allow", &["GET", "POST"], vec![]),
                ],
                ..Default::default()
            }],
        }],
        workloads: vec![],
    }
}

/// A state whose ruleset does not parse.
fn broken_state(crs: Option<&RulesetSource>) -> pb::State {
    let mut s = state(crs, 999);
    s.version = "broken".into();
    s.rulesets = vec![pb_ruleset(&inline_ruleset(
        "swap",
        "SecRuleEngine On\nSecRule ARGS \"@nosuchoperator x\" \"id:1,phase:1,deny\"\n",
    ))];
    s
}

/// The traffic mix: (method, target, body, expected status in every version).
const MIX: &[(&str, &str, Option<&[u8]>, u16)] = &[
    ("GET", "/", None, 200),
    ("GET", "/products?q=shoes", None, 200),
    ("GET", "/search?q=evil-common", None, 403),
    ("OPTIONS", "/", None, 403),
    ("POST", "/form", Some(b"q=hello&x=1"), 200),
    ("POST", "/form", Some(b"q=evil-common"), 403),
    ("DELETE", "/item/1", None, 403),
];

#[derive(Default)]
struct LoadStats {
    sent: AtomicU64,
    failed: AtomicU64,
    wrong: AtomicU64,
}

/// The two tests share 2 cores with Envoy and the load: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_rulesets_and_policies_under_load() {
    let _guard = ONE_AT_A_TIME.lock().await;
    run_swaps(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_the_crs_under_load() {
    let _guard = ONE_AT_A_TIME.lock().await;
    run_swaps(Some(&crs_ruleset("crs"))).await;
}

async fn run_swaps(crs: Option<&RulesetSource>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("enforcer.sock");
    let mut cp = FakeControlPlane::start().await;
    let mut config = Config::with_socket(&socket);
    config.control_plane = Some(ControlPlaneAddr::Http(format!("http://{}", cp.addr)));
    config.events = EventOutput::File(dir.path().join("events.log"));
    let enforcer = palisade_enforcer::start(config)
        .await
        .expect("enforcer starts");
    let upstream = Upstream::start().await;
    let envoy = Envoy::start(
        dir.path(),
        &socket,
        upstream.addr,
        &[Route::new("web.test", "shop/web")],
    )
    .await;
    let listener = envoy.raw;

    // Before any snapshot: the failure mode (deny).
    assert_eq!(
        request(listener, "GET", "/", "web.test", None)
            .await
            .expect("get"),
        403
    );

    let conn = cp.next_connection(WAIT).await;
    assert_eq!(conn.hello.node, "standalone");
    assert_eq!(conn.hello.active_version, "");
    conn.send_state(state(crs, 0)).await;
    let ack = cp.ack_for("v0", WAIT).await;
    assert!(ack.applied, "v0 rejected: {}", ack.error);
    conn.send_in_sync("v0").await;
    assert_eq!(
        request(listener, "GET", "/", "web.test", None)
            .await
            .expect("get"),
        200
    );

    // Load: bounded number of requests per worker, stopped early when swaps end.
    let stats = Arc::new(LoadStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3usize {
        let stats = stats.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut mistakes = Vec::new();
            for i in 0..20_000usize {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (method, target, body, want) = MIX[(i + w) % MIX.len()];
                stats.sent.fetch_add(1, Ordering::Relaxed);
                let result = request(
                    listener,
                    method,
                    target,
                    "web.test",
                    body.map(|b| ("application/x-www-form-urlencoded", b)),
                )
                .await;
                match result {
                    Ok(code) if code == want => {}
                    Ok(code) => {
                        stats.wrong.fetch_add(1, Ordering::Relaxed);
                        mistakes.push(format!("{method} {target}: {code}, want {want}"));
                    }
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        mistakes.push(format!("{method} {target}: {e}"));
                    }
                }
            }
            mistakes
        }));
    }

    let mut activation = Vec::new();
    for n in 1..=20u32 {
        if n == 10 {
            // A broken update is rejected and the previous version stays.
            conn.send_state(broken_state(crs)).await;
            let ack = cp.ack_for("broken", WAIT).await;
            assert!(!ack.applied, "broken state applied");
            assert!(
                ack.error.contains("rules.conf"),
                "error names the file: {}",
                ack.error
            );
            let probe = format!("/?probe=v{}", n - 1);
            assert_eq!(
                request(listener, "GET", &probe, "web.test", None)
                    .await
                    .expect("get"),
                403
            );
            assert_eq!(
                enforcer.shared.snapshots.version().as_deref(),
                Some(format!("v{}", n - 1).as_str())
            );
        }
        // Let the load run between swaps (at least 50 more requests).
        let before = stats.sent.load(Ordering::Relaxed);
        let progressed = wait_for(WAIT, || {
            let stats = stats.clone();
            async move { (stats.sent.load(Ordering::Relaxed) >= before + 50).then_some(()) }
        })
        .await;
        assert!(progressed.is_some(), "the load generator stalled");
        let sent = Instant::now();
        conn.send_state(state(crs, n)).await;
        let ack = cp.ack_for(&format!("v{n}"), WAIT).await;
        assert!(ack.applied, "v{n} rejected: {}", ack.error);
        let acked = sent.elapsed();
        // Observed through Envoy: the new probe and the new blocked prefix are
        // denied, the previous version's probe and prefix are not.
        let probe = format!("/?probe=v{n}");
        let blocked = format!("/blocked-v{n}/x");
        let active = wait_for(WAIT, || {
            let (probe, blocked) = (probe.clone(), blocked.clone());
            async move {
                let a = request(listener, "GET", &probe, "web.test", None)
                    .await
                    .ok()?;
                let b = request(listener, "GET", &blocked, "web.test", None)
                    .await
                    .ok()?;
                (a == 403 && b == 403).then_some(())
            }
        })
        .await;
        assert!(active.is_some(), "v{n} never became active");
        activation.push((n, acked, sent.elapsed()));
        let old_probe = format!("/?probe=v{}", n - 1);
        let old_blocked = format!("/blocked-v{}/x", n - 1);
        assert_eq!(
            request(listener, "GET", &old_probe, "web.test", None)
                .await
                .expect("get"),
            200
        );
        assert_eq!(
            request(listener, "GET", &old_blocked, "web.test", None)
                .await
                .expect("get"),
            200
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut mistakes = Vec::new();
    for w in workers {
        mistakes.extend(w.await.expect("worker"));
    }

    let sent = stats.sent.load(Ordering::Relaxed);
    let worst = activation
        .iter()
        .map(|(_, _, seen)| *seen)
        .max()
        .unwrap_or_default();
    let worst_ack = activation
        .iter()
        .map(|(_, ack, _)| *ack)
        .max()
        .unwrap_or_default();
    println!(
        "hot swap ({}): {sent} requests during 20 swaps, {} failed, {} wrong; \
         slowest ack {worst_ack:?}, slowest observed activation {worst:?}",
        if crs.is_some() {
            "CRS + rule file"
        } else {
            "rule file"
        },
        stats.failed.load(Ordering::Relaxed),
        stats.wrong.load(Ordering::Relaxed),
    );
    for (n, ack, seen) in &activation {
        println!("  v{n}: acked after {ack:?}, observed active after {seen:?}");
    }
    assert!(
        mistakes.is_empty(),
        "{} mistakes, first: {:?}",
        mistakes.len(),
        mistakes.first()
    );
    assert!(sent >= 100, "the load generator ran ({sent} requests)");
    assert_eq!(enforcer.shared.snapshots.version().as_deref(), Some("v20"));

    // Metrics reflect the swaps.
    let metrics = enforcer.shared.metrics.encode();
    assert!(
        metrics.contains(r#"palisade_enforcer_snapshot_info{version="v20"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"palisade_enforcer_snapshot_updates_total{result="rejected"} 1"#));
    drop(envoy);
    enforcer.stop().await;
}
