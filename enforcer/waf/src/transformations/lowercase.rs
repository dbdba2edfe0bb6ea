//! `t:lowercase`: ASCII letters to lower case.

use std::borrow::Cow;

/// `t:lowercase`: maps `A`-`Z` to `a`-`z`; every other byte (including
/// non-ASCII bytes) is left alone, as C `tolower` does in ModSecurity's "C"
/// locale.
///
/// Coraza lowercases Unicode (`strings.ToLower`), which also folds non-ASCII
/// letters of valid UTF-8; ModSecurity and this function do not.
pub fn lowercase(input: &[u8]) -> Cow<'_, [u8]> {
    match input.iter().position(u8::is_ascii_uppercase) {
        None => Cow::Borrowed(input),
        Some(at) => {
            let mut out = input.to_vec();
            out[at..].make_ascii_lowercase();
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
            (b"testcase", b"testcase"),
            (b"TestCase", b"testcase"),
            (b"Test\0Case", b"test\0case"),
            (b"\xc3\x89T\xff", b"\xc3\x89t\xff"),
        ];
        for (input, want) in cases {
            assert_eq!(&*lowercase(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(
            lowercase(b"already lower \xc3\x89"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(lowercase(b"Upper"), Cow::Owned(_)));
    }
}
