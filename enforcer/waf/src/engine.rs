//! The compiled ruleset and the per-request transaction.
//!
//! [`Ruleset`] is immutable and cheap to clone (an `Arc`); compile it once,
//! share it across threads and swap it atomically. A [`Transaction`] holds the
//! state of one request: feed it the connection, request line, headers and
//! body, run each phase, then read the [`Intervention`] and the
//! [`MatchedRule`]s.

mod compile;
mod config;
mod literal_scan;
mod rule;
mod transaction;
mod verdicts;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use config::{BodyLimitAction, Config};
pub use transaction::Transaction;

use crate::seclang::{self, FileSource, FsSource, MemorySource, ParseError, Span};

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

pub(crate) struct RulesetInner {
    pub(crate) compiled: compile::Compiled,
    /// The state the static rules at the start of phase 1 leave, computed
    /// once (see `transaction::prefix`).
    pub(crate) prefix: Option<transaction::prefix::Prefix>,
    /// Misses of pure rule links remembered across transactions.
    pub(crate) verdicts: verdicts::VerdictCache,
}

impl RulesetInner {
    /// Gives the links that are pure once frozen TX holds (`links`: phase
    /// index, item, depth in the chain) verdict bits of their own, and
    /// makes the verdict cache for the larger set of links.
    fn add_frozen_verdicts(&mut self, links: Vec<transaction::prefix::LinkAt>) {
        if links.is_empty() {
            return;
        }
        let mut next = self.compiled.verdict_links as u32;
        for (phase, item, depth) in links {
            let Some(rule::Item::Rule(rule)) = self.compiled.phases[phase].get_mut(item) else {
                continue;
            };
            // Nothing else holds the rule yet (a shared one is left alone).
            let mut link = Arc::get_mut(rule);
            for _ in 0..depth {
                link = link.and_then(|r| r.chained.as_deref_mut());
            }
            if let Some(link) = link.filter(|l| l.verdict_bit.is_none()) {
                link.verdict_bit = Some(next);
                link.verdict_frozen = true;
                next += 1;
            }
        }
        self.compiled.verdict_links = next as usize;
        self.verdicts = Self::verdict_cache(&self.compiled);
    }

    /// A compiled ruleset without its static prefix, with an empty verdict
    /// cache.
    pub(crate) fn new(compiled: compile::Compiled) -> RulesetInner {
        RulesetInner {
            verdicts: Self::verdict_cache(&compiled),
            compiled,
            prefix: None,
        }
    }

    /// An empty verdict cache sized for `compiled`'s pure links, chains and
    /// literal bit sets.
    fn verdict_cache(compiled: &compile::Compiled) -> verdicts::VerdictCache {
        verdicts::VerdictCache::new(
            compiled.verdict_links,
            compiled.chains.len(),
            compiled.literals.as_ref().map_or(0, |l| l.words),
        )
    }
}

impl fmt::Debug for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ruleset")
            .field("rules", &self.inner.compiled.rule_count)
            .field("engine", &self.inner.compiled.config.engine)
            .finish_non_exhaustive()
    }
}

fn parse_errors(errors: Vec<ParseError>) -> Vec<CompileError> {
    errors
        .into_iter()
        .map(|e| CompileError {
            span: Some(e.span),
            message: e.message,
        })
        .collect()
}

impl Ruleset {
    fn build(source: &dyn FileSource, files: &[String]) -> Result<Ruleset, LoadError> {
        let mut directives = Vec::new();
        let mut errors = Vec::new();
        for file in files {
            match seclang::parse_file(source, file) {
                Ok(d) => directives.extend(d),
                Err(e) => errors.extend(parse_errors(e)),
            }
        }
        if !errors.is_empty() {
            return Err(LoadError { errors });
        }
        Self::from_directives(&directives, source)
    }

    fn from_directives(
        directives: &[seclang::Located<seclang::Directive>],
        source: &dyn FileSource,
    ) -> Result<Ruleset, LoadError> {
        let compiled =
            compile::compile(directives, source).map_err(|errors| LoadError { errors })?;
        let mut inner = Arc::new(RulesetInner::new(compiled));
        let mut prefix = transaction::prefix::Prefix::evaluate(Arc::clone(&inner));
        if let Some(inner) = Arc::get_mut(&mut inner) {
            // The evaluating transaction is gone: this is the only handle.
            if let Some(p) = &mut prefix {
                inner.add_frozen_verdicts(p.take_frozen_pure());
            }
            inner.prefix = prefix;
        }
        Ok(Ruleset { inner })
    }

    /// Loads a ruleset PATH: a file, or a flat directory (`modsecdefault.conf`,
    /// `crs-setup.conf`, then the other `*.conf` sorted by name).
    pub fn load(path: &Path) -> Result<Ruleset, LoadError> {
        let source = FsSource;
        let name = path.to_string_lossy();
        let files = seclang::ruleset_files(&source, &name).map_err(|e| LoadError {
            errors: vec![CompileError {
                span: None,
                message: format!("cannot read ruleset {name}: {e}"),
            }],
        })?;
        if files.is_empty() {
            return Err(LoadError {
                errors: vec![CompileError {
                    span: None,
                    message: format!("no *.conf files in {name}"),
                }],
            });
        }
        Self::build(&source, &files)
    }

    /// Loads several files from the filesystem, in the given order, as one ruleset.
    pub fn load_paths(paths: &[&Path]) -> Result<Ruleset, LoadError> {
        let files: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        Self::build(&FsSource, &files)
    }

    /// Loads a flat in-memory ruleset (a ConfigMap's keys and values), in the
    /// same order as [`load`](Self::load) uses for directories.
    pub fn load_files(files: BTreeMap<String, Vec<u8>>) -> Result<Ruleset, LoadError> {
        let source = MemorySource { files };
        let order = seclang::ruleset_files(&source, "").map_err(|e| LoadError {
            errors: vec![CompileError {
                span: None,
                message: format!("cannot list ruleset files: {e}"),
            }],
        })?;
        if order.is_empty() {
            return Err(LoadError {
                errors: vec![CompileError {
                    span: None,
                    message: "ruleset has no *.conf files".into(),
                }],
            });
        }
        Self::build(&source, &order)
    }

    /// Compiles SecLang text (no `Include`, data files unavailable).
    pub fn from_text(text: &str) -> Result<Ruleset, LoadError> {
        let directives = seclang::parse_str(text, "<inline>").map_err(|e| LoadError {
            errors: parse_errors(e),
        })?;
        Self::from_directives(&directives, &MemorySource::default())
    }

    /// The configured `SecRuleEngine` mode.
    pub fn engine_mode(&self) -> EngineMode {
        self.inner.compiled.config.engine
    }

    /// Number of rules (chains count once).
    pub fn rule_count(&self) -> usize {
        self.inner.compiled.rule_count
    }

    /// Size facts about the compiled ruleset.
    pub fn stats(&self) -> RulesetStats {
        let c = &self.inner.compiled;
        RulesetStats {
            rules: c.rule_count,
            transformation_chains: c.chain_count as usize,
            prefiltered_rules: c.prefiltered_rules,
            verdict_links: c.verdict_links,
        }
    }

    /// Turns on or off (on by default) remembering, across transactions,
    /// which values each rule with a pure operator did not match, so that a
    /// repeated value (a client's `User-Agent`, an application's parameter
    /// names) is not evaluated again by those rules. Results are the same
    /// either way; turning it off forgets what was remembered. See
    /// docs/performance.md, "Verdict cache".
    pub fn set_verdict_cache(&self, on: bool) {
        self.inner.verdicts.set_enabled(on);
    }

    /// Distinct values the verdict cache holds and the bytes it counts for
    /// them (at most 16 MiB).
    pub fn verdict_cache_usage(&self) -> (usize, usize) {
        self.inner.verdicts.usage()
    }

    /// The effective engine configuration.
    pub fn config(&self) -> &Config {
        &self.inner.compiled.config
    }

    /// Starts a transaction for one request.
    pub fn transaction(&self) -> Transaction {
        Transaction::new(Arc::clone(&self.inner))
    }
}

/// Size facts about a compiled ruleset (see [`Ruleset::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RulesetStats {
    /// Rules (a chain counts once).
    pub rules: usize,
    /// Distinct transformation chains (each gets one shared prefilter).
    pub transformation_chains: usize,
    /// Rules and chain links whose operator is guarded by a literal prefilter.
    pub prefiltered_rules: usize,
    /// Rule links whose misses the verdict cache remembers: pure operators,
    /// and operators whose argument reads only frozen TX.
    pub verdict_links: usize,
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
    /// The operator as written (`@rx ...`, argument cut at 200 bytes), for logs.
    pub operator: String,
}
