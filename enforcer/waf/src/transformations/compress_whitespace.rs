//! `t:compressWhitespace`: whitespace runs to one space.

use std::borrow::Cow;

use super::{is_c_space, prefix_vec};

/// `t:compressWhitespace`: replaces each run of whitespace (space, `\t`,
/// `\n`, `\v`, `\f`, `\r`) with a single space.
///
/// As in ModSecurity v3 only those six ASCII bytes count: 0xA0 (NBSP) is
/// not whitespace here. Coraza also compresses NBSP and U+0085.
pub fn compress_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    let first = (0..input.len()).find(|&i| {
        let b = input[i];
        is_c_space(b) && (b != b' ' || (i > 0 && input[i - 1] == b' '))
    });
    let Some(start) = first else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut in_space = start > 0 && input[start - 1] == b' ';
    for &b in &input[start..] {
        if is_c_space(b) {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            out.push(b);
            in_space = false;
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
            (b"Test\0Case", b"Test\0Case"),
            (b"Test Case", b"Test Case"),
            (b"  Test  \t   Case  ", b" Test Case "),
            (b"a\tb", b"a b"),
            (b"a \x0b\x0c\r\nb", b"a b"),
            (b"a\xa0\xa0b", b"a\xa0\xa0b"),
            (b"\n", b" "),
        ];
        for (input, want) in cases {
            assert_eq!(&*compress_whitespace(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(
            compress_whitespace(b"one two three"),
            Cow::Borrowed(_)
        ));
    }
}
