//! `@validateUtf8Encoding`: flags input that is not valid UTF-8.

use super::{Operator, OperatorContext};

/// `@validateUtf8Encoding`: matches when the input is not well-formed UTF-8.
///
/// SecLang: `SecRule ARGS "@validateUtf8Encoding" "id:920250,..."`.
/// Follows ModSecurity v3's checker: a truncated sequence, a bad
/// continuation byte, a byte that cannot start a character (`0x80..=0xBF`,
/// `0xF5..=0xFF`), an overlong form (including `0xC0`/`0xC1` leads), or a UTF-16 surrogate (`U+D800..=U+DFFF`) matches.
/// Like ModSecurity (and unlike Rust's `str::from_utf8`), four-byte
/// sequences led by `0xF4` above `U+10FFFF` are accepted. Coraza uses Go's
/// `utf8.Valid`, which rejects those too. The empty input does not match.
#[derive(Debug, Default)]
pub struct ValidateUtf8Encoding;

impl ValidateUtf8Encoding {
    /// Builds the operator (it takes no argument).
    pub fn new() -> ValidateUtf8Encoding {
        ValidateUtf8Encoding
    }
}

fn is_continuation(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b & 0xC0 == 0x80)
}

/// Length of the valid character at the start of `s`, or `None` if invalid.
fn char_len(s: &[u8]) -> Option<usize> {
    let c = *s.first()?;
    let (len, init) = match c {
        0x00..=0x7F => return Some(1),
        _ if c & 0xE0 == 0xC0 => (2, u32::from(c & 0x1F)),
        _ if c & 0xF0 == 0xE0 => (3, u32::from(c & 0x0F)),
        _ if c & 0xF8 == 0xF0 && c < 0xF5 => (4, u32::from(c & 0x07)),
        _ => return None,
    };
    if s.len() < len {
        return None;
    }
    let mut code = init;
    for i in 1..len {
        if !is_continuation(s.get(i)) {
            return None;
        }
        code = (code << 6) | u32::from(s[i] & 0x3F);
    }
    let overlong = match len {
        2 => code < 0x80,
        3 => code < 0x800,
        _ => code < 0x1_0000,
    };
    if overlong || (0xD800..=0xDFFF).contains(&code) {
        return None;
    }
    Some(len)
}

/// Offset of the first invalid sequence, if any.
pub(crate) fn first_invalid_utf8(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < input.len() {
        // Fast path over ASCII runs.
        let ascii = input[i..].iter().take_while(|b| b.is_ascii()).count();
        i += ascii;
        if i >= input.len() {
            break;
        }
        match char_len(&input[i..]) {
            Some(len) => i += len,
            None => return Some(i),
        }
    }
    None
}

impl Operator for ValidateUtf8Encoding {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        match first_invalid_utf8(input) {
            Some(at) => {
                let end = input.len().min(at + 4);
                cx.set_matched_data(&input[at..end]);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            (&b""[..], false),
            (b"plain ascii", false),
            ("h\u{e9}llo \u{20ac} \u{1f600}".as_bytes(), false),
            (b"\xc3", true),
            (b"\xc3\x28", true),
            (b"\xc0\xaf", true),
            (b"\xc1\xbf", true),
            (b"\xe0\x80\xaf", true),
            (b"\xf0\x80\x80\xaf", true),
            (b"\xed\xa0\x80", true),
            (b"\xf5\x80\x80\x80", true),
            (b"\xff", true),
            (b"\x80", true),
            (b"ok\xe2\x82", true),
            (b"\xf4\x8f\xbf\xbf", false),
            // Above U+10FFFF but led by 0xF4: accepted, as ModSecurity does.
            (b"\xf4\x90\x80\x80", false),
        ] {
            let op = ValidateUtf8Encoding::new();
            assert_eq!(
                op.evaluate(&mut FakeCx::default(), input),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn agrees_with_std_except_above_max() {
        let samples: &[&[u8]] = &[b"a\xce\xbbb", b"\xe2\x28\xa1", b"\xf0\x9f\x98", b"\xc2\xa0"];
        for s in samples {
            assert_eq!(
                first_invalid_utf8(s).is_some(),
                std::str::from_utf8(s).is_err()
            );
        }
    }
}
