//! `t:urlDecodeUni`: `%XX`, IIS `%uXXXX` and `+` decoding.

use std::borrow::Cow;

use memchr::{memchr2, memchr2_iter};

use super::{is_hex, prefix_vec, x2c};

/// What a `%` at some position decodes to.
#[inline]
fn decode_at(input: &[u8], i: usize) -> Option<(u8, usize)> {
    let len = input.len();
    if i + 1 < len && (input[i + 1] == b'u' || input[i + 1] == b'U') {
        if i + 5 < len && input[i + 2..i + 6].iter().all(|&b| is_hex(b)) {
            let mut b = x2c(input[i + 4], input[i + 5]);
            let full_width = (input[i + 2] | 0x20) == b'f' && (input[i + 3] | 0x20) == b'f';
            if full_width && b > 0 && b < 0x5f {
                b += 0x20;
            }
            return Some((b, 6));
        }
        return None;
    }
    if i + 2 < len && is_hex(input[i + 1]) && is_hex(input[i + 2]) {
        return Some((x2c(input[i + 1], input[i + 2]), 3));
    }
    None
}

/// `t:urlDecodeUni`: like `urlDecode`, plus IIS-style `%uXXXX` escapes
/// (`%u` or `%U` followed by exactly four hex digits).
///
/// A `%uXXXX` escape becomes one byte: its low byte, except that the
/// full-width ASCII range `U+FF01`-`U+FF5E` maps to `!`-`~` (low byte plus
/// 0x20), as ModSecurity does without a `SecUnicodeMapFile`. So `%u0041` and
/// `%uFF21` both give `A`, and `%u2215` gives `0x15`. Invalid or truncated
/// escapes (`%u12`, `%u12zz`) are copied as they are.
///
/// Difference: ModSecurity consults `SecUnicodeMapFile` when one is
/// configured, and Coraza always applies a best-fit table (mapping e.g.
/// `U+2215` to `/`); this function implements the default, map-less
/// ModSecurity behaviour.
pub fn url_decode_uni(input: &[u8]) -> Cow<'_, [u8]> {
    let first = memchr2_iter(b'%', b'+', input)
        .find(|&i| input[i] == b'+' || decode_at(input, i).is_some());
    let Some(start) = first else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match decode_at(input, i) {
                Some((b, used)) => {
                    out.push(b);
                    i += used;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                let run = memchr2(b'%', b'+', &input[i..]).unwrap_or(input.len() - i);
                out.extend_from_slice(&input[i..i + run]);
                i += run;
            }
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
            (b"Test+Case", b"Test Case"),
            (b"%41", b"A"),
            (b"%u0041", b"A"),
            (b"%U0041", b"A"),
            (b"%uff21", b"A"),
            (b"%uFF01%uFF5E", b"!~"),
            (b"%uFF00", b"\0"),
            (b"%uFF5F", b"\x5f"),
            (b"%uFE21", b"\x21"),
            (b"%u2215", b"\x15"),
            (b"%u", b"%u"),
            (b"%u1", b"%u1"),
            (b"%u123", b"%u123"),
            (b"%u12zz", b"%u12zz"),
            (b"%u%41", b"%uA"),
            (b"%%u0020", b"% "),
            (b"%uu0041", b"%uu0041"),
            (b"x%u0041y", b"xAy"),
            (b"\xff%u00e9", b"\xff\xe9"),
        ];
        for (input, want) in cases {
            assert_eq!(&*url_decode_uni(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(
            url_decode_uni(b"/index.php?a=b"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(url_decode_uni(b"%u12"), Cow::Borrowed(_)));
    }
}
