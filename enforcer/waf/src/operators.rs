//! Operators (`@rx`, `@pm`, `@detectSQLi`, ...): compiled once when the ruleset
//! is built, evaluated per (transformed) value.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::macros::MacroText;

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
}

/// Literals at least one of which occurs in any matching input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredLiterals {
    /// The literals (non-empty).
    pub literals: Vec<Vec<u8>>,
    /// Compare ASCII case-insensitively.
    pub case_insensitive: bool,
}

/// What an operator may ask of the transaction while evaluating.
pub trait OperatorContext {
    /// Expands a macro argument (`%{tx.allowed_methods}`) against the transaction.
    fn expand(&self, text: &MacroText) -> Vec<u8>;
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
#[derive(Debug, Default)]
pub struct RegexCache {
    _private: (),
}

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

/// Builds operator `name` (without `@`, case-insensitive) with its argument.
pub fn build(
    name: &str,
    argument: &str,
    env: &OperatorEnv<'_>,
) -> Result<Arc<dyn Operator>, OperatorError> {
    let _ = (name, argument, env);
    todo!("operators::build")
}
