//! `@noMatch`: never matches.

use super::{Operator, OperatorContext};

/// `@noMatch`: matches no input (its argument, if any, is ignored). Useful to
/// run a rule's actions never, or only through chains. Same in ModSecurity
/// v3 and Coraza.
#[derive(Debug, Default)]
pub struct NoMatch;

impl NoMatch {
    /// Builds the operator.
    pub fn new() -> NoMatch {
        NoMatch
    }
}

impl Operator for NoMatch {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, _cx: &mut dyn OperatorContext, _input: &[u8]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn never() {
        for input in [&b""[..], b"x", b"\xff\x00"] {
            assert!(!NoMatch::new().evaluate(&mut FakeCx::default(), input));
        }
    }
}
