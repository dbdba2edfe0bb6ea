//! `@contains`: case-sensitive substring search that records the match.

use memchr::memmem;

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@contains TEXT`: matches when `TEXT` occurs anywhere in the input.
///
/// SecLang: `SecRule REQUEST_LINE "@contains .php"`. Like ModSecurity v3 the
/// argument may hold macros, an empty argument matches every input, and the
/// matched text (the argument) is recorded as matched data. Coraza behaves
/// the same.
#[derive(Debug)]
pub struct Contains {
    arg: StringArg,
    finder: Option<memmem::Finder<'static>>,
}

impl Contains {
    /// Builds the operator.
    pub fn new(argument: &str) -> Contains {
        let arg = StringArg::parse(argument);
        let finder = arg
            .literal()
            .map(|lit| memmem::Finder::new(lit).into_owned());
        Contains { arg, finder }
    }
}

impl Operator for Contains {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        if let (Some(finder), Some(needle)) = (&self.finder, self.arg.literal()) {
            let found = finder.find(input).is_some();
            if found {
                cx.set_matched_data(needle);
            }
            return found;
        }
        let needle = self.arg.resolve(cx);
        let found = crate::search::find(input, &needle).is_some();
        if found {
            cx.set_matched_data(&needle);
        }
        found
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
            ("/index.php?x", ".php", true),
            ("/index.PHP", ".php", false),
            ("abc", "", true),
            ("", "", true),
            ("", "x", false),
            ("GET POST", "%{tx.v}", true),
            ("GETPOST", "%{tx.v}", false),
        ] {
            let mut cx = FakeCx::default().with_var("tx.v", "T P");
            let op = Contains::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
            if want {
                let expected = cx.expand(&crate::macros::MacroText::parse(argument));
                assert_eq!(cx.matched.as_deref(), Some(expected.as_slice()));
            }
        }
    }
}
