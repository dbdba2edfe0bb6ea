//! `t:base64Encode`: standard base64 with padding.

use std::borrow::Cow;

use base64::Engine as _;

/// `t:base64Encode`: encodes with the standard alphabet and `=` padding, no
/// line breaks (`TestCase` gives `VGVzdENhc2U=`). Empty input stays empty.
/// Same in ModSecurity and Coraza.
pub fn base64_encode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        base64::engine::general_purpose::STANDARD
            .encode(input)
            .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"TestCase", b"VGVzdENhc2U="),
            (b"TestCase1", b"VGVzdENhc2Ux"),
            (b"TestCase12", b"VGVzdENhc2UxMg=="),
            (b"Test\0Case", b"VGVzdABDYXNl"),
            (b"\xff\xfe", b"//4="),
        ];
        for (input, want) in cases {
            assert_eq!(&*base64_encode(input), *want, "{input:?}");
        }
    }
}
