//! `@strmatch`: case-sensitive substring search.

use memchr::memmem;

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@strmatch TEXT`: matches when `TEXT` occurs anywhere in the input.
///
/// SecLang: `SecRule ARGS "@strmatch WebZIP"`. ModSecurity v3 implements it
/// as a plain `find` (v2 used Boyer-Moore-Horspool; same result), expanding
/// macros in the argument, as does Coraza. An empty argument matches every
/// input. A literal argument gets a prebuilt substring searcher.
#[derive(Debug)]
pub struct StrMatch {
    arg: StringArg,
    finder: Option<memmem::Finder<'static>>,
}

impl StrMatch {
    /// Builds the operator.
    pub fn new(argument: &str) -> StrMatch {
        let arg = StringArg::parse(argument);
        let finder = arg
            .literal()
            .map(|lit| memmem::Finder::new(lit).into_owned());
        StrMatch { arg, finder }
    }
}

impl Operator for StrMatch {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        match &self.finder {
            Some(finder) => finder.find(input).is_some(),
            None => crate::search::find(input, &self.arg.resolve(cx)).is_some(),
        }
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        let lit = self.arg.literal().filter(|l| !l.is_empty())?;
        Some(RequiredLiterals {
            literals: vec![lit.to_vec()],
            case_insensitive: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in [
            ("xxWebZIPxx", "WebZIP", true),
            ("xxwebzipxx", "WebZIP", false),
            ("WebZI", "WebZIP", false),
            ("anything", "", true),
            ("", "", true),
            ("", "a", false),
            ("1abc2", "%{tx.v}", true),
            ("1ab2", "%{tx.v}", false),
        ] {
            let mut cx = FakeCx::default().with_var("tx.v", "abc");
            let op = StrMatch::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
