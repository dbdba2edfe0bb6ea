//! `t:replaceComments`: C-style comments to a space.

use std::borrow::Cow;

use super::prefix_vec;

/// `t:replaceComments`: replaces each C-style comment `/* ... */` with a
/// single space. An unterminated comment runs to the end of the input and is
/// replaced by one space too. A stray `*/` outside a comment is kept.
///
/// Same in ModSecurity and Coraza.
pub fn replace_comments(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = crate::search::find(input, b"/*") else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    let mut rest = &input[start..];
    // Invariant: `rest` starts with "/*".
    loop {
        match crate::search::find(&rest[2..], b"*/") {
            None => {
                out.push(b' ');
                break;
            }
            Some(end) => {
                out.push(b' ');
                rest = &rest[2 + end + 2..];
                match crate::search::find(rest, b"/*") {
                    None => {
                        out.extend_from_slice(rest);
                        break;
                    }
                    Some(next) => {
                        out.extend_from_slice(&rest[..next]);
                        rest = &rest[next..];
                    }
                }
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
            (b"/* TestCase */", b" "),
            (b"/**/", b" "),
            (b"/*/", b" "),
            (b"Before/* TestCase */After", b"Before After"),
            (b"Before /* TestCase */ After", b"Before   After"),
            (b"Before/* Test\r\nCase ", b"Before "),
            (b"Test\r\nCase */After", b"Test\r\nCase */After"),
            (b"a/*b*/c/*d*/e", b"a c e"),
            (b"a/*b/*c*/d*/", b"a d*/"),
            (b"/", b"/"),
        ];
        for (input, want) in cases {
            assert_eq!(&*replace_comments(input), *want, "{input:?}");
        }
        assert!(matches!(replace_comments(b"a*/b / c"), Cow::Borrowed(_)));
    }
}
