//! The directive parser: turns the lexer's words into [`Directive`]s, follows
//! `Include`, and parses the mini-languages inside arguments (variable lists,
//! operators, action lists).
//!
//! Behaviour worth knowing (ModSecurity v3 is the reference; see the lexer
//! module for quoting, comments and continuations):
//!
//! - Directive names are case-insensitive. `SecRule`, `SecAction`,
//!   `SecDefaultAction`, `SecMarker`, `SecRuleRemoveBy*`, `SecRuleUpdate*` and
//!   `Include` get their own nodes; every other `Sec*` name becomes
//!   [`Directive::Config`]; anything else is an error.
//! - Every error is collected; parsing resumes with the next directive. An
//!   error names the file and the line where its directive starts.
//! - Operators: `[!]@name argument`; exactly one blank separates the name from
//!   the argument and the rest is kept verbatim (ModSecurity v3). Without `@`
//!   the whole string is an `rx` argument.
//! - Variable lists: `|`-separated; `!` excludes, `&` counts; `NAME:selector`
//!   or `NAME.selector`; `/re/` and `'/re/'` selectors are regexes, other
//!   selectors keys (single quotes removed).
//! - Action lists: comma-separated `name` or `name:value`; a value may be
//!   quoted with `'` (or `"`), where `\'` stands for `'`; unquoted values run
//!   to the next comma outside `'...'`, and `\,` does not split.
//! - Files are decoded as UTF-8; a line that is not valid UTF-8 is an error
//!   (the rest of the file is still parsed, lossily, to report further
//!   errors). A leading byte-order mark is ignored. A file that cannot be read
//!   at all is reported at line 0 of that file (or at the `Include` that named
//!   it).

mod lexer;

use std::borrow::Cow;
use std::sync::Arc;

use self::lexer::{excerpt, Lexer, Word};
use super::{
    ActionSpec, Directive, FileSource, IdRange, Located, OperatorSpec, ParseError, RuleSpec,
    Selector, Span, VariableSpec,
};

/// How deep `Include`s may nest.
const MAX_INCLUDE_DEPTH: usize = 32;

/// How many files one [`parse_file`] call may read (bounds the work of
/// include diamonds, which cycle detection does not catch).
const MAX_FILES: usize = 4096;

/// Parses SecLang text; `file` names it in spans. `Include` is an error here
/// (there is nothing to read from); use [`parse_file`].
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Located<Directive>>, Vec<ParseError>> {
    let mut parser = Parser::new(None);
    parser.parse_text(text, &Arc::from(file));
    parser.finish()
}

/// Parses a file from `source`, following `Include`s.
///
/// Included files are parsed in place; their directives carry their own file
/// names in spans. An `Include` whose pattern matches nothing, names an
/// unreadable file, nests deeper than 32 levels, includes a file that is
/// already being read, or brings the number of files read above 4096 is an
/// error at the `Include` line.
pub fn parse_file(
    source: &dyn FileSource,
    file: &str,
) -> Result<Vec<Located<Directive>>, Vec<ParseError>> {
    let mut parser = Parser::new(Some(source));
    parser.parse_named(file.to_string(), None);
    parser.finish()
}

/// Parses an action list such as `id:1,phase:2,msg:'a, b',t:none` (also used
/// for `ctl` values and `SecRuleUpdateActionById`).
pub fn parse_actions(text: &str) -> Result<Vec<ActionSpec>, String> {
    let bytes = text.as_bytes();
    let mut actions = Vec::new();
    if text.trim().is_empty() {
        return Ok(actions);
    }
    let mut pos = 0;
    loop {
        let start = pos;
        while pos < bytes.len() && bytes[pos] != b':' && bytes[pos] != b',' {
            pos += 1;
        }
        let name = text[start..pos].trim();
        if name.is_empty() {
            return Err(if bytes.get(pos) == Some(&b':') {
                format!("missing action name before `{}`", excerpt(&text[pos..], 40))
            } else {
                format!("empty action in `{}`", excerpt(text, 60))
            });
        }
        if name.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\'' || c == '"') {
            return Err(format!(
                "invalid action name `{}` (missing comma?)",
                excerpt(name, 40)
            ));
        }
        let value = if bytes.get(pos) == Some(&b':') {
            pos += 1;
            let (value, next) = action_value(text, pos, name)?;
            pos = next;
            Some(value)
        } else {
            None
        };
        actions.push(ActionSpec {
            name: name.to_string(),
            value,
        });
        // `pos` is now on a comma or at the end.
        if pos >= bytes.len() {
            return Ok(actions);
        }
        pos += 1;
        if text[pos..].trim().is_empty() {
            return Err(format!("trailing comma after action `{name}`"));
        }
    }
}

/// Reads an action value starting at `pos` (just after the `:`); returns the
/// value and the position of the comma that ends it (or the end of text).
fn action_value(text: &str, mut pos: usize, name: &str) -> Result<(String, usize), String> {
    let bytes = text.as_bytes();
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(&quote @ (b'\'' | b'"')) => {
            let mut out = String::new();
            pos += 1;
            let mut seg = pos;
            loop {
                match bytes.get(pos) {
                    None => {
                        return Err(format!(
                            "unterminated quoted value of action `{name}`: `{}`",
                            excerpt(&text[seg.saturating_sub(1)..], 40)
                        ))
                    }
                    Some(&c) if c == quote => break,
                    Some(b'\\') => match bytes.get(pos + 1) {
                        Some(&n) if n == quote => {
                            out.push_str(&text[seg..pos]);
                            out.push(char::from(quote));
                            pos += 2;
                            seg = pos;
                        }
                        Some(b'\\') => pos += 2,
                        _ => pos += 1,
                    },
                    Some(_) => pos += 1,
                }
            }
            out.push_str(&text[seg..pos]);
            pos += 1;
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if pos < bytes.len() && bytes[pos] != b',' {
                return Err(format!(
                    "unexpected `{}` after the quoted value of action `{name}`",
                    excerpt(&text[pos..], 40)
                ));
            }
            Ok((out, pos))
        }
        _ => {
            let start = pos;
            while let Some(&c) = bytes.get(pos) {
                match c {
                    b',' => break,
                    b'\\' => {
                        pos += if bytes.get(pos + 1).is_some_and(u8::is_ascii) {
                            2
                        } else {
                            1
                        }
                    }
                    b'\'' => {
                        let close = text[pos + 1..].find('\'').ok_or_else(|| {
                            format!(
                                "unterminated quote in the value of action `{name}`: `{}`",
                                excerpt(&text[start..], 40)
                            )
                        })?;
                        pos += close + 2;
                    }
                    _ => pos += 1,
                }
            }
            let pos = pos.min(bytes.len());
            Ok((text[start..pos].trim().to_string(), pos))
        }
    }
}

/// Parses a variable list such as `ARGS|!ARGS:foo|&TX:x|ARGS:/^id_/`.
pub fn parse_variables(text: &str) -> Result<Vec<VariableSpec>, String> {
    let bytes = text.as_bytes();
    let mut vars = Vec::new();
    if text.trim().is_empty() {
        return Err("empty variable list".to_string());
    }
    let mut pos = 0;
    let mut no_regex_end = false;
    loop {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let (mut exclude, mut count) = (false, false);
        loop {
            match bytes.get(pos) {
                Some(b'!') if !exclude => exclude = true,
                Some(b'&') if !count => count = true,
                _ => break,
            }
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
            pos += 1;
        }
        let name = &text[start..pos];
        if name.is_empty() {
            return Err(match text[pos..].chars().next() {
                None | Some('|') => {
                    format!("empty element in variable list `{}`", excerpt(text, 60))
                }
                Some(_) => format!(
                    "expected a variable name at `{}`",
                    excerpt(&text[pos..], 40)
                ),
            });
        }
        let selector = match bytes.get(pos) {
            Some(b':' | b'.') => {
                let (selector, next) = selector(text, pos + 1, name, &mut no_regex_end)?;
                pos = next;
                Some(selector)
            }
            _ => None,
        };
        vars.push(VariableSpec {
            exclude,
            count,
            name: name.to_string(),
            selector,
        });
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        match bytes.get(pos) {
            None => return Ok(vars),
            Some(b'|') => pos += 1,
            Some(_) => {
                return Err(format!(
                    "unexpected `{}` after variable `{name}`",
                    excerpt(&text[pos..], 40)
                ))
            }
        }
    }
}

/// Whether only blanks stand between `pos` and the end of a variable list
/// element (a `|` or the end of text).
fn at_element_end(bytes: &[u8], mut pos: usize) -> bool {
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    matches!(bytes.get(pos), None | Some(b'|'))
}

/// Reads the selector starting at `pos` (after `:`); returns it and the
/// position after it.
///
/// `no_regex_end` records that a scan for a regex's closing `/` already ran
/// off the end of the list; a later scan would fail the same way (the escape
/// pairing re-synchronises after the opening `/`), so it is skipped to keep
/// parsing linear.
fn selector(
    text: &str,
    pos: usize,
    name: &str,
    no_regex_end: &mut bool,
) -> Result<(Selector, usize), String> {
    let bytes = text.as_bytes();
    match bytes.get(pos) {
        Some(b'\'') => {
            // Quoted key or regex: `'...'`, `\'` stands for `'`.
            let mut out = String::new();
            let mut q = pos + 1;
            let mut seg = q;
            loop {
                match bytes.get(q) {
                    None => {
                        return Err(format!(
                            "unterminated quoted selector of `{name}`: `{}`",
                            excerpt(&text[pos..], 40)
                        ))
                    }
                    Some(b'\'') => break,
                    Some(b'\\') if bytes.get(q + 1) == Some(&b'\'') => {
                        out.push_str(&text[seg..q]);
                        out.push('\'');
                        q += 2;
                        seg = q;
                    }
                    Some(b'\\') if bytes.get(q + 1) == Some(&b'\\') => q += 2,
                    Some(_) => q += 1,
                }
            }
            out.push_str(&text[seg..q]);
            let next = q + 1;
            let selector = match out.strip_prefix('/').and_then(|s| s.strip_suffix('/')) {
                Some(re) if out.len() >= 2 => regex_selector(re, name)?,
                _ => Selector::Key(out),
            };
            Ok((selector, next))
        }
        Some(b'/') if !*no_regex_end && !name.eq_ignore_ascii_case("XML") => {
            // A regex ends at an unescaped `/` followed by the end of the
            // element (it may contain `|`); otherwise the selector is a key.
            // `XML` selectors are XPath expressions (`XML:/*`, `XML://@id`,
            // `XML:/a/b`), never regexes.
            let mut q = pos + 1;
            while let Some(&c) = bytes.get(q) {
                match c {
                    b'\\' => {
                        q += if bytes.get(q + 1).is_some_and(u8::is_ascii) {
                            2
                        } else {
                            1
                        }
                    }
                    b'/' if at_element_end(bytes, q + 1) => {
                        return Ok((regex_selector(&text[pos + 1..q], name)?, q + 1));
                    }
                    _ => q += 1,
                }
            }
            *no_regex_end = true;
            key_selector(text, pos, name)
        }
        _ => key_selector(text, pos, name),
    }
}

fn regex_selector(re: &str, name: &str) -> Result<Selector, String> {
    if re.is_empty() {
        return Err(format!(
            "empty regular expression in the selector of `{name}`"
        ));
    }
    Ok(Selector::Regex(re.to_string()))
}

/// An unquoted key: everything up to the next `|`, blanks trimmed.
fn key_selector(text: &str, pos: usize, name: &str) -> Result<(Selector, usize), String> {
    let end = text[pos..].find('|').map_or(text.len(), |i| pos + i);
    let key = text[pos..end].trim();
    if key.is_empty() {
        return Err(format!("empty selector after `{name}:`"));
    }
    Ok((Selector::Key(key.to_string()), end))
}

/// Parses an operator: `[!]@name argument`, or a bare regex.
fn parse_operator(text: &str) -> Result<OperatorSpec, String> {
    let trimmed = text.trim_start();
    let (negated, rest) = match trimmed.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed),
    };
    let Some(body) = rest.strip_prefix('@') else {
        return Ok(OperatorSpec {
            negated,
            name: "rx".to_string(),
            argument: rest.to_string(),
        });
    };
    let end = body
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(body.len());
    let name = &body[..end];
    if name.is_empty() {
        return Err(format!(
            "missing operator name after `@` in `{}`",
            excerpt(text, 40)
        ));
    }
    // Exactly one blank separates the name from the argument (it is ASCII).
    let argument = body.get(end + 1..).unwrap_or("");
    Ok(OperatorSpec {
        negated,
        name: name.to_string(),
        argument: argument.to_string(),
    })
}

/// Parses one rule id.
fn parse_id(text: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid rule id `{}`", excerpt(text, 40)));
    }
    text.parse()
        .map_err(|_| format!("rule id `{}` is out of range", excerpt(text, 40)))
}

/// Parses ids and ranges separated by commas or blanks: `1 2,3 100-200`.
fn parse_id_ranges(text: &str) -> Result<Vec<IdRange>, String> {
    let mut ranges = Vec::new();
    for part in text.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let range = match part.split_once('-') {
            Some((a, b)) if !a.is_empty() => {
                let (start, end) = (parse_id(a)?, parse_id(b)?);
                if start > end {
                    return Err(format!("invalid rule id range `{part}` (start above end)"));
                }
                IdRange { start, end }
            }
            _ => {
                let id = parse_id(part)?;
                IdRange { start: id, end: id }
            }
        };
        ranges.push(range);
    }
    if ranges.is_empty() {
        return Err("missing rule ids".to_string());
    }
    Ok(ranges)
}

/// The outcome of one directive.
enum Parsed {
    Directive(Directive),
    Include(String),
}

/// Checks the argument count of a directive.
fn expect_args(
    name: &str,
    args: &[Word<'_>],
    min: usize,
    max: usize,
    what: &str,
) -> Result<(), String> {
    if args.len() < min {
        return Err(format!(
            "`{name}` expects {what}, found {} argument(s)",
            args.len()
        ));
    }
    if args.len() > max {
        return Err(format!(
            "`{name}` expects {what}; unexpected extra argument `{}`",
            excerpt(&args[max].text, 60)
        ));
    }
    Ok(())
}

/// Whether `name` looks like a directive name.
fn is_directive_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn with_context<T>(
    result: Result<T, String>,
    context: impl FnOnce() -> String,
) -> Result<T, String> {
    result.map_err(|e| format!("{}: {e}", context()))
}

/// Targets and optional replaced targets of `SecRuleUpdateTarget*`.
type TargetUpdate = (Vec<VariableSpec>, Option<Vec<VariableSpec>>);

fn update_targets(name: &str, args: &[Word<'_>]) -> Result<TargetUpdate, String> {
    let targets = with_context(parse_variables(&args[1].text), || {
        format!("`{name}`: invalid targets `{}`", excerpt(&args[1].text, 60))
    })?;
    let replaced = match args.get(2) {
        Some(word) => Some(with_context(parse_variables(&word.text), || {
            format!(
                "`{name}`: invalid replaced targets `{}`",
                excerpt(&word.text, 60)
            )
        })?),
        None => None,
    };
    Ok((targets, replaced))
}

/// Turns one directive's words into a [`Directive`] (or an include request).
fn directive(words: &[Word<'_>]) -> Result<Parsed, String> {
    let Some((first, args)) = words.split_first() else {
        return Err("empty directive".to_string());
    };
    let name: &str = &first.text;
    if first.quote.is_some() || !is_directive_name(name) {
        let shown = match first.quote {
            Some(q) => format!("{q}{}{q}", first.text),
            None => first.text.to_string(),
        };
        return Err(format!(
            "expected a directive name, found `{}`",
            excerpt(&shown, 60)
        ));
    }
    let lower = name.to_ascii_lowercase();
    let text = |i: usize| -> &str { &args[i].text };
    let parsed = match lower.as_str() {
        "secrule" => {
            expect_args(
                name,
                args,
                2,
                3,
                "variables, an operator and optional actions",
            )?;
            let variables = with_context(parse_variables(text(0)), || {
                format!("`{name}`: invalid variables `{}`", excerpt(text(0), 60))
            })?;
            let operator = with_context(parse_operator(text(1)), || format!("`{name}`"))?;
            let actions = match args.get(2) {
                Some(word) => with_context(parse_actions(&word.text), || {
                    format!("`{name}`: invalid actions")
                })?,
                None => Vec::new(),
            };
            Directive::Rule(RuleSpec {
                variables,
                operator,
                actions,
            })
        }
        "secaction" | "secdefaultaction" => {
            expect_args(name, args, 1, 1, "one action list")?;
            let actions = with_context(parse_actions(text(0)), || {
                format!("`{name}`: invalid actions")
            })?;
            if lower == "secaction" {
                Directive::Action(actions)
            } else {
                Directive::DefaultAction(actions)
            }
        }
        "secmarker" => {
            expect_args(name, args, 1, 1, "one marker name")?;
            let marker = text(0).trim();
            if marker.is_empty() {
                return Err(format!("`{name}`: empty marker name"));
            }
            Directive::Marker(marker.to_string())
        }
        "secruleremovebyid" => {
            if args.is_empty() {
                return Err(format!("`{name}` expects rule ids or ranges, found none"));
            }
            let mut ranges = Vec::new();
            for arg in args {
                ranges.extend(with_context(parse_id_ranges(&arg.text), || {
                    format!("`{name}`")
                })?);
            }
            Directive::RemoveById(ranges)
        }
        "secruleremovebytag" | "secruleremovebymsg" => {
            if args.is_empty() {
                return Err(format!("`{name}` expects a pattern, found none"));
            }
            // ModSecurity v3 takes the rest of the line, spaces included.
            let pattern = args
                .iter()
                .map(|w| w.text.as_ref())
                .collect::<Vec<_>>()
                .join(" ");
            if lower == "secruleremovebytag" {
                Directive::RemoveByTag(pattern)
            } else {
                Directive::RemoveByMsg(pattern)
            }
        }
        "secruleupdatetargetbyid" => {
            expect_args(
                name,
                args,
                2,
                3,
                "rule ids, targets and optional replaced targets",
            )?;
            let ids = with_context(parse_id_ranges(text(0)), || format!("`{name}`"))?;
            let (targets, replaced) = update_targets(name, args)?;
            Directive::UpdateTargetById {
                ids,
                targets,
                replaced,
            }
        }
        "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
            expect_args(
                name,
                args,
                2,
                3,
                "a pattern, targets and optional replaced targets",
            )?;
            let pattern = text(0).to_string();
            let (targets, replaced) = update_targets(name, args)?;
            if lower == "secruleupdatetargetbytag" {
                Directive::UpdateTargetByTag {
                    tag: pattern,
                    targets,
                    replaced,
                }
            } else {
                Directive::UpdateTargetByMsg {
                    msg: pattern,
                    targets,
                    replaced,
                }
            }
        }
        "secruleupdateactionbyid" => {
            expect_args(name, args, 2, 2, "a rule id and an action list")?;
            if text(0).contains(':') {
                return Err(format!(
                    "`{name}`: chain offsets (`{}`) are not supported",
                    excerpt(text(0), 40)
                ));
            }
            let id = with_context(parse_id(text(0).trim()), || format!("`{name}`"))?;
            let actions = with_context(parse_actions(text(1)), || {
                format!("`{name}`: invalid actions")
            })?;
            Directive::UpdateActionById { id, actions }
        }
        "include" => {
            expect_args(name, args, 1, 1, "one path")?;
            if text(0).is_empty() {
                return Err(format!("`{name}`: empty path"));
            }
            return Ok(Parsed::Include(text(0).to_string()));
        }
        _ if lower.starts_with("sec") => Directive::Config {
            name: name.to_string(),
            args: args.iter().map(|w| w.text.to_string()).collect(),
        },
        _ => return Err(format!("unknown directive `{}`", excerpt(name, 60))),
    };
    Ok(Parsed::Directive(parsed))
}

/// Decodes file contents as UTF-8, reporting every line that is not valid
/// UTF-8 and decoding it lossily so the rest can still be checked.
fn decode<'b>(bytes: &'b [u8], file: &Arc<str>, errors: &mut Vec<ParseError>) -> Cow<'b, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if std::str::from_utf8(line).is_err() {
            let shown = String::from_utf8_lossy(line);
            errors.push(ParseError {
                span: Span {
                    file: file.clone(),
                    line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                },
                message: format!("invalid utf-8 in line `{}`", excerpt(shown.trim_end(), 60)),
            });
        }
    }
    Cow::Owned(String::from_utf8_lossy(bytes).into_owned())
}

/// Parser state across included files.
struct Parser<'s> {
    source: Option<&'s dyn FileSource>,
    directives: Vec<Located<Directive>>,
    errors: Vec<ParseError>,
    /// Files being read, outermost first (for cycle detection).
    stack: Vec<String>,
    /// Files read so far.
    files_read: usize,
}

impl<'s> Parser<'s> {
    fn new(source: Option<&'s dyn FileSource>) -> Self {
        Self {
            source,
            directives: Vec::new(),
            errors: Vec::new(),
            stack: Vec::new(),
            files_read: 0,
        }
    }

    fn finish(self) -> Result<Vec<Located<Directive>>, Vec<ParseError>> {
        if self.errors.is_empty() {
            Ok(self.directives)
        } else {
            Err(self.errors)
        }
    }

    fn error(&mut self, span: Span, message: String) {
        self.errors.push(ParseError { span, message });
    }

    fn parse_text(&mut self, text: &str, file: &Arc<str>) {
        for raw in Lexer::new(text) {
            let span = Span {
                file: file.clone(),
                line: raw.line,
            };
            if let Some(message) = raw.error {
                self.error(span, message);
                continue;
            }
            match directive(&raw.words) {
                Ok(Parsed::Directive(node)) => self.directives.push(Located { span, node }),
                Ok(Parsed::Include(pattern)) => self.include(span, &pattern),
                Err(message) => self.error(span, message),
            }
        }
    }

    /// Reads and parses file `name`; `from` is the `Include` that named it.
    fn parse_named(&mut self, name: String, from: Option<&Span>) {
        let Some(source) = self.source else { return };
        let here = |name: &str| {
            from.cloned().unwrap_or(Span {
                file: Arc::from(name),
                line: 0,
            })
        };
        if self.stack.contains(&name) {
            let chain = self.stack.join(" -> ");
            self.error(
                here(&name),
                format!("include cycle: `{name}` is already being read ({chain})"),
            );
            return;
        }
        if self.files_read >= MAX_FILES {
            self.error(
                here(&name),
                format!("too many included files (more than {MAX_FILES})"),
            );
            return;
        }
        self.files_read += 1;
        let bytes = match source.read(&name) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error(here(&name), format!("cannot read `{name}`: {e}"));
                return;
            }
        };
        let file: Arc<str> = Arc::from(name.as_str());
        let text = decode(&bytes, &file, &mut self.errors);
        self.stack.push(name);
        self.parse_text(&text, &file);
        self.stack.pop();
    }

    fn include(&mut self, span: Span, pattern: &str) {
        let Some(source) = self.source else {
            self.error(
                span,
                format!(
                    "cannot include `{}` when parsing text without a file source",
                    excerpt(pattern, 60)
                ),
            );
            return;
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.error(
                span,
                format!("include of `{pattern}` nests deeper than {MAX_INCLUDE_DEPTH} files"),
            );
            return;
        }
        let resolved = source.resolve(&span.file, pattern);
        let names = match source.glob(&resolved) {
            Ok(names) => names,
            Err(e) => {
                self.error(span, format!("cannot include `{pattern}`: {e}"));
                return;
            }
        };
        if names.is_empty() {
            self.error(
                span,
                format!("include pattern `{pattern}` matches no files"),
            );
            return;
        }
        for name in names {
            self.parse_named(name, Some(&span));
        }
    }
}

#[cfg(test)]
mod tests;
