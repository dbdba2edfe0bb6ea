//! Required-byte analysis of `@rx` patterns: a set of bytes one of which
//! every match must contain. When that set holds no letter, digit or space,
//! most benign values contain none of its bytes, and a scan of the value
//! answers "no match" without running the regex (the CRS command-injection
//! rules 932125/932230/932370/932380 need one of `\n \r ; \` { | &` and are
//! too weak for the literal prefilter: hundreds of two-byte literals).
//!
//! Bottom-up over the HIR (parsed with the flags the regex is compiled
//! with): a literal needs any one of its bytes (the rarest is chosen); a
//! class needs one of its bytes; a concatenation may use the set of any one
//! part (the rarest is chosen); an alternation needs the union of every
//! branch's set; a repetition with a minimum of one or more inherits its
//! operand's set; anything that can match the empty string (`x*`, `x?`,
//! look-around) has none. Sets are closed under ASCII case, so the result
//! also holds for case-insensitive patterns. This can only miss a chance to
//! skip, never skip an input the regex would match.

use regex_syntax::hir::{Class, Hir, HirKind};

use crate::byteset::contains;
pub(crate) use crate::byteset::ByteSet;

/// Adds `b` and, for a letter, its other case: the sets are closed under
/// ASCII case.
fn insert(set: &mut ByteSet, b: u8) {
    crate::byteset::insert(set, b);
    if b.is_ascii_alphabetic() {
        crate::byteset::insert(set, b ^ 0x20);
    }
}

/// The bytes of ordinary text (letters, digits, space): a set holding one
/// of them rules out next to nothing.
const COMMON: ByteSet = {
    let mut set = [0u64; 4];
    let mut b = 0u8;
    loop {
        if b.is_ascii_alphanumeric() || b == b' ' {
            crate::byteset::insert(&mut set, b);
        }
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    set
};

/// How selective a set is: fewer common bytes first, then fewer bytes.
fn weight(set: &ByteSet) -> (u32, u32) {
    let common = set
        .iter()
        .zip(COMMON)
        .map(|(w, c)| (w & c).count_ones())
        .sum();
    (common, set.iter().map(|w| w.count_ones()).sum())
}

/// The required byte set of `translated` (the pattern exactly as handed to
/// the regex engine), when it holds no letter, digit or space.
pub(super) fn required_bytes(translated: &str) -> Option<ByteSet> {
    let hir = super::parse_hir(translated)?;
    let set = necessary(&hir)?;
    (weight(&set).0 == 0).then_some(set)
}

/// Whether `input` contains a byte of `set`.
pub(super) fn any_of(set: &ByteSet, input: &[u8]) -> bool {
    input.iter().any(|&b| contains(set, b))
}

fn necessary(h: &Hir) -> Option<ByteSet> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(lit) => {
            // Any byte of the literal is in every match: take the rarest.
            let mut best: Option<ByteSet> = None;
            for &b in lit.0.iter() {
                let mut set = [0u64; 4];
                insert(&mut set, b);
                best = Some(rarer(best, set));
            }
            best
        }
        HirKind::Class(Class::Bytes(class)) => {
            let mut set = [0u64; 4];
            for r in class.iter() {
                for b in r.start()..=r.end() {
                    insert(&mut set, b);
                }
            }
            (set != [0; 4]).then_some(set)
        }
        HirKind::Class(Class::Unicode(class)) => {
            // Without Unicode mode an ASCII-only class may still come as a
            // Unicode class; anything beyond ASCII stands for every
            // non-ASCII byte.
            let mut set = [0u64; 4];
            for r in class.iter() {
                for c in r.start()..=r.end() {
                    match u8::try_from(u32::from(c)) {
                        Ok(b) if b.is_ascii() => insert(&mut set, b),
                        _ => {
                            set[2] = u64::MAX;
                            set[3] = u64::MAX;
                            break;
                        }
                    }
                }
            }
            (set != [0; 4]).then_some(set)
        }
        HirKind::Repetition(rep) if rep.min == 0 => None,
        HirKind::Repetition(rep) => necessary(&rep.sub),
        HirKind::Capture(cap) => necessary(&cap.sub),
        HirKind::Alternation(subs) => {
            let mut all = [0u64; 4];
            for sub in subs {
                let set = necessary(sub)?;
                for (a, s) in all.iter_mut().zip(set) {
                    *a |= s;
                }
            }
            Some(all)
        }
        HirKind::Concat(subs) => subs
            .iter()
            .filter_map(necessary)
            .fold(None, |best, set| Some(rarer(best, set))),
    }
}

fn rarer(current: Option<ByteSet>, candidate: ByteSet) -> ByteSet {
    match current {
        Some(current) if weight(&current) <= weight(&candidate) => current,
        _ => candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(pattern: &str) -> Option<Vec<u8>> {
        required_bytes(pattern).map(|set| (0..=255u8).filter(|&b| contains(&set, b)).collect())
    }

    #[test]
    fn table() {
        for (pattern, want) in [
            (
                r"(?:[\n\r;`\{]|\|\|?|&&?)[\s\x0b]*(?:ls|cat)",
                Some(&b"\n\r&;`{|"[..]),
            ),
            (r"foo;bar", Some(b";")),
            (r"(?i)union\s+select", None),
            (r"^(?:ls|cat)", None),
            (r"a*;?", None),
            (r"(?:<|>)script", Some(b"<>")),
            (r"x(?:;|\|)", Some(b";|")),
            (r"(?:;|b)", None),
            (r"\.\./", Some(b"./")),
        ] {
            let got = bytes(pattern);
            let want = want.map(|w| {
                let mut v = w.to_vec();
                v.sort();
                v
            });
            // `\.\./` needs any of its bytes: the rarest one is kept.
            if pattern == r"\.\./" {
                assert!(
                    got.as_deref() == Some(b".") || got.as_deref() == Some(b"/"),
                    "{got:?}"
                );
                continue;
            }
            assert_eq!(got, want, "{pattern}");
        }
    }

    proptest! {
        /// Soundness: whenever the regex matches, the input holds a byte of
        /// the set (patterns built from pieces with and without sets).
        #[test]
        fn a_match_always_contains_a_required_byte(
            pieces in proptest::collection::vec(
                prop::sample::select(vec![
                    ";", r"\|\|?", "&&?", "[`{]", "a", "(?i)cat", r"\s*", "(?:x|;)",
                    "(?:<|>)", r"[\n\r]", "b+", "(?:;|&)+", "c?", "^", "$",
                ]),
                1..5,
            ),
            input in "[a-c;|&`{<>x \\n\\r]{0,12}",
        ) {
            let pattern = pieces.concat();
            if let Some(set) = required_bytes(&pattern) {
                let re = regex::bytes::RegexBuilder::new(&pattern).unicode(false).build().unwrap();
                if re.is_match(input.as_bytes()) {
                    prop_assert!(any_of(&set, input.as_bytes()), "{pattern} matched {input:?}");
                }
            }
        }
    }
}
