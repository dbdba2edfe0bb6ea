//! `t:removeWhitespace`: deletes whitespace bytes.

use std::borrow::Cow;

use super::{is_c_space, prefix_vec};

/// Whether ModSecurity's `removeWhitespace` deletes `b`.
#[inline]
fn removed(b: u8) -> bool {
    is_c_space(b) || b == 0xa0 || b == 0xc2
}

/// `t:removeWhitespace`: deletes every space, `\t`, `\n`, `\v`, `\f` and
/// `\r`, and (as ModSecurity v3 does, to catch UTF-8 NBSP `C2 A0`) every
/// 0xA0 and 0xC2 byte, wherever they appear (so the 0xC2 lead byte of any
/// UTF-8 character `U+0080`-`U+00BF` is deleted too).
///
/// Coraza removes Unicode whitespace (`unicode.IsSpace`) by rune instead.
pub fn remove_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = input.iter().position(|&b| removed(b)) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    out.extend(input[start..].iter().copied().filter(|&b| !removed(b)));
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
            (b"Test\0Case", b"Test\0Case"),
            (b"  Test  \t   Case  ", b"TestCase"),
            (b"a\x0b\x0c\r\nb", b"ab"),
            (b"a\xc2\xa0b", b"ab"),
            (b"\xc2\xa9\xc3\xa9", b"\xa9\xc3\xa9"),
            (b" ", b""),
        ];
        for (input, want) in cases {
            assert_eq!(&*remove_whitespace(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(remove_whitespace(b"nospace"), Cow::Borrowed(_)));
    }
}
