//! `t:cssDecode`: CSS 2 escapes to bytes.

use std::borrow::Cow;

use memchr::memchr;

use super::{is_c_space, is_hex, prefix_vec, x2c, xsingle};

/// `t:cssDecode`: decodes CSS escapes: a backslash followed by 1 to 6 hex
/// digits (plus one optional whitespace byte after them), a backslash
/// before a newline (both dropped), or a backslash before any other byte
/// (the backslash is dropped). A trailing lone backslash is dropped too.
///
/// As in ModSecurity the value of a hex escape is cut to one byte: one
/// digit gives its value, otherwise the last two digits are used. With four
/// digits (or five/six with leading zeros) full-width ASCII `FF01`-`FF5E`
/// maps to `!`-`~`. So `\41` and `\000041` give `A`, `\FF21` gives `A`, and
/// `\1234` gives `4`.
///
/// Difference: recent Coraza decodes the full code point and emits UTF-8
/// (U+FFFD for `\0`); ModSecurity and this function emit one byte.
pub fn css_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr(b'\\', input) else {
        return Cow::Borrowed(input);
    };
    let len = input.len();
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < len {
        if input[i] != b'\\' {
            let n = memchr(b'\\', &input[i..]).unwrap_or(len - i);
            out.extend_from_slice(&input[i..i + n]);
            i += n;
            continue;
        }
        // Skip the backslash.
        i += 1;
        if i >= len {
            break;
        }
        let mut j = input[i..]
            .iter()
            .take(6)
            .take_while(|&&b| is_hex(b))
            .count();
        if j > 0 {
            let last_two = |d: &[u8]| x2c(d[i + j - 2], d[i + j - 1]);
            let (b, full_check) = match j {
                1 => (xsingle(input[i]), false),
                2 | 3 => (last_two(input), false),
                4 => (last_two(input), true),
                5 => (last_two(input), input[i] == b'0'),
                _ => (last_two(input), input[i] == b'0' && input[i + 1] == b'0'),
            };
            let mut b = b;
            if full_check
                && b > 0
                && b < 0x5f
                && (input[i + j - 3] | 0x20) == b'f'
                && (input[i + j - 4] | 0x20) == b'f'
            {
                b += 0x20;
            }
            out.push(b);
            // A single whitespace after a hex escape belongs to it.
            if i + j < len && is_c_space(input[i + j]) {
                j += 1;
            }
            i += j;
        } else if input[i] == b'\n' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
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
            (b"\\41", b"A"),
            (b"\\000041", b"A"),
            (b"\\1A\\1 A", b"\x1a\x01A"),
            (b"\\1234567", b"V7"),
            (b"\\123456 7", b"V7"),
            (b"\\ff21\\FF01\\ff5e", b"A!~"),
            (b"\\0ff21\\00ff21", b"AA"),
            (b"\\1ff21", b"\x21"),
            (b"\\ff00", b"\0"),
            (b"\\a\\b", b"\n\x0b"),
            (b"\\x\\?\\'", b"x?'"),
            (b"a\\\nb", b"ab"),
            (b"test\\", b"test"),
            (b"\\", b""),
            (b"\\41\t\tB", b"A\tB"),
            (b"\\\\", b"\\"),
            (b"\xff\\41\xfe", b"\xffA\xfe"),
        ];
        for (input, want) in cases {
            assert_eq!(&*css_decode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(css_decode(b"color: red"), Cow::Borrowed(_)));
    }
}
