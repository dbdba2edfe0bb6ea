//! Substring search for the short inputs a WAF sees per value.
//!
//! `memchr::memmem::find` builds a searcher (Two-Way and SIMD tables) on
//! every call, which costs more than the search itself when the haystack is
//! a header name or an operator argument of a few dozen bytes. [`find`]
//! scans for the needle's first byte with `memchr` and compares there, and
//! hands long haystacks to `memmem`.

/// Haystacks at least this long go to `memchr::memmem`.
const SHORT_HAYSTACK: usize = 256;

/// The first position of `needle` in `haystack` (`Some(0)` for an empty
/// needle), as `memchr::memmem::find`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = match needle.split_first() {
        Some(split) => split,
        None => return Some(0),
    };
    if rest.is_empty() {
        return memchr::memchr(first, haystack);
    }
    if haystack.len() >= SHORT_HAYSTACK {
        return memchr::memmem::find(haystack, needle);
    }
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last_start {
        let at = from + memchr::memchr(first, &haystack[from..=last_start])?;
        if haystack[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        for (haystack, needle, want) in [
            ("", "", Some(0)),
            ("abc", "", Some(0)),
            ("", "a", None),
            ("abc", "c", Some(2)),
            ("abc", "bc", Some(1)),
            ("abc", "abcd", None),
            ("aaab", "aab", Some(1)),
            ("GET HEAD POST", "HEAD", Some(4)),
            ("GET HEAD POST", "head", None),
            ("/*x*/", "*/", Some(3)),
            ("abab", "bab", Some(1)),
        ] {
            assert_eq!(
                find(haystack.as_bytes(), needle.as_bytes()),
                want,
                "{haystack:?} {needle:?}"
            );
        }
        let long = "x".repeat(300) + "needle";
        assert_eq!(find(long.as_bytes(), b"needle"), Some(300));
    }

    proptest! {
        /// Same answer as memmem on short and long haystacks over a small
        /// alphabet (so that partial matches are frequent).
        #[test]
        fn same_as_memmem(
            haystack in proptest::collection::vec(0u8..4, 0..400),
            needle in proptest::collection::vec(0u8..4, 0..6),
        ) {
            prop_assert_eq!(
                find(&haystack, &needle),
                memchr::memmem::find(&haystack, &needle)
            );
        }
    }
}
