//! `@streq`: exact, case-sensitive string equality.

use super::argument::{Empty, Record, StringArg};
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
    fn is_pure(&self) -> bool {
        self.arg.literal().is_some()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let equal = |input: &[u8], text: &[u8]| input == text;
        self.arg
            .evaluate(cx, input, Empty::Compare, Record::Nothing, equal)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.arg.required_literals()
    }
}
