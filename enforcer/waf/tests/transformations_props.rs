//! Property tests for `palisade_waf::transformations`: no transformation
//! panics on any input, `Cow::Borrowed` means "unchanged", and encoders
//! round-trip through their decoders.

use std::borrow::Cow;

use palisade_waf::transformations::{self as tf, Transformation, ALL};
use proptest::prelude::*;

/// Bytes biased towards the characters the decoders care about.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    const SPECIAL: &[u8] =
        b"%uU+&#;xX\\/.*-<!>=0123aFf \t\n\r\x0b\x0c\0\"'^,(\xa0\xc2\xc3\xe2\xf0\xf5\x80\xbf\xff";
    let byte = prop_oneof![any::<u8>(), proptest::sample::select(SPECIAL)];
    proptest::collection::vec(byte, 0..96)
}

/// Transformations whose `Cow::Owned` result always differs from the input
/// (they only allocate when something actually changes).
const PRECISE: &[&str] = &[
    "lowercase",
    "uppercase",
    "urlDecode",
    "urlDecodeUni",
    "urlEncode",
    "htmlEntityDecode",
    "jsDecode",
    "cssDecode",
    "escapeSeqDecode",
    "cmdLine",
    "compressWhitespace",
    "removeWhitespace",
    "removeNulls",
    "replaceNulls",
    "replaceComments",
    "removeCommentsChar",
    "removeComments",
    "normalizePath",
    "normalizePathWin",
    "utf8toUnicode",
    "sqlHexDecode",
    "parityEven7bit",
    "parityOdd7bit",
    "parityZero7bit",
];

fn get(name: &str) -> Transformation {
    Transformation::from_name(name).unwrap_or_else(|| panic!("{name} is registered"))
}

/// A plain, unoptimised statement of ModSecurity's `cmdLine`.
fn reference_cmd_line(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut space = false;
    for &b in input {
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
    out
}

/// A plain statement of ModSecurity's `compressWhitespace`.
fn reference_compress_whitespace(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_space = false;
    for &b in input {
        if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out
}

fn check_all(input: &[u8]) -> Result<(), TestCaseError> {
    for t in ALL {
        let out = (t.apply)(input);
        if let Cow::Borrowed(b) = &out {
            if !t.name.starts_with("trim") {
                prop_assert_eq!(*b, input, "{} borrowed a different slice", t.name);
            }
        }
        if PRECISE.contains(&t.name) {
            if let Cow::Owned(o) = &out {
                prop_assert_ne!(
                    o.as_slice(),
                    input,
                    "{} allocated for an unchanged value",
                    t.name
                );
            }
        }
    }
    let len = (get("length").apply)(input).into_owned();
    prop_assert_eq!(len, input.len().to_string().into_bytes());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_all(&input)?;
    }

    #[test]
    fn interesting_bytes_never_panic(input in interesting_bytes()) {
        check_all(&input)?;
    }

    #[test]
    fn fast_paths_match_reference(input in interesting_bytes()) {
        prop_assert_eq!(tf::cmd_line(&input).into_owned(), reference_cmd_line(&input));
        prop_assert_eq!(
            tf::compress_whitespace(&input).into_owned(),
            reference_compress_whitespace(&input)
        );
    }

    #[test]
    fn encoders_round_trip(input in proptest::collection::vec(any::<u8>(), 0..128)) {
        let url = tf::url_encode(&input).into_owned();
        prop_assert_eq!(tf::url_decode(&url).into_owned(), input.clone());
        prop_assert_eq!(tf::url_decode_uni(&url).into_owned(), input.clone());
        let hex = tf::hex_encode(&input).into_owned();
        prop_assert_eq!(tf::hex_decode(&hex).into_owned(), input.clone());
        let b64 = tf::base64_encode(&input).into_owned();
        prop_assert_eq!(tf::base64_decode(&b64).into_owned(), input.clone());
        prop_assert_eq!(tf::base64_decode_ext(&b64).into_owned(), input);
    }

    #[test]
    fn trims_are_consistent(input in interesting_bytes()) {
        let both = tf::trim(&input).into_owned();
        let right = tf::trim_right(&input).into_owned();
        prop_assert_eq!(both, tf::trim_left(&right).into_owned());
    }

    #[test]
    fn idempotent_where_modsecurity_is(input in interesting_bytes()) {
        for name in ["lowercase", "uppercase", "removeNulls", "replaceNulls", "removeWhitespace",
                     "compressWhitespace", "trim", "parityZero7bit"] {
            let f = get(name).apply;
            let once = f(&input).into_owned();
            let twice = f(&once).into_owned();
            prop_assert_eq!(twice, once, "{} is not idempotent", name);
        }
    }
}
