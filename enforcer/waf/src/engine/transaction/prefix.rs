//! Phase 1's static rules, evaluated once when the ruleset is built.
//!
//! The CRS begins phase 1 with about thirty rules that read nothing from the
//! request (`REQUEST-901`: defaults set with `&TX:x "@eq 0"` checks, a
//! `SecAction` with twenty `setvar`s). Every transaction would compute the
//! same TX, MATCHED_VAR(S) and match list from them. The ruleset runs them
//! once, through the same rule evaluation a transaction uses, and keeps what
//! each run of them leaves; a transaction that reaches such a run puts that
//! state in place and jumps past it.
//!
//! A rule is *static* when its first link reads only TX (or nothing:
//! `SecAction`), expands only TX and RULE macros in its operator argument
//! and `setvar`s, sets only TX variables and has no `expirevar` (it reads
//! the clock). A static rule that matches must in addition be `nolog`,
//! `pass` and without `ctl` in every link, and every chained link it goes on
//! to evaluate must be static as well: whether a rule disrupts depends on
//! the engine mode, which a transaction may override, and `ctl` changes
//! per-transaction settings. A static rule that does not match is passed
//! whatever its actions: it never runs them, in any transaction.
//!
//! Between runs of static rules there may be *inert* rules, which a
//! transaction still evaluates: they write no TX (no TX `setvar`, no
//! `capture`, no `expirevar`), change no flow (`skip`, `skipAfter`) and no
//! rule selection or engine mode (`ctl` other than the body-processing and
//! audit ones). They cannot change what the static rules after them see
//! (static rules read neither MATCHED_VAR nor request data); if one
//! disrupts or allows, the phase ends before the next run, which is then
//! not applied, exactly as its rules would not have run. The first rule
//! that is neither ends the prefix.
//!
//! MATCHED_VAR and MATCHED_VARS are carried over exactly: a run records
//! whether it cleared them (a rule that did not match) and what it added.
//!
//! *Frozen TX.* A TX variable the last run leaves that no rule outside the
//! runs can write (no `setvar` of that name, none whose name begins with
//! macro-free text it begins with, no `capture` for `TX:0`-`TX:9`) keeps
//! its value for the rest of a transaction that applied the last run. A
//! rule whose first link reads one such variable with a pure operator
//! (`SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 2"`, the paranoia-level gates
//! the CRS evaluates some sixty times per request) gives the same answer
//! in every such transaction, in any phase: that answer is computed here
//! ([`Fold`]). The transaction then records the match, runs the rest of
//! the rule as usual and skips only the look-up and the operator; a rule
//! that a `ctl:ruleRemoveTarget*` of the transaction applies to is
//! evaluated as usual.
//!
//! *The plan.* Most folded rules do nothing a transaction must do itself.
//! Of the ~280 items a CRS request visits, some forty are rules folded to a
//! miss (the `@lt 1` gates) and thirty markers; their only effect is to
//! clear MATCHED_VAR(S). Some thirty-five more are gates folded to a match
//! whose only effect is their `skipAfter` (`nolog`, `pass`, no `setvar`,
//! chain or `ctl`) and the quiet match they record. Per phase, per item,
//! [`PlanStep`] says so, and a transaction that applied the last run goes past
//! such items at once: to the end of a run of markers and misses, or to
//! the gate's target. Not while a `skip` count runs, nor where a rule
//! removal of the transaction may apply to an item it would go past (only
//! removals by tag are told apart, by the items' tag Bloom filter; any
//! other removal turns the plan off for the rest of the transaction).

use super::*;
use crate::macros::MacroPart;
use crate::variables::KeyRegex;

/// A rule link: phase index, item in the phase, depth in the chain.
pub(crate) type LinkAt = (usize, usize, usize);

/// The runs of static rules in phase 1 and the state each leaves.
#[derive(Debug)]
pub(crate) struct Prefix {
    runs: Vec<Run>,
    /// Per phase, per item: what a rule reading frozen TX gives (empty
    /// when no rule does).
    folds: Vec<Vec<Fold>>,
    /// Rule links (phase index, item, depth in the chain) without a verdict
    /// bit whose operator argument expands only frozen TX: pure in a
    /// transaction that applied the last run (`Rule::verdict_frozen`).
    frozen_pure: Vec<LinkAt>,
    /// Per phase, per item: what a transaction that applied the last run
    /// may do there without evaluating (empty when nothing is folded).
    plan: Vec<Vec<PlanStep>>,
}

/// What the loop of a transaction that applied the last run may do at an
/// item without evaluating it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanStep {
    /// Evaluated (or skipped) as usual.
    Eval,
    /// This item and those up to `to` are markers and rules folded to a
    /// miss: go on at `to`, clearing MATCHED_VAR(S) when one of them is a
    /// rule. `tags`: the union of those rules' tag Bloom filters.
    Pass { to: u32, clears: bool, tags: u64 },
    /// A rule folded to a match whose only effects are its quiet match and
    /// its `skipAfter`: record the match, go on at `to`.
    Gate { to: u32, tags: u64 },
}

impl PlanStep {
    /// The tag Bloom filter of the rules the step goes past.
    #[inline]
    pub(super) fn tags(self) -> u64 {
        match self {
            PlanStep::Eval => 0,
            PlanStep::Pass { tags, .. } | PlanStep::Gate { tags, .. } => tags,
        }
    }
}

/// The answer of a rule's first link that reads one frozen TX variable.
#[derive(Debug, Clone)]
pub(super) enum Fold {
    /// Not known here: evaluated as usual.
    Eval,
    /// Does not match.
    Miss,
    /// Matches: the variable's value and name (MATCHED_VAR, _NAME).
    Hit(MatchedVar),
}

/// One run of static rules: phase-1 items `start..end`.
#[derive(Debug)]
struct Run {
    start: usize,
    /// Where the loop goes on, and the `skip` count still to apply there.
    end: usize,
    skip: u32,
    /// TX after the run (what it was before is determined too: inert rules
    /// write none), shared by the transactions that apply the run.
    tx: Arc<layered::Base>,
    /// MATCHED_VAR(S) after the run when it cleared them; else what it
    /// added to them.
    cleared: bool,
    matched_vars: Vec<Matched>,
    /// The rules that matched in the run (all `nolog`).
    matched: Vec<Record>,
}

impl Prefix {
    /// Evaluates the static runs of phase 1 of `rs`; `None` when there are
    /// none (or the engine is off, when no rule runs).
    pub(crate) fn evaluate(rs: Arc<RulesetInner>) -> Option<Prefix> {
        let mut tx = Transaction::new(Arc::clone(&rs));
        if tx.mode == EngineMode::Off {
            return None;
        }
        tx.static_run = true;
        let items = &rs.compiled.phases[0];
        let markers = &rs.compiled.markers[0];
        // Stands in for whatever MATCHED_VAR(S) a transaction has when it
        // reaches a run: still there after the run means nothing cleared it.
        let sentinel: Bytes = Arc::from(&b"\0static-prefix"[..]);
        let regexes = tx_selector_regexes(&rs);
        let mut runs: Vec<Run> = Vec::new();
        let mut current: Option<Run> = None;
        let mut i = 0;
        let mut skip = 0u32;
        while i < items.len() {
            let Item::Rule(rule) = &items[i] else {
                i += 1;
                continue;
            };
            if skip > 0 || !is_static(rule) {
                if skip == 0 && !is_inert(rule) {
                    break;
                }
                // Evaluated by the transaction (an inert rule), or skipped
                // by it: a run ends here.
                if let Some(run) = current.take() {
                    runs.push(finish(run, &mut tx, &sentinel, &regexes, i, skip));
                }
                skip = skip.saturating_sub(1);
                i += 1;
                continue;
            }
            if current.is_none() {
                current = Some(start_run(&mut tx, &sentinel, i));
            }
            // Put back if the rule may not stay in the run.
            let saved = (tx.tx.clone(), tx.matched_vars.clone());
            tx.static_abort = false;
            tx.cur_rule = Some((1, i as u32));
            let hit = tx.eval_rule(rule);
            if tx.static_abort || (hit && !may_match_statically(rule)) {
                (tx.tx, tx.matched_vars) = saved;
                break;
            }
            i += 1;
            if !hit {
                continue;
            }
            match tx.after_full_match(rule) {
                Flow::Continue => {}
                Flow::Skip(n) => skip = n,
                Flow::SkipAfter(m) => i = after_marker(markers, m, i - 1, items.len()),
                // Not with `pass` and no `ctl`; stop to be safe.
                Flow::StopPhase | Flow::StopAll => break,
            }
        }
        if let Some(run) = current.take() {
            runs.push(finish(run, &mut tx, &sentinel, &regexes, i, skip));
        }
        runs.retain(|r| r.end > r.start);
        let last = runs.last()?;
        let (folds, frozen_pure) = folds(&rs, &runs, last.tx.map(), &mut tx);
        let plan = plan(&rs, &folds);
        Some(Prefix {
            runs,
            folds,
            frozen_pure,
            plan,
        })
    }

    /// Whether `k` is the last run (once it is applied, frozen TX holds).
    #[inline]
    pub(super) fn is_last(&self, k: usize) -> bool {
        k + 1 == self.runs.len()
    }

    /// The links that are pure once frozen TX holds (see `frozen_pure`),
    /// handed over once.
    pub(crate) fn take_frozen_pure(&mut self) -> Vec<LinkAt> {
        std::mem::take(&mut self.frozen_pure)
    }

    /// The folds of the items of `phase` (1-5).
    #[inline]
    pub(super) fn folds(&self, phase: u8) -> &[Fold] {
        of_phase(&self.folds, phase)
    }

    /// The plan of the items of `phase` (1-5), for a transaction that
    /// applied the last run.
    #[inline]
    pub(super) fn plan(&self, phase: u8) -> &[PlanStep] {
        of_phase(&self.plan, phase)
    }

    /// Entry `j` of the MATCHED_VARS run `k` adds.
    #[inline]
    pub(super) fn run_matched_var(&self, k: u32, j: u32) -> Option<&Matched> {
        self.runs.get(k as usize)?.matched_vars.get(j as usize)
    }

    /// The rules run `k` matched (all `nolog`).
    #[inline]
    pub(super) fn run_matched(&self, k: usize) -> &[Record] {
        self.runs.get(k).map_or(&[], |r| r.matched.as_slice())
    }

    /// Number of phase-1 items the runs cover.
    #[cfg(test)]
    pub(crate) fn covered(&self) -> usize {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    /// The run that starts at item `i` of phase 1, if `next` (the index of
    /// the next run not yet reached) is it; advances `next` past runs the
    /// loop went beyond.
    #[inline]
    pub(super) fn run_at(&self, i: usize, next: &mut usize) -> Option<usize> {
        let run = self.runs.get(*next)?;
        if run.start == i {
            *next += 1;
            return Some(*next - 1);
        }
        if run.start < i {
            // Jumped over (cannot happen: nothing before a run jumps); no
            // later run's state would hold either.
            *next = self.runs.len();
        }
        None
    }

    /// Puts the state run `k` leaves into `tx`; returns where the loop goes
    /// on and the `skip` count to apply there.
    pub(super) fn apply(&self, k: usize, tx: &mut Transaction) -> (usize, u32) {
        let run = &self.runs[k];
        tx.tx.set_base(Arc::clone(&run.tx));
        // The last of MATCHED_VARS is MATCHED_VAR. The run's entries are
        // referred to, not copied.
        if run.cleared {
            tx.matched_vars.clear();
        }
        let entries = (0..run.matched_vars.len()).map(|j| Matched::Run(k as u32, j as u32));
        tx.matched_vars.extend(entries);
        if !run.matched.is_empty() {
            tx.prefix_matched.push((k, tx.matched.len()));
            tx.matched_view.take();
        }
        (run.end, run.skip)
    }
}

/// The entries of `phase` (1-5) in a per-phase table (none when the table
/// has no such phase).
#[inline]
fn of_phase<T>(table: &[Vec<T>], phase: u8) -> &[T] {
    usize::from(phase)
        .checked_sub(1)
        .and_then(|p| table.get(p))
        .map_or(&[], Vec::as_slice)
}

/// The folds of every phase: for each rule whose first link reads one TX
/// variable that `frozen_tx` (the TX the last run leaves) holds and nothing
/// outside the runs writes, with a pure operator and no capture, whether
/// that link matches. `tx` evaluates the operators. Also the links that
/// are pure once frozen TX holds (see `Prefix::frozen_pure`).
fn folds(
    rs: &RulesetInner,
    runs: &[Run],
    frozen_tx: &layered::Map,
    tx: &mut Transaction,
) -> (Vec<Vec<Fold>>, Vec<LinkAt>) {
    let in_run =
        |phase: usize, i: usize| phase == 0 && runs.iter().any(|r| (r.start..r.end).contains(&i));
    // What the rules a transaction evaluates may write in TX.
    let mut written: Vec<&[u8]> = Vec::new();
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut captures = false;
    for (phase, items) in rs.compiled.phases.iter().enumerate() {
        for (i, item) in items.iter().enumerate() {
            let Item::Rule(rule) = item else { continue };
            if in_run(phase, i) {
                continue;
            }
            for r in rule.links() {
                captures |= r.actions.capture;
                for sv in r.actions.setvars.iter().filter(|s| s.collection == "TX") {
                    match &sv.compiled.key {
                        Some(k) => written.push(k),
                        None => prefixes.push(literal_head(&sv.key)),
                    }
                }
            }
        }
    }
    let frozen = |key: &[u8]| {
        let may_be_written = written.contains(&key)
            || prefixes.iter().any(|p| key.starts_with(p))
            || (captures && is_capture_key(key));
        frozen_tx.contains_key(key) && !may_be_written
    };
    let mut frozen_pure = Vec::new();
    for (phase, items) in rs.compiled.phases.iter().enumerate() {
        for (i, item) in items.iter().enumerate() {
            let Item::Rule(rule) = item else { continue };
            if in_run(phase, i) {
                continue;
            }
            for (depth, link) in rule.links().enumerate() {
                let Some(text) = link.operator.as_ref().and_then(|o| o.op.argument_macros()) else {
                    continue;
                };
                let reads_frozen = |part: &MacroPart| match part {
                    MacroPart::Literal(_) => true,
                    MacroPart::Variable {
                        collection,
                        key: Some(key),
                    } => collection == "TX" && frozen(key.as_bytes()),
                    MacroPart::Variable { .. } => false,
                };
                if link.verdict_bit.is_none() && text.parts().iter().all(reads_frozen) {
                    frozen_pure.push((phase, i, depth));
                }
            }
        }
    }
    let mut any = false;
    let folds = rs
        .compiled
        .phases
        .iter()
        .enumerate()
        .map(|(phase, items)| {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let Item::Rule(rule) = item else {
                        return Fold::Eval;
                    };
                    let (Some(op), Some(target)) = (&rule.operator, &rule.tx_target) else {
                        return Fold::Eval;
                    };
                    if in_run(phase, i)
                        || rule.actions.capture
                        || !op.op.is_pure()
                        || !frozen(&target.key)
                    {
                        return Fold::Eval;
                    }
                    // (Frozen TX holds the key: a count is 1.)
                    let value = match frozen_tx.get(&target.key[..]) {
                        Some(_) if target.count => int_value(1),
                        Some(value) => Arc::clone(value),
                        None => return Fold::Eval,
                    };
                    any = true;
                    if tx.operator_hit(op, &value, false) {
                        let name = if target.count {
                            MatchedName::Var(Variable::Tx)
                        } else {
                            MatchedName::Text(Arc::clone(&target.name))
                        };
                        Fold::Hit(MatchedVar { name, value })
                    } else {
                        Fold::Miss
                    }
                })
                .collect()
        })
        .collect();
    let folds = if any { folds } else { Vec::new() };
    (folds, frozen_pure)
}

/// The selector regexes the rules apply to TX (`TX:/^header_name_/`), each
/// once: a run's TX keeps what each selects (see `layered::Base`).
fn tx_selector_regexes(rs: &RulesetInner) -> Vec<Arc<KeyRegex>> {
    let mut out: Vec<Arc<KeyRegex>> = Vec::new();
    for item in rs.compiled.phases.iter().flatten() {
        let Item::Rule(rule) = item else { continue };
        for r in rule.links() {
            for t in r.targets.iter().filter(|t| t.variable == Variable::Tx) {
                if let KeySelector::Regex(re) = &t.selector {
                    if !out.iter().any(|o| Arc::ptr_eq(o, re)) {
                        out.push(Arc::clone(re));
                    }
                }
            }
        }
    }
    out
}

/// `0`-`9`: the TX keys `capture` writes.
fn is_capture_key(key: &[u8]) -> bool {
    matches!(key, [d] if d.is_ascii_digit())
}

/// The lowercased text a setvar key with macros begins with (the names it
/// may write all begin with it).
fn literal_head(key: &MacroText) -> Vec<u8> {
    match key.parts().first() {
        Some(MacroPart::Literal(l)) => l.to_ascii_lowercase(),
        _ => Vec::new(),
    }
}

fn start_run(tx: &mut Transaction, sentinel: &Bytes, start: usize) -> Run {
    tx.matched_vars = vec![Matched::Var(MatchedVar {
        name: MatchedName::Text(Arc::clone(sentinel)),
        value: Arc::clone(sentinel),
    })];
    Run {
        start,
        end: start,
        skip: 0,
        tx: Arc::default(),
        cleared: false,
        matched_vars: Vec::new(),
        matched: std::mem::take(&mut tx.matched),
    }
}

fn finish(
    mut run: Run,
    tx: &mut Transaction,
    sentinel: &Bytes,
    regexes: &[Arc<KeyRegex>],
    end: usize,
    skip: u32,
) -> Run {
    run.end = end;
    run.skip = skip;
    run.tx = Arc::new(layered::Base::new(tx.tx.to_map(), regexes));
    let kept = tx
        .matched_vars
        .first()
        .is_some_and(|m| matches!(m, Matched::Var(MatchedVar { name: MatchedName::Text(t), .. }) if Arc::ptr_eq(t, sentinel)));
    run.cleared = !kept;
    run.matched_vars = std::mem::take(&mut tx.matched_vars);
    if kept {
        run.matched_vars.remove(0);
    }
    // `start_run` kept the matches before the run aside: what is in the list
    // now was added by the run.
    let before = std::mem::replace(&mut run.matched, std::mem::take(&mut tx.matched));
    tx.matched = before;
    run
}

/// Whether one link reads only TX and constants and writes only TX (a rule
/// is static when its first link is).
pub(super) fn is_static(rule: &Rule) -> bool {
    let reads_tx_only = match &rule.operator {
        None => rule.targets.is_empty(),
        Some(o) => {
            rule.targets.iter().all(|t| t.variable == Variable::Tx)
                && static_macros(&MacroText::parse(&o.argument))
        }
    };
    reads_tx_only
        && rule.actions.expirevars == 0
        && rule.actions.setvars.iter().all(|s| {
            s.collection == "TX"
                && static_macros(&s.key)
                && match &s.op {
                    SetVarOp::Set(v) | SetVarOp::Add(v) | SetVarOp::Sub(v) => static_macros(v),
                    SetVarOp::Unset => true,
                }
        })
}

/// The plan of every phase (see [`PlanStep`]) from its folds.
fn plan(rs: &RulesetInner, folds: &[Vec<Fold>]) -> Vec<Vec<PlanStep>> {
    folds
        .iter()
        .enumerate()
        .map(|(p, phase_folds)| {
            if phase_folds.is_empty() {
                return Vec::new();
            }
            let items = &rs.compiled.phases[p];
            let jumps = &rs.compiled.skip_after[p];
            let mut steps = vec![PlanStep::Eval; items.len()];
            // Backwards: a run of markers and misses ends where the first
            // item after it that is neither is, so each item's step extends
            // the next item's when that one is a `Pass`.
            for i in (0..items.len()).rev() {
                let fold = phase_folds.get(i);
                let (clears, tags) = match &items[i] {
                    Item::Marker(_) => (false, 0),
                    Item::Rule(r) if matches!(fold, Some(Fold::Miss)) => (true, r.tag_bloom),
                    Item::Rule(r) => {
                        if matches!(fold, Some(Fold::Hit(_))) && is_gate(r) {
                            let to = jumps.get(i).copied().unwrap_or(items.len() as u32);
                            steps[i] = PlanStep::Gate {
                                to,
                                tags: r.tag_bloom,
                            };
                        }
                        continue;
                    }
                };
                steps[i] = match steps.get(i + 1) {
                    Some(&PlanStep::Pass {
                        to,
                        clears: later_clears,
                        tags: later_tags,
                    }) => PlanStep::Pass {
                        to,
                        clears: clears || later_clears,
                        tags: tags | later_tags,
                    },
                    _ => PlanStep::Pass {
                        to: i as u32 + 1,
                        clears,
                        tags,
                    },
                };
            }
            steps
        })
        .collect()
}

/// Whether a rule folded to a match does nothing but record its quiet
/// match and jump (`Transaction::folded_hit`, then `after_full_match`).
fn is_gate(rule: &Rule) -> bool {
    rule.tx_target.is_some()
        && rule.chained.is_none()
        && rule.actions.setvars.is_empty()
        && rule.actions.ctls.is_empty()
        && rule.actions.skip == 0
        && rule.actions.skip_after.is_some()
        && !rule.log
        && matches!(rule.disruptive, Disruptive::Pass)
}

/// Whether a static rule that matched may stay in a run.
fn may_match_statically(rule: &Rule) -> bool {
    !rule.log && matches!(rule.disruptive, Disruptive::Pass) && no_ctls(rule)
}

fn no_ctls(rule: &Rule) -> bool {
    rule.actions.ctls.is_empty() && rule.chained.as_deref().is_none_or(no_ctls)
}

/// Whether `rule` (every link) leaves TX, the flow and the rule selection
/// alone (see the module docs).
fn is_inert(rule: &Rule) -> bool {
    let link = |r: &Rule| {
        !r.actions.capture
            && r.actions.expirevars == 0
            && r.actions.setvars.iter().all(|s| s.collection != "TX")
            && r.actions.skip == 0
            && r.actions.skip_after.is_none()
            && r.actions.ctls.iter().all(|c| {
                matches!(
                    c,
                    Ctl::RequestBodyProcessor(_)
                        | Ctl::RequestBodyAccess(_)
                        | Ctl::ForceRequestBodyVariable(_)
                        | Ctl::ResponseBodyAccess(_)
                        | Ctl::RequestBodyLimit(_)
                        | Ctl::Audit
                )
            })
    };
    rule.links().all(link)
}

/// Whether every macro of `text` expands to the same text in every
/// transaction at this point: TX and the rule's own metadata.
fn static_macros(text: &MacroText) -> bool {
    text.parts().iter().all(|p| match p {
        MacroPart::Literal(_) => true,
        MacroPart::Variable { collection, .. } => matches!(collection.as_str(), "TX" | "RULE"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MATCHED_VARS with folded matches resolved.
    fn resolved(tx: &Transaction) -> Vec<Option<MatchedVar>> {
        tx.matched_vars
            .iter()
            .map(|m| tx.resolve(m).cloned())
            .collect()
    }
    use crate::engine::rule::tag_bloom as rule_tag_bloom;
    use crate::engine::{compile, Ruleset};
    use crate::seclang::{self, MemorySource};

    /// Runs of static rules with inert rules between them (1, 41, 5; 41
    /// logs how many MATCHED_VARS the first run left), a skip
    /// over a rule, a flow jump, a chain whose second link reads the request
    /// (14: ends the prefix, as a rule that writes TX from the request would),
    /// and rules after the prefix that read what it left.
    const RULES: &str = r#"
SecRuleEngine On
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.a=1,setvar:tx.b=x"
SecRule &TX:c "@eq 0" "id:3,phase:1,pass,nolog,setvar:tx.c=5"
SecRule TX:a "@eq 1" "id:4,phase:1,pass,nolog,setvar:tx.sum=+%{tx.c}"
SecRule &MATCHED_VARS "@ge 0" "id:41,phase:1,pass,log,logdata:'%{MATCHED_VAR}'"
SecRule REQUEST_LINE "@rx ^GET" "id:5,phase:1,pass,nolog"
SecRule TX:b "@streq x" "id:6,phase:1,pass,nolog,skip:1"
SecRule TX:b "@streq x" "id:7,phase:1,pass,nolog,setvar:tx.skipped=1"
SecRule TX:b "@streq x" "id:8,phase:1,pass,nolog,skipAfter:END"
SecRule TX:b "@streq x" "id:9,phase:1,pass,nolog,setvar:tx.never=1"
SecMarker END
SecRule TX:sum "@eq 5" "id:10,phase:1,pass,nolog,setvar:tx.d=%{tx.sum}"
SecRule TX:missing "@eq 1" "id:11,phase:1,deny,status:403,log"
SecRule TX:a "@eq 1" "id:12,phase:1,pass,nolog,setvar:tx.e=%{tx.d}%{tx.b}"
SecRule TX:nothing "@eq 1" "id:13,phase:1,pass,nolog"
SecRule TX:a "@eq 1" "id:14,phase:1,pass,nolog,chain"
    SecRule ARGS:x "@rx ." "setvar:tx.from_request=1"
SecRule ARGS "@rx attack" "id:15,phase:1,deny,status:403,log,setvar:tx.score=+5"
SecRule MATCHED_VARS "@rx ." "id:16,phase:1,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule TX:sum "@eq 5" "id:17,phase:1,pass,log,msg:'sum %{tx.sum} %{tx.e}'"
"#;

    fn without_prefix(text: &str) -> Ruleset {
        let directives = seclang::parse_str(text, "<inline>").expect("parses");
        let compiled = compile::compile(&directives, &MemorySource::default()).expect("compiles");
        Ruleset {
            inner: Arc::new(RulesetInner::new(compiled)),
        }
    }

    /// A GET of `uri` through phases 1 and 2.
    fn both_phases(rs: &Ruleset, uri: &str) -> Transaction {
        let mut tx = rs.transaction();
        tx.process_uri(uri, "GET", "HTTP/1.1");
        tx.process_request_headers();
        tx.process_request_body();
        tx
    }

    /// [`both_phases`] with `with` (a static prefix) and `without`: the
    /// same decision, matches and MATCHED_VARS; the two transactions.
    fn same_without_prefix(with: &Ruleset, without: &Ruleset, uri: &str) -> [Transaction; 2] {
        let (a, b) = (both_phases(with, uri), both_phases(without, uri));
        assert!(a.frozen_tx && !b.frozen_tx);
        assert_eq!(a.intervention(), b.intervention(), "{uri}");
        assert_eq!(a.matched_rules(), b.matched_rules(), "{uri}");
        assert_eq!(resolved(&a), resolved(&b), "{uri}");
        [a, b]
    }

    fn run(rs: &Ruleset, uri: &str, content_type: Option<&str>) -> Transaction {
        let mut tx = rs.transaction();
        tx.process_uri(uri, "GET", "HTTP/1.1");
        if let Some(ct) = content_type {
            tx.add_request_header(b"Content-Type", ct.as_bytes());
        }
        tx.process_request_headers();
        tx
    }

    #[test]
    fn the_prefix_leaves_what_evaluating_its_rules_leaves() {
        let with = Ruleset::from_text(RULES).expect("compiles");
        let without = without_prefix(RULES);
        let prefix = with.inner.prefix.as_ref().expect("a prefix");
        // Rules 2-4, 6, and 8-13 with the marker: around the inert rules 1,
        // 41 and 5, and rule 7, which 6 skips (a run ends at a skipped rule).
        assert_eq!(prefix.runs.len(), 3, "{prefix:?}");
        assert_eq!(prefix.covered(), 3 + 1 + 7);
        for (uri, ct) in [
            ("/", None),
            ("/?x=1", Some("application/json")),
            ("/?q=attack", None),
            ("/?x=attack", Some("text/plain")),
        ] {
            let (a, b) = (run(&with, uri, ct), run(&without, uri, ct));
            assert_eq!(a.intervention(), b.intervention(), "{uri}");
            assert_eq!(a.matched_rules(), b.matched_rules(), "{uri}");
            assert_eq!(a.body_processor, b.body_processor, "{uri}");
            let mut keys: Vec<_> = b.tx.keys().collect();
            keys.sort();
            let mut keys_a: Vec<_> = a.tx.keys().collect();
            keys_a.sort();
            assert_eq!(keys_a, keys, "{uri}");
            for k in keys {
                assert_eq!(a.tx.get(k), b.tx.get(k), "{uri} {k:?}");
            }
            // The last of MATCHED_VARS is MATCHED_VAR.
            assert_eq!(resolved(&a), resolved(&b), "{uri}");
        }
    }

    #[test]
    fn rules_that_read_the_request_or_may_disrupt_end_the_prefix() {
        // A deny that matches statically ends the prefix before it; so does
        // a rule that writes TX from the request (not inert).
        let rs = Ruleset::from_text(
            "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.a=1\"\n\
             SecRule TX:a \"@eq 1\" \"id:2,phase:1,deny,status:403,nolog\"\n\
             SecAction \"id:3,phase:1,pass,nolog,setvar:tx.b=1\"",
        )
        .expect("compiles");
        assert_eq!(rs.inner.prefix.as_ref().map(Prefix::covered), Some(1));
        let rs = Ruleset::from_text(
            "SecRule ARGS \"@rx .\" \"id:1,phase:1,pass,nolog,setvar:tx.a=1\"\n\
             SecAction \"id:2,phase:1,pass,nolog,setvar:tx.b=1\"",
        )
        .expect("compiles");
        assert!(rs.inner.prefix.is_none());
        // Macros of the request (or the clock) are not static.
        let rs =
            Ruleset::from_text("SecAction \"id:1,phase:1,pass,nolog,setvar:tx.a=%{REQUEST_LINE}\"")
                .expect("compiles");
        assert!(rs.inner.prefix.is_none());
        // The engine off: nothing runs, so there is nothing to keep.
        let rs = Ruleset::from_text(
            "SecRuleEngine Off\nSecAction \"id:1,phase:1,pass,nolog,setvar:tx.a=1\"",
        )
        .expect("compiles");
        assert!(rs.inner.prefix.is_none());
    }

    /// A static prefix, then rules that read TX it left: `pl` is frozen;
    /// `score` (a setvar), `p_*` (a setvar whose name has a macro), `1` (a
    /// capture) and `late` (set after the prefix) are not.
    const FOLDED: &str = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.score=0,setvar:tx.p_a=0,setvar:tx.1=0"
SecRule ARGS:x "@rx ^(a)" "id:2,phase:1,pass,nolog,capture,setvar:tx.score=+1,setvar:'tx.p_%{tx.1}=1'"
SecRule TX:pl "@lt 1" "id:3,phase:1,pass,nolog,skipAfter:END1"
SecRule TX:pl "@lt 2" "id:4,phase:1,pass,nolog,skipAfter:END1"
SecRule ARGS "@rx never" "id:5,phase:1,deny,status:403,log"
SecMarker END1
SecRule TX:score "@ge 1" "id:6,phase:1,pass,log,msg:'score %{tx.score}'"
SecRule TX:p_a "@eq 1" "id:7,phase:1,pass,log"
SecRule TX:1 "@streq a" "id:8,phase:1,pass,log"
SecRule TX:pl "@eq 1" "id:9,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}',chain"
    SecRule ARGS:y "@rx ^b$" "setvar:tx.late=1"
SecRule MATCHED_VARS "@rx ." "id:10,phase:2,pass,log,logdata:'%{MATCHED_VAR}'"
SecRule TX:pl "@ge 2" "id:11,phase:2,deny,status:403,log"
SecRule ARGS:z "@rx ^c$" "id:12,phase:2,pass,nolog,ctl:ruleRemoveTargetById=13;TX:pl"
SecRule TX:pl "@eq 1" "id:13,phase:2,deny,status:403,log"
"#;

    #[test]
    fn rules_reading_frozen_tx_are_answered_once() {
        let rs = Ruleset::from_text(FOLDED).expect("compiles");
        let prefix = rs.inner.prefix.as_ref().expect("a prefix");
        let ids = |phase: u8, pick: fn(&Fold) -> bool| -> Vec<i64> {
            let items = &rs.inner.compiled.phases[usize::from(phase) - 1];
            prefix
                .folds(phase)
                .iter()
                .zip(items)
                .filter_map(|(f, item)| match item {
                    Item::Rule(r) if pick(f) => Some(r.id),
                    _ => None,
                })
                .collect()
        };
        let hit: fn(&Fold) -> bool = |f| matches!(f, Fold::Hit(_));
        let miss: fn(&Fold) -> bool = |f| matches!(f, Fold::Miss);
        assert_eq!(ids(1, hit), [4]);
        assert_eq!(ids(1, miss), [3]);
        assert_eq!(ids(2, hit), [9, 13]);
        assert_eq!(ids(2, miss), [11]);
        let without = without_prefix(FOLDED);
        for uri in [
            "/",
            "/?x=a",
            "/?x=ab&y=b",
            "/?y=b&z=c",
            "/?z=c",
            "/?x=never",
        ] {
            let [a, b] = same_without_prefix(&rs, &without, uri);
            assert_eq!(a.tx_var("late"), b.tx_var("late"), "{uri}");
        }
        // Rule 13 denies unless rule 12 removed its target.
        let mut tx = rs.transaction();
        tx.process_uri("/?z=c", "GET", "HTTP/1.1");
        tx.process_request_headers();
        assert_eq!(tx.process_request_body(), None);
        let mut tx = rs.transaction();
        tx.process_uri("/", "GET", "HTTP/1.1");
        tx.process_request_headers();
        assert_eq!(tx.process_request_body().map(|i| i.rule_id), Some(13));
    }

    /// Gates and misses the plan goes past, with removals by tag that do
    /// and do not apply to them, a removal by id, a `skip` over a gate and
    /// MATCHED_VARS read after a gate's jump and after misses.
    const PLANNED: &str = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule ARGS:gate "@streq off" "id:2,phase:1,pass,nolog,ctl:ruleRemoveByTag=gate"
SecRule ARGS:other "@streq off" "id:3,phase:1,pass,nolog,ctl:ruleRemoveByTag=unrelated"
SecRule ARGS:id "@streq off" "id:4,phase:1,pass,nolog,ctl:ruleRemoveById=99"
SecRule ARGS:skip "@streq 1" "id:5,phase:1,pass,nolog,skip:1"
SecRule TX:pl "@lt 2" "id:10,phase:1,pass,nolog,tag:'gate',skipAfter:END-A"
SecRule ARGS "@rx ." "id:11,phase:1,pass,log,msg:'behind the gate'"
SecMarker END-A
SecRule TX:pl "@lt 1" "id:12,phase:1,pass,nolog,tag:'gate',skipAfter:END-B"
SecMarker BEGIN-B
SecRule TX:pl "@gt 5" "id:13,phase:1,pass,nolog,tag:'gate'"
SecRule MATCHED_VARS "@rx ." "id:14,phase:1,pass,log,logdata:'%{MATCHED_VAR_NAME}'"
SecMarker END-B
SecRule TX:pl "@lt 2" "id:15,phase:2,pass,nolog,skipAfter:END-C"
SecRule ARGS "@rx ." "id:16,phase:2,pass,log"
SecMarker END-C
SecRule MATCHED_VARS "@rx ." "id:17,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}'"
SecRule TX:pl "@eq 1" "id:18,phase:2,pass,log,skipAfter:END-D"
SecRule ARGS "@rx ." "id:19,phase:2,pass,log"
SecMarker END-D
"#;

    #[test]
    fn the_plan_goes_past_what_evaluating_would_not_change() {
        let rs = Ruleset::from_text(PLANNED).expect("compiles");
        let prefix = rs.inner.prefix.as_ref().expect("a prefix");
        // The steps at the rules (markers belong to the runs around them).
        let steps = |phase: u8| -> Vec<(i64, PlanStep)> {
            let items = &rs.inner.compiled.phases[usize::from(phase) - 1];
            prefix
                .plan(phase)
                .iter()
                .zip(items)
                .filter_map(|(s, item)| match item {
                    Item::Rule(r) if r.id >= 10 => Some((r.id, *s)),
                    _ => None,
                })
                .collect()
        };
        let index = |phase: u8, id: i64| -> u32 {
            let items = &rs.inner.compiled.phases[usize::from(phase) - 1];
            items
                .iter()
                .position(|i| matches!(i, Item::Rule(r) if r.id == id))
                .expect("rule") as u32
        };
        let gate = rule_tag_bloom("gate");
        assert_eq!(
            steps(1),
            [
                // To the item after END-A: rule 12.
                (
                    10,
                    PlanStep::Gate {
                        to: index(1, 12),
                        tags: gate
                    }
                ),
                (11, PlanStep::Eval),
                // 12 and 13 miss, BEGIN-B between them: on to rule 14.
                (
                    12,
                    PlanStep::Pass {
                        to: index(1, 14),
                        clears: true,
                        tags: gate
                    }
                ),
                (
                    13,
                    PlanStep::Pass {
                        to: index(1, 14),
                        clears: true,
                        tags: gate
                    }
                ),
                (14, PlanStep::Eval),
            ]
        );
        assert_eq!(
            steps(2),
            [
                (
                    15,
                    PlanStep::Gate {
                        to: index(2, 17),
                        tags: 0
                    }
                ),
                (16, PlanStep::Eval),
                (17, PlanStep::Eval),
                // It logs: evaluated.
                (18, PlanStep::Eval),
                (19, PlanStep::Eval),
            ]
        );
        let without = without_prefix(PLANNED);
        for uri in [
            "/",
            "/?a=1",
            "/?gate=off&a=1",
            "/?other=off&a=1",
            "/?id=off&a=1",
            "/?skip=1&a=1",
            "/?gate=off&skip=1",
        ] {
            same_without_prefix(&rs, &without, uri);
        }
        // What the comparison covers: the gates jump unless removed or
        // skipped, and rule 17 sees the match of gate 15.
        let logged = |uri: &str| -> Vec<i64> {
            both_phases(&rs, uri)
                .matched_rules()
                .iter()
                .filter(|m| m.log)
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(logged("/?a=1"), [17, 18]);
        assert_eq!(logged("/?other=off&a=1"), [17, 18]);
        // Removed rules do not clear MATCHED_VARS: 14 sees what 11 matched.
        assert_eq!(logged("/?gate=off&a=1"), [11, 14, 17, 18]);
        assert_eq!(logged("/?skip=1&a=1"), [11, 17, 18]);
    }

    #[test]
    fn detection_only_and_overridden_modes_see_the_same_state() {
        let rs = Ruleset::from_text(RULES).expect("compiles");
        let without = without_prefix(RULES);
        for mode in [EngineMode::DetectionOnly, EngineMode::Off] {
            let mut a = rs.transaction();
            let mut b = without.transaction();
            for t in [&mut a, &mut b] {
                t.set_engine_mode(mode);
                t.process_uri("/?q=attack", "GET", "HTTP/1.1");
                t.process_request_headers();
            }
            assert_eq!(a.matched_rules(), b.matched_rules(), "{mode:?}");
            assert_eq!(a.intervention(), b.intervention(), "{mode:?}");
            assert_eq!(a.tx_var("sum"), b.tx_var("sum"), "{mode:?}");
        }
    }
}
