//! `palisade lint`: parse and compile a ruleset, report every error with its
//! file and line, or a one-line summary.

use std::io::{self, Write};
use std::path::PathBuf;

use palisade_waf::LoadError;

use crate::ruleset::{expand_paths, load_files, RulesetPathError};

/// What a clean ruleset holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LintReport {
    /// Rules compiled (a chain counts once).
    pub rules: usize,
    /// Top-level files loaded (files pulled in by `Include` not counted).
    pub files: usize,
}

/// Why linting could not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The PATHs themselves are wrong (a configuration error, not a ruleset error).
    #[error(transparent)]
    Path(#[from] RulesetPathError),
    /// The ruleset has errors.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Loads the ruleset PATHs (in order) and compiles them.
pub fn lint(paths: &[PathBuf]) -> Result<LintReport, LintError> {
    let files = expand_paths(paths)?;
    let ruleset = load_files(&files)?;
    Ok(LintReport {
        rules: ruleset.rule_count(),
        files: files.len(),
    })
}

/// Writes every error of `err`, one per line (`file:line: message`).
pub fn write_errors(out: &mut dyn Write, err: &LoadError) -> io::Result<()> {
    for error in &err.errors {
        writeln!(out, "{error}")?;
    }
    writeln!(out, "{} error(s)", err.errors.len())
}

/// The success line.
pub fn summary_line(report: &LintReport) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "ok: {} in {}",
        plural(report.rules, "rule"),
        plural(report.files, "file")
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use palisade_waf::seclang::Span;
    use palisade_waf::CompileError;

    use super::*;

    #[test]
    fn errors_are_listed_with_location() {
        let err = LoadError {
            errors: vec![
                CompileError {
                    span: Some(Span {
                        file: Arc::from("a.conf"),
                        line: 3,
                    }),
                    message: "unknown variable FOO".into(),
                },
                CompileError {
                    span: None,
                    message: "no rules".into(),
                },
            ],
        };
        let mut out = Vec::new();
        write_errors(&mut out, &err).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "a.conf:3: unknown variable FOO\nno rules\n2 error(s)\n"
        );
    }

    #[test]
    fn summary() {
        assert_eq!(
            summary_line(&LintReport { rules: 5, files: 2 }),
            "ok: 5 rules in 2 files"
        );
    }

    #[test]
    fn missing_path_is_a_path_error() {
        let err = lint(&[PathBuf::from("/nonexistent/palisade/rules")]).expect_err("fails");
        assert!(matches!(err, LintError::Path(_)));
    }
}
