//! `@streq`: exact, case-sensitive string equality.

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@streq TEXT`: matches when the input equals `TEXT` byte for byte.
///
/// SecLang: `SecRule REQUEST_METHOD "@streq POST"`, or with a macro
/// (`"!@streq %{TX.2}"`, expanded per evaluation). An empty argument matches
/// only the empty input. Same in ModSecurity v3 and Coraza.
#[derive(Debug)]
pub struct StrEq {
    arg: StringArg,
}

impl StrEq {
    /// Builds the operator.
    pub fn new(argument: &str) -> StrEq {
        StrEq {
            arg: StringArg::parse(argument),
        }
    }
}

impl Operator for StrEq {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.arg.resolve(cx).as_ref() == input
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
            ("POST", "POST", true),
            ("post", "POST", false),
            ("POST ", "POST", false),
            ("GET /", "GET /", true),
            ("", "", true),
            ("x", "", false),
            ("abc", "%{tx.v}", true),
            ("abd", "%{tx.v}", false),
            ("", "%{tx.missing}", true),
        ] {
            let mut cx = FakeCx::default().with_var("tx.v", "abc");
            let op = StrEq::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
