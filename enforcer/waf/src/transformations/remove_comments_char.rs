//! `t:removeCommentsChar`: deletes comment delimiters.

use std::borrow::Cow;

use super::prefix_vec;

/// The length of the comment delimiter starting at `i`, if any.
#[inline]
fn delimiter_at(input: &[u8], i: usize) -> Option<usize> {
    let rest = &input[i..];
    match rest[0] {
        b'#' => Some(1),
        b'/' if rest.get(1) == Some(&b'*') => Some(2),
        b'*' if rest.get(1) == Some(&b'/') => Some(2),
        b'<' if rest.starts_with(b"<!--") => Some(4),
        b'-' if rest.starts_with(b"-->") => Some(3),
        b'-' if rest.get(1) == Some(&b'-') => Some(2),
        _ => None,
    }
}

/// `t:removeCommentsChar`: deletes the comment delimiters `/*`, `*/`,
/// `<!--`, `-->`, `--` and `#`, keeping what is between them. Matching is
/// left to right, so `--->` loses `--` then keeps `->`.
///
/// Same in ModSecurity and Coraza.
pub fn remove_comments_char(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = (0..input.len()).find(|&i| delimiter_at(input, i).is_some()) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut i = start;
    while i < input.len() {
        match delimiter_at(input, i) {
            Some(n) => i += n,
            None => {
                out.push(input[i]);
                i += 1;
            }
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
            (b"/* TestCase */", b" TestCase "),
            (b"Before/* TestCase */After", b"Before TestCase After"),
            (b"Test\r\nCase */After", b"Test\r\nCase After"),
            (b"<!-- x -->", b" x "),
            (b"a--b#c", b"abc"),
            (b"--->", b"->"),
            (b"-", b"-"),
            (b"<!-", b"<!-"),
            (b"*", b"*"),
        ];
        for (input, want) in cases {
            assert_eq!(&*remove_comments_char(input), *want, "{input:?}");
        }
        assert!(matches!(
            remove_comments_char(b"a-b*c/d<e!"),
            Cow::Borrowed(_)
        ));
    }
}
