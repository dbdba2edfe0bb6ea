//! `t:removeComments`: deletes comments (C, HTML, SQL and shell style).

use std::borrow::Cow;

use super::prefix_vec;

/// What starts at `i` outside a comment.
enum Opening {
    /// `/*` or `<!--`: a block comment of this delimiter length.
    Block(usize),
    /// `--` or `#`: the rest of the input is a comment.
    Line,
}

#[inline]
fn opening_at(input: &[u8], i: usize) -> Option<Opening> {
    let rest = &input[i..];
    match rest[0] {
        b'/' if rest.get(1) == Some(&b'*') => Some(Opening::Block(2)),
        b'<' if rest.starts_with(b"<!--") => Some(Opening::Block(4)),
        b'-' if rest.get(1) == Some(&b'-') => Some(Opening::Line),
        b'#' => Some(Opening::Line),
        _ => None,
    }
}

/// `t:removeComments`: deletes `/* ... */` and `<!-- ... -->` comments and
/// truncates the input at `--` or `#` (line comments run to the end).
///
/// This reproduces ModSecurity v3 exactly, quirks included (Coraza copies
/// them too):
/// - a block comment may be closed by either `*/` or `-->`;
/// - the byte right after a closing delimiter is always copied, even when it
///   opens another comment (`/*a*/#b` gives `#b`), and when the comment
///   closes at the very end of the input a NUL byte is emitted instead
///   (`/* x */` gives `"\0"`);
/// - an unterminated block comment is replaced by one space.
pub fn remove_comments(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = (0..input.len()).find(|&i| opening_at(input, i).is_some()) else {
        return Cow::Borrowed(input);
    };
    let len = input.len();
    let mut out = prefix_vec(input, start);
    let mut i = start;
    let mut in_comment = false;
    while i < len {
        if !in_comment {
            match opening_at(input, i) {
                Some(Opening::Block(n)) => {
                    in_comment = true;
                    i += n;
                }
                Some(Opening::Line) => break,
                None => {
                    out.push(input[i]);
                    i += 1;
                }
            }
        } else {
            let rest = &input[i..];
            let close = if rest.starts_with(b"*/") {
                2
            } else if rest.starts_with(b"-->") {
                3
            } else {
                0
            };
            if close == 0 {
                i += 1;
                continue;
            }
            in_comment = false;
            i += close;
            // ModSecurity copies the next byte unconditionally: the C
            // string's terminating NUL when the input ends here.
            out.push(input.get(i).copied().unwrap_or(0));
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
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
            (b"/* TestCase */", b"\0"),
            (b"Before/* TestCase */After", b"BeforeAfter"),
            (b"Before TestCase */ After", b"Before TestCase */ After"),
            (b"/*Before/* Test\r\nCase ", b" "),
            (b"Before /* Test\nCase ", b"Before  "),
            (
                b"Before/* T*/ /* e */ /* s */ /* t */\r\nCase ",
                b"Before   \r\nCase ",
            ),
            (
                b"Before /* */ ops */ Test\nCase ",
                b"Before  ops */ Test\nCase ",
            ),
            (b"Test/*\nCase */ After", b"Test After"),
            (b"select 1 -- comment", b"select 1 "),
            (b"a#b", b"a"),
            (b"<!-- x -->y", b"y"),
            (b"/* x -->y", b"y"),
            (b"/*a*/#b", b"#b"),
            (b"-", b"-"),
        ];
        for (input, want) in cases {
            assert_eq!(&*remove_comments(input), *want, "{input:?}");
        }
        assert!(matches!(remove_comments(b"a-b*/c"), Cow::Borrowed(_)));
    }
}
