//! `t:escapeSeqDecode`: ANSI C escape sequences to bytes.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter};

use super::{is_hex, prefix_vec, x2c};

/// Decodes the escape at the backslash `i` (with at least one byte after it):
/// the output byte and how many input bytes it used.
fn escape_at(input: &[u8], i: usize) -> (u8, usize) {
    let next = input[i + 1];
    let simple = match next {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' | b'?' | b'\'' | b'"' => Some(next),
        _ => None,
    };
    if let Some(b) = simple {
        return (b, 2);
    }
    if next == b'x' || next == b'X' {
        if i + 3 < input.len() && is_hex(input[i + 2]) && is_hex(input[i + 3]) {
            return (x2c(input[i + 2], input[i + 3]), 4);
        }
        return (next, 2);
    }
    if (b'0'..=b'7').contains(&next) {
        let n = input[i + 1..]
            .iter()
            .take(3)
            .take_while(|b| (b'0'..=b'7').contains(*b))
            .count();
        let v = input[i + 1..i + 1 + n]
            .iter()
            .fold(0u32, |v, &d| v * 8 + u32::from(d - b'0'));
        return ((v & 0xff) as u8, 1 + n);
    }
    (next, 2)
}

/// `t:escapeSeqDecode`: decodes ANSI C escapes: `\a \b \f \n \r \t \v \\ \?
/// \' \"`, `\xHH` (either `x` case, exactly two hex digits) and octal `\O`
/// to `\OOO` (up to three digits; values above 0xFF keep their low byte, so
/// `\666` gives 0xB6).
///
/// For an unrecognised escape (`\8`, `\q`, `\x` without two hex digits) the
/// backslash is dropped and the next byte kept. A trailing lone backslash
/// is kept. Coraza follows the same algorithm.
pub fn escape_seq_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr_iter(b'\\', input).find(|&i| i + 1 < input.len()) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        if input[i] == b'\\' && i + 1 < input.len() {
            let (b, used) = escape_at(input, i);
            out.push(b);
            i += used;
        } else if input[i] == b'\\' {
            out.push(b'\\');
            i += 1;
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
            (
                b"\\a\\b\\f\\n\\r\\t\\v\\?\\'\\\"\\\\",
                b"\x07\x08\x0c\n\r\t\x0b?'\"\\",
            ),
            (b"\\0\\12\\123\\1234", b"\0\nSS4"),
            (b"\\8\\9\\666\\xag\\xga\\0123", b"89\xb6xagxga\n3"),
            (b"\\x41\\X42", b"AB"),
            (b"\\x", b"x"),
            (b"\\x\\x0", b"xx0"),
            (b"\\u0041", b"u0041"),
            (b"\\", b"\\"),
            (b"\\\0", b"\0"),
            (b"\xff\\x41\xfe", b"\xffA\xfe"),
        ];
        for (input, want) in cases {
            assert_eq!(&*escape_seq_decode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(escape_seq_decode(b"plain"), Cow::Borrowed(_)));
        assert!(matches!(escape_seq_decode(b"end\\"), Cow::Borrowed(_)));
    }
}
