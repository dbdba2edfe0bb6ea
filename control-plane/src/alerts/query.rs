//! The GlobalAlert query language (Calico's): a parser from text to a
//! [`Query`] and a matcher over [`WafEvent`]s.
//!
//! ```text
//! query  := <empty> | or
//! or     := and ( OR and )*
//! and    := unary ( AND unary )*
//! unary  := NOT unary | '(' or ')' | term
//! term   := key op value | key [NOT] IN '{' value ( ',' value )* [','] '}'
//! op     := '=' | '!=' | '<' | '<=' | '>' | '>='
//! key, value := "double quoted" | 'single quoted' | bare word
//! ```
//!
//! Keywords (`AND`, `OR`, `NOT`, `IN`) are case-insensitive; field names and
//! values are not. A bare word runs until white space or one of
//! `= ! < > ( ) { } , " '`; quoted text takes `\"`, `\'` and `\\` escapes.
//! Values in an `IN` set may hold wildcards: `*` (any run of characters) and
//! `?` (one character); `=` and `!=` compare exactly. `<`, `<=`, `>`, `>=`
//! compare numbers (a value that is not a number never matches).
//!
//! Fields may hold several values (`rule_id`, `rule_info`, ...): `=`, `IN`
//! and the orderings hold when *some* value matches; `!=` and `NOT IN` hold
//! when *no* value does (so an event without the field matches them).
//! An empty query matches every event.

use std::fmt;

use super::fields::{Field, WafEvent};

/// Deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 64;

/// Most values in one `IN` set.
pub const MAX_SET: usize = 1024;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// One element of a wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Literal text.
    Text(String),
    /// `?`: one character.
    One,
    /// `*`: any run of characters.
    Many,
}

/// A value of an `IN` set: exact text or a wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    pieces: Option<Vec<Piece>>,
}

impl Pattern {
    /// Compiles `source`; `*` and `?` are wildcards.
    pub fn new(source: &str) -> Pattern {
        if !source.contains(['*', '?']) {
            return Pattern {
                source: source.to_string(),
                pieces: None,
            };
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        for c in source.chars() {
            match c {
                '*' | '?' => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    let piece = if c == '*' { Piece::Many } else { Piece::One };
                    // `**` is `*`.
                    if !(piece == Piece::Many && pieces.last() == Some(&Piece::Many)) {
                        pieces.push(piece);
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Pattern {
            source: source.to_string(),
            pieces: Some(pieces),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `value` matches the whole pattern.
    pub fn matches(&self, value: &str) -> bool {
        match &self.pieces {
            None => self.source == value,
            Some(pieces) => glob(pieces, value),
        }
    }
}

/// Matches `value` against `pieces`, backtracking only to the last `*` (so
/// the cost is at most the product of the lengths, never exponential).
fn glob(pieces: &[Piece], value: &str) -> bool {
    let (mut p, mut v) = (0usize, 0usize);
    // Where to resume after the last `*`: (piece after it, value offset).
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if p == pieces.len() && v == value.len() {
            return true;
        }
        let step = match pieces.get(p) {
            Some(Piece::Many) => {
                resume = Some((p + 1, v));
                p += 1;
                continue;
            }
            Some(Piece::One) => value[v..].chars().next().map(|c| (p + 1, v + c.len_utf8())),
            Some(Piece::Text(t)) => value[v..]
                .starts_with(t.as_str())
                .then(|| (p + 1, v + t.len())),
            None => None,
        };
        match step {
            Some((np, nv)) => {
                p = np;
                v = nv;
            }
            None => match resume {
                // Let the last `*` take one more character and retry.
                Some((rp, rv)) => match value[rv..].chars().next() {
                    Some(c) => {
                        let nv = rv + c.len_utf8();
                        resume = Some((rp, nv));
                        p = rp;
                        v = nv;
                    }
                    None => return false,
                },
                None => return false,
            },
        }
    }
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Matches everything (the empty query).
    All,
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// The inner expression does not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Cmp {
        /// The field.
        field: Field,
        /// The operator.
        op: CmpOp,
        /// The value as written.
        value: String,
        /// The value as a number, for orderings.
        number: Option<f64>,
    },
    /// `field IN {..}` or `field NOT IN {..}`.
    In {
        /// The field.
        field: Field,
        /// The set.
        set: Vec<Pattern>,
        /// `NOT IN`.
        negated: bool,
    },
}

/// A compiled query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    expr: Expr,
}

/// Why a query does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("query column {column}: {reason}")]
pub struct QueryError {
    /// 1-based character column of the offending token.
    pub column: usize,
    /// What is wrong there.
    pub reason: QueryErrorKind,
}

/// What is wrong with a query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryErrorKind {
    /// A quote is not closed.
    #[error("unterminated string")]
    UnterminatedString,
    /// A character that starts no token.
    #[error("unexpected character `{0}`")]
    UnexpectedChar(char),
    /// A token where something else was needed.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What was needed.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// A key that is no field of the `waf` data set.
    #[error("unknown field `{name}` (known: {known})")]
    UnknownField {
        /// The key.
        name: String,
        /// The known fields.
        known: String,
    },
    /// `IN {}`.
    #[error("empty set")]
    EmptySet,
    /// An `IN` set with more than [`MAX_SET`] values.
    #[error("more than {MAX_SET} values in a set")]
    SetTooLarge,
    /// Parentheses or `NOT` nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// An ordering (`<`, `>`, ...) against a value that is not a number.
    #[error("`{op}` needs a number, not `{value}`")]
    NotANumber {
        /// The operator.
        op: &'static str,
        /// The value.
        value: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Op(CmpOp),
    Word(String),
    Quoted(String),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Op(op) => write!(f, "`{}`", op.symbol()),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Quoted(q) => write!(f, "\"{q}\""),
            Tok::End => f.write_str("the end of the query"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |i: usize, reason| QueryError {
        column: i + 1,
        reason,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '=' => {
                // `==` is accepted as `=`.
                if chars.get(i + 1) == Some(&'=') {
                    i += 1;
                }
                Tok::Op(CmpOp::Eq)
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Tok::Op(CmpOp::Ne)
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                if eq {
                    i += 1;
                }
                Tok::Op(match (c, eq) {
                    ('<', false) => CmpOp::Lt,
                    ('<', true) => CmpOp::Le,
                    (_, false) => CmpOp::Gt,
                    (_, true) => CmpOp::Ge,
                })
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, QueryErrorKind::UnterminatedString)),
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\'' | '\\')) => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == quote => break,
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                Tok::Quoted(s)
            }
            '!' => return Err(err(i, QueryErrorKind::UnexpectedChar(c))),
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || "=!<>(){},\"'".contains(c) {
                        break;
                    }
                    s.push(c);
                    i += 1;
                }
                out.push((start + 1, Tok::Word(s)));
                continue;
            }
        };
        out.push((start + 1, tok));
        i += 1;
    }
    out.push((chars.len() + 1, Tok::End));
    Ok(out)
}

fn keyword(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

fn is_keyword(tok: &Tok) -> bool {
    ["AND", "OR", "NOT", "IN"].iter().any(|k| keyword(tok, k))
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(_, t)| t)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(1, |(c, _)| *c)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, reason: QueryErrorKind) -> QueryError {
        QueryError {
            column: self.column(),
            reason,
        }
    }

    fn expected(&self, expected: &'static str) -> QueryError {
        self.error(QueryErrorKind::Expected {
            expected,
            found: self.peek().to_string(),
        })
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while keyword(self.peek(), "OR") {
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while keyword(self.peek(), "AND") {
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(QueryErrorKind::TooDeep));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if keyword(self.peek(), "NOT") {
            self.next();
            return self.nested(|p| Ok(Expr::Not(Box::new(p.unary()?))));
        }
        if *self.peek() == Tok::LParen {
            self.next();
            let inner = self.nested(|p| p.or())?;
            if *self.peek() != Tok::RParen {
                return Err(self.expected("`)`, AND or OR"));
            }
            self.next();
            return Ok(inner);
        }
        self.term()
    }

    fn value(&mut self, expected: &'static str) -> Result<String, QueryError> {
        match self.peek() {
            Tok::Word(w) | Tok::Quoted(w) => {
                let w = w.clone();
                self.next();
                Ok(w)
            }
            _ => Err(self.expected(expected)),
        }
    }

    fn term(&mut self) -> Result<Expr, QueryError> {
        let key_column = self.column();
        let key = match self.peek() {
            Tok::Quoted(k) => k.clone(),
            Tok::Word(k) if !is_keyword(self.peek()) => k.clone(),
            _ => return Err(self.expected("a field name, NOT or `(`")),
        };
        self.next();
        let field = Field::from_name(&key).ok_or_else(|| QueryError {
            column: key_column,
            reason: QueryErrorKind::UnknownField {
                name: key.clone(),
                known: Field::names(),
            },
        })?;
        let negated = keyword(self.peek(), "NOT");
        if negated {
            self.next();
            if !keyword(self.peek(), "IN") {
                return Err(self.expected("IN after NOT"));
            }
        }
        if keyword(self.peek(), "IN") {
            self.next();
            if *self.peek() != Tok::LBrace {
                return Err(self.expected("`{`"));
            }
            self.next();
            let mut set = Vec::new();
            loop {
                if *self.peek() == Tok::RBrace {
                    if set.is_empty() {
                        return Err(self.error(QueryErrorKind::EmptySet));
                    }
                    self.next();
                    break;
                }
                if set.len() >= MAX_SET {
                    return Err(self.error(QueryErrorKind::SetTooLarge));
                }
                set.push(Pattern::new(&self.value("a value or `}`")?));
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RBrace => {}
                    _ => return Err(self.expected("`,` or `}`")),
                }
            }
            return Ok(Expr::In {
                field,
                set,
                negated,
            });
        }
        let op = match self.peek() {
            Tok::Op(op) => *op,
            _ => return Err(self.expected("an operator (=, !=, <, <=, >, >=, IN, NOT IN)")),
        };
        self.next();
        let value_column = self.column();
        let value = self.value("a value")?;
        let number = value.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        if !matches!(op, CmpOp::Eq | CmpOp::Ne) && number.is_none() {
            return Err(QueryError {
                column: value_column,
                reason: QueryErrorKind::NotANumber {
                    op: op.symbol(),
                    value,
                },
            });
        }
        Ok(Expr::Cmp {
            field,
            op,
            value,
            number,
        })
    }
}

impl Query {
    /// Parses `text`; an empty (or blank) query matches everything.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let toks = lex(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        if *p.peek() == Tok::End {
            return Ok(Query { expr: Expr::All });
        }
        let expr = p.or()?;
        if *p.peek() != Tok::End {
            return Err(p.expected("AND, OR or the end of the query"));
        }
        Ok(Query { expr })
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// True when `event` is selected.
    pub fn matches(&self, event: &WafEvent) -> bool {
        eval(&self.expr, event)
    }
}

fn eval(expr: &Expr, event: &WafEvent) -> bool {
    match expr {
        Expr::All => true,
        Expr::And(a, b) => eval(a, event) && eval(b, event),
        Expr::Or(a, b) => eval(a, event) || eval(b, event),
        Expr::Not(e) => !eval(e, event),
        Expr::Cmp {
            field,
            op: CmpOp::Eq,
            value,
            ..
        } => event.any_value(*field, &mut |v| v == value),
        Expr::Cmp {
            field,
            op: CmpOp::Ne,
            value,
            ..
        } => !event.any_value(*field, &mut |v| v == value),
        Expr::Cmp {
            field, op, number, ..
        } => {
            let Some(n) = *number else { return false };
            event.any_value(*field, &mut |v| match v.trim().parse::<f64>() {
                Ok(x) => match op {
                    CmpOp::Lt => x < n,
                    CmpOp::Le => x <= n,
                    CmpOp::Gt => x > n,
                    CmpOp::Ge => x >= n,
                    CmpOp::Eq | CmpOp::Ne => false,
                },
                Err(_) => false,
            })
        }
        Expr::In {
            field,
            set,
            negated,
        } => {
            let any = event.any_value(*field, &mut |v| set.iter().any(|p| p.matches(v)));
            any != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> WafEvent {
        WafEvent::from_json(
            "node-1",
            r#"{"source":{"ip":"10.0.0.9","port":40000,"namespace":"shop","pod":"cart-1"},
                "destination":{"service":"www","namespace":"web","port":8080},
                "host":"www.example","method":"POST","path":"/login?user=a","action":"denied",
                "rules":[{"id":942100,"msg":"SQL Injection Attack Detected via libinjection",
                          "severity":"CRITICAL","tags":["attack-sqli"]},
                         {"id":949110,"msg":"Inbound Anomaly Score Exceeded (Total Score: 5)"}],
                "anomaly_score":5}"#,
        )
        .unwrap()
    }

    #[test]
    fn matcher_table() {
        let e = event();
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("   ", true),
            (r#""rule_info" IN {"*942100*"}"#, true),
            (r#""rule_info" IN {"*941100*"}"#, false),
            (r#"rule_info IN {"*941100*", "942100:*"}"#, true),
            (r#"rule_info NOT IN {"*942100*"}"#, false),
            (r#"rule_info NOT IN {"*941*"}"#, true),
            (r#"rule_id = 949110"#, true),
            (r#"rule_id = "942100""#, true),
            (r#"rule_id != 942100"#, false),
            (r#"rule_id != 1"#, true),
            (r#"rule_id > 949000"#, true),
            (r#"rule_id >= 949111"#, false),
            (r#"anomaly_score >= 5"#, true),
            (r#"anomaly_score < 5"#, false),
            (r#"anomaly_score <= 5.0"#, true),
            (
                r#"destination_port > 8000 AND destination_port < 9000"#,
                true,
            ),
            (r#"action = denied"#, true),
            (r#"action=denied"#, true),
            (r#"action == 'denied'"#, true),
            (r#"action = Denied"#, false),
            (r#"method IN {GET, HEAD}"#, false),
            (r#"method in {get, POST}"#, true),
            (r#"method NOT IN {GET, HEAD}"#, true),
            (r#"path IN {"/login*"}"#, true),
            (r#"path IN {"/login"}"#, false),
            (r#"path IN {"/log?n*"}"#, true),
            (r#"path IN {"/log?in"}"#, false),
            (r#"host IN {"*.example"}"#, true),
            (r#"host IN {"*example*", "x"}"#, true),
            (
                r#"source_namespace = shop AND destination_name = www"#,
                true,
            ),
            (
                r#"source_namespace = shop AND destination_name = api"#,
                false,
            ),
            (
                r#"source_namespace = other OR destination_name = www"#,
                true,
            ),
            (r#"NOT source_namespace = other"#, true),
            (r#"not (source_namespace = shop or method = GET)"#, false),
            (r#"NOT NOT action = denied"#, true),
            // AND binds tighter than OR.
            (
                r#"method = GET AND action = x OR host = "www.example""#,
                true,
            ),
            (
                r#"method = GET AND (action = x OR host = "www.example")"#,
                false,
            ),
            // A missing field: `=`/IN never hold, `!=`/NOT IN always do.
            (r#"policy_name = p"#, false),
            (r#"policy_name != p"#, true),
            (r#"policy_name IN {"*"}"#, false),
            (r#"policy_name NOT IN {"*"}"#, true),
            (r#"rule_severity = CRITICAL"#, true),
            (r#"rule_tag IN {"attack-*"}"#, true),
            (r#"node = "node-1""#, true),
            (r#"source_name = "cart-1""#, true),
            (r#""rule_msg" IN {"*Score: ?)"}"#, true),
        ];
        for (q, want) in cases {
            let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(query.matches(&e), *want, "{q}");
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, usize, &str)] = &[
            (r#""rule_info" IN {"*942100*""#, 27, "expected `,` or `}`"),
            (r#""rule_info" IN {"*942100*}"#, 17, "unterminated string"),
            (r#"rule_info IN {}"#, 15, "empty set"),
            (r#"rule_info IN "x""#, 14, "expected `{`"),
            (r#"rulez = 1"#, 1, "unknown field `rulez`"),
            (r#"action denied"#, 8, "expected an operator"),
            (r#"action ="#, 9, "expected a value, found the end"),
            (r#"action = denied AND"#, 20, "expected a field name"),
            (
                r#"action = denied method = GET"#,
                17,
                "expected AND, OR or the end",
            ),
            (r#"(action = denied"#, 17, "expected `)`"),
            (r#"action = denied)"#, 16, "expected AND, OR or the end"),
            (r#"action ! denied"#, 8, "unexpected character `!`"),
            (
                r#"anomaly_score > high"#,
                17,
                "`>` needs a number, not `high`",
            ),
            (r#"action NOT = x"#, 12, "expected IN after NOT"),
            (r#"AND = x"#, 1, "expected a field name"),
            (r#"method IN {GET HEAD}"#, 16, "expected `,` or `}`"),
            (r#"method IN {GET,,}"#, 16, "expected a value or `}`"),
        ];
        for (q, column, needle) in cases {
            let e = Query::parse(q).expect_err(q);
            assert_eq!(e.column, *column, "{q}: {e}");
            assert!(e.to_string().contains(needle), "{q}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("query column {column}: ")));
        }
    }

    #[test]
    fn bounded_nesting() {
        let deep = format!("{}action = x{}", "(".repeat(100), ")".repeat(100));
        let e = Query::parse(&deep).unwrap_err();
        assert_eq!(e.reason, QueryErrorKind::TooDeep);
        let nots = format!("{}action = x", "NOT ".repeat(10_000));
        assert_eq!(
            Query::parse(&nots).unwrap_err().reason,
            QueryErrorKind::TooDeep
        );
        let ok = format!("{}action = x{}", "(".repeat(60), ")".repeat(60));
        assert!(Query::parse(&ok).is_ok());
    }

    #[test]
    fn wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("?", "", false),
            ("?", "é", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("*b*", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abcbc", true),
            ("a*c", "abcb", false),
            ("a?c", "abc", true),
            ("a?c", "abbc", false),
            ("a**c", "axyc", true),
            ("*942100*", "942100: SQL", true),
            ("*942100*", "94210: SQL", false),
            ("*a*a*a*a*b", &"a".repeat(200), false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pat, value, want) in cases {
            assert_eq!(Pattern::new(pat).matches(value), *want, "{pat} vs {value}");
        }
    }

    #[test]
    fn keyword_values_and_quoting() {
        let q = Query::parse(r#"method = "AND" OR 'path' = 'it\'s'"#).unwrap();
        let Expr::Or(a, b) = q.expr() else {
            panic!("{q:?}")
        };
        assert!(matches!(&**a, Expr::Cmp { value, .. } if value == "AND"));
        assert!(matches!(&**b, Expr::Cmp { field: Field::Path, value, .. } if value == "it's"));
    }
}
