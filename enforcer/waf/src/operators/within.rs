//! `@within`: the input occurs inside the argument (reverse of `@contains`).

use super::argument::StringArg;
use super::{Operator, OperatorContext};

/// `@within LIST`: matches when the input is a substring of `LIST`.
///
/// SecLang: `SecRule REQUEST_METHOD "!@within %{tx.allowed_methods}"`. As in
/// ModSecurity v3 this is a plain, case-sensitive substring test (so `GE`
/// is "within" `GET HEAD`), and an empty input always matches. Coraza uses
/// `strings.Contains(argument, input)`, which gives the same results.
#[derive(Debug)]
pub struct Within {
    arg: StringArg,
}

impl Within {
    /// Builds the operator.
    pub fn new(argument: &str) -> Within {
        Within {
            arg: StringArg::parse(argument),
        }
    }
}

impl Operator for Within {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        if input.is_empty() {
            return true;
        }
        let haystack = self.arg.resolve(cx);
        let found = crate::search::find(&haystack, input).is_some();
        if found {
            cx.set_matched_data(input);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in [
            ("GET", "%{tx.allowed_methods}", true),
            ("HEAD", "%{tx.allowed_methods}", true),
            ("DELETE", "%{tx.allowed_methods}", false),
            ("get", "%{tx.allowed_methods}", false),
            ("GE", "%{tx.allowed_methods}", true),
            ("", "%{tx.allowed_methods}", true),
            ("", "", true),
            ("x", "", false),
            ("HTTP/1.1", "HTTP/1.0 HTTP/1.1 HTTP/2", true),
            ("HTTP/3", "HTTP/1.0 HTTP/1.1 HTTP/2", false),
            ("x", "%{tx.missing}", false),
        ] {
            let mut cx = FakeCx::default().with_var("tx.allowed_methods", "GET HEAD POST OPTIONS");
            let op = Within::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
