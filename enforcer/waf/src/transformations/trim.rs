//! `t:trim`, `t:trimLeft` and `t:trimRight`: strip leading/trailing
//! whitespace.

use std::borrow::Cow;

use super::is_c_space;

fn strip_left(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(input.len());
    &input[start..]
}

fn strip_right(input: &[u8]) -> &[u8] {
    let end = input
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(0, |i| i + 1);
    &input[..end]
}

/// `t:trimLeft`: removes leading whitespace (space, `\t`, `\n`, `\v`,
/// `\f`, `\r`). Always borrows (the result is a sub-slice). Same in
/// ModSecurity and Coraza; NBSP is not whitespace here.
pub fn trim_left(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(strip_left(input))
}

/// `t:trimRight`: removes trailing whitespace (as `trimLeft`). Always
/// borrows.
pub fn trim_right(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(strip_right(input))
}

/// `t:trim`: removes leading and trailing whitespace (as `trimLeft`).
/// Always borrows.
pub fn trim(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(strip_left(strip_right(input)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        /// (input, trim, trimLeft, trimRight)
        type Case = (&'static [u8], &'static [u8], &'static [u8], &'static [u8]);
        let cases: &[Case] = &[
            (b"", b"", b"", b""),
            (b"TestCase", b"TestCase", b"TestCase", b"TestCase"),
            (
                b"    TestCase    ",
                b"TestCase",
                b"TestCase    ",
                b"    TestCase",
            ),
            (
                b" \t   Test \0 Case \t  \t   \r\n  ",
                b"Test \0 Case",
                b"Test \0 Case \t  \t   \r\n  ",
                b" \t   Test \0 Case",
            ),
            (b"\x0b\x0cx\x0b\x0c", b"x", b"x\x0b\x0c", b"\x0b\x0cx"),
            (b"\xa0x\xa0", b"\xa0x\xa0", b"\xa0x\xa0", b"\xa0x\xa0"),
            (b"\0 x \0", b"\0 x \0", b"\0 x \0", b"\0 x \0"),
            (b" \t\r\n", b"", b"", b""),
        ];
        for (input, both, left, right) in cases {
            assert_eq!(&*trim(input), *both, "trim {input:?}");
            assert_eq!(&*trim_left(input), *left, "trimLeft {input:?}");
            assert_eq!(&*trim_right(input), *right, "trimRight {input:?}");
        }
    }
}
