//! `@containsWord`: the argument occurs in the input as a whole word.

use super::argument::{Empty, Record, StringArg};
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

/// Whether the (non-empty) `word` occurs in `input` with no letter either side.
fn contains_word(input: &[u8], word: &[u8]) -> bool {
    // Occurrences may overlap (ModSecurity resumes the search one byte after
    // each hit), so no `find_iter` here.
    let mut from = 0;
    while let Some(found) = input
        .get(from..)
        .and_then(|rest| crate::search::find(rest, word))
    {
        let start = from + found;
        let before_ok = start == 0 || !is_letter(input, start - 1);
        let after_ok = !is_letter(input, start + word.len());
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

impl Operator for ContainsWord {
    fn is_pure(&self) -> bool {
        self.arg.literal().is_some()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.arg.evaluate(
            cx,
            input,
            Empty::ArgumentMatches,
            Record::Argument,
            contains_word,
        )
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.arg.required_literals()
    }
}
