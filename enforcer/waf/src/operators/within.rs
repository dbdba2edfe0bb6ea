//! `@within`: the input occurs inside the argument (reverse of `@contains`).

use super::argument::{Empty, Record, StringArg};
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
        let within = |input: &[u8], list: &[u8]| crate::search::find(list, input).is_some();
        self.arg
            .evaluate(cx, input, Empty::InputMatches, Record::Input, within)
    }
}
