//! The enforcer over its real gRPC interfaces, without Envoy: Check requests
//! built by hand (bad input included), gRPC health, `/metrics` and `/ready`,
//! a local state file, the policy-sync client against a fake control plane
//! (reconnect, last snapshot kept, events reported), and the binary itself.

#[path = "support/check_client.rs"]
mod check_client;
#[path = "support/control_plane.rs"]
mod control_plane;
#[path = "support/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::time::Duration;

use check_client::{channel, peer};
use control_plane::{pb_rule, pb_ruleset, pb_service, pb_settings, FakeControlPlane};
use harness::{get, inline_ruleset, wait_for};
use palisade_enforcer::config::{Config, ControlPlaneAddr};
use palisade_enforcer::events::EventOutput;
use palisade_proto::sync::v1 as pb;
use tonic::transport::Channel;
use xds_api::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use xds_api::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use xds_api::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use xds_api::pb::envoy::service::auth::v3::{check_response, AttributeContext, CheckRequest};

const WAIT: Duration = Duration::from_secs(20);

/// A Check request for `service` with raw header values.
fn check_request(
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> CheckRequest {
    let mut extensions = HashMap::new();
    if !service.is_empty() {
        extensions.insert("palisade.service".to_string(), service.to_string());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: peer("10.1.0.5", 40000),
            destination: peer("10.96.0.10", 80),
            context_extensions: extensions,
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1234".into(),
                    method: method.into(),
                    path: path.into(),
                    host: "web.test".into(),
                    protocol: "HTTP/1.1".into(),
                    header_map: Some(HeaderMap {
                        headers: headers
                            .iter()
                            .map(|(k, v)| HeaderValue {
                                key: k.to_string(),
                                raw_value: v.to_vec(),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                    raw_body: body.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Sends a Check; returns the HTTP status Envoy would answer with (200 = allowed).
async fn decide(client: &mut AuthorizationClient<Channel>, request: CheckRequest) -> u16 {
    let response = client
        .check(request)
        .await
        .expect("check answers")
        .into_inner();
    let code = response.status.as_ref().map(|s| s.code).unwrap_or_default();
    match response.http_response {
        Some(check_response::HttpResponse::OkResponse(_)) => {
            assert_eq!(code, 0);
            200
        }
        Some(check_response::HttpResponse::DeniedResponse(d)) => {
            assert_eq!(code, 7, "PERMISSION_DENIED");
            u16::try_from(d.status.map(|s| s.code).unwrap_or_default()).unwrap_or_default()
        }
        None => panic!("no http response"),
    }
}

const STATE_FILE: &str = r#"
version: file-1
settings:
  defaultRuleset: small
  unknownServiceAllow: false
  bodyLimitBytes: 4096
services:
  - {namespace: shop, name: web, wafMode: On, labels: {app: web}, clusterIps: [10.96.0.10], ports: [80]}
  - {namespace: shop, name: quiet, wafMode: DetectionOnly, labels: {app: quiet}}
  - {namespace: shop, name: limited, wafMode: On, ruleset: limited, labels: {app: limited}}
rulesets:
  - name: small
    files:
      rules.conf: |
        SecRuleEngine On
        SecRequestBodyAccess On
        SecRule REQUEST_HEADERS:X-Attack "@contains boom" "id:10,phase:1,deny,status:403,log,msg:'header attack'"
        SecRule ARGS "@contains evil" "id:11,phase:2,deny,status:403,log,msg:'arg attack',severity:CRITICAL,tag:test"
  - name: limited
    files:
      rules.conf: |
        SecRuleEngine On
        SecRequestBodyAccess On
        SecRequestBodyLimit 1000
        SecRequestBodyNoFilesLimit 1000
        SecRequestBodyLimitAction Reject
tiers:
  - name: default
    policies:
      - name: web
        selector: app == 'web'
        ingress:
          - {action: Deny, http: {paths: [{prefix: /admin}]}}
          - {action: Allow, http: {methods: [GET, POST]}}
workloads:
  - {ips: [10.1.0.5], namespace: clients, pod: client-1, labels: {role: client}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_health_metrics_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("enforcer.sock");
    let state = dir.path().join("state.yaml");
    std::fs::write(&state, STATE_FILE).expect("state file");
    let events = dir.path().join("events.log");
    let mut config = Config::with_socket(&socket);
    config.state = Some(state);
    config.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
    config.events = EventOutput::File(events.clone());
    let enforcer = palisade_enforcer::start(config).await.expect("starts");
    let metrics = enforcer.metrics_addr.expect("metrics bound");
    let mut client = AuthorizationClient::new(channel(&socket).await);

    let ua: (&str, &[u8]) = ("user-agent", b"test/1.0");
    let cases: Vec<(&str, CheckRequest, u16)> = vec![
        (
            "normal",
            check_request("shop/web", "GET", "/", &[ua], b""),
            200,
        ),
        ("by address", check_request("", "GET", "/", &[ua], b""), 200),
        (
            "policy method",
            check_request("shop/web", "PUT", "/", &[ua], b""),
            403,
        ),
        (
            "policy path",
            check_request("shop/web", "GET", "/admin/x", &[ua], b""),
            403,
        ),
        (
            "policy path trick",
            check_request("shop/web", "GET", "/x/..%2fadmin", &[ua], b""),
            403,
        ),
        (
            "waf header",
            check_request("shop/web", "GET", "/", &[("x-attack", b"boom")], b""),
            403,
        ),
        (
            "waf query",
            check_request("shop/web", "GET", "/?q=evil", &[ua], b""),
            403,
        ),
        (
            "waf body",
            check_request(
                "shop/web",
                "POST",
                "/",
                &[("content-type", b"application/x-www-form-urlencoded")],
                b"a=1&b=evil",
            ),
            403,
        ),
        (
            "detection only",
            check_request("shop/quiet", "GET", "/?q=evil", &[ua], b""),
            200,
        ),
        (
            "unknown service",
            check_request("shop/nope", "GET", "/", &[ua], b""),
            403,
        ),
        ("empty request", CheckRequest::default(), 403),
        (
            "invalid utf-8 header",
            check_request(
                "shop/web",
                "GET",
                "/",
                &[("x-bin", b"\xff\xfe\x00\xc3\x28")],
                b"",
            ),
            200,
        ),
        (
            "invalid utf-8 attack header",
            check_request(
                "shop/web",
                "GET",
                "/",
                &[("x-attack", b"\xffboom\xfe")],
                b"",
            ),
            403,
        ),
        (
            "huge header",
            check_request(
                "shop/web",
                "GET",
                "/",
                &[("x-big", &vec![b'a'; 1 << 20])],
                b"",
            ),
            200,
        ),
        (
            "many headers",
            check_request(
                "shop/web",
                "GET",
                "/",
                &(0..5000)
                    .map(|_| ("x-many", b"v".as_slice()))
                    .collect::<Vec<_>>(),
                b"",
            ),
            200,
        ),
        (
            "malformed json body",
            check_request(
                "shop/web",
                "POST",
                "/",
                &[("content-type", b"application/json")],
                b"{\"a\": [1, 2,,, \xff",
            ),
            0,
        ),
        (
            "body under the ruleset's limit",
            check_request(
                "shop/limited",
                "POST",
                "/",
                &[("content-type", b"application/x-www-form-urlencoded")],
                &[b"a=".as_slice(), &[b'x'; 500]].concat(),
            ),
            200,
        ),
        (
            "body over the ruleset's limit (Reject)",
            check_request(
                "shop/limited",
                "POST",
                "/",
                &[("content-type", b"application/x-www-form-urlencoded")],
                &[b"a=".as_slice(), &[b'x'; 5000]].concat(),
            ),
            403,
        ),
        (
            "large body",
            check_request(
                "shop/web",
                "POST",
                "/",
                &[("content-type", b"application/x-www-form-urlencoded")],
                &[b"a=".as_slice(), &vec![b'x'; 100_000], b"&b=evil"].concat(),
            ),
            403,
        ),
        (
            "bad path",
            check_request("shop/web", "GET", "*", &[ua], b""),
            0,
        ),
        (
            "nul path",
            check_request("shop/web", "GET", "/a%00b", &[ua], b""),
            0,
        ),
    ];
    for (name, request, want) in cases {
        let got = decide(&mut client, request).await;
        if want == 0 {
            assert!(got == 200 || got == 403, "{name}: got {got}");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }

    // gRPC health.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&socket).await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // /ready and /metrics.
    let (code, body) = get(metrics, "/ready").await.expect("ready");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, body) = get(metrics, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body);
    for want in [
        r#"palisade_enforcer_decisions_total{service="shop/web",action="allowed"}"#,
        r#"palisade_enforcer_decisions_total{service="shop/web",action="denied"}"#,
        r#"palisade_enforcer_decisions_total{service="shop/quiet",action="detected"}"#,
        r#"palisade_enforcer_rule_hits_total{rule_id="11"}"#,
        r#"palisade_enforcer_policy_denials_total{tier="default",policy="web"}"#,
        "palisade_enforcer_check_duration_seconds_bucket",
        "palisade_enforcer_verdict_cache_values ",
        "palisade_enforcer_verdict_cache_bytes ",
        r#"palisade_enforcer_snapshot_info{version="file-1"} 1"#,
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }

    // Events name the rule, the source workload and the request.
    let event = wait_for(WAIT, || async {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["rules"][0]["id"] == 11 && e["action"] == "denied")
    })
    .await
    .expect("event for rule 11");
    assert_eq!(event["source"]["namespace"], "clients");
    assert_eq!(event["source"]["pod"], "client-1");
    assert_eq!(event["destination"]["namespace"], "shop");
    assert_eq!(event["rules"][0]["msg"], "arg attack");
    assert_eq!(event["rules"][0]["severity"], "CRITICAL");
    assert_eq!(event["rules"][0]["tags"][0], "test");
    assert_eq!(event["rules"][0]["file"], "rules.conf");
    assert_eq!(event["mode"], "On");
    assert_eq!(event["snapshot_version"], "file-1");
    enforcer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_snapshot_the_failure_mode_decides() {
    for allow in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("enforcer.sock");
        let mut config = Config::with_socket(&socket);
        config.failure_mode_allow = allow;
        config.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
        config.events = EventOutput::None;
        let enforcer = palisade_enforcer::start(config).await.expect("starts");
        let mut client = AuthorizationClient::new(channel(&socket).await);
        let got = decide(&mut client, check_request("shop/web", "GET", "/", &[], b"")).await;
        assert_eq!(got, if allow { 200 } else { 403 });
        let (code, _) = get(enforcer.metrics_addr.expect("metrics"), "/ready")
            .await
            .expect("ready");
        assert_eq!(code, 503);
        enforcer.stop().await;
    }
}

fn sync_state(version: &str, allowed_method: &str) -> pb::State {
    pb::State {
        version: version.into(),
        settings: Some(pb_settings("small")),
        services: vec![pb_service("shop", "web", pb::WafMode::On)],
        rulesets: vec![pb_ruleset(&inline_ruleset(
            "small",
            "SecRuleEngine On\nSecRule ARGS \"@contains evil\" \"id:11,phase:1,deny,status:403,log,msg:'evil'\"\n",
        ))],
        tiers: vec![pb::Tier {
            name: "default".into(),
            order: 1.0,
            default_action: "Deny".into(),
            policies: vec![pb::Policy {
                name: "web".into(),
                selector: "app == 'web'".into(),
                ingress: vec![pb_rule("Allow", &[allowed_method], vec![])],
                ..Default::default()
            }],
        }],
        workloads: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reconnects_keeps_the_snapshot_and_reports_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("enforcer.sock");
    let mut cp = FakeControlPlane::start().await;
    let mut config = Config::with_socket(&socket);
    config.control_plane = Some(ControlPlaneAddr::Http(format!("http://{}", cp.addr)));
    config.node = "node-a".into();
    config.events = EventOutput::None;
    let enforcer = palisade_enforcer::start(config).await.expect("starts");
    let mut client = AuthorizationClient::new(channel(&socket).await);

    let first = cp.next_connection(WAIT).await;
    assert_eq!(first.hello.node, "node-a");
    first.send_state(sync_state("v1", "GET")).await;
    assert!(cp.ack_for("v1", WAIT).await.applied);
    // The same version again is acknowledged without a rebuild.
    first.send_state(sync_state("v1", "GET")).await;
    assert!(cp.ack_for("v1", WAIT).await.applied);
    // A state whose policy does not validate is rejected with the reason.
    let mut bad = sync_state("v2-bad", "GET");
    bad.tiers[0].policies[0].selector = "app ==".into();
    first.send_state(bad).await;
    let ack = cp.ack_for("v2-bad", WAIT).await;
    assert!(!ack.applied);
    assert!(ack.error.contains("selector"), "{}", ack.error);

    assert_eq!(
        decide(&mut client, check_request("shop/web", "GET", "/", &[], b"")).await,
        200
    );
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "POST", "/", &[], b"")
        )
        .await,
        403
    );
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "GET", "/?a=evil", &[], b"")
        )
        .await,
        403
    );

    // Denials are reported upstream.
    let report = tokio::time::timeout(WAIT, async {
        loop {
            let report = cp.events.recv().await.expect("control plane running");
            if report.events_json.iter().any(|e| e.contains("\"denied\"")) {
                return report;
            }
        }
    })
    .await
    .expect("an event report");
    let event: serde_json::Value =
        serde_json::from_str(&report.events_json[0]).expect("event json");
    assert_eq!(event["snapshot_version"], "v1");

    // The control plane closes the stream: the enforcer reconnects and says
    // what it runs; meanwhile it keeps deciding with v1.
    drop(first);
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "POST", "/", &[], b"")
        )
        .await,
        403
    );
    let second = cp.next_connection(WAIT).await;
    assert_eq!(second.hello.active_version, "v1");
    second.send_state(sync_state("v3", "POST")).await;
    assert!(cp.ack_for("v3", WAIT).await.applied);
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "POST", "/", &[], b"")
        )
        .await,
        200
    );
    assert_eq!(
        decide(&mut client, check_request("shop/web", "GET", "/", &[], b"")).await,
        403
    );

    // The control plane goes away: the last snapshot keeps serving.
    cp.stop();
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "POST", "/", &[], b"")
        )
        .await,
        200
    );
    assert_eq!(enforcer.shared.snapshots.version().as_deref(), Some("v3"));
    enforcer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_state_file_and_rejects_bad_flags() {
    let binary = env!("CARGO_BIN_EXE_palisade-enforcer");
    let bad = std::process::Command::new(binary)
        .args(["--control-plane", "ftp://nowhere", "--metrics-addr", "off"])
        .output()
        .expect("runs");
    assert_eq!(
        bad.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run/enforcer.sock");
    let state = dir.path().join("state.yaml");
    std::fs::write(&state, STATE_FILE).expect("state file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut child = std::process::Command::new(binary)
        .arg("--socket")
        .arg(&socket)
        .arg("--state")
        .arg(&state)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .arg("--events-file")
        .arg(dir.path().join("events.log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let ready = wait_for(WAIT, || async {
        get(metrics, "/ready").await.ok().filter(|(c, _)| *c == 200)
    })
    .await;
    if ready.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the binary never became ready");
    }
    let mut client = AuthorizationClient::new(channel(&socket).await);
    assert_eq!(
        decide(&mut client, check_request("shop/web", "GET", "/", &[], b"")).await,
        200
    );
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "GET", "/?x=evil", &[], b"")
        )
        .await,
        403
    );

    // SIGHUP reloads the state file: a new version that allows only POST.
    let reloaded = STATE_FILE
        .replace("version: file-1", "version: file-2")
        .replace("methods: [GET, POST]", "methods: [POST]");
    std::fs::write(&state, reloaded).expect("rewrite state");
    let _ = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status();
    let swapped = wait_for(WAIT, || {
        let mut client = client.clone();
        async move {
            let code = decide(&mut client, check_request("shop/web", "GET", "/", &[], b"")).await;
            (code == 403).then_some(())
        }
    })
    .await;
    assert!(swapped.is_some(), "SIGHUP did not reload the state file");
    let (_, body) = get(metrics, "/metrics").await.expect("metrics");
    assert!(String::from_utf8_lossy(&body).contains(r#"snapshot_info{version="file-2"} 1"#));
    // A broken file on SIGHUP keeps the active snapshot.
    std::fs::write(&state, "services: [").expect("rewrite state");
    let _ = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        decide(
            &mut client,
            check_request("shop/web", "POST", "/", &[], b"")
        )
        .await,
        200
    );

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exited = wait_for(WAIT, || {
        let done = child.try_wait().ok().flatten();
        async move { done }
    })
    .await;
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the binary ignored SIGTERM");
    }
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_example_state_builds() {
    let path = harness::repo_root().join("integration/envoy/standalone-state.yaml");
    let _ = harness::crs_dir();
    let state = palisade_enforcer::state::StateFile::load(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the example expects the CRS at ../shared/crs)",
            path.display()
        )
    });
    let snapshot = tokio::task::spawn_blocking(move || {
        palisade_enforcer::snapshot::Snapshot::build(
            &state,
            &palisade_enforcer::snapshot::RulesetCache::new(),
        )
    })
    .await
    .expect("join")
    .expect("the example builds");
    assert!(snapshot
        .service("shop/web")
        .and_then(|s| s.ruleset.as_ref())
        .is_some());
}
