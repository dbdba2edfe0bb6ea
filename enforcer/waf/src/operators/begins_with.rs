//! `@beginsWith`: case-sensitive prefix test.

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@beginsWith TEXT`: matches when the input starts with `TEXT`.
///
/// SecLang: `SecRule REQUEST_LINE "!@beginsWith GET /"`; macros are expanded
/// per evaluation. An empty argument matches every input (ModSecurity v3 and
/// Coraza agree).
#[derive(Debug)]
pub struct BeginsWith {
    arg: StringArg,
}

impl BeginsWith {
    /// Builds the operator.
    pub fn new(argument: &str) -> BeginsWith {
        BeginsWith {
            arg: StringArg::parse(argument),
        }
    }
}

impl Operator for BeginsWith {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        input.starts_with(&self.arg.resolve(cx))
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        let lit = self.arg.literal().filter(|l| !l.is_empty())?;
        Some(RequiredLiterals {
            literals: vec![lit.to_vec()],
            case_insensitive: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in [
            ("GET / HTTP/1.1", "GET /", true),
            ("get / HTTP/1.1", "GET /", false),
            ("GET", "GET /", false),
            ("", "", true),
            ("abc", "", true),
            ("example.com:80", "%{tx.host}", true),
            ("www.example.com", "%{tx.host}", false),
        ] {
            let mut cx = FakeCx::default().with_var("tx.host", "example.com");
            let op = BeginsWith::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
