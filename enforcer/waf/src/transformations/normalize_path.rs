//! `t:normalizePath` and `t:normalizePathWin`: path normalisation.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// ModSecurity's `normalize_path_inplace`, on a private copy of the input.
///
/// Indices are signed because ModSecurity moves its write cursor three
/// bytes back on a back-reference before clamping it to the start.
fn normalize(buf: &mut Vec<u8>, win: bool) {
    if buf.is_empty() {
        return;
    }
    let is_slash = |b: u8| b == b'/' || (win && b == b'\\');
    let end = buf.len() - 1;
    let relative = !is_slash(buf[0]);
    let trailing = is_slash(buf[end]);
    let mut src = 0usize;
    let mut dst: isize = 0;
    let mut hit_root = false;
    let mut done = false;

    while !done && src <= end && dst <= end as isize {
        if win {
            if buf[src] == b'\\' {
                buf[src] = b'/';
            }
            if src < end && buf[src + 1] == b'\\' {
                buf[src + 1] = b'/';
            }
        }

        // Normalise only at the end of a segment (or of the input).
        let mut normalize_segment = true;
        if src == end {
            done = true;
        } else if buf[src + 1] != b'/' {
            normalize_segment = false;
        }

        if normalize_segment {
            if src != end && buf[src] == b'/' {
                // Empty segment: the copy below collapses the slashes.
            } else if buf[src] == b'.' {
                if dst > 0 && buf[(dst - 1) as usize] == b'.' {
                    // Back-reference.
                    if relative && (hit_root || dst - 2 <= 0) {
                        hit_root = true;
                    } else {
                        // Remove the back-reference and the previous segment.
                        dst -= 3;
                        while dst > 0 && buf[dst as usize] != b'/' {
                            dst -= 1;
                        }
                        if dst <= 0 {
                            hit_root = true;
                            dst = 0;
                            // Keep the root slash of an absolute path.
                            if !relative && src == end {
                                dst += 1;
                            }
                        }
                        if done {
                            continue;
                        }
                        src += 1;
                    }
                } else if dst == 0 {
                    // Relative self-reference: drop it.
                    if done {
                        continue;
                    }
                    src += 1;
                } else if buf[(dst - 1) as usize] == b'/' {
                    // Self-reference: drop it.
                    if done {
                        continue;
                    }
                    dst -= 1;
                    src += 1;
                }
            } else if dst > 0 {
                // A regular segment.
                hit_root = false;
            }
        }

        // Copy the byte, collapsing runs of slashes.
        if buf[src] == b'/' {
            while src < end && is_slash(buf[src + 1]) {
                src += 1;
            }
            // A relative path does not start with a slash.
            if relative && dst == 0 {
                src += 1;
                continue;
            }
        }
        buf[dst as usize] = buf[src];
        dst += 1;
        src += 1;
    }

    if !trailing && dst > 0 && buf[(dst - 1) as usize] == b'/' {
        dst -= 1;
    }
    buf.truncate(dst.max(0) as usize);
}

fn normalize_cow(input: &[u8], win: bool) -> Cow<'_, [u8]> {
    let may_change =
        memchr2(b'/', b'.', input).is_some() || (win && memchr(b'\\', input).is_some());
    if !may_change {
        return Cow::Borrowed(input);
    }
    let mut buf = input.to_vec();
    normalize(&mut buf, win);
    if buf == input {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(buf)
    }
}

/// `t:normalizePath` (alias `t:normalisePath`): removes `./` self
/// references, resolves `../` back references, and collapses repeated
/// slashes, ModSecurity's way:
/// - a relative path that backs up past its start keeps the `..`
///   (`dir/../../foo` gives `../foo`); an absolute one stops at `/`
///   (`/../etc/passwd` gives `/etc/passwd`);
/// - a trailing slash is kept only when the input had one, and that rule
///   also removes the root slash when an absolute path backs up to it
///   (`/a/..` gives the empty string, `/a/../` gives `/`);
/// - `.` alone gives the empty string.
///
/// Coraza uses Go's `filepath.Clean`, which agrees on ordinary paths but not
/// on ModSecurity's corner cases (here, as in ModSecurity, a `..` glued to
/// a name, as in `ab..`, is still treated as a back-reference and gives the
/// empty string).
pub fn normalize_path(input: &[u8]) -> Cow<'_, [u8]> {
    normalize_cow(input, false)
}

/// `t:normalizePathWin` (alias `t:normalisePathWin`): like
/// `normalizePath`, after turning every backslash into a forward slash
/// (`\foo\..\bar` gives `/bar`).
pub fn normalize_path_win(input: &[u8]) -> Cow<'_, [u8]> {
    normalize_cow(input, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"/foo/bar/baz", b"/foo/bar/baz"),
            (b"x", b"x"),
            (b".", b""),
            (b"./", b""),
            (b"./..", b".."),
            (b"../", b"../"),
            (b"../..", b"../.."),
            (b"/dir/foo//bar", b"/dir/foo/bar"),
            (b"dir/foo//bar/", b"dir/foo/bar/"),
            (b"dir/../foo", b"foo"),
            (b"dir/../../foo", b"../foo"),
            (b"dir/./.././../../foo/bar/..", b"../../foo"),
            (b"/dir/./subdir/../subsubdir/../subsubsubdir/../", b"/dir/"),
            (
                b"/./.././../../../../../../../\0/../etc/./passwd",
                b"/etc/passwd",
            ),
            // ModSecurity keeps the root slash, then drops it as a trailing
            // slash the input did not have.
            (b"/..", b""),
            (b"/../", b"/"),
            (b"/a/..", b""),
            (b"/a/b/..", b"/a"),
            (b"//", b"/"),
            (b"ab..", b""),
            (b"a\\..\\b", b"a\\..\\b"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &*normalize_path(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn table_win() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"\\foo\\bar\\baz", b"/foo/bar/baz"),
            (b".\\..", b".."),
            (
                b"dir\\\\.\\\\..\\\\.\\\\..\\\\..\\\\foo\\\\bar\\\\",
                b"../../foo/bar/",
            ),
            (
                b"\\.\\..\\.\\..\\..\\..\\..\\..\\..\\..\\\\0\\..\\etc\\.\\passwd",
                b"/etc/passwd",
            ),
            (b"a\\", b"a/"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &*normalize_path_win(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(normalize_path(b"/a/b/c"), Cow::Borrowed(_)));
        assert!(matches!(normalize_path(b"plain"), Cow::Borrowed(_)));
        assert!(matches!(normalize_path_win(b"/a/b"), Cow::Borrowed(_)));
    }
}
