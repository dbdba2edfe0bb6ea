//! `@eq`: numeric "equal to" comparison of the input against the argument.

use super::numeric::{NumericArg, Parse};
use super::{Operator, OperatorContext};

/// `@eq N`: matches when the input, read as an integer, is equal to `N`.
///
/// SecLang: `SecRule TX:x "@eq 5"` or with a macro,
/// `"@eq %{tx.threshold}"` (expanded per evaluation).
///
/// Numbers are parsed like C++ `std::stoi`, as ModSecurity v3 does:
/// leading whitespace and sign, then digits, the rest ignored (`"12abc"` is
/// 12); no digits, or a value outside the 32-bit `int` range, is 0. Coraza
/// parses with `strconv.Atoi` and treats any non-numeric text as 0.
#[derive(Debug)]
pub struct Eq {
    arg: NumericArg,
}

impl Eq {
    /// Builds the operator; a literal argument is parsed once here.
    pub fn new(argument: &str) -> Eq {
        Eq {
            arg: NumericArg::parse(argument, Parse::Stoi),
        }
    }
}

impl Operator for Eq {
    fn is_pure(&self) -> bool {
        matches!(self.arg, NumericArg::Literal(_))
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        Parse::Stoi.parse(input) == self.arg.value(cx, Parse::Stoi)
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in CASES {
            let op = Eq::new(argument);
            let mut cx = FakeCx::default().with_var("tx.n", "5");
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                *want,
                "{input:?} @eq {argument:?}"
            );
        }
    }

    const CASES: &[(&str, &str, bool)] = &[
        ("0", "0", true),
        ("", "0", true),
        ("abc", "0", true),
        ("5", "5", true),
        ("5", "%{tx.n}", true),
        ("6", "%{tx.n}", false),
        (" 5 ", "5", true),
        ("5abc", "5", true),
        ("-1", "-1", true),
        ("1", "0", false),
        ("0", "", true),
        ("2147483648", "0", true),
        ("0", "%{tx.missing}", true),
    ];
}
