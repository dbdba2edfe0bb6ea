//! `@detectSQLi`: SQL injection detection with libinjection (the
//! `libinjectionrs` port).

use std::sync::OnceLock;

use libinjectionrs::sqli::sqli_data::SQL_KEYWORDS;
use libinjectionrs::{SqliFlags, SqliState};
use rustc_hash::FxHashSet;

use super::{Operator, OperatorContext};

/// `@detectSQLi`: matches when libinjection classifies the input as SQL
/// injection.
///
/// SecLang: `SecRule ARGS "@detectSQLi" "id:942100,capture,..."`. As in
/// ModSecurity v3, with `capture` `TX:0` is set to the libinjection
/// fingerprint (e.g. `s&sos`), which is also recorded as matched data.
/// (Coraza sets `TX:0` to the fingerprint even without `capture`.)
///
/// The detector is `libinjectionrs` 0.1, a Rust port of the C libinjection
/// that ModSecurity v3 bundles. Measured against that C library (built from
/// the commit ModSecurity pins) on ~3,900 inputs taken from the CRS
/// regression tests plus a table of SQLi forms, the port agreed everywhere
/// except one bug, which [`detect_sqli`] works around: the port compares the
/// `INTO` of `INTO OUTFILE`/`INTO DUMPFILE` case-sensitively, so
/// `1' into dumpfile '/tmp/x` (C: fingerprint `sks`) was missed. Forms the
/// C library itself does not flag (`1 LOCK IN SHARE MODE`, `1 FOR UPDATE`,
/// `admin' #`, `1 xor 1`) are left to the CRS regex rules, as under
/// ModSecurity. Details: `docs/libinjection.md`.
#[derive(Debug, Default)]
pub struct DetectSqli;

impl DetectSqli {
    /// Builds the operator (it takes no argument). Builds the fast path's
    /// keyword set now, at rule-compile time, rather than on the first
    /// request.
    pub fn new() -> DetectSqli {
        non_bareword_keywords();
        DetectSqli
    }
}

/// A libinjection SQLi fingerprint: up to five token-type letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliFingerprint {
    bytes: [u8; 8],
    len: usize,
}

impl SqliFingerprint {
    fn from_state(raw: [u8; 8]) -> SqliFingerprint {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        SqliFingerprint { bytes: raw, len }
    }

    /// The fingerprint's letters (`1UE`, `s&sos`, ...).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Runs libinjection's SQLi check (all quote contexts and SQL dialects, as
/// C `libinjection_sqli` does) and returns the fingerprint when it detects
/// an injection.
///
/// Works around the one divergence from C measured in `libinjectionrs`
/// 0.1.1: its three-token whitelist tests the keyword `INTO` (of `INTO
/// OUTFILE` / `INTO DUMPFILE`) case-sensitively where C uses a
/// case-insensitive compare. When the port finds nothing and the input holds
/// `into` in another case, the check is repeated on a copy with those
/// occurrences uppercased; since libinjection treats keywords
/// case-insensitively and ignores the content of strings and comments, C
/// gives the same answer for both spellings.
///
/// Inputs for which [`provably_not_sqli`] holds are answered without running
/// libinjection.
pub fn detect_sqli(input: &[u8]) -> Option<SqliFingerprint> {
    if provably_not_sqli(input) {
        return None;
    }
    if let Some(found) = run_libinjection(input) {
        return Some(found);
    }
    let mixed_case_into = input
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"into") && w != b"INTO");
    if !mixed_case_into {
        return None;
    }
    let mut upper = input.to_vec();
    let mut i = 0;
    while i + 4 <= upper.len() {
        if upper[i..i + 4].eq_ignore_ascii_case(b"into") {
            upper[i..i + 4].copy_from_slice(b"INTO");
            i += 4;
        } else {
            i += 1;
        }
    }
    run_libinjection(&upper)
}

/// Whether libinjection (`libinjectionrs` 0.1.1, all quote contexts and SQL
/// dialects) provably finds no SQL injection in `input`, so [`detect_sqli`]
/// can answer "not SQLi" without tokenizing. It holds for three classes,
/// which cover most argument and cookie names and values of benign traffic:
///
/// 1. *tokens*: every byte is in `[A-Za-z0-9_]` (`id`, `99055`, `a1b2_c3`,
///    and the empty input);
/// 2. *dotted names*: the first byte is in `[A-Za-z_]`, every byte is in
///    `[A-Za-z0-9_.]`, and no prefix ending just before a `.` is a keyword
///    (`json.order.items.array_0.sku`);
/// 3. *phrases*: up to six words of `[A-Za-z_][A-Za-z0-9_]*` separated by
///    spaces (` `), where no word is a keyword and no two neighbours joined
///    by one space are a keyword, if that text is shorter than 32 bytes
///    (`mike hotel golf`);
/// 4. *hyphenated*: two to six parts separated by single hyphens (`-`),
///    each part either digits only or a word of `[A-Za-z_][A-Za-z0-9_]*`
///    that is not a keyword (`SKU-75885`, `S3cr3t-9688`, `en-US`,
///    `checkout-service`).
///
/// "Keyword" means: libinjection's keyword lookup gives a type other than
/// bareword.
///
/// Why libinjection never reports any of them (`SqliState::detect` and the
/// code it calls):
///
/// - **Passes.** `detect` always runs the quote-less ANSI pass. It re-parses
///   as MySQL only if that pass saw a `--x` or `#` comment, and runs the
///   single- and double-quote passes only if the input holds `'` or `"`.
///   No class holds `#`, `'`, `"` or two hyphens in a row (a `--` comment),
///   so only the first pass runs.
/// - **Tokens.** In the tokenizer's char map `_` and letters start a word
///   (`b e n q u x`, either case, start `b'..'`, `e'..'`, `n'..'`, `q'..'`,
///   `u&'..'`, `x'..'` strings only when followed by `'` or `&`, and fall
///   back to a word otherwise); digits start a number. No byte of
///   `[A-Za-z0-9_.]` ends a word, so a word runs to the end of the input,
///   unless the text before a `.` or `` ` `` inside it is a keyword, where
///   the word is cut. Class 1 has no `.`, class 2 excludes exactly that
///   case, so a class-2 input (and a class-1 input starting with a letter or
///   `_`) is one word token. Spaces are skipped and end a word, so a class-3
///   input is a sequence of words, all barewords (a word of 32 bytes or more
///   is not looked up and stays a bareword). A number is `0x` + hex digits,
///   `0b` + binary digits, or decimal digits with an optional exponent and
///   `d`/`f` suffix (a bare `0x`, `0b` or `1e` becomes a bareword); it stops
///   before a non-digit, except that a `0b` form may stop before a digit
///   `2`-`9`, which starts one more decimal number (or `2e`-style bareword)
///   that stops before a non-digit. So a class-1 input is at most three
///   tokens, `N1 N2 W`, each optional: numbers or numeric barewords `N1`,
///   `N2`, and a trailing word `W` of any keyword type.
/// - **Folding.** Only the word-merging rule could apply to these tokens:
///   it replaces two neighbouring words by one when their text joined by a
///   space is shorter than 32 bytes and a keyword. In class 1 the first of
///   the two would be a numeric bareword (`0x`, `0b`, `1e`, ...), but the
///   only keywords starting with a digit are the fingerprint entries, which
///   contain no space; class 3 excludes such pairs. So nothing merges. No
///   other two- or three-token rule matches a number or bareword followed
///   by a number, bareword or word, and the leading-token skip (comments,
///   `(`, SQL types, unary operators) can only drop a lone word.
/// - **Fingerprints.** The fingerprint is therefore empty, one letter,
///   `{1,n}` + `{1,n}` + optional `W` type, `{1,n}` + `W` type, or (class 3)
///   up to five `n`. The blacklist (keywords of type `F`) has no entry made
///   of `n` only, and no one-letter entry except `X`, which no keyword
///   lookup yields. Its two-letter entries are `1c 1U nc sc vc vU`: `c` is
///   a comment token (`--`, `#`, `/*`) that no lookup yields, `s`/`v`
///   cannot come first, and `1U` is whitelisted when exactly two tokens
///   were read (`1union`), the only way it arises here. None of its
///   three-letter entries starts with two letters of `{1,n}`.
///
/// - **Hyphens (class 4).** A lone `-` is an operator token (`o`) and ends
///   a word, and neither a word nor a digits-only number runs past it, so
///   a class-4 input is the tokens `T o T o ... T`, each `T` a bareword
///   (`n`) or a number (`1`). The first `T` is not skipped as a leading
///   token. The only two-token rule that could apply to a `T o` pair is
///   word merging, and no keyword begins with `- ` or ends with ` -`. The
///   three-token rule `(bareword|number) operator (number|bareword)`
///   (after `number operator number`, which gives the same result) then
///   folds each `T o T` into its first token, from the left, so the
///   folded input is one token and the fingerprint is `n` or `1`: not
///   blacklisted (see above).
///
/// The six-word limit only bounds the cost of the lookups. Membership does
/// not depend on letter case, so the uppercased re-run of [`detect_sqli`]'s
/// `INTO` workaround would be clean as well. The facts
/// about the keyword table are pinned, and all classes are checked
/// exhaustively over the keyword table and by differential property tests
/// against libinjectionrs, in `tests/libinjection_fast_path.rs`.
pub fn provably_not_sqli(input: &[u8]) -> bool {
    let (mut dots, mut spaces, mut hyphens) = (false, false, false);
    for &b in input {
        match BYTE_CLASS[usize::from(b)] {
            TOKEN => {}
            DOT => dots = true,
            SPACE => spaces = true,
            HYPHEN => hyphens = true,
            _ => return false,
        }
    }
    match (dots, spaces, hyphens) {
        (false, false, false) => true,
        (true, false, false) => is_dotted_name(input),
        (false, true, false) => is_bareword_phrase(input),
        (false, false, true) => is_hyphenated(input),
        _ => false,
    }
}

/// Class 4 of [`provably_not_sqli`], for input made of `[A-Za-z0-9_-]`.
fn is_hyphenated(input: &[u8]) -> bool {
    let mut parts = 0;
    for part in input.split(|&b| b == b'-') {
        parts += 1;
        if parts > MAX_PHRASE_WORDS {
            return false;
        }
        let word = starts_word(part);
        if !(word || (!part.is_empty() && part.iter().all(u8::is_ascii_digit)))
            || (word && is_keyword(&[part]))
        {
            return false;
        }
    }
    true
}

/// Class 2 of [`provably_not_sqli`], for input made of `[A-Za-z0-9_.]`.
fn is_dotted_name(input: &[u8]) -> bool {
    starts_word(input)
        && input
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'.')
            .all(|(i, _)| !is_keyword(&[&input[..i]]))
}

/// Class 3 of [`provably_not_sqli`], for input made of `[A-Za-z0-9_ ]`.
fn is_bareword_phrase(input: &[u8]) -> bool {
    let mut words = input.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mut previous: Option<&[u8]> = None;
    for _ in 0..MAX_PHRASE_WORDS {
        let Some(word) = words.next() else {
            return true;
        };
        if !starts_word(word) || is_keyword(&[word]) {
            return false;
        }
        if let Some(previous) = previous {
            // libinjection only tries to merge words whose joined text is
            // shorter than its 32-byte token buffer.
            if previous.len() + 1 + word.len() < 32 && is_keyword(&[previous, word]) {
                return false;
            }
        }
        previous = Some(word);
    }
    words.next().is_none()
}

/// Whether `text` starts with `[A-Za-z_]` (so libinjection reads a word).
fn starts_word(text: &[u8]) -> bool {
    matches!(text.first(), Some(&b) if b.is_ascii_alphabetic() || b == b'_')
}

/// The most words class 3 of [`provably_not_sqli`] accepts, and parts class
/// 4 does: a bound on the cost of their lookups, which longer inputs would
/// make exceed libinjection's own cost.
const MAX_PHRASE_WORDS: usize = 6;

/// [`BYTE_CLASS`] value of `[A-Za-z0-9_]`.
const TOKEN: u8 = 1;
/// [`BYTE_CLASS`] value of `.`.
const DOT: u8 = 2;
/// [`BYTE_CLASS`] value of ` `.
const SPACE: u8 = 3;
/// [`BYTE_CLASS`] value of `-`.
const HYPHEN: u8 = 4;

/// [`TOKEN`], [`DOT`], [`SPACE`], [`HYPHEN`] or 0 (anything else) for every
/// byte.
static BYTE_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            class[b] = TOKEN;
        } else if c == b'.' {
            class[b] = DOT;
        } else if c == b' ' {
            class[b] = SPACE;
        } else if c == b'-' {
            class[b] = HYPHEN;
        }
        b += 1;
    }
    class
};

/// A bound on the length of libinjection's keywords (the longest has 29
/// bytes in 0.1.1; the bound is checked in `tests/libinjection_fast_path.rs`).
const MAX_KEYWORD_LEN: usize = 32;

/// Whether libinjection's keyword lookup (`libinjectionrs::sqli::sqli_data::
/// lookup_word`, a binary search of the sorted keyword table by the
/// uppercased text) gives a type other than bareword for `parts` joined by
/// single spaces: the test the word parser uses to cut a word at a `.`, and
/// the word-merging fold rule to merge two words. Answered from a hash set
/// of the table's words of those types, without the lookup's allocation.
fn is_keyword(parts: &[&[u8]]) -> bool {
    let mut buf = [0u8; MAX_KEYWORD_LEN];
    let mut len = 0;
    for (n, part) in parts.iter().enumerate() {
        let sep: &[u8] = if n > 0 { b" " } else { b"" };
        for &b in sep.iter().chain(part.iter()) {
            let Some(slot) = buf.get_mut(len) else {
                return false; // longer than every keyword
            };
            *slot = b.to_ascii_uppercase();
            len += 1;
        }
    }
    non_bareword_keywords().contains(&buf[..len])
}

/// The words of libinjection's keyword table whose lookup type is not
/// bareword (`lookup_word` maps every other type byte to bareword).
fn non_bareword_keywords() -> &'static FxHashSet<&'static [u8]> {
    static SET: OnceLock<FxHashSet<&'static [u8]>> = OnceLock::new();
    SET.get_or_init(|| {
        SQL_KEYWORDS
            .iter()
            .filter(|k| b"kfUETto&v1ABF".contains(&k.token_type))
            .map(|k| k.word.as_bytes())
            .collect()
    })
}

fn run_libinjection(input: &[u8]) -> Option<SqliFingerprint> {
    let mut state = SqliState::new(input, SqliFlags::FLAG_NONE);
    if state.detect() {
        Some(SqliFingerprint::from_state(state.fingerprint))
    } else {
        None
    }
}

impl Operator for DetectSqli {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let Some(fingerprint) = detect_sqli(input) else {
            return false;
        };
        if cx.capturing() {
            cx.set_capture(0, fingerprint.as_bytes());
        }
        cx.set_matched_data(fingerprint.as_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    /// Expected results measured with the C libinjection ModSecurity
    /// bundles (`None`: not SQLi).
    const C_RESULTS: &[(&str, Option<&str>)] = &[
        ("1 INTO OUTFILE '/tmp/x'", Some("1ks")),
        ("1' INTO OUTFILE '/tmp/x'--", Some("sksc")),
        ("1' into outfile '/tmp/x", Some("sks")),
        ("1' into dumpfile '/tmp/x", Some("sks")),
        ("1' InTo DuMpFiLe '/x", Some("sks")),
        ("pinto' into outfile 'a", Some("sks")),
        ("1' into @a--", Some("skvc")),
        ("' or 1=1--", Some("s&1c")),
        ("1' or '1'='1", Some("s&sos")),
        ("1 union select", Some("1UE")),
        ("1 union select 1,2,3", Some("1UE1")),
        ("1' union select null--", Some("sUEvc")),
        ("-1 union all select 1,2", Some("1UE1")),
        ("1 union/**/select 1", Some("1UE1")),
        ("1 /*!50000union*/ select 1", Some("X")),
        ("admin'--", Some("sc")),
        ("1;drop table users", Some("1;Tnn")),
        ("1' and sleep(5)#", Some("s&f(1")),
        ("1) or (1=1", Some("1)&(1")),
        ("1' waitfor delay '0:0:5'--", Some("sEsc")),
        ("1 order by 1--", Some("1B1c")),
        ("1 having 1=1", Some("1B1")),
        (
            "1 and extractvalue(1,concat(0x7e,version()))",
            Some("1&f(1"),
        ),
        ("' or 1 in (select 1)--", Some("s&1o(")),
        ("'; exec xp_cmdshell 'dir'--", Some("s;Tns")),
        ("1 LOCK IN SHARE MODE", None),
        ("1' LOCK IN SHARE MODE--", None),
        ("1 for update", None),
        ("admin' #", None),
        ("1 xor 1", None),
        ("select * from users", None),
        ("walk into the room", None),
        ("a' into b", None),
        ("hello world", None),
        ("O'Reilly", None),
        ("1234", None),
        ("", None),
    ];

    #[test]
    fn agrees_with_c_libinjection() {
        for (input, want) in C_RESULTS {
            let got = detect_sqli(input.as_bytes());
            let got = got
                .as_ref()
                .map(|f| std::str::from_utf8(f.as_bytes()).unwrap_or("?"));
            assert_eq!(got, *want, "{input:?}");
            let mut cx = FakeCx::default();
            assert_eq!(
                DetectSqli::new().evaluate(&mut cx, input.as_bytes()),
                want.is_some()
            );
        }
    }

    #[test]
    fn captures_fingerprint() {
        let mut cx = FakeCx::capturing();
        assert!(DetectSqli::new().evaluate(&mut cx, b"1' or '1'='1"));
        let fp = cx.capture(0).unwrap().to_vec();
        assert!(!fp.is_empty() && fp.len() <= 5, "{fp:?}");
        assert!(fp.iter().all(u8::is_ascii), "{fp:?}");
        assert_eq!(cx.matched.as_deref(), Some(fp.as_slice()));
    }
}
