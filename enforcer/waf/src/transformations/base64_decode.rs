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
    if let Some(out) = decode_plain(input) {
        return Cow::Owned(out);
    }
    decode_checked(input)
}

/// The 6-bit value of every byte, `NOT_BASE64` outside the standard alphabet.
const SEXTETS: [u8; 256] = {
    let mut t = [NOT_BASE64; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b @ b'A'..=b'Z' => b - b'A',
            b @ b'a'..=b'z' => b - b'a' + 26,
            b @ b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => NOT_BASE64,
        };
        i += 1;
    }
    t
};

/// Marks a byte outside the alphabet in [`SEXTETS`] (any value with one of
/// the top two bits set would do).
const NOT_BASE64: u8 = 0xff;

/// [`base64_decode`] of an input made only of base64 digits (no padding,
/// line break, space or NUL), the usual case for a value that decodes at
/// all; `None` for any other input. A trailing incomplete group is dropped,
/// as mbedTLS does.
fn decode_plain(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let groups = input.chunks_exact(4);
    let rest = groups.remainder();
    for g in groups {
        let [a, b, c, d] = [g[0], g[1], g[2], g[3]].map(|x| SEXTETS[usize::from(x)]);
        if (a | b | c | d) & 0xc0 != 0 {
            return None;
        }
        out.extend_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d]);
    }
    if rest.iter().any(|&x| SEXTETS[usize::from(x)] == NOT_BASE64) {
        return None;
    }
    Some(out)
}

/// [`base64_decode`] of any input: validated as mbedTLS does, then decoded.
fn decode_checked(input: &[u8]) -> Cow<'_, [u8]> {
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
    fn plain_inputs_decode_as_the_checked_path_does() {
        // Every input of base64 digits only, of every length up to 9 over a
        // small alphabet, plus pseudo-random longer ones over the full one.
        let small = b"Az09+/";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let next: Vec<Vec<u8>> = inputs
                .iter()
                .filter(|v| v.len() < 6)
                .flat_map(|v| {
                    small.iter().map(move |&b| {
                        let mut w = v.clone();
                        w.push(b);
                        w
                    })
                })
                .collect();
            inputs.extend(next);
        }
        let full: Vec<u8> = (0u8..=255).filter(|&b| sextet(b).is_some()).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let v = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    full[(seed % full.len() as u64) as usize]
                })
                .collect();
            inputs.push(v);
        }
        for v in inputs.iter().filter(|v| !v.is_empty()) {
            let plain = decode_plain(v).expect("only base64 digits");
            assert_eq!(
                plain,
                &*decode_checked(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        // Anything else is left to the checked path.
        for v in [
            &b"QQ=="[..],
            b"QUJD\n",
            b"QU JD",
            b"QUJD\0",
            b"QUJD.",
            b"Q\xff",
        ] {
            assert_eq!(decode_plain(v), None, "{:?}", String::from_utf8_lossy(v));
        }
    }

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
