//! Witness analysis of `@rx` patterns: sets of bytes and of adjacent byte
//! pairs such that every match of the pattern contains at least one of them.
//! An input in which no witness occurs cannot match, and is answered without
//! running the regex.
//!
//! The CRS command-injection rules (932230, 932250 and their siblings) have
//! no usable required literal: their words are spelled with evasion classes
//! between the letters (`c["')[\\]*…m…`), so a literal set is a class times
//! the next character, hundreds of one- or two-byte strings. As pairs they
//! are small: `c` followed by one of `8 9 m s " ' ) [ \ | & $`; a short word,
//! a hash or a number rarely holds any of them.
//!
//! Bottom-up over the HIR (parsed with the flags the regex is compiled
//! with), each node gets its minimum match length, the bytes a non-empty
//! match can start and end with, and a few "needs", each a set of bytes and
//! pairs that every match of the node contains one of:
//! - a class needs one of its bytes; a literal one of its bytes or of its
//!   adjacent pairs;
//! - a concatenation has every need of every part (they all hold at once),
//!   plus, at each split into two parts that cannot match empty, the pairs
//!   "a byte the left part can end with, then one the right part can start
//!   with";
//! - an alternation needs the union of one need of each branch (it keeps a
//!   few such unions: every branch's best, second best, ...), and has none
//!   if a branch has none;
//! - a repetition with a minimum of one or more has its operand's needs (and
//!   with two or more, the pairs across two iterations); anything that can
//!   match the empty string (`x*`, `x?`, `^`, `\b`) has none.
//!
//! Needs are weighed with estimated byte frequencies (letters and digits
//! common, punctuation rare); each node keeps its few most selective ones.
//! The root's best needs, up to three and only if selective enough, become
//! the pattern's conditions; an input must satisfy all of them. A condition
//! is checked with one table look-up per input position.
//!
//! Case-insensitive letters arrive as two-byte classes (`[Cc]`), so nothing
//! special is needed for `(?i)`. Assertions (`^`, `$`, `\b`, multi-line or
//! not) match no byte and only make matches rarer; a match of fewer than
//! two bytes holds no pair, so a need with pairs only never comes from a
//! node that can match one byte or none. The analysis can only miss a chance
//! to skip, never skip an input the regex would match; the tests check that
//! exhaustively on small patterns and by sampling on every CRS pattern.

use regex_syntax::hir::{Class, Hir, HirKind};

use crate::byteset::{contains, insert, ByteSet};

/// Needs kept per node (the most selective ones).
const KEEP: usize = 4;

/// Needs an alternation derives from its branches' needs.
const ALTERNATIVES: usize = 4;

/// Conditions checked per pattern at most.
const CHECKS: usize = 3;

/// Largest number of pair products one need may hold.
const MAX_PRODUCTS: usize = 2048;

/// Estimated witnesses per input byte above which a first condition is not
/// worth checking (a 20-byte value would then hold about one witness).
const USEFUL: f64 = 0.05;

/// The same for further conditions, checked only on inputs that passed the
/// first: a weaker one still pays for its scan.
const USEFUL_MORE: f64 = 0.1;

/// A set of witnesses: any byte of `bytes`, or any adjacent pair `(a, b)`
/// with `a` in the first and `b` in the second set of one of `pairs`.
#[derive(Clone, Debug)]
struct Need {
    bytes: ByteSet,
    pairs: Vec<(ByteSet, ByteSet)>,
    /// Estimated witnesses per input byte: lower is more selective.
    weight: f64,
}

impl Need {
    fn bytes(bytes: ByteSet) -> Need {
        Need {
            weight: mass(&bytes),
            bytes,
            pairs: Vec::new(),
        }
    }

    fn pair(first: ByteSet, second: ByteSet) -> Need {
        Need {
            weight: mass(&first) * mass(&second),
            bytes: [0; 4],
            pairs: vec![(first, second)],
        }
    }

    /// Whether both needs have the same witnesses (as written).
    fn same(&self, other: &Need) -> bool {
        self.bytes == other.bytes && self.pairs == other.pairs
    }

    /// Either need's witnesses (an alternation of two nodes).
    fn union(mut self, other: &Need) -> Option<Need> {
        if self.pairs.len() + other.pairs.len() > MAX_PRODUCTS {
            return None;
        }
        for (a, b) in self.bytes.iter_mut().zip(other.bytes) {
            *a |= b;
        }
        self.pairs.extend_from_slice(&other.pairs);
        self.weight += other.weight;
        Some(self)
    }
}

/// What the analysis knows about one node.
struct Info {
    /// Shortest match (saturating).
    min_len: u32,
    /// Bytes a non-empty match can start with.
    first: ByteSet,
    /// Bytes a non-empty match can end with.
    last: ByteSet,
    /// Needs that all hold for every match, most selective first.
    needs: Vec<Need>,
}

impl Info {
    fn empty() -> Info {
        Info {
            min_len: 0,
            first: [0; 4],
            last: [0; 4],
            needs: Vec::new(),
        }
    }
}

/// Estimated frequency of a byte in request values (letters as in English
/// text, hex digits and identifiers a little more, punctuation rare).
fn frequency(b: u8) -> f64 {
    const LETTERS: [f64; 26] = [
        8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.5, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.5, 6.0,
        6.3, 9.1, 2.8, 1.0, 2.4, 0.5, 2.0, 0.5,
    ];
    match b {
        b'a'..=b'z' => LETTERS[usize::from(b - b'a')] * 0.0055,
        b'A'..=b'Z' => 0.006,
        b'0'..=b'9' => 0.015,
        b' ' => 0.04,
        b'.' => 0.015,
        b'-' | b'_' | b'/' => 0.008,
        b'=' | b'&' | b'%' | b':' | b',' | b'@' | b'+' | b';' => 0.002,
        b'!'..=b'~' => 0.001,
        b'\t' | b'\n' | b'\r' => 0.0005,
        _ => 0.0002,
    }
}

/// [`frequency`] of every byte.
static FREQUENCIES: std::sync::LazyLock<[f64; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|b| frequency(b as u8)));

/// Summed frequency of the bytes of `set`.
fn mass(set: &ByteSet) -> f64 {
    let table = &*FREQUENCIES;
    let mut total = 0.0;
    for (w, &word) in set.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            total += table[w * 64 + bits.trailing_zeros() as usize];
            bits &= bits - 1;
        }
    }
    total
}

fn union(a: &ByteSet, b: &ByteSet) -> ByteSet {
    crate::byteset::union(a, b)
}

/// Keeps the `KEEP` most selective needs.
fn prune(mut needs: Vec<Need>) -> Vec<Need> {
    needs.sort_by(|a, b| a.weight.total_cmp(&b.weight));
    needs.truncate(KEEP);
    needs
}

fn class_bytes(class: &Class) -> ByteSet {
    let mut set = [0u64; 4];
    match class {
        Class::Bytes(class) => {
            for r in class.iter() {
                for b in r.start()..=r.end() {
                    insert(&mut set, b);
                }
            }
        }
        Class::Unicode(class) => {
            // Without Unicode mode an ASCII class may still come as a
            // Unicode class; anything beyond ASCII matches UTF-8 sequences,
            // whose bytes are all non-ASCII.
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
        }
    }
    set
}

fn analyze(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::empty(),
        HirKind::Literal(lit) => {
            let bytes = &lit.0;
            let mut needs: Vec<Need> = bytes.iter().map(|&b| Need::bytes(one(b))).collect();
            needs.extend(bytes.windows(2).map(|w| Need::pair(one(w[0]), one(w[1]))));
            let (first, last) = match (bytes.first(), bytes.last()) {
                (Some(&f), Some(&l)) => (one(f), one(l)),
                _ => ([0; 4], [0; 4]),
            };
            Info {
                min_len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                first,
                last,
                needs: prune(needs),
            }
        }
        HirKind::Class(class) => {
            let set = class_bytes(class);
            // A match of a Unicode class may be several bytes long, but it
            // starts and ends with bytes of `set`.
            Info {
                min_len: 1,
                first: set,
                last: set,
                needs: vec![Need::bytes(set)],
            }
        }
        HirKind::Capture(cap) => analyze(&cap.sub),
        HirKind::Repetition(rep) => {
            let sub = analyze(&rep.sub);
            if rep.min == 0 {
                return Info {
                    needs: Vec::new(),
                    min_len: 0,
                    ..sub
                };
            }
            let mut needs = sub.needs;
            if rep.min >= 2 && sub.min_len > 0 {
                needs.push(Need::pair(sub.last, sub.first));
            }
            Info {
                min_len: sub.min_len.saturating_mul(rep.min),
                first: sub.first,
                last: sub.last,
                needs: prune(needs),
            }
        }
        HirKind::Alternation(subs) => {
            let mut info = Info {
                min_len: if subs.is_empty() { 0 } else { u32::MAX },
                ..Info::empty()
            };
            // One need per branch makes a need of the alternation: the k-th
            // one unites every branch's k-th best (or its last). `None` once
            // a branch has no need or the union grew too large.
            let mut needs: Vec<Option<Need>> = Vec::new();
            for (i, sub) in subs.iter().enumerate() {
                let sub = analyze(sub);
                info.min_len = info.min_len.min(sub.min_len);
                info.first = union(&info.first, &sub.first);
                info.last = union(&info.last, &sub.last);
                let Some(fallback) = sub.needs.last() else {
                    needs = vec![None];
                    continue;
                };
                if i == 0 {
                    needs = (0..ALTERNATIVES)
                        .map(|k| Some(sub.needs.get(k).unwrap_or(fallback).clone()))
                        .collect();
                    continue;
                }
                for (k, slot) in needs.iter_mut().enumerate() {
                    let need = sub.needs.get(k).unwrap_or(fallback);
                    *slot = slot.take().and_then(|acc| acc.union(need));
                }
            }
            let mut kept: Vec<Need> = Vec::new();
            for need in needs.into_iter().flatten() {
                if !kept.iter().any(|k| k.same(&need)) {
                    kept.push(need);
                }
            }
            info.needs = prune(kept);
            info
        }
        HirKind::Concat(subs) => {
            let parts: Vec<Info> = subs.iter().map(analyze).collect();
            let mut needs = Vec::new();
            // Ends of the prefixes parts[..=k], then starts of the suffixes.
            let mut prefix_last = Vec::with_capacity(parts.len());
            let (mut last, mut len) = ([0u64; 4], 0u32);
            for part in &parts {
                last = if part.min_len > 0 {
                    part.last
                } else {
                    union(&last, &part.last)
                };
                len = len.saturating_add(part.min_len);
                prefix_last.push((last, len > 0));
            }
            let mut first = [0u64; 4];
            let mut suffix_nonempty = false;
            for k in (1..parts.len()).rev() {
                let part = &parts[k];
                first = if part.min_len > 0 {
                    part.first
                } else {
                    union(&first, &part.first)
                };
                suffix_nonempty |= part.min_len > 0;
                let (last, prefix_nonempty) = prefix_last[k - 1];
                if prefix_nonempty && suffix_nonempty {
                    needs.push(Need::pair(last, first));
                }
            }
            let mut info = Info::empty();
            for part in &parts {
                if info.min_len == 0 {
                    info.first = union(&info.first, &part.first);
                }
                info.min_len = info.min_len.saturating_add(part.min_len);
            }
            for part in parts.iter().rev() {
                info.last = union(&info.last, &part.last);
                if part.min_len > 0 {
                    break;
                }
            }
            for part in parts {
                needs.extend(part.needs);
            }
            info.needs = prune(needs);
            info
        }
    }
}

fn one(b: u8) -> ByteSet {
    let mut set = [0u64; 4];
    insert(&mut set, b);
    set
}

/// Every byte.
const ALL: ByteSet = [u64::MAX; 4];

/// One condition: any byte of `bytes`, or any adjacent pair `(a, b)` with
/// `table[row[a] * 256 + b]` set. The table also holds every pair ending in
/// a byte of `bytes` (and a byte of `bytes` starts a witness pair with
/// anything), so one look-up per position answers for both kinds of
/// witness. Rows are shared by the first bytes that have the same set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Condition {
    bytes: ByteSet,
    /// 1 for the bytes of `bytes`.
    flags: [u8; 256],
    row: [u8; 256],
    /// 1 where the pair is a witness; empty when the condition has bytes
    /// only.
    table: Box<[u8]>,
}

impl Condition {
    /// Whether `input` holds one of the witnesses.
    pub(super) fn present(&self, input: &[u8]) -> bool {
        if self.table.is_empty() {
            return input.iter().any(|&b| self.flags[usize::from(b)] != 0);
        }
        let Some((&first, rest)) = input.split_first() else {
            return false;
        };
        if self.flags[usize::from(first)] != 0 {
            return true;
        }
        let mut at = usize::from(self.row[usize::from(first)]) << 8;
        for &b in rest {
            if self.table.get(at | usize::from(b)).is_some_and(|&t| t != 0) {
                return true;
            }
            at = usize::from(self.row[usize::from(b)]) << 8;
        }
        false
    }

    /// The bytes `b` such that `(a, b)` is a witness or contains one.
    fn after(&self, a: u8) -> ByteSet {
        if contains(&self.bytes, a) {
            return ALL;
        }
        let at = usize::from(self.row[usize::from(a)]) << 8;
        match self.table.get(at..at + 256) {
            Some(row) => {
                let mut set = [0u64; 4];
                for (b, &t) in (0..=255u8).zip(row) {
                    if t != 0 {
                        insert(&mut set, b);
                    }
                }
                set
            }
            None => self.bytes,
        }
    }

    /// Every witness of `self` contains a witness of `other`: checking
    /// `other` after `self` passed is useless.
    fn implies(&self, other: &Condition) -> bool {
        let subset = |a: &ByteSet, b: &ByteSet| a.iter().zip(b).all(|(x, y)| x & !y == 0);
        subset(&self.bytes, &other.bytes)
            && (0..=255u8).all(|a| subset(&self.after(a), &other.after(a)))
    }

    /// Table form of `need`.
    fn build(need: &Need) -> Condition {
        let flags = std::array::from_fn(|b| u8::from(contains(&need.bytes, b as u8)));
        if need.pairs.is_empty() {
            return Condition {
                bytes: need.bytes,
                flags,
                row: [0; 256],
                table: Box::new([]),
            };
        }
        // A witness byte makes a witness of every pair holding it.
        let mut next: [ByteSet; 256] = std::array::from_fn(|a| {
            if contains(&need.bytes, a as u8) {
                ALL
            } else {
                need.bytes
            }
        });
        for (firsts, seconds) in &need.pairs {
            for a in (0..=255u8).filter(|&a| contains(firsts, a)) {
                next[usize::from(a)] = union(&next[usize::from(a)], seconds);
            }
        }
        let mut rows: Vec<ByteSet> = Vec::new();
        let mut row = [0u8; 256];
        for (slot, set) in row.iter_mut().zip(&next) {
            let index = match rows.iter().position(|r| r == set) {
                Some(i) => i,
                None => {
                    rows.push(*set);
                    rows.len() - 1
                }
            };
            // At most 256 distinct rows: the index fits.
            *slot = u8::try_from(index).unwrap_or(u8::MAX);
        }
        let table = rows
            .iter()
            .flat_map(|set| (0..=255u8).map(|b| u8::from(contains(set, b))))
            .collect();
        Condition {
            bytes: need.bytes,
            flags,
            row,
            table,
        }
    }
}

/// The conditions worth checking before running the regex `translated`
/// (the pattern exactly as handed to the regex engine): each must hold for
/// any input the regex matches. Empty when none is selective enough.
pub(super) fn conditions(translated: &str) -> Vec<Condition> {
    let Some(hir) = super::parse_hir(translated) else {
        return Vec::new();
    };
    let info = analyze(&hir);
    let mut chosen: Vec<Condition> = Vec::new();
    for need in &info.needs {
        let limit = if chosen.is_empty() {
            USEFUL
        } else {
            USEFUL_MORE
        };
        if need.weight > limit {
            break;
        }
        let condition = Condition::build(need);
        if chosen.iter().any(|c| c.implies(&condition)) {
            continue;
        }
        chosen.push(condition);
        if chosen.len() == CHECKS {
            break;
        }
    }
    chosen
}

/// Whether `input` satisfies every condition.
pub(super) fn all_present(conditions: &[Condition], input: &[u8]) -> bool {
    conditions.iter().all(|c| c.present(input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::rx::CompiledRegex;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use regex_syntax::hir::Class;

    /// Compiles `pattern` as `@rx` does and returns it with its conditions.
    fn compiled(pattern: &str) -> (CompiledRegex, Vec<Condition>) {
        let re = CompiledRegex::compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let conditions = conditions(re.translated());
        (re, conditions)
    }

    /// The soundness property: if the regex matches `input`, both `input`
    /// and the match itself hold a witness of every condition.
    fn check(pattern: &str, re: &CompiledRegex, conditions: &[Condition], input: &[u8]) {
        if let Some(m) = re.regex().find(input) {
            assert!(
                all_present(conditions, input),
                "{pattern:?} matches {:?} but the pre-check rejects it",
                String::from_utf8_lossy(input)
            );
            assert!(
                all_present(conditions, m.as_bytes()),
                "{pattern:?}: match {:?} holds no witness",
                String::from_utf8_lossy(m.as_bytes())
            );
        }
    }

    #[test]
    fn table() {
        // (pattern, rejected inputs, accepted inputs); an empty rejected
        // list with no conditions expected is marked by `None`.
        type Case<'a> = (&'a str, Option<&'a [&'a str]>, &'a [&'a str]);
        let cases: &[Case] = &[
            // A class times the next byte: pairs, not bytes.
            (
                r"(?i)c[89m]",
                Some(&["comment", "c", "8c", "abc"]),
                &["xc9y", "CM"],
            ),
            // A class then an optional part then a byte: the crossing pair
            // holds with or without the optional part.
            (
                r"(?i)c\$?[89]",
                Some(&["comment", "c$", "8"]),
                &["c8", "c$9"],
            ),
            (r";|&&?", Some(&["abc", "x|y"]), &[";", "&"]),
            // Inputs shorter than two bytes only pass on a witness byte.
            (r"ab|;", Some(&["a", "b", "", "ba"]), &[";", "ab"]),
            // Nullable patterns and anchors alone have no condition.
            (r"^$", None, &[""]),
            (r"a*", None, &[""]),
            (r"(?:xy)?", None, &[""]),
            (r"^", None, &["abc"]),
            (r"\b", None, &["abc"]),
            // One branch without a need (an optional one) kills the
            // alternation's need.
            (
                r"(?:^\x5c?|;)cat",
                Some(&["dog", "c;a;t"]),
                &["cat", ";cat"],
            ),
            (r"x{2,}", Some(&["x", "xyx"]), &["xx"]),
            // Case-insensitive literals arrive as classes.
            (r"(?i)zq", Some(&["zaq", "qz"]), &["ZQ", "zQ"]),
            (r"(?i)(?:\n|\r)x", Some(&["x", "\nyx"]), &["\nX", "\rx"]),
        ];
        for &(pattern, rejected, accepted) in cases {
            let (re, conditions) = compiled(pattern);
            match rejected {
                None => assert!(conditions.is_empty(), "{pattern}: {conditions:?}"),
                Some(rejected) => {
                    assert!(!conditions.is_empty(), "{pattern}: no condition");
                    for input in rejected {
                        assert!(
                            !all_present(&conditions, input.as_bytes()),
                            "{pattern} should reject {input:?}"
                        );
                        assert!(
                            !re.regex().is_match(input.as_bytes()),
                            "{pattern} {input:?}"
                        );
                    }
                }
            }
            for input in accepted {
                assert!(
                    all_present(&conditions, input.as_bytes()),
                    "{pattern} {input:?}"
                );
            }
        }
    }

    /// Small patterns over a four-byte alphabet, every input up to five
    /// bytes long.
    #[test]
    fn exhaustive_small_cases() {
        let patterns = [
            "ab",
            "a;",
            "(?i)ab",
            "a|b;",
            "a(?:;|b)",
            "a;?b",
            "a;*b",
            "(?:ab){2}",
            "a+b",
            "(?:a|;)(?:b|;)",
            "^ab$",
            r"a\bb",
            "a.b",
            "(?:a;|b)b",
            "a(?:b|)a",
            "[ab];",
            "(?:;;|a)b?a",
            "(?:a|b|;)",
            "b(?:a{0,2}|;)b",
            r"(?m)^;a",
            "a?;b?",
            "(?:a;?)+b",
            ";\na",
            r"[^a];",
            "(?:|a)b",
            "(?i)A;|B",
            "a(?:;|b(?:a|;))",
        ];
        let alphabet = b"ab;\nA";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut layer: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            layer = layer
                .iter()
                .flat_map(|s| {
                    alphabet.iter().map(move |&b| {
                        let mut t = s.clone();
                        t.push(b);
                        t
                    })
                })
                .collect();
            inputs.extend(layer.iter().cloned());
        }
        let mut with_conditions = 0;
        for pattern in patterns {
            let (re, conditions) = compiled(pattern);
            with_conditions += usize::from(!conditions.is_empty());
            for input in &inputs {
                check(pattern, &re, &conditions, input);
            }
        }
        // The check is not vacuous: most of these patterns get conditions.
        assert!(with_conditions > patterns.len() / 2, "{with_conditions}");
    }

    proptest! {
        /// Random patterns from pieces with and without needs, random
        /// inputs over the bytes they use.
        #[test]
        fn random_patterns_never_reject_a_match(
            pieces in proptest::collection::vec(
                prop::sample::select(vec![
                    ";", r"\|\|?", "&&?", "[`{]", "a", "(?i)cat", r"\s*", "(?:x|;)",
                    "(?:<|>)", r"[\n\r]", "b+", "(?:;|&)+", "c?", "^", "$", r"\b",
                    "(?:ab|c)", "[ab]{2}", "(?:a[;b]?)*", "x{0,2}", "(?:;|^)", ".",
                ]),
                1..6,
            ),
            input in proptest::collection::vec(
                prop::sample::select(b"abcx;|&`{<> \n\rAC".to_vec()),
                0..14,
            ),
        ) {
            let pattern = pieces.concat();
            let (re, conditions) = compiled(&pattern);
            check(&pattern, &re, &conditions, &input);
        }
    }

    /// A random string the HIR describes (assertions are ignored, so it
    /// may not match; callers keep what the regex really matches).
    fn sample(h: &Hir, rng: &mut TestRng, out: &mut Vec<u8>) {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(lit) => out.extend_from_slice(&lit.0),
            HirKind::Class(class) => {
                let bytes: Vec<u8> = (0..=255u8)
                    .filter(|&b| contains(&class_bytes(class), b))
                    .collect();
                if let Class::Bytes(_) = class {
                    if !bytes.is_empty() {
                        out.push(bytes[rng.random_range(0..bytes.len())]);
                    }
                } else if let Some(&b) = bytes.iter().find(|b| b.is_ascii()) {
                    out.push(b);
                }
            }
            HirKind::Capture(cap) => sample(&cap.sub, rng, out),
            HirKind::Repetition(rep) => {
                let max = rep.max.unwrap_or(rep.min + 3).min(rep.min + 3);
                for _ in 0..rng.random_range(rep.min..=max) {
                    sample(&rep.sub, rng, out);
                }
            }
            HirKind::Alternation(subs) => {
                sample(&subs[rng.random_range(0..subs.len())], rng, out);
            }
            HirKind::Concat(subs) => {
                for sub in subs {
                    sample(sub, rng, out);
                }
            }
        }
    }

    /// Mutations of `input`: a byte inserted, removed or replaced, a
    /// prefix or suffix cut, a benign word around it.
    fn mutate(input: &[u8], rng: &mut TestRng) -> Vec<u8> {
        let mut out = input.to_vec();
        let noise = b"ab ;|&$`'\"()\\/-=.\n\rxzCS09";
        match rng.random_range(0..6) {
            0 => {
                let at = rng.random_range(0..=out.len());
                out.insert(at, noise[rng.random_range(0..noise.len())]);
            }
            1 if !out.is_empty() => {
                out.remove(rng.random_range(0..out.len()));
            }
            2 if !out.is_empty() => {
                let at = rng.random_range(0..out.len());
                out[at] = noise[rng.random_range(0..noise.len())];
            }
            3 => out.truncate(rng.random_range(0..=out.len())),
            4 => {
                out.drain(..rng.random_range(0..=out.len()));
            }
            _ => {
                out.splice(0..0, b"session ".iter().copied());
                out.extend_from_slice(b" light");
            }
        }
        out
    }

    /// The `@rx` pattern of every CRS rule, with its id.
    fn crs_patterns() -> Vec<(String, String)> {
        let dir = match std::env::var_os("PALISADE_CRS_DIR") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"),
        };
        let rules = dir.join("rules");
        let rule = regex::Regex::new(
            r#"SecRule\s+\S+\s+"@rx ((?:[^"\\]|\\.)*)"(?:\s+"(?:[^"\\]|\\.)*?id:(\d+))?"#,
        )
        .expect("static regex");
        let mut files: Vec<_> = std::fs::read_dir(&rules)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", rules.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read conf");
            let joined = text.replace("\\\n", "");
            for caps in rule.captures_iter(&joined) {
                // SecLang unescapes `\"` in the quoted operator argument.
                let id = caps.get(2).map_or("(chained)", |m| m.as_str());
                out.push((id.to_string(), caps[1].replace("\\\"", "\"")));
            }
        }
        out
    }

    /// Matching strings of `pattern` (sampled from its HIR, kept when the
    /// regex finds a match) and their mutations, checked for soundness.
    /// Returns how many matching inputs were checked.
    fn check_sampled(pattern: &str, rounds: usize, rng: &mut TestRng) -> usize {
        let (re, conditions) = compiled(pattern);
        let hir = super::super::parse_hir(re.translated()).expect("parses");
        let mut matched = 0;
        for _ in 0..rounds {
            let mut input = Vec::new();
            sample(&hir, rng, &mut input);
            for _ in 0..8 {
                if let Some(m) = re.regex().find(&input) {
                    matched += 1;
                    check(pattern, &re, &conditions, m.as_bytes());
                }
                check(pattern, &re, &conditions, &input);
                input = mutate(&input, rng);
            }
        }
        matched
    }

    /// The five command-injection rules this pre-check exists for: many
    /// matching strings and their mutations; each must get a condition.
    #[test]
    fn crs_command_injection_patterns() {
        let patterns = crs_patterns();
        let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        for id in ["932125", "932230", "932250", "932370", "932380"] {
            let (_, pattern) = patterns
                .iter()
                .find(|(rule, _)| rule == id)
                .unwrap_or_else(|| panic!("rule {id} not found in the CRS"));
            let (_, conditions) = compiled(pattern);
            assert!(!conditions.is_empty(), "{id}: no condition");
            let matched = check_sampled(pattern, 400, &mut rng);
            assert!(matched > 400, "{id}: only {matched} matching inputs");
            for benign in [
                "session",
                "light",
                "7f15052434b9b5df9e7769b10f4205b4",
                "kilo echo",
            ] {
                assert!(
                    !all_present(&conditions, benign.as_bytes()),
                    "{id} does not skip {benign:?}"
                );
            }
        }
    }

    /// Every CRS `@rx` pattern: fewer samples each.
    #[test]
    fn crs_patterns_never_reject_a_match() {
        let patterns = crs_patterns();
        assert!(patterns.len() > 250, "only {} CRS patterns", patterns.len());
        let mut runner = TestRunner::new(Config::default());
        let rng = runner.rng();
        let mut with_conditions = 0;
        for (_, pattern) in &patterns {
            let (_, conditions) = compiled(pattern);
            with_conditions += usize::from(!conditions.is_empty());
            check_sampled(pattern, 12, rng);
        }
        assert!(with_conditions > patterns.len() / 2, "{with_conditions}");
    }
}
