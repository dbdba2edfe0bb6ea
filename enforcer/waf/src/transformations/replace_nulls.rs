//! `t:replaceNulls`: NUL bytes to spaces.

use std::borrow::Cow;

use memchr::memchr;

/// `t:replaceNulls`: replaces every NUL (0x00) byte with a space. Same in
/// ModSecurity and Coraza.
pub fn replace_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr(0, input) else {
        return Cow::Borrowed(input);
    };
    let mut out = input.to_vec();
    for b in &mut out[start..] {
        if *b == 0 {
            *b = b' ';
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"TestCase", b"TestCase"),
            (b"\0TestCase", b" TestCase"),
            (b"Test\0\0Case", b"Test  Case"),
            (b"\0Test\0Case\0", b" Test Case "),
        ];
        for (input, want) in cases {
            assert_eq!(&*replace_nulls(input), *want, "{input:?}");
        }
        assert!(matches!(replace_nulls(b"x"), Cow::Borrowed(_)));
    }
}
