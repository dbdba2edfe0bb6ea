//! `application/x-www-form-urlencoded` bodies and query strings (ARGS_GET, ARGS_POST).
//!
//! The input is split on the argument separator (`&` unless `SecArgumentSeparator` says
//! otherwise); each piece is split on its first `=` into a name and a value, and both are
//! decoded: `+` becomes a space and `%XX` (two hex digits, either case) becomes that byte.
//! A `%` that is not followed by two hex digits is kept literally and sets
//! [`Parsed::invalid_encoding`] (URLENCODED_ERROR). A piece without `=` is a name with an
//! empty value; `=v` is an empty name with value `v`; `a=b=c` is name `a`, value `b=c`.
//! Parsing never fails.
//!
//! Empty pieces behave as in ModSecurity v3.0.15 (`Transaction::extractArguments`
//! splits with `std::getline`, verified against libmodsecurity 3.0.15): an empty piece
//! at the start or between two separators (`&a=1`, `a=1&&b=2`, `&`) is an argument
//! with an empty name and an empty value; the piece after a trailing separator (`a=1&`)
//! does not count, and an empty input has no arguments.
//!
//! # Differences from ModSecurity v3
//!
//! - ModSecurity resets its invalid-encoding counter before decoding the value, so an
//!   invalid `%` in a *name* alone does not set URLENCODED_ERROR (`x%zz=1` leaves it at
//!   0). We flag invalid encodings in names and values alike; neither the CRS nor the
//!   recommended ModSecurity configuration reads URLENCODED_ERROR.
//!
//! Everything else (decoding rules, the handling of `%` near the end of the input, the
//! first-`=` split, the order of the pairs) is the same; `tests/body_modsec_reference.rs`
//! checks it against libmodsecurity 3.0.15.

use super::Pair;

/// Result of parsing an urlencoded string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Decoded (`+` is space, `%XX` decoded) name/value pairs in order.
    pub pairs: Vec<Pair>,
    /// Whether an invalid `%` encoding was seen (URLENCODED_ERROR).
    pub invalid_encoding: bool,
}

/// Splits `input` on `separator` (usually `&`) and decodes names and values as
/// ModSecurity does (a name without `=` has an empty value; an empty piece is an empty
/// name with an empty value, except after a trailing separator; see the module docs).
pub fn parse(input: &[u8], separator: u8) -> Parsed {
    let mut parsed = Parsed::default();
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == separator).collect();
    // `std::getline` yields no piece after a trailing separator (or for no input).
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    for piece in pieces {
        let (name, value) = match memchr::memchr(b'=', piece) {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &[][..]),
        };
        let (name, bad_name) = decode(name);
        let (value, bad_value) = decode(value);
        parsed.invalid_encoding |= bad_name || bad_value;
        parsed.pairs.push((name, value));
    }
    parsed
}

/// Decodes one name or value: `+` to space, `%XX` to a byte, anything else as is.
///
/// Returns the decoded bytes and whether an invalid `%` sequence was kept literally.
pub fn decode(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut invalid = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => match (input.get(i + 1), input.get(i + 2)) {
                (Some(&h), Some(&l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    out.push(hex_value(h) << 4 | hex_value(l));
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    invalid = true;
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, invalid)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Input, expected pairs, expected invalid-encoding flag.
    type Case = (&'static str, &'static [(&'static str, &'static str)], bool);

    #[test]
    fn table() {
        let cases: &[Case] = &[
            ("", &[], false),
            ("a=1", &[("a", "1")], false),
            ("a=1&b=2", &[("a", "1"), ("b", "2")], false),
            ("a=1&&b=2", &[("a", "1"), ("", ""), ("b", "2")], false),
            ("&a=1&", &[("", ""), ("a", "1")], false),
            ("a=1&", &[("a", "1")], false),
            ("a=1&&", &[("a", "1"), ("", "")], false),
            ("&", &[("", "")], false),
            ("&&&", &[("", ""), ("", ""), ("", "")], false),
            ("a", &[("a", "")], false),
            ("a=", &[("a", "")], false),
            ("=v", &[("", "v")], false),
            ("=", &[("", "")], false),
            ("a=b=c", &[("a", "b=c")], false),
            ("a+b=c+d", &[("a b", "c d")], false),
            ("q=1%20union%20select", &[("q", "1 union select")], false),
            ("%41%4a%4A=%7e", &[("AJJ", "~")], false),
            ("a=%2", &[("a", "%2")], true),
            ("a=%", &[("a", "%")], true),
            ("a=%zz1", &[("a", "%zz1")], true),
            ("a=%%41", &[("a", "%A")], true),
            ("a%g=1", &[("a%g", "1")], true),
            ("a=%41", &[("a", "A")], false),
            ("a=%2B", &[("a", "+")], false),
            ("a=1;b=2", &[("a", "1;b=2")], false),
        ];
        for (input, expected, invalid) in cases {
            let got = parse(input.as_bytes(), b'&');
            assert_eq!(got.pairs, pairs(expected), "input {input:?}");
            assert_eq!(got.invalid_encoding, *invalid, "input {input:?}");
        }
    }

    #[test]
    fn custom_separator() {
        let got = parse(b"a=1;b=2&c", b';');
        assert_eq!(got.pairs, pairs(&[("a", "1"), ("b", "2&c")]));
    }

    #[test]
    fn decodes_to_arbitrary_bytes() {
        let got = parse(b"n=%00%ff%0d%0a", b'&');
        assert_eq!(
            got.pairs,
            vec![(b"n".to_vec(), vec![0, 0xff, b'\r', b'\n'])]
        );
        assert!(!got.invalid_encoding);
    }
}
