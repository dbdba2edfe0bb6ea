//! The per-request [`Transaction`]: request data, the TX collection, matched
//! variables, runtime `ctl` state, and the phase runner.
//!
//! Values are stored once as `Arc<[u8]>` so that collecting a rule's targets
//! clones pointers, not bytes, and each stored value gets a dense slot number.
//! Transformation results are cached per (slot, transformation chain) for the
//! life of the transaction, prefixes of chains included, so the hundreds of
//! CRS rules that apply `t:urlDecodeUni,t:lowercase` to the same ARGS decode
//! each argument once. Each distinct transformed value is scanned once by the
//! ruleset's literal prefilter; a rule whose literals occur in none of the
//! values it inspects is skipped without collecting anything (see [`Memo`]).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::compile::{after_marker, NO_UNION};
use super::config::BodyLimitAction;
use super::rule::{ChainTable, CompiledOperator, Item, LiteralPrefilter, Rule};
use super::verdicts::{VerdictCache, Verdicts};
use super::{DisruptiveAction, EngineMode, Intervention, MatchedRule, RulesetInner};
use prefix::{Fold, PlanStep};

mod layered;
pub(crate) mod prefix;
use crate::actions::{atoi, AllowScope, BodyProcessor, Ctl, Disruptive, SetVar, SetVarOp};
use crate::body::{self, BodyLimits};
use crate::byteset::{self, disjoint, ByteSet};
use crate::macros::MacroText;
use crate::operators::OperatorContext;
use crate::seclang::IdRange;
use crate::transformations::Transformation;
use crate::variables::{Exclusion, KeySelector, Target, TargetSpec, Variable, XmlList};

type Bytes = Arc<[u8]>;

#[derive(Clone, Debug)]
struct Entry {
    key: Bytes,
    value: Bytes,
    /// Slot of `value` (`NO_SLOT` when it may change).
    vslot: u32,
    /// Slot of `key` as a value (`*_NAMES`).
    kslot: u32,
}

/// A stored entry, with fresh slots from `next`.
fn entry(next: &mut u32, key: &[u8], value: &[u8]) -> Entry {
    let vslot = *next;
    *next += 2;
    Entry {
        key: Arc::from(key),
        value: Arc::from(value),
        vslot,
        kslot: vslot + 1,
    }
}

/// A value collected for a rule, with where it came from (for the cache and
/// MATCHED_VAR_NAME).
#[derive(Clone, Debug)]
struct Val {
    var: Variable,
    key: Option<Bytes>,
    value: Bytes,
    /// Cache slot (`NO_SLOT`: not cacheable, the value can change).
    slot: u32,
}

impl Val {
    fn as_ref(&self) -> ValRef<'_> {
        ValRef {
            var: self.var,
            key: self.key.as_ref(),
            value: &self.value,
            slot: self.slot,
        }
    }
}

/// A value being evaluated, borrowed from the stored lists or from a
/// collected [`Val`].
#[derive(Clone, Copy)]
struct ValRef<'a> {
    var: Variable,
    key: Option<&'a Bytes>,
    value: &'a Bytes,
    /// Cache slot (`NO_SLOT`: not cacheable).
    slot: u32,
}

impl ValRef<'_> {
    /// What names this value in MATCHED_VAR_NAME (`ARGS:foo`): the variable
    /// and its shared key, no text made.
    #[inline]
    fn matched_name(&self) -> MatchedName {
        match self.key {
            Some(k) => MatchedName::Member(self.var, Arc::clone(k)),
            None => MatchedName::Var(self.var),
        }
    }
}

/// What names a matched value (MATCHED_VAR_NAME, a MATCHED_VARS key).
///
/// Recording a match keeps the variable and its shared key; the `VAR:key`
/// text is made only where it is read (macros, the MATCHED_VAR(S)_NAME(S)
/// variables, logged rules), as most matches are never asked their name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum MatchedName {
    /// A variable without key (`REQUEST_URI`).
    Var(Variable),
    /// A collection member (`ARGS:foo`): the key as stored, non-UTF-8
    /// bytes replaced when the text is made.
    Member(Variable, Bytes),
    /// Text made already (the `TX:key` name of a [`Rule::tx_target`]).
    Text(Bytes),
}

impl MatchedName {
    /// Appends the name's text (`ARGS:foo`, UTF-8) to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            MatchedName::Var(var) => out.extend_from_slice(var.name().as_bytes()),
            MatchedName::Member(var, key) => {
                out.extend_from_slice(var.name().as_bytes());
                out.push(b':');
                out.extend_from_slice(String::from_utf8_lossy(key).as_bytes());
            }
            MatchedName::Text(t) => out.extend_from_slice(t),
        }
    }

    /// The name's text as a string (logging).
    fn log_text(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        // Valid UTF-8 but for a prebuilt text, which is made valid as before.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The name's text as a value (shared when it was made already).
    fn text(&self) -> Bytes {
        match self {
            MatchedName::Text(t) => Arc::clone(t),
            MatchedName::Var(var) => Arc::from(var.name().as_bytes()),
            MatchedName::Member(..) => {
                let mut out = Vec::new();
                self.write(&mut out);
                Arc::from(out)
            }
        }
    }
}

/// A matched rule as the transaction records it: a logged rule's report in
/// full; a `nolog` rule's (no message, log data, tags or matched value: most
/// matches, the paranoia-level gates and `SecAction`s of the CRS) by its
/// place in the ruleset, made into a report only when one is asked for.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    Full(MatchedRule),
    Quiet {
        /// The rule's phase and index among the phase's items.
        phase: u8,
        item: u32,
        disruptive: bool,
    },
}

/// A matched value and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MatchedVar {
    name: MatchedName,
    value: Bytes,
}

/// An entry of MATCHED_VARS; the last one is MATCHED_VAR.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Matched {
    Var(MatchedVar),
    /// What the rule at (phase, item) that reads frozen TX matched, kept
    /// by the ruleset (see `prefix`): no reference counted for it.
    Fold(u8, u32),
    /// Entry `j` of what static run `k` adds to MATCHED_VARS (see `prefix`).
    Run(u32, u32),
}

const NO_SLOT: u32 = u32::MAX;

/// "Not computed yet" for bit set offsets.
const NONE: u32 = u32::MAX;

/// Words of a union bit set accumulated on the stack (512 prefiltered
/// rules; the CRS has about 310).
const UNION_WORDS: usize = 8;

/// What the transaction memoises for one (slot, chain).
#[derive(Clone, Copy)]
struct Cell {
    /// The transformed value: `NONE` not computed yet, 0 unchanged, else
    /// `Memo::values[value - 1]`.
    value: u32,
    /// Offset in `Memo::bitsets` of the literal bit set of the transformed
    /// value (`NONE`: not scanned yet).
    bits: u32,
}

const EMPTY: Cell = Cell {
    value: NONE,
    bits: NONE,
};

/// The untransformed union of a union source (a variable, or one named
/// member of it) in a phase: the union of its values' bit sets, and the
/// bytes they contain.
#[derive(Clone, Copy)]
struct RawUnion {
    /// Offset of the bit set in `Memo::bitsets` (`NONE`: not made yet).
    offset: u32,
    /// The bytes the values contain.
    bytes: ByteSet,
    /// The source has no values (a named member the request lacks).
    none: bool,
}

impl RawUnion {
    const UNKNOWN: RawUnion = RawUnion {
        offset: NONE,
        bytes: [0; 4],
        none: false,
    };

    /// Whether this is also the union after `chain`: there are no values,
    /// there is no transformation, or the chain changes none of the values
    /// but in ASCII case (they hold none of its trigger bytes).
    #[inline]
    fn serves(&self, chains: &ChainTable, chain: u32) -> bool {
        self.none
            || chain == 0
            || chains
                .triggers
                .get(chain as usize)
                .and_then(Option::as_ref)
                .is_some_and(|t| disjoint(&self.bytes, t))
    }
}

/// Per-transaction memo of transformation results and literal bit sets.
///
/// Every stable value has a dense slot; a slot that is ever transformed gets
/// a row of one [`Cell`] per chain of the ruleset's [`ChainTable`]. Bit sets
/// (one bit per prefiltered rule: its literals occur in the value) are
/// computed once per distinct transformed content, whatever slot or chain it
/// came from, and unions over a variable's values once per (chain, variable)
/// and phase.
#[derive(Default)]
struct Memo {
    /// Slot -> index of its row (`NONE`: no row yet).
    rows: Vec<u32>,
    cells: Vec<Cell>,
    /// Transformed values that differ from their input.
    values: Vec<Bytes>,
    /// Per row: the set of bytes the slot's value contains (computed on demand).
    bytes: Vec<Option<ByteSet>>,
    bitsets: Vec<u64>,
    /// Transformed content -> offset of its bit set.
    scanned: FxHashMap<Bytes, u32>,
    /// Union id (see `Rule::union_ids`) -> offset of the union bit set
    /// (`NONE`: not computed in this phase).
    unions: Vec<u32>,
    /// Union source (`Compiled::union_sources`: a variable or one named
    /// member) -> the union of its values' untransformed bit sets, for this
    /// phase. A chain whose trigger bytes none of the values holds changes
    /// them at most in case, so its union is this one.
    raw_unions: Vec<RawUnion>,
    /// Emptied buffers of an earlier transaction, handed to the next one so
    /// that it does not grow new ones.
    spare: Spare,
    /// Transformation steps already applied, as linked lists per step input
    /// (see [`Step`]): chains that differ only by a step that left the value
    /// unchanged (CRS 934100's `removeWhitespace,base64Decode` and 934160's
    /// `base64Decode`) then decode the same value once, and so do the steps
    /// after it.
    steps: Vec<Step>,
    /// Per row: the first of the steps applied to the slot's stored value
    /// (`NONE`: none yet).
    raw_steps: Vec<u32>,
    /// Per `values` entry: the first of the steps applied to it.
    value_steps: Vec<u32>,
    /// The `Cell::value` of the empty derived value, shared by every step
    /// that empties its input (base64Decode of anything not base64), so it
    /// is neither allocated again nor transformed again.
    empty: Option<u32>,
    /// Slot -> its value's entry in the ruleset's verdict cache, looked up
    /// on first use.
    verdicts: Vec<VerdictSlot>,
    /// Offset in `bitsets` of an all-zero bit set (the union of an empty
    /// collection), when made.
    zero: Option<u32>,
}

/// The buffers a finished transaction hands to the next one on its thread.
#[derive(Default)]
struct Spare {
    matched: Vec<Record>,
    matched_vars: Vec<Matched>,
    stored: Stored,
    tx: layered::Map,
    scratch: Vec<Val>,
    setvar_bufs: (Vec<u8>, Vec<u8>),
}

/// A slot's entry in the verdict cache.
#[derive(Clone, Default)]
enum VerdictSlot {
    /// Not looked up yet.
    #[default]
    Unknown,
    /// The cache does not keep this value.
    Uncached,
    Entry(Arc<Verdicts>),
}

/// One transformation step applied to one input (a stored value or a
/// derived one), in a list per input.
#[derive(Clone, Copy)]
struct Step {
    /// The transformation's function (equal functions give equal outputs).
    apply: usize,
    /// The step's result, as a `Cell::value`.
    out: u32,
    /// The next step applied to the same input (`NONE`: the last).
    next: u32,
}

thread_local! {
    /// A finished transaction's emptied memo, so the next transaction on this
    /// thread starts with grown buffers instead of growing them again.
    static SPARE_MEMO: std::cell::RefCell<Option<Memo>> = const { std::cell::RefCell::new(None) };
}

/// Buffers larger than this many elements are not kept for reuse.
const MAX_RECYCLED: usize = 1 << 16;

impl Memo {
    /// An empty memo, reusing the buffers of an earlier transaction when this
    /// thread has them.
    fn recycled() -> Memo {
        SPARE_MEMO
            .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Empties the memo and keeps it for this thread's next transaction.
    fn recycle(mut self) {
        if self.cells.capacity() > MAX_RECYCLED
            || self.bitsets.capacity() > MAX_RECYCLED
            || self.rows.capacity() > MAX_RECYCLED
            || self.values.capacity() > MAX_RECYCLED
            || self.scanned.capacity() > MAX_RECYCLED
            || self.steps.capacity() > MAX_RECYCLED
        {
            return;
        }
        self.rows.clear();
        self.cells.clear();
        self.values.clear();
        self.bytes.clear();
        self.bitsets.clear();
        self.scanned.clear();
        self.unions.clear();
        self.raw_unions.clear();
        self.steps.clear();
        self.raw_steps.clear();
        self.value_steps.clear();
        self.empty = None;
        self.verdicts.clear();
        self.zero = None;
        let _ = SPARE_MEMO.try_with(|spare| {
            if let Ok(mut s) = spare.try_borrow_mut() {
                *s = Some(self);
            }
        });
    }

    /// Index in `cells` of (slot, chain), creating the slot's row.
    #[inline]
    fn cell(&mut self, chains: &ChainTable, slot: u32, chain: u32) -> usize {
        match self.rows.get(slot as usize) {
            Some(&row) if row != NONE => row as usize * chains.len() + chain as usize,
            _ => self.new_row(chains, slot) + chain as usize,
        }
    }

    #[cold]
    fn new_row(&mut self, chains: &ChainTable, slot: u32) -> usize {
        let n = chains.len();
        let s = slot as usize;
        if self.rows.len() <= s {
            self.rows.resize(s + 1, NONE);
        }
        let row = self.cells.len() / n;
        self.rows[s] = row as u32;
        self.cells.resize(self.cells.len() + n, EMPTY);
        self.bytes.push(None);
        self.raw_steps.push(NONE);
        row * n
    }

    /// The value at `slot` (`raw`) after `chain`, as a `Cell::value`.
    ///
    /// The memoised case (most calls) is inlined into the callers; computing
    /// a new cell is not.
    #[inline]
    fn transformed(&mut self, chains: &ChainTable, slot: u32, chain: u32, raw: &[u8]) -> u32 {
        if chain == 0 {
            return 0;
        }
        if let Some(&row) = self.rows.get(slot as usize) {
            if row != NONE {
                let at = row as usize * chains.len() + chain as usize;
                if let Some(cell) = self.cells.get(at) {
                    if cell.value != NONE {
                        return cell.value;
                    }
                }
            }
        }
        self.compute_transformed(chains, slot, chain, raw)
    }

    /// [`Memo::transformed`] for a (slot, chain) not computed yet.
    #[inline(never)]
    fn compute_transformed(
        &mut self,
        chains: &ChainTable,
        slot: u32,
        chain: u32,
        raw: &[u8],
    ) -> u32 {
        let at = self.cell(chains, slot, chain);
        if self.cells[at].value != NONE {
            return self.cells[at].value;
        }
        if let Some(Some(unchanged)) = chains.unchanged.get(chain as usize) {
            // None of the bytes any step acts on: the whole chain leaves the
            // stored value as it is (most values for most chains).
            if disjoint(&self.raw_bytes(slot, raw), unchanged) {
                self.cells[at].value = 0;
                return 0;
            }
        }
        let parent = chains.parent[chain as usize];
        let base = self.transformed(chains, slot, parent, raw);
        if base == 0 {
            // The step's input is the stored value: when it holds none of the
            // bytes the step acts on, the step leaves it as it is.
            if let Some(Some(triggers)) = chains.step_triggers.get(chain as usize) {
                let present = self.raw_bytes(slot, raw);
                if disjoint(&present, triggers) {
                    self.cells[at].value = 0;
                    return 0;
                }
            }
        }
        let out = match chains.last[chain as usize] {
            Some(t) => {
                // Another chain may have applied the same step to the same
                // input already.
                let row = self.rows[slot as usize] as usize;
                let apply_fn = t.apply as usize;
                let head = match base {
                    0 => self.raw_steps[row],
                    k => self.value_steps[k as usize - 1],
                };
                match self.step_lookup(head, apply_fn) {
                    Some(out) => out,
                    None => {
                        let input = match base {
                            0 => raw,
                            k => &self.values[k as usize - 1][..],
                        };
                        let out = match apply(t, input) {
                            Some(o) => self.push_value(o),
                            None => base,
                        };
                        let id = self.steps.len() as u32;
                        self.steps.push(Step {
                            apply: apply_fn,
                            out,
                            next: head,
                        });
                        match base {
                            0 => self.raw_steps[row] = id,
                            k => self.value_steps[k as usize - 1] = id,
                        }
                        out
                    }
                }
            }
            None => base,
        };
        self.cells[at].value = out;
        out
    }

    /// Keeps a transformation's changed output; its `Cell::value`.
    fn push_value(&mut self, o: Vec<u8>) -> u32 {
        if o.is_empty() {
            if let Some(k) = self.empty {
                return k;
            }
        }
        self.values.push(Arc::from(o));
        self.value_steps.push(NONE);
        let k = self.values.len() as u32;
        if self.values.last().is_some_and(|v| v.is_empty()) {
            self.empty = Some(k);
        }
        k
    }

    /// The result of the step applying `apply_fn` in the list starting at
    /// `head`, when there is one.
    #[inline]
    fn step_lookup(&self, mut head: u32, apply_fn: usize) -> Option<u32> {
        while let Some(step) = self.steps.get(head as usize) {
            if step.apply == apply_fn {
                return Some(step.out);
            }
            head = step.next;
        }
        None
    }

    /// Offset in `bitsets` of the literal bit set of the value at `slot`
    /// (`raw`) after `chain`.
    fn bits(&mut self, rs: &RulesetInner, slot: u32, chain: u32, raw: &Bytes) -> usize {
        let chains = &rs.compiled.chains;
        let at = self.cell(chains, slot, chain);
        if self.cells[at].bits != NONE {
            return self.cells[at].bits as usize;
        }
        // Known from an earlier transaction with the same value.
        let words = match &rs.compiled.literals {
            Some(pf) if rs.verdicts.enabled() => {
                self.ensure_verdicts(&rs.verdicts, slot, raw);
                if let Some(VerdictSlot::Entry(e)) = self.verdicts.get(slot as usize) {
                    let offset = self.bitsets.len();
                    if e.extend_bits(chain, &mut self.bitsets) {
                        self.cells[at].bits = offset as u32;
                        return offset;
                    }
                }
                pf.words
            }
            _ => 0,
        };
        let offset = self.bits_now(rs, slot, chain, raw);
        self.cells[at].bits = offset as u32;
        if words > 0 {
            if let (Some(VerdictSlot::Entry(e)), Some(b)) = (
                self.verdicts.get(slot as usize),
                self.bitsets.get(offset..offset + words),
            ) {
                e.set_bits(chain, b);
            }
        }
        offset
    }

    /// [`Memo::bits`] computed in this transaction.
    fn bits_now(&mut self, rs: &RulesetInner, slot: u32, chain: u32, raw: &Bytes) -> usize {
        let chains = &rs.compiled.chains;
        let offset = if chain != 0 && self.case_only(chains, slot, chain, raw) {
            // The chain changes at most ASCII case: the raw value's bits.
            self.bits(rs, slot, 0, raw)
        } else {
            match self.transformed(chains, slot, chain, raw) {
                // Unchanged: the same bits as the raw value (chain 0).
                0 if chain != 0 => self.bits(rs, slot, 0, raw),
                0 => self.scan(rs.compiled.literals.as_ref(), raw),
                k => {
                    let v = Arc::clone(&self.values[k as usize - 1]);
                    self.scan(rs.compiled.literals.as_ref(), &v)
                }
            }
        };
        offset
    }

    /// Whether `chain` changes the value at `slot` (`raw`) at most in ASCII
    /// case (it contains none of the chain's trigger bytes).
    fn case_only(&mut self, chains: &ChainTable, slot: u32, chain: u32, raw: &[u8]) -> bool {
        let Some(triggers) = chains.triggers[chain as usize] else {
            return false;
        };
        let present = self.raw_bytes(slot, raw);
        disjoint(&present, &triggers)
    }

    /// The set of bytes the stored value at `slot` (`raw`) contains, computed
    /// once per slot (the slot's row must exist), or kept by the value's
    /// verdict cache entry.
    fn raw_bytes(&mut self, slot: u32, raw: &[u8]) -> ByteSet {
        let row = self.rows[slot as usize] as usize;
        if let Some(known) = self.bytes[row] {
            return known;
        }
        let bytes = match self.verdicts.get(slot as usize) {
            Some(VerdictSlot::Entry(e)) => e.bytes(),
            _ => byteset::of(raw),
        };
        self.bytes[row] = Some(bytes);
        bytes
    }

    /// The bit set of `value`, scanning it unless the same content was.
    fn scan(&mut self, pf: Option<&LiteralPrefilter>, value: &Bytes) -> usize {
        if let Some(&o) = self.scanned.get(&value[..]) {
            return o as usize;
        }
        let offset = self.bitsets.len();
        match pf {
            Some(pf) => {
                self.bitsets.resize(offset + pf.words, 0);
                pf.scanner.scan(&value[..], &mut self.bitsets[offset..]);
            }
            // No prefilter: nothing can be ruled out.
            None => self.bitsets.push(u64::MAX),
        }
        self.scanned.insert(Arc::clone(value), offset as u32);
        offset
    }

    /// A new bit set: the union of the bit sets of `values` (slot, stored
    /// value) after `chain`, with the union of the bytes the stored values
    /// contain.
    fn union_of<'v>(
        &mut self,
        rs: &RulesetInner,
        words: usize,
        values: impl Iterator<Item = (u32, &'v Bytes, &'v Bytes)>,
        chain: u32,
    ) -> (u32, ByteSet) {
        let mut bytes = [0u64; 4];
        if words > UNION_WORDS {
            return self.union_of_wide(rs, words, values, chain);
        }
        // Accumulated here, appended once: the value bit sets it reads are
        // appended to `bitsets` as they are computed.
        let mut acc = [0u64; UNION_WORDS];
        for (slot, raw, _) in values {
            let o = self.bits(rs, slot, chain, raw);
            match self.bitsets.get(o..o + words) {
                Some(set) => acc.iter_mut().zip(set).for_each(|(a, w)| *a |= w),
                None => acc = [u64::MAX; UNION_WORDS],
            }
            if chain == 0 {
                bytes = byteset::union(&bytes, &self.raw_bytes(slot, raw));
            }
        }
        let union = self.bitsets.len();
        self.bitsets.extend_from_slice(&acc[..words]);
        (union as u32, bytes)
    }

    /// [`Memo::union_of`] for bit sets of more than [`UNION_WORDS`] words.
    #[cold]
    fn union_of_wide<'v>(
        &mut self,
        rs: &RulesetInner,
        words: usize,
        values: impl Iterator<Item = (u32, &'v Bytes, &'v Bytes)>,
        chain: u32,
    ) -> (u32, ByteSet) {
        let union = self.bitsets.len();
        self.bitsets.resize(union + words, 0);
        let mut bytes = [0u64; 4];
        for (slot, raw, _) in values {
            let o = self.bits(rs, slot, chain, raw);
            for w in 0..words {
                let word = self.bitsets.get(o + w).copied().unwrap_or(u64::MAX);
                self.bitsets[union + w] |= word;
            }
            if chain == 0 {
                bytes = byteset::union(&bytes, &self.raw_bytes(slot, raw));
            }
        }
        (union as u32, bytes)
    }

    /// The verdict cache entry of the value at `slot` (`raw`), looking it
    /// up on first use.
    #[inline]
    fn verdicts(&mut self, cache: &VerdictCache, slot: u32, raw: &Bytes) -> Option<&Verdicts> {
        self.ensure_verdicts(cache, slot, raw);
        match self.verdicts.get(slot as usize) {
            Some(VerdictSlot::Entry(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether the verdict cache knows that the link with verdict bit `bit`
    /// does not match the value at `slot` (`raw`).
    #[inline]
    fn verdict_miss(&mut self, cache: &VerdictCache, slot: u32, raw: &Bytes, bit: u32) -> bool {
        slot != NO_SLOT
            && self
                .verdicts(cache, slot, raw)
                .is_some_and(|e| e.known_miss(bit))
    }

    /// Looks up the verdict cache entry of the value at `slot` (`raw`)
    /// unless done already.
    #[inline]
    fn ensure_verdicts(&mut self, cache: &VerdictCache, slot: u32, raw: &Bytes) {
        let s = slot as usize;
        if let Some(VerdictSlot::Entry(_) | VerdictSlot::Uncached) = self.verdicts.get(s) {
            return;
        }
        self.lookup_verdicts(cache, s, raw);
    }

    #[cold]
    fn lookup_verdicts(&mut self, cache: &VerdictCache, s: usize, raw: &Bytes) {
        if self.verdicts.len() <= s {
            self.verdicts.resize(s + 1, VerdictSlot::Unknown);
        }
        self.verdicts[s] = match cache.entry(raw) {
            Some(e) => VerdictSlot::Entry(e),
            None => VerdictSlot::Uncached,
        };
    }

    /// The untransformed union of union source `source` in this phase,
    /// made by `make` the first time it is asked for.
    #[inline]
    fn raw_union(&mut self, source: usize, make: impl FnOnce(&mut Memo) -> RawUnion) -> RawUnion {
        if let Some(&known) = self.raw_unions.get(source).filter(|r| r.offset != NONE) {
            return known;
        }
        let made = make(self);
        if let Some(at) = self.raw_unions.get_mut(source) {
            *at = made;
        }
        made
    }

    /// Offset of an all-zero bit set of `words` words (made once).
    fn zero_bits(&mut self, words: usize) -> u32 {
        *self.zero.get_or_insert_with(|| {
            let offset = self.bitsets.len();
            self.bitsets.resize(offset + words, 0);
            offset as u32
        })
    }

    /// Whether the bit set at `offset` has `bit`.
    #[inline]
    fn has(&self, offset: usize, bit: u32) -> bool {
        self.bitsets
            .get(offset + (bit / 64) as usize)
            .is_none_or(|w| w & (1u64 << (bit % 64)) != 0)
    }

    /// The union `union_id` when the untransformed union of its variable,
    /// made earlier in the phase, is it: the variable's values hold none of
    /// the chain's trigger bytes, so the chain changes them at most in case.
    /// Recorded as the union's offset.
    #[inline]
    fn raw_union_serves(
        &mut self,
        compiled: &super::compile::Compiled,
        union_id: u32,
    ) -> Option<u32> {
        let meta = compiled.union_meta.get(union_id as usize)?;
        let raw = self.raw_unions.get(usize::from(meta.source))?;
        if raw.offset == NONE || !raw.serves(&compiled.chains, meta.chain) {
            return None;
        }
        let offset = raw.offset;
        if let Some(slot) = self.unions.get_mut(union_id as usize) {
            *slot = offset;
        }
        Some(offset)
    }

    /// Whether (slot, chain) is known to lack `bit` (computed earlier).
    #[inline]
    fn known_miss(&self, chains: &ChainTable, slot: u32, chain: u32, bit: u32) -> bool {
        let Some(&row) = self.rows.get(slot as usize) else {
            return false;
        };
        if row == NONE {
            return false;
        }
        let c = &self.cells[row as usize * chains.len() + chain as usize];
        c.bits != NONE && !self.has(c.bits as usize, bit)
    }
}

/// Applies one transformation; `None` when it left the input unchanged.
fn apply(t: Transformation, input: &[u8]) -> Option<Vec<u8>> {
    match (t.apply)(input) {
        Cow::Owned(o) => Some(o),
        // Some transformations (trim) borrow a shorter part of their input.
        Cow::Borrowed(b) if b.len() != input.len() => Some(b.to_vec()),
        Cow::Borrowed(_) => None,
    }
}

/// Scalar values with their slots, indexed by variable (about twenty per
/// request, looked up by every rule that reads one: no hashing).
#[derive(Clone, Default)]
struct Scalars(Vec<Option<(Bytes, u32)>>);

impl Scalars {
    #[inline]
    fn get(&self, v: &Variable) -> Option<&(Bytes, u32)> {
        self.0.get(*v as usize)?.as_ref()
    }

    fn insert(&mut self, v: Variable, value: (Bytes, u32)) {
        let i = v as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(value);
    }
}

/// The values a transaction stores, each with its slot(s). Shared
/// (`Rc`) so that a rule can read them while the transaction changes its
/// other state; they only change between phases.
#[derive(Clone, Default)]
struct Stored {
    args_get: Vec<Entry>,
    args_post: Vec<Entry>,
    headers: Vec<Entry>,
    cookies: Vec<Entry>,
    resp_headers: Vec<Entry>,
    files: Vec<Entry>,
    files_sizes: Vec<Entry>,
    part_headers: Vec<Entry>,
    /// XML:/* and XML://@* (the selections with stable slots), made when
    /// the XML body is parsed; keys are the XPath.
    xml_text: Vec<Entry>,
    xml_attrs: Vec<Entry>,
    /// Scalar values with their slots.
    scalars: Scalars,
    /// Next free slot.
    next_slot: u32,
}

impl Stored {
    /// Empties every list, keeping the room they grew (see [`Spare`]).
    fn clear(&mut self) {
        for list in [
            &mut self.args_get,
            &mut self.args_post,
            &mut self.headers,
            &mut self.cookies,
            &mut self.resp_headers,
            &mut self.files,
            &mut self.files_sizes,
            &mut self.part_headers,
            &mut self.xml_text,
            &mut self.xml_attrs,
        ] {
            list.clear();
        }
        self.scalars.0.clear();
        self.next_slot = 0;
    }
}

impl Stored {
    /// The stored entries behind a collection variable with stable slots
    /// (two lists for ARGS and ARGS_NAMES), and whether the keys are the values.
    fn entry_lists(&self, var: Variable, xml: XmlList) -> Option<([&[Entry]; 2], bool)> {
        use Variable as V;
        let none: &[Entry] = &[];
        Some(match var {
            V::Args => ([&self.args_get, &self.args_post], false),
            V::ArgsGet => ([&self.args_get, none], false),
            V::ArgsPost => ([&self.args_post, none], false),
            V::ArgsNames => ([&self.args_get, &self.args_post], true),
            V::ArgsGetNames => ([&self.args_get, none], true),
            V::ArgsPostNames => ([&self.args_post, none], true),
            V::RequestHeaders => ([&self.headers, none], false),
            V::RequestHeadersNames => ([&self.headers, none], true),
            V::RequestCookies => ([&self.cookies, none], false),
            V::RequestCookiesNames => ([&self.cookies, none], true),
            V::ResponseHeaders => ([&self.resp_headers, none], false),
            V::ResponseHeadersNames => ([&self.resp_headers, none], true),
            V::Files => ([&self.files, none], false),
            V::FilesNames => ([&self.files, none], true),
            V::FilesSizes => ([&self.files_sizes, none], false),
            V::MultipartPartHeaders => ([&self.part_headers, none], false),
            V::Xml => match xml {
                XmlList::Text => ([&self.xml_text, none], false),
                XmlList::Attributes => ([&self.xml_attrs, none], false),
                XmlList::Other => return None,
            },
            _ => return None,
        })
    }
}

#[derive(Debug)]
enum RemovedBy {
    Id(IdRange),
    /// A tag and its [`super::rule::tag_bloom`].
    Tag(String, u64),
    Msg(String),
}

#[derive(Debug, Default, Clone, Copy)]
struct AllowState {
    all: bool,
    request: bool,
}

enum Flow<'r> {
    Continue,
    Skip(u32),
    SkipAfter(&'r str),
    StopPhase,
    StopAll,
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A collection (TX, IP, ...): lowercased key to value.
///
/// Keys and values are shared (`Arc`) because rules read them as values
/// (`TX:key`, `TX:/regex/`, MATCHED_VAR) without copying. Writing one
/// rarely allocates: literal setvar keys and values are built at compile
/// time, arithmetic results and counts up to [`SHARED_INTS`] come from a
/// per-thread table, a value that is one variable (`%{tx.a}`,
/// `%{MATCHED_VAR}`) shares that variable's value, and a capture of the
/// whole input shares the input.
type Collection = layered::Layered;

/// Room the TX collection starts with: the CRS at paranoia level 1 sets
/// about 55 variables per request, so it never grows (rehashing) then.
const TX_CAPACITY: usize = 64;

/// Integers below this are shared values (see [`int_value`]).
const SHARED_INTS: usize = 256;

thread_local! {
    /// `0`, `1`, ... `255` as shared values, made once per thread.
    static INTS: Box<[Bytes]> = (0..SHARED_INTS)
        .map(|n| Arc::from(n.to_string().as_bytes()))
        .collect();
}

/// `n` in decimal as a value: shared (no allocation) when it is below
/// [`SHARED_INTS`], else one allocation.
fn int_value(n: i64) -> Bytes {
    if let Ok(i) = usize::try_from(n) {
        if i < SHARED_INTS {
            if let Ok(v) = INTS.try_with(|t| t[i].clone()) {
                return v;
            }
        }
    }
    let mut buf = [0u8; 20];
    Arc::from(decimal(n, &mut buf))
}

/// Appends `n` in decimal to `out`.
fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        // i64::MIN has 19 digits: there is room for the sign.
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// Where a macro variable's value comes from.
enum MacroSource<'a> {
    /// A value the transaction holds (shared or borrowed, never copied).
    Value(&'a Bytes),
    /// Expands to nothing.
    Empty,
    /// Made on demand (`RULE`, `DURATION`, XML, ...).
    Computed,
}

impl<'a> MacroSource<'a> {
    fn found(v: Option<&'a Bytes>) -> MacroSource<'a> {
        v.map_or(MacroSource::Empty, MacroSource::Value)
    }
}

/// Writes `n` in lowercase hexadecimal, at least `width` digits, at the
/// start of `out` (room for 32 digits); returns the number of digits.
fn hex_digits(n: u128, width: usize, out: &mut [u8]) -> usize {
    let digits = (128 - n.leading_zeros() as usize)
        .div_ceil(4)
        .max(width)
        .min(32);
    for (i, slot) in out.iter_mut().take(digits).enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = b"0123456789abcdef"[((n >> shift) & 0xf) as usize];
    }
    digits.min(out.len())
}

/// `key` lowercased in `buf` when it fits (no allocation), else owned.
fn lowercase_key<'b>(key: &[u8], buf: &'b mut [u8; 64]) -> Cow<'b, [u8]> {
    match buf.get_mut(..key.len()) {
        Some(b) => {
            b.copy_from_slice(key);
            b.make_ascii_lowercase();
            Cow::Borrowed(b)
        }
        None => Cow::Owned(key.to_ascii_lowercase()),
    }
}

/// State of one request passing through the rules.
///
/// A transaction belongs to the thread that created it (it is not `Send`):
/// its request values are reference counted without atomic operations,
/// which cost more than the rest of the bookkeeping around them. Run a
/// request's phases where it began, as the enforcer does in one call;
/// the [`Ruleset`](super::Ruleset) it came from is shared across threads.
pub struct Transaction {
    rs: Arc<RulesetInner>,
    mode: EngineMode,
    start: Instant,
    /// Request and response values with their slots (an `Rc`: evaluating
    /// a rule holds it while the transaction changes, and an `Arc` would
    /// count that atomically for every rule).
    v: Rc<Stored>,
    xml: Option<body::xml::XmlDocument>,
    /// TX, keys lowercased (shared `Bytes`, so collecting `TX:key` clones no key).
    tx: Collection,
    collections: FxHashMap<String, Collection>,
    /// MATCHED_VARS of the rules evaluated since one matched nothing; the
    /// last is MATCHED_VAR.
    matched_vars: Vec<Matched>,
    /// The rule being evaluated, as (phase, index in the phase's items):
    /// read by `RULE` macros and variables, kept without touching an `Arc`.
    cur_rule: Option<(u8, u32)>,
    pending_msg: Option<String>,
    pending_logdata: Option<String>,
    removed: Vec<RemovedBy>,
    removed_targets: Vec<(RemovedBy, Exclusion)>,
    request_body: Vec<u8>,
    body_processor: Option<BodyProcessor>,
    request_body_access: Option<bool>,
    force_body_variable: bool,
    response_body_access: Option<bool>,
    request_body_limit: Option<u64>,
    response_body: Vec<u8>,
    intervention: Option<Intervention>,
    /// The rules that matched, without those of the static runs applied.
    matched: Vec<Record>,
    /// The static runs applied (see [`prefix`]) that matched rules, with
    /// where their matches go in `matched`: shared with the ruleset, not
    /// copied, unless [`Transaction::matched_rules`] is asked for them.
    prefix_matched: Vec<(usize, usize)>,
    /// Every matched rule in order, made when asked for while some static
    /// run's matches are not in `matched` (emptied by the next match).
    matched_view: std::cell::OnceCell<Vec<MatchedRule>>,
    allow: AllowState,
    /// Transformation results and literal bit sets.
    memo: Memo,
    /// Reused buffer for a rule's collected values.
    scratch: Vec<Val>,
    /// Reused buffers for setvar keys and values with macros.
    setvar_bufs: (Vec<u8>, Vec<u8>),
    /// Evaluating phase 1's static rules when the ruleset is built (see
    /// [`prefix`]); `static_abort` says a chain went on to a link that is not
    /// static.
    static_run: bool,
    static_abort: bool,
    /// The last static run of phase 1 was applied: frozen TX variables
    /// hold the values `prefix` folded rules with.
    frozen_tx: bool,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let mut memo = std::mem::take(&mut self.memo);
        let spare = &mut memo.spare;
        // Each buffer is kept emptied, unless an unusual request grew it.
        spare.matched = emptied(std::mem::take(&mut self.matched), MAX_RECYCLED_MATCHES);
        spare.matched_vars = emptied(std::mem::take(&mut self.matched_vars), MAX_RECYCLED_MATCHES);
        if let Some(stored) = Rc::get_mut(&mut self.v) {
            if stored.next_slot as usize <= MAX_RECYCLED_MATCHES {
                stored.clear();
                spare.stored = std::mem::take(stored);
            }
        }
        let mut own = self.tx.take_own();
        if own.capacity() <= MAX_RECYCLED_MATCHES {
            own.clear();
            spare.tx = own;
        }
        spare.scratch = emptied(std::mem::take(&mut self.scratch), MAX_RECYCLED_MATCHES);
        let (k, v) = std::mem::take(&mut self.setvar_bufs);
        spare.setvar_bufs = (emptied(k, MAX_RECYCLED), emptied(v, MAX_RECYCLED));
        memo.recycle();
    }
}

/// `v` emptied for reuse, unless an unusual request grew it past `max`
/// elements (then a new, empty list).
fn emptied<T>(mut v: Vec<T>, max: usize) -> Vec<T> {
    if v.capacity() > max {
        return Vec::new();
    }
    v.clear();
    v
}

/// Match lists (and the other per-transaction lists kept for reuse)
/// longer than this are not kept.
const MAX_RECYCLED_MATCHES: usize = 1024;

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("mode", &self.mode)
            .field("matched", &self.matched.len())
            .field("intervention", &self.intervention)
            .finish_non_exhaustive()
    }
}

/// Appends `data` to `buf` unless that would pass `limit` (0: no limit).
/// Over the limit, `ProcessPartial` keeps what fits and `Reject` keeps
/// nothing more; returns whether the limit was passed.
fn append_capped(buf: &mut Vec<u8>, data: &[u8], limit: u64, action: BodyLimitAction) -> bool {
    let cur = buf.len() as u64;
    if limit == 0 || cur + data.len() as u64 <= limit {
        buf.extend_from_slice(data);
        return false;
    }
    if action == BodyLimitAction::ProcessPartial {
        let room = limit.saturating_sub(cur) as usize;
        buf.extend_from_slice(&data[..room.min(data.len())]);
    }
    true
}

/// Percent-decodes `%XX` (invalid sequences are kept), as ModSecurity's
/// `uri_decode` does for REQUEST_URI and REQUEST_FILENAME.
fn uri_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            let h = (input[i + 1] as char).to_digit(16);
            let l = (input[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

impl Transaction {
    pub(crate) fn new(rs: Arc<RulesetInner>) -> Transaction {
        let mode = rs.compiled.config.engine;
        let mut memo = Memo::recycled();
        let spare = std::mem::take(&mut memo.spare);
        let tx = if spare.tx.capacity() > 0 {
            Collection::with_own(spare.tx)
        } else {
            Collection::with_capacity(TX_CAPACITY)
        };
        let mut scratch = spare.scratch;
        scratch.reserve(64);
        let mut t = Transaction {
            rs,
            mode,
            start: Instant::now(),
            v: Rc::new(spare.stored),
            xml: None,
            tx,
            collections: FxHashMap::default(),
            matched_vars: spare.matched_vars,
            cur_rule: None,
            pending_msg: None,
            pending_logdata: None,
            removed: Vec::new(),
            removed_targets: Vec::new(),
            request_body: Vec::new(),
            body_processor: None,
            request_body_access: None,
            force_body_variable: false,
            response_body_access: None,
            request_body_limit: None,
            response_body: Vec::new(),
            intervention: None,
            matched: spare.matched,
            prefix_matched: Vec::new(),
            matched_view: std::cell::OnceCell::new(),
            allow: AllowState::default(),
            memo,
            scratch,
            setvar_bufs: spare.setvar_bufs,
            static_run: false,
            static_abort: false,
            frozen_tx: false,
        };
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        // `{now:x}{n:08x}`, without the formatting machinery.
        let mut id = [0u8; 48];
        let len = hex_digits(now, 1, &mut id);
        let len = len + hex_digits(u128::from(n), 8, &mut id[len..]);
        t.set_scalar(Variable::UniqueId, &id[..len]);
        t
    }

    fn set_scalar(&mut self, v: Variable, value: &[u8]) {
        let st = Rc::make_mut(&mut self.v);
        let slot = st.next_slot;
        st.next_slot += 1;
        st.scalars.insert(v, (Arc::from(value), slot));
    }

    fn scalar(&self, v: Variable) -> Option<&Bytes> {
        self.v.scalars.get(&v).map(|(b, _)| b)
    }

    /// Overrides the ruleset's engine mode for this request (per-service mode).
    pub fn set_engine_mode(&mut self, mode: EngineMode) {
        self.mode = mode;
    }

    /// The engine mode in force (a rule's `ctl:ruleEngine` may change it).
    pub fn engine_mode(&self) -> EngineMode {
        self.mode
    }

    /// Sets UNIQUE_ID (e.g. Envoy's x-request-id).
    pub fn set_unique_id(&mut self, id: &str) {
        self.set_scalar(Variable::UniqueId, id.as_bytes());
    }

    /// Connection facts: REMOTE_ADDR/PORT, SERVER_ADDR/PORT.
    pub fn process_connection(
        &mut self,
        client_ip: &str,
        client_port: u16,
        server_ip: &str,
        server_port: u16,
    ) {
        self.set_scalar(Variable::RemoteAddr, client_ip.as_bytes());
        self.set_scalar(Variable::RemoteHost, client_ip.as_bytes());
        self.set_scalar(Variable::RemotePort, client_port.to_string().as_bytes());
        self.set_scalar(Variable::ServerAddr, server_ip.as_bytes());
        self.set_scalar(Variable::ServerPort, server_port.to_string().as_bytes());
    }

    /// The request line: method, URI as sent (path and query), protocol (`HTTP/1.1`).
    ///
    /// As ModSecurity v3.0.15 does: REQUEST_LINE and REQUEST_URI_RAW keep the
    /// URI exactly as sent; everything else ignores a `#fragment`; the path is
    /// split from the query at the first raw `?` and then percent-decoded for
    /// REQUEST_FILENAME/REQUEST_BASENAME; REQUEST_URI is the decoded URI with
    /// the scheme and authority of an absolute-form URI removed.
    pub fn process_uri(&mut self, uri: &str, method: &str, protocol: &str) {
        let raw = uri.as_bytes();
        let no_fragment = match memchr::memchr(b'#', raw) {
            Some(p) => &raw[..p],
            None => raw,
        };
        self.set_scalar(Variable::RequestMethod, method.as_bytes());
        let mut line = Vec::with_capacity(method.len() + uri.len() + protocol.len() + 2);
        for (i, part) in [method, uri, protocol].into_iter().enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(part.as_bytes());
        }
        self.set_scalar(Variable::RequestLine, &line);
        self.set_scalar(Variable::RequestProtocol, protocol.as_bytes());
        let (path_raw, query) = match memchr::memchr(b'?', no_fragment) {
            Some(q) => (&no_fragment[..q], Some(&no_fragment[q + 1..])),
            None => (no_fragment, None),
        };
        if let Some(qs) = query {
            self.set_scalar(Variable::QueryString, qs);
            let sep = self.rs.compiled.config.argument_separator;
            let parsed = body::urlencoded::parse(qs, sep);
            if parsed.invalid_encoding {
                self.set_scalar(Variable::UrlencodedError, b"1");
            }
            let limit = self.rs.compiled.config.arguments_limit;
            let st = Rc::make_mut(&mut self.v);
            let next = &mut st.next_slot;
            st.args_get = parsed
                .pairs
                .iter()
                .take(limit)
                .map(|(k, v)| entry(next, k, v))
                .collect();
        }
        let path_info = uri_decode(path_raw);
        self.set_scalar(Variable::PathInfo, &path_info);
        self.set_scalar(Variable::RequestFilename, &path_info);
        // REQUEST_BASENAME always exists (empty for `/`, `/a/` or a path
        // without a separator), as in ModSecurity v3.0.15.
        let basename = match path_info.iter().rposition(|&b| b == b'/' || b == b'\\') {
            Some(off) if path_info.len() > off + 1 => &path_info[off + 1..],
            _ => &b""[..],
        };
        self.set_scalar(Variable::RequestBasename, basename);
        let decoded = uri_decode(no_fragment);
        // Absolute-form URIs: REQUEST_URI drops scheme and authority.
        let mut parsed_uri: &[u8] = &decoded;
        if !decoded.is_empty() && decoded[0] != b'/' {
            if let Some(colon) = memchr::memchr(b':', &decoded) {
                let rest = &decoded[colon + 1..];
                if rest.starts_with(b"//") {
                    if let Some(slash) = memchr::memchr(b'/', &rest[2..]) {
                        parsed_uri = &rest[2 + slash..];
                    }
                }
            }
        }
        let parsed_uri = parsed_uri.to_vec();
        self.set_scalar(Variable::RequestUri, &parsed_uri);
        self.set_scalar(Variable::RequestUriRaw, raw);
    }

    /// One request header (repeatable).
    pub fn add_request_header(&mut self, name: &[u8], value: &[u8]) {
        let st = Rc::make_mut(&mut self.v);
        st.headers.push(entry(&mut st.next_slot, name, value));
        if name.eq_ignore_ascii_case(b"cookie") {
            self.parse_cookies(value);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let l = value.to_ascii_lowercase();
            if l.starts_with(b"multipart/form-data") {
                self.set_scalar(Variable::ReqbodyProcessor, b"MULTIPART");
            } else if l.starts_with(b"application/x-www-form-urlencoded") {
                self.set_scalar(Variable::ReqbodyProcessor, b"URLENCODED");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            let host = value
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default()
                .to_vec();
            self.set_scalar(Variable::ServerName, &host);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            let t = value
                .split(|&b| b == b' ')
                .next()
                .unwrap_or_default()
                .to_vec();
            self.set_scalar(Variable::AuthType, &t);
        }
    }

    fn parse_cookies(&mut self, value: &[u8]) {
        let mut parts: Vec<&[u8]> = value.split(|&b| b == b';').collect();
        if let Some(last) = parts.last_mut() {
            *last = last.trim_ascii_end();
        }
        for c in parts {
            if c.is_empty() {
                continue;
            }
            let (k, v) = match memchr::memchr(b'=', c) {
                Some(p) => (&c[..p], &c[p + 1..]),
                None => (c, &b""[..]),
            };
            let k = k.trim_ascii_start();
            if k.is_empty() {
                continue;
            }
            let st = Rc::make_mut(&mut self.v);
            st.cookies.push(entry(&mut st.next_slot, k, v));
        }
    }

    /// Runs phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        self.run_phase(1)
    }

    fn body_limit(&self) -> u64 {
        self.request_body_limit
            .unwrap_or(self.rs.compiled.config.request_body_limit)
    }

    /// Buffers request body bytes; may intervene when over the body limit with `Reject`.
    pub fn append_request_body(&mut self, data: &[u8]) -> Option<Intervention> {
        let limit = self.body_limit();
        let action = self.rs.compiled.config.request_body_limit_action;
        if append_capped(&mut self.request_body, data, limit, action) {
            self.set_scalar(Variable::InboundDataError, b"1");
            if action == BodyLimitAction::Reject {
                self.deny_over_limit(2);
            }
            return self.intervention.clone();
        }
        None
    }

    /// Body over its limit with `Reject`: a 403 intervention when the engine
    /// is On and nothing intervened yet (ModSecurity v3 does not reject in
    /// DetectionOnly).
    fn deny_over_limit(&mut self, phase: u8) {
        if self.mode == EngineMode::On && self.intervention.is_none() {
            self.intervention = Some(Intervention {
                status: 403,
                redirect: None,
                action: DisruptiveAction::Deny,
                rule_id: 0,
                phase,
            });
        }
    }

    fn effective_processor(&self) -> Option<BodyProcessor> {
        if self.body_processor.is_some() {
            return self.body_processor;
        }
        match self.scalar(Variable::ReqbodyProcessor).map(|v| &v[..]) {
            Some(b"MULTIPART") => Some(BodyProcessor::Multipart),
            Some(b"URLENCODED") => Some(BodyProcessor::Urlencoded),
            _ => None,
        }
    }

    fn content_type(&self) -> Option<Bytes> {
        self.v
            .headers
            .iter()
            .find(|e| e.key.eq_ignore_ascii_case(b"content-type"))
            .map(|e| e.value.clone())
    }

    fn set_body_error(&mut self, msg: &str) {
        self.set_scalar(Variable::ReqbodyError, b"1");
        self.set_scalar(Variable::ReqbodyProcessorError, b"1");
        self.set_scalar(Variable::ReqbodyErrorMsg, msg.as_bytes());
        self.set_scalar(Variable::ReqbodyProcessorErrorMsg, msg.as_bytes());
    }

    /// Runs the body processor and phase 2.
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        if self.mode == EngineMode::Off {
            return None;
        }
        if self.intervention.is_some() {
            return self.intervention.clone();
        }
        if self.scalar(Variable::InboundDataError).is_none() {
            self.set_scalar(Variable::InboundDataError, b"0");
        }
        self.set_scalar(Variable::ReqbodyError, b"0");
        self.set_scalar(Variable::ReqbodyProcessorError, b"0");
        let access = self
            .request_body_access
            .unwrap_or(self.rs.compiled.config.request_body_access);
        if access {
            let processor = self.effective_processor();
            let rs = Arc::clone(&self.rs);
            let cfg = &rs.compiled.config;
            let no_files = cfg.request_body_no_files_limit;
            if processor != Some(BodyProcessor::Multipart)
                && no_files > 0
                && self.request_body.len() as u64 > no_files
            {
                self.set_scalar(Variable::InboundDataError, b"1");
                match cfg.request_body_limit_action {
                    BodyLimitAction::ProcessPartial => {
                        self.request_body.truncate(no_files as usize)
                    }
                    BodyLimitAction::Reject => {
                        if self.mode == EngineMode::On {
                            self.deny_over_limit(2);
                            return self.intervention.clone();
                        }
                    }
                }
            }
            let limits = BodyLimits {
                max_depth: cfg.request_body_json_depth_limit,
                max_args: cfg.arguments_limit,
            };
            let body = std::mem::take(&mut self.request_body);
            match processor {
                Some(BodyProcessor::Urlencoded) => {
                    let parsed = body::urlencoded::parse(&body, cfg.argument_separator);
                    if parsed.invalid_encoding {
                        self.set_scalar(Variable::UrlencodedError, b"1");
                    }
                    let st = Rc::make_mut(&mut self.v);
                    let next = &mut st.next_slot;
                    st.args_post.extend(
                        parsed
                            .pairs
                            .iter()
                            .take(limits.max_args)
                            .map(|(k, v)| entry(next, k, v)),
                    );
                }
                Some(BodyProcessor::Json) => {
                    // Like ModSecurity, keep the arguments read before an error.
                    let (pairs, err) = body::json::parse_partial(&body, &limits);
                    let st = Rc::make_mut(&mut self.v);
                    let next = &mut st.next_slot;
                    st.args_post
                        .extend(pairs.iter().map(|(k, v)| entry(next, k, v)));
                    if let Some(e) = err {
                        if !body.is_empty() {
                            self.set_body_error(&format!("JSON parsing error: {}", e.message))
                        }
                    }
                }
                Some(BodyProcessor::Xml) => {
                    let (doc, err) = body::xml::XmlDocument::parse_partial(&body, &limits);
                    let st = Rc::make_mut(&mut self.v);
                    let next = &mut st.next_slot;
                    st.xml_text = doc
                        .select("/*")
                        .iter()
                        .map(|v| entry(next, b"/*", v))
                        .collect();
                    st.xml_attrs = doc
                        .select("//@*")
                        .iter()
                        .map(|v| entry(next, b"//@*", v))
                        .collect();
                    self.xml = Some(doc);
                    if let Some(e) = err {
                        self.set_body_error(&format!("XML parsing error: {}", e.message));
                    }
                }
                Some(BodyProcessor::Multipart) => {
                    let ct = self.content_type().unwrap_or_else(|| Arc::from(&b""[..]));
                    let m = body::multipart::parse(&ct, &body, &limits);
                    self.apply_multipart(m);
                }
                None => {}
            }
            // REQUEST_BODY as Coraza exposes it, which is what the CRS
            // regression suite expects (ModSecurity v3 always sets it and is
            // excused from 31 cases for that): for URLENCODED and JSON bodies,
            // bodies no processor claimed, or with ctl:forceRequestBodyVariable=On;
            // not for XML and MULTIPART, whose parsed forms are inspected instead.
            let raw_body_visible = self.force_body_variable
                || matches!(
                    processor,
                    None | Some(BodyProcessor::Urlencoded) | Some(BodyProcessor::Json)
                );
            if !body.is_empty() && raw_body_visible {
                self.set_scalar(Variable::RequestBody, &body);
            }
            self.set_scalar(
                Variable::RequestBodyLength,
                body.len().to_string().as_bytes(),
            );
            self.request_body = body;
        }
        self.run_phase(2)
    }

    fn apply_multipart(&mut self, m: body::multipart::Multipart) {
        let f = m.flags;
        let flags = [
            (Variable::MultipartBoundaryQuoted, f.boundary_quoted),
            (Variable::MultipartBoundaryWhitespace, f.boundary_whitespace),
            (Variable::MultipartDataAfter, f.data_after),
            (Variable::MultipartDataBefore, f.data_before),
            (Variable::MultipartFileLimitExceeded, f.file_limit_exceeded),
            (Variable::MultipartHeaderFolding, f.header_folding),
            (
                Variable::MultipartInvalidHeaderFolding,
                f.invalid_header_folding,
            ),
            (Variable::MultipartInvalidPart, f.invalid_part),
            (Variable::MultipartInvalidQuoting, f.invalid_quoting),
            (Variable::MultipartLfLine, f.lf_line),
            (Variable::MultipartMissingSemicolon, f.missing_semicolon),
            (Variable::MultipartCrlfLfLines, f.crlf_lf_lines),
        ];
        for (v, on) in flags {
            self.set_scalar(v, if on { b"1" } else { b"0" });
        }
        // 0, 1 (a boundary-like line that is not ours) or 2 (the final boundary), as v3.
        self.set_scalar(
            Variable::MultipartUnmatchedBoundary,
            f.unmatched_boundary_value.to_string().as_bytes(),
        );
        let strict = f.strict_error();
        self.set_scalar(
            Variable::MultipartStrictError,
            if strict { b"1" } else { b"0" },
        );
        if let Some(e) = &m.error {
            self.set_body_error(&format!("Multipart parsing error: {e}"));
        }
        let st = Rc::make_mut(&mut self.v);
        let next = &mut st.next_slot;
        st.args_post
            .extend(m.args.iter().map(|(k, v)| entry(next, k, v)));
        let mut total = 0usize;
        for file in &m.files {
            st.files
                .push(entry(&mut st.next_slot, &file.name, &file.filename));
            let size = file.size.to_string();
            st.files_sizes
                .push(entry(&mut st.next_slot, &file.name, size.as_bytes()));
            total += file.size;
        }
        self.set_scalar(Variable::FilesCombinedSize, total.to_string().as_bytes());
        let st = Rc::make_mut(&mut self.v);
        let next = &mut st.next_slot;
        st.part_headers
            .extend(m.part_headers.iter().map(|(k, v)| entry(next, k, v)));
    }

    /// One response header (repeatable).
    pub fn add_response_header(&mut self, name: &[u8], value: &[u8]) {
        let st = Rc::make_mut(&mut self.v);
        st.resp_headers.push(entry(&mut st.next_slot, name, value));
        if name.eq_ignore_ascii_case(b"content-type") {
            let ct = value
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii()
                .to_vec();
            self.set_scalar(Variable::ResponseContentType, &ct);
        }
    }

    /// Runs phase 3 with the response status and protocol.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        protocol: &str,
    ) -> Option<Intervention> {
        self.set_scalar(Variable::ResponseStatus, status.to_string().as_bytes());
        self.set_scalar(Variable::ResponseProtocol, protocol.as_bytes());
        self.set_scalar(
            Variable::StatusLine,
            format!("{protocol} {status}").as_bytes(),
        );
        self.run_phase(3)
    }

    fn response_inspectable(&self) -> bool {
        let access = self
            .response_body_access
            .unwrap_or(self.rs.compiled.config.response_body_access);
        if !access {
            return false;
        }
        let types = &self.rs.compiled.config.response_body_mime_types;
        let ct = self
            .scalar(Variable::ResponseContentType)
            .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase())
            .unwrap_or_default();
        types.is_empty() || types.contains(&ct)
    }

    /// Buffers response body bytes.
    pub fn append_response_body(&mut self, data: &[u8]) -> Option<Intervention> {
        if !self.response_inspectable() {
            return None;
        }
        let limit = self.rs.compiled.config.response_body_limit;
        let action = self.rs.compiled.config.response_body_limit_action;
        if append_capped(&mut self.response_body, data, limit, action) {
            self.set_scalar(Variable::OutboundDataError, b"1");
            if action == BodyLimitAction::Reject {
                self.deny_over_limit(4);
            }
            return self.intervention.clone();
        }
        None
    }

    /// Runs phase 4. RESPONSE_BODY is set only when the response is
    /// inspectable (`SecResponseBodyAccess On` and a listed MIME type); phase 4
    /// rules run either way (Coraza's behaviour; ModSecurity v3 skips the
    /// phase).
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        if self.response_inspectable() {
            if self.scalar(Variable::OutboundDataError).is_none() {
                self.set_scalar(Variable::OutboundDataError, b"0");
            }
            let body = std::mem::take(&mut self.response_body);
            self.set_scalar(Variable::ResponseBody, &body);
            self.set_scalar(
                Variable::ResponseContentLength,
                body.len().to_string().as_bytes(),
            );
            self.response_body = body;
        }
        self.run_phase(4)
    }

    /// Runs phase 5.
    pub fn process_logging(&mut self) {
        self.run_phase(5);
    }

    /// The intervention, once one happened.
    pub fn intervention(&self) -> Option<&Intervention> {
        self.intervention.as_ref()
    }

    /// Rules that matched so far, in order.
    pub fn matched_rules(&self) -> &[MatchedRule] {
        self.matched_view
            .get_or_init(|| self.all_matched().filter_map(|r| self.report(r)).collect())
    }

    /// The report of a recorded match (always made: a quiet record names a
    /// rule of this transaction's ruleset).
    fn report(&self, r: &Record) -> Option<MatchedRule> {
        match r {
            Record::Full(m) => Some(m.clone()),
            &Record::Quiet {
                phase,
                item,
                disruptive,
            } => {
                let rule = self.rule_at(phase, item)?;
                Some(MatchedRule {
                    id: rule.id,
                    phase: rule.phase,
                    msg: String::new(),
                    data: String::new(),
                    severity: rule.actions.severity,
                    tags: Vec::new(),
                    span: rule.span.clone(),
                    log: false,
                    disruptive,
                    matched_var_name: String::new(),
                    matched_var: Vec::new(),
                    operator: String::new(),
                })
            }
        }
    }

    /// The severity of a recorded match.
    fn record_severity(&self, r: &Record) -> Option<u8> {
        match r {
            Record::Full(m) => m.severity,
            &Record::Quiet { phase, item, .. } => {
                self.rule_at(phase, item).and_then(|r| r.actions.severity)
            }
        }
    }

    /// The rule at `item` of `phase`.
    fn rule_at(&self, phase: u8, item: u32) -> Option<&Rule> {
        let items = self
            .rs
            .compiled
            .phases
            .get(usize::from(phase).checked_sub(1)?)?;
        match items.get(item as usize)? {
            Item::Rule(rule) => Some(rule),
            Item::Marker(_) => None,
        }
    }

    /// Every matched rule in order: those of the static runs applied
    /// (shared with the ruleset) where they belong among this
    /// transaction's own.
    fn all_matched(&self) -> impl Iterator<Item = &Record> {
        let prefix = self.rs.prefix.as_ref();
        let mut pieces = Vec::with_capacity(2 * self.prefix_matched.len() + 1);
        let mut from = 0;
        for &(k, at) in &self.prefix_matched {
            pieces.push(self.matched.get(from..at).unwrap_or(&[]));
            pieces.push(prefix.map_or(&[][..], |p| p.run_matched(k)));
            from = at;
        }
        pieces.push(self.matched.get(from..).unwrap_or(&[]));
        pieces.into_iter().flatten()
    }

    /// The inbound anomaly score (`TX:blocking_inbound_anomaly_score`, else
    /// `TX:anomaly_score`, else `TX:inbound_anomaly_score`).
    pub fn anomaly_score(&self) -> i64 {
        [
            "blocking_inbound_anomaly_score",
            "anomaly_score",
            "inbound_anomaly_score",
        ]
        .iter()
        .find_map(|k| self.tx.get(k.as_bytes()))
        .map(|v| atoi(v))
        .unwrap_or(0)
    }

    /// A TX variable, if set.
    pub fn tx_var(&self, name: &str) -> Option<Vec<u8>> {
        self.tx
            .get(name.to_ascii_lowercase().as_bytes())
            .map(|v| v.to_vec())
    }

    // ---------------------------------------------------------------- phases

    fn run_phase(&mut self, phase: u8) -> Option<Intervention> {
        if self.mode == EngineMode::Off {
            return self.intervention.clone();
        }
        if phase < 5 && self.intervention.is_some() {
            return self.intervention.clone();
        }
        if phase < 5 && (self.allow.all || (self.allow.request && phase <= 2)) {
            return None;
        }
        let rs = Arc::clone(&self.rs);
        self.memo.unions.clear();
        self.memo.unions.resize(rs.compiled.union_count, NONE);
        self.memo.raw_unions.clear();
        self.memo
            .raw_unions
            .resize(rs.compiled.union_sources.len(), RawUnion::UNKNOWN);
        self.zero_empty_unions(&rs, phase);
        let items = &rs.compiled.phases[phase as usize - 1];
        let jumps = &rs.compiled.skip_after[phase as usize - 1];
        // Phase 1's static runs (see `prefix`), for a transaction that has
        // not started it.
        let prefix = match &rs.prefix {
            Some(p)
                if phase == 1
                    && self.tx.is_empty()
                    && self.matched.is_empty()
                    && self.prefix_matched.is_empty() =>
            {
                Some(p)
            }
            _ => None,
        };
        // Rules reading frozen TX, answered when the ruleset was built
        // (valid once the last static run is applied).
        let folds = rs.prefix.as_ref().map_or(&[][..], |p| p.folds(phase));
        let plan = rs.prefix.as_ref().map_or(&[][..], |p| p.plan(phase));
        let mut next_run = 0;
        let mut i = 0;
        let mut skip = 0u32;
        while i < items.len() {
            if let Some(p) = prefix {
                if let Some(k) = p.run_at(i, &mut next_run) {
                    if skip == 0 {
                        (i, skip) = p.apply(k, self);
                        self.frozen_tx |= p.is_last(k);
                        continue;
                    }
                    // Not as the run was evaluated: evaluate everything.
                    next_run = usize::MAX;
                }
            }
            // Markers, misses and gates folded once frozen TX holds.
            if let (true, 0, Some(&step)) = (self.frozen_tx, skip, plan.get(i)) {
                if step != PlanStep::Eval
                    && self.mode != EngineMode::Off
                    && self.removals_spare(step.tags())
                {
                    match step {
                        PlanStep::Pass { to, clears, .. } => {
                            if clears {
                                self.clear_matched();
                            }
                            i = to as usize;
                        }
                        PlanStep::Gate { to, .. } => {
                            self.matched_vars.push(Matched::Fold(phase, i as u32));
                            self.matched_view.take();
                            self.matched.push(Record::Quiet {
                                phase,
                                item: i as u32,
                                disruptive: false,
                            });
                            i = to as usize;
                        }
                        PlanStep::Eval => {}
                    }
                    continue;
                }
            }
            let item = &items[i];
            i += 1;
            let Item::Rule(rule) = item else { continue };
            if self.mode == EngineMode::Off {
                break;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.is_removed(rule) {
                continue;
            }
            if rule.union_skippable {
                if let Some(bit) = rule.prefilter_bit {
                    if !self.targets_may_match(rule, bit) {
                        // Cannot match: none of its literals occurs anywhere it looks.
                        self.clear_matched();
                        continue;
                    }
                }
            }
            self.cur_rule = Some((phase, (i - 1) as u32));
            self.pending_msg = None;
            self.pending_logdata = None;
            let hit = match folds.get(i - 1) {
                Some(Fold::Miss) if self.frozen_tx && !self.targets_removed(rule) => {
                    self.clear_matched();
                    false
                }
                Some(Fold::Hit(_)) if self.frozen_tx && !self.targets_removed(rule) => {
                    self.folded_hit(rule, phase, i - 1)
                }
                _ => self.eval_rule(rule),
            };
            if !hit {
                continue;
            }
            match self.after_full_match(rule) {
                Flow::Continue => {}
                Flow::Skip(n) => skip = n,
                // Resolved when the ruleset was built.
                Flow::SkipAfter(_) => i = jumps.get(i - 1).map_or(items.len(), |&j| j as usize),
                Flow::StopPhase => break,
                Flow::StopAll => break,
            }
        }
        self.cur_rule = None;
        if phase < 5 {
            self.intervention.clone()
        } else {
            None
        }
    }

    /// The rule being evaluated (`RULE` macros and variables).
    fn current_rule(&self) -> Option<&Rule> {
        let (phase, index) = self.cur_rule?;
        self.rule_at(phase, index)
    }

    fn removed_by_matches(&self, by: &RemovedBy, rule: &Rule) -> bool {
        match by {
            RemovedBy::Id(r) => r.contains(rule.id),
            RemovedBy::Tag(t, bloom) => rule.has_tag_bloomed(t, *bloom),
            RemovedBy::Msg(m) => &rule.msg_text == m,
        }
    }

    /// Whether no rule removal of the transaction can apply to rules whose
    /// tag Bloom filters make `tags`: only removals by tag are told apart.
    #[inline]
    fn removals_spare(&self, tags: u64) -> bool {
        let spares = |by: &RemovedBy| matches!(by, RemovedBy::Tag(_, b) if tags & b != *b);
        self.removed.iter().all(spares) && self.removed_targets.iter().all(|(by, _)| spares(by))
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.removed
            .iter()
            .any(|by| self.removed_by_matches(by, rule))
    }

    /// Whether a `ctl:ruleRemoveTarget*` of this transaction applies to
    /// `rule`.
    #[inline]
    fn targets_removed(&self, rule: &Rule) -> bool {
        self.removed_targets
            .iter()
            .any(|(by, _)| self.removed_by_matches(by, rule))
    }

    /// [`Transaction::eval_rule`] for a rule (item `item` of `phase`) whose
    /// first link is known to match frozen TX (see `prefix`): as
    /// `eval_tx_target` after a match.
    fn folded_hit(&mut self, rule: &Rule, phase: u8, item: usize) -> bool {
        if rule.tx_target.is_none() {
            return self.eval_rule(rule);
        }
        self.matched_vars.push(Matched::Fold(phase, item as u32));
        self.run_setvars(&rule.actions.setvars);
        self.eval_chained(rule)
    }

    fn eval_rule(&mut self, rule: &Rule) -> bool {
        let Some(op) = &rule.operator else {
            // SecAction: unconditional.
            self.run_setvars(&rule.actions.setvars);
            return true;
        };
        // Targets removed at run time (`ctl:ruleRemoveTarget*`) that apply to
        // this rule (CRS 941010 removes REQUEST_FILENAME from the rules tagged
        // xss-perf-disable for most requests); empty, without allocating, for
        // every other rule. Cloned (a selector is reference counted), as the
        // values are evaluated while the exclusions are applied.
        let mut runtime: Vec<Exclusion> = Vec::new();
        for (by, e) in &self.removed_targets {
            if self.removed_by_matches(by, rule) {
                runtime.push(e.clone());
            }
        }
        if let (Some(tx_target), true) = (&rule.tx_target, runtime.is_empty()) {
            return self.eval_tx_target(rule, op, tx_target);
        }
        let skip = if rule.actions.multi_match {
            None
        } else {
            rule.prefilter_bit.map(|b| (rule.chain_id, b))
        };
        let no_exclusions = rule.exclusions.is_empty() && runtime.is_empty();
        let excluded = |var: Variable, key: &[u8]| {
            !no_exclusions
                && rule
                    .exclusions
                    .iter()
                    .chain(runtime.iter())
                    .any(|e| e.excludes(var, key))
        };
        let capture = rule.actions.capture;
        let mut any = false;
        if rule.stored_targets {
            // Stored values do not change while a phase runs: evaluate them
            // where they are (one reference count for the whole list).
            let stored = Rc::clone(&self.v);
            // Values this link is known to miss (most values of a request
            // that recur) are passed over first, before anything else is
            // looked at.
            let verdict_bit = self.verdict_bit(rule);
            for t in &rule.targets {
                let var = t.variable;
                match stored.entry_lists(var, t.xml_list) {
                    Some((lists, names)) => {
                        // Two plain loops: a flattening iterator costs
                        // more per entry than the verdict check itself.
                        for list in lists {
                            for e in list {
                                let slot = if names { e.kslot } else { e.vslot };
                                if let Some(bit) = verdict_bit {
                                    let value = if names { &e.key } else { &e.value };
                                    if self.memo.verdict_miss(&self.rs.verdicts, slot, value, bit) {
                                        continue;
                                    }
                                }
                                if self.known_miss(slot, skip)
                                    || !t.selector.matches(&e.key)
                                    || excluded(var, &e.key)
                                {
                                    continue;
                                }
                                let v = ValRef {
                                    var,
                                    key: Some(&e.key),
                                    value: if names { &e.key } else { &e.value },
                                    slot,
                                };
                                any |= self.eval_value(rule, op, v, capture);
                            }
                        }
                    }
                    None => {
                        let Some((value, slot)) = stored.scalars.get(&var) else {
                            continue;
                        };
                        if self.known_miss(*slot, skip) || excluded(var, b"") {
                            continue;
                        }
                        let v = ValRef {
                            var,
                            key: None,
                            value,
                            slot: *slot,
                        };
                        any |= self.eval_value(rule, op, v, capture);
                    }
                }
            }
        } else {
            let mut vals = std::mem::take(&mut self.scratch);
            vals.clear();
            for t in &rule.targets {
                let from = vals.len();
                self.collect_for(t, &mut vals, skip);
                // Only exclusions of this target's variable can drop its values.
                let mut exclusions = rule.exclusions.iter().chain(runtime.iter());
                if !no_exclusions && exclusions.any(|e| e.variable == t.variable) {
                    let mut kept = from;
                    for k in from..vals.len() {
                        let v = &vals[k];
                        if !excluded(v.var, v.key.as_deref().unwrap_or(b"")) {
                            vals.swap(kept, k);
                            kept += 1;
                        }
                    }
                    vals.truncate(kept);
                }
            }
            for v in &vals {
                any |= self.eval_value(rule, op, v.as_ref(), capture);
            }
            vals.clear();
            self.scratch = vals;
        }
        if !any {
            self.clear_matched();
            return false;
        }
        self.eval_chained(rule)
    }

    /// Evaluates the next link of a rule whose link matched (true without one).
    #[inline]
    fn eval_chained(&mut self, rule: &Rule) -> bool {
        match &rule.chained {
            Some(next) if self.static_run && !prefix::is_static(next) => {
                // Evaluating the static prefix: this link reads the request.
                self.static_abort = true;
                false
            }
            Some(next) => self.eval_rule(next),
            None => true,
        }
    }

    /// [`Transaction::eval_rule`] for a rule whose only target is `TX:key`
    /// or `&TX:key` (`Rule::tx_target`): the same steps as collecting that
    /// one value and [`Transaction::try_value`], without building a value
    /// list or the variable name.
    fn eval_tx_target(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        target: &super::rule::TxTarget,
    ) -> bool {
        let value = if target.count {
            Some(int_value(i64::from(self.tx.contains_key(&target.key))))
        } else {
            self.tx.get(&target.key[..]).cloned()
        };
        let hit = value.as_ref().is_some_and(|value| {
            op.prefilter.as_ref().is_none_or(|pf| pf.may_match(value))
                && self.operator_hit(op, value, rule.actions.capture)
        });
        let Some(value) = value.filter(|_| hit) else {
            self.clear_matched();
            return false;
        };
        let name = if target.count {
            MatchedName::Var(Variable::Tx)
        } else {
            MatchedName::Text(Arc::clone(&target.name))
        };
        self.record_match(rule, name, value);
        self.eval_chained(rule)
    }

    /// [`Transaction::eval_value_now`], unless the verdict cache knows the
    /// rule does not match the value; a miss of a pure rule is remembered.
    #[inline]
    fn eval_value(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        v: ValRef<'_>,
        capture: bool,
    ) -> bool {
        let Some(bit) = self.verdict_bit(rule) else {
            return self.eval_value_now(rule, op, v, capture);
        };
        if v.slot == NO_SLOT {
            return self.eval_value_unslotted(rule, op, v, capture, bit);
        }
        if self
            .memo
            .verdict_miss(&self.rs.verdicts, v.slot, v.value, bit)
        {
            return false;
        }
        let hit = self.eval_value_now(rule, op, v, capture);
        if !hit {
            if let Some(e) = self.memo.verdicts(&self.rs.verdicts, v.slot, v.value) {
                e.set_miss(bit, rule.prefilter_bit);
            }
        }
        hit
    }

    /// [`Transaction::eval_value`] for a value without a slot (a TX value
    /// the transaction set, MATCHED_VARS): its verdict cache entry is
    /// looked up by content for each evaluation, as nothing remembers it
    /// in the transaction. CRS 920450's chain checks every header name it
    /// put into TX (`/user-agent/`) this way.
    #[inline(never)]
    fn eval_value_unslotted(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        v: ValRef<'_>,
        capture: bool,
        bit: u32,
    ) -> bool {
        let entry = self.rs.verdicts.entry(v.value);
        if entry.as_ref().is_some_and(|e| e.known_miss(bit)) {
            return false;
        }
        let hit = self.eval_value_now(rule, op, v, capture);
        if let (false, Some(e)) = (hit, entry) {
            e.set_miss(bit, rule.prefilter_bit);
        }
        hit
    }

    /// The verdict cache bit of `rule` in this transaction: the link's bit
    /// while the cache is on, if its operator is pure, or pure once frozen
    /// TX holds and it does.
    #[inline]
    fn verdict_bit(&self, rule: &Rule) -> Option<u32> {
        rule.verdict_bit
            .filter(|_| self.rs.verdicts.enabled() && (self.frozen_tx || !rule.verdict_frozen))
    }

    /// Transforms one value as the rule says and evaluates the operator on it
    /// (on each stage for multiMatch), unless the prefilter rules it out.
    fn eval_value_now(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        v: ValRef<'_>,
        capture: bool,
    ) -> bool {
        if rule.actions.multi_match {
            if v.slot != NO_SLOT {
                return self.eval_multi_match(rule, op, v, capture);
            }
            let mut any = false;
            for value in self.transform_all(rule, v) {
                if op
                    .prefilter
                    .as_ref()
                    .is_some_and(|pf| !pf.may_match(&value))
                {
                    continue;
                }
                any |= self.try_value(rule, op, v, &value, capture);
            }
            return any;
        }
        if let (Some(bit), true) = (rule.prefilter_bit, v.slot != NO_SLOT) {
            let offset = self.memo.bits(&self.rs, v.slot, rule.chain_id, v.value);
            if !self.memo.has(offset, bit) {
                return false;
            }
        }
        if v.slot != NO_SLOT {
            let k = if rule.transformations.is_empty() {
                0
            } else {
                self.memo
                    .transformed(&self.rs.compiled.chains, v.slot, rule.chain_id, v.value)
            };
            if k == 0 {
                // Unchanged (most values): the stored value, borrowed.
                return self.try_value(rule, op, v, v.value, capture);
            }
            // The transformed value stays in the memo, whose list is lent to
            // the operator (nothing the operator does adds to it) instead of
            // counting a reference to the value.
            let values = std::mem::take(&mut self.memo.values);
            let hit = match values.get(k as usize - 1) {
                Some(value) => self.try_value(rule, op, v, value, capture),
                None => false,
            };
            debug_assert!(self.memo.values.is_empty());
            self.memo.values = values;
            return hit;
        }
        let transformed = self.transform_changed(rule, v);
        let value = transformed.as_ref().unwrap_or(v.value);
        if v.slot == NO_SLOT && op.prefilter.as_ref().is_some_and(|pf| !pf.may_match(value)) {
            return false;
        }
        self.try_value(rule, op, v, value, capture)
    }

    /// Evaluates the operator on one (transformed) value; on a match records
    /// MATCHED_VAR(S) and runs the rule's setvars (once per matched value, as
    /// ModSecurity v3 does).
    fn try_value(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        v: ValRef<'_>,
        value: &Bytes,
        capture: bool,
    ) -> bool {
        if !self.operator_hit(op, value, capture) {
            return false;
        }
        self.record_match(rule, v.matched_name(), value.clone());
        true
    }

    /// Whether the operator (negation applied) matches `value`.
    #[inline]
    fn operator_hit(&mut self, op: &CompiledOperator, value: &Bytes, capture: bool) -> bool {
        let hit = {
            let mut cx = OpCx {
                tx: self,
                capture,
                input: value,
            };
            op.op.evaluate(&mut cx, value)
        };
        hit != op.negated
    }

    /// Records a matched value as MATCHED_VAR and in MATCHED_VARS under
    /// `name` (`ARGS:foo`), and runs the rule's setvars.
    #[inline]
    fn record_match(&mut self, rule: &Rule, name: MatchedName, value: Bytes) {
        self.matched_vars
            .push(Matched::Var(MatchedVar { name, value }));
        self.run_setvars(&rule.actions.setvars);
    }

    /// MATCHED_VAR (with its name): the last matched value.
    #[inline]
    fn matched_var(&self) -> Option<&MatchedVar> {
        self.matched_vars.last().and_then(|m| self.resolve(m))
    }

    /// The value and name of a MATCHED_VARS entry.
    fn resolve<'a>(&'a self, m: &'a Matched) -> Option<&'a MatchedVar> {
        match m {
            Matched::Var(v) => Some(v),
            Matched::Fold(phase, item) => {
                match self.rs.prefix.as_ref()?.folds(*phase).get(*item as usize)? {
                    Fold::Hit(v) => Some(v),
                    _ => None,
                }
            }
            // A run's own entries are values (a static run applies no run
            // and folds nothing).
            &Matched::Run(k, j) => match self.rs.prefix.as_ref()?.run_matched_var(k, j)? {
                Matched::Var(v) => Some(v),
                _ => None,
            },
        }
    }

    /// No value of the current rule matched: MATCHED_VAR(S) are empty.
    #[inline]
    fn clear_matched(&mut self) {
        // Most rules match nothing and find it empty already (an outlined
        // drop of an empty slice otherwise).
        if !self.matched_vars.is_empty() {
            self.matched_vars.clear();
        }
    }

    fn eval_msg(&mut self, rule: &Rule) {
        if let Some(m) = &rule.actions.msg {
            self.pending_msg = Some(String::from_utf8_lossy(&self.expand(m)).into_owned());
        }
        if let Some(m) = &rule.actions.logdata {
            self.pending_logdata = Some(String::from_utf8_lossy(&self.expand(m)).into_owned());
        }
    }

    fn after_full_match<'r>(&mut self, rule: &'r Arc<Rule>) -> Flow<'r> {
        // ctl actions of every link, innermost first (as ModSecurity unwinds the chain).
        self.apply_chain_ctls(rule);
        // msg and logdata are expanded once the whole chain matched, so they see
        // the last link's captures and MATCHED_VAR (the CRS regression suite's
        // log checks, e.g. 932207, depend on this). A `nolog` rule is never
        // reported, so its log fields are not built (most CRS matches are
        // `nolog` SecActions and paranoia-level gates).
        if rule.log {
            self.eval_msg(rule);
        }
        let mut flow = Flow::Continue;
        let mut disrupted = false;
        if self.mode == EngineMode::On {
            match &rule.disruptive {
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect(_) => {
                    let (action, redirect) = match &rule.disruptive {
                        Disruptive::Drop => (DisruptiveAction::Drop, None),
                        Disruptive::Redirect(url) => (
                            DisruptiveAction::Redirect,
                            Some(String::from_utf8_lossy(&self.expand(url)).into_owned()),
                        ),
                        _ => (DisruptiveAction::Deny, None),
                    };
                    let status = match action {
                        DisruptiveAction::Redirect => rule.status.unwrap_or(302),
                        _ => rule.status.unwrap_or(403),
                    };
                    self.intervention = Some(Intervention {
                        status,
                        redirect,
                        action,
                        rule_id: rule.id,
                        phase: rule.phase,
                    });
                    disrupted = true;
                    flow = Flow::StopAll;
                }
                Disruptive::Allow(scope) => {
                    match scope {
                        AllowScope::All => self.allow.all = true,
                        AllowScope::Request => self.allow.request = true,
                        AllowScope::Phase => {}
                    }
                    flow = Flow::StopPhase;
                }
                Disruptive::Pass | Disruptive::Block => {}
            }
        }
        let (tags, mvn, mv, operator) = if rule.log {
            let tags = rule
                .actions
                .tags
                .iter()
                .map(|t| match t.as_literal() {
                    Some(l) => String::from_utf8_lossy(l).into_owned(),
                    None => String::from_utf8_lossy(&self.expand(t)).into_owned(),
                })
                .collect();
            let (mvn, mv) = self
                .matched_var()
                .map(|m| (m.name.log_text(), m.value.to_vec()))
                .unwrap_or_default();
            (tags, mvn, mv, rule.operator_text.clone())
        } else {
            Default::default()
        };
        self.matched_view.take();
        if let (false, None, None, Some((phase, item))) = (
            rule.log,
            &self.pending_msg,
            &self.pending_logdata,
            self.cur_rule,
        ) {
            self.matched.push(Record::Quiet {
                phase,
                item,
                disruptive: disrupted,
            });
        } else {
            self.push_full_record(rule, disrupted, tags, mvn, mv, operator);
        }
        if matches!(flow, Flow::Continue) {
            if let Some(m) = &rule.actions.skip_after {
                return Flow::SkipAfter(m.as_str());
            }
            if rule.actions.skip > 0 {
                return Flow::Skip(rule.actions.skip);
            }
        }
        flow
    }

    /// Records the full report of a matched rule.
    fn push_full_record(
        &mut self,
        rule: &Rule,
        disrupted: bool,
        tags: Vec<String>,
        mvn: String,
        mv: Vec<u8>,
        operator: String,
    ) {
        self.matched.push(Record::Full(MatchedRule {
            id: rule.id,
            phase: rule.phase,
            msg: self.pending_msg.take().unwrap_or_default(),
            data: self.pending_logdata.take().unwrap_or_default(),
            severity: rule.actions.severity,
            tags,
            span: rule.span.clone(),
            log: rule.log,
            disruptive: disrupted,
            matched_var_name: mvn,
            matched_var: mv,
            operator,
        }));
    }

    /// Applies the `ctl` actions of `rule`'s chain, the innermost link first.
    fn apply_chain_ctls(&mut self, rule: &Rule) {
        if let Some(next) = &rule.chained {
            self.apply_chain_ctls(next);
        }
        for ctl in &rule.actions.ctls {
            self.apply_ctl(ctl);
        }
    }

    fn apply_ctl(&mut self, ctl: &Ctl) {
        let as_exclusions = |targets: &Vec<TargetSpec>| -> Vec<Exclusion> {
            targets
                .iter()
                .map(|t| match t {
                    TargetSpec::Target(t) => Exclusion {
                        variable: t.variable,
                        selector: t.selector.clone(),
                    },
                    TargetSpec::Exclusion(e) => e.clone(),
                })
                .collect()
        };
        match ctl {
            Ctl::RuleEngine(m) => self.mode = *m,
            Ctl::RuleRemoveById(r) => self.removed.push(RemovedBy::Id(*r)),
            Ctl::RuleRemoveByTag(t) => self
                .removed
                .push(RemovedBy::Tag(t.clone(), super::rule::tag_bloom(t))),
            Ctl::RuleRemoveByMsg(m) => self.removed.push(RemovedBy::Msg(m.clone())),
            Ctl::RuleRemoveTargetById(r, targets) => {
                for e in as_exclusions(targets) {
                    self.removed_targets.push((RemovedBy::Id(*r), e));
                }
            }
            Ctl::RuleRemoveTargetByTag(tag, targets) => {
                for e in as_exclusions(targets) {
                    let bloom = super::rule::tag_bloom(tag);
                    self.removed_targets
                        .push((RemovedBy::Tag(tag.clone(), bloom), e));
                }
            }
            Ctl::RuleRemoveTargetByMsg(msg, targets) => {
                for e in as_exclusions(targets) {
                    self.removed_targets.push((RemovedBy::Msg(msg.clone()), e));
                }
            }
            Ctl::RequestBodyProcessor(p) => {
                self.body_processor = Some(*p);
                self.set_scalar(Variable::ReqbodyProcessor, p.name().as_bytes());
            }
            Ctl::RequestBodyAccess(on) => self.request_body_access = Some(*on),
            Ctl::ForceRequestBodyVariable(on) => self.force_body_variable = *on,
            Ctl::ResponseBodyAccess(on) => self.response_body_access = Some(*on),
            Ctl::RequestBodyLimit(n) => self.request_body_limit = Some(*n),
            Ctl::Audit => {}
        }
    }

    // ------------------------------------------------------------- setvar

    fn run_setvars(&mut self, setvars: &[SetVar]) {
        if setvars.is_empty() {
            return;
        }
        let (mut key_buf, mut value_buf) = std::mem::take(&mut self.setvar_bufs);
        for sv in setvars {
            self.run_setvar(sv, &mut key_buf, &mut value_buf);
        }
        self.setvar_bufs = (key_buf, value_buf);
    }

    /// One setvar; `key_buf` and `value_buf` are scratch space for
    /// expanding macros.
    fn run_setvar(&mut self, sv: &SetVar, key_buf: &mut Vec<u8>, value_buf: &mut Vec<u8>) {
        let compiled = &sv.compiled;
        let key: &[u8] = match &compiled.key {
            Some(k) => k,
            None => {
                key_buf.clear();
                sv.key
                    .expand_into(key_buf, |c, k, out| self.lookup_macro(c, k, out));
                key_buf.make_ascii_lowercase();
                key_buf
            }
        };
        let value: Bytes = match &sv.op {
            SetVarOp::Unset => {
                self.setvar_collection(sv).remove(key);
                return;
            }
            SetVarOp::Set(v) => match &compiled.value {
                Some(literal) => Arc::clone(literal),
                None => self.expand_shared(v, value_buf),
            },
            SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                let delta = match compiled.delta {
                    Some(d) => d,
                    None => self.expand_int(v, value_buf),
                };
                let add = matches!(sv.op, SetVarOp::Add(_));
                let apply = |cur: i64| {
                    if add {
                        cur.saturating_add(delta)
                    } else {
                        cur.saturating_sub(delta)
                    }
                };
                let col = self.setvar_collection(sv);
                if let Some(slot) = col.get_own_mut(key) {
                    *slot = int_value(apply(atoi(slot)));
                    return;
                }
                // Unset, or a value a static run left (shared: not
                // changed in place).
                int_value(apply(col.get(key).map_or(0, |v| atoi(v))))
            }
        };
        let col = self.setvar_collection(sv);
        match col.get_own_mut(key) {
            Some(slot) => *slot = value,
            None => {
                let key = compiled.key.clone().unwrap_or_else(|| Arc::from(key));
                col.insert(key, value);
            }
        }
    }

    /// The collection a setvar writes.
    #[inline]
    fn setvar_collection(&mut self, sv: &SetVar) -> &mut Collection {
        if sv.compiled.tx {
            &mut self.tx
        } else {
            self.collection_mut(&sv.collection)
        }
    }

    fn collection_mut(&mut self, name: &str) -> &mut Collection {
        if name == "TX" {
            &mut self.tx
        } else {
            self.collections.entry(name.to_string()).or_default()
        }
    }

    // ----------------------------------------------------------- macros

    pub(crate) fn expand(&self, m: &MacroText) -> Vec<u8> {
        if let Some(l) = m.as_literal() {
            return l.to_vec();
        }
        m.expand_with(|collection, key, out| self.lookup_macro(collection, key, out))
    }

    /// [`Transaction::expand`], borrowing the value of a text that is one
    /// variable the transaction holds (`%{tx.restricted_headers_basic}`).
    fn expand_cow(&self, m: &MacroText) -> Cow<'_, [u8]> {
        if let Some((collection, key)) = m.single_variable() {
            match self.macro_source(collection, key) {
                MacroSource::Value(v) => return Cow::Borrowed(v),
                MacroSource::Empty => return Cow::Borrowed(b""),
                MacroSource::Computed => {}
            }
        }
        Cow::Owned(self.expand(m))
    }

    /// The expansion of `m` as a value: the variable's own value when `m` is
    /// one variable the transaction holds, else expanded through `buf`.
    fn expand_shared(&self, m: &MacroText, buf: &mut Vec<u8>) -> Bytes {
        if let Some((collection, key)) = m.single_variable() {
            if let MacroSource::Value(v) = self.macro_source(collection, key) {
                return Arc::clone(v);
            }
        }
        buf.clear();
        m.expand_into(buf, |c, k, out| self.lookup_macro(c, k, out));
        Arc::from(&buf[..])
    }

    /// The expansion of `m` read as an integer (`atoi`), through `buf`.
    fn expand_int(&self, m: &MacroText, buf: &mut Vec<u8>) -> i64 {
        if let Some((collection, key)) = m.single_variable() {
            match self.macro_source(collection, key) {
                MacroSource::Value(v) => return atoi(v),
                MacroSource::Empty => return 0,
                MacroSource::Computed => {}
            }
        }
        buf.clear();
        m.expand_into(buf, |c, k, out| self.lookup_macro(c, k, out));
        atoi(buf)
    }

    /// Where `%{collection.key}` takes its value from: TX, MATCHED_VAR(_NAME),
    /// the persistent collections and the stored request values are read in
    /// place; everything else is [`MacroSource::Computed`].
    fn macro_source(&self, collection: &str, key: Option<&str>) -> MacroSource<'_> {
        match (collection, key) {
            // Macro keys are lowercased when parsed, as TX keys are stored.
            ("TX", Some(k)) => MacroSource::found(self.tx.get(k.as_bytes())),
            ("MATCHED_VAR", _) => MacroSource::found(self.matched_var().map(|m| &m.value)),
            ("MATCHED_VAR_NAME", _) => match self.matched_var().map(|m| &m.name) {
                None => MacroSource::Empty,
                Some(MatchedName::Text(t)) => MacroSource::Value(t),
                // Made where it is read.
                Some(_) => MacroSource::Computed,
            },
            ("RULE", Some(_)) => MacroSource::Computed,
            (c, k) => {
                if let Some(col) = self.collections.get(c) {
                    return MacroSource::found(k.and_then(|k| col.get(k.as_bytes())));
                }
                let Some(var) = Variable::from_name(c) else {
                    return MacroSource::Empty;
                };
                if var == Variable::Xml {
                    return MacroSource::Computed;
                }
                // As `collect` would give it: the first selected member.
                if let Some((lists, names)) = self.v.entry_lists(var, XmlList::Text) {
                    let want = k.filter(|_| var.is_collection()).map(str::as_bytes);
                    let first = lists
                        .into_iter()
                        .flatten()
                        .find(|e| want.is_none_or(|k| k.eq_ignore_ascii_case(&e.key)));
                    return MacroSource::found(
                        first.map(|e| if names { &e.key } else { &e.value }),
                    );
                }
                match self.v.scalars.get(&var) {
                    Some((v, _)) => MacroSource::Value(v),
                    None => MacroSource::Computed,
                }
            }
        }
    }

    fn lookup_macro(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) {
        match self.macro_source(collection, key) {
            MacroSource::Value(v) => out.extend_from_slice(v),
            MacroSource::Empty => {}
            MacroSource::Computed => self.computed_macro(collection, key, out),
        }
    }

    /// The macros [`Transaction::macro_source`] cannot read in place.
    fn computed_macro(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) {
        match (collection, key) {
            ("MATCHED_VAR_NAME", _) => {
                if let Some(m) = self.matched_var() {
                    m.name.write(out);
                }
            }
            ("RULE", Some(k)) => {
                let Some(rule) = self.current_rule() else {
                    return;
                };
                match k.to_ascii_lowercase().as_str() {
                    "id" => write_int(out, rule.id),
                    "msg" => out.extend_from_slice(
                        self.pending_msg
                            .as_deref()
                            .unwrap_or(&rule.msg_text)
                            .as_bytes(),
                    ),
                    "severity" => {
                        if let Some(s) = rule.actions.severity {
                            write_int(out, i64::from(s))
                        }
                    }
                    "logdata" => {
                        if let Some(d) = &self.pending_logdata {
                            out.extend_from_slice(d.as_bytes())
                        }
                    }
                    "phase" => write_int(out, i64::from(rule.phase)),
                    "rev" => {
                        out.extend_from_slice(rule.actions.rev.as_deref().unwrap_or("").as_bytes())
                    }
                    "ver" => {
                        out.extend_from_slice(rule.actions.ver.as_deref().unwrap_or("").as_bytes())
                    }
                    _ => {}
                }
            }
            (c, k) => {
                let Some(var) = Variable::from_name(c) else {
                    return;
                };
                let selector = match k {
                    Some(k) if var.is_collection() => KeySelector::Key(Arc::from(k.as_bytes())),
                    _ => KeySelector::All,
                };
                let mut vals = Vec::new();
                self.collect(
                    &Target {
                        variable: var,
                        selector,
                        count: false,
                        xpath: None,
                        xml_list: XmlList::Text,
                    },
                    &mut vals,
                );
                if let Some(v) = vals.first() {
                    out.extend_from_slice(&v.value);
                }
            }
        }
    }

    // ------------------------------------------------------- collections

    /// Whether the shared prefilter already ruled out the value at `slot`
    /// for a rule (`skip` = its chain and prefilter bit). Lets `collect` drop
    /// such values before cloning anything.
    fn known_miss(&self, slot: u32, skip: Option<(u32, u32)>) -> bool {
        let Some((chain, bit)) = skip else {
            return false;
        };
        self.memo
            .known_miss(&self.rs.compiled.chains, slot, chain, bit)
    }

    fn push_entries(
        &self,
        out: &mut Vec<Val>,
        var: Variable,
        entries: &[Entry],
        sel: &KeySelector,
        names: bool,
        skip: Option<(u32, u32)>,
    ) {
        for e in entries {
            let slot = if names { e.kslot } else { e.vslot };
            if self.known_miss(slot, skip) {
                continue;
            }
            if sel.matches(&e.key) {
                out.push(Val {
                    var,
                    key: Some(e.key.clone()),
                    value: if names {
                        e.key.clone()
                    } else {
                        e.value.clone()
                    },
                    slot,
                });
            }
        }
    }

    /// Sets every union over a variable without values (`ARGS_POST` of a
    /// GET, `FILES`, `XML`, a missing scalar ...) to the shared empty bit
    /// set: one test per variable when the phase starts instead of one per
    /// union in the skip checks (a third of the unions a request's skip
    /// checks look at).
    fn zero_empty_unions(&mut self, rs: &RulesetInner, phase: u8) {
        let Some(sources) = rs.compiled.phase_union_sources.get(usize::from(phase) - 1) else {
            return;
        };
        let words = rs.compiled.literals.as_ref().map_or(1, |pf| pf.words);
        for ((var, xml), ids) in sources {
            let empty = match self.v.entry_lists(*var, *xml) {
                Some((lists, _)) => lists.iter().all(|l| l.is_empty()),
                None => self.v.scalars.get(var).is_none(),
            };
            if !empty {
                continue;
            }
            let zero = self.memo.zero_bits(words);
            for &u in ids {
                if let Some(slot) = self.memo.unions.get_mut(u as usize) {
                    *slot = zero;
                }
            }
        }
    }

    /// Whether any value a target of `rule` selects may contain one of the
    /// literals of prefilter bit `bit` after the rule's chain (false: the rule
    /// cannot match). Only for `union_skippable` rules.
    #[inline]
    fn targets_may_match(&mut self, rule: &Rule, bit: u32) -> bool {
        // Most checks find every union made by an earlier rule of the phase:
        // one bit test per target.
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let compiled = &self.rs.compiled;
        let memo = &mut self.memo;
        for &union_id in rule.union_ids.iter() {
            let offset = match memo.unions.get(union_id as usize) {
                Some(&offset) if offset != NONE => offset,
                // The untransformed union of the variable serves a chain
                // whose trigger bytes none of its values holds.
                _ => match memo.raw_union_serves(compiled, union_id) {
                    Some(offset) => offset,
                    None => return self.targets_may_match_new(rule, bit),
                },
            };
            let at = offset as usize + word;
            if memo.bitsets.get(at).is_none_or(|w| w & mask != 0) {
                return true;
            }
        }
        false
    }

    /// [`Transaction::targets_may_match`] for a rule with a union not made
    /// yet in this phase: makes the missing ones.
    #[inline(never)]
    fn targets_may_match_new(&mut self, rule: &Rule, bit: u32) -> bool {
        let rs = &*self.rs;
        let (stored, memo) = (&self.v, &mut self.memo);
        let words = rs.compiled.literals.as_ref().map_or(1, |pf| pf.words);
        // One list of unions per stage (multiMatch), each target in order.
        let stages = rule.targets.iter().cycle();
        for (t, &union_id) in stages.zip(rule.union_ids.iter()) {
            // A `union_skippable` rule has a union for every target.
            debug_assert_ne!(union_id, NO_UNION);
            let meta = rs.compiled.union_meta.get(union_id as usize);
            let chain = meta.map_or(rule.chain_id, |m| m.chain);
            // Computed earlier in this phase: one look-up.
            if let Some(&offset) = memo.unions.get(union_id as usize) {
                if offset != NONE {
                    if memo.has(offset as usize, bit) {
                        return true;
                    }
                    continue;
                }
            }
            // Unions over variables without values were set to the empty bit
            // set when the phase started (`zero_empty_unions`). The
            // untransformed union of the target's source (made once per
            // phase) serves most chains; the others are made here.
            let source = meta.map_or(usize::MAX, |m| usize::from(m.source));
            let union = match stored.entry_lists(t.variable, t.xml_list) {
                // A scalar (REQUEST_FILENAME): its bit set is its union.
                None => match stored.scalars.get(&t.variable) {
                    Some((raw, slot)) => {
                        let raw_union = memo.raw_union(source, |memo| RawUnion {
                            offset: memo.bits(rs, *slot, 0, raw) as u32,
                            bytes: memo.raw_bytes(*slot, raw),
                            none: false,
                        });
                        if raw_union.serves(&rs.compiled.chains, chain) {
                            raw_union.offset as usize
                        } else {
                            memo.bits(rs, *slot, chain, raw)
                        }
                    }
                    None => memo.zero_bits(words) as usize,
                },
                Some((lists, names)) => {
                    let member = matches!(t.selector, KeySelector::Key(_));
                    // `chain`: a flattening iterator costs more per value.
                    let values = lists[0]
                        .iter()
                        .chain(lists[1])
                        .filter(|e| !member || t.selector.matches(&e.key))
                        .map(|e| {
                            if names {
                                (e.kslot, &e.key, &e.key)
                            } else {
                                (e.vslot, &e.value, &e.key)
                            }
                        });
                    let raw_union = memo.raw_union(source, |memo| {
                        let mut count = 0usize;
                        let counted = values.clone().inspect(|_| count += 1);
                        let (offset, bytes) = memo.union_of(rs, words, counted, 0);
                        RawUnion {
                            offset,
                            bytes,
                            none: count == 0,
                        }
                    });
                    if raw_union.serves(&rs.compiled.chains, chain) {
                        raw_union.offset as usize
                    } else {
                        memo.union_of(rs, words, values, chain).0 as usize
                    }
                }
            };
            if let Some(u) = memo.unions.get_mut(union_id as usize) {
                *u = union as u32;
            }
            if memo.has(union, bit) {
                return true;
            }
        }
        false
    }

    fn collect(&self, t: &Target, out: &mut Vec<Val>) {
        self.collect_for(t, out, None)
    }

    /// Collects the values of one target; with `skip`, values the shared
    /// prefilter already excluded for that (chain, bit) are left out.
    fn collect_for(&self, t: &Target, out: &mut Vec<Val>, skip: Option<(u32, u32)>) {
        if t.count {
            let n = if t.variable == Variable::Tx {
                // `&TX:key` (the CRS 901 defaults): count without collecting.
                match &t.selector {
                    KeySelector::Key(k) => {
                        let mut buf = [0u8; 64];
                        usize::from(self.tx.contains_key(&lowercase_key(k, &mut buf)[..]))
                    }
                    sel => {
                        let mut n = 0;
                        self.tx.for_each_selected(sel, |_, _| n += 1);
                        n
                    }
                }
            } else {
                let mut tmp = Vec::new();
                self.collect(
                    &Target {
                        count: false,
                        ..t.clone()
                    },
                    &mut tmp,
                );
                tmp.len()
            };
            out.push(Val {
                var: t.variable,
                key: None,
                value: int_value(i64::try_from(n).unwrap_or(i64::MAX)),
                slot: NO_SLOT,
            });
            return;
        }
        let sel = &t.selector;
        let var = t.variable;
        use Variable as V;
        match var {
            V::MatchedVars | V::MatchedVarsNames => {
                // Matched entries have no slot (NO_SLOT), so nothing is skipped.
                let names = var == V::MatchedVarsNames;
                for m in self.matched_vars.iter().filter_map(|m| self.resolve(m)) {
                    // The name is the key (and the value of *_NAMES).
                    let key = m.name.text();
                    if sel.matches(&key) {
                        out.push(Val {
                            var,
                            value: if names {
                                Arc::clone(&key)
                            } else {
                                Arc::clone(&m.value)
                            },
                            key: Some(key),
                            slot: NO_SLOT,
                        });
                    }
                }
            }
            V::Tx if matches!(sel, KeySelector::Key(_)) => {
                // TX keys are stored lowercased: one lookup instead of a walk.
                if let KeySelector::Key(k) = sel {
                    let mut buf = [0u8; 64];
                    if let Some((k, v)) = self.tx.get_key_value(&lowercase_key(k, &mut buf)[..]) {
                        out.push(Val {
                            var,
                            key: Some(k.clone()),
                            value: v.clone(),
                            slot: NO_SLOT,
                        });
                    }
                }
            }
            V::Tx => {
                self.tx.for_each_selected(sel, |k, v| {
                    out.push(Val {
                        var,
                        key: Some(k.clone()),
                        value: v.clone(),
                        slot: NO_SLOT,
                    })
                });
            }
            V::Ip | V::Session | V::User | V::Global | V::Resource => {
                if let Some(col) = self.collections.get(var.name()) {
                    for (k, v) in col.iter() {
                        if sel.matches(k) {
                            out.push(Val {
                                var,
                                key: Some(k.clone()),
                                value: v.clone(),
                                slot: NO_SLOT,
                            });
                        }
                    }
                }
            }
            V::Xml => {
                if let Some(doc) = &self.xml {
                    let xpath = t.xpath.as_deref().unwrap_or("/*");
                    if let Some((lists, _)) = self.v.entry_lists(var, t.xml_list) {
                        self.push_entries(out, var, lists[0], &KeySelector::All, false, skip);
                    } else {
                        for v in doc.select(xpath) {
                            out.push(Val {
                                var,
                                key: Some(Arc::from(xpath.as_bytes())),
                                value: Arc::from(v),
                                slot: NO_SLOT,
                            });
                        }
                    }
                }
            }
            V::Rule => {
                if let Some(rule) = self.current_rule() {
                    let items: [(&str, String); 3] = [
                        ("id", rule.id.to_string()),
                        ("phase", rule.phase.to_string()),
                        ("msg", rule.msg_text.clone()),
                    ];
                    for (k, v) in items {
                        if sel.matches(k.as_bytes()) {
                            out.push(Val {
                                var,
                                key: Some(Arc::from(k.as_bytes())),
                                value: Arc::from(v.as_bytes()),
                                slot: NO_SLOT,
                            });
                        }
                    }
                }
            }
            V::Env | V::Geo => {}
            V::MatchedVar => {
                if let Some(m) = self.matched_var() {
                    out.push(Val {
                        var,
                        key: None,
                        value: Arc::clone(&m.value),
                        slot: NO_SLOT,
                    });
                }
            }
            V::MatchedVarName => {
                if let Some(m) = self.matched_var() {
                    out.push(Val {
                        var,
                        key: None,
                        value: m.name.text(),
                        slot: NO_SLOT,
                    });
                }
            }
            V::ArgsCombinedSize => {
                let n: usize = self
                    .v
                    .args_get
                    .iter()
                    .chain(self.v.args_post.iter())
                    .map(|e| e.key.len() + e.value.len())
                    .sum();
                out.push(Val {
                    var,
                    key: None,
                    value: Arc::from(n.to_string().as_bytes()),
                    slot: NO_SLOT,
                });
            }
            V::Duration => {
                let us = self.start.elapsed().as_micros();
                out.push(Val {
                    var,
                    key: None,
                    value: Arc::from(us.to_string().as_bytes()),
                    slot: NO_SLOT,
                });
            }
            V::HighestSeverity => {
                let s = self
                    .all_matched()
                    .filter_map(|m| self.record_severity(m))
                    .min()
                    .unwrap_or(255);
                out.push(Val {
                    var,
                    key: None,
                    value: Arc::from(s.to_string().as_bytes()),
                    slot: NO_SLOT,
                });
            }
            V::Time
            | V::TimeDay
            | V::TimeEpoch
            | V::TimeHour
            | V::TimeMin
            | V::TimeMon
            | V::TimeSec
            | V::TimeWday
            | V::TimeYear => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let v = match var {
                    V::TimeEpoch => secs.to_string(),
                    V::TimeSec => (secs % 60).to_string(),
                    V::TimeMin => ((secs / 60) % 60).to_string(),
                    V::TimeHour => ((secs / 3600) % 24).to_string(),
                    V::TimeWday => (((secs / 86400) + 4) % 7).to_string(),
                    _ => secs.to_string(),
                };
                out.push(Val {
                    var,
                    key: None,
                    value: Arc::from(v.as_bytes()),
                    slot: NO_SLOT,
                });
            }
            _ => {
                if let Some((lists, names)) = self.v.entry_lists(var, XmlList::Text) {
                    for list in lists {
                        self.push_entries(out, var, list, sel, names, skip);
                    }
                } else if let Some((v, slot)) = self.v.scalars.get(&var) {
                    if !self.known_miss(*slot, skip) {
                        out.push(Val {
                            var,
                            key: None,
                            value: v.clone(),
                            slot: *slot,
                        });
                    }
                }
            }
        }
    }

    // --------------------------------------------------- transformations

    /// A value without a slot after the rule's transformations, when they
    /// changed it (`None`: the value as it is).
    fn transform_changed(&mut self, rule: &Rule, v: ValRef<'_>) -> Option<Bytes> {
        if rule.transformations.is_empty() {
            return None;
        }
        let mut owned: Option<Vec<u8>> = None;
        for &t in &rule.transformations {
            if let Some(o) = apply(t, owned.as_deref().unwrap_or(v.value)) {
                owned = Some(o);
            }
        }
        owned.map(Arc::from)
    }

    /// `multiMatch` on a stored value: the operator runs on the value before
    /// any transformation and after each one that changed it. Every stage is
    /// a prefix of the rule's chain, so the stages come from the
    /// per-transaction cache (shared with the rules using those prefixes as
    /// their chain); a stage is ruled out by the bit set a skip check
    /// already computed for it, else by the rule's own literal prefilter.
    fn eval_multi_match(
        &mut self,
        rule: &Rule,
        op: &CompiledOperator,
        v: ValRef<'_>,
        capture: bool,
    ) -> bool {
        let mut stages: smallvec::SmallVec<[u32; 12]> = smallvec::SmallVec::new();
        let mut c = rule.chain_id;
        while c != 0 {
            stages.push(c);
            c = self
                .rs
                .compiled
                .chains
                .parent
                .get(c as usize)
                .copied()
                .unwrap_or(0);
        }
        stages.push(0);
        let mut any = false;
        let mut previous = NONE;
        for &chain in stages.iter().rev() {
            let chains = &self.rs.compiled.chains;
            let k = self.memo.transformed(chains, v.slot, chain, v.value);
            if k == previous {
                // This transformation left the value unchanged.
                continue;
            }
            previous = k;
            // A stage's bit set is used when some skip check already computed
            // it; scanning a new stage with the shared automaton costs more
            // than the rule's own small one.
            if rule
                .prefilter_bit
                .is_some_and(|bit| self.memo.known_miss(chains, v.slot, chain, bit))
            {
                continue;
            }
            // The memo's list is lent to the operator (see `eval_value`).
            let values = std::mem::take(&mut self.memo.values);
            let value = match k {
                0 => Some(v.value),
                k => values.get(k as usize - 1),
            };
            let hit = value.is_some_and(|value| {
                op.prefilter.as_ref().is_none_or(|pf| pf.may_match(value))
                    && self.try_value(rule, op, v, value, capture)
            });
            debug_assert!(self.memo.values.is_empty());
            self.memo.values = values;
            any |= hit;
        }
        any
    }

    /// `multiMatch`: the value before any transformation and after each one
    /// that changed it.
    fn transform_all(&mut self, rule: &Rule, v: ValRef<'_>) -> Vec<Bytes> {
        let mut out = vec![v.value.clone()];
        let mut cur: Bytes = v.value.clone();
        for &t in &rule.transformations {
            if let Some(o) = apply(t, &cur) {
                cur = Arc::from(o);
                out.push(cur.clone());
            }
        }
        out
    }
}

struct OpCx<'t> {
    tx: &'t mut Transaction,
    capture: bool,
    /// The value the operator runs on: a capture of all of it shares it.
    input: &'t Bytes,
}

impl OperatorContext for OpCx<'_> {
    fn expand(&self, text: &MacroText) -> Vec<u8> {
        self.tx.expand(text)
    }

    fn expand_cow(&self, text: &MacroText) -> Cow<'_, [u8]> {
        self.tx.expand_cow(text)
    }

    fn capturing(&self) -> bool {
        self.capture
    }

    /// `TX:index` = `value`, without allocating when the capture is the
    /// whole input (`^.*$`, as CRS 920450 captures header names), or when the
    /// previous capture there has the same length and is not shared.
    fn set_capture(&mut self, index: usize, value: &[u8]) {
        if index > 9 {
            return;
        }
        let whole = value.len() == self.input.len() && value.as_ptr() == self.input.as_ptr();
        let new = || {
            if whole {
                Arc::clone(self.input)
            } else {
                Arc::from(value)
            }
        };
        let mut buf = [0u8; 20];
        let key = decimal(index as i64, &mut buf);
        match self.tx.tx.get_own_mut(key) {
            Some(slot) => match Arc::get_mut(slot) {
                Some(own) if !whole && own.len() == value.len() => own.copy_from_slice(value),
                _ => *slot = new(),
            },
            None => {
                let value = new();
                self.tx.tx.insert(int_value(index as i64), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_decoding_keeps_invalid_sequences() {
        assert_eq!(uri_decode(b"/a%20b%zz%4"), b"/a b%zz%4");
        assert_eq!(uri_decode(b"%2e%2E/"), b"../");
    }
}

#[cfg(test)]
mod tx_tests {
    //! The TX collection, setvar and macro machinery, end to end.

    use super::*;
    use crate::Ruleset;

    #[test]
    fn skip_checks_work_past_the_stack_accumulated_union_width() {
        // More prefiltered rules than UNION_WORDS words of bits: the skip
        // checks' unions take the wide path.
        let n = UNION_WORDS * 64 + 40;
        let mut rules = String::from("SecRuleEngine On\n");
        for i in 0..n {
            rules.push_str(&format!(
                "SecRule ARGS|REQUEST_HEADERS:User-Agent \"@contains tok{i:04}x\" \"id:{},phase:1,deny,status:403\"\n",
                i + 1
            ));
        }
        let rs = Ruleset::from_text(&rules).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(rs.stats().prefiltered_rules, n);
        for (uri, agent, want) in [
            ("/?a=tok0003x", "curl", Some(4)),
            (&*format!("/?a=tok{:04}x", n - 1), "curl", Some(n as i64)),
            (
                "/?a=nothing",
                &*format!("agent tok{:04}x", n - 2),
                Some(n as i64 - 1),
            ),
            ("/?a=tok9999", "curl", None),
        ] {
            let mut tx = rs.transaction();
            tx.process_uri(uri, "GET", "HTTP/1.1");
            tx.add_request_header(b"User-Agent", agent.as_bytes());
            let got = tx.process_request_headers().map(|i| i.rule_id);
            assert_eq!(got, want, "{uri} {agent}");
        }
    }

    #[test]
    fn hex_digits_as_format_writes_them() {
        for (n, width) in [
            (0u128, 1),
            (0, 8),
            (0xabc, 1),
            (0xabc, 8),
            (u128::MAX, 1),
            (1 << 64, 8),
        ] {
            let mut out = [0u8; 48];
            let len = hex_digits(n, width, &mut out);
            assert_eq!(&out[..len], format!("{n:0width$x}").as_bytes());
        }
    }

    #[test]
    fn int_values() {
        // (n, decimal)
        let cases: &[(i64, &str)] = &[
            (0, "0"),
            (7, "7"),
            (255, "255"),
            (256, "256"),
            (1000, "1000"),
            (-1, "-1"),
            (-256, "-256"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ];
        for &(n, want) in cases {
            assert_eq!(&*int_value(n), want.as_bytes(), "{n}");
            let mut out = b"x".to_vec();
            write_int(&mut out, n);
            assert_eq!(&out[1..], want.as_bytes(), "{n}");
        }
        // Small values are shared, not allocated per call.
        assert!(Arc::ptr_eq(&int_value(5), &int_value(5)));
        assert!(!Arc::ptr_eq(&int_value(300), &int_value(300)));
    }

    /// Runs phase 1 of `rules` on a GET with `headers`; returns the transaction.
    fn phase1(rules: &str, headers: &[(&str, &str)]) -> Transaction {
        let rs = Ruleset::from_text(rules).unwrap_or_else(|e| panic!("{e:?}"));
        let mut tx = rs.transaction();
        tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
        tx.process_uri("/a?b=c", "GET", "HTTP/1.1");
        for (k, v) in headers {
            tx.add_request_header(k.as_bytes(), v.as_bytes());
        }
        assert!(tx.process_request_headers().is_none());
        tx
    }

    /// Checks TX variables: (key, value; None: unset).
    fn assert_tx(tx: &Transaction, cases: &[(&str, Option<&str>)]) {
        for &(key, want) in cases {
            let got = tx.tx_var(key);
            assert_eq!(
                got.as_deref(),
                want.map(str::as_bytes),
                "tx.{key} = {:?}",
                got.as_deref().map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn setvar_values_keys_and_arithmetic() {
        let rules = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,\
    setvar:tx.A=5,setvar:tx.b=%{tx.a},setvar:tx.copy=%{TX.A},\
    setvar:tx.c=+3,setvar:tx.c=-10,setvar:tx.neg=-5,\
    setvar:tx.d=x%{tx.a}y,setvar:tx.e=+%{tx.a},setvar:tx.e=+%{tx.A},\
    setvar:tx.big=1000000,setvar:tx.big=+1,setvar:tx.str=abc,setvar:tx.str=+1,\
    setvar:tx.gone=1,setvar:!tx.gone,setvar:tx.empty=,setvar:tx.missing=%{tx.nothing},\
    setvar:tx.k_%{tx.a}=v,setvar:tx.Mixed_%{tx.d}=1,setvar:tx.host=%{request_headers.HOST},\
    setvar:tx.lead=+%{tx.pad},setvar:tx.lead=+ 7x,setvar:tx.t=+%{tx.d}"
SecRule &TX:a "@eq 1" "id:2,phase:1,pass,nolog,setvar:tx.count_a=%{MATCHED_VAR}"
SecRule &TX:nothing "@eq 0" "id:3,phase:1,pass,nolog,setvar:tx.count_nothing=ok"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.methods=GET HEAD"
SecRule REQUEST_METHOD "@within %{tx.methods}" \
    "id:5,phase:1,pass,nolog,setvar:tx.m=%{MATCHED_VAR},setvar:tx.mn=%{MATCHED_VAR_NAME}"
SecRule REQUEST_METHOD "@within %{tx.nothing}" "id:6,phase:1,pass,nolog,setvar:tx.never=1"
# Counts of TX after the static rules: tx.a is frozen (answered when the
# ruleset is built), tx.m is written by rule 5 (counted per transaction).
SecRule &TX:a "@eq 1" \
    "id:7,phase:1,pass,nolog,setvar:tx.count_name=%{MATCHED_VAR_NAME},setvar:tx.count_value=%{MATCHED_VAR}"
SecRule &TX:m "@eq 1" "id:8,phase:1,pass,nolog,setvar:tx.count_m=%{MATCHED_VAR_NAME}:%{MATCHED_VAR}"
SecRule &TX:never "@eq 1" "id:9,phase:1,pass,nolog,setvar:tx.count_never=1"
"#;
        let tx = phase1(rules, &[("Host", "example.com")]);
        // (key, value; None: unset)
        let cases: &[(&str, Option<&str>)] = &[
            ("a", Some("5")),
            ("A", Some("5")),
            ("b", Some("5")),
            ("copy", Some("5")),
            ("c", Some("-7")),
            ("neg", Some("-5")),
            ("d", Some("x5y")),
            ("e", Some("10")),
            ("big", Some("1000001")),
            ("str", Some("1")),
            ("gone", None),
            ("empty", Some("")),
            ("missing", Some("")),
            ("k_5", Some("v")),
            ("mixed_x5y", Some("1")),
            ("host", Some("example.com")),
            ("lead", Some("7")),
            ("t", Some("0")),
            ("count_a", Some("1")),
            ("count_nothing", Some("ok")),
            ("m", Some("GET")),
            ("mn", Some("REQUEST_METHOD")),
            ("never", None),
            ("count_name", Some("TX")),
            ("count_value", Some("1")),
            ("count_m", Some("TX:1")),
            ("count_never", None),
        ];
        assert_tx(&tx, cases);
    }

    #[test]
    fn captures_feed_setvar_and_prefix_selectors() {
        // CRS 920450's shape: one TX variable per header name, then the
        // variables under that prefix checked against a list.
        let rules = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.restricted=/x-bad/ /proxy/"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" \
    "id:2,phase:1,pass,nolog,capture,t:none,t:lowercase,\
    setvar:'tx.hn_%{tx.0}=/%{tx.0}/',chain"
    SecRule TX:/^hn_/ "@within %{tx.restricted}" "setvar:tx.hits=+1,setvar:tx.last=%{MATCHED_VAR}"
SecRule REQUEST_HEADERS:Host "@rx ^(ex)(am)ple" \
    "id:3,phase:1,pass,nolog,capture,setvar:tx.parts=%{tx.1}-%{tx.2}-%{tx.0}"
SecRule REQUEST_HEADERS:Host "@rx ^(ex)(am)ple" \
    "id:4,phase:1,pass,nolog,capture,setvar:tx.again=%{tx.0},setvar:tx.name=%{MATCHED_VAR_NAME}"
SecRule REQUEST_HEADERS_NAMES "@rx (?i)^x-long" \
    "id:5,phase:1,pass,nolog,setvar:tx.long=%{MATCHED_VAR_NAME}"
"#;
        let long = format!("X-Long{}", "a".repeat(150));
        let headers = [
            ("Host", "example.com"),
            ("X-Bad", "1"),
            ("Accept", "*/*"),
            (&long, "1"),
        ];
        let tx = phase1(rules, &headers);
        // (key, value; None: unset)
        let cases: &[(&str, Option<&str>)] = &[
            ("hn_host", Some("/host/")),
            ("hn_x-bad", Some("/x-bad/")),
            ("hn_accept", Some("/accept/")),
            (
                &*format!("hn_{}", long.to_ascii_lowercase()),
                Some(&*format!("/{}/", long.to_ascii_lowercase())),
            ),
            ("hits", Some("1")),
            ("last", Some("/x-bad/")),
            ("parts", Some("ex-am-example")),
            ("again", Some("example")),
            ("name", Some("REQUEST_HEADERS:Host")),
            ("long", Some(&*format!("REQUEST_HEADERS_NAMES:{long}"))),
            ("0", Some("example")),
            ("1", Some("ex")),
            ("2", Some("am")),
            ("3", None),
        ];
        assert_tx(&tx, cases);
        assert_eq!(
            tx.matched_rules().iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn matched_var_names_are_made_where_read() {
        // Names are kept as (variable, key) and made as text by the macro,
        // the MATCHED_VAR_NAME / MATCHED_VARS(_NAMES) variables and logging.
        let rules = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.flag=1"
SecRule ARGS:b "@rx c" "id:2,phase:1,pass,log,setvar:tx.arg=%{MATCHED_VAR_NAME}"
SecRule REQUEST_URI "@rx ^/a" "id:3,phase:1,pass,log,setvar:tx.scalar=%{MATCHED_VAR_NAME}"
SecRule TX:flag "@eq 1" "id:4,phase:1,pass,log,setvar:tx.txname=%{MATCHED_VAR_NAME}"
SecRule REQUEST_HEADERS "@rx ^v" "id:5,phase:1,pass,nolog,chain"
    SecRule MATCHED_VARS_NAMES "@rx ^REQUEST_HEADERS:(.*)$" \
        "capture,setvar:'tx.names=+1',setvar:tx.hname=%{tx.1},setvar:tx.via=%{MATCHED_VAR_NAME}"
SecRule REQUEST_HEADERS "@rx ^v" "id:6,phase:1,pass,log,chain"
    SecRule MATCHED_VARS "@rx ^v2$" "setvar:tx.mvs=%{MATCHED_VAR_NAME}"
SecRule ARGS "@rx c" "id:7,phase:1,pass,nolog,chain"
    SecRule MATCHED_VAR_NAME "@streq ARGS:b" "setvar:tx.mvn=%{MATCHED_VAR}"
SecRule REQUEST_HEADERS_NAMES "@rx ^X" "id:8,phase:1,pass,nolog,setvar:tx.raw=%{MATCHED_VAR_NAME}"
"#;
        let rs = Ruleset::from_text(rules).unwrap_or_else(|e| panic!("{e:?}"));
        let mut tx = rs.transaction();
        tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
        tx.process_uri("/a?b=c", "GET", "HTTP/1.1");
        tx.add_request_header(b"One", b"v1");
        tx.add_request_header(b"Two", b"v2");
        tx.add_request_header(b"X\xffY", b"z");
        assert!(tx.process_request_headers().is_none());
        // (key, value; None: unset)
        let cases: &[(&str, Option<&str>)] = &[
            ("arg", Some("ARGS:b")),
            ("scalar", Some("REQUEST_URI")),
            ("txname", Some("TX:flag")),
            ("names", Some("2")),
            ("hname", Some("Two")),
            ("via", Some("MATCHED_VARS_NAMES:REQUEST_HEADERS:Two")),
            ("mvs", Some("MATCHED_VARS:REQUEST_HEADERS:Two")),
            ("mvn", Some("ARGS:b")),
            ("raw", Some("REQUEST_HEADERS_NAMES:X\u{fffd}Y")),
        ];
        assert_tx(&tx, cases);
        // Logged rules carry the name and value of their last match.
        let logged: Vec<(i64, &str, &[u8])> = tx
            .matched_rules()
            .iter()
            .filter(|m| m.log)
            .map(|m| (m.id, m.matched_var_name.as_str(), &m.matched_var[..]))
            .collect();
        let want: &[(i64, &str, &[u8])] = &[
            (2, "ARGS:b", b"c"),
            (3, "REQUEST_URI", b"/a?b=c"),
            (4, "TX:flag", b"1"),
            (6, "MATCHED_VARS:REQUEST_HEADERS:Two", b"v2"),
        ];
        assert_eq!(logged, want);
        // MATCHED_VAR is the last recorded match.
        let last = tx.matched_var().map(|m| m.name.text());
        assert_eq!(
            last.as_deref(),
            Some("REQUEST_HEADERS_NAMES:X\u{fffd}Y".as_bytes())
        );
    }

    #[test]
    fn matched_var_name_of_xml_values() {
        let rules = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@rx ^text/xml" \
    "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule XML:/* "@rx hello" "id:2,phase:2,pass,log,setvar:tx.xml=%{MATCHED_VAR_NAME}"
SecRule XML://@* "@rx ^v$" "id:3,phase:2,pass,log,setvar:tx.attr=%{MATCHED_VAR_NAME}"
"#;
        let rs = Ruleset::from_text(rules).unwrap_or_else(|e| panic!("{e:?}"));
        let mut tx = rs.transaction();
        tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
        tx.process_uri("/x", "POST", "HTTP/1.1");
        tx.add_request_header(b"Content-Type", b"text/xml");
        assert!(tx.process_request_headers().is_none());
        assert!(tx.append_request_body(b"<a k=\"v\">hello</a>").is_none());
        assert!(tx.process_request_body().is_none());
        assert_eq!(tx.tx_var("xml").as_deref(), Some(&b"XML:/*"[..]));
        assert_eq!(tx.tx_var("attr").as_deref(), Some(&b"XML://@*"[..]));
        let logged: Vec<(i64, &str)> = tx
            .matched_rules()
            .iter()
            .map(|m| (m.id, m.matched_var_name.as_str()))
            .collect();
        assert_eq!(logged, [(1, ""), (2, "XML:/*"), (3, "XML://@*")]);
    }
}

#[cfg(test)]
mod step_sharing_tests {
    //! `Memo::transformed` shares a step's result between chains that apply
    //! the same transformation to the same input, and the empty value
    //! between every step that empties its input: the result of every chain
    //! must stay the chain applied step by step.

    use super::*;
    use crate::engine::compile::{case_only_triggers, unchanged_without};

    fn named(name: &str) -> Transformation {
        *crate::transformations::ALL
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no transformation {name}"))
    }

    /// A chain table of `chains` (and their prefixes), built as the
    /// compiler does; the id of each chain in order.
    fn table(chains: &[&[&str]]) -> (ChainTable, Vec<u32>) {
        let mut table = ChainTable {
            parent: vec![0],
            last: vec![None],
            triggers: vec![Some([0; 4])],
            step_triggers: vec![None],
            unchanged: vec![Some([0; 4])],
        };
        let mut ids = Vec::new();
        for names in chains {
            let mut node = 0u32;
            for name in *names {
                let t = named(name);
                let existing = (0..table.len()).find(|&c| {
                    table.parent[c] == node && c != 0 && table.last[c].is_some_and(|l| l == t)
                });
                node = match existing {
                    Some(c) => c as u32,
                    None => {
                        let extend =
                            |p: Option<ByteSet>, s: Option<ByteSet>| Some(byteset::union(&p?, &s?));
                        let step = unchanged_without(t.name);
                        let triggers =
                            extend(table.triggers[node as usize], case_only_triggers(t.name));
                        let unchanged = extend(table.unchanged[node as usize], step);
                        table.parent.push(node);
                        table.last.push(Some(t));
                        table.triggers.push(triggers);
                        table.step_triggers.push(step);
                        table.unchanged.push(unchanged);
                        (table.len() - 1) as u32
                    }
                };
            }
            ids.push(node);
        }
        (table, ids)
    }

    fn direct(names: &[&str], raw: &[u8]) -> Vec<u8> {
        names
            .iter()
            .fold(raw.to_vec(), |v, n| (named(n).apply)(&v).into_owned())
    }

    fn content(memo: &Memo, k: u32, raw: &[u8]) -> Vec<u8> {
        match k {
            0 => raw.to_vec(),
            k => memo.values[k as usize - 1].to_vec(),
        }
    }

    #[test]
    fn shared_steps_give_each_chain_its_own_result() {
        // CRS 934100, 934160 and 934101, and chains that end in steps
        // emptying their input.
        let chains: &[&[&str]] = &[
            &[
                "urlDecodeUni",
                "jsDecode",
                "removeWhitespace",
                "base64Decode",
                "urlDecodeUni",
                "jsDecode",
                "removeWhitespace",
            ],
            &[
                "urlDecodeUni",
                "jsDecode",
                "base64Decode",
                "urlDecodeUni",
                "jsDecode",
                "replaceComments",
            ],
            &[
                "urlDecodeUni",
                "jsDecode",
                "base64Decode",
                "urlDecodeUni",
                "jsDecode",
            ],
            &["base64Decode", "lowercase"],
            &["lowercase", "base64Decode", "length"],
            &["removeWhitespace", "base64Decode", "hexEncode"],
        ];
        let (table, ids) = table(chains);
        let raws: &[&[u8]] = &[
            b"",
            b"foo",
            b"Zm9v",
            b"Zm9v YmFy",
            b"a b",
            b"%41%42",
            b"JTQxJTQy",
            b"XHg0MQ==",
            b"not base64!",
            b"aGVs bG8=",
            b"L2V0Yy9wYXNzd2Q=",
            b"\\u0041 x",
        ];
        // Every evaluation order of the chains: forwards, backwards, and
        // each chain's prefixes before it (as multiMatch walks them).
        let orders: Vec<Vec<usize>> = vec![
            (0..chains.len()).collect(),
            (0..chains.len()).rev().collect(),
            vec![1, 0, 2, 5, 3, 4],
        ];
        for order in &orders {
            for walk_prefixes in [false, true] {
                let mut memo = Memo::default();
                for (slot, raw) in raws.iter().enumerate() {
                    for &i in order {
                        let mut stages = vec![ids[i]];
                        if walk_prefixes {
                            let mut c = table.parent[ids[i] as usize];
                            while c != 0 {
                                stages.push(c);
                                c = table.parent[c as usize];
                            }
                            stages.reverse();
                        }
                        for chain in stages {
                            let k = memo.transformed(&table, slot as u32, chain, raw);
                            let mut names = Vec::new();
                            let mut c = chain;
                            while c != 0 {
                                names.push(table.last[c as usize].map_or("", |t| t.name));
                                c = table.parent[c as usize];
                            }
                            names.reverse();
                            assert_eq!(
                                content(&memo, k, raw),
                                direct(&names, raw),
                                "{names:?} on {:?}",
                                String::from_utf8_lossy(raw)
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_emptied_value_is_the_one_empty_value() {
        let (table, ids) = table(&[&["base64Decode"], &["base64Decode", "urlDecodeUni"]]);
        let mut memo = Memo::default();
        let a = memo.transformed(&table, 0, ids[0], b"not base64!");
        let b = memo.transformed(&table, 1, ids[0], b"also not!");
        assert!(a != 0 && a == b, "{a} {b}");
        assert!(memo.values[a as usize - 1].is_empty());
        // The step after it on the shared empty value: unchanged.
        assert_eq!(memo.transformed(&table, 1, ids[1], b"also not!"), a);
        // A value that does decode is not the empty one.
        let c = memo.transformed(&table, 2, ids[0], b"Zm9v");
        assert!(c != 0 && c != a);
        assert_eq!(&memo.values[c as usize - 1][..], b"foo");
    }
}
