//! `@beginsWith`: case-sensitive prefix test.

use super::argument::{Empty, Record, StringArg};
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
    fn is_pure(&self) -> bool {
        self.arg.literal().is_some()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let starts = |input: &[u8], prefix: &[u8]| input.starts_with(prefix);
        self.arg
            .evaluate(cx, input, Empty::Compare, Record::Nothing, starts)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.arg.required_literals()
    }
}
