//! Calico label selectors: parsing and evaluation.
//!
//! The grammar is Calico's (`projectcalico.org/v3` selectors):
//!
//! | form                      | matches when                                        |
//! |---------------------------|-----------------------------------------------------|
//! | `all()`                   | always (the empty selector means the same)          |
//! | `global()`                | the entity is not namespaced; never for pods        |
//! | `has(k)`                  | label `k` is present                                |
//! | `k == 'v'`                | label `k` is present and equals `v`                 |
//! | `k != 'v'`                | label `k` is absent or differs from `v`             |
//! | `k in {'a', 'b'}`         | label `k` is present and one of the values          |
//! | `k not in {'a', 'b'}`     | label `k` is absent or none of the values           |
//! | `k contains 's'`          | label `k` is present and contains `s`               |
//! | `k starts with 's'`       | label `k` is present and starts with `s`            |
//! | `k ends with 's'`         | label `k` is present and ends with `s`              |
//! | `!e`, `e && f`, `e \|\| f`, `(e)` | negation, conjunction, disjunction, grouping |
//!
//! `!` binds tighter than `&&`, which binds tighter than `||`. Strings take single
//! or double quotes (no escapes, as in Calico). Label keys are made of ASCII
//! letters, digits and `_ . / -` (so `kubernetes.io/metadata.name` is one key).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// Longest selector accepted, in bytes.
pub const MAX_SELECTOR_LEN: usize = 16 * 1024;
/// Deepest nesting of `!` and parentheses accepted.
pub const MAX_DEPTH: usize = 64;

/// A set of labels a selector can be evaluated against.
pub trait Labels {
    /// The value of label `key`, if present.
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get_label(&self, key: &str) -> Option<&str> {
        (**self).get_label(key)
    }
}

/// No labels at all.
impl Labels for () {
    fn get_label(&self, _key: &str) -> Option<&str> {
        None
    }
}

/// Why a selector failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Something unexpected at a byte offset.
    #[error("unexpected {found} at offset {offset}, expected {expected}")]
    Unexpected {
        /// Byte offset in the selector.
        offset: usize,
        /// What was found (a short description).
        found: String,
        /// What the parser wanted.
        expected: &'static str,
    },
    /// A string literal is missing its closing quote.
    #[error("unterminated string starting at offset {offset}")]
    UnterminatedString {
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// The selector nests deeper than [`MAX_DEPTH`].
    #[error("selector nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The selector is longer than [`MAX_SELECTOR_LEN`].
    #[error("selector is longer than {MAX_SELECTOR_LEN} bytes")]
    TooLong,
}

/// A parsed selector expression.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    All,
    Global,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Expr::All => true,
            Expr::Global => false,
            Expr::Has(k) => labels.get_label(k).is_some(),
            Expr::Eq(k, v) => labels.get_label(k) == Some(v.as_str()),
            Expr::Ne(k, v) => labels.get_label(k) != Some(v.as_str()),
            Expr::In(k, set) => labels
                .get_label(k)
                .is_some_and(|have| set.iter().any(|v| v == have)),
            Expr::NotIn(k, set) => !labels
                .get_label(k)
                .is_some_and(|have| set.iter().any(|v| v == have)),
            Expr::Contains(k, s) => labels
                .get_label(k)
                .is_some_and(|have| have.contains(s.as_str())),
            Expr::StartsWith(k, s) => labels
                .get_label(k)
                .is_some_and(|have| have.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => labels
                .get_label(k)
                .is_some_and(|have| have.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(a, b) => a.matches(labels) && b.matches(labels),
            Expr::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(..) => 0,
            Expr::And(..) => 1,
            _ => 2,
        }
    }

    fn fmt_child(&self, child: &Expr, min: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = self;
        if child.precedence() < min {
            write!(f, "({child})")
        } else {
            write!(f, "{child}")
        }
    }
}

fn quote(s: &str) -> String {
    if s.contains('"') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

fn quote_set(set: &[String]) -> String {
    set.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quote(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quote(v)),
            Expr::In(k, set) => write!(f, "{k} in {{{}}}", quote_set(set)),
            Expr::NotIn(k, set) => write!(f, "{k} not in {{{}}}", quote_set(set)),
            Expr::Contains(k, s) => write!(f, "{k} contains {}", quote(s)),
            Expr::StartsWith(k, s) => write!(f, "{k} starts with {}", quote(s)),
            Expr::EndsWith(k, s) => write!(f, "{k} ends with {}", quote(s)),
            Expr::Not(e) => {
                f.write_str("!")?;
                self.fmt_child(e, 2, f)
            }
            Expr::And(a, b) => {
                self.fmt_child(a, 1, f)?;
                f.write_str(" && ")?;
                self.fmt_child(b, 2, f)
            }
            Expr::Or(a, b) => {
                self.fmt_child(a, 0, f)?;
                f.write_str(" || ")?;
                self.fmt_child(b, 1, f)
            }
        }
    }
}

/// A compiled Calico selector.
///
/// ```
/// use std::collections::BTreeMap;
/// use palisade_alp::Selector;
///
/// let s = Selector::parse("app == 'web' && tier in {'fe', 'be'} && !has(canary)").unwrap();
/// let labels = BTreeMap::from([
///     ("app".to_string(), "web".to_string()),
///     ("tier".to_string(), "fe".to_string()),
/// ]);
/// assert!(s.matches(&labels));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// The selector that matches everything (`all()`).
    pub fn all() -> Selector {
        Selector { expr: Expr::All }
    }

    /// Parses a selector; the empty (or all-blank) string is `all()`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong);
        }
        let mut p = Parser {
            src: text,
            pos: 0,
            depth: 0,
        };
        p.skip_ws();
        if p.at_end() {
            return Ok(Selector::all());
        }
        let expr = p.parse_or()?;
        p.skip_ws();
        if !p.at_end() {
            return Err(p.unexpected("`&&`, `||` or the end"));
        }
        Ok(Selector { expr })
    }

    /// Whether the labels satisfy the selector.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.expr.matches(labels)
    }

    /// Whether this is `all()` (it matches every labelled entity).
    pub fn is_all(&self) -> bool {
        self.expr == Expr::All
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::all()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// The canonical spelling (double quotes, single spaces, minimal parentheses);
/// parsing it gives back an equal selector.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.src.as_bytes().get(self.pos) {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let found = match self.rest().chars().next() {
            None => "end of selector".to_string(),
            Some(_) => {
                let snippet: String = self.rest().chars().take(12).collect();
                format!("`{snippet}`")
            }
        };
        SelectorError::Unexpected {
            offset: self.pos,
            found,
            expected,
        }
    }

    /// Consumes `token` (after optional whitespace) if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Consumes keyword `word` only when it is not the start of a longer label.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with(word)
            && !rest
                .as_bytes()
                .get(word.len())
                .is_some_and(|b| is_label_byte(*b))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(SelectorError::TooDeep)
        } else {
            Ok(())
        }
    }

    fn parse_or(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.parse_and()?;
        while self.eat("||") {
            let right = self.parse_and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.parse_unary()?;
        while self.eat("&&") {
            let right = self.parse_unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Expr, SelectorError> {
        self.skip_ws();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            self.enter()?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, SelectorError> {
        self.skip_ws();
        if self.eat("(") {
            self.enter()?;
            let inner = self.parse_or()?;
            self.depth -= 1;
            if !self.eat(")") {
                return Err(self.unexpected("`)`"));
            }
            return Ok(inner);
        }
        let start = self.pos;
        for (word, expr) in [("all", Expr::All), ("global", Expr::Global)] {
            if self.eat_word(word) {
                if self.eat("(") && self.eat(")") {
                    return Ok(expr);
                }
                self.pos = start;
            }
        }
        if self.eat_word("has") {
            if self.eat("(") {
                let key = self.parse_label()?;
                if !self.eat(")") {
                    return Err(self.unexpected("`)`"));
                }
                return Ok(Expr::Has(key));
            }
            // A label that happens to be called `has`.
            self.pos = start;
        }
        let key = self.parse_label()?;
        if self.eat("==") {
            return Ok(Expr::Eq(key, self.parse_string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Ne(key, self.parse_string()?));
        }
        if self.eat_word("in") {
            return Ok(Expr::In(key, self.parse_set()?));
        }
        if self.eat_word("not") {
            if self.eat_word("in") {
                return Ok(Expr::NotIn(key, self.parse_set()?));
            }
            return Err(self.unexpected("`in`"));
        }
        if self.eat_word("contains") {
            return Ok(Expr::Contains(key, self.parse_string()?));
        }
        if self.eat_word("starts") {
            if self.eat_word("with") {
                return Ok(Expr::StartsWith(key, self.parse_string()?));
            }
            return Err(self.unexpected("`with`"));
        }
        if self.eat_word("ends") {
            if self.eat_word("with") {
                return Ok(Expr::EndsWith(key, self.parse_string()?));
            }
            return Err(self.unexpected("`with`"));
        }
        self.skip_ws();
        Err(self.unexpected("`==`, `!=`, `in`, `not in`, `contains`, `starts with` or `ends with`"))
    }

    fn parse_label(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let bytes = self.src.as_bytes();
        let start = self.pos;
        while bytes.get(self.pos).is_some_and(|b| is_label_byte(*b)) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected("a label key"));
        }
        Ok(self.src[start..self.pos].to_string())
    }

    fn parse_string(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let start = self.pos;
        let quote = match self.src.as_bytes().get(self.pos) {
            Some(q @ (b'\'' | b'"')) => *q as char,
            _ => return Err(self.unexpected("a quoted string")),
        };
        let body = &self.src[start + 1..];
        match body.find(quote) {
            Some(end) => {
                self.pos = start + 1 + end + 1;
                Ok(body[..end].to_string())
            }
            None => Err(SelectorError::UnterminatedString { offset: start }),
        }
    }

    fn parse_set(&mut self) -> Result<Vec<String>, SelectorError> {
        if !self.eat("{") {
            return Err(self.unexpected("`{`"));
        }
        let mut values = Vec::new();
        if self.eat("}") {
            return Ok(values);
        }
        loop {
            values.push(self.parse_string()?);
            if self.eat("}") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(self.unexpected("`,` or `}`"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluates_the_calico_grammar() {
        let l = labels(&[
            ("app", "web"),
            ("tier", "frontend"),
            ("kubernetes.io/metadata.name", "shop"),
            ("has", "x"),
        ]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("   ", true),
            ("all()", true),
            ("all( )", true),
            ("global()", false),
            ("!global()", true),
            ("has(app)", true),
            ("has( app )", true),
            ("has(nope)", false),
            ("!has(nope)", true),
            ("! has(app)", false),
            ("app == 'web'", true),
            ("app == \"web\"", true),
            ("app=='web'", true),
            ("app == 'db'", false),
            ("nope == ''", false),
            ("app != 'db'", true),
            ("nope != 'db'", true),
            ("app != 'web'", false),
            ("app in {'web', 'db'}", true),
            ("app in {\"db\"}", false),
            ("app in {}", false),
            ("nope in {'x'}", false),
            ("app not in {'db'}", true),
            ("app not in {'web'}", false),
            ("nope not in {'web'}", true),
            ("tier contains 'ont'", true),
            ("tier starts with 'front'", true),
            ("tier ends with 'end'", true),
            ("tier ends with 'front'", false),
            ("nope contains ''", false),
            ("kubernetes.io/metadata.name == 'shop'", true),
            ("app == 'web' && tier == 'frontend'", true),
            ("app == 'web' && tier == 'backend'", false),
            ("app == 'db' || tier == 'frontend'", true),
            ("app == 'db' || tier == 'backend'", false),
            ("!(app == 'db' || tier == 'backend')", true),
            ("app == 'db' && tier == 'x' || has(app)", true),
            ("app == 'db' && (tier == 'x' || has(app))", false),
            ("has == 'x'", true),
            ("((((app == 'web'))))", true),
            ("!!has(app)", true),
        ];
        for (text, want) in cases {
            let sel = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sel.matches(&l), *want, "{text}");
            let again = Selector::parse(&sel.to_string()).expect("canonical form parses");
            assert_eq!(again, sel, "canonical form of {text} is {sel}");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        let cases = [
            "app ==",
            "app == web",
            "app = 'web'",
            "app == 'web",
            "has(app",
            "has()",
            "(app == 'a'",
            "app == 'a')",
            "app in 'a'",
            "app in {'a' 'b'}",
            "app in {'a',}",
            "app not 'a'",
            "app starts 'a'",
            "&& app == 'a'",
            "app == 'a' &&",
            "app == 'a' & b == 'c'",
            "app == 'a' b == 'c'",
            "all",
            "!",
            "é == 'x'",
        ];
        for text in cases {
            assert!(Selector::parse(text).is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn limits_depth_and_length() {
        let deep = format!("{}has(a){}", "(".repeat(100), ")".repeat(100));
        assert_eq!(Selector::parse(&deep), Err(SelectorError::TooDeep));
        let nots = format!("{}has(a)", "!".repeat(100));
        assert_eq!(Selector::parse(&nots), Err(SelectorError::TooDeep));
        let long = "a".repeat(MAX_SELECTOR_LEN + 1);
        assert_eq!(Selector::parse(&long), Err(SelectorError::TooLong));
    }

    #[test]
    fn reports_offsets() {
        match Selector::parse("app == 'a' && ???") {
            Err(SelectorError::Unexpected { offset, .. }) => assert_eq!(offset, 14),
            other => panic!("unexpected {other:?}"),
        }
    }
}
