//! `@validateByteRange`: flags bytes outside an allowed set.

use super::{Operator, OperatorContext, OperatorError, RequiredLiterals};

/// `@validateByteRange LIST`: matches when the input contains at least one
/// byte that is not in `LIST`, a comma-separated list of byte values and
/// inclusive ranges (`1-255`, `9,10,13,32-126,128-255`).
///
/// SecLang: `SecRule ARGS "@validateByteRange 1-255" "id:920270,..."`. The
/// empty input does not match. Blank entries are skipped, so an empty list
/// allows nothing and every non-empty input matches (as in ModSecurity v3,
/// whose test suite expects exactly that). Differences from ModSecurity v3:
/// it silently ignores malformed entries (and indexes out of bounds for a
/// single value above 255); here a non-numeric entry, a value above 255 or a
/// reversed range is a build error, as in Coraza. Whitespace around entries
/// is ignored. The first offending byte is recorded as matched data.
#[derive(Debug)]
pub struct ValidateByteRange {
    allowed: [bool; 256],
}

const NAME: &str = "validateByteRange";

/// Most bytes outside the list given to the prefilter as literals (more
/// one-byte literals rule out little and cost the shared scan).
const MAX_OUTSIDE: usize = 8;

fn parse_byte(text: &str) -> Result<u8, OperatorError> {
    let text = text.trim();
    let value: u32 = text
        .parse()
        .map_err(|_| OperatorError::invalid(NAME, format!("{text:?} is not a number")))?;
    u8::try_from(value)
        .map_err(|_| OperatorError::invalid(NAME, format!("{value} is not a byte value (0-255)")))
}

impl ValidateByteRange {
    /// Parses the list of allowed bytes.
    pub fn new(argument: &str) -> Result<ValidateByteRange, OperatorError> {
        let mut allowed = [false; 256];
        for entry in argument.split(',') {
            if entry.trim().is_empty() {
                continue;
            }
            let (start, end) = match entry.split_once('-') {
                Some((a, b)) => (parse_byte(a)?, parse_byte(b)?),
                None => {
                    let v = parse_byte(entry)?;
                    (v, v)
                }
            };
            if start > end {
                return Err(OperatorError::invalid(
                    NAME,
                    format!("range {start}-{end} is reversed"),
                ));
            }
            for b in start..=end {
                allowed[usize::from(b)] = true;
            }
        }
        Ok(ValidateByteRange { allowed })
    }
}

impl Operator for ValidateByteRange {
    fn is_pure(&self) -> bool {
        true
    }

    /// A matching input holds a byte outside the list: with only a few
    /// such bytes (`1-255` leaves NUL, CRS 920270), those bytes as
    /// one-byte literals, so the engine's prefilter passes over values
    /// without any of them.
    fn required_literals(&self) -> Option<RequiredLiterals> {
        let outside: Vec<Vec<u8>> = (0..=255u8)
            .filter(|&b| !self.allowed[usize::from(b)])
            .map(|b| vec![b])
            .collect();
        (!outside.is_empty() && outside.len() <= MAX_OUTSIDE).then_some(RequiredLiterals {
            literals: outside,
            case_insensitive: false,
        })
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        match input.iter().position(|&b| !self.allowed[usize::from(b)]) {
            Some(at) => {
                cx.set_matched_data(&input[at..=at]);
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
        for (input, argument, want) in [
            (&b""[..], "1-255", false),
            (b"abc", "1-255", false),
            (b"a\x00c", "1-255", true),
            (b"hello world", "32-126", false),
            (b"tab\there", "32-126", true),
            (b"tab\there", "9,10,13,32-126", false),
            (b"\x80\xff", "9,10,13,32-126,128-255", false),
            (b"\x7f", "9,10,13,32-126,128-255", true),
            (b"a", "97", false),
            (b"b", "97", true),
            (b"a-b", "45, 97 - 98", false),
            (b"\x00", "0", false),
            (b"TestCase", "", true),
            (b"", "", false),
            (b"ab", "97,,98", false),
        ] {
            let op = ValidateByteRange::new(argument).unwrap();
            assert_eq!(
                op.evaluate(&mut FakeCx::default(), input),
                want,
                "{input:?} @validateByteRange {argument}"
            );
        }
    }

    #[test]
    fn rejects_bad_lists() {
        for argument in ["256", "1-256", "10-5", "a", "-5", "1-", "1-2-3"] {
            assert!(ValidateByteRange::new(argument).is_err(), "{argument:?}");
        }
    }

    #[test]
    fn bytes_outside_a_short_complement_are_required_literals() {
        let lits = |arg: &str| {
            ValidateByteRange::new(arg)
                .unwrap()
                .required_literals()
                .map(|r| (r.literals, r.case_insensitive))
        };
        assert_eq!(lits("1-255"), Some((vec![vec![0u8]], false)));
        assert_eq!(
            lits("0-9,11-12,14-255"),
            Some((vec![vec![10u8], vec![13u8]], false))
        );
        assert_eq!(lits("0-255"), None, "nothing outside: never matches");
        assert_eq!(lits("32-126"), None, "too many bytes outside");
    }

    #[test]
    fn records_offending_byte() {
        let op = ValidateByteRange::new("97-122").unwrap();
        let mut cx = FakeCx::default();
        assert!(op.evaluate(&mut cx, b"abC"));
        assert_eq!(cx.matched.as_deref(), Some(&b"C"[..]));
    }
}
