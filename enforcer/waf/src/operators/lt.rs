//! `@lt`: numeric "less than" comparison of the input against the argument.

use super::numeric::{NumericArg, Parse};
use super::{Operator, OperatorContext};

/// `@lt N`: matches when the input, read as an integer, is less than `N`.
///
/// SecLang: `SecRule TX:x "@lt 5"` or with a macro,
/// `"@lt %{tx.threshold}"` (expanded per evaluation).
///
/// Numbers are parsed like C `atoll`, as ModSecurity v3 does: leading
/// whitespace and sign, then digits, the rest ignored (`"12abc"` is 12); no
/// digits is 0, overflow saturates. Coraza instead parses with `strconv.Atoi`
/// and treats any non-numeric text as 0 (so `"12abc"` is 0 there).
#[derive(Debug)]
pub struct Lt {
    arg: NumericArg,
}

impl Lt {
    /// Builds the operator; a literal argument is parsed once here.
    pub fn new(argument: &str) -> Lt {
        Lt {
            arg: NumericArg::parse(argument, Parse::Atoll),
        }
    }
}

impl Operator for Lt {
    fn is_pure(&self) -> bool {
        matches!(self.arg, NumericArg::Literal(_))
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        Parse::Atoll.parse(input) < self.arg.value(cx, Parse::Atoll)
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in CASES {
            let op = Lt::new(argument);
            let mut cx = FakeCx::default().with_var("tx.n", "5");
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                *want,
                "{input:?} @lt {argument:?}"
            );
        }
    }

    const CASES: &[(&str, &str, bool)] = &[
        ("4", "5", true),
        ("5", "5", false),
        ("1", "2", true),
        ("3", "2", false),
        ("4", "%{tx.n}", true),
        ("5", "%{tx.n}", false),
        ("", "1", true),
        ("x", "0", false),
        ("-1", "0", true),
    ];
}
