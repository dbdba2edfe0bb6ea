//! `@rx`: regular expression match (the default operator), with a small
//! PCRE-to-Rust pattern rewriter, the required-literal analysis that feeds
//! the engine's prefilter and a byte/pair pre-check that skips inputs a
//! pattern cannot match.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use regex::bytes::{Regex, RegexBuilder};

use super::argument::StringArg;
use super::{Operator, OperatorContext, OperatorError, RegexCache, RequiredLiterals};
use crate::macros::MacroText;

mod literals;
mod pairs;

/// Limit on the compiled program and on each lazy DFA cache of one pattern.
/// The largest CRS patterns need a few MiB; this leaves a wide margin while
/// bounding what a hostile ruleset can make us allocate.
pub const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Longest excerpt of a pattern quoted in an error message.
const PATTERN_EXCERPT: usize = 80;

/// `@rx PATTERN`: matches when `PATTERN` matches anywhere in the input.
///
/// SecLang: `SecRule ARGS "@rx (?i)union\s+select"`; a bare operator string
/// means `@rx`.
///
/// Compilation follows ModSecurity v3, which hands the pattern to PCRE with
/// `PCRE_DOTALL | PCRE_MULTILINE` and no UTF mode:
/// - `(?sm)` is prepended, so `.` matches `\n` and `^`/`$` match at line
///   boundaries;
/// - Unicode is off, so `.`, `\w`, `\d`, `\s`, `\b`, classes and `(?i)`
///   work on bytes and ASCII, as PCRE does without UTF; a literal non-ASCII
///   character in the pattern still matches its UTF-8 bytes, and `\xHH`
///   matches the raw byte;
/// - the PCRE-only syntax CRS-style patterns use is translated by
///   [`rewrite_pcre`]; what cannot be expressed (backreferences,
///   look-around) is a build error naming the problem.
///
/// One matching rule differs between the engines and is emulated: PCRE's
/// multiline `^` does not match after a newline that ends the subject, so
/// `^$` does not match `"abc\n"` (Rust's would). Checked against
/// ModSecurity v3.0.15 itself: every distinct CRS `@rx` pattern gave the same
/// verdict on the CRS regression inputs and on inputs generated from the
/// patterns (about 9,800 inputs, 114,000 matches).
///
/// The Rust engine runs in linear time, so there is no PCRE match limit and
/// `MSC_PCRE_LIMITS_EXCEEDED` never gets set. An empty pattern matches
/// everything (ModSecurity returns true without running the regex).
///
/// Captures: with the `capture` action, `TX:0` is set to the whole match and
/// `TX:1`..`TX:9` to the groups that took part in it; groups that did not
/// participate are left untouched, as in ModSecurity (Coraza sets them to the
/// empty string and stops at `TX:8`). Groups above 9 are ignored; ModSecurity
/// also sets `TX:10` and up. The whole match is also recorded as matched data, but only
/// when capturing, to keep the common path to a single `is_match`.
///
/// Arguments with macros (`@rx ^%{tx.prefix}`) are expanded and compiled per
/// evaluation, as in ModSecurity (the last compiled pattern is remembered);
/// a pattern that does not compile then simply does not match.
#[derive(Debug)]
pub struct Rx {
    matcher: Matcher,
}

/// The last pattern a macro argument expanded to, with its compiled form.
type LastCompiled = Mutex<Option<Arc<(Vec<u8>, CompiledRegex)>>>;

#[derive(Debug)]
enum Matcher {
    /// Empty pattern: always matches.
    Always,
    /// Pattern compiled at build time.
    Static(Arc<CompiledRegex>),
    /// Pattern with macros, compiled per evaluation.
    Dynamic { text: MacroText, last: LastCompiled },
}

impl Rx {
    /// Builds the operator, compiling (or reusing from `cache`) the pattern.
    pub fn new(argument: &str, cache: &RegexCache) -> Result<Rx, OperatorError> {
        let matcher = match StringArg::parse(argument) {
            StringArg::Literal(lit) if lit.is_empty() => Matcher::Always,
            StringArg::Literal(_) => Matcher::Static(cache.get_or_compile(argument)?),
            StringArg::Macro(text) => Matcher::Dynamic {
                text,
                last: Mutex::new(None),
            },
        };
        Ok(Rx { matcher })
    }

    /// The compiled pattern, when the argument holds no macro.
    pub fn compiled(&self) -> Option<&Arc<CompiledRegex>> {
        match &self.matcher {
            Matcher::Static(re) => Some(re),
            _ => None,
        }
    }

    fn evaluate_dynamic(
        &self,
        cx: &mut dyn OperatorContext,
        text: &MacroText,
        last: &LastCompiled,
        input: &[u8],
    ) -> bool {
        let pattern = cx.expand(text);
        if pattern.is_empty() {
            return true;
        }
        let remembered = last
            .try_lock()
            .ok()
            .and_then(|guard| guard.as_ref().filter(|e| e.0 == pattern).cloned());
        let entry = match remembered {
            Some(entry) => entry,
            None => {
                let Ok(compiled) = CompiledRegex::compile(&String::from_utf8_lossy(&pattern))
                else {
                    return false;
                };
                let entry = Arc::new((pattern, compiled));
                if let Ok(mut guard) = last.try_lock() {
                    *guard = Some(Arc::clone(&entry));
                }
                entry
            }
        };
        entry.1.evaluate(cx, input)
    }
}

impl Operator for Rx {
    fn is_pure(&self) -> bool {
        !matches!(self.matcher, Matcher::Dynamic { .. })
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Always => true,
            Matcher::Static(re) => re.evaluate(cx, input),
            Matcher::Dynamic { text, last } => self.evaluate_dynamic(cx, text, last, input),
        }
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.compiled()?.required_literals().cloned()
    }
}

/// A pattern compiled for `@rx`, plus its lazily computed required literals.
pub struct CompiledRegex {
    pattern: String,
    translated: String,
    regex: Regex,
    /// The pattern has a line-start `^` (see [`needs_caret_fix`]).
    caret_fix: bool,
    literals: OnceLock<Option<RequiredLiterals>>,
    /// Conditions every input the regex matches satisfies (a byte or an
    /// adjacent byte pair of a set occurs, see [`pairs`]), when the pattern
    /// has selective ones: an input failing one is answered without running
    /// the regex.
    witnesses: Box<[pairs::Condition]>,
    /// The pattern is `^.*$`, which (compiled with `(?sm)`: `.` matches a
    /// newline) matches every input as a whole (CRS 920450 and 920451
    /// capture each header name with it).
    whole_input: bool,
}

impl std::fmt::Debug for CompiledRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRegex")
            .field("pattern", &excerpt(&self.pattern))
            .finish_non_exhaustive()
    }
}

impl CompiledRegex {
    /// Compiles `pattern` (as written after `@rx`) with ModSecurity's flags.
    pub fn compile(pattern: &str) -> Result<CompiledRegex, OperatorError> {
        let rewritten = rewrite_pcre(pattern).map_err(|reason| {
            OperatorError::invalid("rx", format!("{reason} in {}", excerpt(pattern)))
        })?;
        let translated = format!("(?sm){rewritten}");
        let regex = RegexBuilder::new(&translated)
            .unicode(false)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let reason = match e {
                    regex::Error::CompiledTooBig(limit) => {
                        format!("pattern compiles to more than {limit} bytes")
                    }
                    regex::Error::Syntax(msg) => {
                        // The syntax error spans several lines; keep the last
                        // one, which says what is wrong.
                        let last = msg.lines().rev().find(|l| !l.trim().is_empty());
                        format!("syntax error: {}", last.unwrap_or("unknown").trim())
                    }
                    other => other.to_string(),
                };
                OperatorError::invalid(
                    "rx",
                    format!("cannot compile {}: {reason}", excerpt(pattern)),
                )
            })?;
        Ok(CompiledRegex {
            pattern: pattern.to_owned(),
            caret_fix: needs_caret_fix(&rewritten),
            witnesses: pairs::conditions(&translated).into_boxed_slice(),
            whole_input: rewritten == "^.*$",
            translated,
            regex,
            literals: OnceLock::new(),
        })
    }

    /// The pattern as written in the rule.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The pattern handed to the Rust engine (rewritten, flags prepended).
    pub fn translated(&self) -> &str {
        &self.translated
    }

    /// The compiled regex (bytes, Unicode off).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Literals one of which every match contains, when they can be found
    /// cheaply (computed once, on first call).
    pub fn required_literals(&self) -> Option<&RequiredLiterals> {
        self.literals
            .get_or_init(|| literals::required_literals(&self.translated))
            .as_ref()
    }

    /// Runs the regex as `@rx` does: captures when the rule captures, else a
    /// plain `is_match`.
    pub fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        if !pairs::all_present(&self.witnesses, input) {
            // Every match holds a witness of each condition: no match.
            return false;
        }
        if self.whole_input {
            if cx.capturing() {
                cx.set_capture(0, input);
                cx.set_matched_data(input);
            }
            return true;
        }
        // PCRE's multiline `^` does not match after a newline that ends the
        // subject; Rust's does. The only match that can differ is the
        // leftmost one being empty at the very end of an input ending in
        // `\n` (`^$` on `"abc\n"`), which is then no match.
        let pcre_caret = self.caret_fix && input.last() == Some(&b'\n');
        if !cx.capturing() {
            if pcre_caret {
                return self
                    .regex
                    .find(input)
                    .is_some_and(|m| !(m.is_empty() && m.start() == input.len()));
            }
            return self.regex.is_match(input);
        }
        // Most inputs do not match: answer those with the cheaper search
        // before allocating capture slots.
        if !self.regex.is_match(input) {
            return false;
        }
        let mut locations = self.regex.capture_locations();
        let Some(found) = self.regex.captures_read(&mut locations, input) else {
            return false;
        };
        if pcre_caret && found.is_empty() && found.start() == input.len() {
            return false;
        }
        for group in 0..locations.len().min(10) {
            if let Some((start, end)) = locations.get(group) {
                cx.set_capture(group, &input[start..end]);
            }
        }
        if let Some((start, end)) = locations.get(0) {
            cx.set_matched_data(&input[start..end]);
        }
        true
    }
}

/// The HIR of `translated` (the pattern exactly as handed to the regex
/// engine), parsed with the same flags, for the witness (see [`pairs`]) and
/// required-literal analyses.
fn parse_hir(translated: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(translated)
        .ok()
}

/// Whether `pattern` (Rust syntax, after [`rewrite_pcre`]) has a `^` outside
/// any class and no `\z`, so that [`CompiledRegex::evaluate`] must apply
/// PCRE's rule that a multiline `^` never matches after a final newline.
/// Patterns with `\z` keep Rust's behaviour: an empty match at the end may
/// come from it, and it is legitimate there.
fn needs_caret_fix(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut depth = 0usize;
    let mut caret = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                if depth == 0 && bytes.get(i + 1) == Some(&b'z') {
                    return false;
                }
                i += 2;
                continue;
            }
            b'[' => {
                depth += 1;
                // A `^` (negation) or `]` right after `[` is part of the class.
                if bytes.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if depth > 0 => depth -= 1,
            b'^' if depth == 0 => caret = true,
            _ => {}
        }
        i += 1;
    }
    caret
}

/// A pattern shortened for error messages.
fn excerpt(pattern: &str) -> String {
    if pattern.len() <= PATTERN_EXCERPT {
        return format!("{pattern:?}");
    }
    let mut end = PATTERN_EXCERPT;
    while !pattern.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &pattern[..end])
}

/// Translates PCRE-only syntax into the Rust `regex` dialect.
///
/// ModSecurity compiles `@rx` patterns with PCRE; the Rust engine accepts
/// most of that syntax as is. This rewriter handles the differences that
/// matter, without changing what matches except where noted:
///
/// | PCRE | Rust | note |
/// |---|---|---|
/// | `\<`, `\>` | `<`, `>` | literals in PCRE, word boundaries in Rust |
/// | `\Z` | `(?:\n?\z)` | the match may include the final `\n` |
/// | `\e`, `\h`, `\H`, `\v`, `\V`, `\R` | byte classes | `\v` is a class in PCRE, VT in Rust |
/// | `\0`, `\0nn`, `\o{nnn}` | `\xHH` | octal escapes |
/// | `\x{HH}` | `\xHH` | a byte in PCRE, a code point in Rust |
/// | `\Q...\E` | escaped literal | |
/// | `\b` in a class | `\x08` | backspace |
/// | `a++`, `a*+`, `a?+`, `a{n}+` | greedy | possessive: may match more than PCRE |
/// | `(?>...)` | `(?:...)` | atomic: may match more than PCRE |
/// | `(?#...)` | removed | comment |
/// | `(?'name'...)` | `(?P<name>...)` | |
/// | `{` not starting `{n}`, `{n,}`, `{n,m}` | `\{` | PCRE takes it literally |
/// | `[` inside a class (not `[:alpha:]`) | `\[` | nested classes in Rust |
/// | `&&`, `--`, `~~` inside a class | second char escaped | set operations in Rust |
///
/// Backreferences (`\1`, `\k<name>`), look-around (`(?=`, `(?!`, `(?<=`,
/// `(?<!`), `\G`, `\K`, recursion and callouts have no equivalent and are
/// reported as errors.
pub fn rewrite_pcre(pattern: &str) -> Result<Cow<'_, str>, String> {
    if !needs_rewrite(pattern) {
        return Ok(Cow::Borrowed(pattern));
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // Inside a character class (its leading literal `]` already consumed).
    let mut in_class = false;
    // Whether the previous token was a quantifier (for possessive `+`).
    let mut after_quantifier = false;
    while i < chars.len() {
        let c = chars[i];
        if in_class {
            after_quantifier = false;
            match c {
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '\\' => {
                    i = rewrite_escape(&chars, i, true, &mut out)?;
                    continue;
                }
                '[' => {
                    if let Some(end) = posix_class_end(&chars, i) {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        continue;
                    }
                    out.push_str("\\[");
                }
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => {
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '\\' => {
                after_quantifier = false;
                i = rewrite_escape(&chars, i, false, &mut out)?;
                continue;
            }
            '[' => {
                after_quantifier = false;
                in_class = true;
                out.push('[');
                // A leading `]` (after an optional `^`) is a literal.
                let mut j = i + 1;
                if chars.get(j) == Some(&'^') {
                    out.push('^');
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    out.push_str("\\]");
                    j += 1;
                }
                i = j;
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                after_quantifier = false;
                i = rewrite_group_open(&chars, i, &mut out)?;
                continue;
            }
            '*' | '+' | '?' => {
                if after_quantifier && c == '+' {
                    // Possessive quantifier: drop the `+`.
                    after_quantifier = false;
                    i += 1;
                    continue;
                }
                if after_quantifier && c == '?' {
                    // Lazy marker.
                    out.push('?');
                    after_quantifier = false;
                    i += 1;
                    continue;
                }
                out.push(c);
                after_quantifier = true;
            }
            '{' => match counted_repetition_end(&chars, i) {
                Some(end) => {
                    out.extend(&chars[i..=end]);
                    after_quantifier = true;
                    i = end + 1;
                    continue;
                }
                None => {
                    out.push_str("\\{");
                    after_quantifier = false;
                }
            },
            _ => {
                out.push(c);
                after_quantifier = false;
            }
        }
        i += 1;
    }
    Ok(Cow::Owned(out))
}

/// Cheap check: patterns without any construct [`rewrite_pcre`] touches are
/// used as written.
fn needs_rewrite(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\\' => matches!(
            bytes.get(i + 1),
            Some(b'<' | b'>' | b'Z' | b'e' | b'h' | b'H' | b'v' | b'V' | b'R' | b'0'..=b'9')
                | Some(b'o' | b'Q' | b'E' | b'b' | b'k' | b'g' | b'G' | b'K' | b'c' | b'N' | b'x')
        ),
        b'[' => true,
        b'{' => true,
        b'(' => bytes.get(i + 1) == Some(&b'?'),
        b'+' | b'*' | b'?' | b'}' => matches!(bytes.get(i + 1), Some(b'+')),
        _ => false,
    })
}

/// End index (inclusive) of a POSIX class `[:name:]` starting at `i`.
fn posix_class_end(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i + 1) != Some(&':') {
        return None;
    }
    let mut j = i + 2;
    if chars.get(j) == Some(&'^') {
        j += 1;
    }
    let name_start = j;
    while chars.get(j).is_some_and(char::is_ascii_lowercase) {
        j += 1;
    }
    if j > name_start && chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&']') {
        Some(j + 1)
    } else {
        None
    }
}

/// End index (inclusive) of a counted repetition `{n}`, `{n,}`, `{n,m}`
/// starting at `i`, or `None` when PCRE would take the `{` literally.
fn counted_repetition_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let digits = |j: &mut usize| {
        let start = *j;
        while chars.get(*j).is_some_and(char::is_ascii_digit) {
            *j += 1;
        }
        *j > start
    };
    if !digits(&mut j) {
        return None;
    }
    if chars.get(j) == Some(&',') {
        j += 1;
        digits(&mut j);
    }
    (chars.get(j) == Some(&'}')).then_some(j)
}

/// Rewrites the `(?` construct at `i`; returns the index after what it
/// consumed.
fn rewrite_group_open(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    match chars.get(i + 2) {
        Some('>') => {
            out.push_str("(?:");
            Ok(i + 3)
        }
        Some('#') => {
            let mut j = i + 3;
            while j < chars.len() && chars[j] != ')' {
                j += 1;
            }
            Ok(j + 1)
        }
        Some('=') | Some('!') => Err("look-ahead is not supported".into()),
        Some('<') if matches!(chars.get(i + 3), Some('=') | Some('!')) => {
            Err("look-behind is not supported".into())
        }
        Some('\'') => {
            let mut j = i + 3;
            let mut name = String::new();
            while j < chars.len() && chars[j] != '\'' {
                name.push(chars[j]);
                j += 1;
            }
            if j >= chars.len() {
                return Err("unterminated group name".into());
            }
            let _ = write!(out, "(?P<{name}>");
            Ok(j + 1)
        }
        Some('R') | Some('&') | Some('C') | Some('|') => {
            Err("recursion, callouts and branch reset groups are not supported".into())
        }
        Some(d) if d.is_ascii_digit() || *d == '+' => Err("recursion is not supported".into()),
        _ => {
            out.push_str("(?");
            Ok(i + 2)
        }
    }
}

/// Rewrites the escape at `chars[i] == '\\'`; returns the index after it.
fn rewrite_escape(
    chars: &[char],
    i: usize,
    in_class: bool,
    out: &mut String,
) -> Result<usize, String> {
    let Some(&next) = chars.get(i + 1) else {
        return Err("pattern ends with a backslash".into());
    };
    // PCRE's vertical and horizontal space sets (without UTF mode).
    const VSPACE: &str = r"\n\x0B\x0C\r\x85";
    const HSPACE: &str = r"\t\x20\xA0";
    let class = |members: &str, negated: bool, out: &mut String| -> Result<(), String> {
        if in_class {
            if negated {
                return Err("negated \\H or \\V inside a class is not supported".into());
            }
            out.push_str(members);
        } else {
            out.push('[');
            if negated {
                out.push('^');
            }
            out.push_str(members);
            out.push(']');
        }
        Ok(())
    };
    match next {
        '<' | '>' => out.push(next),
        'Z' if !in_class => out.push_str(r"(?:\n?\z)"),
        'e' => out.push_str(r"\x1B"),
        'h' => class(HSPACE, false, out)?,
        'H' => class(HSPACE, true, out)?,
        'v' => class(VSPACE, false, out)?,
        'V' => class(VSPACE, true, out)?,
        'R' if !in_class => out.push_str(r"(?:\r\n|[\n\x0B\x0C\r\x85])"),
        'b' if in_class => out.push_str(r"\x08"),
        'Q' => {
            let mut j = i + 2;
            while j < chars.len() && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E')) {
                push_escaped_literal(chars[j], out);
                j += 1;
            }
            return Ok((j + 2).min(chars.len()));
        }
        'E' => {}
        '0' => {
            // `\0` followed by up to two more octal digits.
            let mut j = i + 2;
            let mut value = 0u32;
            while j < i + 4 && chars.get(j).is_some_and(|c| ('0'..='7').contains(c)) {
                value = value * 8 + chars[j].to_digit(8).unwrap_or(0);
                j += 1;
            }
            let _ = write!(out, "\\x{value:02X}");
            return Ok(j);
        }
        'o' if chars.get(i + 2) == Some(&'{') => {
            let mut j = i + 3;
            let mut value = 0u32;
            while j < chars.len() && chars[j] != '}' {
                let digit = chars[j]
                    .to_digit(8)
                    .ok_or_else(|| "bad octal escape".to_string())?;
                value = value * 8 + digit;
                j += 1;
            }
            if value > 0xFF {
                return Err("octal escape above \\377".into());
            }
            let _ = write!(out, "\\x{value:02X}");
            return Ok(j + 1);
        }
        '1'..='9' => return Err("backreferences are not supported".into()),
        'k' | 'g' => return Err("backreferences are not supported".into()),
        'G' | 'K' => return Err(format!("\\{next} is not supported")),
        'c' => {
            // Control character: \cX is X ^ 0x40.
            let Some(&x) = chars.get(i + 2) else {
                return Err("incomplete \\c escape".into());
            };
            let value = (x.to_ascii_uppercase() as u32) ^ 0x40;
            if value > 0x7F {
                return Err("bad \\c escape".into());
            }
            let _ = write!(out, "\\x{value:02X}");
            return Ok(i + 3);
        }
        'N' if !in_class && chars.get(i + 2) != Some(&'{') => out.push_str(r"[^\n]"),
        'x' if chars.get(i + 2) == Some(&'{') => {
            // PCRE without UTF reads `\x{HH}` as a byte; Rust as a code
            // point (its UTF-8 encoding). Bytes become `\xHH`; larger code
            // points (an error in PCRE) keep Rust's meaning.
            let close = chars[i + 3..].iter().position(|&c| c == '}');
            let value = close.and_then(|n| {
                let hex: String = chars[i + 3..i + 3 + n].iter().collect();
                u32::from_str_radix(&hex, 16).ok().map(|v| (v, n))
            });
            match value {
                Some((v, n)) if v <= 0xFF => {
                    let _ = write!(out, "\\x{v:02X}");
                    return Ok(i + 3 + n + 1);
                }
                Some((_, n)) => {
                    out.extend(&chars[i..i + 3 + n + 1]);
                    return Ok(i + 3 + n + 1);
                }
                None => out.push_str("\\x"),
            }
        }
        c if !c.is_ascii() => out.push(c),
        _ => {
            out.push('\\');
            out.push(next);
        }
    }
    Ok(i + 2)
}

/// Appends `c` so that it matches literally.
fn push_escaped_literal(c: char, out: &mut String) {
    if regex_syntax::is_meta_character(c) || c == '&' || c == '~' {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    fn rx(pattern: &str) -> Rx {
        Rx::new(pattern, &RegexCache::new()).unwrap()
    }

    #[test]
    fn table() {
        // (input, pattern, matches, TX:0, TX:1)
        type Case<'a> = (&'a [u8], &'a str, bool, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                b"1 UNION SELECT 2",
                r"(?i)union\s+select",
                true,
                Some("UNION SELECT"),
                None,
            ),
            (
                b"1 union/**/select",
                r"(?i)union\s+select",
                false,
                None,
                None,
            ),
            (b"a\nb", r"a.b", true, Some("a\nb"), None),
            (b"x\nfoo\ny", r"^foo$", true, Some("foo"), None),
            (
                b"version=12",
                r"version=(\d+)",
                true,
                Some("version=12"),
                Some("12"),
            ),
            (b"ab", r"a(x)?b", true, Some("ab"), None),
            (b"\xff\xfe", r"\xff", true, Some("\u{fffd}"), None),
            (b"\xe9", r".", true, None, None),
            (
                "caf\u{e9}".as_bytes(),
                "caf\u{e9}",
                true,
                Some("caf\u{e9}"),
                None,
            ),
            (b"a<b", r"a\<b", true, Some("a<b"), None),
            (b"anything", "", true, None, None),
            (b"", "", true, None, None),
            (b"", "^$", true, Some(""), None),
            (b"abc", "d", false, None, None),
            (b"AbC", r"(?i)abc", true, Some("AbC"), None),
            (b"\xc3\x89", r"(?i)\xc3\xa9", false, None, None),
            (b"a{b", r"a{b", true, Some("a{b"), None),
            (b"aaa", r"a++", true, Some("aaa"), None),
            (b"[x", r"[[]x", true, Some("[x"), None),
            (b"end\n", r"end\Z", true, Some("end\n"), None),
            // PCRE: a multiline `^` does not match after a final newline.
            (b"abc\n", r"^$", false, None, None),
            (b"\n", r"^$", true, Some(""), None),
            (b"a\n\nb", r"^$", true, Some(""), None),
            (b"x\n", r"^0?$", false, None, None),
            (b"gzip\n", r"zstd|^$|gzip", true, Some("gzip"), None),
            (b"abc\n", r"c$", true, Some("c"), None),
            (b"abc\n", r"\z", true, Some(""), None),
        ];
        for &(input, pattern, want, tx0, tx1) in cases {
            let op = rx(pattern);
            let mut cx = FakeCx::capturing();
            assert_eq!(
                op.evaluate(&mut cx, input),
                want,
                "{input:?} =~ {pattern:?}"
            );
            let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
            if let Some(tx0) = tx0 {
                assert_eq!(
                    cx.capture(0).map(lossy).as_deref(),
                    Some(tx0),
                    "{pattern:?}"
                );
            }
            assert_eq!(cx.capture(1).map(lossy).as_deref(), tx1, "{pattern:?}");
            let mut plain = FakeCx::default();
            assert_eq!(
                op.evaluate(&mut plain, input),
                want,
                "{input:?} =~ {pattern:?}"
            );
            assert!(plain.captures.is_empty());
        }
    }

    #[test]
    fn captures_only_participating_groups_up_to_nine() {
        let op = rx(r"(a)(b)?(c)(d)(e)(f)(g)(h)(i)(j)(k)");
        let mut cx = FakeCx::capturing();
        assert!(op.evaluate(&mut cx, b"acdefghijk"));
        let indexes: Vec<usize> = cx.captures.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![0, 1, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(cx.capture(9), Some(&b"i"[..]));
        assert_eq!(cx.matched.as_deref(), Some(&b"acdefghijk"[..]));
    }

    #[test]
    fn macro_patterns_compile_per_evaluation() {
        let op = rx("^%{tx.prefix}/");
        let mut cx = FakeCx::default().with_var("tx.prefix", "api");
        assert!(op.evaluate(&mut cx, b"api/v1"));
        assert!(op.evaluate(&mut cx, b"api/v2"));
        assert!(!op.evaluate(&mut cx, b"web/v1"));
        let mut other = FakeCx::default().with_var("tx.prefix", "web");
        assert!(op.evaluate(&mut other, b"web/v1"));
        let mut broken = FakeCx::default().with_var("tx.prefix", "(");
        assert!(!op.evaluate(&mut broken, b"(/"));
        assert!(op.required_literals().is_none());
    }

    #[test]
    fn compile_errors_name_the_problem() {
        for (pattern, needle) in [
            ("(a)\\1", "backreferences"),
            ("a(?=b)", "look-ahead"),
            ("(?<!a)b", "look-behind"),
            ("(", "cannot compile"),
            ("a\\", "escape"),
        ] {
            let err = Rx::new(pattern, &RegexCache::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{pattern:?}: {err}");
            assert!(err.starts_with("invalid argument for @rx"), "{err}");
        }
        let huge = "(?:(?:(?:[a-z]{1,100}){100}){100}){10}";
        let err = Rx::new(huge, &RegexCache::new()).unwrap_err().to_string();
        assert!(
            err.contains("more than") || err.contains("cannot compile"),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn whole_input_patterns_match_every_input_as_a_whole() {
        let re = CompiledRegex::compile("^.*$").expect("compiles");
        assert!(re.whole_input);
        assert!(
            !CompiledRegex::compile("^.*a$")
                .expect("compiles")
                .whole_input
        );
        // The regex the fast path stands in for, compiled as the engine does.
        let reference = &re.regex;
        for input in [
            &b""[..],
            b"Host",
            b"x-forwarded-for",
            b"a\nb",
            b"abc\n",
            b"\n",
            b"\r\n\r\n",
            b"\xff\x00\xfe",
        ] {
            let whole = reference.find(input).map(|m| (m.start(), m.end()));
            assert_eq!(whole, Some((0, input.len())), "{input:?}");
        }
    }

    #[test]
    fn caret_fix_detection() {
        for (pattern, want) in [
            ("^$", true),
            ("a|^b", true),
            ("[^a]", false),
            ("[]^]", false),
            ("\\^", false),
            ("^a\\z", false),
            ("[a[^b]]^", true),
            ("abc", false),
        ] {
            assert_eq!(needs_caret_fix(pattern), want, "{pattern}");
        }
    }

    #[test]
    fn rewriter() {
        for (pcre, rust) in [
            (r"abc", r"abc"),
            (r"a\<b\>", r"a<b>"),
            (r"a++b*+c?+d{2}+", r"a+b*c?d{2}"),
            (r"a+?b", r"a+?b"),
            (r"(?>ab)", r"(?:ab)"),
            (r"a(?#note)b", r"ab"),
            (r"(?'n'a)", r"(?P<n>a)"),
            (r"a{b}c{,2}d{1,2}", r"a\{b}c\{,2}d{1,2}"),
            (r"[[a]", r"[\[a]"),
            (r"[]a]", r"[\]a]"),
            (r"[^]a]", r"[^\]a]"),
            (r"[[:alpha:]x]", r"[[:alpha:]x]"),
            (r"[a&&b]", r"[a&\&b]"),
            (r"[+--]", r"[+-\-]"),
            (r"[\b]", r"[\x08]"),
            (r"\e\0\012\o{101}", r"\x1B\x00\x0A\x41"),
            (r"\Qa.b\E+", r"a\.b+"),
            (r"x\Z", r"x(?:\n?\z)"),
            (r"\h[\v]", r"[\t\x20\xA0][\n\x0B\x0C\r\x85]"),
            (r"\cA", r"\x01"),
            (r"[\x7f-\x{ff}]\x{41}\x{263a}", r"[\x7f-\xFF]\x41\x{263a}"),
            (r"\d\w\s\/", r"\d\w\s\/"),
        ] {
            assert_eq!(rewrite_pcre(pcre).unwrap(), rust, "{pcre}");
        }
    }
}
