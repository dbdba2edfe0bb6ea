//! Operators (`@rx`, `@pm`, `@detectSQLi`, ...): compiled once when the ruleset
//! is built, evaluated per (transformed) value.
//!
//! Every operator lives in its own file under `operators/`, named after its
//! SecLang keyword in snake_case, and documents its SecLang form plus any
//! place where ModSecurity v3 (the reference) and Coraza behave differently.
//! [`build`] maps a keyword (case-insensitively) to its constructor.
//!
//! Arguments may contain macros (`@within %{tx.allowed_methods}`); operators
//! precompute what they can (numbers, automata, regexes) when the argument is
//! a literal and otherwise expand it per evaluation through
//! [`OperatorContext::expand`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use crate::live::LiveCache;

use crate::macros::MacroText;

mod argument;
mod begins_with;
mod contains;
mod contains_word;
mod detect_sqli;
mod detect_xss;
mod ends_with;
mod eq;
mod ge;
mod gt;
mod ip_match;
mod ip_match_from_file;
mod le;
mod lt;
mod no_match;
mod numeric;
mod pm;
mod pm_from_file;
mod rx;
mod streq;
mod strmatch;
mod unconditional_match;
mod validate_byte_range;
mod validate_url_encoding;
mod validate_utf8_encoding;
mod within;

pub use begins_with::BeginsWith;
pub use contains::Contains;
pub use contains_word::ContainsWord;
pub use detect_sqli::{detect_sqli, provably_not_sqli, DetectSqli, SqliFingerprint};
pub use detect_xss::{provably_not_xss, DetectXss};
pub use ends_with::EndsWith;
pub use eq::Eq;
pub use ge::Ge;
pub use gt::Gt;
pub use ip_match::IpMatch;
pub use ip_match_from_file::IpMatchFromFile;
pub use le::Le;
pub use lt::Lt;
pub use no_match::NoMatch;
pub use pm::Pm;
pub use pm_from_file::PmFromFile;
pub use rx::{rewrite_pcre, CompiledRegex, Rx, REGEX_SIZE_LIMIT};
pub use streq::StrEq;
pub use strmatch::StrMatch;
pub use unconditional_match::UnconditionalMatch;
pub use validate_byte_range::ValidateByteRange;
pub use validate_url_encoding::ValidateUrlEncoding;
pub use validate_utf8_encoding::ValidateUtf8Encoding;
pub use within::Within;

/// A compiled operator.
pub trait Operator: Send + Sync + fmt::Debug {
    /// Evaluates the operator against one value. Negation (`!@op`) is applied
    /// by the caller, not here.
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool;

    /// Prefilter hint: if every match of this operator must contain one of these
    /// byte strings (compared case-insensitively when `case_insensitive`), the
    /// engine may skip evaluation for inputs containing none of them.
    fn required_literals(&self) -> Option<RequiredLiterals> {
        None
    }

    /// Whether the result depends on the input alone: the argument has no
    /// macro and nothing is read from the transaction. The engine then
    /// remembers, across transactions, which inputs a rule's operator did
    /// not match (see `engine::verdicts`). Side effects on a match
    /// (captures, matched data) do not matter: only misses are remembered.
    fn is_pure(&self) -> bool {
        false
    }

    /// The operator's argument, when it holds macros and is all that keeps
    /// the operator from being pure: with the macros' values fixed (TX
    /// variables no rule can change any more, see `transaction::prefix`),
    /// the result depends on the input alone.
    fn argument_macros(&self) -> Option<&MacroText> {
        None
    }
}

/// Literals at least one of which occurs in any matching input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredLiterals {
    /// The literals (non-empty).
    pub literals: Vec<Vec<u8>>,
    /// Compare ASCII case-insensitively.
    pub case_insensitive: bool,
}

impl RequiredLiterals {
    /// Whether `input` contains at least one of the literals (the check the
    /// engine's prefilter performs, here as a slow reference implementation
    /// for tests and debugging).
    pub fn is_satisfied_by(&self, input: &[u8]) -> bool {
        self.literals.iter().any(|lit| {
            if lit.is_empty() {
                return true;
            }
            if self.case_insensitive {
                input
                    .windows(lit.len())
                    .any(|w| w.eq_ignore_ascii_case(lit))
            } else {
                crate::search::find(input, lit).is_some()
            }
        })
    }
}

/// What an operator may ask of the transaction while evaluating.
pub trait OperatorContext {
    /// Expands a macro argument (`%{tx.allowed_methods}`) against the transaction.
    fn expand(&self, text: &MacroText) -> Vec<u8>;
    /// [`expand`](Self::expand), borrowing the value when the text is a
    /// single variable the context holds (`%{tx.allowed_methods}`).
    fn expand_cow(&self, text: &MacroText) -> Cow<'_, [u8]> {
        Cow::Owned(self.expand(text))
    }
    /// Whether the rule carries the `capture` action.
    fn capturing(&self) -> bool;
    /// Sets capture group `index` (0..=9) as `TX:index`; only called when capturing.
    fn set_capture(&mut self, index: usize, value: &[u8]);
    /// Records the data the operator matched (e.g. the matched keyword), shown
    /// in logs; optional.
    fn set_matched_data(&mut self, value: &[u8]) {
        let _ = value;
    }
}

/// Build-time context: data files and the regex memo shared across rules.
pub struct OperatorEnv<'a> {
    /// Reads a data file named relative to the rule's file (`@pmFromFile x.data`).
    pub read_data_file: &'a dyn Fn(&str) -> io::Result<Vec<u8>>,
    /// Memo of compiled regexes, shared by every rule of a ruleset.
    pub regexes: &'a RegexCache,
}

impl fmt::Debug for OperatorEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorEnv").finish_non_exhaustive()
    }
}

/// Memoised compiled regexes (pattern -> regex), so rules that share a pattern
/// share one automaton.
///
/// Patterns are compiled the way `@rx` needs them (see [`Rx`]): PCRE-isms
/// rewritten, `(?sm)` prepended, Unicode off, size limits set. The memo sits
/// behind a mutex so it can be shared through a `&` reference and the whole
/// ruleset stays `Send + Sync`; it is only touched at build time (and by
/// `@rx` arguments that contain macros).
#[derive(Default)]
pub struct RegexCache {
    compiled: Mutex<HashMap<String, Arc<CompiledRegex>>>,
}

impl fmt::Debug for RegexCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegexCache")
            .field("patterns", &self.len())
            .finish()
    }
}

impl RegexCache {
    /// An empty cache.
    pub fn new() -> RegexCache {
        RegexCache::default()
    }

    /// The compiled form of `pattern` (as written after `@rx`), compiling and
    /// memoising it on first use. A pattern that a live ruleset of this
    /// process already compiled is shared with it, not compiled again: a
    /// ruleset update that keeps most rules (a hot swap of the same CRS with
    /// one rule file changed) recompiles only the new patterns.
    pub fn get_or_compile(&self, pattern: &str) -> Result<Arc<CompiledRegex>, OperatorError> {
        if let Some(found) = self.lock().get(pattern) {
            return Ok(Arc::clone(found));
        }
        // Compiled outside the map's lock: big patterns take a while and a
        // poisoned or contended lock must not hold up other rules.
        let compiled =
            LIVE_REGEXES.get_or_build(pattern.to_owned(), |p| CompiledRegex::compile(p))?;
        let mut map = self.lock();
        let entry = map
            .entry(pattern.to_owned())
            .or_insert_with(|| Arc::clone(&compiled));
        Ok(Arc::clone(entry))
    }

    /// Number of distinct patterns compiled so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompiledRegex>>> {
        // The map is always left consistent, so a poisoned lock is still usable.
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Patterns compiled by any [`RegexCache`] of this process that a ruleset
/// still holds.
static LIVE_REGEXES: LazyLock<LiveCache<String, CompiledRegex>> = LazyLock::new(LiveCache::new);

/// Why an operator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The name is not an operator we know.
    #[error("unknown operator @{0}")]
    Unknown(String),
    /// The argument is malformed for this operator.
    #[error("invalid argument for @{operator}: {reason}")]
    InvalidArgument {
        /// The operator.
        operator: String,
        /// What is wrong.
        reason: String,
    },
    /// A data file could not be read.
    #[error("cannot read data file {file} for @{operator}")]
    DataFile {
        /// The operator.
        operator: String,
        /// File as named in the rule.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl OperatorError {
    pub(crate) fn invalid(operator: &str, reason: impl Into<String>) -> OperatorError {
        OperatorError::InvalidArgument {
            operator: operator.to_owned(),
            reason: reason.into(),
        }
    }
}

/// SecLang operators ModSecurity v3 knows that Palisade does not implement
/// (they need external services, databases or file inspection). Building one
/// fails with [`OperatorError::Unknown`] and a hint in the name.
const UNSUPPORTED: &[&str] = &[
    "fuzzyhash",
    "geolookup",
    "gsblookup",
    "inspectfile",
    "rbl",
    "rsub",
    "validatedtd",
    "validatehash",
    "validateschema",
    "verifycc",
    "verifycpf",
    "verifyssn",
    "verifysvnr",
];

/// Builds operator `name` (without `@`, case-insensitive) with its argument.
///
/// Aliases: `pmf` for `pmFromFile`, `ipMatchF` for `ipMatchFromFile`.
pub fn build(
    name: &str,
    argument: &str,
    env: &OperatorEnv<'_>,
) -> Result<Arc<dyn Operator>, OperatorError> {
    let lower = name.to_ascii_lowercase();
    let op: Arc<dyn Operator> = match lower.as_str() {
        "rx" => Arc::new(Rx::new(argument, env.regexes)?),
        "pm" => Arc::new(Pm::new(argument)?),
        "pmfromfile" | "pmf" => Arc::new(PmFromFile::new(argument, env)?),
        "detectsqli" => Arc::new(DetectSqli::new()),
        "detectxss" => Arc::new(DetectXss::new()),
        "eq" => Arc::new(Eq::new(argument)),
        "ge" => Arc::new(Ge::new(argument)),
        "gt" => Arc::new(Gt::new(argument)),
        "le" => Arc::new(Le::new(argument)),
        "lt" => Arc::new(Lt::new(argument)),
        "streq" => Arc::new(StrEq::new(argument)),
        "strmatch" => Arc::new(StrMatch::new(argument)),
        "within" => Arc::new(Within::new(argument)),
        "contains" => Arc::new(Contains::new(argument)),
        "containsword" => Arc::new(ContainsWord::new(argument)),
        "beginswith" => Arc::new(BeginsWith::new(argument)),
        "endswith" => Arc::new(EndsWith::new(argument)),
        "ipmatch" => Arc::new(IpMatch::new(argument)?),
        "ipmatchfromfile" | "ipmatchf" => Arc::new(IpMatchFromFile::new(argument, env)?),
        "validatebyterange" => Arc::new(ValidateByteRange::new(argument)?),
        "validateurlencoding" => Arc::new(ValidateUrlEncoding::new()),
        "validateutf8encoding" => Arc::new(ValidateUtf8Encoding::new()),
        "unconditionalmatch" => Arc::new(UnconditionalMatch::new()),
        "nomatch" => Arc::new(NoMatch::new()),
        other if UNSUPPORTED.contains(&other) => {
            return Err(OperatorError::Unknown(format!(
                "{name} (not supported by palisade)"
            )))
        }
        _ => return Err(OperatorError::Unknown(name.to_owned())),
    };
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(name: &str) -> io::Result<Vec<u8>> {
        Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned()))
    }

    #[test]
    fn names_are_case_insensitive() {
        let cache = RegexCache::new();
        let env = OperatorEnv {
            read_data_file: &no_files,
            regexes: &cache,
        };
        for (name, arg) in [
            ("rx", "a"),
            ("RX", "a"),
            ("validateUtf8Encoding", ""),
            ("VALIDATEURLENCODING", ""),
            ("detectSQLi", ""),
            ("DetectXSS", ""),
            ("beginsWith", "x"),
            ("ipMatch", "127.0.0.1"),
            ("unconditionalMatch", ""),
            ("noMatch", ""),
            ("strmatch", "x"),
            ("containsWord", "x"),
        ] {
            assert!(build(name, arg, &env).is_ok(), "@{name} {arg}");
        }
    }

    #[test]
    fn unknown_and_unsupported_names() {
        let cache = RegexCache::new();
        let env = OperatorEnv {
            read_data_file: &no_files,
            regexes: &cache,
        };
        for name in ["nope", "verifyCC", "rbl", ""] {
            match build(name, "x", &env) {
                Err(OperatorError::Unknown(n)) => assert!(n.starts_with(name)),
                other => panic!("@{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn regex_cache_memoises() {
        let cache = RegexCache::new();
        let a = cache.get_or_compile("a+b").unwrap();
        let b = cache.get_or_compile("a+b").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        assert!(cache.get_or_compile("(").is_err());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn ruleset_parts_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<RegexCache>();
        check::<Arc<dyn Operator>>();
    }

    #[test]
    fn required_literals_reference_check() {
        let lits = RequiredLiterals {
            literals: vec![b"union".to_vec(), b"select".to_vec()],
            case_insensitive: true,
        };
        assert!(lits.is_satisfied_by(b"1 UNION 2"));
        assert!(!lits.is_satisfied_by(b"1 or 2"));
        let exact = RequiredLiterals {
            literals: vec![b"union".to_vec()],
            case_insensitive: false,
        };
        assert!(!exact.is_satisfied_by(b"UNION"));
    }

    #[test]
    fn live_rulesets_share_compiled_patterns() {
        let pattern = "(?i)shared-between-caches-[0-9]+";
        let first = RegexCache::new();
        let a = first.get_or_compile(pattern).expect("compiles");
        // A second ruleset build (another cache) gets the same automaton
        // while the first still holds it.
        let second = RegexCache::new();
        let b = second.get_or_compile(pattern).expect("compiles");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(second.len(), 1);
        // Errors are not remembered.
        assert!(second.get_or_compile("(unclosed").is_err());
        assert!(LIVE_REGEXES.get(&"(unclosed".to_owned()).is_none());
        // Once nothing holds it, the entry no longer upgrades.
        drop((a, b, first, second));
        assert!(LIVE_REGEXES.get(&pattern.to_owned()).is_none());
    }
}
