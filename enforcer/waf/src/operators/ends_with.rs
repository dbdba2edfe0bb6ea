//! `@endsWith`: case-sensitive suffix test.

use super::argument::{Empty, Record, StringArg};
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
    fn is_pure(&self) -> bool {
        self.arg.literal().is_some()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let ends = |input: &[u8], suffix: &[u8]| input.ends_with(suffix);
        self.arg
            .evaluate(cx, input, Empty::Compare, Record::Nothing, ends)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.arg.required_literals()
    }
}
