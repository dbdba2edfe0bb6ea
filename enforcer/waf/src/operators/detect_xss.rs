//! `@detectXSS`: cross-site scripting detection with libinjection (the
//! `libinjectionrs` port).

use super::{Operator, OperatorContext};

/// `@detectXSS`: matches when libinjection's HTML5 tokenizer finds script
/// content, event handlers or dangerous tags/attributes/URLs in the input,
/// in any of its parsing contexts.
///
/// SecLang: `SecRule ARGS "@detectXSS" "id:941100,..."`. As in ModSecurity
/// v3, with `capture` `TX:0` is set to the whole input (libinjection gives
/// no fingerprint for XSS); Coraza captures nothing. The detector is
/// `libinjectionrs` 0.1, a port of the C library ModSecurity bundles (see
/// `docs/libinjection.md`). Inputs for which [`provably_not_xss`] holds are
/// answered without running it.
#[derive(Debug, Default)]
pub struct DetectXss;

impl DetectXss {
    /// Builds the operator (it takes no argument).
    pub fn new() -> DetectXss {
        DetectXss
    }
}

/// Whether libinjection's XSS check (`libinjectionrs` 0.1.1) provably finds
/// nothing in `input`, so [`DetectXss`] can answer without running the HTML5
/// tokenizer: it holds for every input without `<` and without `=`
/// (user agents, names, numbers, most free text).
///
/// Why (`XssDetector::is_xss`, run in the data, unquoted-value and three
/// quoted-value contexts): a match needs one of four token kinds. `DOCTYPE`,
/// tag-name-open (black tags) and comment tokens only come from the
/// tag-open state, which only the data state enters, on `<`. Attribute
/// values are judged by the attribute name right before them, and the
/// tokenizer reaches the value states from an attribute name only on `=`;
/// the one other way in is the start of the three quoted-value contexts,
/// where the value has no attribute name before it (the tracked attribute
/// type starts as "none"), and a value with type "none" is never flagged.
/// Attribute names alone (`onload`, `style`) and text are never flagged.
/// Checked by differential property tests against libinjectionrs in
/// `tests/libinjection_fast_path.rs`.
pub fn provably_not_xss(input: &[u8]) -> bool {
    memchr::memchr2(b'<', b'=', input).is_none()
}

impl Operator for DetectXss {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        if provably_not_xss(input) || !libinjectionrs::detect_xss(input).is_injection() {
            return false;
        }
        if cx.capturing() {
            cx.set_capture(0, input);
        }
        cx.set_matched_data(input);
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
            ("<script>alert(1)</script>", true),
            ("<img src=x onerror=alert(1)>", true),
            ("\"><svg onload=alert(1)>", true),
            ("<a href=\"javascript:alert(1)\">x</a>", true),
            ("hello world", false),
            ("", false),
            ("a < b and c > d", false),
        ] {
            let mut cx = FakeCx::capturing();
            assert_eq!(
                DetectXss::new().evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?}"
            );
            if want {
                assert_eq!(cx.capture(0), Some(input.as_bytes()));
            }
        }
    }
}
