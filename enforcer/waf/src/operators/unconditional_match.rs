//! `@unconditionalMatch`: always matches.

use super::{Operator, OperatorContext};

/// `@unconditionalMatch`: matches every input (its argument, if any, is
/// ignored). SecLang: `SecRule REQUEST_URI "@unconditionalMatch" "id:1,pass,..."`.
/// Same in ModSecurity v3 and Coraza.
#[derive(Debug, Default)]
pub struct UnconditionalMatch;

impl UnconditionalMatch {
    /// Builds the operator.
    pub fn new() -> UnconditionalMatch {
        UnconditionalMatch
    }
}

impl Operator for UnconditionalMatch {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, _cx: &mut dyn OperatorContext, _input: &[u8]) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn always() {
        for input in [&b""[..], b"x", b"\xff\x00"] {
            assert!(UnconditionalMatch::new().evaluate(&mut FakeCx::default(), input));
        }
    }
}
