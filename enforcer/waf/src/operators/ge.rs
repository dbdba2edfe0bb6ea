//! `@ge`: numeric "greater than or equal to" comparison of the input against the argument.

use super::numeric::{NumericArg, Parse};
use super::{Operator, OperatorContext};

/// `@ge N`: matches when the input, read as an integer, is greater than or equal to `N`.
///
/// SecLang: `SecRule TX:x "@ge 5"` or with a macro,
/// `"@ge %{tx.threshold}"` (expanded per evaluation).
///
/// Numbers are parsed like C `atoll`, as ModSecurity v3 does: leading
/// whitespace and sign, then digits, the rest ignored (`"12abc"` is 12); no
/// digits is 0, overflow saturates. Coraza instead parses with `strconv.Atoi`
/// and treats any non-numeric text as 0 (so `"12abc"` is 0 there).
#[derive(Debug)]
pub struct Ge {
    arg: NumericArg,
}

impl Ge {
    /// Builds the operator; a literal argument is parsed once here.
    pub fn new(argument: &str) -> Ge {
        Ge {
            arg: NumericArg::parse(argument, Parse::Atoll),
        }
    }
}

impl Operator for Ge {
    fn is_pure(&self) -> bool {
        matches!(self.arg, NumericArg::Literal(_))
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        Parse::Atoll.parse(input) >= self.arg.value(cx, Parse::Atoll)
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in CASES {
            let op = Ge::new(argument);
            let mut cx = FakeCx::default().with_var("tx.n", "5");
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                *want,
                "{input:?} @ge {argument:?}"
            );
        }
    }

    const CASES: &[(&str, &str, bool)] = &[
        ("5", "5", true),
        ("6", "5", true),
        ("4", "5", false),
        ("5", "%{tx.n}", true),
        ("4", "%{tx.n}", false),
        ("", "0", true),
        ("x", "1", false),
        ("-3", "-4", true),
        ("99999999999999999999", "9223372036854775807", true),
        ("10", "9abc", true),
    ];
}
