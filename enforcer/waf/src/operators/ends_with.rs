//! `@endsWith`: case-sensitive suffix test.

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@endsWith TEXT`: matches when the input ends with `TEXT`.
///
/// SecLang: `SecRule REQUEST_BASENAME "@endsWith .pdf"` or with macros
/// (`"!@endsWith .%{request_headers.host}"`, expanded per evaluation). An
/// empty argument matches every input (ModSecurity v3 and Coraza agree).
#[derive(Debug)]
pub struct EndsWith {
    arg: StringArg,
}

impl EndsWith {
    /// Builds the operator.
    pub fn new(argument: &str) -> EndsWith {
        EndsWith {
            arg: StringArg::parse(argument),
        }
    }
}

impl Operator for EndsWith {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        input.ends_with(&self.arg.resolve(cx))
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
            ("/doc.pdf", ".pdf", true),
            ("/doc.PDF", ".pdf", false),
            ("pdf", ".pdf", false),
            ("", "", true),
            ("x", "", true),
            ("a.example.com", ".%{request_headers.host}", true),
            ("aexample.com", ".%{request_headers.host}", false),
        ] {
            let mut cx = FakeCx::default().with_var("request_headers.host", "example.com");
            let op = EndsWith::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
