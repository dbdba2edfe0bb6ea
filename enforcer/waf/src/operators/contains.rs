//! `@contains`: case-sensitive substring search that records the match.

use super::argument::{Needle, Record};
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@contains TEXT`: matches when `TEXT` occurs anywhere in the input.
///
/// SecLang: `SecRule REQUEST_LINE "@contains .php"`. Like ModSecurity v3 the
/// argument may hold macros, an empty argument matches every input, and the
/// matched text (the argument) is recorded as matched data. Coraza behaves
/// the same.
#[derive(Debug)]
pub struct Contains {
    needle: Needle,
}

impl Contains {
    /// Builds the operator.
    pub fn new(argument: &str) -> Contains {
        Contains {
            needle: Needle::parse(argument),
        }
    }
}

impl Operator for Contains {
    fn is_pure(&self) -> bool {
        self.needle.is_literal()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.needle.arg().macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.needle.evaluate(cx, input, Record::Argument)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.needle.arg().required_literals()
    }
}
