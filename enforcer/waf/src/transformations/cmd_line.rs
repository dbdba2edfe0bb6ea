//! `t:cmdLine`: normalises command lines (Windows and Unix shells).

use std::borrow::Cow;

use super::prefix_vec;

/// Whether the byte at `i` is where `cmdLine` first changes the input,
/// given that everything before it is unchanged.
#[inline]
fn changes_at(input: &[u8], i: usize) -> bool {
    match input[i] {
        b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b'\t' | b'\r' | b'\n' => true,
        b' ' | b'/' | b'(' => i > 0 && input[i - 1] == b' ',
        b => b.is_ascii_uppercase(),
    }
}

/// `t:cmdLine`: ModSecurity's command-line normalisation, in one pass:
/// - delete `\`, `"`, `'` and `^`;
/// - replace each run of spaces, tabs, CR, LF, `,` and `;` by one space
///   (the deleted characters do not break a run);
/// - delete a space right before `/` or `(`;
/// - lowercase ASCII letters.
///
/// So `C^OMMAND /C DIR` gives `command/c dir`. Vertical tab and form feed
/// are not whitespace here. Coraza implements the same rules.
pub fn cmd_line(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = (0..input.len()).find(|&i| changes_at(input, i)) else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    // Whether the last byte written is a space this function wrote.
    let mut space = start > 0 && input[start - 1] == b' ';
    for &b in &input[start..] {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            _ => {
                out.push(b.to_ascii_lowercase());
                space = false;
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
            (b"test", b"test"),
            (b"C^OMMAND /C DIR", b"command/c dir"),
            (b"cmd,/c DiR", b"cmd/c dir"),
            (b"\"command\" /c DiR", b"command/c dir"),
            (b"a  \t;, b", b"a b"),
            (b"a ^/b", b"a/b"),
            (b"a (b)", b"a(b)"),
            (b"a ,(b", b"a(b"),
            (b" /x", b"/x"),
            (b"a \"b", b"a b"),
            (b"a\x0bb\x0cc", b"a\x0bb\x0cc"),
            (b"\xc3\x89X", b"\xc3\x89x"),
            (b"end ", b"end "),
            (b"end  ", b"end "),
        ];
        for (input, want) in cases {
            assert_eq!(&*cmd_line(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(cmd_line(b"cat/etc/passwd x"), Cow::Borrowed(_)));
        assert!(matches!(cmd_line(b"ls -la"), Cow::Borrowed(_)));
        assert!(matches!(cmd_line(b"ls /tmp"), Cow::Owned(_)));
    }
}
