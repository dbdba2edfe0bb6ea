//! `@pmFromFile` (alias `@pmf`): `@pm` with phrases read from data files.

use super::argument::for_each_data_file;
use super::pm::PhraseSet;
use super::{Operator, OperatorContext, OperatorEnv, OperatorError, RequiredLiterals};

/// `@pmFromFile FILE...`: matches when any phrase listed in the data files
/// occurs in the input, compared ASCII case-insensitively.
///
/// SecLang: `SecRule REQUEST_FILENAME "@pmFromFile restricted-files.data"`.
/// Each line is one phrase, taken as written (leading spaces are part of the
/// phrase, as CRS's `sql-errors.data` relies on); empty lines and lines whose
/// first non-blank character is `#` are skipped; a trailing `\r` is dropped.
/// Files are read through [`OperatorEnv::read_data_file`]. Capture and
/// matched data work as for [`Pm`](super::Pm).
///
/// Differences: ModSecurity v3 takes the whole argument as one file name
/// (v2 accepted a space-separated list, which we support too, as the CRS
/// documentation still shows it) and can download `https://` lists, which we
/// refuse. Coraza trims each line and so loses leading spaces.
#[derive(Debug)]
pub struct PmFromFile {
    set: PhraseSet,
}

const NAME: &str = "pmFromFile";

/// Splits a data file into phrases.
fn phrases(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let first = line.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None | Some(b'#') => None,
            Some(_) => Some(line),
        }
    })
}

impl PmFromFile {
    /// Reads the data files and builds the automaton.
    pub fn new(argument: &str, env: &OperatorEnv<'_>) -> Result<PmFromFile, OperatorError> {
        let mut list = Vec::new();
        for_each_data_file(NAME, argument, env, |_, data| {
            list.extend(phrases(data).map(<[u8]>::to_vec));
            Ok(())
        })?;
        Ok(PmFromFile {
            set: PhraseSet::new(NAME, list)?,
        })
    }

    /// Number of phrases loaded.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no phrase was loaded (the operator then never matches).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Operator for PmFromFile {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.set.evaluate(cx, input)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.set.required_literals()
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::{with_data_files, FakeCx};
    use super::*;

    fn build(argument: &str) -> Result<PmFromFile, OperatorError> {
        let files: &[(&str, &[u8])] = &[
            (
                "a.data",
                b"# comment\n\n.htaccess\r\n  # indented comment\n in query expression\nweb.config\n",
            ),
            ("b.data", b"/etc/passwd"),
        ];
        with_data_files(files, |env| PmFromFile::new(argument, env))
    }

    #[test]
    fn table() {
        let op = build("a.data b.data").unwrap();
        assert_eq!(op.len(), 4);
        for (input, want, capture) in [
            ("/x/.HTACCESS", true, Some(".htaccess")),
            (
                "error in query expression",
                true,
                Some(" in query expression"),
            ),
            ("error_in query expression", false, None),
            ("/ETC/passwd", true, Some("/etc/passwd")),
            ("comment", false, None),
            ("", false, None),
        ] {
            let mut cx = FakeCx::capturing();
            assert_eq!(op.evaluate(&mut cx, input.as_bytes()), want, "{input:?}");
            assert_eq!(cx.capture(0), capture.map(str::as_bytes), "{input:?}");
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            build("missing.data"),
            Err(OperatorError::DataFile { .. })
        ));
        assert!(build("https://example.com/x.data").is_err());
        assert!(build("  ").is_err());
    }
}
