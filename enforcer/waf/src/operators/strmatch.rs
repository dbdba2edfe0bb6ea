//! `@strmatch`: case-sensitive substring search.

use super::argument::{Needle, Record};
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@strmatch TEXT`: matches when `TEXT` occurs anywhere in the input.
///
/// SecLang: `SecRule ARGS "@strmatch WebZIP"`. ModSecurity v3 implements it
/// as a plain `find` (v2 used Boyer-Moore-Horspool; same result), expanding
/// macros in the argument, as does Coraza. An empty argument matches every
/// input. A literal argument gets a prebuilt substring searcher.
#[derive(Debug)]
pub struct StrMatch {
    needle: Needle,
}

impl StrMatch {
    /// Builds the operator.
    pub fn new(argument: &str) -> StrMatch {
        StrMatch {
            needle: Needle::parse(argument),
        }
    }
}

impl Operator for StrMatch {
    fn is_pure(&self) -> bool {
        self.needle.is_literal()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.needle.evaluate(cx, input, Record::Nothing)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.needle.arg().required_literals()
    }
}
