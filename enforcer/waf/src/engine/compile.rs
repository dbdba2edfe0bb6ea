//! The compiler: parsed directives in, an immutable ruleset out.
//!
//! Three passes: (1) walk directives in order, applying configuration and
//! collecting rule drafts with the `SecDefaultAction`s in force where each rule
//! was written; (2) apply `SecRuleRemove*` and `SecRuleUpdate*` to every rule,
//! wherever it was defined (ModSecurity v3 keeps these as exceptions that apply
//! to all rules, not only earlier ones); (3) build operators (regexes memoised
//! across rules), transformation chains and the per-phase rule lists.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::config::{BodyLimitAction, Config};
use super::rule::{
    ChainTable, CompiledOperator, Item, LiteralPrefilter, Prefilter, Rule, TxTarget,
};
use super::{CompileError, EngineMode};
use crate::actions::{Actions, Disruptive};
use crate::byteset::{self, ByteSet};
use crate::operators::{self, OperatorEnv, RegexCache};
use crate::seclang::{
    ActionSpec, Directive, FileSource, IdRange, Located, RuleSpec, Span, VariableSpec,
};
use crate::transformations::Transformation;
use crate::variables::{self, TargetSpec, Variable};

/// What compiling produced.
pub(crate) struct Compiled {
    pub config: Config,
    pub phases: [Vec<Item>; 5],
    pub markers: [FxHashMap<Arc<str>, Vec<usize>>; 5],
    pub rule_count: usize,
    /// Distinct transformation chains rules use.
    pub chain_count: u32,
    /// Every chain and prefix of one (sizes the per-transaction cache).
    pub chains: ChainTable,
    /// The shared literal prefilter, when any rule has required literals.
    pub literals: Option<LiteralPrefilter>,
    /// Rules (links included) whose operator has a literal prefilter.
    pub prefiltered_rules: usize,
    /// Distinct (chain, target variable) unions the skip checks use: sizes
    /// the per-phase table a transaction fills lazily.
    pub union_count: usize,
    /// Rule links with a pure operator: bits per value in the verdict cache.
    pub verdict_links: usize,
    /// Per phase: the variables (with XML list) the skip checks of the
    /// phase's rules make unions over, each with those unions' ids (a
    /// transaction sets the unions over a variable without values to the
    /// empty bit set when the phase starts).
    pub phase_union_sources: [Vec<(UnionSource, Vec<u32>)>; 5],
    /// Per union id: what it is a union of.
    pub union_meta: Vec<UnionMeta>,
    /// The distinct sources unions are made over: a variable (with XML
    /// list), or one named member of it (`REQUEST_HEADERS:User-Agent`), each
    /// listed here by its variable. A transaction keeps each source's
    /// untransformed union, which serves every chain whose trigger bytes its
    /// values lack.
    pub union_sources: Vec<UnionSource>,
    /// Per phase, per item: where the loop goes on after the item's rule
    /// matched with `skipAfter` (the item after the first marker of that
    /// name after it, or the end of the phase); unused for other items.
    pub skip_after: [Vec<u32>; 5],
}

/// The item after the first marker `m` after item `here`, or `end` when
/// there is none (a `skipAfter` target).
pub(crate) fn after_marker(
    markers: &FxHashMap<Arc<str>, Vec<usize>>,
    m: &str,
    here: usize,
    end: usize,
) -> usize {
    markers
        .get(m)
        .and_then(|ps| ps.iter().find(|&&p| p > here))
        .map_or(end, |p| p + 1)
}

/// A variable (with the XML list of `XML`) skip-check unions are made over.
pub(crate) type UnionSource = (Variable, variables::XmlList);

/// What a skip-check union is made of (see `Rule::union_ids`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnionMeta {
    /// The transformation chain of its values.
    pub chain: u32,
    /// Its source (variable or named member), as an index in
    /// `Compiled::union_sources`.
    pub source: u16,
}

/// The most transformations a multiMatch rule may have for a skip check: it
/// needs a union per prefix of its chain.
const MULTI_MATCH_UNION_STEPS: usize = 2;

/// `Rule::union_ids` entry of every target of a rule that is not
/// `union_skippable`.
pub(crate) const NO_UNION: u32 = u32::MAX;

/// The union source of a target: its variable, with XML attributes apart.
pub(crate) fn union_source(t: &variables::Target) -> u32 {
    t.variable as u32
        | if t.xml_list == variables::XmlList::Attributes {
            1 << 16
        } else {
            0
        }
}

struct Draft {
    span: Span,
    rule: Option<RuleSpec>,
    actions: Vec<ActionSpec>,
    defaults: Arc<[Option<Actions>; 5]>,
    extra_targets: Vec<VariableSpec>,
    chained: Vec<Draft>,
    /// Cached compile of `actions` (recomputed after updates).
    compiled: Option<Actions>,
}

// Entries live only while compiling; boxing drafts would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Rule(Draft),
    Marker(Arc<str>),
}

enum TargetUpdate {
    Ids(Vec<IdRange>),
    Tag(String),
    Msg(String),
}

#[derive(Default)]
struct Pass1 {
    config: Config,
    defaults: [Option<Actions>; 5],
    defaults_arc: Option<Arc<[Option<Actions>; 5]>>,
    entries: Vec<Entry>,
    /// Index in `entries` of a chain still open, and its depth.
    open_chain: Option<usize>,
    remove_ids: Vec<IdRange>,
    remove_tags: Vec<String>,
    remove_msgs: Vec<String>,
    target_updates: Vec<(TargetUpdate, Vec<VariableSpec>, Span)>,
    action_updates: Vec<(i64, Vec<ActionSpec>, Span)>,
    errors: Vec<CompileError>,
    mime_cleared: bool,
}

fn err(span: &Span, message: impl Into<String>) -> CompileError {
    CompileError {
        span: Some(span.clone()),
        message: message.into(),
    }
}

fn parse_bool(span: &Span, name: &str, args: &[String]) -> Result<bool, CompileError> {
    match args.first().map(|s| s.to_ascii_lowercase()) {
        Some(v) if v == "on" => Ok(true),
        Some(v) if v == "off" => Ok(false),
        _ => Err(err(span, format!("{name} takes On or Off, got {args:?}"))),
    }
}

fn parse_num<T: std::str::FromStr>(
    span: &Span,
    name: &str,
    args: &[String],
) -> Result<T, CompileError> {
    args.first()
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| err(span, format!("{name} takes a number, got {args:?}")))
}

fn parse_limit_action(
    span: &Span,
    name: &str,
    args: &[String],
) -> Result<BodyLimitAction, CompileError> {
    match args.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("reject") => Ok(BodyLimitAction::Reject),
        Some("processpartial") => Ok(BodyLimitAction::ProcessPartial),
        _ => Err(err(
            span,
            format!("{name} takes Reject or ProcessPartial, got {args:?}"),
        )),
    }
}

/// Directives accepted and documented as having no effect on decisions.
const ACCEPTED: &[&str] = &[
    "secauditengine",
    "secauditlog",
    "secauditlog2",
    "secauditlogparts",
    "secauditlogtype",
    "secauditlogstoragedir",
    "secauditlogrelevantstatus",
    "secauditlogformat",
    "secauditlogdirmode",
    "secauditlogfilemode",
    "secdebuglog",
    "secdebugloglevel",
    "sectmpdir",
    "secdatadir",
    "secuploaddir",
    "secuploadkeepfiles",
    "secuploadfilemode",
    "secuploadfilelimit",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "secstatusengine",
    "secunicodemapfile",
    "secgeolookupdb",
    "sectmpsaveuploadedfiles",
    "secxmlexternalentity",
    "secserversignature",
    "secwebappid",
    "secsensorid",
    "secconnengine",
    "secrequestbodyinmemorylimit",
    "seccollectiontimeout",
    "sechashengine",
    "sechashkey",
    "sechashparam",
    "sechashmethodrx",
    "sechashmethodpm",
    "secruleperftime",
    "secinterceptonerror",
];

impl Pass1 {
    fn defaults_snapshot(&mut self) -> Arc<[Option<Actions>; 5]> {
        self.defaults_arc
            .get_or_insert_with(|| Arc::new(self.defaults.clone()))
            .clone()
    }

    fn directive(&mut self, d: &Located<Directive>) {
        let span = &d.span;
        let result = match &d.node {
            Directive::Rule(spec) => {
                self.rule(span, Some(spec.clone()), spec.actions.clone());
                Ok(())
            }
            Directive::Action(actions) => {
                self.rule(span, None, actions.clone());
                Ok(())
            }
            Directive::Marker(name) => {
                self.close_chain_if_open(span);
                self.entries.push(Entry::Marker(Arc::from(name.as_str())));
                Ok(())
            }
            Directive::DefaultAction(specs) => self.default_action(span, specs),
            Directive::RemoveById(ids) => {
                self.remove_ids.extend(ids.iter().copied());
                Ok(())
            }
            Directive::RemoveByTag(tag) => {
                self.remove_tags.push(tag.clone());
                Ok(())
            }
            Directive::RemoveByMsg(msg) => {
                self.remove_msgs.push(msg.clone());
                Ok(())
            }
            Directive::UpdateTargetById {
                ids,
                targets,
                replaced,
            } => self.target_update(span, TargetUpdate::Ids(ids.clone()), targets, replaced),
            Directive::UpdateTargetByTag {
                tag,
                targets,
                replaced,
            } => self.target_update(span, TargetUpdate::Tag(tag.clone()), targets, replaced),
            Directive::UpdateTargetByMsg {
                msg,
                targets,
                replaced,
            } => self.target_update(span, TargetUpdate::Msg(msg.clone()), targets, replaced),
            Directive::UpdateActionById { id, actions } => {
                self.action_updates
                    .push((*id, actions.clone(), span.clone()));
                Ok(())
            }
            Directive::Config { name, args } => self.config_directive(span, name, args),
        };
        if let Err(e) = result {
            self.errors.push(e);
        }
    }

    fn target_update(
        &mut self,
        span: &Span,
        which: TargetUpdate,
        targets: &[VariableSpec],
        replaced: &Option<Vec<VariableSpec>>,
    ) -> Result<(), CompileError> {
        if replaced.is_some() {
            return Err(err(span, "SecRuleUpdateTarget* with a replaced target is not supported; add an exclusion and a target instead"));
        }
        for t in targets {
            variables::compile(t).map_err(|m| err(span, m))?;
        }
        self.target_updates
            .push((which, targets.to_vec(), span.clone()));
        Ok(())
    }

    fn default_action(&mut self, span: &Span, specs: &[ActionSpec]) -> Result<(), CompileError> {
        let actions = Actions::compile(specs).map_err(|m| err(span, m))?;
        let phase = actions.phase.unwrap_or(2);
        if actions.id.is_some() {
            return Err(err(span, "SecDefaultAction must not carry an id"));
        }
        self.defaults[phase as usize - 1] = Some(actions);
        self.defaults_arc = None;
        Ok(())
    }

    fn close_chain_if_open(&mut self, span: &Span) {
        if self.open_chain.take().is_some() {
            self.errors.push(err(
                span,
                "chain is not followed by a rule (the last rule of a chain must not have `chain`)",
            ));
        }
    }

    fn rule(&mut self, span: &Span, rule: Option<RuleSpec>, actions: Vec<ActionSpec>) {
        let defaults = self.defaults_snapshot();
        let compiled = match Actions::compile(&actions) {
            Ok(a) => a,
            Err(m) => {
                self.errors.push(err(span, m));
                // A broken chain link must not leave the chain open either.
                return;
            }
        };
        let chains = compiled.chain;
        let draft = Draft {
            span: span.clone(),
            rule,
            actions,
            defaults,
            extra_targets: Vec::new(),
            chained: Vec::new(),
            compiled: Some(compiled),
        };
        if let Some(idx) = self.open_chain {
            if draft.rule.is_none() {
                self.errors
                    .push(err(span, "SecAction cannot be part of a chain"));
                self.open_chain = None;
                return;
            }
            if let Some(Entry::Rule(starter)) = self.entries.get_mut(idx) {
                if draft.compiled.as_ref().is_some_and(|a| a.id.is_some()) {
                    self.errors
                        .push(err(span, "a chained rule must not carry an id"));
                }
                starter.chained.push(draft);
            }
            if !chains {
                self.open_chain = None;
            }
            return;
        }
        self.entries.push(Entry::Rule(draft));
        if chains {
            self.open_chain = Some(self.entries.len() - 1);
        }
    }

    fn config_directive(
        &mut self,
        span: &Span,
        name: &str,
        args: &[String],
    ) -> Result<(), CompileError> {
        let lname = name.to_ascii_lowercase();
        let c = &mut self.config;
        match lname.as_str() {
            "secruleengine" => {
                c.engine = args
                    .first()
                    .and_then(|a| EngineMode::parse(a))
                    .ok_or_else(|| {
                        err(
                            span,
                            format!("SecRuleEngine takes On, Off or DetectionOnly, got {args:?}"),
                        )
                    })?
            }
            "secrequestbodyaccess" => c.request_body_access = parse_bool(span, name, args)?,
            "secresponsebodyaccess" => c.response_body_access = parse_bool(span, name, args)?,
            "secrequestbodylimit" => c.request_body_limit = parse_num(span, name, args)?,
            "secrequestbodynofileslimit" => {
                c.request_body_no_files_limit = parse_num(span, name, args)?
            }
            "secrequestbodyjsondepthlimit" => {
                c.request_body_json_depth_limit = parse_num(span, name, args)?
            }
            "secargumentslimit" => c.arguments_limit = parse_num(span, name, args)?,
            "secresponsebodylimit" => c.response_body_limit = parse_num(span, name, args)?,
            "secrequestbodylimitaction" => {
                c.request_body_limit_action = parse_limit_action(span, name, args)?
            }
            "secresponsebodylimitaction" => {
                c.response_body_limit_action = parse_limit_action(span, name, args)?
            }
            "secresponsebodymimetype" => {
                if !self.mime_cleared {
                    c.response_body_mime_types.clear();
                    self.mime_cleared = true;
                }
                for a in args {
                    for t in a.split_whitespace() {
                        c.response_body_mime_types.push(t.to_ascii_lowercase());
                    }
                }
            }
            "secresponsebodymimetypesclear" => {
                c.response_body_mime_types.clear();
                self.mime_cleared = true;
            }
            "secargumentseparator" => {
                let a = args.first().map(|s| s.as_bytes()).unwrap_or_default();
                if a.len() != 1 {
                    return Err(err(
                        span,
                        format!("SecArgumentSeparator takes one character, got {args:?}"),
                    ));
                }
                c.argument_separator = a[0];
            }
            "seccookieformat" => {
                let v: u8 = parse_num(span, name, args)?;
                if v > 1 {
                    return Err(err(span, format!("SecCookieFormat takes 0 or 1, got {v}")));
                }
                c.cookie_format = v;
            }
            "seccomponentsignature" => c.component_signatures.extend(args.iter().cloned()),
            other if ACCEPTED.contains(&other) => {}
            "include" => return Err(err(span, "Include was not resolved by the parser")),
            _ => return Err(err(span, format!("unknown directive {name}"))),
        }
        Ok(())
    }
}

fn id_matches(ids: &[IdRange], id: i64) -> bool {
    ids.iter().any(|r| r.contains(id))
}

fn msg_text(a: &Actions) -> String {
    a.msg
        .as_ref()
        .map(|m| String::from_utf8_lossy(&m.expand_with(|_, _, _| {})).into_owned())
        .unwrap_or_default()
}

fn tag_texts(a: &Actions) -> Vec<String> {
    a.tags
        .iter()
        .map(|t| String::from_utf8_lossy(&t.expand_with(|_, _, _| {})).into_owned())
        .collect()
}

/// For a transformation that changes a value only when it contains one of a
/// few bytes (other than in ASCII case): those bytes, as a 256-bit set.
/// `None` for transformations that may change any value.
///
/// The sets are per transformation, so a header value with spaces (a
/// User-Agent) is not re-scanned for the many chains that only decode `%`
/// escapes. A unit test runs every transformation listed here on values
/// built from the bytes outside its set and checks that at most ASCII case
/// changes.
pub(crate) fn case_only_triggers(name: &str) -> Option<ByteSet> {
    const WHITESPACE: &[u8] = b"\t\n\x0b\x0c\r ";
    let mut set = [0u64; 4];
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            byteset::insert(&mut set, b);
        }
    };
    match name {
        "lowercase" | "uppercase" => {}
        "removeNulls" | "replaceNulls" => add(b"\0"),
        "removeWhitespace" | "compressWhitespace" | "trim" | "trimLeft" | "trimRight" => {
            add(WHITESPACE);
            // Some treat the non-breaking space (0xA0) as whitespace: every
            // non-ASCII byte is a trigger.
            set[2] = u64::MAX;
            set[3] = u64::MAX;
        }
        "utf8toUnicode" => {
            // Drops a NUL that is not the last byte; decodes non-ASCII.
            add(b"\0");
            set[2] = u64::MAX;
            set[3] = u64::MAX;
        }
        "urlDecode" | "urlDecodeUni" => add(b"%+"),
        "htmlEntityDecode" => add(b"&"),
        "jsDecode" | "cssDecode" | "escapeSeqDecode" => add(b"\\"),
        "cmdLine" => {
            add(b"\"'\\^,;/(");
            add(WHITESPACE);
        }
        "normalizePath" | "normalizePathWin" => add(b"/.\\"),
        "replaceComments" => add(b"/*"),
        "removeComments" => add(b"/*<-#"),
        "removeCommentsChar" => add(b"/*<-#>"),
        _ => return None,
    }
    Some(set)
}

/// For a transformation that leaves a value exactly as it is (not even
/// changing case) when it contains none of a few bytes: those bytes. The
/// case-changing ones add the letters they change (`lowercase`: `A`-`Z`).
/// `None` for transformations that may change any value.
pub(crate) fn unchanged_without(name: &str) -> Option<ByteSet> {
    let letters = match name {
        "lowercase" | "cmdLine" => b'A'..=b'Z',
        "uppercase" => b'a'..=b'z',
        _ => return case_only_triggers(name),
    };
    let mut set = case_only_triggers(name)?;
    for b in letters {
        byteset::insert(&mut set, b);
    }
    Some(set)
}

/// More one- or two-byte required literals than this and a rule is left out
/// of the shared prefilter.
const WEAK_LITERALS: usize = 16;

/// Lowercases a rule's required literals and drops every literal that
/// contains another one: wherever it occurs, the shorter one occurs too, so
/// the rule's "one of them occurs" test is unchanged and the shared automaton
/// gets smaller.
fn minimal_literals(literals: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut lits: Vec<Vec<u8>> = literals
        .into_iter()
        .map(|l| l.to_ascii_lowercase())
        .collect();
    lits.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    lits.dedup();
    // Thousands of short literals per rule (the pmFromFile lists): look each
    // literal's substrings of the lengths kept so far up in a set, instead of
    // searching every kept literal in it.
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(lits.len());
    let mut kept_set: FxHashSet<Vec<u8>> = FxHashSet::default();
    let mut kept_lengths: Vec<usize> = Vec::new();
    for l in lits {
        let contains_kept = kept_lengths
            .iter()
            .any(|&n| n == 0 || (n <= l.len() && l.windows(n).any(|w| kept_set.contains(w))));
        if !contains_kept {
            if !kept_lengths.contains(&l.len()) {
                kept_lengths.push(l.len());
            }
            kept_set.insert(l.clone());
            kept.push(l);
        }
    }
    kept
}

struct Builder<'a> {
    source: &'a dyn FileSource,
    regexes: RegexCache,
    /// Trie of chains: (parent chain, transformation name) -> chain.
    chain_nodes: FxHashMap<(u32, &'static str), u32>,
    chains: ChainTable,
    /// Chains some rule uses in full.
    used_chains: FxHashSet<u32>,
    /// Next free prefilter bit.
    next_bit: u32,
    /// Next `Rule::verdict_bit`.
    next_verdict: u32,
    /// (lowercased literal, rule bit) pairs.
    literals: Vec<(Vec<u8>, u32)>,
    /// (chain, union source, the member a target names) -> dense union id.
    unions: FxHashMap<(u32, u32, Option<Vec<u8>>), u32>,
    /// Per union id: the index of its source in `union_sources` and its
    /// chain.
    union_meta: Vec<UnionMeta>,
    /// The distinct sources unions are made over (see
    /// `Compiled::union_sources`), with the member a source names.
    union_sources: Vec<(UnionSource, Option<Vec<u8>>)>,
    errors: Vec<CompileError>,
}

impl Builder<'_> {
    /// Interns `ts` and each of its prefixes; returns the chain of all of `ts`.
    fn chain_id(&mut self, ts: &[Transformation]) -> u32 {
        let mut node = 0u32;
        for t in ts {
            let next = self.chains.len() as u32;
            let chains = &mut self.chains;
            node = *self.chain_nodes.entry((node, t.name)).or_insert_with(|| {
                // A chain's sets are its parent's plus its last step's;
                // unknown (`None`) as soon as one step's is.
                let extend = |parent: Option<ByteSet>, step: Option<ByteSet>| {
                    Some(byteset::union(&parent?, &step?))
                };
                let triggers = extend(chains.triggers[node as usize], case_only_triggers(t.name));
                let step = unchanged_without(t.name);
                let unchanged = extend(chains.unchanged[node as usize], step);
                chains.parent.push(node);
                chains.last.push(Some(*t));
                chains.triggers.push(triggers);
                chains.step_triggers.push(step);
                chains.unchanged.push(unchanged);
                next
            });
        }
        self.used_chains.insert(node);
        node
    }

    fn build(&mut self, d: &Draft, starter: Option<(&Actions, i64, u8)>) -> Option<Rule> {
        let span = &d.span;
        let actions = match &d.compiled {
            Some(a) => a.clone(),
            None => match Actions::compile(&d.actions) {
                Ok(a) => a,
                Err(m) => {
                    self.errors.push(err(span, m));
                    return None;
                }
            },
        };
        let (id, phase) = match starter {
            Some((_, id, phase)) => (id, phase),
            None => match actions.id {
                Some(id) => (id, actions.phase.unwrap_or(2)),
                None => {
                    self.errors.push(err(span, "rule has no id action"));
                    return None;
                }
            },
        };
        let defaults = d.defaults[phase as usize - 1].as_ref();
        let mut targets = Vec::new();
        let mut exclusions = Vec::new();
        let specs = d
            .rule
            .as_ref()
            .map(|r| r.variables.as_slice())
            .unwrap_or(&[]);
        for v in specs.iter().chain(d.extra_targets.iter()) {
            match variables::compile(v) {
                Ok(TargetSpec::Target(t)) => targets.push(t),
                Ok(TargetSpec::Exclusion(e)) => exclusions.push(e),
                Err(m) => self.errors.push(err(span, m)),
            }
        }
        let operator = match &d.rule {
            None => None,
            Some(r) => {
                let source = self.source;
                let file = span.file.clone();
                let read = move |name: &str| source.read(&source.resolve(&file, name));
                let env = OperatorEnv {
                    read_data_file: &read,
                    regexes: &self.regexes,
                };
                match operators::build(&r.operator.name, &r.operator.argument, &env) {
                    Ok(op) => {
                        let prefilter = if r.operator.negated {
                            None
                        } else {
                            op.required_literals().and_then(|l| Prefilter::new(&l))
                        };
                        Some(CompiledOperator {
                            op,
                            negated: r.operator.negated,
                            name: r.operator.name.clone(),
                            argument: r.operator.argument.clone(),
                            prefilter,
                        })
                    }
                    Err(e) => {
                        self.errors.push(err(span, e.to_string()));
                        return None;
                    }
                }
            }
        };
        let mut transformations = Vec::new();
        if !actions.transformations.reset {
            if let Some(def) = defaults {
                transformations.extend(def.transformations.list.iter().copied());
            }
        }
        transformations.extend(actions.transformations.list.iter().copied());
        let chain_id = self.chain_id(&transformations);
        let prefilter_bit = operator
            .as_ref()
            .filter(|o| o.prefilter.is_some())
            .and_then(|o| {
                let lits = minimal_literals(o.op.required_literals()?.literals);
                // Dozens of one- or two-byte literals occur in almost every
                // value: the scan would pay for a match at most positions
                // and rule out next to nothing.
                if lits.iter().filter(|l| l.len() <= 2).count() > WEAK_LITERALS {
                    return None;
                }
                let bit = self.next_bit;
                self.next_bit += 1;
                for l in lits {
                    self.literals.push((l, bit));
                }
                Some(bit)
            });
        let verdict_bit = operator.as_ref().filter(|o| o.op.is_pure()).map(|_| {
            self.next_verdict += 1;
            self.next_verdict - 1
        });
        let stored_targets = targets.iter().all(|t| {
            !t.count
                && crate::variables::has_stable_slot(t.variable)
                && (t.variable != Variable::Xml
                    || matches!(t.xpath.as_deref(), Some("/*") | Some("//@*")))
        });
        let union_skippable = prefilter_bit.is_some()
            && stored_targets
            && (!actions.multi_match || transformations.len() <= MULTI_MATCH_UNION_STEPS);
        // One `TX:key` (or `&TX:key`) target, no transformation, exclusion
        // or multiMatch: the transaction evaluates it with one look-up (the
        // paranoia-level gates, anomaly-score rules and `&TX:max_num_args`
        // checks of the CRS).
        let tx_target = match targets.as_slice() {
            [t] if t.variable == Variable::Tx
                && exclusions.is_empty()
                && transformations.is_empty()
                && !actions.multi_match
                && operator.is_some() =>
            {
                match &t.selector {
                    variables::KeySelector::Key(k) => {
                        let key: Arc<[u8]> = Arc::from(k.to_ascii_lowercase());
                        let mut name = b"TX".to_vec();
                        if !t.count {
                            name.push(b':');
                            name.extend_from_slice(String::from_utf8_lossy(&key).as_bytes());
                        }
                        Some(TxTarget {
                            key,
                            name: Arc::from(name),
                            count: t.count,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        // Skip checks test a per-phase union of bit sets per (chain, target
        // variable); a target naming one member (`REQUEST_HEADERS:User-Agent`)
        // has a union of that member's values only. A multiMatch rule runs
        // its operator on the value after every prefix of its chain (the
        // value before any transformation included): it has a union per
        // target for each of those chains, stage by stage.
        let mut stages = vec![chain_id];
        if actions.multi_match {
            let mut c = chain_id;
            while c != 0 {
                c = self.chains.parent[c as usize];
                stages.push(c);
            }
        }
        let mut union_ids: Vec<u32> = Vec::with_capacity(stages.len() * targets.len());
        for &chain in &stages {
            for t in &targets {
                if !union_skippable {
                    union_ids.push(NO_UNION);
                    continue;
                }
                let member = match &t.selector {
                    variables::KeySelector::Key(k) => Some(k.to_vec()),
                    _ => None,
                };
                let next = self.unions.len() as u32;
                let id = *self
                    .unions
                    .entry((chain, union_source(t), member.clone()))
                    .or_insert(next);
                if id == next {
                    let source = ((t.variable, t.xml_list), member);
                    let at = match self.union_sources.iter().position(|s| *s == source) {
                        Some(at) => at,
                        None => {
                            self.union_sources.push(source);
                            self.union_sources.len() - 1
                        }
                    };
                    self.union_meta.push(UnionMeta {
                        chain,
                        source: at as u16,
                    });
                }
                union_ids.push(id);
            }
        }
        let union_ids: Box<[u32]> = union_ids.into();
        let (disruptive, status) = match (&actions.disruptive, starter) {
            (_, Some(_)) => (Disruptive::Pass, None),
            (Some(Disruptive::Block), None) => match defaults.and_then(|d| d.disruptive.clone()) {
                Some(Disruptive::Block) | None => (Disruptive::Pass, None),
                Some(dd) => (dd, actions.status.or(defaults.and_then(|d| d.status))),
            },
            (Some(other), None) => (other.clone(), actions.status),
            (None, None) => (Disruptive::Pass, None),
        };
        let log = actions.log.or(defaults.and_then(|d| d.log)).unwrap_or(true);
        let tag_text = tag_texts(&actions);
        let msg_text = msg_text(&actions);
        let operator_text = operator
            .as_ref()
            .map(|o| {
                let mut arg = o.argument.clone();
                if arg.len() > 200 {
                    let mut cut = 200;
                    while !arg.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    arg.truncate(cut);
                }
                format!("{}@{} {arg}", if o.negated { "!" } else { "" }, o.name)
            })
            .unwrap_or_else(|| "@unconditionalMatch".to_string());
        // Build the chain links, innermost last.
        let mut chained: Option<Box<Rule>> = None;
        if starter.is_none() && !d.chained.is_empty() {
            let mut links = Vec::new();
            for link in &d.chained {
                links.push(self.build(link, Some((&actions, id, phase)))?);
            }
            for mut link in links.into_iter().rev() {
                link.chained = chained.take();
                chained = Some(Box::new(link));
            }
        } else if starter.is_none() && actions.chain {
            self.errors
                .push(err(span, "rule has `chain` but no chained rule follows"));
            return None;
        }
        Some(Rule {
            id,
            phase,
            span: span.clone(),
            targets,
            exclusions,
            operator,
            actions,
            transformations,
            chain_id,
            prefilter_bit,
            verdict_bit,
            verdict_frozen: false,
            union_skippable,
            stored_targets,
            union_ids,
            tx_target,
            disruptive,
            status,
            log,
            tag_bloom: tag_text
                .iter()
                .fold(0, |b, t| b | super::rule::tag_bloom(t)),
            tag_text,
            msg_text,
            operator_text,
            chained,
        })
    }
}

/// Compiles directives (already parsed, in load order).
pub(crate) fn compile(
    directives: &[Located<Directive>],
    source: &dyn FileSource,
) -> Result<Compiled, Vec<CompileError>> {
    let mut p = Pass1::default();
    for d in directives {
        p.directive(d);
    }
    if p.open_chain.is_some() {
        if let Some(Entry::Rule(d)) = p.open_chain.and_then(|i| p.entries.get(i)) {
            let span = d.span.clone();
            p.errors.push(err(&span, "chain is not followed by a rule"));
        }
    }

    // Pass 2: removals and updates, applied to every rule.
    let mut seen_ids = FxHashSet::default();
    let mut kept = Vec::with_capacity(p.entries.len());
    for entry in p.entries {
        match entry {
            Entry::Marker(m) => kept.push(Entry::Marker(m)),
            Entry::Rule(mut d) => {
                let Some(a) = d.compiled.as_ref() else {
                    continue;
                };
                let Some(id) = a.id else {
                    p.errors.push(err(&d.span, "rule has no id action"));
                    continue;
                };
                if !seen_ids.insert(id) {
                    p.errors
                        .push(err(&d.span, format!("duplicate rule id {id}")));
                    continue;
                }
                let tags = tag_texts(a);
                let msg = msg_text(a);
                if id_matches(&p.remove_ids, id)
                    || tags.iter().any(|t| p.remove_tags.contains(t))
                    || (!msg.is_empty() && p.remove_msgs.contains(&msg))
                {
                    continue;
                }
                for (which, targets, _) in &p.target_updates {
                    let hit = match which {
                        TargetUpdate::Ids(ids) => id_matches(ids, id),
                        TargetUpdate::Tag(tag) => tags.contains(tag),
                        TargetUpdate::Msg(m) => &msg == m,
                    };
                    if hit {
                        d.extra_targets.extend(targets.iter().cloned());
                    }
                }
                let mut updated = false;
                for (uid, specs, _) in &p.action_updates {
                    if *uid == id {
                        d.actions.extend(specs.iter().cloned());
                        updated = true;
                    }
                }
                if updated {
                    match Actions::compile(&d.actions) {
                        Ok(mut a) => {
                            // SecRuleUpdateActionById never changes id, phase or chain.
                            a.id = Some(id);
                            a.phase = d.compiled.as_ref().and_then(|c| c.phase);
                            a.chain = d.compiled.as_ref().is_some_and(|c| c.chain);
                            d.compiled = Some(a);
                        }
                        Err(m) => {
                            p.errors
                                .push(err(&d.span, format!("after SecRuleUpdateActionById: {m}")));
                            continue;
                        }
                    }
                }
                kept.push(Entry::Rule(d));
            }
        }
    }
    for (id, _, span) in &p.action_updates {
        if !seen_ids.contains(id) {
            p.errors.push(err(
                span,
                format!("SecRuleUpdateActionById: no rule with id {id}"),
            ));
        }
    }

    // Pass 3: build.
    let mut b = Builder {
        source,
        regexes: RegexCache::default(),
        chain_nodes: FxHashMap::default(),
        chains: ChainTable {
            parent: vec![0],
            last: vec![None],
            triggers: vec![Some([0; 4])],
            step_triggers: vec![None],
            unchanged: vec![Some([0; 4])],
        },
        used_chains: FxHashSet::default(),
        next_bit: 0,
        next_verdict: 0,
        unions: FxHashMap::default(),
        union_meta: Vec::new(),
        union_sources: Vec::new(),
        literals: Vec::new(),
        errors: Vec::new(),
    };
    let mut phases: [Vec<Item>; 5] = Default::default();
    let mut markers: [FxHashMap<Arc<str>, Vec<usize>>; 5] = Default::default();
    let mut rule_count = 0;
    for entry in &kept {
        match entry {
            Entry::Marker(m) => {
                for (i, phase) in phases.iter_mut().enumerate() {
                    markers[i].entry(m.clone()).or_default().push(phase.len());
                    phase.push(Item::Marker(m.clone()));
                }
            }
            Entry::Rule(d) => {
                if let Some(rule) = b.build(d, None) {
                    rule_count += 1;
                    let idx = rule.phase as usize - 1;
                    phases[idx].push(Item::Rule(Arc::new(rule)));
                }
            }
        }
    }
    p.errors.extend(b.errors);
    if !p.errors.is_empty() {
        // Report in file order whatever pass found them (stable: same-line order kept).
        let order: FxHashMap<Arc<str>, usize> = {
            let mut m = FxHashMap::default();
            for d in directives {
                let n = m.len();
                m.entry(d.span.file.clone()).or_insert(n);
            }
            m
        };
        p.errors.sort_by_key(|e| {
            e.span
                .as_ref()
                .map(|s| (order.get(&s.file).copied().unwrap_or(usize::MAX), s.line))
        });
        return Err(p.errors);
    }
    let chain_count = b.used_chains.len() as u32;
    let prefiltered_rules = b.next_bit as usize;
    let literals = if b.literals.is_empty() {
        None
    } else {
        let scanner = super::literal_scan::LiteralScanner::new(b.literals).map_err(|e| {
            vec![CompileError {
                span: None,
                message: format!("prefilter: {e}"),
            }]
        })?;
        if std::env::var_os("PALISADE_TRACE_MEM").is_some() {
            eprintln!("MEM prefilter bytes={}", scanner.memory_usage());
        }
        Some(LiteralPrefilter {
            scanner,
            words: prefiltered_rules.div_ceil(64),
        })
    };
    let skip_after = std::array::from_fn(|p| {
        let items: &[Item] = &phases[p];
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Item::Rule(r) => match &r.actions.skip_after {
                    Some(m) => after_marker(&markers[p], m, i, items.len()) as u32,
                    None => items.len() as u32,
                },
                Item::Marker(_) => items.len() as u32,
            })
            .collect()
    });
    let phase_union_sources = std::array::from_fn(|p| {
        let mut by_source: Vec<(UnionSource, Vec<u32>)> = Vec::new();
        for item in &phases[p] {
            let Item::Rule(r) = item else { continue };
            for &u in r.union_ids.iter().filter(|&&u| u != NO_UNION) {
                let Some(meta) = b.union_meta.get(u as usize) else {
                    continue;
                };
                let source = b.union_sources[usize::from(meta.source)].0;
                match by_source.iter_mut().find(|(s, _)| *s == source) {
                    Some((_, ids)) if ids.contains(&u) => {}
                    Some((_, ids)) => ids.push(u),
                    None => by_source.push((source, vec![u])),
                }
            }
        }
        by_source
    });
    Ok(Compiled {
        config: p.config,
        skip_after,
        phases,
        markers,
        rule_count,
        chain_count,
        chains: b.chains,
        literals,
        prefiltered_rules,
        union_count: b.unions.len(),
        phase_union_sources,
        union_meta: b.union_meta,
        union_sources: b.union_sources.into_iter().map(|(s, _)| s).collect(),
        verdict_links: b.next_verdict as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values built only from bytes outside a transformation's trigger set,
    /// including the bytes next to the trigger bytes and case changes.
    fn samples(triggers: &ByteSet) -> Vec<Vec<u8>> {
        let allowed: Vec<u8> = (0u8..=255)
            .filter(|&b| !byteset::contains(triggers, b))
            .collect();
        let mut out = vec![Vec::new(), allowed.clone()];
        out.push(allowed.iter().rev().copied().collect());
        // Every pair and a pseudo-random walk over the allowed bytes.
        for &a in &allowed {
            for &b in &allowed {
                out.push(vec![a, b]);
                out.push(vec![a, a, b, b, a]);
            }
        }
        let mut x: u32 = 0x9e37_79b9;
        for len in 1..64 {
            let v = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    allowed[x as usize % allowed.len()]
                })
                .collect();
            out.push(v);
        }
        out
    }

    #[test]
    fn transformations_change_nothing_without_their_trigger_bytes() {
        let mut checked = 0;
        for t in crate::transformations::ALL {
            let Some(triggers) = unchanged_without(t.name) else {
                continue;
            };
            for v in samples(&triggers) {
                let out = (t.apply)(&v);
                assert!(out[..] == v[..], "{} changed {:?} to {:?}", t.name, v, out);
            }
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} transformations checked");
    }

    #[test]
    fn case_only_transformations_change_nothing_but_case_without_triggers() {
        let mut checked = 0;
        for t in crate::transformations::ALL {
            let Some(triggers) = case_only_triggers(t.name) else {
                continue;
            };
            for v in samples(&triggers) {
                let out = (t.apply)(&v);
                assert!(
                    out.eq_ignore_ascii_case(&v),
                    "{} changed {:?} to {:?}",
                    t.name,
                    v,
                    out
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 15,
            "only {checked} transformations are case-only"
        );
        assert_eq!(case_only_triggers("base64Decode"), None);
        assert_eq!(case_only_triggers("length"), None);
    }

    #[test]
    fn minimal_literals_keep_exactly_the_literals_containing_no_other() {
        let naive = |lits: &[&str]| {
            let mut l: Vec<Vec<u8>> = lits.iter().map(|s| s.to_ascii_lowercase().into()).collect();
            l.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            l.dedup();
            let all = l.clone();
            l.retain(|x| {
                !all.iter().any(|y| {
                    y.len() < x.len() && (y.is_empty() || x.windows(y.len()).any(|w| w == &y[..]))
                })
            });
            l
        };
        let cases: &[&[&str]] = &[
            &["union", "select", "UNION select", "sel", "ion"],
            &["ab", "ba", "aba", "bab", "abab", "b"],
            &["/etc/passwd", "etc/", "/etc", "passwd", "wd"],
            &["x", "X", "xx", "yx", "xy"],
            &["", "a"],
        ];
        for lits in cases {
            let got = minimal_literals(lits.iter().map(|s| s.as_bytes().to_vec()).collect());
            assert_eq!(got, naive(lits), "{lits:?}");
        }
    }

    #[test]
    fn chains_share_prefixes_and_combine_triggers() {
        let source = crate::seclang::MemorySource::default();
        let text = "SecRule ARGS \"@rx abc\" \"id:1,phase:2,pass,t:urlDecodeUni,t:lowercase\"\n\
                    SecRule ARGS \"@rx abd\" \"id:2,phase:2,pass,t:urlDecodeUni\"\n\
                    SecRule ARGS \"@rx abe\" \"id:3,phase:2,pass,t:base64Decode,t:lowercase\"\n";
        let directives = crate::seclang::parse_str(text, "<t>").expect("parse");
        let c = compile(&directives, &source)
            .map_err(|e| format!("{e:?}"))
            .expect("compile");
        // none, urlDecodeUni, +lowercase, base64Decode, +lowercase.
        assert_eq!(c.chains.len(), 5);
        assert_eq!(c.chain_count, 3);
        let lower = c
            .chains
            .parent
            .iter()
            .position(|&p| p == 1)
            .expect("child of urlDecodeUni");
        let t = c.chains.triggers[lower].expect("case-only chain");
        assert_ne!(t[0] & (1u64 << b'%'), 0);
        assert_eq!(t[1] & (1u64 << (b'a' - 64)), 0);
        assert!(c.chains.triggers.iter().filter(|t| t.is_none()).count() == 2);
        assert_eq!(c.prefiltered_rules, 3);
    }
}
