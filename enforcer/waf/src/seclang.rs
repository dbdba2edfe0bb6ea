//! SecLang parsing: text and files in, [`Located`] [`Directive`]s out.
//!
//! The parser handles the syntax ModSecurity's configuration reader accepts:
//! comments, `\` line continuations, single and double quoting with `\`
//! escapes, and `Include` (with globs, relative to the including file). It
//! collects every error it can, each naming the file and line, instead of
//! stopping at the first.

pub mod ast;
mod parser;
mod source;

pub use ast::{
    ActionSpec, Directive, IdRange, Located, OperatorSpec, RuleSpec, Selector, Span, VariableSpec,
};
pub use parser::{parse_actions, parse_file, parse_str, parse_variables};
pub use source::{ruleset_files, FileSource, FsSource, MemorySource};

/// A syntax error at a location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct ParseError {
    /// Where the offending directive starts.
    pub span: Span,
    /// What is wrong, naming the token (lowercase, no trailing period).
    pub message: String,
}
