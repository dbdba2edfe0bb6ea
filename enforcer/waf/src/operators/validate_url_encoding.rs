//! `@validateUrlEncoding`: flags malformed `%xx` escapes.

use super::{Operator, OperatorContext};

/// `@validateUrlEncoding`: matches when the input holds a `%` that is not
/// followed by two hexadecimal digits (including a `%` too close to the end).
///
/// SecLang: `SecRule REQUEST_URI_RAW "@validateUrlEncoding" "id:920220,..."`.
/// As in ModSecurity v3: the empty input does not match, and the input is
/// not decoded (a `%25` stays valid whatever follows). Coraza behaves the
/// same. The offending text is recorded as matched data.
#[derive(Debug, Default)]
pub struct ValidateUrlEncoding;

impl ValidateUrlEncoding {
    /// Builds the operator (it takes no argument).
    pub fn new() -> ValidateUrlEncoding {
        ValidateUrlEncoding
    }
}

/// Position of the first invalid `%` escape, if any.
fn first_invalid(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'%', input.get(i..)?) {
        let at = i + found;
        match (input.get(at + 1), input.get(at + 2)) {
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i = at + 3,
            _ => return Some(at),
        }
    }
    None
}

impl Operator for ValidateUrlEncoding {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        match first_invalid(input) {
            Some(at) => {
                let end = input.len().min(at + 3);
                cx.set_matched_data(&input[at..end]);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            ("", false),
            ("abc", false),
            ("a%20b", false),
            ("%41%42", false),
            ("%aF", false),
            ("%", true),
            ("a%2", true),
            ("a%2g", true),
            ("%zz", true),
            ("%20%", true),
            ("%%41", true),
            ("%2541", false),
            ("100%", true),
        ] {
            let op = ValidateUrlEncoding::new();
            assert_eq!(
                op.evaluate(&mut FakeCx::default(), input.as_bytes()),
                want,
                "{input:?}"
            );
        }
    }
}
