//! `t:jsDecode`: JavaScript string escapes to bytes.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter};

use super::{is_hex, prefix_vec, x2c};

/// Whether `b` is an octal digit.
#[inline]
fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// Decodes the escape at the backslash `i` (with at least one byte after it):
/// the output byte and how many input bytes it used.
fn escape_at(input: &[u8], i: usize) -> (u8, usize) {
    let len = input.len();
    let next = input[i + 1];
    if next == b'u' && i + 5 < len && input[i + 2..i + 6].iter().all(|&b| is_hex(b)) {
        let mut b = x2c(input[i + 4], input[i + 5]);
        let full_width = (input[i + 2] | 0x20) == b'f' && (input[i + 3] | 0x20) == b'f';
        if full_width && b > 0 && b < 0x5f {
            b += 0x20;
        }
        return (b, 6);
    }
    if next == b'x' && i + 3 < len && is_hex(input[i + 2]) && is_hex(input[i + 3]) {
        return (x2c(input[i + 2], input[i + 3]), 4);
    }
    if is_octal(next) {
        let digits = input[i + 1..]
            .iter()
            .take(3)
            .take_while(|&&b| is_octal(b))
            .count();
        // Three digits only while the value fits in a byte (\377).
        let n = if digits == 3 && next > b'3' {
            2
        } else {
            digits
        };
        let v = input[i + 1..i + 1 + n]
            .iter()
            .fold(0u32, |v, &d| v * 8 + u32::from(d - b'0'));
        return ((v & 0xff) as u8, 1 + n);
    }
    let b = match next {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        other => other,
    };
    (b, 2)
}

/// `t:jsDecode`: decodes JavaScript escapes: `\uHHHH`, `\xHH`, octal
/// `\OOO` (up to three digits, only while the value fits in a byte, so
/// `\477` is `\47` then `7`), `\a \b \f \n \r \t \v`, and `\C` for any other
/// byte C (the backslash is dropped: `\'`, `\"`, `\\`, but also `\q`, and
/// `\u`/`\x` not followed by enough hex digits).
///
/// `\uHHHH` keeps the low byte only, except that full-width ASCII
/// (`\uFF01`-`\uFF5E`) maps to `!`-`~`, as ModSecurity does; the `u` and `x`
/// must be lower case. A trailing lone backslash is kept.
///
/// Coraza follows the same algorithm.
pub fn js_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr_iter(b'\\', input).find(|&i| i + 1 < input.len()) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        if input[i] == b'\\' {
            if i + 1 < input.len() {
                let (b, used) = escape_at(input, i);
                out.push(b);
                i += used;
            } else {
                out.push(b'\\');
                i += 1;
            }
        } else {
            let n = memchr(b'\\', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + n]);
            i += n;
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
            (b"\\x41\\u0042", b"AB"),
            (b"\\uFF21\\uff01\\uFF5F\\uFF00", b"A!\x5f\0"),
            (b"\\u0000", b"\0"),
            (b"\\U0041", b"U0041"),
            (b"\\X41", b"X41"),
            (b"\\a\\b\\f\\n\\r\\t\\v", b"\x07\x08\x0c\n\r\t\x0b"),
            (b"\\?\\'\\\"\\\\\\q", b"?'\"\\q"),
            (b"\\0\\12\\123\\1234", b"\0\nSS4"),
            (b"\\377\\400\\477", b"\xff\x200\x277"),
            (b"\\8", b"8"),
            (b"\\x", b"x"),
            (b"\\x\\x0", b"xx0"),
            (b"\\u\\u0\\u01\\u012", b"uu0u01u012"),
            (b"\\", b"\\"),
            (b"abc\\", b"abc\\"),
            (b"\\\\0", b"\\0"),
            (b"\xff\\x41\xfe", b"\xffA\xfe"),
        ];
        for (input, want) in cases {
            assert_eq!(&*js_decode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(js_decode(b"alert(1)"), Cow::Borrowed(_)));
        assert!(matches!(js_decode(b"trailing\\"), Cow::Borrowed(_)));
    }
}
