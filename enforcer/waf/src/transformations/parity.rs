//! `t:parityEven7bit`, `t:parityOdd7bit` and `t:parityZero7bit`: set the
//! high bit of each byte as a 7-bit parity bit.

use std::borrow::Cow;

/// Whether `b` has an odd number of set bits (all eight bits, as
/// ModSecurity computes it).
#[inline]
fn odd_parity(b: u8) -> bool {
    b.count_ones() % 2 == 1
}

/// Maps every byte with `f`, borrowing when no byte changes.
fn map_bytes(input: &[u8], f: impl Fn(u8) -> u8) -> Cow<'_, [u8]> {
    match input.iter().position(|&b| f(b) != b) {
        None => Cow::Borrowed(input),
        Some(at) => {
            let mut out = input.to_vec();
            for b in &mut out[at..] {
                *b = f(*b);
            }
            Cow::Owned(out)
        }
    }
}

/// `t:parityEven7bit`: sets the high bit when the byte (all eight bits, as
/// ModSecurity computes it) has odd parity, clears it otherwise.
pub fn parity_even_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| if odd_parity(b) { b | 0x80 } else { b & 0x7f })
}

/// `t:parityOdd7bit`: sets the high bit when the byte (all eight bits) has
/// even parity, clears it otherwise.
pub fn parity_odd_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| if odd_parity(b) { b & 0x7f } else { b | 0x80 })
}

/// `t:parityZero7bit`: clears the high bit of every byte.
pub fn parity_zero_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    #[test]
    fn even() {
        assert_eq!(
            &*parity_even_7bit(ALNUM),
            &b"\xe1\xe2c\xe4ef\xe7\xe8ij\xebl\xed\xeeo\xf0qr\xf3t\xf5\xf6wx\xf9\xfa0\xb1\xb23\xb456\xb7\xb89AB\xc3D\xc5\xc6GH\xc9\xcaK\xccMN\xcfP\xd1\xd2S\xd4UV\xd7\xd8YZ"[..]
        );
        assert_eq!(&*parity_even_7bit(b"\0"), b"\0");
        assert!(matches!(parity_even_7bit(b"cefij"), Cow::Borrowed(_)));
    }

    #[test]
    fn odd() {
        assert_eq!(
            &*parity_odd_7bit(ALNUM),
            &b"ab\xe3d\xe5\xe6gh\xe9\xeak\xecmn\xefp\xf1\xf2s\xf4uv\xf7\xf8yz\xb012\xb34\xb5\xb678\xb9\xc1\xc2C\xc4EF\xc7\xc8IJ\xcbL\xcd\xceO\xd0QR\xd3T\xd5\xd6WX\xd9\xda"[..]
        );
        assert_eq!(&*parity_odd_7bit(b"\0"), b"\x80");
        assert!(matches!(parity_odd_7bit(b"abdgh"), Cow::Borrowed(_)));
    }

    #[test]
    fn zero() {
        assert_eq!(
            &*parity_zero_7bit(b"\xc2\x80\0\xc2\x8f\xc3\xbf"),
            b"B\0\0B\x0fC?"
        );
        assert!(matches!(parity_zero_7bit(ALNUM), Cow::Borrowed(_)));
        assert_eq!(&*parity_zero_7bit(b""), b"");
    }
}
