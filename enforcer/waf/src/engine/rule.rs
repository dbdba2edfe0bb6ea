//! Compiled rules: what the compiler produces and transactions evaluate.

use std::sync::Arc;

use aho_corasick::AhoCorasick;

use crate::actions::{Actions, Disruptive};
use crate::operators::{Operator, RequiredLiterals};
use crate::seclang::Span;
use crate::transformations::Transformation;
use crate::variables::{Exclusion, Target, Variable};

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
    automaton: AhoCorasick,
}

impl Prefilter {
    pub(crate) fn new(lits: &RequiredLiterals) -> Option<Prefilter> {
        if lits.literals.is_empty() || lits.literals.iter().any(|l| l.is_empty()) {
            return None;
        }
        let automaton = aho_corasick::AhoCorasickBuilder::new()
            .ascii_case_insensitive(lits.case_insensitive)
            .build(&lits.literals)
            .ok()?;
        Some(Prefilter { automaton })
    }

    /// Whether `input` may match (contains a required literal).
    pub(crate) fn may_match(&self, input: &[u8]) -> bool {
        self.automaton.is_match(input)
    }
}

/// One Aho-Corasick automaton over the required literals of every rule that
/// uses one transformation chain. A transaction scans each transformed value
/// once and gets the set of rules whose literals occur in it, instead of
/// running one prefilter per rule and value.
#[derive(Debug)]
pub(crate) struct ChainPrefilter {
    pub automaton: AhoCorasick,
    /// Pattern index to the rule bits it satisfies.
    pub pattern_bits: Vec<Vec<u32>>,
    /// Number of u64 words in a bit set.
    pub words: usize,
    /// The chain's transformations.
    pub transformations: Vec<Transformation>,
    /// Every variable a prefiltered rule of this chain inspects (for the
    /// per-phase union of bit sets; see `Rule::union_skippable`).
    pub vars: Vec<Variable>,
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
    /// Interned id of `transformations`, for the per-transaction cache.
    pub chain_id: u32,
    /// This rule's bit in its chain's [`ChainPrefilter`], when its operator
    /// has required literals.
    pub prefilter_bit: Option<u32>,
    /// Every target has a stable per-transaction slot (no TX, MATCHED_VARS,
    /// counts ...) and no multiMatch: the rule can be skipped outright when its
    /// prefilter bit is absent from the chain's union over all those values.
    pub union_skippable: bool,
    /// Effective disruptive action (`block` resolved against `SecDefaultAction`).
    pub disruptive: Disruptive,
    /// Status for deny/redirect (rule's, else the default action's).
    pub status: Option<u16>,
    /// Effective `log`.
    pub log: bool,
    /// Literal tags (for removal by tag; macros unexpanded).
    pub tag_text: Vec<String>,
    /// Literal msg (for removal by msg).
    pub msg_text: String,
    /// The next link when `chain` is set.
    pub chained: Option<Box<Rule>>,
}

impl Rule {
    /// Whether the rule carries exactly this tag (ModSecurity v3 compares tags exactly).
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tag_text.iter().any(|t| t == tag)
    }
}

/// An entry in a phase's rule list.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    // Markers only hold positions; their names live in the marker index.
    Rule(Arc<Rule>),
    #[allow(dead_code)]
    Marker(Arc<str>),
}
