//! `t:utf8toUnicode`: UTF-8 sequences to `%uXXXX` notation.

use std::borrow::Cow;

use super::prefix_vec;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `%u` and `code` in lower-case hex, zero-padded to at least four
/// digits (as ModSecurity's `"%x"` plus padding does).
fn push_code(out: &mut Vec<u8>, code: u32) {
    out.extend_from_slice(b"%u");
    let digits = (8 - code.leading_zeros() / 4).max(4);
    for k in (0..digits).rev() {
        out.push(HEX[((code >> (4 * k)) & 0xf) as usize]);
    }
}

/// Whether the byte at `i` exists and is a UTF-8 continuation byte.
#[inline]
fn cont(input: &[u8], i: usize) -> bool {
    input.get(i).is_some_and(|&b| b & 0xc0 == 0x80)
}

/// `t:utf8toUnicode`: rewrites each well-formed UTF-8 multi-byte sequence
/// as `%uXXXX` (lower-case hex, at least four digits: `é` gives `%u00e9`,
/// U+1F600 gives `%u1f600`); ASCII is copied.
///
/// This follows ModSecurity v3 byte for byte, including its handling of
/// malformed input:
/// - a lead byte 0xC0-0xF4 whose continuation bytes are missing or wrong is
///   dropped (the bytes after it are then processed on their own);
/// - a stray continuation byte (0x80-0xBF) or 0xF8-0xFF is copied as is;
/// - lead bytes 0xF5-0xF7 are copied, and also decoded when well formed;
/// - overlong forms and surrogates are decoded and followed by a copy of
///   their lead byte;
/// - a NUL byte is dropped unless it is the last byte.
///
/// Coraza decodes with Go's UTF-8 decoder instead (malformed bytes become
/// `%ufffd`, NUL is kept, overlong forms are rejected).
pub fn utf8_to_unicode(input: &[u8]) -> Cow<'_, [u8]> {
    let last = input.len().saturating_sub(1);
    // Stray continuation bytes and 0xF8-0xFF are copied, and so is a
    // malformed 0xF5-0xF7 lead; every other lead byte changes the output.
    let first = input.iter().enumerate().position(|(i, &b)| match b {
        0 => i < last,
        0xc0..=0xf4 => true,
        0xf5..=0xf7 => (1..4).all(|k| cont(input, i + k)),
        _ => false,
    });
    let Some(start) = first else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        let c = input[i];
        // (code point, sequence length) of a well-formed sequence at `i`.
        let decoded = match c {
            0x00..=0x7f => {
                if c != 0 || i == last {
                    out.push(c);
                }
                i += 1;
                continue;
            }
            0xc0..=0xdf => cont(input, i + 1).then(|| {
                (
                    (u32::from(c & 0x1f) << 6) | u32::from(input[i + 1] & 0x3f),
                    2,
                )
            }),
            0xe0..=0xef => (cont(input, i + 1) && cont(input, i + 2)).then(|| {
                let code = (u32::from(c & 0x0f) << 12)
                    | (u32::from(input[i + 1] & 0x3f) << 6)
                    | u32::from(input[i + 2] & 0x3f);
                (code, 3)
            }),
            0xf0..=0xf7 => {
                if c >= 0xf5 {
                    out.push(c);
                }
                (cont(input, i + 1) && cont(input, i + 2) && cont(input, i + 3)).then(|| {
                    let code = (u32::from(c & 0x07) << 18)
                        | (u32::from(input[i + 1] & 0x3f) << 12)
                        | (u32::from(input[i + 2] & 0x3f) << 6)
                        | u32::from(input[i + 3] & 0x3f);
                    (code, 4)
                })
            }
            // Stray continuation bytes and 0xF8-0xFF.
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        let Some((code, len)) = decoded else {
            // Malformed: the lead byte is dropped.
            i += 1;
            continue;
        };
        push_code(&mut out, code);
        if (0xd800..=0xdfff).contains(&code) {
            out.push(c);
        }
        let overlong = match len {
            2 => code < 0x80,
            3 => code < 0x800,
            _ => code < 0x1_0000,
        };
        if overlong {
            out.push(c);
        }
        i += len;
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
            ("é".as_bytes(), b"%u00e9"),
            ("a€b".as_bytes(), b"a%u20acb"),
            ("\u{7ff}".as_bytes(), b"%u07ff"),
            ("😀".as_bytes(), b"%u1f600"),
            ("\u{10ffff}".as_bytes(), b"%u10ffff"),
            (b"\xc3", b""),
            (b"a\xc3b", b"ab"),
            (b"\xe2\x82", b"\x82"),
            (b"\x80\xbf\xf8\xff", b"\x80\xbf\xf8\xff"),
            (b"\xc0\x80", b"%u0000\xc0"),
            (b"\xc1\xbf", b"%u007f\xc1"),
            (b"\xe0\x80\x80", b"%u0000\xe0"),
            (b"\xed\xa0\x80", b"%ud800\xed"),
            (b"\xf0\x80\x80\x80", b"%u0000\xf0"),
            (b"\xf5\x80\x80\x80", b"\xf5%u140000"),
            (b"\xf5", b"\xf5"),
            (b"a\0b", b"ab"),
            (b"ab\0", b"ab\0"),
            (b"\0", b"\0"),
        ];
        for (input, want) in cases {
            assert_eq!(&*utf8_to_unicode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(utf8_to_unicode(b"plain ascii"), Cow::Borrowed(_)));
        assert!(matches!(utf8_to_unicode(b"nul at end\0"), Cow::Borrowed(_)));
        assert!(matches!(
            utf8_to_unicode(b"\x80\xbf\xf8\xf5\x80"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            utf8_to_unicode(b"\xf5\x80\x80\x80"),
            Cow::Owned(_)
        ));
    }
}
