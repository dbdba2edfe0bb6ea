//! `t:uppercase`: ASCII letters to upper case.

use std::borrow::Cow;

/// `t:uppercase`: maps `a`-`z` to `A`-`Z`; every other byte is left alone
/// (C `toupper` in the "C" locale, as ModSecurity).
///
/// Coraza uses `strings.ToUpper`, which also folds non-ASCII letters.
pub fn uppercase(input: &[u8]) -> Cow<'_, [u8]> {
    match input.iter().position(u8::is_ascii_lowercase) {
        None => Cow::Borrowed(input),
        Some(at) => {
            let mut out = input.to_vec();
            out[at..].make_ascii_uppercase();
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"TESTCASE", b"TESTCASE"),
            (b"TestCase", b"TESTCASE"),
            (b"test\0case", b"TEST\0CASE"),
            (b"\xc3\xa9t\xff", b"\xc3\xa9T\xff"),
        ];
        for (input, want) in cases {
            assert_eq!(&*uppercase(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(uppercase(b"UPPER 1"), Cow::Borrowed(_)));
    }
}
