//! `@detectSQLi`: SQL injection detection with libinjection (the
//! `libinjectionrs` port).

use libinjectionrs::{SqliFlags, SqliState};

use super::{Operator, OperatorContext};

/// `@detectSQLi`: matches when libinjection classifies the input as SQL
/// injection.
///
/// SecLang: `SecRule ARGS "@detectSQLi" "id:942100,capture,..."`. As in
/// ModSecurity v3, with `capture` `TX:0` is set to the libinjection
/// fingerprint (e.g. `s&sos`), which is also recorded as matched data.
///
/// The detector is `libinjectionrs` 0.1, a Rust port of libinjection
/// 3.10/4.0 (the C library ModSecurity v3.0.15 bundles), differentially
/// fuzzed against C. `docs/libinjection.md` lists the measured behaviour on
/// a table of SQLi forms and the CRS regression inputs; see
/// [`detect_sqli`] for the result used here.
#[derive(Debug, Default)]
pub struct DetectSqli;

impl DetectSqli {
    /// Builds the operator (it takes no argument).
    pub fn new() -> DetectSqli {
        DetectSqli
    }
}

/// A libinjection SQLi fingerprint: up to five token-type letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliFingerprint {
    bytes: [u8; 8],
    len: usize,
}

impl SqliFingerprint {
    fn from_state(raw: [u8; 8]) -> SqliFingerprint {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        SqliFingerprint { bytes: raw, len }
    }

    /// The fingerprint's letters (`1UE`, `s&sos`, ...).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Runs libinjection's SQLi check (all quote contexts and SQL dialects, as
/// C `libinjection_sqli` does) and returns the fingerprint when it detects
/// an injection.
pub fn detect_sqli(input: &[u8]) -> Option<SqliFingerprint> {
    let mut state = SqliState::new(input, SqliFlags::FLAG_NONE);
    if state.detect() {
        Some(SqliFingerprint::from_state(state.fingerprint))
    } else {
        None
    }
}

impl Operator for DetectSqli {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let Some(fingerprint) = detect_sqli(input) else {
            return false;
        };
        if cx.capturing() {
            cx.set_capture(0, fingerprint.as_bytes());
        }
        cx.set_matched_data(fingerprint.as_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            ("1' or '1'='1", true),
            ("1 union select 1,2,3", true),
            ("-1839' or '1'='1", true),
            ("hello world", false),
            ("", false),
            ("O'Reilly", false),
            ("1234", false),
        ] {
            let mut cx = FakeCx::default();
            assert_eq!(DetectSqli::new().evaluate(&mut cx, input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn captures_fingerprint() {
        let mut cx = FakeCx::capturing();
        assert!(DetectSqli::new().evaluate(&mut cx, b"1' or '1'='1"));
        let fp = cx.capture(0).unwrap().to_vec();
        assert!(!fp.is_empty() && fp.len() <= 5, "{fp:?}");
        assert!(fp.iter().all(u8::is_ascii), "{fp:?}");
        assert_eq!(cx.matched.as_deref(), Some(fp.as_slice()));
    }
}
