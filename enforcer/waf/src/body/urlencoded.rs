//! `application/x-www-form-urlencoded` bodies and query strings.

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
/// ModSecurity does (a name without `=` has an empty value; empty pieces are skipped).
pub fn parse(input: &[u8], separator: u8) -> Parsed {
    let _ = (input, separator);
    todo!("urlencoded::parse")
}
