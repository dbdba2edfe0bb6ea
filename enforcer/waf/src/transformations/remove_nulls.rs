//! `t:removeNulls`: deletes NUL bytes.

use std::borrow::Cow;

use memchr::memchr;

use super::prefix_vec;

/// `t:removeNulls`: deletes every NUL (0x00) byte. Same in ModSecurity and
/// Coraza.
pub fn remove_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr(0, input) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    out.extend(input[start..].iter().copied().filter(|&b| b != 0));
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
            (b"Test\x01Case", b"Test\x01Case"),
            (b"\0TestCase", b"TestCase"),
            (b"Test\0\0Case", b"TestCase"),
            (b"\0Test\0Case\0", b"TestCase"),
            (b"\0", b""),
        ];
        for (input, want) in cases {
            assert_eq!(&*remove_nulls(input), *want, "{input:?}");
        }
        assert!(matches!(remove_nulls(b"x"), Cow::Borrowed(_)));
    }
}
