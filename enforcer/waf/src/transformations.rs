//! Transformations (`t:name`): pure functions from bytes to bytes.
//!
//! Each is `fn(&[u8]) -> Cow<[u8]>` and borrows its input when it changes
//! nothing, so a chain that finds nothing to do allocates nothing. Most
//! functions first scan for the first byte that could change (with `memchr`
//! or a byte test), return [`Cow::Borrowed`] when there is none, and only
//! then copy the untouched prefix and decode the rest.
//!
//! Semantics follow ModSecurity v3 (libmodsecurity 3.0.x,
//! `src/actions/transformations/*.cc`), including its quirks; each function
//! documents its edge cases and where Coraza behaves differently. Names are
//! looked up case-insensitively by [`Transformation::from_name`].

use std::borrow::Cow;

mod base64_decode;
mod base64_encode;
mod cmd_line;
mod compress_whitespace;
mod css_decode;
mod escape_seq_decode;
mod hash;
mod hex_decode;
mod hex_encode;
mod html_entity_decode;
mod js_decode;
mod length;
mod lowercase;
mod normalize_path;
mod parity;
mod remove_comments;
mod remove_comments_char;
mod remove_nulls;
mod remove_whitespace;
mod replace_comments;
mod replace_nulls;
mod sql_hex_decode;
mod trim;
mod uppercase;
mod url_decode;
mod url_decode_uni;
mod url_encode;
mod utf8_to_unicode;

pub use base64_decode::{base64_decode, base64_decode_ext};
pub use base64_encode::base64_encode;
pub use cmd_line::cmd_line;
pub use compress_whitespace::compress_whitespace;
pub use css_decode::css_decode;
pub use escape_seq_decode::escape_seq_decode;
pub use hash::{md5, sha1};
pub use hex_decode::hex_decode;
pub use hex_encode::hex_encode;
pub use html_entity_decode::html_entity_decode;
pub use js_decode::js_decode;
pub use length::length;
pub use lowercase::lowercase;
pub use normalize_path::{normalize_path, normalize_path_win};
pub use parity::{parity_even_7bit, parity_odd_7bit, parity_zero_7bit};
pub use remove_comments::remove_comments;
pub use remove_comments_char::remove_comments_char;
pub use remove_nulls::remove_nulls;
pub use remove_whitespace::remove_whitespace;
pub use replace_comments::replace_comments;
pub use replace_nulls::replace_nulls;
pub use sql_hex_decode::sql_hex_decode;
pub use trim::{trim, trim_left, trim_right};
pub use uppercase::uppercase;
pub use url_decode::url_decode;
pub use url_decode_uni::url_decode_uni;
pub use url_encode::url_encode;
pub use utf8_to_unicode::utf8_to_unicode;

/// A transformation function.
pub type TransformFn = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// A named transformation (`t:none` is not one: the compiler handles it by
/// clearing the chain).
#[derive(Clone, Copy)]
pub struct Transformation {
    /// Canonical lowercase-first name as SecLang writes it (e.g. `urlDecodeUni`).
    pub name: &'static str,
    /// The function.
    pub apply: TransformFn,
}

impl std::fmt::Debug for Transformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Transformation {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

const fn t(name: &'static str, apply: TransformFn) -> Transformation {
    Transformation { name, apply }
}

/// Every transformation, under its canonical name. Spelling aliases
/// (`normalisePath`, `normalisePathWin`) are accepted by
/// [`Transformation::from_name`] but not listed here.
pub const ALL: &[Transformation] = &[
    t("base64Decode", base64_decode),
    t("base64DecodeExt", base64_decode_ext),
    t("base64Encode", base64_encode),
    t("cmdLine", cmd_line),
    t("compressWhitespace", compress_whitespace),
    t("cssDecode", css_decode),
    t("escapeSeqDecode", escape_seq_decode),
    t("hexDecode", hex_decode),
    t("hexEncode", hex_encode),
    t("htmlEntityDecode", html_entity_decode),
    t("jsDecode", js_decode),
    t("length", length),
    t("lowercase", lowercase),
    t("md5", md5),
    t("normalizePath", normalize_path),
    t("normalizePathWin", normalize_path_win),
    t("parityEven7bit", parity_even_7bit),
    t("parityOdd7bit", parity_odd_7bit),
    t("parityZero7bit", parity_zero_7bit),
    t("removeComments", remove_comments),
    t("removeCommentsChar", remove_comments_char),
    t("removeNulls", remove_nulls),
    t("removeWhitespace", remove_whitespace),
    t("replaceComments", replace_comments),
    t("replaceNulls", replace_nulls),
    t("sha1", sha1),
    t("sqlHexDecode", sql_hex_decode),
    t("trim", trim),
    t("trimLeft", trim_left),
    t("trimRight", trim_right),
    t("uppercase", uppercase),
    t("urlDecode", url_decode),
    t("urlDecodeUni", url_decode_uni),
    t("urlEncode", url_encode),
    t("utf8toUnicode", utf8_to_unicode),
];

/// Alternative spellings: (alias, canonical name).
const ALIASES: &[(&str, &str)] = &[
    ("normalisePath", "normalizePath"),
    ("normalisePathWin", "normalizePathWin"),
];

impl Transformation {
    /// Looks up a transformation by name, case-insensitively
    /// (`lowercase`, `urlDecodeUni`, `base64decode`, ...). The British
    /// spellings `normalisePath` / `normalisePathWin` resolve to
    /// `normalizePath` / `normalizePathWin`. `none` is not found here.
    pub fn from_name(name: &str) -> Option<Transformation> {
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map_or(name, |(_, canonical)| canonical);
        ALL.iter()
            .find(|t| t.name.eq_ignore_ascii_case(canonical))
            .copied()
    }
}

/// Whether `b` is an ASCII hex digit (ModSecurity's `VALID_HEX`).
#[inline]
fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// ModSecurity's `xsingle2c`: the value of one hex digit, computed without
/// validation (non-hex bytes give wrapped garbage, as in ModSecurity).
#[inline]
fn xsingle(b: u8) -> u8 {
    if b >= b'A' {
        (b & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        b.wrapping_sub(b'0')
    }
}

/// ModSecurity's `x2c`: two hex digits to a byte (no validation).
#[inline]
fn x2c(hi: u8, lo: u8) -> u8 {
    xsingle(hi).wrapping_mul(16).wrapping_add(xsingle(lo))
}

/// C `isspace` in the "C" locale: space, `\t`, `\n`, `\v`, `\f`, `\r`.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The output buffer for a transformation that found its first change at
/// `at`: the unchanged prefix, with room for the rest.
#[inline]
fn prefix_vec(input: &[u8], at: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..at]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        for t in ALL {
            let upper = t.name.to_ascii_uppercase();
            let lower = t.name.to_ascii_lowercase();
            assert_eq!(Transformation::from_name(&upper), Some(*t));
            assert_eq!(Transformation::from_name(&lower), Some(*t));
            assert_eq!(
                Transformation::from_name(t.name).map(|t| t.name),
                Some(t.name)
            );
        }
        assert_eq!(
            Transformation::from_name("base64decode").map(|t| t.name),
            Some("base64Decode")
        );
    }

    #[test]
    fn aliases_and_unknown_names() {
        assert_eq!(
            Transformation::from_name("normalisePath").map(|t| t.name),
            Some("normalizePath")
        );
        assert_eq!(
            Transformation::from_name("NORMALISEPATHWIN").map(|t| t.name),
            Some("normalizePathWin")
        );
        assert_eq!(Transformation::from_name("none"), None);
        assert_eq!(Transformation::from_name(""), None);
        assert_eq!(Transformation::from_name("alert"), None);
        assert_eq!(Transformation::from_name("urlDecodeUnii"), None);
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert!(!a.name.eq_ignore_ascii_case(b.name), "{} twice", a.name);
            }
        }
    }

    #[test]
    fn x2c_matches_modsecurity_arithmetic() {
        assert_eq!(x2c(b'4', b'1'), 0x41);
        assert_eq!(x2c(b'f', b'F'), 0xff);
        assert_eq!(x2c(b'0', b'z'), b'#');
    }
}
