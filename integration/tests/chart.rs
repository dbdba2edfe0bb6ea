//! Checks of the Helm chart in `charts/palisade`: `helm lint` and `helm template`
//! with every values file in `ci/` using the real Helm, every rendered object
//! validated offline (Kubernetes types, CRD schemas), the CRDs compared with the
//! control plane's types, the examples in `policies/` validated and loaded
//! through those types, Envoy's bootstrap checked by Envoy itself, and the
//! ruleset ConfigMap script run on the CRS.
//!
//! Helm comes from `PALISADE_HELM` or `<repo>/.tools/bin/helm` (`scripts/setup`
//! installs it); Envoy from `PALISADE_ENVOY` or `<repo>/.tools/bin/envoy`; the
//! CRS from `PALISADE_CRS_DIR` or `<repo>/../shared/crs`.
//!
//! `PALISADE_BLESS=1 cargo test -p palisade-integration --test chart` rewrites
//! the chart's generated CRD files from the control plane's types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use palisade_integration::manifest::{self, Document};
use palisade_integration::{openapi, tools, typed};
use serde_json::{json, Value};

const RELEASE: &str = "palisade";
const NAMESPACE: &str = "palisade-system";

fn chart_dir() -> PathBuf {
    tools::repo_root().join("charts").join("palisade")
}

/// The values files of `ci/`, sorted by name.
fn values_files() -> Vec<PathBuf> {
    let dir = chart_dir().join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn helm_bin() -> PathBuf {
    match tools::helm() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template` of the chart with values files and `--set` pairs.
fn render(values: &[&Path], sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm_bin());
    cmd.arg("template").arg(RELEASE).arg(chart_dir()).args([
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ]);
    for v in values {
        cmd.arg("-f").arg(v);
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = run(&mut cmd);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

fn render_docs(values: &[&Path], sets: &[&str]) -> Vec<Document> {
    let out = render(values, sets)
        .unwrap_or_else(|e| panic!("helm template {values:?} {sets:?} failed:\n{e}"));
    manifest::parse_documents(&out).unwrap_or_else(|e| panic!("rendered YAML: {e}"))
}

fn ci(name: &str) -> PathBuf {
    chart_dir().join("ci").join(name)
}

fn find<'a>(docs: &'a [Document], kind: &str, name_suffix: &str) -> &'a Value {
    docs.iter()
        .find(|d| d.kind() == kind && d.name().ends_with(name_suffix))
        .map(|d| &d.value)
        .unwrap_or_else(|| panic!("no {kind} named *{name_suffix} rendered"))
}

fn kinds(docs: &[Document]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| format!("{}/{}", d.kind(), d.name()))
        .collect()
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A container's environment variables with literal values (`valueFrom` ones map to "").
fn env(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            Some((name, e["value"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Schemas for the custom resources the chart renders.

/// The CRDs shipped in `crds/` and `files/calico-crds/`.
fn chart_crd_files() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for dir in [
        chart_dir().join("crds"),
        chart_dir().join("files").join("calico-crds"),
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        for p in paths {
            let body =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let docs =
                manifest::parse_documents(&body).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(docs.len(), 1, "{}: one CRD per file", p.display());
            out.extend(docs.into_iter().map(|d| (p.clone(), d.value)));
        }
    }
    out
}

/// Minimal structural schemas of the cert-manager kinds the chart renders: the
/// fields the chart uses, with cert-manager's types and enums, so a typo fails.
fn cert_manager_schema(kind: &str) -> Option<Value> {
    let issuer_ref = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "kind": {"type": "string"}, "group": {"type": "string"}}});
    let spec = match kind {
        "Issuer" | "ClusterIssuer" => json!({"type": "object", "properties": {
            "selfSigned": {"type": "object", "properties": {"crlDistributionPoints": {"type": "array", "items": {"type": "string"}}}},
            "ca": {"type": "object", "required": ["secretName"], "properties": {"secretName": {"type": "string"}}}}}),
        "Certificate" => {
            json!({"type": "object", "required": ["issuerRef", "secretName"], "properties": {
            "secretName": {"type": "string"},
            "commonName": {"type": "string"},
            "dnsNames": {"type": "array", "items": {"type": "string"}},
            "isCA": {"type": "boolean"},
            "duration": {"type": "string"},
            "renewBefore": {"type": "string"},
            "usages": {"type": "array", "items": {"type": "string", "enum": [
                "signing", "digital signature", "content commitment", "key encipherment",
                "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
                "decipher only", "any", "server auth", "client auth", "code signing",
                "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
                "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"]}},
            "privateKey": {"type": "object", "properties": {
                "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"]},
                "size": {"type": "integer"},
                "encoding": {"type": "string", "enum": ["PKCS1", "PKCS8"]},
                "rotationPolicy": {"type": "string", "enum": ["Never", "Always"]}}},
            "issuerRef": issuer_ref}})
        }
        _ => return None,
    };
    Some(json!({"type": "object", "properties": {"spec": spec}}))
}

/// Validates every rendered object; returns one line per problem.
fn validate_objects(docs: &[Document], rendered: &str) -> Vec<String> {
    let mut errors = Vec::new();
    // Schemas of custom resources: the CRDs in the rendering (ours come with
    // --include-crds, Calico's when installed) and the chart's CRD files.
    let mut crds: BTreeMap<(String, String), Value> = BTreeMap::new();
    let rendered_crds = docs
        .iter()
        .filter(|d| d.kind() == "CustomResourceDefinition")
        .map(|d| d.value.clone());
    for crd in rendered_crds.chain(chart_crd_files().into_iter().map(|(_, v)| v)) {
        for (api_version, kind) in openapi::crd_served(&crd) {
            let version = api_version.rsplit('/').next().unwrap_or("").to_owned();
            if let Some(schema) = openapi::crd_schema(&crd, &version) {
                crds.entry((api_version, kind))
                    .or_insert_with(|| schema.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    for doc in docs {
        let what = doc.describe();
        if doc.api_version().is_empty() || doc.kind().is_empty() || doc.name().is_empty() {
            errors.push(format!(
                "{what}: apiVersion, kind and metadata.name are required"
            ));
            continue;
        }
        let ns = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !seen.insert((
            doc.api_version().to_owned(),
            doc.kind().to_owned(),
            ns.to_owned(),
            doc.name().to_owned(),
        )) {
            errors.push(format!("{what}: rendered twice"));
        }
        match typed::check(&doc.value) {
            Ok(()) => {}
            Err(typed::TypedError::UnknownKind { api_version, kind }) => {
                let schema = crds
                    .get(&(api_version.clone(), kind.clone()))
                    .cloned()
                    .or_else(|| {
                        api_version
                            .starts_with("cert-manager.io/")
                            .then(|| cert_manager_schema(&kind))
                            .flatten()
                    });
                let Some(schema) = schema else {
                    errors.push(format!("{what}: no schema known for {api_version} {kind}"));
                    continue;
                };
                for v in openapi::validate_resource(&schema, &doc.value) {
                    errors.push(format!("{what}: {v}"));
                }
                let meta = doc.value.get("metadata").cloned().unwrap_or(Value::Null);
                if let Err(e) = typed::roundtrip::<
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                >("metadata", &meta)
                {
                    errors.push(format!("{what}: {e}"));
                }
            }
            Err(e) => errors.push(format!("{what}: {e}")),
        }
        if doc.kind() == "CustomResourceDefinition" {
            for version in doc
                .value
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
                    for v in openapi::structural_problems(schema) {
                        errors.push(format!("{what}: schema not structural: {v}"));
                    }
                }
            }
        }
    }
    for hit in manifest::yaml11_booleans(rendered) {
        errors.push(format!(
            "rendered line {}: YAML 1.1 reads this as a boolean: {}",
            hit.line,
            hit.text.trim()
        ));
    }
    errors
}

// ---------------------------------------------------------------------------
// helm lint and template.

#[test]
fn ci_has_the_values_files_the_issue_names() {
    let names: Vec<String> = values_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "defaults-values.yaml",
        "calico-crds-values.yaml",
        "waf-off-values.yaml",
        "custom-ruleset-values.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "ci/{want} missing; have {names:?}"
        );
    }
}

#[test]
fn helm_lint_passes_with_every_values_file() {
    for values in values_files() {
        let out = run(Command::new(helm_bin())
            .args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir())
            .arg("-f")
            .arg(&values));
        assert!(
            out.status.success(),
            "helm lint -f {}:\n{}",
            values.display(),
            text(&out)
        );
    }
}

#[test]
fn every_rendered_object_is_valid() {
    let extra: &[&[&str]] = &[
        &["tls.enabled=false"],
        &["tls.source=certManager"],
        &["tls.source=existing", "tls.existing.serverSecret=cp-tls", "tls.existing.clientSecret=node-tls"],
        &["controlPlane.leaderElection.enabled=false", "controlPlane.podDisruptionBudget.enabled=false", "applicationLayer.create=false"],
        &["node.envoy.hostPort=true", "images.enforcer.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"],
    ];
    let mut runs: Vec<(Vec<PathBuf>, Vec<&str>)> = values_files()
        .into_iter()
        .map(|v| (vec![v], vec![]))
        .collect();
    runs.extend(extra.iter().map(|sets| (vec![], sets.to_vec())));
    for (values, sets) in runs {
        let refs: Vec<&Path> = values.iter().map(PathBuf::as_path).collect();
        let rendered = render(&refs, &sets)
            .unwrap_or_else(|e| panic!("helm template {values:?} {sets:?}:\n{e}"));
        let docs = manifest::parse_documents(&rendered).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            docs.len() > 10,
            "{values:?} {sets:?}: only {} objects",
            docs.len()
        );
        let errors = validate_objects(&docs, &rendered);
        assert!(
            errors.is_empty(),
            "{values:?} {sets:?}:\n  {}",
            errors.join("\n  ")
        );
    }
}

#[test]
fn the_validation_catches_typos_in_rendered_objects() {
    let rendered = render(&[&ci("defaults-values.yaml")], &[]).unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        (
            "        - name: envoy\n",
            "        - name: envoy\n          imagePullPolicey: Always\n",
            "imagePullPolicey",
        ),
        (
            "  replicas: 2\n",
            "  replicas: 2\n  replicaz: 3\n",
            "replicaz",
        ),
        (
            "  webApplicationFirewall: Enabled\n",
            "  webApplicationFirewall: Enabled\n  webApplicationFirewal: Enabled\n",
            "webApplicationFirewal",
        ),
        (
            "  webApplicationFirewall: Enabled\n",
            "  webApplicationFirewall: On\n",
            "YAML 1.1",
        ),
        ("      memory: 512Mi\n", "      memory: 512MB\n", "quantity"),
    ];
    for (from, to, want) in cases {
        assert!(
            rendered.contains(from),
            "rendering no longer contains {from:?}"
        );
        let broken = rendered.replacen(from, to, 1);
        let docs = manifest::parse_documents(&broken).unwrap_or_else(|e| panic!("{e}"));
        let errors = validate_objects(&docs, &broken);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want}: {errors:?}"
        );
    }
}

#[test]
fn the_values_schema_rejects_bad_values() {
    let cases = [
        "waf.defaultMode=on",
        "waf.failureMode=Open",
        "tls.source=vault",
        "controlPlane.replicas=0",
        "controlPlane.bogus=1",
        "node.envoy.listenPort=70000",
        "images.envoy.pullPolicy=Sometimes",
        "ruleset.default=Not A Name",
        "logCollection.logRequestsPerInterval=-1",
    ];
    for set in cases {
        let err = render(&[], &[set])
            .err()
            .unwrap_or_else(|| panic!("--set {set} rendered"));
        assert!(
            err.contains("values don't meet the specifications") || err.contains("at '/"),
            "{set}: {err}"
        );
    }
    let err = render(&[], &["tls.source=existing"])
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("tls.existing.") && err.contains("is required when tls.source=existing"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// What the chart renders.

#[test]
fn defaults_render_the_control_plane_and_the_node_agent() {
    let docs = render_docs(&[&ci("defaults-values.yaml")], &[]);
    let names = kinds(&docs);
    for want in [
        "Deployment/palisade-control-plane",
        "Service/palisade-control-plane",
        "ServiceAccount/palisade-control-plane",
        "ServiceAccount/palisade-node",
        "PodDisruptionBudget/palisade-control-plane",
        "DaemonSet/palisade-node",
        "ConfigMap/palisade-node-envoy",
        "Secret/palisade-control-plane-tls",
        "Secret/palisade-node-tls",
        "ApplicationLayer/default",
        "CustomResourceDefinition/applicationlayers.palisade.dev",
        "CustomResourceDefinition/globalalerts.palisade.dev",
        "Role/palisade-control-plane-leader-election",
    ] {
        assert!(names.contains(want), "{want} not rendered; have {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("projectcalico")),
        "Calico CRDs rendered by default"
    );

    let cp = find(&docs, "Deployment", "control-plane");
    assert_eq!(cp["spec"]["replicas"], 2);
    let c = container(cp, "control-plane");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert!(c[probe].is_object(), "control plane has no {probe}");
    }
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    let e = env(c);
    for (k, v) in [
        ("PALISADE_XDS_LISTEN", "0.0.0.0:18000"),
        ("PALISADE_SYNC_LISTEN", "0.0.0.0:18001"),
        ("PALISADE_ADMIN_LISTEN", "0.0.0.0:18002"),
        ("PALISADE_LISTEN", "0.0.0.0:10000"),
        (
            "PALISADE_ENFORCER_SOCKET",
            "/var/run/palisade/enforcer.sock",
        ),
        ("PALISADE_LEADER_ELECTION", "true"),
        ("PALISADE_LEASE_NAME", "palisade-control-plane"),
        ("PALISADE_RULESET_NAMESPACES", NAMESPACE),
        ("PALISADE_TLS_CLIENT_CA", "/etc/palisade/tls/ca.crt"),
    ] {
        assert_eq!(
            e.get(k).map(String::as_str),
            Some(v),
            "control plane {k}: {e:?}"
        );
    }
    let pdb = find(&docs, "PodDisruptionBudget", "control-plane");
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    // Every Palisade container: non-root, read-only root, no escalation, no capabilities.
    for (kind, names) in [
        ("Deployment", &["control-plane"][..]),
        ("DaemonSet", &["envoy", "enforcer"][..]),
    ] {
        let w = docs
            .iter()
            .find(|d| d.kind() == kind)
            .map(|d| &d.value)
            .unwrap_or(&Value::Null);
        assert_eq!(
            w.pointer("/spec/template/spec/securityContext/runAsNonRoot"),
            Some(&json!(true))
        );
        for n in names {
            let sc = &container(w, n)["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{n}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{n}");
            assert_eq!(sc["runAsNonRoot"], true, "{n}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{n}");
        }
    }

    // The node agent: Envoy and the enforcer share the socket directory.
    let ds = find(&docs, "DaemonSet", "node");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(spec["automountServiceAccountToken"], false);
    let vols = spec["volumes"].as_array().cloned().unwrap_or_default();
    let socket_vol = vols
        .iter()
        .find(|v| v["name"] == "enforcer-socket")
        .unwrap_or(&Value::Null);
    assert!(
        socket_vol["emptyDir"].is_object(),
        "socket volume is not an emptyDir: {socket_vol}"
    );
    for n in ["envoy", "enforcer"] {
        let c = container(ds, n);
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "enforcer-socket" && m["mountPath"] == "/var/run/palisade"),
            "{n} does not mount the socket directory"
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert!(c[probe].is_object(), "{n} has no {probe}");
        }
    }
    let envoy = container(ds, "envoy");
    assert!(args(envoy).contains(&"--service-node=$(NODE_NAME)".to_owned()));
    let node_env = envoy["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "NODE_NAME"))
        .cloned();
    assert_eq!(
        node_env.and_then(|v| v.pointer("/valueFrom/fieldRef/fieldPath").cloned()),
        Some(json!("spec.nodeName"))
    );
    let enforcer = container(ds, "enforcer");
    let e = env(enforcer);
    for (k, v) in [
        ("PALISADE_SOCKET", "/var/run/palisade/enforcer.sock"),
        ("PALISADE_FAILURE_MODE", "deny"),
        (
            "PALISADE_CONTROL_PLANE",
            "https://palisade-control-plane.palisade-system.svc.cluster.local:18001",
        ),
        ("PALISADE_METRICS_ADDR", "0.0.0.0:9094"),
        ("PALISADE_TLS_CA", "/etc/palisade/tls/ca.crt"),
    ] {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "enforcer {k}: {e:?}");
    }
    let node_name = enforcer["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "NODE_NAME"))
        .and_then(|v| v.pointer("/valueFrom/fieldRef/fieldPath"));
    assert_eq!(node_name, Some(&json!("spec.nodeName")));

    // Envoy's bootstrap: ADS to the control plane's xDS Service over mTLS.
    let bootstrap = find(&docs, "ConfigMap", "node-envoy")["data"]["envoy.yaml"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let boot: Value = serde_yaml::from_str(&bootstrap).unwrap_or_else(|e| panic!("bootstrap: {e}"));
    let xds = boot["static_resources"]["clusters"][0].clone();
    assert_eq!(xds["name"], "palisade_xds");
    assert_eq!(
        xds.pointer("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address"),
        Some(
            &json!({"address": "palisade-control-plane.palisade-system.svc.cluster.local", "port_value": 18000})
        )
    );
    assert_eq!(
        xds.pointer("/transport_socket/name"),
        Some(&json!("envoy.transport_sockets.tls"))
    );
    assert_eq!(
        boot.pointer("/dynamic_resources/ads_config/grpc_services/0/envoy_grpc/cluster_name"),
        Some(&json!("palisade_xds"))
    );

    // The ApplicationLayer from values.
    let al = find(&docs, "ApplicationLayer", "default");
    assert_eq!(
        al["spec"],
        json!({
            "webApplicationFirewall": "Enabled",
            "applicationLayerPolicy": "Enabled",
            "logCollection": {"collectLogs": "Enabled", "logIntervalSeconds": 5, "logRequestsPerInterval": 100},
            "defaultWafMode": "On",
            "failureMode": "Deny",
            "bodyLimitBytes": 131072,
            "defaultRuleset": "crs"
        })
    );
}

#[test]
fn calico_crds_only_when_asked() {
    let off = render_docs(&[&ci("defaults-values.yaml")], &[]);
    assert!(!off
        .iter()
        .any(|d| d.name().ends_with(".crd.projectcalico.org")));
    let on = render_docs(&[&ci("calico-crds-values.yaml")], &[]);
    let files: BTreeMap<String, Value> = chart_crd_files()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("calico-crds"))
        .map(|(_, v)| {
            (
                v.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                v,
            )
        })
        .collect();
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [
            "globalnetworkpolicies.crd.projectcalico.org",
            "tiers.crd.projectcalico.org"
        ]
    );
    for (name, file) in files {
        let doc = on
            .iter()
            .find(|d| d.kind() == "CustomResourceDefinition" && d.name() == name)
            .unwrap_or_else(|| panic!("{name} not rendered with calicoCRDs.install=true"));
        assert_eq!(
            doc.value
                .pointer("/metadata/annotations/helm.sh~1resource-policy"),
            Some(&json!("keep"))
        );
        // Rendering through Helm's fromYaml/toYaml must not change the schema.
        let mut lost = Vec::new();
        typed::lost_fields(&file["spec"], &doc.value["spec"], ".spec", &mut lost);
        typed::lost_fields(&doc.value["spec"], &file["spec"], ".spec", &mut lost);
        assert!(
            lost.is_empty(),
            "{name}: rendered CRD differs from its file: {lost:?}"
        );
    }
}

#[test]
fn waf_off_values_switch_the_waf_off() {
    let docs = render_docs(&[&ci("waf-off-values.yaml")], &[]);
    let al = find(&docs, "ApplicationLayer", "default");
    assert_eq!(al["spec"]["webApplicationFirewall"], "Disabled");
    assert_eq!(al["spec"]["applicationLayerPolicy"], "Enabled");
    assert_eq!(al["spec"]["defaultWafMode"], "Off");
    assert_eq!(al["spec"]["failureMode"], "Allow");
    assert_eq!(al["spec"]["logCollection"]["collectLogs"], "Disabled");
    let ds = find(&docs, "DaemonSet", "node");
    assert_eq!(
        env(container(ds, "enforcer"))
            .get("PALISADE_FAILURE_MODE")
            .map(String::as_str),
        Some("allow")
    );
}

#[test]
fn custom_ruleset_values_make_a_labelled_configmap() {
    let values = ci("custom-ruleset-values.yaml");
    let docs = render_docs(&[&values], &[]);
    let cm = find(&docs, "ConfigMap", "-ruleset");
    assert_eq!(
        cm.pointer("/metadata/labels/palisade.dev~1ruleset"),
        Some(&json!("site-rules"))
    );
    let raw: Value = serde_yaml::from_str(&std::fs::read_to_string(&values).unwrap_or_default())
        .unwrap_or(Value::Null);
    assert_eq!(
        cm["data"], raw["ruleset"]["files"],
        "ConfigMap data differs from the values' files"
    );
    let al = find(&docs, "ApplicationLayer", "default");
    assert_eq!(al["spec"]["defaultRuleset"], "site-rules");
    assert_eq!(al["spec"]["bodyLimitBytes"], 65536);
    // The control plane may read rulesets in its namespace and team-a, nowhere else.
    let role_namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d.kind() == "Role" && d.name().ends_with("-rulesets"))
        .filter_map(|d| {
            d.value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(role_namespaces, BTreeSet::from([NAMESPACE, "team-a"]));
    let e = env(container(
        find(&docs, "Deployment", "control-plane"),
        "control-plane",
    ));
    assert_eq!(
        e.get("PALISADE_RULESET_NAMESPACES").map(String::as_str),
        Some("palisade-system,team-a")
    );
}

#[test]
fn tls_can_come_from_each_source_and_be_turned_off() {
    // Chart-made: server certificate for the Service names, one CA for both.
    let docs = render_docs(&[], &[]);
    let server = find(&docs, "Secret", "control-plane-tls");
    let client = find(&docs, "Secret", "node-tls");
    assert_eq!(server["type"], "kubernetes.io/tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            server["data"][key].is_string() && client["data"][key].is_string(),
            "{key}"
        );
    }
    assert_eq!(server["data"]["ca.crt"], client["data"]["ca.crt"]);

    // cert-manager with the chart's own CA chain.
    let docs = render_docs(&[], &["tls.source=certManager"]);
    let names = kinds(&docs);
    for want in [
        "Issuer/palisade-selfsigned",
        "Certificate/palisade-ca",
        "Issuer/palisade-ca",
        "Certificate/palisade-control-plane-tls",
        "Certificate/palisade-node-tls",
    ] {
        assert!(names.contains(want), "{want}: {names:?}");
    }
    assert!(!docs.iter().any(|d| d.kind() == "Secret"));
    let cert = find(&docs, "Certificate", "control-plane-tls");
    assert!(cert["spec"]["dnsNames"]
        .as_array()
        .is_some_and(|d| d.contains(&json!("palisade-control-plane.palisade-system.svc"))));
    // cert-manager with the user's issuer.
    let docs = render_docs(&[&ci("cert-manager-values.yaml")], &[]);
    assert!(!docs.iter().any(|d| d.kind() == "Issuer"));
    assert_eq!(
        find(&docs, "Certificate", "node-tls")["spec"]["issuerRef"]["kind"],
        "ClusterIssuer"
    );
    // Existing Secrets.
    let docs = render_docs(
        &[],
        &[
            "tls.source=existing",
            "tls.existing.serverSecret=a",
            "tls.existing.clientSecret=b",
        ],
    );
    assert!(!docs
        .iter()
        .any(|d| d.kind() == "Secret" || d.kind() == "Certificate"));
    let ds = find(&docs, "DaemonSet", "node");
    let vol = ds
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|v| v.iter().find(|v| v["name"] == "tls"))
        .cloned();
    assert_eq!(
        vol.map(|v| v["secret"]["secretName"].clone()),
        Some(json!("b"))
    );
    // Off: no certificates, no TLS flags, plain-text sync and xDS.
    let docs = render_docs(&[], &["tls.enabled=false"]);
    assert!(!docs
        .iter()
        .any(|d| matches!(d.kind(), "Secret" | "Certificate" | "Issuer")));
    let ds = find(&docs, "DaemonSet", "node");
    let enforcer = env(container(ds, "enforcer"));
    assert!(
        enforcer["PALISADE_CONTROL_PLANE"].starts_with("http://"),
        "{enforcer:?}"
    );
    assert!(
        !enforcer.keys().any(|k| k.starts_with("PALISADE_TLS")),
        "{enforcer:?}"
    );
    let cp = env(container(
        find(&docs, "Deployment", "control-plane"),
        "control-plane",
    ));
    assert!(!cp.keys().any(|k| k.starts_with("PALISADE_TLS")), "{cp:?}");
    let boot = find(&docs, "ConfigMap", "node-envoy")["data"]["envoy.yaml"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        !boot.contains("transport_socket"),
        "TLS in bootstrap with tls.enabled=false"
    );
}

#[test]
fn rbac_is_least_privilege() {
    let docs = render_docs(&[&ci("calico-crds-values.yaml")], &[]);
    let mut granted: BTreeSet<String> = BTreeSet::new();
    for d in docs
        .iter()
        .filter(|d| d.kind() == "ClusterRole" || d.kind() == "Role")
    {
        for rule in d.value["rules"].as_array().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            };
            let (groups, resources, verbs) = (list("apiGroups"), list("resources"), list("verbs"));
            for x in groups.iter().chain(&resources).chain(&verbs) {
                assert_ne!(x, "*", "{}: wildcard in {rule}", d.describe());
            }
            assert!(
                !resources.iter().any(|r| r == "secrets"),
                "{}: reads Secrets",
                d.describe()
            );
            for g in &groups {
                for r in &resources {
                    for v in &verbs {
                        granted.insert(format!("{} {g}/{r} {v}", d.kind()));
                    }
                }
            }
        }
    }
    let writes: BTreeSet<&String> = granted
        .iter()
        .filter(|g| !g.ends_with(" get") && !g.ends_with(" list") && !g.ends_with(" watch"))
        .collect();
    let want_writes: BTreeSet<String> = [
        "ClusterRole /events create",
        "ClusterRole /events patch",
        "ClusterRole events.k8s.io/events create",
        "ClusterRole events.k8s.io/events patch",
        "ClusterRole palisade.dev/applicationlayers/status patch",
        "ClusterRole palisade.dev/applicationlayers/status update",
        "ClusterRole palisade.dev/globalalerts/status patch",
        "ClusterRole palisade.dev/globalalerts/status update",
        "Role coordination.k8s.io/leases create",
        "Role coordination.k8s.io/leases patch",
        "Role coordination.k8s.io/leases update",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(writes, want_writes.iter().collect::<BTreeSet<_>>());
    assert!(
        granted.contains("Role /configmaps watch")
            && !granted.contains("ClusterRole /configmaps watch")
    );
    for read in [
        "/services",
        "/pods",
        "/namespaces",
        "discovery.k8s.io/endpointslices",
        "crd.projectcalico.org/globalnetworkpolicies",
        "crd.projectcalico.org/tiers",
        "palisade.dev/applicationlayers",
        "palisade.dev/globalalerts",
    ] {
        for verb in ["get", "list", "watch"] {
            assert!(
                granted.contains(&format!("ClusterRole {read} {verb}")),
                "missing {read} {verb}"
            );
        }
    }
    // The node agent's ServiceAccount has no token and no bindings.
    let node_sa = find(&docs, "ServiceAccount", "node");
    assert_eq!(node_sa["automountServiceAccountToken"], false);
    for d in docs.iter().filter(|d| d.kind().ends_with("Binding")) {
        for s in d.value["subjects"].as_array().into_iter().flatten() {
            assert_eq!(
                s["name"],
                "palisade-control-plane",
                "{} binds {s}",
                d.describe()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// CRDs, the control plane's types, and the examples in policies/.

fn bless() -> bool {
    std::env::var_os("PALISADE_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn chart_crds_match_the_control_plane_types() {
    let crds = palisade_control_plane::k8s::crds(true);
    let mut expected: BTreeMap<PathBuf, String> = BTreeMap::new();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let dir = if name.ends_with(".palisade.dev") {
            chart_dir().join("crds")
        } else {
            chart_dir().join("files").join("calico-crds")
        };
        // serde_yaml leaves `On`/`Off` plain; Helm and kubectl (YAML 1.1) would read
        // them as booleans, so they are quoted.
        let yaml = manifest::quote_yaml11_booleans(
            &serde_yaml::to_string(crd).unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        let header = "# Generated from the control plane's Rust types (palisade_control_plane::k8s::crds).\n# Do not edit: run `PALISADE_BLESS=1 cargo test -p palisade-integration --test chart`.\n";
        expected.insert(dir.join(format!("{name}.yaml")), format!("{header}{yaml}"));
    }
    let mut stale = Vec::new();
    for (path, want) in &expected {
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != *want {
            if bless() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                }
                std::fs::write(path, want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    for (path, _) in chart_crd_files() {
        if !expected.contains_key(&path) {
            stale.push(format!("{} (not generated by the types)", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "chart CRDs differ from the control plane's types: {stale:?}\nrun PALISADE_BLESS=1 cargo test -p palisade-integration --test chart"
    );
    for (path, crd) in chart_crd_files() {
        assert_eq!(typed::check(&crd), Ok(()), "{}", path.display());
        for version in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let schema = version
                .pointer("/schema/openAPIV3Schema")
                .unwrap_or(&Value::Null);
            let problems = openapi::structural_problems(schema);
            assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        }
    }
}

/// Every YAML document of `policies/*.yaml`, with its file.
fn policy_examples() -> Vec<(PathBuf, Document, String)> {
    let dir = tools::repo_root().join("policies");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let body = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let docs =
            manifest::parse_documents(&body).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.extend(docs.into_iter().map(|d| (p.clone(), d, body.clone())));
    }
    out
}

/// Calico objects are written as `projectcalico.org/v3`; their CRD is `crd.projectcalico.org/v1`.
fn as_stored(obj: &Value) -> Value {
    let mut v = obj.clone();
    if v["apiVersion"] == "projectcalico.org/v3" {
        v["apiVersion"] = json!("crd.projectcalico.org/v1");
    }
    v
}

#[test]
fn policy_examples_validate_against_the_chart_crds() {
    let examples = policy_examples();
    assert!(
        examples
            .iter()
            .any(|(_, d, _)| d.kind() == "ApplicationLayer"),
        "no ApplicationLayer example in policies/"
    );
    let mut errors = Vec::new();
    let mut files = BTreeSet::new();
    for (path, doc, body) in &examples {
        if files.insert(path.clone()) {
            for hit in manifest::yaml11_booleans(body) {
                errors.push(format!(
                    "{}:{}: YAML 1.1 (kubectl) reads this as a boolean: {}",
                    path.display(),
                    hit.line,
                    hit.text.trim()
                ));
            }
        }
        let obj = as_stored(&doc.value);
        let docs = vec![Document {
            source: path.display().to_string(),
            value: obj,
        }];
        errors.extend(validate_objects(&docs, ""));
    }
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));
}

fn load_through<T>(obj: &Value) -> Result<(), String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    typed::lost_fields(obj, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("fields the types do not know: {lost:?}"))
    }
}

#[test]
fn policy_examples_load_through_the_control_plane_types() {
    use palisade_control_plane::k8s;
    let mut errors = Vec::new();
    let mut loaded = 0;
    for (path, doc, _) in policy_examples() {
        let obj = as_stored(&doc.value);
        let result = match (doc.api_version(), doc.kind()) {
            ("palisade.dev/v1", "ApplicationLayer") => load_through::<k8s::ApplicationLayer>(&obj),
            ("palisade.dev/v1", "GlobalAlert") => load_through::<k8s::GlobalAlert>(&obj),
            (_, "GlobalNetworkPolicy") => load_through::<k8s::GlobalNetworkPolicy>(&obj),
            (_, "Tier") => load_through::<k8s::Tier>(&obj),
            ("v1", _) => continue,
            (api, kind) => Err(format!("no control-plane type for {api} {kind}")),
        };
        loaded += 1;
        if let Err(e) = result {
            errors.push(format!("{}: {}: {e}", path.display(), doc.describe()));
        }
    }
    assert!(loaded > 0, "no custom resources in policies/");
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));
}

#[test]
fn the_chart_application_layer_loads_through_the_control_plane_types() {
    for values in values_files() {
        let docs = render_docs(&[&values], &[]);
        for d in docs.iter().filter(|d| d.kind() == "ApplicationLayer") {
            let r = load_through::<palisade_control_plane::k8s::ApplicationLayer>(&d.value);
            assert_eq!(r, Ok(()), "{}", values.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Envoy's bootstrap, checked by Envoy.

#[test]
fn envoy_accepts_the_rendered_bootstrap() {
    let envoy = match tools::envoy() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    for sets in [&[][..], &["tls.enabled=false"][..]] {
        let docs = render_docs(&[], sets);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut bootstrap = find(&docs, "ConfigMap", "node-envoy")["data"]["envoy.yaml"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        // Put the rendered client certificate where the bootstrap expects it.
        if let Some(secret) = docs
            .iter()
            .find(|d| d.kind() == "Secret" && d.name().ends_with("node-tls"))
        {
            use base64::Engine as _;
            for key in ["tls.crt", "tls.key", "ca.crt"] {
                let b64 = secret.value["data"][key].as_str().unwrap_or("");
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
                std::fs::write(dir.path().join(key), pem).unwrap_or_else(|e| panic!("{e}"));
            }
            bootstrap =
                bootstrap.replace("/etc/palisade/tls/", &format!("{}/", dir.path().display()));
        }
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, &bootstrap).unwrap_or_else(|e| panic!("{e}"));
        let out = run(Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--service-node",
                "node-1",
                "--service-cluster",
                "palisade-node",
                "-c",
            ])
            .arg(&path));
        assert!(
            out.status.success(),
            "envoy --mode validate {sets:?}:\n{}\n{bootstrap}",
            text(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// scripts/crs-configmap and scripts/install-helm.

fn crs_dir() -> PathBuf {
    std::env::var_os("PALISADE_CRS_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::repo_root().join("..").join("shared").join("crs"))
}

fn crs_configmap(extra: &[&str]) -> Value {
    let script = tools::repo_root().join("scripts").join("crs-configmap");
    let out = run(Command::new("python3")
        .arg(&script)
        .args(extra)
        .arg(crs_dir()));
    assert!(
        out.status.success(),
        "crs-configmap {extra:?}: {}",
        text(&out)
    );
    let docs = manifest::parse_documents(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1);
    assert_eq!(typed::check(&docs[0].value), Ok(()));
    docs[0].value.clone()
}

/// The files the ConfigMap must hold, by key, read from the CRS directory.
fn expected_ruleset_files() -> BTreeMap<String, Vec<u8>> {
    let crs = crs_dir();
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut want = BTreeMap::new();
    want.insert(
        "modsecdefault.conf".to_owned(),
        read(
            &tools::repo_root()
                .join("policies")
                .join("modsecdefault.conf"),
        ),
    );
    want.insert(
        "crs-setup.conf".to_owned(),
        read(&crs.join("crs-setup.conf.example")),
    );
    for e in std::fs::read_dir(crs.join("rules"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".conf") || name.ends_with(".data") {
            want.insert(name, read(&e.path()));
        }
    }
    want
}

#[test]
fn crs_configmap_holds_the_crs_flat_and_under_the_size_limit() {
    let cm = crs_configmap(&["--namespace", NAMESPACE]);
    assert_eq!(
        cm.pointer("/metadata/labels/palisade.dev~1ruleset"),
        Some(&json!("crs"))
    );
    assert_eq!(cm.pointer("/metadata/namespace"), Some(&json!(NAMESPACE)));
    let data = cm["data"].as_object().cloned().unwrap_or_default();
    let want = expected_ruleset_files();
    assert!(
        want.len() > 40,
        "CRS at {} looks incomplete",
        crs_dir().display()
    );
    assert_eq!(
        data.keys().cloned().collect::<BTreeSet<_>>(),
        want.keys().cloned().collect::<BTreeSet<_>>()
    );
    let mut total = 0;
    for (k, v) in &data {
        let v = v.as_str().unwrap_or("");
        total += v.len();
        assert!(
            v.as_bytes() == want[k].as_slice(),
            "{k} differs from its file"
        );
    }
    assert!(
        total < 1024 * 1024,
        "{total} bytes exceed the ConfigMap limit"
    );
}

#[test]
fn crs_configmap_can_store_the_crs_gzip_compressed() {
    use base64::Engine as _;
    let cm = crs_configmap(&["--compress", "always", "--name", "crs-gz"]);
    assert!(cm.get("data").is_none());
    let bin = cm["binaryData"].as_object().cloned().unwrap_or_default();
    let want = expected_ruleset_files();
    let keys: BTreeSet<String> = bin
        .keys()
        .map(|k| k.trim_end_matches(".gz").to_owned())
        .collect();
    assert_eq!(keys, want.keys().cloned().collect::<BTreeSet<_>>());
    let mut total = 0;
    for (k, v) in &bin {
        let gz = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{k}: {e}"));
        total += gz.len();
        assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]), "{k} is not gzip");
    }
    assert!(total < 300 * 1024, "compressed CRS takes {total} bytes");
    // Decompress one file with Python's gzip to check the content, too.
    let key = "REQUEST-942-APPLICATION-ATTACK-SQLI.conf";
    let b64 = bin[&format!("{key}.gz")].as_str().unwrap_or("").to_owned();
    let out = run(Command::new("python3").args([
        "-c",
        "import base64,gzip,sys; sys.stdout.buffer.write(gzip.decompress(base64.b64decode(sys.argv[1])))",
        &b64,
    ]));
    assert!(out.status.success());
    assert!(
        out.stdout == want[key],
        "{key} does not decompress to its file"
    );
}

#[test]
fn crs_configmap_rejects_bad_input() {
    let script = tools::repo_root().join("scripts").join("crs-configmap");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases: &[&[&str]] = &[
        &["--name", "Bad_Name"],
        &["--ruleset=-bad-"],
        &["--compress", "never", "--extra", "/nonexistent/file.conf"],
    ];
    for extra in cases {
        let out = run(Command::new("python3")
            .arg(&script)
            .args(*extra)
            .arg(crs_dir()));
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {}", text(&out));
    }
    let out = run(Command::new("python3").arg(&script).arg(dir.path()));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("no rules/ directory"), "{}", text(&out));
    // Too big to store uncompressed: --compress never refuses, auto compresses.
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("crs-setup.conf.example"), "# setup\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let big: String = (0..40_000).map(|i| format!("pattern-{i:08}\n")).collect();
    std::fs::write(rules.join("big.data"), &big).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(rules.join("big2.data"), &big).unwrap_or_else(|e| panic!("{e}"));
    let out = run(Command::new("python3")
        .arg(&script)
        .args(["--compress", "never"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let out = run(Command::new("python3").arg(&script).arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("binaryData:"));
}

#[test]
fn install_helm_is_idempotent() {
    let helm = helm_bin();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&helm, dir.path().join("helm")).unwrap_or_else(|e| panic!("{e}"));
    let script = tools::repo_root().join("scripts").join("install-helm");
    let out = run(Command::new("bash").arg(&script).arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already at"),
        "install-helm did not notice the installed Helm: {}",
        text(&out)
    );
    let out = run(Command::new("bash").arg(&script));
    assert!(
        !out.status.success(),
        "install-helm without DESTDIR succeeded"
    );
}

// ---------------------------------------------------------------------------
// Documentation of the values.

/// Dotted paths of every leaf of a values tree (empty maps and lists are leaves).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, sub) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(sub, &p, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_value_is_documented_and_typed() {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("values.yaml: {e}"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("values.schema.json: {e}"));
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap_or_default();
    let mut paths = Vec::new();
    leaves(&values, "", &mut paths);
    // Maps the user fills in (labels, resources, ...) are documented as a whole.
    let mut missing_doc = Vec::new();
    let mut missing_schema = Vec::new();
    for p in &paths {
        let documented = |q: &str| readme.contains(&format!("| `{q}` |"));
        let mut q = p.as_str();
        let mut found = documented(q);
        while !found {
            match q.rfind('.') {
                Some(i) => {
                    q = &q[..i];
                    found = documented(q);
                }
                None => break,
            }
        }
        if !found {
            missing_doc.push(p.clone());
        }
        let mut node = &schema;
        for part in p.split('.') {
            match node.pointer(&format!("/properties/{part}")) {
                Some(n) => node = n,
                None if node
                    .get("additionalProperties")
                    .is_some_and(Value::is_object) =>
                {
                    break
                }
                None if node.get("type") == Some(&json!("object"))
                    && node.get("additionalProperties").is_none() =>
                {
                    break
                }
                None => {
                    missing_schema.push(p.clone());
                    break;
                }
            }
        }
    }
    assert!(
        missing_doc.is_empty(),
        "values without a row in README.md: {missing_doc:?}"
    );
    assert!(
        missing_schema.is_empty(),
        "values not in values.schema.json: {missing_schema:?}"
    );
    // Every values.schema.json object with properties is closed: no typos pass.
    fn closed(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            if node.get("additionalProperties") != Some(&json!(false)) {
                out.push(path.to_owned());
            }
            for (k, sub) in props {
                closed(sub, &format!("{path}.{k}"), out);
            }
        }
    }
    let mut open = Vec::new();
    closed(&schema, "", &mut open);
    assert!(
        open.is_empty(),
        "schema objects that accept unknown keys: {open:?}"
    );
}

// ---------------------------------------------------------------------------
// Images.

#[test]
fn dockerfiles_are_multi_stage_static_or_distroless_and_non_root() {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    for (component, key) in [("control-plane", "controlPlane"), ("enforcer", "enforcer")] {
        let path = tools::repo_root()
            .join("deploy")
            .join(format!("{component}.Dockerfile"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let froms: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
            .collect();
        assert!(froms.len() >= 2, "{component}: not multi-stage");
        let last = froms.last().copied().unwrap_or("");
        assert!(
            last.contains("distroless") || last.contains("scratch"),
            "{component}: final stage {last:?} is neither distroless nor static"
        );
        let user = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("USER "))
            .unwrap_or("");
        let uid = user.split(':').next().unwrap_or("");
        assert!(
            uid.parse::<u32>().is_ok_and(|u| u != 0),
            "{component}: USER {user:?} is not a numeric non-root user"
        );
        let bin = format!("palisade-{component}");
        assert!(
            text.contains(&format!("-p {bin} --bin {bin}")) && text.contains("--locked"),
            "{component}: does not build {bin} with --locked"
        );
        assert!(text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")));
        let repo = values["images"][key]["repository"].as_str().unwrap_or("");
        assert!(
            repo.ends_with(&format!("/{bin}")),
            "values images.{key}.repository {repo:?} does not name {bin}"
        );
    }
}

#[test]
fn a_client_dry_run_install_renders_the_notes() {
    for values in values_files() {
        let out = run(Command::new(helm_bin())
            .args(["install", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", NAMESPACE, "--dry-run=client", "-f"])
            .arg(&values));
        let all = text(&out);
        assert!(out.status.success(), "{}: {all}", values.display());
        assert!(
            all.contains("NOTES:")
                && all.contains("Palisade")
                && all.contains("palisade.dev/waf=On"),
            "{}: no NOTES in {all}",
            values.display()
        );
    }
}
