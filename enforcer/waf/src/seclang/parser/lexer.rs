//! The SecLang lexer: splits configuration text into directives, each a list
//! of words (unquoted, or single/double quoted with the quotes removed).
//!
//! Rules, following ModSecurity v3's configuration scanner:
//!
//! - A directive ends at a newline that is not escaped by a `\` continuation.
//!   The continuation (`\`, optional spaces/tabs/CR, newline) separates words
//!   outside quotes; inside quotes it is removed together with the indentation
//!   of the next line, so `"id:1,\⏎    phase:2"` reads `id:1,phase:2` and
//!   `msg:'a \⏎    b'` reads `a b` (as Coraza joins lines; ModSecurity v3's
//!   scanner is inconsistent here and Apache keeps the indentation). Trailing
//!   blanks after the `\` are tolerated (ModSecurity v3 requires the newline
//!   to follow it directly).
//! - A line whose first non-blank character is `#` is a comment. A comment
//!   that comments out a `SecRule` or `SecAction` and ends in `\` continues
//!   over the following lines while they end in `\`, as in ModSecurity v3.
//!   Other comments end at their newline. A `#` after a directive's first word
//!   is ordinary text.
//! - In a quoted word, `\` followed by the quote character is the quote
//!   character; `\\` is kept as two backslashes but does not escape a following
//!   quote; any other backslash is kept as it is (regexes need them). A quoted
//!   word ends at its closing quote even when text follows directly
//!   (`"a""b"` is two words, as in Apache and ModSecurity v3).
//! - An unquoted word runs to the next blank, newline or continuation; quotes
//!   and backslashes inside it are literal.

use std::borrow::Cow;

/// One word of a directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word<'a> {
    /// The text, quotes removed and escapes resolved.
    pub(crate) text: Cow<'a, str>,
    /// The quote character if the word was quoted.
    pub(crate) quote: Option<char>,
}

/// A directive as the lexer sees it: its first line and its words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawDirective<'a> {
    /// 1-based line of the first word.
    pub(crate) line: u32,
    /// The words, directive name first (never empty).
    pub(crate) words: Vec<Word<'a>>,
    /// A lexical error in the directive (such as an unterminated quote); the
    /// directive must then be rejected.
    pub(crate) error: Option<String>,
}

/// Iterator over the directives of a text.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

/// Blanks inside a line (CR counts, so CRLF line ends need no special case).
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c')
}

/// Whether `line` (a comment) comments out a `SecRule`/`SecAction`.
fn comments_out_rule(line: &str) -> bool {
    let body = line.trim_start_matches('#').trim_start();
    let starts = |prefix: &str| {
        body.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts("secrule") || starts("secaction")
}

/// Whether `line` ends with a `\` (ignoring trailing blanks).
fn ends_with_backslash(line: &str) -> bool {
    line.trim_end_matches([' ', '\t', '\r', '\x0b', '\x0c'])
        .ends_with('\\')
}

/// At most `max` characters of `text`, with `...` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

impl<'a> Lexer<'a> {
    /// A lexer over `text`, whose first line is line 1.
    pub(crate) fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// If a line continuation (`\`, blanks, newline or end of text) starts at
    /// `at`, the position after it.
    fn continuation_at(&self, at: usize) -> Option<usize> {
        if self.bytes.get(at) != Some(&b'\\') {
            return None;
        }
        let mut q = at + 1;
        while q < self.bytes.len() && is_blank(self.bytes[q]) {
            q += 1;
        }
        match self.bytes.get(q) {
            None => Some(q),
            Some(b'\n') => Some(q + 1),
            Some(_) => None,
        }
    }

    /// Consumes a continuation starting at `self.pos`, if there is one.
    fn eat_continuation(&mut self) -> bool {
        match self.continuation_at(self.pos) {
            Some(after) => {
                if self.bytes.get(after.wrapping_sub(1)) == Some(&b'\n') {
                    self.line = self.line.saturating_add(1);
                }
                self.pos = after;
                true
            }
            None => false,
        }
    }

    fn skip_blanks(&mut self) {
        while self.pos < self.bytes.len() && is_blank(self.bytes[self.pos]) {
            self.pos += 1;
        }
    }

    /// End of the current physical line (index of its `\n` or end of text).
    fn line_end(&self) -> usize {
        memchr::memchr(b'\n', &self.bytes[self.pos..]).map_or(self.bytes.len(), |i| self.pos + i)
    }

    /// Consumes the rest of the current physical line including its newline;
    /// returns the line's text.
    fn take_line(&mut self) -> &'a str {
        let end = self.line_end();
        let line = &self.text[self.pos..end];
        if end < self.bytes.len() {
            self.pos = end + 1;
            self.line = self.line.saturating_add(1);
        } else {
            self.pos = end;
        }
        line
    }

    /// Skips a comment starting at `self.pos` (on `#`).
    fn skip_comment(&mut self) {
        let first = self.take_line();
        if comments_out_rule(first) && ends_with_backslash(first) {
            while self.pos < self.bytes.len() {
                let next = self.take_line();
                if !ends_with_backslash(next) {
                    break;
                }
            }
        }
    }

    /// Reads a quoted word; `self.pos` is on the opening quote. On error the
    /// position is left on the newline (or end) that cut the word short.
    fn quoted(&mut self) -> Result<Word<'a>, String> {
        let quote = self.bytes[self.pos];
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut seg = self.pos;
        let mut modified = false;
        loop {
            let Some(&c) = self.bytes.get(self.pos) else {
                return Err(self.unterminated(start));
            };
            match c {
                _ if c == quote => {
                    let text = if modified {
                        out.push_str(&self.text[seg..self.pos]);
                        Cow::Owned(out)
                    } else {
                        Cow::Borrowed(&self.text[seg..self.pos])
                    };
                    self.pos += 1;
                    return Ok(Word {
                        text,
                        quote: Some(char::from(quote)),
                    });
                }
                b'\n' => return Err(self.unterminated(start)),
                b'\\' => {
                    if self.continuation_at(self.pos).is_some() {
                        // Remove the continuation and the next line's indentation.
                        out.push_str(&self.text[seg..self.pos]);
                        modified = true;
                        self.eat_continuation();
                        self.skip_blanks();
                        seg = self.pos;
                    } else {
                        match self.bytes.get(self.pos + 1) {
                            Some(&n) if n == quote => {
                                out.push_str(&self.text[seg..self.pos]);
                                out.push(char::from(quote));
                                modified = true;
                                self.pos += 2;
                                seg = self.pos;
                            }
                            Some(b'\\') => self.pos += 2,
                            _ => self.pos += 1,
                        }
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    fn unterminated(&self, start: usize) -> String {
        let rest = &self.text[start..];
        let first_line = rest.split('\n').next().unwrap_or(rest).trim_end();
        format!("unterminated quoted string `{}`", excerpt(first_line, 60))
    }

    /// Reads an unquoted word starting at `self.pos`.
    fn unquoted(&mut self) -> Word<'a> {
        let start = self.pos;
        while let Some(&c) = self.bytes.get(self.pos) {
            if is_blank(c) || c == b'\n' || (c == b'\\' && self.continuation_at(self.pos).is_some())
            {
                break;
            }
            self.pos += 1;
        }
        Word {
            text: Cow::Borrowed(&self.text[start..self.pos]),
            quote: None,
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = RawDirective<'a>;

    fn next(&mut self) -> Option<RawDirective<'a>> {
        // Skip blank lines, stray continuations and comments.
        loop {
            self.skip_blanks();
            match self.bytes.get(self.pos) {
                None => return None,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line = self.line.saturating_add(1);
                }
                Some(b'#') => self.skip_comment(),
                Some(b'\\') if self.eat_continuation() => {}
                Some(_) => break,
            }
        }
        let line = self.line;
        let mut words = Vec::new();
        let mut error = None;
        loop {
            self.skip_blanks();
            match self.bytes.get(self.pos) {
                None => break,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line = self.line.saturating_add(1);
                    break;
                }
                Some(b'\\') if self.eat_continuation() => {}
                Some(b'"' | b'\'') => match self.quoted() {
                    Ok(word) => words.push(word),
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                },
                Some(_) => words.push(self.unquoted()),
            }
        }
        if words.is_empty() && error.is_none() {
            // Only possible at the end of the text; nothing left to read.
            return None;
        }
        Some(RawDirective { line, words, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, words, error?) of one directive.
    type Lexed = (u32, Vec<String>, Option<String>);

    fn lex(text: &str) -> Vec<Lexed> {
        Lexer::new(text)
            .map(|d| {
                let words = d
                    .words
                    .iter()
                    .map(|w| match w.quote {
                        Some(q) => format!("{q}{}{q}", w.text),
                        None => w.text.to_string(),
                    })
                    .collect();
                (d.line, words, d.error)
            })
            .collect()
    }

    fn ok(line: u32, words: &[&str]) -> Lexed {
        (line, words.iter().map(|w| w.to_string()).collect(), None)
    }

    #[test]
    fn words_and_quotes() {
        let cases: &[(&str, Vec<Lexed>)] = &[
            ("SecRuleEngine On", vec![ok(1, &["SecRuleEngine", "On"])]),
            (
                "  SecRuleEngine\tOn  \r\n",
                vec![ok(1, &["SecRuleEngine", "On"])],
            ),
            (
                r#"SecRule ARGS "@rx \d+" "id:1""#,
                vec![ok(1, &["SecRule", "ARGS", r#""@rx \d+""#, r#""id:1""#])],
            ),
            (r#"X "a \"b\" c""#, vec![ok(1, &["X", r#""a "b" c""#])]),
            (r#"X "a\\" b"#, vec![ok(1, &["X", r#""a\\""#, "b"])]),
            (r"X 'it\'s' 'a\b'", vec![ok(1, &["X", "'it's'", r"'a\b'"])]),
            (r#"X 'say "hi"'"#, vec![ok(1, &["X", r#"'say "hi"'"#])]),
            (r#"X "a""b"c"#, vec![ok(1, &["X", r#""a""#, r#""b""#, "c"])]),
            (
                r#"X un"quoted' w\d"#,
                vec![ok(1, &["X", r#"un"quoted'"#, r"w\d"])],
            ),
            (r#"X """#, vec![ok(1, &["X", r#""""#])]),
            (
                "X # not a comment",
                vec![ok(1, &["X", "#", "not", "a", "comment"])],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&lex(text), want, "text {text:?}");
        }
    }

    #[test]
    fn continuations() {
        let text = "SecAction \\\n    \"id:1,\\\n    phase:1,\\\n    pass\"\nSecRuleEngine On\n";
        assert_eq!(
            lex(text),
            vec![
                ok(1, &["SecAction", r#""id:1,phase:1,pass""#]),
                ok(5, &["SecRuleEngine", "On"])
            ]
        );
        // Continuation with CRLF and trailing blanks; separates unquoted words.
        let text = "SecRuleEngine \\ \r\nOn\\\r\nOff\r\nX y";
        assert_eq!(
            lex(text),
            vec![ok(1, &["SecRuleEngine", "On", "Off"]), ok(4, &["X", "y"])]
        );
        // Inside quotes, blanks before a continuation stay and the next
        // line's indentation goes.
        let text = "X \"a  \\\n   b\" 'c\\\n\td'";
        assert_eq!(lex(text), vec![ok(1, &["X", r#""a  b""#, "'cd'"])]);
        // A backslash at the very end of the text.
        assert_eq!(lex("X y \\"), vec![ok(1, &["X", "y"])]);
        // `\\` before the newline is an escaped backslash, not a continuation
        // inside quotes.
        let got = lex("X \"a\\\\\nY z");
        assert_eq!(got[0].0, 1);
        assert!(
            got[0].2.as_deref().unwrap_or("").contains("unterminated"),
            "{got:?}"
        );
        assert_eq!(got[1], ok(2, &["Y", "z"]));
    }

    #[test]
    fn comments() {
        let text = "# comment\n  # indented\nA 1\n#SecRule ARGS \"@rx x\" \\\n    \"id:1,\\\n    pass\"\nB 2\n# plain comment \\\nC 3\n";
        assert_eq!(
            lex(text),
            vec![ok(3, &["A", "1"]), ok(7, &["B", "2"]), ok(9, &["C", "3"])]
        );
        // Commented-out blocks where every line carries its own `#`.
        let text = "#SecAction \\\n#    \"id:900000,\\\n#    pass\"\nD 4";
        assert_eq!(lex(text), vec![ok(4, &["D", "4"])]);
    }

    #[test]
    fn errors_end_at_the_line() {
        let text = "X \"open\nY 'also\nZ ok\n";
        let got = lex(text);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0].2.as_deref(),
            Some("unterminated quoted string `\"open`")
        );
        assert_eq!(got[1].0, 2);
        assert_eq!(
            got[1].2.as_deref(),
            Some("unterminated quoted string `'also`")
        );
        assert_eq!(got[2], ok(3, &["Z", "ok"]));
        assert_eq!(lex("X \"eof").len(), 1);
    }

    #[test]
    fn bom_and_line_numbers() {
        let text = "\u{feff}A\n\n\nB\n";
        assert_eq!(lex(text), vec![ok(1, &["A"]), ok(4, &["B"])]);
        assert_eq!(excerpt("abcdef", 3), "abc...");
        assert_eq!(excerpt("ab", 3), "ab");
    }
}
