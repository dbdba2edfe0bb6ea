//! `t:sqlHexDecode`: SQL hex literals (`0x414243`) to bytes.

use std::borrow::Cow;

use memchr::memchr_iter;

use super::{is_hex, prefix_vec, x2c};

/// Whether a SQL hex literal (`0x` or `0X` and at least two hex digits)
/// starts at `i`.
#[inline]
fn literal_at(input: &[u8], i: usize) -> bool {
    i + 3 < input.len()
        && input[i] == b'0'
        && (input[i + 1] | 0x20) == b'x'
        && is_hex(input[i + 2])
        && is_hex(input[i + 3])
}

/// `t:sqlHexDecode`: decodes SQL hex literals: `0x` (or `0X`) followed by
/// hex digit pairs becomes the bytes they encode (`0x414243` gives `ABC`).
/// An odd final digit is kept as it is (`0x4142F` gives `ABF`); a `0x` with
/// fewer than two hex digits is not a literal.
///
/// Same as ModSecurity v3. Coraza has no `sqlHexDecode`.
pub fn sql_hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = memchr_iter(b'0', input).find(|&i| literal_at(input, i)) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        if literal_at(input, i) {
            i += 2;
            loop {
                out.push(x2c(input[i], input[i + 1]));
                i += 2;
                if !(i + 1 < input.len() && is_hex(input[i]) && is_hex(input[i + 1])) {
                    break;
                }
            }
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
            (b"0x414243", b"ABC"),
            (b"0X414243", b"ABC"),
            (b"0x4142F", b"ABF"),
            (b"select 0x61646d696e, 0x62", b"select admin, b"),
            (b"0x4", b"0x4"),
            (b"0x", b"0x"),
            (b"0xg1", b"0xg1"),
            (b"00x41", b"0A"),
            (b"0x410x42", b"AB"),
            (b"0x4100ab", b"A\0\xab"),
        ];
        for (input, want) in cases {
            assert_eq!(&*sql_hex_decode(input), *want, "{input:?}");
        }
        assert!(matches!(sql_hex_decode(b"100 x 0x"), Cow::Borrowed(_)));
    }
}
