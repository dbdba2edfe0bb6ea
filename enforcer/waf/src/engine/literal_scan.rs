//! The shared literal scanner: which rules' required literals occur in a value.
//!
//! Every prefiltered rule contributes literals, one of which each of its
//! matches contains. [`LiteralScanner::scan`] sets the bit of every rule one of
//! whose literals occurs anywhere in a value, ASCII case-insensitively
//! (overlapping occurrences all count): exactly the rules an overlapping
//! case-insensitive Aho-Corasick search over the same literals would report.
//!
//! Each literal is represented by an *anchor*: the whole literal when it has
//! at most [`ANCHOR`] bytes, otherwise the `ANCHOR`-byte window of it that the
//! fewest other literals contain. A DFA over the anchors (one transition per
//! byte, no failure links to follow, ASCII case folded into byte classes)
//! reports where anchors end; a literal that is its own anchor is found
//! there, a longer one is checked in place around its anchor. The DFA has at
//! most `ANCHOR` levels of trie states, so it stays small (about 4.6 MB for the
//! CRS's 7,700 literals) where a DFA over the whole literals takes ~90 MB.
//! Literal sets too large for the table budget fall back to an
//! Aho-Corasick contiguous NFA with the same result.

use std::collections::VecDeque;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind};
use rustc_hash::FxHashMap;

/// Length of the anchors longer literals are found by.
const ANCHOR: usize = 4;

/// Entries after the classes in a state's row: what the state reports.
const OUTPUT: usize = 4;

/// Largest transition table (entries) the DFA may take: 8 Mi entries, 32 MB.
const TABLE_BUDGET: usize = 8 << 20;

/// Errors building a [`LiteralScanner`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanBuildError {
    /// The fallback Aho-Corasick automaton could not be built.
    #[error("literal automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// Rule bits of one literal (or state), grouped by bit-set word.
type Masks = Box<[(u32, u64)]>;

/// Finds the rules whose literals occur in a value. Built once per ruleset.
#[derive(Debug)]
pub(crate) struct LiteralScanner {
    /// Bits set for every value (an empty literal occurs everywhere).
    always: Masks,
    imp: Imp,
}

#[derive(Debug)]
enum Imp {
    Table(Box<Table>),
    Automaton(Automaton),
}

/// The anchor DFA and what each of its matching states reports.
#[derive(Debug)]
struct Table {
    /// Byte to the one-byte literals (up to 64) it is, one bit each; those
    /// literals are not anchors: the scan notes which occur as it goes.
    singles: [u64; 256],
    /// Per one-byte literal bit, its rule bits.
    single_masks: Box<[Masks]>,
    /// Byte to class: ASCII letters share their lowercase's class; bytes in
    /// no anchor are class 0.
    classes: [u8; 256],
    /// Number of classes: a row's entries up to its [`OUTPUT`] columns.
    n_classes: usize,
    /// Rows of premultiplied next states (state 0, the start, first), one
    /// entry per class, then what a matching state reports: one bit-set
    /// word index, that word's mask (low, high half) and 1 + its index in
    /// `extras` when it reports more (0 otherwise).
    trans: Box<[u32]>,
    /// Premultiplied id of the first matching state; all later ones match.
    first_match: usize,
    /// Per matching state that reports more than one word: its further
    /// ranges in `masks` and in `checks` (start, end, start, end).
    extras: Box<[[u32; 4]]>,
    /// Bits of the literals a state finds outright (they are anchors).
    masks: Box<[(u32, u64)]>,
    /// Longer literals to check in place: (literal, bytes from the start
    /// of the literal to the end of its anchor).
    checks: Box<[(u32, u32)]>,
    /// The longer literals' bytes, concatenated.
    bytes: Box<[u8]>,
    /// Per longer literal: its range in `bytes` and in `lit_masks`.
    lits: Box<[LongLiteral]>,
    lit_masks: Box<[(u32, u64)]>,
}

#[derive(Debug, Clone, Copy)]
struct LongLiteral {
    start: u32,
    end: u32,
    masks_start: u32,
    masks_end: u32,
}

/// The fallback: an overlapping case-insensitive Aho-Corasick search.
#[derive(Debug)]
struct Automaton {
    automaton: AhoCorasick,
    /// Per pattern, its rule bits.
    masks: Box<[Masks]>,
}

impl LiteralScanner {
    /// Builds the scanner over (literal, rule bit) pairs; literals are
    /// compared ASCII case-insensitively, a literal may carry several bits.
    pub(crate) fn new(
        pairs: impl IntoIterator<Item = (Vec<u8>, u32)>,
    ) -> Result<LiteralScanner, ScanBuildError> {
        Self::with_budget(pairs, TABLE_BUDGET)
    }

    /// [`LiteralScanner::new`] with a given DFA table budget (entries).
    fn with_budget(
        pairs: impl IntoIterator<Item = (Vec<u8>, u32)>,
        budget: usize,
    ) -> Result<LiteralScanner, ScanBuildError> {
        let mut grouped: FxHashMap<Vec<u8>, Vec<u32>> = FxHashMap::default();
        for (lit, bit) in pairs {
            grouped
                .entry(lit.to_ascii_lowercase())
                .or_default()
                .push(bit);
        }
        let mut literals: Vec<(Vec<u8>, Vec<u32>)> = grouped.into_iter().collect();
        literals.sort();
        let mut always: Vec<u32> = Vec::new();
        literals.retain(|(lit, bits)| {
            if lit.is_empty() {
                always.extend(bits);
            }
            !lit.is_empty()
        });
        let always = masks_of(&always);
        let imp = match Table::build(&literals, budget) {
            Some(t) => Imp::Table(Box::new(t)),
            None => Imp::Automaton(Automaton::build(&literals)?),
        };
        Ok(LiteralScanner { always, imp })
    }

    /// Sets in `words` (a bit set, one bit per rule) the bit of every rule
    /// with a literal occurring in `value`. Bits beyond `words` are ignored.
    pub(crate) fn scan(&self, value: &[u8], words: &mut [u64]) {
        or_masks(words, &self.always);
        match &self.imp {
            Imp::Table(t) => t.scan(value, words),
            Imp::Automaton(a) => a.scan(value, words),
        }
    }

    /// Approximate heap bytes.
    pub(crate) fn memory_usage(&self) -> usize {
        let own = std::mem::size_of_val(&*self.always);
        own + match &self.imp {
            Imp::Table(t) => {
                std::mem::size_of_val(&*t.trans)
                    + t.single_masks
                        .iter()
                        .map(|m| std::mem::size_of_val(&**m))
                        .sum::<usize>()
                    + std::mem::size_of_val(&*t.extras)
                    + std::mem::size_of_val(&*t.masks)
                    + std::mem::size_of_val(&*t.checks)
                    + t.bytes.len()
                    + std::mem::size_of_val(&*t.lits)
                    + std::mem::size_of_val(&*t.lit_masks)
            }
            Imp::Automaton(a) => {
                a.automaton.memory_usage()
                    + a.masks
                        .iter()
                        .map(|m| std::mem::size_of_val(&**m))
                        .sum::<usize>()
            }
        }
    }

    /// Whether the anchor DFA is in use (not the fallback automaton).
    #[cfg(test)]
    fn uses_table(&self) -> bool {
        matches!(self.imp, Imp::Table(_))
    }
}

/// Rule bits grouped by word, sorted and deduplicated.
fn masks_of(bits: &[u32]) -> Masks {
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut sorted = bits.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for b in sorted {
        let (w, m) = (b / 64, 1u64 << (b % 64));
        match out.last_mut() {
            Some((lw, lm)) if *lw == w => *lm |= m,
            _ => out.push((w, m)),
        }
    }
    out.into_boxed_slice()
}

#[inline]
fn or_masks(words: &mut [u64], masks: &[(u32, u64)]) {
    for &(w, m) in masks {
        if let Some(word) = words.get_mut(w as usize) {
            *word |= m;
        }
    }
}

/// Whether every bit of `masks` is already set (or beyond `words`).
#[inline]
fn all_set(words: &[u64], masks: &[(u32, u64)]) -> bool {
    masks
        .iter()
        .all(|&(w, m)| words.get(w as usize).is_none_or(|&word| word & m == m))
}

/// An anchor and the literals it stands for: (literal index, offset of the
/// anchor in the literal).
type Anchor<'a> = (&'a [u8], Vec<(u32, u32)>);

/// A trie node while building.
struct Node {
    /// (byte, child), sorted by byte.
    children: Vec<(u8, u32)>,
    fail: u32,
    /// Anchors ending here.
    anchor: Option<u32>,
    /// Anchors ending here or at a node on the failure chain.
    outputs: Vec<u32>,
}

impl Table {
    /// Builds the DFA, or `None` when its table would exceed `budget`.
    fn build(literals: &[(Vec<u8>, Vec<u32>)], budget: usize) -> Option<Table> {
        // How many literals contain each ANCHOR-byte window.
        let mut df: FxHashMap<&[u8], u32> = FxHashMap::default();
        for (lit, _) in literals {
            if lit.len() > ANCHOR {
                let mut seen: Vec<&[u8]> = lit.windows(ANCHOR).collect();
                seen.sort_unstable();
                seen.dedup();
                for w in seen {
                    *df.entry(w).or_default() += 1;
                }
            }
        }
        // Anchors and, per anchor, the literals it stands for:
        // (literal index, offset of the anchor in it).
        let mut anchor_ids: FxHashMap<&[u8], u32> = FxHashMap::default();
        let mut anchors: Vec<Anchor<'_>> = Vec::new();
        let mut singles = [0u64; 256];
        let mut single_masks: Vec<Masks> = Vec::new();
        for (i, (lit, bits)) in literals.iter().enumerate() {
            if let [b] = lit[..] {
                if single_masks.len() < 64 {
                    let bit = 1u64 << single_masks.len();
                    singles[b as usize] |= bit;
                    singles[b.to_ascii_uppercase() as usize] |= bit;
                    single_masks.push(masks_of(bits));
                    continue;
                }
            }
            let off = if lit.len() <= ANCHOR {
                0
            } else {
                (0..=lit.len() - ANCHOR)
                    .min_by_key(|&o| (df.get(&lit[o..o + ANCHOR]).copied().unwrap_or(0), o))
                    .unwrap_or(0)
            };
            let a = &lit[off..(off + ANCHOR).min(lit.len())];
            let id = *anchor_ids.entry(a).or_insert_with(|| {
                anchors.push((a, Vec::new()));
                anchors.len() as u32 - 1
            });
            anchors[id as usize].1.push((i as u32, off as u32));
        }

        // Byte classes: one per byte some anchor has; ASCII uppercase joins
        // its lowercase letter (anchors are lowercase).
        let mut classes = [0u8; 256];
        let mut present = [false; 256];
        for (a, _) in &anchors {
            for &b in *a {
                present[b as usize] = true;
            }
        }
        let mut n_classes = 1usize;
        for b in 0..256usize {
            if present[b] {
                if n_classes > u8::MAX as usize {
                    return None;
                }
                classes[b] = n_classes as u8;
                n_classes += 1;
            }
        }
        for b in b'A'..=b'Z' {
            classes[b as usize] = classes[b.to_ascii_lowercase() as usize];
        }
        let stride = n_classes + OUTPUT;

        // The trie, with failure links and outputs, in breadth-first order.
        let mut nodes = vec![Node {
            children: Vec::new(),
            fail: 0,
            anchor: None,
            outputs: Vec::new(),
        }];
        for (id, (a, _)) in anchors.iter().enumerate() {
            let mut n = 0usize;
            for &b in *a {
                n = match nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(k) => nodes[n].children[k].1 as usize,
                    Err(k) => {
                        let new = nodes.len() as u32;
                        nodes[n].children.insert(k, (b, new));
                        nodes.push(Node {
                            children: Vec::new(),
                            fail: 0,
                            anchor: None,
                            outputs: Vec::new(),
                        });
                        new as usize
                    }
                };
            }
            nodes[n].anchor = Some(id as u32);
        }
        if nodes.len().checked_mul(stride)? > budget || nodes.len() * stride > u32::MAX as usize {
            return None;
        }
        // Breadth-first: failure links, outputs and the order states get.
        let mut order: Vec<usize> = Vec::with_capacity(nodes.len());
        let mut queue: VecDeque<usize> = VecDeque::from([0]);
        while let Some(n) = queue.pop_front() {
            order.push(n);
            let children = nodes[n].children.clone();
            for (b, c) in children {
                let c = c as usize;
                let fail = if n == 0 {
                    0
                } else {
                    let mut f = nodes[n].fail as usize;
                    loop {
                        if let Ok(k) = nodes[f].children.binary_search_by_key(&b, |x| x.0) {
                            break nodes[f].children[k].1 as usize;
                        }
                        if f == 0 {
                            break 0;
                        }
                        f = nodes[f].fail as usize;
                    }
                };
                nodes[c].fail = fail as u32;
                let mut outputs: Vec<u32> = nodes[c].anchor.into_iter().collect();
                outputs.extend_from_slice(&nodes[fail].outputs);
                nodes[c].outputs = outputs;
                queue.push_back(c);
            }
        }

        // State numbers: the start state first, matching states last.
        let mut state_of = vec![0u32; nodes.len()];
        let (plain, matching): (Vec<usize>, Vec<usize>) =
            order.iter().partition(|&&n| nodes[n].outputs.is_empty());
        for (s, &n) in plain.iter().chain(matching.iter()).enumerate() {
            state_of[n] = s as u32;
        }
        let first_match = plain.len() * stride;

        // What each matching state reports.
        let mut long_index: FxHashMap<u32, u32> = FxHashMap::default();
        let mut lits: Vec<LongLiteral> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut lit_masks: Vec<(u32, u64)> = Vec::new();
        let mut outputs: Vec<[u32; OUTPUT]> = Vec::with_capacity(matching.len());
        let mut extras: Vec<[u32; 4]> = Vec::new();
        let mut masks: Vec<(u32, u64)> = Vec::new();
        let mut checks: Vec<(u32, u32)> = Vec::new();
        for &n in &matching {
            let c0 = checks.len() as u32;
            let mut direct: Vec<u32> = Vec::new();
            for &a in &nodes[n].outputs {
                let (anchor, users) = &anchors[a as usize];
                for &(li, off) in users {
                    let (lit, bits) = &literals[li as usize];
                    if lit.len() == anchor.len() {
                        direct.extend_from_slice(bits);
                        continue;
                    }
                    let k = *long_index.entry(li).or_insert_with(|| {
                        let m = masks_of(bits);
                        lits.push(LongLiteral {
                            start: bytes.len() as u32,
                            end: (bytes.len() + lit.len()) as u32,
                            masks_start: lit_masks.len() as u32,
                            masks_end: (lit_masks.len() + m.len()) as u32,
                        });
                        bytes.extend_from_slice(lit);
                        lit_masks.extend_from_slice(&m);
                        lits.len() as u32 - 1
                    });
                    checks.push((k, off + anchor.len() as u32));
                }
            }
            // The first (word, mask) goes in the row, the rest in `extras`.
            let direct = masks_of(&direct);
            let (w, m) = direct.first().copied().unwrap_or((0, 0));
            let m0 = masks.len() as u32;
            masks.extend_from_slice(direct.get(1..).unwrap_or_default());
            let (m1, c1) = (masks.len() as u32, checks.len() as u32);
            let extra = if m0 == m1 && c0 == c1 {
                0
            } else {
                extras.push([m0, m1, c0, c1]);
                extras.len() as u32
            };
            outputs.push([w, m as u32, (m >> 32) as u32, extra]);
        }

        // The transitions, breadth-first so that a failure target's row is
        // complete before it is copied from.
        let mut trans = vec![0u32; nodes.len() * stride];
        for &n in &order {
            let row = state_of[n] as usize * stride;
            if n != 0 {
                // Where the failure state goes, except along own children.
                let fail_row = state_of[nodes[n].fail as usize] as usize * stride;
                trans.copy_within(fail_row..fail_row + n_classes, row);
            }
            for &(b, child) in &nodes[n].children {
                trans[row + classes[b as usize] as usize] =
                    state_of[child as usize] * stride as u32;
            }
        }
        for (&n, out) in matching.iter().zip(&outputs) {
            let at = state_of[n] as usize * stride + n_classes;
            trans[at..at + OUTPUT].copy_from_slice(out);
        }

        Some(Table {
            singles,
            single_masks: single_masks.into_boxed_slice(),
            classes,
            n_classes,
            trans: trans.into_boxed_slice(),
            first_match,
            extras: extras.into_boxed_slice(),
            masks: masks.into_boxed_slice(),
            checks: checks.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
            lits: lits.into_boxed_slice(),
            lit_masks: lit_masks.into_boxed_slice(),
        })
    }

    fn scan(&self, value: &[u8], words: &mut [u64]) {
        let (trans, classes) = (&self.trans[..], &self.classes);
        let (first_match, n_classes) = (self.first_match, self.n_classes);
        let mut s = 0usize;
        let mut seen = 0u64;
        for (i, &b) in value.iter().enumerate() {
            seen |= self.singles[b as usize];
            s = trans
                .get(s + classes[b as usize] as usize)
                .map_or(0, |&t| t as usize);
            if s >= first_match {
                let Some(&[w, lo, hi, extra]) = trans
                    .get(s + n_classes..s + n_classes + OUTPUT)
                    .and_then(|o| <&[u32; OUTPUT]>::try_from(o).ok())
                else {
                    continue;
                };
                if let Some(word) = words.get_mut(w as usize) {
                    *word |= u64::from(lo) | u64::from(hi) << 32;
                }
                if extra != 0 {
                    self.report(extra as usize - 1, i + 1, value, words);
                }
            }
        }
        while seen != 0 {
            if let Some(m) = self.single_masks.get(seen.trailing_zeros() as usize) {
                or_masks(words, m);
            }
            seen &= seen - 1;
        }
    }

    /// Reports the rest of what a matching state finds ending at `end`
    /// (`extras[extra]`): more rule words, longer literals to check.
    #[inline(never)]
    fn report(&self, extra: usize, end: usize, value: &[u8], words: &mut [u64]) {
        let Some(&[m0, m1, c0, c1]) = self.extras.get(extra) else {
            return;
        };
        if let Some(m) = self.masks.get(m0 as usize..m1 as usize) {
            or_masks(words, m);
        }
        let Some(checks) = self.checks.get(c0 as usize..c1 as usize) else {
            return;
        };
        for &(li, back) in checks {
            let Some(lit) = self.lits.get(li as usize) else {
                continue;
            };
            let Some(masks) = self
                .lit_masks
                .get(lit.masks_start as usize..lit.masks_end as usize)
            else {
                continue;
            };
            if all_set(words, masks) {
                continue;
            }
            let Some(start) = end.checked_sub(back as usize) else {
                continue;
            };
            let len = (lit.end - lit.start) as usize;
            let (Some(text), Some(pattern)) = (
                value.get(start..start + len),
                self.bytes.get(lit.start as usize..lit.end as usize),
            ) else {
                continue;
            };
            if text.eq_ignore_ascii_case(pattern) {
                or_masks(words, masks);
            }
        }
    }
}

impl Automaton {
    fn build(literals: &[(Vec<u8>, Vec<u32>)]) -> Result<Automaton, ScanBuildError> {
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(literals.iter().map(|(l, _)| l))?;
        Ok(Automaton {
            automaton,
            masks: literals.iter().map(|(_, b)| masks_of(b)).collect(),
        })
    }

    fn scan(&self, value: &[u8], words: &mut [u64]) {
        for m in self.automaton.find_overlapping_iter(value) {
            if let Some(masks) = self.masks.get(m.pattern().as_usize()) {
                or_masks(words, masks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: an overlapping case-insensitive Aho-Corasick search.
    fn reference(pairs: &[(Vec<u8>, u32)], value: &[u8], words: usize) -> Vec<u64> {
        let mut out = vec![0u64; words];
        let patterns: Vec<&[u8]> = pairs.iter().map(|(l, _)| &l[..]).collect();
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .expect("reference automaton");
        for m in ac.find_overlapping_iter(value) {
            let b = pairs[m.pattern().as_usize()].1;
            out[(b / 64) as usize] |= 1 << (b % 64);
        }
        out
    }

    fn scanned(s: &LiteralScanner, value: &[u8], words: usize) -> Vec<u64> {
        let mut out = vec![0u64; words];
        s.scan(value, &mut out);
        out
    }

    fn pairs(lits: &[&str]) -> Vec<(Vec<u8>, u32)> {
        lits.iter()
            .enumerate()
            .map(|(i, l)| (l.as_bytes().to_vec(), i as u32))
            .collect()
    }

    /// Checks both implementations (DFA and fallback) against the reference.
    fn check(pairs: &[(Vec<u8>, u32)], values: &[Vec<u8>]) {
        let words = pairs.iter().map(|p| p.1 / 64 + 1).max().unwrap_or(1) as usize;
        let table = LiteralScanner::new(pairs.iter().cloned()).expect("scanner");
        let fallback = LiteralScanner::with_budget(pairs.iter().cloned(), 0).expect("fallback");
        assert!(!fallback.uses_table());
        for v in values {
            let want = reference(pairs, v, words);
            assert_eq!(scanned(&table, v, words), want, "table, value {v:?}");
            assert_eq!(scanned(&fallback, v, words), want, "fallback, value {v:?}");
        }
    }

    #[test]
    fn finds_each_literal_in_table_driven_cases() {
        let lits = [
            "/",
            "..",
            "<scr",
            "script",
            "select",
            "union select",
            "etc/passwd",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
            "bcdef",
            "cd",
            "\u{e9}t\u{e9}",
            "x\u{0}y",
        ];
        let p = pairs(&lits);
        let table = LiteralScanner::new(p.iter().cloned()).expect("scanner");
        assert!(table.uses_table());
        let cases: &[(&[u8], &[u32])] = &[
            (b"", &[]),
            (b"zzz", &[]),
            (b"/", &[0]),
            (b"A", &[7]),
            (b"ABCDEF", &[7, 8, 9, 10, 11, 12, 13]),
            (b"xbcdefx", &[12, 13]),
            (b"<SCRIPT>", &[2, 3]),
            (b"UNION  SELECT", &[4]),
            (b"1 UnIoN SeLeCt 2", &[4, 5]),
            (b"/ETC/passwd", &[0, 6, 7]),
            (b"..", &[1]),
            (b".", &[]),
            ("\u{c9}T\u{c9}".as_bytes(), &[]),
            ("\u{e9}T\u{e9}".as_bytes(), &[14]),
            (b"X\x00Y", &[15]),
            (b"x\x00", &[]),
        ];
        for &(value, want) in cases {
            let mut expected = vec![0u64; 1];
            for &b in want {
                expected[0] |= 1 << b;
            }
            assert_eq!(scanned(&table, value, 1), expected, "value {value:?}");
        }
        check(&p, &cases.iter().map(|c| c.0.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn shared_literals_set_all_their_bits_and_empty_ones_always() {
        let p = vec![
            (b"Select".to_vec(), 3),
            (b"select".to_vec(), 70),
            (b"".to_vec(), 130),
            (b"lect".to_vec(), 3),
        ];
        let s = LiteralScanner::new(p.iter().cloned()).expect("scanner");
        assert_eq!(scanned(&s, b"", 3), vec![0, 0, 1 << 2]);
        assert_eq!(scanned(&s, b"SELECT", 3), vec![1 << 3, 1 << 6, 1 << 2]);
        check(&p, &[b"".to_vec(), b"SELECT".to_vec(), b"lec".to_vec()]);
    }

    #[test]
    fn already_set_bits_are_kept_and_short_bit_sets_tolerated() {
        let p = pairs(&["abcdefgh"]);
        let s = LiteralScanner::new(p).expect("scanner");
        let mut words = vec![1u64];
        s.scan(b"xxabcdefghxx", &mut words);
        assert_eq!(words, vec![1]);
        s.scan(b"abcdefgh", &mut []);
    }

    #[test]
    fn every_byte_as_a_literal_more_than_the_single_byte_fast_path_holds() {
        // 256 one-byte literals: 64 take the fast path, the rest are anchors.
        let p: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
        let all: Vec<u8> = (0..=255u8).collect();
        let values = vec![
            all.clone(),
            all.iter().rev().copied().collect(),
            all.to_ascii_uppercase(),
            b"Zz\x00\xff".to_vec(),
            Vec::new(),
        ];
        check(&p, &values);
        let s = LiteralScanner::new(p).expect("scanner");
        assert!(s.uses_table());
        // Literals "A" (bit 65) and "a" (bit 97) both match either case.
        let a = 1 << (b'A' - 64) | 1 << (b'a' - 64);
        assert_eq!(scanned(&s, b"A\xff", 4), vec![0, a, 0, 1 << 63]);
        assert_eq!(scanned(&s, b"a", 4), vec![0, a, 0, 0]);
    }

    /// Literals over a small alphabet overlap and share anchors and windows.
    fn literal() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'A', b'-', b'/', 0u8, 0xe9, 0xc9]),
            0..9,
        )
    }

    fn mixed_case(v: &[u8], flips: &[bool]) -> Vec<u8> {
        v.iter()
            .zip(flips.iter().cycle())
            .map(|(&b, &f)| if f { b.to_ascii_uppercase() } else { b })
            .collect()
    }

    proptest! {
        #[test]
        fn matches_the_aho_corasick_reference(
            lits in prop::collection::vec((literal(), 0u32..150), 1..40),
            random in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
            picks in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3), 0..8),
            flips in prop::collection::vec(any::<bool>(), 1..16),
        ) {
            let mut values = random;
            // Values made of the literals: concatenated, case-flipped, cut.
            let mut joined = Vec::new();
            for (ix, cut) in &picks {
                let l = &lits[ix.index(lits.len())].0;
                joined.extend_from_slice(&l[..l.len() - (*cut).min(l.len())]);
                values.push(mixed_case(l, &flips));
            }
            values.push(mixed_case(&joined, &flips));
            values.push(joined);
            values.push(Vec::new());
            check(&lits, &values);
        }

        #[test]
        fn longer_literals_match_the_reference(
            lits in prop::collection::vec(
                (prop::collection::vec(prop::sample::select(b"abcAB./".to_vec()), 1..14), 0u32..70),
                1..60,
            ),
            values in prop::collection::vec(
                prop::collection::vec(prop::sample::select(b"abcABC./x".to_vec()), 0..60),
                1..8,
            ),
        ) {
            check(&lits, &values);
        }
    }
}
