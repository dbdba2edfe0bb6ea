//! `t:hexDecode`: pairs of hex digits to bytes.

use std::borrow::Cow;

use super::x2c;

/// `t:hexDecode`: decodes each pair of input bytes as two hex digits.
///
/// As in ModSecurity nothing is validated: a trailing odd byte is dropped,
/// and a pair containing non-hex bytes still yields a byte computed by
/// ModSecurity's digit arithmetic (`0z` gives `#`). Empty input stays empty.
///
/// Difference: Coraza rejects input that is not valid hex (the value is
/// then left unchanged).
pub fn hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.chunks_exact(2).map(|p| x2c(p[0], p[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"5465737443617365", b"TestCase"),
            (b"546573740043617365", b"Test\0Case"),
            (
                b"01234567890a0z01234567890a",
                b"\x01#Eg\x89\n#\x01#Eg\x89\n",
            ),
            (b"01234567890az", b"\x01#Eg\x89\n"),
            (b"a", b""),
            (b"fF", b"\xff"),
        ];
        for (input, want) in cases {
            assert_eq!(&*hex_decode(input), *want, "{input:?}");
        }
    }
}
