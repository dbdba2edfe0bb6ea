//! `t:base64Decode` (strict) and `t:base64DecodeExt` (forgiving).

use std::borrow::Cow;

use memchr::memchr;

/// The 6-bit value of a standard base64 alphabet byte.
#[inline]
fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Validates `src` as mbedTLS 3.6 `mbedtls_base64_decode` does. Returns
/// false for any input it rejects.
fn mbedtls_valid(src: &[u8]) -> bool {
    let mut equals = 0;
    let mut i = 0;
    while i < src.len() {
        let mut spaces = false;
        while i < src.len() && src[i] == b' ' {
            i += 1;
            spaces = true;
        }
        if i == src.len() {
            break;
        }
        if src[i] == b'\r' && src.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        if src[i] == b'\n' {
            i += 1;
            continue;
        }
        if spaces {
            return false;
        }
        if src[i] == b'=' {
            equals += 1;
            if equals > 2 {
                return false;
            }
        } else if equals != 0 || sextet(src[i]).is_none() {
            return false;
        }
        i += 1;
    }
    true
}

/// `t:base64Decode`: strict base64 decoding, as ModSecurity v3 (which uses
/// mbedTLS 3.6):
/// - the input stops at its first NUL byte;
/// - if anything in it is not valid base64 (a byte outside the standard
///   alphabet, a space inside a line, a `\r` not followed by `\n`, data
///   after `=`, more than two `=`) the result is **empty**;
/// - line breaks (`\n`, `\r\n`) and spaces before a line break or at the
///   end are ignored;
/// - a trailing incomplete group (1-3 digits not padded to 4) is dropped:
///   `VGVzdA` gives `Tes`.
///
/// Empty input stays empty. Difference: Coraza returns what it decoded up
/// to the first invalid byte instead of nothing, and decodes a trailing
/// partial group.
pub fn base64_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let src = &input[..memchr(0, input).unwrap_or(input.len())];
    if !mbedtls_valid(src) {
        return Cow::Owned(Vec::new());
    }
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut digits = 0;
    let mut equals = 0;
    for &b in src {
        if matches!(b, b'\r' | b'\n' | b' ') {
            continue;
        }
        acc <<= 6;
        match sextet(b) {
            Some(v) => acc |= u32::from(v),
            None => equals += 1,
        }
        digits += 1;
        if digits == 4 {
            digits = 0;
            out.push((acc >> 16) as u8);
            if equals <= 1 {
                out.push((acc >> 8) as u8);
            }
            if equals == 0 {
                out.push(acc as u8);
            }
        }
    }
    Cow::Owned(out)
}

/// `t:base64DecodeExt`: forgiving base64 decoding (ModSecurity's
/// `decode_forgiven`): every byte outside the base64 alphabet (whitespace,
/// `.`, anything) is skipped, `=` is skipped, and a trailing partial group
/// is decoded as far as it goes (`VGVzdA` gives `Test`). NUL bytes do not
/// stop decoding.
///
/// As in ModSecurity the result is empty when a `=` arrives after a single
/// digit of a group and is not followed by another `=` (`QUJDQ=`,
/// `QUJDQ==`, `QUJDQ=x`).
///
/// Difference: ModSecurity also returns an empty result when the last
/// base64 digit is a lone `9` starting a group (`QUJD9`), because it
/// compares the digit's 6-bit value (61) with the character `=`; that is a
/// bug and is not reproduced here (`QUJD9` gives `ABC`). Coraza also maps
/// the URL-safe `-` and `_` to `+` and `/`; ModSecurity and this function
/// skip them.
pub fn base64_decode_ext(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    // Digits seen so far (ModSecurity's `i`), and the byte being built.
    let mut count = 0usize;
    let mut pending: u8 = 0;
    for (k, &b) in input.iter().enumerate() {
        if b == b'=' {
            // ModSecurity looks at the next byte (the C string's NUL at the
            // end of the input).
            if input.get(k + 1) != Some(&b'=') && count % 4 == 1 {
                return Cow::Owned(Vec::new());
            }
            continue;
        }
        let Some(v) = sextet(b) else {
            continue;
        };
        match count % 4 {
            0 => pending = v << 2,
            1 => {
                out.push(pending | (v >> 4));
                pending = (v & 0x0f) << 4;
            }
            2 => {
                out.push(pending | (v >> 2));
                pending = (v & 0x03) << 6;
            }
            _ => out.push(pending | v),
        }
        count += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"VGVzdENhc2U=", b"TestCase"),
            (b"VGVzdENhc2Ux", b"TestCase1"),
            (b"VGVzdENhc2UxMg==", b"TestCase12"),
            (b"VGVzdABDYXNl", b"Test\0Case"),
            (b"VGVzdENhc2U=\0VGVzdENhc2U=", b"TestCase"),
            (b"VGVzdA", b"Tes"),
            (b"VGVzdA==", b"Test"),
            (b"VGVz\r\ndA==\n", b"Test"),
            (b"VGVzdA==  ", b"Test"),
            (b"VGVz  \ndA==", b"Test"),
            (b" VGVzdA==", b""),
            (b"VGVz dA==", b""),
            (b"VGVz\rdA==", b""),
            (b"VGVzdA==x", b""),
            (b"VGVzdA===", b""),
            (b"VGVz!A==", b""),
            (b"VGVz\xffA==", b""),
            (b"\0abc", b""),
            (b"=", b""),
            (b"QQ=", b""),
            (b"QQ==", b"A"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &*base64_decode(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn ext_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"VGVzdENhc2U=", b"TestCase"),
            (b"VGVzdENhc2UxMg==", b"TestCase12"),
            (
                b"P.HNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
                b"<script>alert(1)</script>",
            ),
            (b"VGVzdABDYXNl", b"Test\0Case"),
            (b"VGVzdA", b"Test"),
            (b"VG Vz\tdA\0==", b"Test"),
            (b"QUJD9", b"ABC"),
            (b"QUJDQ=", b""),
            (b"QUJDQ==", b""),
            (b"QUJDQ==x", b""),
            (b"QUJDQ.=", b""),
            (b"QUJDQU=", b"ABCA"),
            (b"QQ=", b"A"),
            (b"!!!", b""),
            (b"QUJD-_", b"ABC"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &*base64_decode_ext(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
