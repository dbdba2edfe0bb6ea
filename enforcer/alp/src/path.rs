//! Request path normalisation for HTTP policy matching, and segment-aware
//! prefix matching.
//!
//! [`normalize`] turns the raw request target Envoy saw into the one canonical
//! path that policy `exact`/`prefix` matches compare against. The rules, in the
//! order they apply:
//!
//! 1. The path must be in origin form (start with `/`); `*` and absolute URIs
//!    are rejected ([`PathError::NotOriginForm`]).
//! 2. The query (from the first `?`) and fragment (from the first `#`) are
//!    removed.
//! 3. Path parameters are dropped: in every segment, everything from the first
//!    literal `;` to the end of the segment goes (`/a;jsessionid=1/b` is
//!    `/a/b`, and `/..;/` is `/../`). This happens before decoding, so an
//!    encoded `%3B` stays part of the segment as a literal `;`.
//! 4. The path is percent-decoded exactly once. A `%` not followed by two hex
//!    digits is rejected ([`PathError::BadEscape`]).
//! 5. Encoded `/` (`%2F`), `.` (`%2E`), `\` (`%5C`) and NUL (`%00`) are
//!    rejected ([`PathError::EncodedSeparator`]), and so are those escapes still
//!    present after the single decode (`%252F` decodes to `%2F`): servers behind
//!    the proxy disagree about what they mean, which is how allow-lists are
//!    bypassed. A literal NUL, or a decoded result that is not UTF-8, is also
//!    rejected.
//! 6. Empty segments are merged (`//a` is `/a`), `.` segments removed and `..`
//!    segments remove the previous segment (never going above the root, as
//!    RFC 3986 section 5.2.4 says). A trailing `/`, or a final `.` or `..`
//!    segment, leaves a trailing `/` (`/a/b/..` is `/a/`).
//!
//! The result always starts with `/`.

use std::fmt;

/// Longest raw path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 64 * 1024;

/// Why a path cannot be normalised (the request should be refused).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path is not in origin form (must start with `/`)")]
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape at offset {0}")]
    BadEscape(usize),
    /// An encoded `/`, `.`, `\` or NUL (possibly double-encoded).
    #[error("encoded {0} in path")]
    EncodedSeparator(EncodedChar),
    /// A NUL byte in the path.
    #[error("nul byte in path")]
    Nul,
    /// The decoded path is not valid UTF-8.
    #[error("decoded path is not valid utf-8")]
    InvalidUtf8,
    /// The path is longer than [`MAX_PATH_LEN`].
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

/// The characters that must not arrive percent-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodedChar {
    /// `%2F`
    Slash,
    /// `%2E`
    Dot,
    /// `%5C`
    Backslash,
    /// `%00`
    Nul,
}

impl fmt::Display for EncodedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodedChar::Slash => "`/`",
            EncodedChar::Dot => "`.`",
            EncodedChar::Backslash => "`\\`",
            EncodedChar::Nul => "nul",
        })
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn forbidden_escape(byte: u8) -> Option<EncodedChar> {
    match byte {
        b'/' => Some(EncodedChar::Slash),
        b'.' => Some(EncodedChar::Dot),
        b'\\' => Some(EncodedChar::Backslash),
        0 => Some(EncodedChar::Nul),
        _ => None,
    }
}

/// Percent-decodes once, refusing malformed escapes and escapes of the
/// forbidden characters.
fn decode(input: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex_value);
            let lo = input.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    let byte = hi << 4 | lo;
                    if let Some(c) = forbidden_escape(byte) {
                        return Err(PathError::EncodedSeparator(c));
                    }
                    out.push(byte);
                    i += 3;
                }
                _ => return Err(PathError::BadEscape(i)),
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// Errors when an escape of a forbidden character survives the single decode.
fn check_double_encoding(decoded: &[u8]) -> Result<(), PathError> {
    for (i, b) in decoded.iter().enumerate() {
        if *b == 0 {
            return Err(PathError::Nul);
        }
        if *b == b'%' {
            let hi = decoded.get(i + 1).copied().and_then(hex_value);
            let lo = decoded.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                if let Some(c) = forbidden_escape(hi << 4 | lo) {
                    return Err(PathError::EncodedSeparator(c));
                }
            }
        }
    }
    Ok(())
}

/// Normalises a raw request path (see the module docs for the rules).
///
/// ```
/// use palisade_alp::path::{normalize, PathError};
///
/// assert_eq!(normalize("/a/./b/../c;v=1?q=1#f").unwrap(), "/a/c");
/// assert_eq!(normalize("/robots.txt/../.git/HEAD").unwrap(), "/.git/HEAD");
/// assert!(matches!(normalize("/%2e%2e/etc/passwd"), Err(PathError::EncodedSeparator(_))));
/// ```
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let path = &raw[..end];
    if path.contains('\0') {
        return Err(PathError::Nul);
    }

    // Rule 3: drop `;params` per segment, on the raw text.
    let mut stripped = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            stripped.push('/');
        }
        stripped.push_str(segment.split(';').next().unwrap_or(""));
    }

    // Rules 4 and 5.
    let decoded = decode(stripped.as_bytes())?;
    check_double_encoding(&decoded)?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;

    // Rule 6.
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Whether `prefix` matches the normalised `path` on a segment boundary.
///
/// `/pub` matches `/pub` and `/pub/x` but not `/public`; a prefix that ends
/// in `/` (such as `/` or `/pub/`) matches every path that starts with it.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a", "/a"),
            ("/a/", "/a/"),
            ("/a/b?x=1", "/a/b"),
            ("/a/b#frag", "/a/b"),
            ("/a/b?x=/../../c#y", "/a/b"),
            ("/a;x=1/b;y", "/a/b"),
            ("/..;/admin", "/admin"),
            ("/a/..;x/b", "/b"),
            ("/a%3Bb", "/a;b"),
            // Found by the property test: decoded once, so an encoded `;`
            // stays (a second pass would strip it as a parameter).
            ("/%3B", "/;"),
            ("/;", "/"),
            ("/a%20b", "/a b"),
            ("/caf%C3%A9", "/café"),
            ("/a/./b", "/a/b"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/robots.txt/../.git/HEAD", "/.git/HEAD"),
            ("//a//b", "/a/b"),
            ("//", "/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/...", "/..."),
            ("/.git/HEAD", "/.git/HEAD"),
            ("/a%25b", "/a%b"),
            ("/a%2541", "/a%41"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(*want), "{raw}");
        }
    }

    #[test]
    fn rejects() {
        use EncodedChar::*;
        let cases: &[(&str, PathError)] = &[
            ("", PathError::NotOriginForm),
            ("*", PathError::NotOriginForm),
            ("http://x/a", PathError::NotOriginForm),
            ("a/b", PathError::NotOriginForm),
            ("/%2e%2e/.git/HEAD", PathError::EncodedSeparator(Dot)),
            ("/%2E", PathError::EncodedSeparator(Dot)),
            ("/a%2Fb", PathError::EncodedSeparator(Slash)),
            ("/a%2fb", PathError::EncodedSeparator(Slash)),
            ("/a%5Cb", PathError::EncodedSeparator(Backslash)),
            ("/a%00b", PathError::EncodedSeparator(Nul)),
            ("/a%252Fb", PathError::EncodedSeparator(Slash)),
            ("/a%252e%252e/", PathError::EncodedSeparator(Dot)),
            ("/a%255c", PathError::EncodedSeparator(Backslash)),
            ("/a%2500", PathError::EncodedSeparator(Nul)),
            ("/a%zz", PathError::BadEscape(2)),
            ("/a%4", PathError::BadEscape(2)),
            ("/a%", PathError::BadEscape(2)),
            ("/a\0b", PathError::Nul),
            ("/a%C3%28", PathError::InvalidUtf8),
            ("/a%FF", PathError::InvalidUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_ref(), Err(want), "{raw:?}");
        }
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in ["/a/b/../c/", "/a;x/./b", "//x//y/..", "/caf%C3%A9/x"] {
            let once = normalize(raw).expect("valid");
            assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{raw}");
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let cases: &[(&str, &str, bool)] = &[
            ("/pub", "/pub", true),
            ("/pub", "/pub/", true),
            ("/pub", "/pub/x", true),
            ("/pub", "/public", false),
            ("/pub", "/pu", false),
            ("/pub/", "/pub/x", true),
            ("/pub/", "/pub", false),
            ("/", "/anything", true),
            ("/", "/", true),
            ("/a/b", "/a/b/c/d", true),
            ("/a/b", "/a/bc", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(prefix_matches(prefix, path), *want, "{prefix} vs {path}");
        }
    }
}
