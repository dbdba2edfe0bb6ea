//! End-to-end: a real Envoy with the ext_authz filter on the enforcer's Unix
//! socket, a real upstream, and raw HTTP requests: WAF On and DetectionOnly
//! with the OWASP CRS, a GET-only policy, and a path allow-list with
//! traversal and encoding tricks, through listeners with and without Envoy's
//! own path normalisation.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{crs_ruleset, request, send_raw, wait_for, Envoy, Route, Upstream};
use palisade_enforcer::config::Config;
use palisade_enforcer::events::EventOutput;
use palisade_enforcer::state::{ServiceSpec, SettingsSpec, StateSpec, WafMode};

const SQLI: &str = "/test/artists.php?artist=0+div+1+union%23foo*%2F*bar%0D%0Aselect%23foo%0D%0A1%2C2%2Ccurrent_user";

fn service(name: &str, mode: WafMode, app: &str) -> ServiceSpec {
    ServiceSpec {
        namespace: "shop".into(),
        name: name.into(),
        waf_mode: Some(mode),
        labels: [("app".to_string(), app.to_string())].into(),
        ..Default::default()
    }
}

fn state() -> StateSpec {
    StateSpec {
        version: "e2e-1".into(),
        settings: SettingsSpec {
            default_ruleset: "crs".into(),
            unknown_service_allow: false,
            ..Default::default()
        },
        services: vec![
            service("on", WafMode::On, "on"),
            service("detect", WafMode::DetectionOnly, "detect"),
            service("getonly", WafMode::Off, "getonly"),
            service("paths", WafMode::Off, "paths"),
        ],
        rulesets: vec![crs_ruleset("crs")],
        tiers: serde_yaml::from_str(
            r#"
- name: default
  order: 100
  policies:
    - name: get-only
      selector: app == 'getonly'
      ingress:
        - action: Allow
          http: {methods: [GET]}
    - name: allow-list
      selector: app == 'paths'
      ingress:
        - action: Allow
          http:
            paths: [{exact: /}, {exact: /robots.txt}]
"#,
        )
        .expect("tiers"),
        workloads: vec![],
    }
}

fn routes() -> Vec<Route> {
    vec![
        Route::new("on.test", "shop/on"),
        Route::new("detect.test", "shop/detect"),
        Route::new("getonly.test", "shop/getonly"),
        Route::new("paths.test", "shop/paths"),
        Route::new("unknown.test", "shop/unknown"),
    ]
}

struct Setup {
    _dir: tempfile::TempDir,
    events: std::path::PathBuf,
    envoy: Envoy,
    upstream: Upstream,
    enforcer: palisade_enforcer::Running,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("enforcer.sock");
    let events = dir.path().join("events.log");
    let mut config = Config::with_socket(&socket);
    config.events = EventOutput::File(events.clone());
    let enforcer = palisade_enforcer::start(config)
        .await
        .expect("enforcer starts");
    let shared = enforcer.shared.clone();
    tokio::task::spawn_blocking(move || shared.apply(&state()).map(|_| ()))
        .await
        .expect("join")
        .expect("CRS state builds");
    let upstream = Upstream::start().await;
    let envoy = Envoy::start(dir.path(), &socket, upstream.addr, &routes()).await;
    Setup {
        _dir: dir,
        events,
        envoy,
        upstream,
        enforcer,
    }
}

async fn status(addr: std::net::SocketAddr, method: &str, target: &str, host: &str) -> u16 {
    request(addr, method, target, host, None)
        .await
        .unwrap_or_else(|e| panic!("{method} {target} ({host}): {e}"))
}

async fn raw_status(addr: std::net::SocketAddr, target: &str, host: &str) -> u16 {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: palisade-test/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    send_raw(addr, raw.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
        .0
}

fn events_with_rule(path: &std::path::Path, rule: i64) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["rules"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(|r| r["id"] == rule))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_with_enforcer_decides_real_requests() {
    let s = setup().await;
    for listener in [s.envoy.raw, s.envoy.normalized] {
        // A normal request reaches the upstream.
        assert_eq!(status(listener, "GET", "/", "on.test").await, 200);
        assert_eq!(
            status(listener, "GET", "/index.html?q=shoes", "detect.test").await,
            200
        );
        assert_eq!(
            request(
                listener,
                "POST",
                "/search",
                "on.test",
                Some(("application/x-www-form-urlencoded", b"q=red+shoes&page=2"))
            )
            .await
            .expect("post"),
            200
        );

        // SQL injection: blocked in On, logged and let through in DetectionOnly.
        assert_eq!(status(listener, "GET", SQLI, "on.test").await, 403);
        assert_eq!(status(listener, "GET", SQLI, "detect.test").await, 200);
        assert_eq!(
            request(
                listener,
                "POST",
                "/login",
                "on.test",
                Some((
                    "application/x-www-form-urlencoded",
                    b"user=1' or '1'='1&pw=x"
                ))
            )
            .await
            .expect("post"),
            403
        );

        // GET-only policy.
        assert_eq!(status(listener, "GET", "/", "getonly.test").await, 200);
        assert_eq!(status(listener, "OPTIONS", "/", "getonly.test").await, 403);
        assert_eq!(status(listener, "DELETE", "/x", "getonly.test").await, 403);

        // Path allow-list of exact `/` and `/robots.txt`.
        assert_eq!(status(listener, "GET", "/", "paths.test").await, 200);
        assert_eq!(
            status(listener, "GET", "/robots.txt", "paths.test").await,
            200
        );
        assert_eq!(
            status(listener, "GET", "/robots.txt?x=1", "paths.test").await,
            200
        );
        assert_eq!(
            status(listener, "GET", "/.git/HEAD", "paths.test").await,
            403
        );
        assert_eq!(
            status(listener, "GET", "/phpinfo.php", "paths.test").await,
            403
        );

        // Unknown service: denied by the setting.
        assert_eq!(status(listener, "GET", "/", "unknown.test").await, 403);
    }

    // Tricks, sent byte for byte. On `raw` Envoy forwards the path as sent and
    // the enforcer's normaliser decides; on `normalized` Envoy cleans it first.
    let tricks = [
        "/robots.txt/../.git/HEAD",
        "/%2e%2e/.git/HEAD",
        "/%2e%2e/phpinfo.php",
        "/robots.txt/%2e%2e/.git/HEAD",
        "/robots.txt/..%2f.git/HEAD",
        "/robots.txt;x=1/../.git/HEAD",
        "/..;/.git/HEAD",
        "//.git/HEAD",
        "/./phpinfo.php",
        "/robots.txt%00.php",
        "/robots.txt%2500",
        "/%252e%252e/.git/HEAD",
    ];
    for trick in tricks {
        for listener in [s.envoy.raw, s.envoy.normalized] {
            let code = raw_status(listener, trick, "paths.test").await;
            assert!(
                code == 403 || code == 400,
                "{trick} via {listener}: got {code}, want a refusal"
            );
        }
        assert_eq!(
            raw_status(s.envoy.raw, trick, "paths.test").await,
            403,
            "{trick}"
        );
    }
    // Tricks that resolve to an allowed path are allowed.
    for ok in [
        "/x/../robots.txt",
        "/./robots.txt",
        "/robots.txt;v=1",
        "//robots.txt",
    ] {
        assert_eq!(raw_status(s.envoy.raw, ok, "paths.test").await, 200, "{ok}");
    }

    // The DetectionOnly request left an event naming 942100.
    let events = wait_for(Duration::from_secs(10), || async {
        let found = events_with_rule(&s.events, 942100);
        found
            .iter()
            .any(|e| e["action"] == "detected" && e["destination"]["service"] == "detect")
            .then_some(found)
    })
    .await
    .expect("an event naming rule 942100 for the DetectionOnly service");
    let detected = events
        .iter()
        .find(|e| e["action"] == "detected")
        .expect("detected event");
    println!("detected event: {detected}");
    assert_eq!(detected["mode"], "DetectionOnly");
    assert_eq!(detected["method"], "GET");
    assert_eq!(detected["host"], "detect.test");
    assert!(detected["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("/test/artists.php")));
    assert!(!detected["request_id"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    assert!(detected["anomaly_score"].as_i64().unwrap_or_default() >= 5);
    let denied = events
        .iter()
        .find(|e| e["action"] == "denied")
        .expect("denied event for the On service");
    assert_eq!(denied["mode"], "On");
    assert_eq!(denied["destination"]["service"], "on");

    // Policy denials are events too, with tier and policy.
    let lines = std::fs::read_to_string(&s.events).unwrap_or_default();
    let policy_event = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["reason"] == "policy" && e["method"] == "OPTIONS")
        .expect("policy denial event");
    // No rule matched OPTIONS: the tier's default action denied it.
    assert_eq!(policy_event["policy"]["tier"], "default");
    assert_eq!(policy_event["policy"]["action"], "default");

    // Denied requests never reached the upstream; allowed ones did.
    assert!(s.upstream.served.load(std::sync::atomic::Ordering::Relaxed) > 0);
    s.enforcer.stop().await;
}
