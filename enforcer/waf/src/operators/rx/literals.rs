//! Required-literal analysis of `@rx` patterns: a set of byte strings one of
//! which every match must contain, for the engine's prefilter.
//!
//! The analysis walks the pattern's HIR (parsed with the same flags the
//! regex is compiled with) and computes, bottom-up, a "necessary set" for
//! each node: a literal is its own set; a concatenation may use the set of
//! any one of its parts (and also the prefixes `regex_syntax`'s literal
//! extractor finds for runs starting at a literal), choosing the most
//! selective; an alternation needs the union of every branch's set; a
//! repetition with a minimum of one or more inherits its operand's set; and
//! anything that can match without a literal (classes, look-around,
//! optional parts) has none. This can only ever miss a prefilter
//! opportunity, never skip an input the regex would match.
//!
//! Case-insensitive patterns make the HIR spell each letter as a two-byte
//! class (`[Uu]`); such classes are folded to the lowercase letter first, and
//! the result is then marked `case_insensitive` (comparing a lowercase
//! literal ASCII-case-insensitively accepts everything the class accepted).

use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{self, Class, Hir, HirKind};

use crate::operators::RequiredLiterals;

/// Largest literal set kept (larger unions are given up on).
const MAX_LITERALS: usize = 1024;

/// A class with at most this many bytes becomes a set of one-byte literals.
/// Eight takes in the command separators of the CRS's RCE rules
/// (`[\n\r;`\{]` with `|` and `&`, 932125 and its kin), which then skip the
/// values holding none of them; 4 (before the sixth session) did not, and
/// 16 or more only adds a weaker set to one more rule (measured: 301.2 k
/// instructions per request with 4, 294.3 k with 8, 295.2 k with 16).
const MAX_CLASS_BYTES: usize = 8;

/// Set lengths beyond this count the same when comparing selectivity, so a
/// smaller set of long-enough literals wins.
const ENOUGH_LEN: usize = 4;

/// Computes the required literals of `translated`, the pattern exactly as
/// handed to the regex engine (flags included).
pub(super) fn required_literals(translated: &str) -> Option<RequiredLiterals> {
    let hir = super::parse_hir(translated)?;
    let mut folded = false;
    let hir = fold_case(&hir, &mut folded);
    let mut literals = necessary(&hir)?;
    if folded {
        for lit in &mut literals {
            lit.make_ascii_lowercase();
        }
    }
    literals.sort();
    literals.dedup();
    // A literal containing another one is redundant: any input containing
    // it also contains the shorter one.
    let all = literals.clone();
    literals.retain(|lit| {
        !all.iter()
            .any(|other| other.len() < lit.len() && contains(lit, other, folded))
    });
    if literals.is_empty() || literals.iter().any(Vec::is_empty) {
        return None;
    }
    Some(RequiredLiterals {
        literals,
        case_insensitive: folded,
    })
}

fn contains(haystack: &[u8], needle: &[u8], case_insensitive: bool) -> bool {
    haystack.windows(needle.len()).any(|w| {
        if case_insensitive {
            w.eq_ignore_ascii_case(needle)
        } else {
            w == needle
        }
    })
}

/// Replaces each class that is exactly one ASCII letter in both cases by the
/// lowercase letter; sets `folded` if it did.
fn fold_case(h: &Hir, folded: &mut bool) -> Hir {
    match h.kind() {
        HirKind::Class(Class::Bytes(class)) => {
            if let [a, b] = class.ranges() {
                let (a, b) = (a.start(), b.start());
                let single = class.ranges().iter().all(|r| r.start() == r.end());
                if single && a.is_ascii_uppercase() && b == a.to_ascii_lowercase() {
                    *folded = true;
                    return Hir::literal(vec![b]);
                }
            }
            h.clone()
        }
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|s| fold_case(s, folded)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|s| fold_case(s, folded)).collect())
        }
        HirKind::Repetition(rep) => Hir::repetition(hir::Repetition {
            min: rep.min,
            max: rep.max,
            greedy: rep.greedy,
            sub: Box::new(fold_case(&rep.sub, folded)),
        }),
        HirKind::Capture(cap) => Hir::capture(hir::Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(fold_case(&cap.sub, folded)),
        }),
        _ => h.clone(),
    }
}

/// A set of literals one of which every match of `h` contains, if known.
fn necessary(h: &Hir) -> Option<Vec<Vec<u8>>> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(lit) => Some(vec![lit.0.to_vec()]),
        HirKind::Class(Class::Bytes(class)) => {
            let count: usize = class
                .ranges()
                .iter()
                .map(|r| usize::from(r.end() - r.start()) + 1)
                .sum();
            if count == 0 || count > MAX_CLASS_BYTES {
                return None;
            }
            Some(
                class
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|b| vec![b])
                    .collect(),
            )
        }
        HirKind::Class(Class::Unicode(_)) => None,
        HirKind::Repetition(rep) if rep.min == 0 => None,
        // `\.{2,3}`: every match contains the literal repeated `min` times
        // (capped, the length only has to be selective enough).
        HirKind::Repetition(rep) => match rep.sub.kind() {
            HirKind::Literal(lit) if rep.min >= 2 && !lit.0.is_empty() => {
                let times = (rep.min as usize).min((2 * ENOUGH_LEN / lit.0.len()).max(1));
                Some(vec![lit.0.repeat(times)])
            }
            _ => necessary(&rep.sub),
        },
        HirKind::Capture(cap) => necessary(&cap.sub),
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for sub in subs {
                all.extend(necessary(sub)?);
                if all.len() > MAX_LITERALS * 4 {
                    return None;
                }
            }
            all.sort();
            all.dedup();
            (all.len() <= MAX_LITERALS).then_some(all)
        }
        HirKind::Concat(subs) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let extractor = Extractor::new();
            for (i, sub) in subs.iter().enumerate() {
                if let Some(set) = necessary(sub) {
                    best = Some(better(best, set));
                }
                if matches!(sub.kind(), HirKind::Literal(_)) && i + 1 < subs.len() {
                    let seq = extractor.extract(&Hir::concat(subs[i..].to_vec()));
                    if let Some(lits) = seq.literals() {
                        if !lits.is_empty()
                            && lits.len() <= MAX_LITERALS
                            && lits.iter().all(|l| !l.is_empty())
                        {
                            let set = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
                            best = Some(better(best, set));
                        }
                    }
                }
            }
            best
        }
    }
}

/// The more selective of two necessary sets.
fn better(current: Option<Vec<Vec<u8>>>, candidate: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let Some(current) = current else {
        return candidate;
    };
    if score(&candidate) > score(&current) {
        candidate
    } else {
        current
    }
}

fn score(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>, usize) {
    let min_len = set.iter().map(Vec::len).min().unwrap_or(0);
    (
        min_len.min(ENOUGH_LEN),
        std::cmp::Reverse(set.len()),
        min_len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(pattern: &str) -> Option<(Vec<String>, bool)> {
        let translated = format!("(?sm){pattern}");
        required_literals(&translated).map(|r| {
            (
                r.literals
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect(),
                r.case_insensitive,
            )
        })
    }

    #[test]
    fn table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(lits(r"(?i)union\s+select"), Some((s(&["select"]), true)));
        assert_eq!(lits(r"(?i)union\s+\w"), Some((s(&["union"]), true)));
        assert_eq!(lits(r"foo|bar"), Some((s(&["bar", "foo"]), false)));
        assert_eq!(lits(r"\d+"), None);
        assert_eq!(lits(r"a?"), None);
        assert_eq!(lits(r"^.*$"), None);
        assert_eq!(lits(r"(?:foo)?bar"), Some((s(&["bar"]), false)));
        assert_eq!(lits(r"x\W+(?i:ab|cd)"), Some((s(&["ab", "cd"]), true)));
        assert_eq!(lits(r"<script"), Some((s(&["<script"]), false)));
        assert_eq!(lits(r"(?i)<scr(ipt)?"), Some((s(&["<scr"]), true)));
        assert_eq!(lits(r"[<>]"), Some((s(&["<", ">"]), false)));
        assert_eq!(lits(r"a|\w"), None);
        assert_eq!(lits(r"(?:abc|abcd)x"), Some((s(&["abc"]), false)));
        assert_eq!(lits(r"(?:^|[\\/])\.{2,3}[\\/]"), Some((s(&[".."]), false)));
        assert_eq!(lits(r"a{3}"), Some((s(&["aaa"]), false)));
        assert_eq!(lits(r"(?:ab){20}"), Some((s(&["abababab"]), false)));
        assert_eq!(lits(r"x{1,5}"), Some((s(&["x"]), false)));
        // Classes of up to MAX_CLASS_BYTES bytes, alone or in alternations.
        assert_eq!(
            lits(r"(?:[\n\r;`\{]|\|\|?|&&?)\s*id"),
            Some((s(&["id"]), false))
        );
        assert_eq!(
            lits(r"(?:[\n\r;`\{]|\|\|?|&&?)\s*\w"),
            Some((s(&["\n", "\r", "&", ";", "`", "{", "|"]), false))
        );
        assert_eq!(
            lits(r"[a-h]x?"),
            Some((s(&["a", "b", "c", "d", "e", "f", "g", "h"]), false))
        );
        assert_eq!(lits(r"[a-i]x?"), None);
    }
}
