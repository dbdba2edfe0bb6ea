//! `@containsWord`: the argument occurs in the input as a whole word.

use super::argument::StringArg;
use super::{Operator, OperatorContext, RequiredLiterals};

/// `@containsWord WORD`: matches when `WORD` occurs in the input with no
/// letter immediately before or after it.
///
/// SecLang: `SecRule ARGS "@containsWord select"`. Follows ModSecurity v3:
/// case-sensitive; only ASCII letters (`A-Z`, `a-z`) count as word characters,
/// so digits, `_` and everything else are boundaries (`1select2` contains
/// the word); an empty argument matches every input; an empty input never
/// matches a non-empty argument. Macros are expanded per evaluation. (Coraza
/// does not implement `@containsWord`.)
#[derive(Debug)]
pub struct ContainsWord {
    arg: StringArg,
}

impl ContainsWord {
    /// Builds the operator.
    pub fn new(argument: &str) -> ContainsWord {
        ContainsWord {
            arg: StringArg::parse(argument),
        }
    }
}

fn is_letter(input: &[u8], at: usize) -> bool {
    input.get(at).is_some_and(u8::is_ascii_alphabetic)
}

impl Operator for ContainsWord {
    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let word = self.arg.resolve(cx);
        if word.is_empty() {
            return true;
        }
        // Occurrences may overlap (ModSecurity resumes the search one byte
        // after each hit), so no `find_iter` here.
        let mut from = 0;
        while let Some(found) = input
            .get(from..)
            .and_then(|rest| crate::search::find(rest, &word))
        {
            let start = from + found;
            let before_ok = start == 0 || !is_letter(input, start - 1);
            let after_ok = !is_letter(input, start + word.len());
            if before_ok && after_ok {
                cx.set_matched_data(&word);
                return true;
            }
            from = start + 1;
        }
        false
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
            ("select", "select", true),
            ("1 select 2", "select", true),
            ("select x", "select", true),
            ("x select", "select", true),
            ("selected", "select", false),
            ("unselect", "select", false),
            ("1select2", "select", true),
            ("_select_", "select", true),
            ("SELECT", "select", false),
            ("selectx select", "select", true),
            ("a-1-1-", "-1-", true),
            ("", "select", false),
            ("", "", true),
            ("abc", "", true),
            ("a b", "%{tx.w}", true),
            ("ab", "%{tx.w}", false),
        ] {
            let mut cx = FakeCx::default().with_var("tx.w", "b");
            let op = ContainsWord::new(argument);
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} {argument:?}"
            );
        }
    }
}
