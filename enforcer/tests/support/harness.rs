//! Shared pieces of the enforcer's integration tests: a real upstream HTTP
//! server, a real Envoy started from a static bootstrap, raw HTTP/1.1
//! requests, the CRS as a ruleset, and bounded waiting.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_enforcer::state::{add_ruleset_path, hash_files, RulesetSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("enforcer/ has a parent")
        .to_path_buf()
}

/// The Envoy binary: `PALISADE_ENVOY`, else `<repo>/.tools/bin/envoy`. Panics
/// with instructions when missing.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("PALISADE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin/envoy"));
    assert!(
        path.is_file(),
        "Envoy not found at {}: run `scripts/setup` (installs it into .tools/bin) or set PALISADE_ENVOY",
        path.display()
    );
    path
}

/// The CRS directory: `PALISADE_CRS_DIR`, else `<repo>/../shared/crs`.
pub fn crs_dir() -> PathBuf {
    let dir = std::env::var_os("PALISADE_CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/crs"));
    assert!(
        dir.join("rules").is_dir(),
        "CRS not found at {}: set PALISADE_CRS_DIR",
        dir.display()
    );
    dir
}

/// Used when `policies/modsecdefault.conf` is missing.
const MINIMAL_MODSECDEFAULT: &str = "SecRuleEngine On\nSecRequestBodyAccess On\n\
SecRequestBodyLimit 13107200\nSecRequestBodyNoFilesLimit 131072\nSecRequestBodyLimitAction Reject\n";

/// The CRS at paranoia level 1 as a flat ruleset: `modsecdefault.conf`
/// (the repository's, else a minimal one), `crs-setup.conf` (the CRS
/// example) and `rules/*.conf`, `rules/*.data`.
pub fn crs_ruleset(name: &str) -> RulesetSource {
    let crs = crs_dir();
    let mut files = BTreeMap::new();
    let default = repo_root().join("policies/modsecdefault.conf");
    match std::fs::read(&default) {
        Ok(bytes) => {
            files.insert("modsecdefault.conf".to_string(), bytes);
        }
        Err(_) => {
            files.insert(
                "modsecdefault.conf".to_string(),
                MINIMAL_MODSECDEFAULT.as_bytes().to_vec(),
            );
        }
    }
    add_ruleset_path(
        &mut files,
        Some("crs-setup.conf"),
        &crs.join("crs-setup.conf.example"),
    )
    .expect("crs-setup.conf.example");
    add_ruleset_path(&mut files, None, &crs.join("rules")).expect("crs rules");
    RulesetSource {
        name: name.to_string(),
        hash: hash_files(&files),
        files,
    }
}

/// A ruleset from inline SecLang.
pub fn inline_ruleset(name: &str, text: &str) -> RulesetSource {
    let files = BTreeMap::from([("rules.conf".to_string(), text.as_bytes().to_vec())]);
    RulesetSource {
        name: name.to_string(),
        hash: hash_files(&files),
        files,
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tiny HTTP/1.1 upstream that answers 200 `ok` to everything and counts requests.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests served.
    pub served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> (usize, bool) {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut length = 0;
    let mut chunked = false;
    for line in text.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            chunked = true;
        }
    }
    (length, chunked)
}

async fn serve_connection(mut stream: TcpStream, served: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Read one request: head, then body.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let (length, chunked) = content_length(&buf[..head_end]);
        let body_end = if chunked {
            loop {
                if let Some(i) = find(&buf[head_end..], b"0\r\n\r\n") {
                    break head_end + i + 5;
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        } else {
            while buf.len() < head_end + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            head_end + length
        };
        buf.drain(..body_end);
        served.fetch_add(1, Ordering::Relaxed);
        let response =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n";
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

impl Upstream {
    /// Starts the upstream on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_connection(stream, counter.clone()));
            }
        });
        Upstream { addr, served, task }
    }
}

/// One route of the test Envoy: requests for `domain` carry the
/// `palisade.service` context extension `service`.
#[derive(Clone, Debug)]
pub struct Route {
    /// Host header value.
    pub domain: String,
    /// `namespace/name`.
    pub service: String,
}

impl Route {
    /// A route.
    pub fn new(domain: &str, service: &str) -> Route {
        Route {
            domain: domain.to_string(),
            service: service.to_string(),
        }
    }
}

fn listener_yaml(name: &str, normalize: bool, routes: &[Route]) -> String {
    let mut vhosts = String::new();
    for r in routes {
        vhosts.push_str(&format!(
            r#"
            - name: {domain}
              domains: ["{domain}", "{domain}:*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream}}
                typed_per_filter_config:
                  envoy.filters.http.ext_authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                    check_settings:
                      context_extensions:
                        palisade.service: "{service}""#,
            domain = r.domain,
            service = r.service
        ));
    }
    format!(
        r#"
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          normalize_path: {normalize}
          merge_slashes: {normalize}
          path_with_escaped_slashes_action: KEEP_UNCHANGED
          route_config:
            name: {name}
            virtual_hosts:{vhosts}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              encode_raw_headers: true
              with_request_body:
                max_request_bytes: 131072
                allow_partial_message: true
                pack_as_bytes: true
              grpc_service:
                envoy_grpc: {{cluster_name: enforcer}}
                timeout: 10s
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#
    )
}

/// The static bootstrap: listener `raw` (no path normalisation), listener
/// `normalized` (Envoy's `normalize_path` and `merge_slashes` on), both with
/// ext_authz on the enforcer's Unix socket; the upstream cluster.
pub fn bootstrap(socket: &Path, upstream: SocketAddr, routes: &[Route]) -> String {
    format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:{raw}{normalized}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up_port}}}}}}}
  - name: enforcer
    type: STATIC
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: enforcer
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{pipe: {{path: "{socket}"}}}}}}
"#,
        raw = listener_yaml("raw", false, routes),
        normalized = listener_yaml("normalized", true, routes),
        up_port = upstream.port(),
        socket = socket.display(),
    )
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    /// Admin address.
    pub admin: SocketAddr,
    /// Listener without path normalisation.
    pub raw: SocketAddr,
    /// Listener with `normalize_path` and `merge_slashes`.
    pub normalized: SocketAddr,
    /// Envoy's log file.
    pub log: PathBuf,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Writes the bootstrap into `dir`, starts Envoy with one worker and waits
    /// (bounded) until both listeners are bound.
    pub async fn start(dir: &Path, socket: &Path, upstream: SocketAddr, routes: &[Route]) -> Envoy {
        let binary = envoy_binary();
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, bootstrap(socket, upstream, routes)).expect("write bootstrap");
        let admin_file = dir.join("envoy-admin.txt");
        let log = dir.join("envoy.log");
        let log_file = std::fs::File::create(&log).expect("envoy log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "1",
                "--use-dynamic-base-id",
                "-l",
                "warning",
            ])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut envoy = Envoy {
            child,
            admin: "127.0.0.1:1".parse().expect("addr"),
            raw: "127.0.0.1:1".parse().expect("addr"),
            normalized: "127.0.0.1:1".parse().expect("addr"),
            log,
        };
        let admin = wait_for(Duration::from_secs(30), || {
            let file = admin_file.clone();
            async move {
                let text = std::fs::read_to_string(&file).ok()?;
                text.trim().parse::<SocketAddr>().ok()
            }
        })
        .await;
        let Some(admin) = admin else {
            let log = std::fs::read_to_string(&envoy.log).unwrap_or_default();
            panic!("envoy did not start; log:\n{log}");
        };
        envoy.admin = admin;
        let listeners = wait_for(Duration::from_secs(30), || async move {
            let (status, body) = get(admin, "/listeners?format=json").await.ok()?;
            if status != 200 {
                return None;
            }
            let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let mut found = BTreeMap::new();
            for l in json["listener_statuses"].as_array()? {
                let name = l["name"].as_str()?.to_string();
                let sa = &l["local_address"]["socket_address"];
                let port = sa["port_value"].as_u64()?;
                if port == 0 {
                    return None;
                }
                found.insert(
                    name,
                    format!("127.0.0.1:{port}").parse::<SocketAddr>().ok()?,
                );
            }
            (found.len() == 2).then_some(found)
        })
        .await;
        let Some(listeners) = listeners else {
            let log = std::fs::read_to_string(&envoy.log).unwrap_or_default();
            panic!("envoy listeners did not come up; log:\n{log}");
        };
        envoy.raw = listeners["raw"];
        envoy.normalized = listeners["normalized"];
        envoy
    }
}

/// Decodes a chunked body (best effort: stops at the first malformed chunk).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// Sends raw bytes (one request with `Connection: close`) and returns the
/// status and body. Nothing rewrites the request on the way to Envoy.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "response timed out"))??;
    let head_end = find(&response, b"\r\n\r\n").unwrap_or(response.len());
    let status = std::str::from_utf8(&response[..head_end.min(response.len())])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no status line in {:?}", String::from_utf8_lossy(&response)),
            )
        })?;
    let body = response.get(head_end + 4..).unwrap_or_default().to_vec();
    let (_, chunked) = content_length(&response[..head_end]);
    Ok((status, if chunked { dechunk(&body) } else { body }))
}

/// `METHOD TARGET` to `host` with an optional body; returns the status.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    body: Option<(&str, &[u8])>,
) -> std::io::Result<u16> {
    let mut raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: palisade-test/1.0\r\nAccept: */*\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some((content_type, bytes)) = body {
        raw.extend_from_slice(
            format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(bytes);
    } else {
        raw.extend_from_slice(b"\r\n");
    }
    send_raw(addr, &raw).await.map(|(status, _)| status)
}

/// A GET on the admin or any plain HTTP endpoint.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    send_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}
