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
/// `docs/libinjection.md`).
#[derive(Debug, Default)]
pub struct DetectXss;

impl DetectXss {
    /// Builds the operator (it takes no argument).
    pub fn new() -> DetectXss {
        DetectXss
    }
}

impl Operator for DetectXss {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        if !libinjectionrs::detect_xss(input).is_injection() {
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
