//! Compiled rules: what the compiler produces and transactions evaluate.

use std::sync::Arc;

use aho_corasick::AhoCorasick;

use crate::actions::{Actions, Disruptive};
use crate::byteset::ByteSet;
use crate::operators::{Operator, RequiredLiterals};
use crate::seclang::Span;
use crate::transformations::Transformation;
use crate::variables::{Exclusion, Target};

/// A compiled operator with its negation and source text (for logs).
#[derive(Debug)]
pub(crate) struct CompiledOperator {
    pub op: Arc<dyn Operator>,
    pub negated: bool,
    pub name: String,
    pub argument: String,
    /// Skips evaluation of values that cannot match (never for negated operators).
    pub prefilter: Option<Prefilter>,
}

/// A literal prefilter derived from [`RequiredLiterals`].
#[derive(Debug)]
pub(crate) struct Prefilter {
    /// Shared with live rulesets (and a `@pm` operator) over the same
    /// literals (see [`crate::live::phrase_automaton`]).
    automaton: Arc<AhoCorasick>,
}

impl Prefilter {
    pub(crate) fn new(lits: &RequiredLiterals) -> Option<Prefilter> {
        if lits.literals.is_empty() || lits.literals.iter().any(|l| l.is_empty()) {
            return None;
        }
        let automaton =
            crate::live::phrase_automaton(lits.case_insensitive, &lits.literals).ok()?;
        Some(Prefilter { automaton })
    }

    /// Whether `input` may match (contains a required literal).
    pub(crate) fn may_match(&self, input: &[u8]) -> bool {
        self.automaton.is_match(input)
    }
}

/// Every transformation chain used by a rule, interned as a trie of prefixes:
/// chain 0 is the empty chain and every other chain is its parent chain plus
/// one last transformation. A transaction caches the result of every prefix
/// it computes per value, so `t:urlDecodeUni,t:lowercase` reuses the
/// `t:urlDecodeUni` result another rule already needed.
#[derive(Debug, Default)]
pub(crate) struct ChainTable {
    /// Per chain: its parent (chain 0 is its own parent).
    pub parent: Vec<u32>,
    /// Per chain: the transformation applied after the parent's (none for chain 0).
    pub last: Vec<Option<Transformation>>,
    /// Per chain: a set of bytes (bit `b` of a 256-bit set) such that the
    /// chain changes a value containing none of them at most in ASCII case,
    /// so the value's literal bit set (case-insensitive) is the untransformed
    /// value's; `None` when some transformation of the chain may change any
    /// value (base64Decode, length ...).
    pub triggers: Vec<Option<ByteSet>>,
    /// Per chain: bytes without which its last transformation leaves a value
    /// exactly unchanged (`None`: it may change any value, or its case).
    pub step_triggers: Vec<Option<ByteSet>>,
    /// Per chain: bytes without which the whole chain leaves a value exactly
    /// unchanged (the union of its steps' `step_triggers`; `None` when a
    /// step may change any value).
    pub unchanged: Vec<Option<ByteSet>>,
}

impl ChainTable {
    /// Number of chains (prefixes included).
    pub(crate) fn len(&self) -> usize {
        self.parent.len()
    }
}

/// One scanner over the required literals of every prefiltered rule. A
/// transaction scans each distinct transformed value once and gets the set of
/// rules whose literals occur in it, instead of running one prefilter per rule
/// and value. Rules are numbered by their bit.
#[derive(Debug)]
pub(crate) struct LiteralPrefilter {
    pub scanner: super::literal_scan::LiteralScanner,
    /// Number of u64 words in a bit set.
    pub words: usize,
}

/// The single `TX:key` target of a rule evaluated by look-up.
#[derive(Debug)]
pub(crate) struct TxTarget {
    /// The key, lowercased (TX keys are stored lowercased).
    pub key: Arc<[u8]>,
    /// MATCHED_VAR_NAME when it matches (`TX:key`; `TX` for a count).
    pub name: Arc<[u8]>,
    /// `&TX:key`: the value is the number of such variables (0 or 1).
    pub count: bool,
}

/// One rule (or one link of a chain).
#[derive(Debug)]
pub(crate) struct Rule {
    /// `id` of the chain starter (chained links carry their starter's id).
    pub id: i64,
    pub phase: u8,
    pub span: Span,
    pub targets: Vec<Target>,
    pub exclusions: Vec<Exclusion>,
    /// `None` for `SecAction` (unconditional).
    pub operator: Option<CompiledOperator>,
    pub actions: Actions,
    /// Effective transformations (defaults + own).
    pub transformations: Vec<Transformation>,
    /// Interned id of `transformations` in the [`ChainTable`], for the
    /// per-transaction cache.
    pub chain_id: u32,
    /// This rule's bit in the [`LiteralPrefilter`], when its operator has
    /// required literals.
    pub prefilter_bit: Option<u32>,
    /// Every target has a stable per-transaction slot (no TX, MATCHED_VARS,
    /// counts ...): the rule can be skipped outright when its prefilter bit
    /// is absent from the union, over every value of each target variable,
    /// of the bit sets of those values after its chain (after each prefix
    /// of its chain, for multiMatch).
    pub union_skippable: bool,
    /// This link's bit in the verdict cache, when its operator is pure (see
    /// `verdicts`), or pure once frozen TX holds (`verdict_frozen`).
    pub verdict_bit: Option<u32>,
    /// The operator's argument reads only frozen TX (`@within
    /// %{tx.allowed_methods}`): `verdict_bit` applies in a transaction that
    /// applied the last static run (see `transaction::prefix`).
    pub verdict_frozen: bool,
    /// Every target reads stored values with stable slots (no TX,
    /// MATCHED_VARS, counts, XPath selections): the transaction evaluates
    /// them straight from its stored lists, without collecting them first.
    pub stored_targets: bool,
    /// Per target (same order): the dense id of the (chain, variable, named
    /// member) union its skip check uses, or `NO_UNION` for a rule that is
    /// not `union_skippable`. A multiMatch rule has such a list for its
    /// chain and then one for each shorter prefix of it, down to no
    /// transformation (entry `k` is for target `k % targets.len()`).
    pub union_ids: Box<[u32]>,
    /// For a rule whose only target is `TX:key` or `&TX:key` (no
    /// transformation, exclusion or multiMatch): the lowercased key and the
    /// MATCHED_VAR_NAME (`TX:key`), so the transaction evaluates it with one
    /// look-up instead of collecting values.
    pub tx_target: Option<TxTarget>,
    /// Effective disruptive action (`block` resolved against `SecDefaultAction`).
    pub disruptive: Disruptive,
    /// Status for deny/redirect (rule's, else the default action's).
    pub status: Option<u16>,
    /// Effective `log`.
    pub log: bool,
    /// Literal tags (for removal by tag; macros unexpanded).
    pub tag_text: Vec<String>,
    /// [`tag_bloom`] of every tag in `tag_text`: most rules are told apart
    /// from a removal's tag without reading their tag strings (each its own
    /// allocation, a cache miss apiece on a cold request).
    pub tag_bloom: u64,
    /// Literal msg (for removal by msg).
    pub msg_text: String,
    /// The operator as logged (`!@rx foo`, argument cut at 200 bytes;
    /// `@unconditionalMatch` for `SecAction`).
    pub operator_text: String,
    /// The next link when `chain` is set.
    pub chained: Option<Box<Rule>>,
}

impl Rule {
    /// This link and every link chained after it, in order.
    pub(crate) fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |r| r.chained.as_deref())
    }

    /// Whether the rule carries exactly this tag (ModSecurity v3 compares tags exactly).
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tag_text.iter().any(|t| t == tag)
    }

    /// [`Rule::has_tag`] for a tag whose [`tag_bloom`] is `bloom`.
    pub(crate) fn has_tag_bloomed(&self, tag: &str, bloom: u64) -> bool {
        self.tag_bloom & bloom == bloom && self.has_tag(tag)
    }
}

/// Two bits of a 64-bit Bloom filter standing for `tag`.
pub(crate) fn tag_bloom(tag: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    tag.hash(&mut h);
    let h = h.finish();
    (1u64 << (h >> 58)) | (1u64 << ((h >> 52) & 63))
}

/// An entry in a phase's rule list.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    // Markers only hold positions; their names live in the marker index.
    Rule(Arc<Rule>),
    #[allow(dead_code)]
    Marker(Arc<str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_blooms_hold_their_tags_and_turn_most_others_down() {
        let tags = [
            "application-multi",
            "language-multi",
            "platform-multi",
            "attack-xss",
            "xss-perf-disable",
            "paranoia-level/1",
            "OWASP_CRS",
            "capec/1000/152/242",
        ];
        let set = tags.iter().fold(0u64, |b, t| b | tag_bloom(t));
        for t in tags {
            assert_eq!(tag_bloom(t) & set, tag_bloom(t), "{t}");
            assert_eq!(
                tag_bloom(t).count_ones().clamp(1, 2),
                tag_bloom(t).count_ones()
            );
        }
        // A filter can only say "maybe": of many tags not in the set, most
        // are turned down.
        let outside = (0..1000)
            .map(|i| format!("tag-{i}"))
            .filter(|t| tag_bloom(t) & set == tag_bloom(t))
            .count();
        assert!(
            outside < 200,
            "{outside} of 1000 foreign tags pass the filter"
        );
    }
}
