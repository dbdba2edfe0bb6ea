//! `t:urlDecode`: `%XX` and `+` decoding.

use std::borrow::Cow;

use memchr::{memchr2, memchr2_iter};

use super::{is_hex, prefix_vec, x2c};

/// Whether a `%` at `i` starts a valid `%XX` escape (ModSecurity needs the
/// two hex digits to be present and valid).
#[inline]
fn valid_escape(input: &[u8], i: usize) -> bool {
    i + 2 < input.len() && is_hex(input[i + 1]) && is_hex(input[i + 2])
}

/// `t:urlDecode`: decodes `%XX` escapes and turns `+` into a space
/// (ModSecurity's `urldecode_nonstrict_inplace`).
///
/// Invalid or truncated escapes (`%`, `%4`, `%zz`, `%4g`) are kept as they
/// are and decoding resumes right after the `%`, so `%%41` gives `%A`.
/// `%u` escapes are not decoded (see `urlDecodeUni`). Coraza behaves the
/// same.
pub fn url_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let first =
        memchr2_iter(b'%', b'+', input).find(|&i| input[i] == b'+' || valid_escape(input, i));
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
            b'%' if valid_escape(input, i) => {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            }
            b'%' => {
                out.push(b'%');
                i += 1;
            }
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
            (b"TestCase", b"TestCase"),
            (b"Test+Case", b"Test Case"),
            (b"%41%42%43", b"ABC"),
            (b"a%2fb%2Fc", b"a/b/c"),
            (b"%", b"%"),
            (b"%4", b"%4"),
            (b"%zz", b"%zz"),
            (b"%%41", b"%A"),
            (b"%u0041", b"%u0041"),
            (b"%00", b"\0"),
            (b"%ff\xfe", b"\xff\xfe"),
            (b"%+", b"% "),
            (b"abc%4", b"abc%4"),
        ];
        for (input, want) in cases {
            assert_eq!(&*url_decode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(url_decode(b"plain/text"), Cow::Borrowed(_)));
        assert!(matches!(url_decode(b"100%"), Cow::Borrowed(_)));
        assert!(matches!(url_decode(b"%zz%"), Cow::Borrowed(_)));
    }
}
