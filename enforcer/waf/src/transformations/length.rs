//! `t:length`: the input's length in bytes, as a decimal string.

use std::borrow::Cow;

/// `t:length`: replaces the value with its length in bytes written in
/// decimal (`Test\0Case` gives `9`, empty input gives `0`). Same in
/// ModSecurity and Coraza.
pub fn length(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(input.len().to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b"0"),
            (b"0123456789abcdef", b"16"),
            (b"Test\0Case", b"9"),
            (b"\xff\xfe", b"2"),
        ];
        for (input, want) in cases {
            assert_eq!(&*length(input), *want, "{input:?}");
        }
    }
}
