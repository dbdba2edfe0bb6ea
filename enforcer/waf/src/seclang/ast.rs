//! The SecLang syntax tree: what the parser produces and the compiler consumes.
//!
//! The parser resolves syntax only (continuations, quoting, `Include`); names of
//! variables, operators and actions stay strings here and are checked against the
//! closed vocabularies by the compiler, which reports errors with the [`Span`].

use std::fmt;
use std::sync::Arc;

/// Where a directive starts: the file it came from and its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// File name as given to the loader (a path, or a ConfigMap key).
    pub file: Arc<str>,
    /// 1-based line of the directive's first line.
    pub line: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One directive with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    /// Where the directive starts.
    pub span: Span,
    /// The directive.
    pub node: T,
}

/// A parsed SecLang directive.
#[derive(Clone, Debug, PartialEq)]
pub enum Directive {
    /// `SecRule VARIABLES OPERATOR [ACTIONS]`
    Rule(RuleSpec),
    /// `SecAction ACTIONS`
    Action(Vec<ActionSpec>),
    /// `SecMarker NAME`
    Marker(String),
    /// `SecDefaultAction ACTIONS`
    DefaultAction(Vec<ActionSpec>),
    /// `SecRuleRemoveById 1 2 100-200`
    RemoveById(Vec<IdRange>),
    /// `SecRuleRemoveByTag REGEX`
    RemoveByTag(String),
    /// `SecRuleRemoveByMsg REGEX`
    RemoveByMsg(String),
    /// `SecRuleUpdateTargetById ID[,ID..] TARGETS [REPLACED]`
    UpdateTargetById {
        /// Rules addressed.
        ids: Vec<IdRange>,
        /// Targets to add (or exclusions such as `!ARGS:foo`).
        targets: Vec<VariableSpec>,
        /// Optional target the new ones replace.
        replaced: Option<Vec<VariableSpec>>,
    },
    /// `SecRuleUpdateTargetByTag TAG-REGEX TARGETS [REPLACED]`
    UpdateTargetByTag {
        /// Tag pattern.
        tag: String,
        /// Targets to add.
        targets: Vec<VariableSpec>,
        /// Optional target the new ones replace.
        replaced: Option<Vec<VariableSpec>>,
    },
    /// `SecRuleUpdateTargetByMsg MSG-REGEX TARGETS [REPLACED]`
    UpdateTargetByMsg {
        /// Message pattern.
        msg: String,
        /// Targets to add.
        targets: Vec<VariableSpec>,
        /// Optional target the new ones replace.
        replaced: Option<Vec<VariableSpec>>,
    },
    /// `SecRuleUpdateActionById ID[:offset] ACTIONS`
    UpdateActionById {
        /// Rule id.
        id: i64,
        /// Actions that replace (or add to) the rule's actions.
        actions: Vec<ActionSpec>,
    },
    /// Any other configuration directive (`SecRuleEngine On`,
    /// `SecRequestBodyLimit 13107200`, `SecAuditLog ...`): name as written
    /// (case preserved) and its arguments, unquoted. The compiler decides which
    /// names are known.
    Config {
        /// Directive name, e.g. `SecRuleEngine`.
        name: String,
        /// Arguments after the name, unquoted.
        args: Vec<String>,
    },
}

/// A rule id or an inclusive id range, as in `SecRuleRemoveById 1 100-200`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First id.
    pub start: i64,
    /// Last id (equal to `start` for a single id).
    pub end: i64,
}

impl IdRange {
    /// Whether `id` falls in the range.
    pub fn contains(&self, id: i64) -> bool {
        self.start <= id && id <= self.end
    }
}

/// `SecRule` parts.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// Variables, in order, `|`-separated in the source.
    pub variables: Vec<VariableSpec>,
    /// The operator.
    pub operator: OperatorSpec,
    /// Actions, in order (may be empty).
    pub actions: Vec<ActionSpec>,
}

/// One element of a variable list, e.g. `!ARGS:foo`, `&TX:x`, `ARGS:/^id_/`.
#[derive(Clone, Debug, PartialEq)]
pub struct VariableSpec {
    /// `!` prefix: exclude matching members from the collection.
    pub exclude: bool,
    /// `&` prefix: count members instead of yielding values.
    pub count: bool,
    /// Collection or variable name as written (e.g. `REQUEST_HEADERS`).
    pub name: String,
    /// Text after the first `:`, if any.
    pub selector: Option<Selector>,
}

/// A collection member selector.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// `VAR:key` (quotes removed; matched case-insensitively for most collections).
    Key(String),
    /// `VAR:/regex/`: the pattern between the slashes.
    Regex(String),
}

/// An operator: `[!]@name argument`; a bare string means `@rx string`.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSpec {
    /// `!` before `@`.
    pub negated: bool,
    /// Operator name without `@` (e.g. `rx`), as written.
    pub name: String,
    /// The argument, with SecLang quoting removed (may be empty).
    pub argument: String,
}

/// One action, `name` or `name:value` (value unquoted).
#[derive(Clone, Debug, PartialEq)]
pub struct ActionSpec {
    /// Action name as written (e.g. `setvar`).
    pub name: String,
    /// Value after the first `:`, quotes removed.
    pub value: Option<String>,
}
