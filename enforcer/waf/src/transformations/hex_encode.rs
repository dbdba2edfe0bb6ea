//! `t:hexEncode`: bytes to lower-case hex.

use std::borrow::Cow;

/// `t:hexEncode`: writes each byte as two lower-case hex digits
/// (`Test` gives `54657374`). Empty input stays empty. Same in ModSecurity
/// and Coraza.
pub fn hex_encode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(hex::encode(input).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"TestCase", b"5465737443617365"),
            (b"Test\0Case", b"546573740043617365"),
            (b"\xff\x0a", b"ff0a"),
        ];
        for (input, want) in cases {
            assert_eq!(&*hex_encode(input), *want, "{input:?}");
        }
    }
}
