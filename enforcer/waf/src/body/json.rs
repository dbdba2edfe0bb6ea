//! `application/json` bodies: every scalar becomes an argument named as
//! ModSecurity v3 names it (`json.a.b`, arrays as `json.a.array_0` ...).
//!
//! ModSecurity v3 feeds the body to yajl and builds argument names from the yajl
//! callbacks. This module reproduces both: a small iterative JSON lexer/parser with
//! yajl's acceptance rules and error vocabulary, and the same naming state machine.
//!
//! # Argument names
//!
//! - The top-level value is named `json`. A top-level scalar is the single argument
//!   `json`; `{"a":1}` gives `json.a`; `[1,2]` gives `json.array_0`, `json.array_1`.
//! - An object member appends `.<key>`; keys are used as decoded, without quoting.
//!   An empty key is named `empty-key` (`{"":1}` gives `json.empty-key`).
//! - An array element appends `.array_<index>`; arrays inside arrays nest the index
//!   (`{"a":[[1]]}` gives `json.a.array_0.array_0`), objects inside arrays append their
//!   members after the index (`{"a":[{"b":1}]}` gives `json.a.array_0.b`).
//! - Values: strings decoded (escapes resolved, as UTF-8 bytes), numbers exactly as
//!   written (`1.50e+3` stays `1.50e+3`), `true`/`false` as those words, `null` as the
//!   empty string. Empty objects and arrays produce nothing.
//!
//! # Accepted syntax (yajl 2 defaults as ModSecurity configures them)
//!
//! Strict JSON: no comments, no trailing commas, no single quotes, no leading `+` or
//! zeros (`01` is two tokens, hence an error). Whitespace is space, tab, CR, LF, VT and
//! FF. Strings may not contain raw control characters and must be UTF-8 in yajl's
//! lenient sense (lead byte and continuation bytes are checked; overlong forms and
//! encoded surrogates pass). `\u` escapes are decoded as yajl decodes them: a high
//! surrogate followed by another `\u` escape is combined with its low 10 bits whatever
//! it is; a high surrogate not followed by `\u` becomes `?` and swallows the next byte;
//! a lone low surrogate is encoded as a 3-byte sequence; `\u0000` is a NUL byte.
//! Trailing garbage after the top-level value is an error, except that an unterminated
//! string there is tolerated when it ends in plain content (yajl sees only an
//! incomplete token; `{} "ab\` and `{} "\u12` are errors).
//!
//! # Errors
//!
//! Malformed JSON, nesting deeper than [`BodyLimits::max_depth`] (objects and arrays
//! both count, as in ModSecurity's `SecRequestBodyJsonDepthLimit`) and more than
//! [`BodyLimits::max_args`] arguments end parsing with a [`BodyError`] whose message is
//! yajl's, as ModSecurity puts it after `JSON parsing error: ` in REQBODY_ERROR_MSG,
//! followed by the byte offset: `<lexical|parse> error: <yajl's text> (offset <n>)`.
//! The limits read `parse error: client cancelled parse via callback return value.
//! Parsing depth limit exceeded (limit <d>) (offset <n>)` (and `Too many arguments
//! (limit <a>)`). The arguments produced before the error are available through
//! [`parse_partial`] (ModSecurity keeps them in ARGS too).
//!
//! # Differences from ModSecurity v3
//!
//! - An empty body is not an error here; ModSecurity reaches the same result because
//!   its transaction ignores the yajl error when the body is empty.
//! - ModSecurity counts `SecArgumentsLimit` against all ARGS of the transaction; here
//!   `max_args` counts the arguments of this body only (the engine can pass the
//!   remaining allowance).
//! - yajl's messages carry no offset (and end with a newline); ours end with the
//!   offset, and name the argument limit when that is what cancelled the parse.
//! - The total size of generated argument names is bounded (at least 16 MiB, or 16
//!   times the body size); ModSecurity has no bound, and deeply nested bodies with
//!   many values make its names grow quadratically.
//!
//! `tests/body_modsec_reference.rs` checks names, values, errors and yajl's messages
//! against libmodsecurity 3.0.15 on valid, malformed and mutated bodies.

use super::{BodyError, BodyLimits, Pair};

/// Floor of the budget for the total length of generated argument names.
const MIN_NAME_BUDGET: usize = 16 << 20;

/// Flattens a JSON document into argument pairs.
pub fn parse(body: &[u8], limits: &BodyLimits) -> Result<Vec<Pair>, BodyError> {
    let (args, error) = parse_partial(body, limits);
    match error {
        Some(error) => Err(error),
        None => Ok(args),
    }
}

/// Flattens a JSON document and also returns the arguments produced before an error.
///
/// ModSecurity adds arguments as the parser meets them, so a malformed body still
/// exposes the values that precede the error; this gives the engine the same view.
pub fn parse_partial(body: &[u8], limits: &BodyLimits) -> (Vec<Pair>, Option<BodyError>) {
    let mut sink = Namer::new(limits, body.len());
    if body.is_empty() {
        return (Vec::new(), None);
    }
    let result = run(body, &mut sink);
    (sink.args, result.err().map(Failure::into_error))
}

/// What went wrong, in yajl's two categories, or a limit.
#[derive(Debug)]
enum Failure {
    Lexical(&'static str, usize),
    Parse(&'static str, usize),
    /// A limit; ModSecurity's callback cancels the parse. The text says which limit.
    Limit(String, usize),
}

impl Failure {
    fn into_error(self) -> BodyError {
        let message = match self {
            Failure::Lexical(text, at) => {
                format!("lexical error: {text} (offset {at})")
            }
            Failure::Parse(text, at) => {
                format!("parse error: {text} (offset {at})")
            }
            Failure::Limit(text, at) => format!(
                "parse error: client cancelled parse via callback return \
                 value. {text} (offset {at})"
            ),
        };
        BodyError { message }
    }
}

const INVALID_ESCAPE: &str = "inside a string, '\\' occurs before a character which it may not.";
const INVALID_HEX: &str = "invalid (non-hex) character occurs after '\\u' inside string.";
const INVALID_UTF8: &str = "invalid bytes in UTF8 string.";
const PREMATURE_EOF: &str = "premature EOF";
const TRAILING_GARBAGE: &str = "trailing garbage";
const UNALLOWED_TOKEN: &str = "unallowed token at this point in JSON text";
const INVALID_KEY: &str = "invalid object key (must be a string)";
const MISSING_COLON: &str = "object key and value must be separated by a colon (':')";
const MAP_EXPECT: &str = "after key and value, inside map, I expect ',' or '}'";
const ARRAY_EXPECT: &str = "after array element, I expect ',' or ']'";

/// A lexical token.
#[derive(Debug)]
enum Token<'a> {
    ObjectStart,
    ObjectEnd,
    ArrayStart,
    ArrayEnd,
    Comma,
    Colon,
    Str(Vec<u8>),
    Number(&'a [u8]),
    Bool(bool),
    Null,
    Eof,
}

/// Why lexing a token failed.
#[derive(Debug)]
enum LexFailure {
    /// The input ended inside a string's plain content (yajl keeps waiting for more
    /// input; the space it appends at the end does not change that). The end of input
    /// inside an escape or a UTF-8 sequence is an error instead, as that space is.
    UnterminatedString,
    /// A lexical error with yajl's text, at an offset.
    Error(&'static str, usize),
}

struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn next_token(&mut self) -> Result<(Token<'a>, usize), LexFailure> {
        let input = self.input;
        while let Some(&b) = input.get(self.pos) {
            let start = self.pos;
            self.pos += 1;
            let token = match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => continue,
                b'{' => Token::ObjectStart,
                b'}' => Token::ObjectEnd,
                b'[' => Token::ArrayStart,
                b']' => Token::ArrayEnd,
                b',' => Token::Comma,
                b':' => Token::Colon,
                b't' => self.literal(b"rue", Token::Bool(true))?,
                b'f' => self.literal(b"alse", Token::Bool(false))?,
                b'n' => self.literal(b"ull", Token::Null)?,
                b'"' => Token::Str(self.string()?),
                b'-' | b'0'..=b'9' => {
                    self.pos = start;
                    Token::Number(self.number()?)
                }
                b'/' => {
                    return Err(LexFailure::Error(
                        "probable comment found in input text, comments are not enabled.",
                        start,
                    ))
                }
                _ => return Err(LexFailure::Error("invalid char in json text.", start)),
            };
            return Ok((token, start));
        }
        Ok((Token::Eof, self.pos))
    }

    /// The rest of `true`, `false` or `null`. The end of input counts as a mismatch:
    /// yajl terminates the input with a space when the parse completes.
    fn literal(&mut self, rest: &[u8], token: Token<'a>) -> Result<Token<'a>, LexFailure> {
        for &want in rest {
            if self.input.get(self.pos) != Some(&want) {
                return Err(LexFailure::Error("invalid string in json text.", self.pos));
            }
            self.pos += 1;
        }
        Ok(token)
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<&'a [u8], LexFailure> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => {
                return Err(LexFailure::Error(
                    "malformed number, a digit is required after the minus sign.",
                    self.pos,
                ))
            }
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(LexFailure::Error(
                    "malformed number, a digit is required after the decimal point.",
                    self.pos,
                ));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(LexFailure::Error(
                    "malformed number, a digit is required after the exponent.",
                    self.pos,
                ));
            }
        }
        Ok(&self.input[start..self.pos])
    }

    /// A string body after the opening quote: validated as yajl's lexer does, then
    /// decoded as yajl's `yajl_string_decode` does.
    fn string(&mut self) -> Result<Vec<u8>, LexFailure> {
        let start = self.pos;
        let mut has_escapes = false;
        loop {
            let Some(b) = self.peek() else {
                return Err(LexFailure::UnterminatedString);
            };
            let at = self.pos;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    has_escapes = true;
                    // yajl ends the input with a space, which is no valid escape.
                    let Some(e) = self.peek() else {
                        return Err(LexFailure::Error(INVALID_ESCAPE, self.pos));
                    };
                    if e == b'u' {
                        self.pos += 1;
                        for _ in 0..4 {
                            match self.peek() {
                                None => return Err(LexFailure::Error(INVALID_HEX, self.pos)),
                                Some(h) if h.is_ascii_hexdigit() => self.pos += 1,
                                Some(_) => return Err(LexFailure::Error(INVALID_HEX, self.pos)),
                            }
                        }
                    } else if matches!(e, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                        self.pos += 1;
                    } else {
                        return Err(LexFailure::Error(INVALID_ESCAPE, self.pos));
                    }
                }
                0x00..=0x1f => {
                    return Err(LexFailure::Error("invalid character inside string.", at));
                }
                0x80..=0xff => self.utf8_tail(b, at)?,
                _ => {}
            }
        }
        let raw = &self.input[start..self.pos - 1];
        Ok(if has_escapes {
            decode_escapes(raw)
        } else {
            raw.to_vec()
        })
    }

    /// yajl's UTF-8 check: the lead byte says how many continuation bytes follow.
    fn utf8_tail(&mut self, lead: u8, at: usize) -> Result<(), LexFailure> {
        let follow = if lead >> 5 == 0b110 {
            1
        } else if lead >> 4 == 0b1110 {
            2
        } else if lead >> 3 == 0b11110 {
            3
        } else {
            0
        };
        if follow == 0 {
            return Err(LexFailure::Error(INVALID_UTF8, at));
        }
        for _ in 0..follow {
            match self.peek() {
                // The space yajl appends is no continuation byte.
                None => return Err(LexFailure::Error(INVALID_UTF8, at)),
                Some(c) => {
                    self.pos += 1;
                    if c >> 6 != 0b10 {
                        return Err(LexFailure::Error(INVALID_UTF8, at));
                    }
                }
            }
        }
        Ok(())
    }
}

fn hex4(digits: &[u8]) -> u32 {
    digits.iter().take(4).fold(0u32, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => 0,
        };
        acc << 4 | u32::from(v)
    })
}

/// Encodes a code point the way yajl's `Utf32toUtf8` does (surrogates included,
/// anything at or above 0x200000 as `?`).
fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    // Each `as u8` below keeps only bits already masked or shifted into range.
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]);
    } else if cp < 0x1_0000 {
        out.extend_from_slice(&[
            0xe0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]);
    } else if cp < 0x20_0000 {
        out.extend_from_slice(&[
            0xf0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3f) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]);
    } else {
        out.push(b'?');
    }
}

/// Resolves the escapes of a lexically valid string body (see the module docs for the
/// surrogate quirks kept from yajl).
fn decode_escapes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            break;
        };
        i += 2;
        let simple = match e {
            b'r' => b'\r',
            b'n' => b'\n',
            b'\\' => b'\\',
            b'/' => b'/',
            b'"' => b'"',
            b'f' => 0x0c,
            b'b' => 0x08,
            b't' => b'\t',
            b'u' => {
                let mut cp = hex4(raw.get(i..).unwrap_or(&[]));
                i += 4;
                if cp & 0xfc00 == 0xd800 {
                    if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                        let low = hex4(raw.get(i + 2..).unwrap_or(&[]));
                        cp = 0x1_0000 + ((cp & 0x3ff) << 10) + (low & 0x3ff);
                        i += 6;
                    } else {
                        // yajl emits '?' and steps over the byte that follows.
                        out.push(b'?');
                        i += 1;
                        continue;
                    }
                }
                push_utf8(&mut out, cp);
                continue;
            }
            _ => e,
        };
        out.push(simple);
    }
    out
}

/// One open container in ModSecurity's naming state.
#[derive(Debug)]
struct Container {
    name: Vec<u8>,
    /// `Some(next index)` for arrays, `None` for objects.
    counter: Option<usize>,
}

/// ModSecurity's argument naming (`RequestBodyProcessor::JSON`), fed by parser events.
#[derive(Debug)]
struct Namer {
    containers: Vec<Container>,
    current_key: Vec<u8>,
    args: Vec<Pair>,
    max_args: usize,
    max_depth: usize,
    name_budget: usize,
}

impl Namer {
    fn new(limits: &BodyLimits, body_len: usize) -> Self {
        Namer {
            containers: Vec::new(),
            current_key: Vec::new(),
            args: Vec::new(),
            max_args: limits.max_args,
            max_depth: limits.max_depth,
            name_budget: MIN_NAME_BUDGET.max(body_len.saturating_mul(16)),
        }
    }

    /// `JSON::getCurrentKey`: `json` at the top, `empty-key` for an empty object key,
    /// nothing inside an array; consumes the key.
    fn take_key(&mut self) -> Vec<u8> {
        match self.containers.last() {
            None => b"json".to_vec(),
            Some(top) if self.current_key.is_empty() => {
                if top.counter.is_some() {
                    Vec::new()
                } else {
                    b"empty-key".to_vec()
                }
            }
            Some(_) => std::mem::take(&mut self.current_key),
        }
    }

    fn key(&mut self, key: Vec<u8>) {
        self.current_key = key;
    }

    fn start(&mut self, array: bool, at: usize) -> Result<(), Failure> {
        let name = self.take_key();
        self.containers.push(Container {
            name,
            counter: array.then_some(0),
        });
        if self.containers.len() > self.max_depth {
            return Err(Failure::Limit(
                format!("Parsing depth limit exceeded (limit {})", self.max_depth),
                at,
            ));
        }
        Ok(())
    }

    fn end(&mut self) {
        self.containers.pop();
        if let Some(Container {
            counter: Some(n), ..
        }) = self.containers.last_mut()
        {
            *n += 1;
        }
    }

    /// `JSON::addArgument`.
    fn value(&mut self, value: Vec<u8>, at: usize) -> Result<(), Failure> {
        if self.args.len() >= self.max_args {
            return Err(Failure::Limit(
                format!("Too many arguments (limit {})", self.max_args),
                at,
            ));
        }
        let mut name = Vec::new();
        for c in &self.containers {
            name.extend_from_slice(&c.name);
            match c.counter {
                Some(n) => {
                    name.extend_from_slice(b".array_");
                    name.extend_from_slice(n.to_string().as_bytes());
                }
                None => name.push(b'.'),
            }
        }
        match self.containers.last_mut() {
            Some(Container {
                counter: Some(n), ..
            }) => *n += 1,
            _ => {
                let key = self.take_key();
                name.extend_from_slice(&key);
            }
        }
        if name.len() > self.name_budget {
            return Err(Failure::Limit(
                "Argument names exceed the size budget".to_string(),
                at,
            ));
        }
        self.name_budget -= name.len();
        self.args.push((name, value));
        Ok(())
    }
}

/// yajl's parser states (the stack holds one per open container plus the top level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Complete,
    MapStart,
    MapNeedKey,
    MapSep,
    MapNeedVal,
    MapGotVal,
    ArrayStart,
    ArrayNeedVal,
    ArrayGotVal,
}

fn run(body: &[u8], sink: &mut Namer) -> Result<(), Failure> {
    let mut lexer = Lexer {
        input: body,
        pos: 0,
    };
    let mut stack = vec![State::Start];
    loop {
        let state = *stack.last().unwrap_or(&State::Complete);
        let lexed = lexer.next_token();
        if state == State::Complete {
            return match lexed {
                Ok((Token::Eof, _)) | Err(LexFailure::UnterminatedString) => Ok(()),
                Ok((_, at)) => Err(Failure::Parse(TRAILING_GARBAGE, at)),
                Err(LexFailure::Error(_, at)) => Err(Failure::Parse(TRAILING_GARBAGE, at)),
            };
        }
        let (token, at) = match lexed {
            Ok(t) => t,
            Err(LexFailure::UnterminatedString) => {
                return Err(Failure::Parse(PREMATURE_EOF, body.len()))
            }
            Err(LexFailure::Error(text, at)) => return Err(Failure::Lexical(text, at)),
        };
        if let Token::Eof = token {
            return Err(Failure::Parse(PREMATURE_EOF, at));
        }
        match state {
            State::Start | State::MapNeedVal | State::ArrayStart | State::ArrayNeedVal => {
                let after = match state {
                    State::Start => State::Complete,
                    State::MapNeedVal => State::MapGotVal,
                    _ => State::ArrayGotVal,
                };
                let scalar = match token {
                    Token::Str(s) => Some(s),
                    Token::Number(n) => Some(n.to_vec()),
                    Token::Bool(true) => Some(b"true".to_vec()),
                    Token::Bool(false) => Some(b"false".to_vec()),
                    Token::Null => Some(Vec::new()),
                    Token::ObjectStart | Token::ArrayStart => {
                        let array = matches!(token, Token::ArrayStart);
                        set_top(&mut stack, after);
                        sink.start(array, at)?;
                        stack.push(if array {
                            State::ArrayStart
                        } else {
                            State::MapStart
                        });
                        None
                    }
                    Token::ArrayEnd if state == State::ArrayStart => {
                        stack.pop();
                        sink.end();
                        None
                    }
                    _ => return Err(Failure::Parse(UNALLOWED_TOKEN, at)),
                };
                if let Some(value) = scalar {
                    sink.value(value, at)?;
                    set_top(&mut stack, after);
                }
            }
            State::MapStart | State::MapNeedKey => match token {
                Token::Str(key) => {
                    sink.key(key);
                    set_top(&mut stack, State::MapSep);
                }
                Token::ObjectEnd if state == State::MapStart => {
                    stack.pop();
                    sink.end();
                }
                _ => return Err(Failure::Parse(INVALID_KEY, at)),
            },
            State::MapSep => match token {
                Token::Colon => set_top(&mut stack, State::MapNeedVal),
                _ => return Err(Failure::Parse(MISSING_COLON, at)),
            },
            State::MapGotVal => match token {
                Token::Comma => set_top(&mut stack, State::MapNeedKey),
                Token::ObjectEnd => {
                    stack.pop();
                    sink.end();
                }
                _ => return Err(Failure::Parse(MAP_EXPECT, at)),
            },
            State::ArrayGotVal => match token {
                Token::Comma => set_top(&mut stack, State::ArrayNeedVal),
                Token::ArrayEnd => {
                    stack.pop();
                    sink.end();
                }
                _ => return Err(Failure::Parse(ARRAY_EXPECT, at)),
            },
            State::Complete => return Ok(()),
        }
    }
}

fn set_top(stack: &mut [State], state: State) {
    if let Some(top) = stack.last_mut() {
        *top = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Vec<(String, String)> {
        parse(body.as_bytes(), &BodyLimits::default())
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn naming_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("{}", &[]),
            ("[]", &[]),
            (r#"{"a":"x"}"#, &[("json.a", "x")]),
            (r#"{"a":{"b":1}}"#, &[("json.a.b", "1")]),
            (
                r#"{"a":[1,2]}"#,
                &[("json.a.array_0", "1"), ("json.a.array_1", "2")],
            ),
            (
                r#"[1,"x"]"#,
                &[("json.array_0", "1"), ("json.array_1", "x")],
            ),
            (r#""top""#, &[("json", "top")]),
            ("12", &[("json", "12")]),
            ("-0.5e+10", &[("json", "-0.5e+10")]),
            ("null", &[("json", "")]),
            ("true", &[("json", "true")]),
            (
                r#"{"a":[[1,2],3]}"#,
                &[
                    ("json.a.array_0.array_0", "1"),
                    ("json.a.array_0.array_1", "2"),
                    ("json.a.array_1", "3"),
                ],
            ),
            (
                r#"{"a":[{"b":1,"c":2},{"b":3}]}"#,
                &[
                    ("json.a.array_0.b", "1"),
                    ("json.a.array_0.c", "2"),
                    ("json.a.array_1.b", "3"),
                ],
            ),
            (r#"{"":1}"#, &[("json.empty-key", "1")]),
            (r#"{"":{"x":1}}"#, &[("json.empty-key.x", "1")]),
            (
                r#"[[["deep"]]]"#,
                &[("json.array_0.array_0.array_0", "deep")],
            ),
            (r#"[{},{"a":1}]"#, &[("json.array_1.a", "1")]),
            (r#"[[],[5]]"#, &[("json.array_1.array_0", "5")]),
            (r#"{"a":1,"a":2}"#, &[("json.a", "1"), ("json.a", "2")]),
            (
                r#"{"n":null,"t":true,"f":false,"num":1.50}"#,
                &[
                    ("json.n", ""),
                    ("json.t", "true"),
                    ("json.f", "false"),
                    ("json.num", "1.50"),
                ],
            ),
            (
                r#"{"x":{"y":[{"z":[true]}]}}"#,
                &[("json.x.y.array_0.z.array_0", "true")],
            ),
            (r#"{"a.b":"c"}"#, &[("json.a.b", "c")]),
            (" \t\r\n\u{b}\u{c}{\"a\":1} \n", &[("json.a", "1")]),
        ];
        for (body, expected) in cases {
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(names(body), expected, "body {body}");
        }
    }

    #[test]
    fn string_decoding() {
        let cases: &[(&str, &[u8])] = &[
            (r#""a\"b\\c\/d""#, b"a\"b\\c/d"),
            (r#""\b\f\n\r\t""#, b"\x08\x0c\n\r\t"),
            (r#""\u0041\u00e9\u20ac""#, "Aé€".as_bytes()),
            (r#""\ud83d\ude00""#, "😀".as_bytes()),
            (r#""\u0000x""#, b"\0x"),
            // Lone high surrogate: '?' and the next byte is swallowed.
            (r#""\ud800abc""#, b"?bc"),
            (r#""\ud800""#, b"?"),
            // Lone low surrogate: encoded as is.
            (r#""\udc00""#, b"\xed\xb0\x80"),
            // High surrogate followed by a non-surrogate escape: combined anyway.
            (r#""\ud800\u0041""#, "\u{10041}".as_bytes()),
            ("\"caf\u{e9}\"", "café".as_bytes()),
            // yajl's UTF-8 check accepts overlong forms.
            ("\"\\u0041\u{7f}\"", b"A\x7f"),
        ];
        for (body, expected) in cases {
            let got = parse(body.as_bytes(), &BodyLimits::default()).expect(body);
            assert_eq!(got, vec![(b"json".to_vec(), expected.to_vec())], "{body}");
        }
        let overlong = parse(b"\"\xc0\x80\"", &BodyLimits::default()).expect("overlong");
        assert_eq!(overlong[0].1, b"\xc0\x80");
    }

    #[test]
    fn malformed_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "parse error: premature EOF"),
            (b"{\"a\":1", "parse error: premature EOF"),
            (b"\"abc", "parse error: premature EOF"),
            (b" ", "parse error: premature EOF"),
            (
                b"[1,]",
                "parse error: unallowed token at this point in JSON text",
            ),
            (
                b"{\"a\":1,}",
                "parse error: invalid object key (must be a string)",
            ),
            (b"{a:1}", "lexical error: invalid char in json text"),
            (
                b"{1:1}",
                "parse error: invalid object key (must be a string)",
            ),
            (
                b"{\"a\" 1}",
                "parse error: object key and value must be separated",
            ),
            (
                b"{\"a\":1 \"b\"}",
                "parse error: after key and value, inside map",
            ),
            (
                b"[1 2]",
                "parse error: after array element, I expect ',' or ']'",
            ),
            (b"{}{}", "parse error: trailing garbage"),
            (b"1 2", "parse error: trailing garbage"),
            (b"01", "parse error: trailing garbage"),
            (b"{} x", "parse error: trailing garbage"),
            (b"'a'", "lexical error: invalid char in json text"),
            (
                b"\xef\xbb\xbf{}",
                "lexical error: invalid char in json text",
            ),
            (b"// c\n{}", "lexical error: probable comment found"),
            (b"tru", "lexical error: invalid string in json text"),
            (b"nul", "lexical error: invalid string in json text"),
            (
                b"-",
                "lexical error: malformed number, a digit is required after the minus",
            ),
            (
                b"-a",
                "lexical error: malformed number, a digit is required after the minus",
            ),
            (
                b"1.",
                "lexical error: malformed number, a digit is required after the decimal",
            ),
            (
                b"1e+",
                "lexical error: malformed number, a digit is required after the exp",
            ),
            (
                b"\"a\x01\"",
                "lexical error: invalid character inside string",
            ),
            (
                b"\"\\x\"",
                "lexical error: inside a string, '\\' occurs before a character",
            ),
            (
                b"\"\\u12g4\"",
                "lexical error: invalid (non-hex) character occurs after",
            ),
            (b"\"\xff\"", "lexical error: invalid bytes in UTF8 string"),
            (b"\"\xc3(\"", "lexical error: invalid bytes in UTF8 string"),
            (
                b"]",
                "parse error: unallowed token at this point in JSON text",
            ),
            (
                b":",
                "parse error: unallowed token at this point in JSON text",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body, &BodyLimits::default()).expect_err(&format!("{body:?}"));
            assert!(
                err.message.starts_with("lexical error: ")
                    || err.message.starts_with("parse error: "),
                "{body:?}: {}",
                err.message
            );
            assert!(
                err.message.contains(expected),
                "{body:?}: {} does not contain {expected}",
                err.message
            );
        }
    }

    #[test]
    fn tolerated_trailing_unterminated_string() {
        // yajl only sees an incomplete token after the complete value...
        assert_eq!(
            names("{\"a\":1} \"abc"),
            vec![("json.a".into(), "1".into())]
        );
        assert_eq!(names("3\"x"), vec![("json".into(), "3".into())]);
        // ...unless the space it appends at the end completes an invalid one.
        for body in [&b"3\"top\\"[..], b"3\"\\u12", b"\"top\"\"\xc3", b"\"a\\"] {
            assert!(parse(body, &BodyLimits::default()).is_err(), "{body:?}");
        }
    }

    #[test]
    fn error_offsets() {
        let err = parse(b"{\"a\":1,}", &BodyLimits::default()).unwrap_err();
        assert!(err.message.ends_with("(offset 7)"), "{}", err.message);
        let err = parse(b"[1, x]", &BodyLimits::default()).unwrap_err();
        assert!(err.message.ends_with("(offset 4)"), "{}", err.message);
    }

    #[test]
    fn depth_limit() {
        let limits = BodyLimits {
            max_depth: 3,
            max_args: 100,
        };
        assert!(parse(b"[[[1]]]", &limits).is_ok());
        assert!(parse(b"{\"a\":{\"b\":[1]}}", &limits).is_ok());
        let err = parse(b"[[[[1]]]]", &limits).unwrap_err();
        assert!(
            err.message.contains("Parsing depth limit exceeded"),
            "{}",
            err.message
        );
        let err = parse(b"{\"a\":{\"b\":{\"c\":{}}}}", &limits).unwrap_err();
        assert!(
            err.message.contains("Parsing depth limit exceeded"),
            "{}",
            err.message
        );
        // Far deeper than any stack: still a clean error.
        let deep = "[".repeat(1_000_000);
        let err = parse(deep.as_bytes(), &BodyLimits::default()).unwrap_err();
        assert!(
            err.message.contains("Parsing depth limit exceeded"),
            "{}",
            err.message
        );
    }

    #[test]
    fn args_limit_and_partial_results() {
        let limits = BodyLimits {
            max_depth: 10,
            max_args: 2,
        };
        assert_eq!(parse(b"[1,2]", &limits).map(|a| a.len()), Ok(2));
        let (args, err) = parse_partial(b"[1,2,3]", &limits);
        assert_eq!(args.len(), 2);
        let err = err.expect("limit error");
        assert!(
            err.message.contains("Too many arguments"),
            "{}",
            err.message
        );

        let (args, err) = parse_partial(b"{\"a\":\"x\",\"b\":}", &BodyLimits::default());
        assert_eq!(args, vec![(b"json.a".to_vec(), b"x".to_vec())]);
        assert!(err.is_some());
    }

    #[test]
    fn numbers_kept_as_written() {
        for n in [
            "0",
            "-0",
            "1e5",
            "1E-5",
            "123456789012345678901234567890",
            "0.000",
        ] {
            assert_eq!(names(n), vec![("json".to_string(), n.to_string())]);
        }
    }
}
