//! `t:md5` and `t:sha1`: raw binary digests.

use std::borrow::Cow;

use md5::Digest as _;

/// `t:md5`: the 16-byte binary MD5 digest of the input (not hex: chain
/// `t:hexEncode` for that), as in ModSecurity and Coraza.
pub fn md5(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(md5::Md5::digest(input).to_vec())
}

/// `t:sha1`: the 20-byte binary SHA-1 digest of the input (not hex), as in
/// ModSecurity and Coraza.
pub fn sha1(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(sha1::Sha1::digest(input).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_digests() {
        assert_eq!(hex::encode(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex::encode(md5(b"TestCase")),
            "c9aba2c3e60126169e80e9a26ba273c1"
        );
        assert_eq!(
            hex::encode(md5(b"zimmerle")),
            "2d536590292d427e4e14829a45bcfe89"
        );
    }

    #[test]
    fn sha1_digests() {
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex::encode(sha1(b"TestCase")),
            "a70ce38389e318bd2be18a0111c6dc76bd2cd9ed"
        );
    }
}
