//! `t:urlEncode`: percent-encoding.

use std::borrow::Cow;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether ModSecurity's `urlEncode` leaves `b` alone.
#[inline]
fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'*'
}

/// `t:urlEncode`: encodes every byte except ASCII letters, digits and `*`
/// as `%xx` (lower-case hex), and a space as `+` (`a b/c` gives
/// `a+b%2fc`). Same as ModSecurity; Coraza encodes the same set.
pub fn url_encode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = input.iter().position(|&b| !kept(b)) else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len() + (input.len() - start) * 2);
    out.extend_from_slice(&input[..start]);
    for &b in &input[start..] {
        if kept(b) {
            out.push(b);
        } else if b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
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
            (b"Test Case", b"Test+Case"),
            (b"% ", b"%25+"),
            (b"*-._~", b"*%2d%2e%5f%7e"),
            (b"\0\xff", b"%00%ff"),
        ];
        for (input, want) in cases {
            assert_eq!(&*url_encode(input), *want, "{input:?}");
        }
        assert!(matches!(url_encode(b"abcXYZ019*"), Cow::Borrowed(_)));
    }
}
