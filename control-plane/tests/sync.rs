//! The policy-sync server seen from an enforcer: Hello, then the full State and
//! InSync; acks and event reports show in /status; a file edit produces a new
//! State with a new version on the open stream.

use std::time::Duration;

use palisade_proto::sync::v1 as pb;

#[path = "support/sync_client.rs"]
mod support;
use support::{connect_enforcer, message as send, next, start_on_policies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcer_gets_state_updates_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_on_policies(dir.path(), &[]).await;
    let (tx, mut stream) = connect_enforcer(cp.sync_addr).await;

    let pb::control_message::Kind::State(state) = next(&mut stream).await else {
        panic!("State first")
    };
    let pb::control_message::Kind::InSync(in_sync) = next(&mut stream).await else {
        panic!("InSync second")
    };
    assert_eq!(in_sync.version, state.version);
    let settings = state.settings.clone().unwrap();
    assert_eq!(settings.default_ruleset, "baseline");
    assert!(!settings.failure_mode_allow);
    let names: Vec<_> = state
        .services
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    assert_eq!(names, ["bookinfo/productpage", "web/www"]);
    let pp = &state.services[0];
    assert_eq!(pp.waf_mode, pb::WafMode::On as i32);
    assert_eq!(pp.ports, [9080]);
    assert_eq!(
        pp.labels.get("app").map(String::as_str),
        Some("productpage")
    );
    let baseline = state
        .rulesets
        .iter()
        .find(|r| r.name == "baseline")
        .unwrap();
    assert!(baseline.files.contains_key("modsecdefault.conf"));
    assert!(baseline.files.contains_key("palisade-baseline.conf"));
    let tier = state.tiers.iter().find(|t| t.name == "default").unwrap();
    assert_eq!(tier.default_action, "Deny");
    assert_eq!(tier.policies.len(), 2);
    let www = tier
        .policies
        .iter()
        .find(|p| p.name == "default.www-allow-list")
        .unwrap();
    let paths = &www.ingress[0].http.as_ref().unwrap().paths;
    assert_eq!(paths[0].kind, Some(pb::path_match::Kind::Exact("/".into())));

    // Ack and events show in the status.
    tx.send(send(pb::enforcer_message::Kind::Ack(pb::Ack {
        version: state.version.clone(),
        applied: true,
        error: String::new(),
    })))
    .await
    .unwrap();
    tx.send(send(pb::enforcer_message::Kind::Events(pb::EventReport {
        events_json: vec![r#"{"rule_id":1201}"#.into()],
        suppressed: 2,
    })))
    .await
    .unwrap();
    let start = std::time::Instant::now();
    loop {
        let report = cp.status.report();
        let e = report.nodes.get("node-1").and_then(|n| n.enforcer.clone());
        if let Some(e) =
            e.filter(|e| e.applied.as_deref() == Some(state.version.as_str()) && e.events == 1)
        {
            assert!(e.connected);
            assert_eq!(e.events_suppressed, 2);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "status never showed the ack: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Editing a policy file pushes a new State on the open stream.
    let www_file = dir.path().join("www.yaml");
    let text = std::fs::read_to_string(&www_file).unwrap();
    std::fs::write(
        &www_file,
        text.replace(
            "          - exact: /robots.txt\n",
            "          - exact: /robots.txt\n          - prefix: /static\n",
        ),
    )
    .unwrap();
    let pb::control_message::Kind::State(updated) = next(&mut stream).await else {
        panic!("a new State")
    };
    assert_ne!(updated.version, state.version);
    let tier = updated.tiers.iter().find(|t| t.name == "default").unwrap();
    let www = tier
        .policies
        .iter()
        .find(|p| p.name == "default.www-allow-list")
        .unwrap();
    assert_eq!(www.ingress[0].http.as_ref().unwrap().paths.len(), 3);
    assert!(matches!(
        next(&mut stream).await,
        pb::control_message::Kind::InSync(_)
    ));
    cp.shutdown();
}
