//! The compiled ruleset and the per-request transaction.
//!
//! [`Ruleset`] is immutable and cheap to clone (an `Arc`); compile it once,
//! share it across threads and swap it atomically. A [`Transaction`] holds the
//! state of one request: feed it the connection, request line, headers and
//! body, run each phase, then read the [`Intervention`] and the
//! [`MatchedRule`]s.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::seclang::Span;

/// `SecRuleEngine`: whether disruptive actions are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EngineMode {
    /// Rules run and disruptive actions take effect.
    #[default]
    On,
    /// Rules run and log, but nothing is disrupted.
    DetectionOnly,
    /// No rules run.
    Off,
}

impl EngineMode {
    /// Parses `On`, `DetectionOnly` or `Off` (case-insensitive).
    pub fn parse(text: &str) -> Option<EngineMode> {
        match text.to_ascii_lowercase().as_str() {
            "on" => Some(EngineMode::On),
            "detectiononly" => Some(EngineMode::DetectionOnly),
            "off" => Some(EngineMode::Off),
            _ => None,
        }
    }

    /// The SecLang spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EngineMode::On => "On",
            EngineMode::DetectionOnly => "DetectionOnly",
            EngineMode::Off => "Off",
        }
    }
}

impl fmt::Display for EngineMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found while loading or compiling a ruleset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", span.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
pub struct CompileError {
    /// Where, when known.
    pub span: Option<Span>,
    /// What is wrong (lowercase).
    pub message: String,
}

/// Every problem found while loading a ruleset (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in ruleset; first: {}", errors.len(), errors[0])]
pub struct LoadError {
    /// The errors, in file order.
    pub errors: Vec<CompileError>,
}

/// A compiled, immutable ruleset.
#[derive(Clone)]
pub struct Ruleset {
    inner: Arc<RulesetInner>,
}

struct RulesetInner {}

impl fmt::Debug for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ruleset").finish_non_exhaustive()
    }
}

impl Ruleset {
    /// Loads a ruleset PATH: a file, or a flat directory (`modsecdefault.conf`,
    /// `crs-setup.conf`, then the other `*.conf` sorted by name).
    pub fn load(path: &Path) -> Result<Ruleset, LoadError> {
        let _ = path;
        todo!()
    }

    /// Loads several files from the filesystem, in the given order, as one ruleset.
    pub fn load_paths(paths: &[&Path]) -> Result<Ruleset, LoadError> {
        let _ = paths;
        todo!()
    }

    /// Loads a flat in-memory ruleset (a ConfigMap's keys and values), in the
    /// same order as [`load`](Self::load) uses for directories.
    pub fn load_files(
        files: std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<Ruleset, LoadError> {
        let _ = files;
        todo!()
    }

    /// Compiles SecLang text (no `Include`, data files unavailable).
    pub fn from_text(text: &str) -> Result<Ruleset, LoadError> {
        let _ = text;
        todo!()
    }

    /// The configured `SecRuleEngine` mode.
    pub fn engine_mode(&self) -> EngineMode {
        todo!()
    }

    /// Number of rules (chains count once).
    pub fn rule_count(&self) -> usize {
        todo!()
    }

    /// Starts a transaction for one request.
    pub fn transaction(&self) -> Transaction {
        let _ = &self.inner;
        todo!()
    }
}

/// What the engine decided to do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intervention {
    /// HTTP status to answer with (403 by default for `deny`).
    pub status: u16,
    /// Redirect target for `redirect`.
    pub redirect: Option<String>,
    /// The action.
    pub action: DisruptiveAction,
    /// Rule that disrupted.
    pub rule_id: i64,
    /// Phase it happened in (1-5).
    pub phase: u8,
}

/// Disruptive actions that end a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisruptiveAction {
    /// `deny`
    Deny,
    /// `drop` (close the connection)
    Drop,
    /// `redirect`
    Redirect,
}

/// A rule that matched, with what it logged.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchedRule {
    /// `id`
    pub id: i64,
    /// Phase it ran in.
    pub phase: u8,
    /// Expanded `msg`.
    pub msg: String,
    /// Expanded `logdata`.
    pub data: String,
    /// `severity` (0 emergency .. 7 debug).
    pub severity: Option<u8>,
    /// `tag`s.
    pub tags: Vec<String>,
    /// Where the rule is defined.
    pub span: Span,
    /// Whether the rule would be logged (`log`/`nolog`).
    pub log: bool,
    /// Whether the rule's action was disruptive and took effect.
    pub disruptive: bool,
    /// MATCHED_VAR_NAME of the last matching value.
    pub matched_var_name: String,
    /// MATCHED_VAR (the transformed value that matched).
    pub matched_var: Vec<u8>,
}

/// State of one request passing through the rules.
pub struct Transaction {
    _private: (),
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

#[allow(clippy::todo)]
impl Transaction {
    /// Overrides the ruleset's engine mode for this request (per-service mode).
    pub fn set_engine_mode(&mut self, mode: EngineMode) {
        let _ = mode;
        todo!()
    }
    /// Sets UNIQUE_ID (e.g. Envoy's x-request-id).
    pub fn set_unique_id(&mut self, id: &str) {
        let _ = id;
        todo!()
    }
    /// Connection facts: REMOTE_ADDR/PORT, SERVER_ADDR/PORT.
    pub fn process_connection(
        &mut self,
        client_ip: &str,
        client_port: u16,
        server_ip: &str,
        server_port: u16,
    ) {
        let _ = (client_ip, client_port, server_ip, server_port);
        todo!()
    }
    /// The request line: method, URI as sent (path and query), protocol (`HTTP/1.1`).
    pub fn process_uri(&mut self, uri: &str, method: &str, protocol: &str) {
        let _ = (uri, method, protocol);
        todo!()
    }
    /// One request header (repeatable).
    pub fn add_request_header(&mut self, name: &[u8], value: &[u8]) {
        let _ = (name, value);
        todo!()
    }
    /// Runs phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        todo!()
    }
    /// Buffers request body bytes; may intervene when over the body limit with `Reject`.
    pub fn append_request_body(&mut self, data: &[u8]) -> Option<Intervention> {
        let _ = data;
        todo!()
    }
    /// Runs the body processor and phase 2.
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        todo!()
    }
    /// One response header (repeatable).
    pub fn add_response_header(&mut self, name: &[u8], value: &[u8]) {
        let _ = (name, value);
        todo!()
    }
    /// Runs phase 3 with the response status and protocol.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        protocol: &str,
    ) -> Option<Intervention> {
        let _ = (status, protocol);
        todo!()
    }
    /// Buffers response body bytes.
    pub fn append_response_body(&mut self, data: &[u8]) -> Option<Intervention> {
        let _ = data;
        todo!()
    }
    /// Runs phase 4.
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        todo!()
    }
    /// Runs phase 5.
    pub fn process_logging(&mut self) {
        todo!()
    }
    /// The intervention, once one happened.
    pub fn intervention(&self) -> Option<&Intervention> {
        todo!()
    }
    /// Rules that matched so far, in order.
    pub fn matched_rules(&self) -> &[MatchedRule] {
        todo!()
    }
    /// The inbound anomaly score (`TX:blocking_inbound_anomaly_score`, else `TX:anomaly_score`).
    pub fn anomaly_score(&self) -> i64 {
        todo!()
    }
    /// A TX variable, if set.
    pub fn tx_var(&self, name: &str) -> Option<Vec<u8>> {
        let _ = name;
        todo!()
    }
}
