//! `@pm`: case-insensitive multi-phrase match (Aho-Corasick).

use std::sync::Arc;

use aho_corasick::AhoCorasick;

use super::{Operator, OperatorContext, OperatorError, RequiredLiterals};

/// `@pm PHRASES`: matches when any of the space-separated phrases occurs in
/// the input, compared ASCII case-insensitively.
///
/// SecLang: `SecRule REQUEST_HEADERS:Accept-Encoding "@pm gzip compress deflate br zstd"`.
///
/// Parsing follows ModSecurity v3: the argument may be wrapped in double
/// quotes; `|41 42|` hex blocks give raw bytes (Snort content syntax); `\`
/// escapes `:`, `;`, `\` and `"`; an unsupported escape or a bad hex digit
/// makes ModSecurity take the argument as written, and so do we. The result
/// is then split on whitespace. Macros are not expanded (ModSecurity and
/// Coraza don't either). With `capture`, `TX:0` is set to the matched phrase
/// as written in the rule (ModSecurity reports the phrase, not the input's
/// spelling); the phrase is also recorded as matched data. Coraza splits on
/// single spaces only, has no hex/escape syntax, and captures up to ten
/// matches as `TX:0..9`.
#[derive(Debug)]
pub struct Pm {
    set: PhraseSet,
}

impl Pm {
    /// Parses the phrases and builds the automaton.
    pub fn new(argument: &str) -> Result<Pm, OperatorError> {
        let content = parse_pm_content(argument.as_bytes());
        let phrases = content
            .split(|b| is_c_space(*b))
            .filter(|p| !p.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        Ok(Pm {
            set: PhraseSet::new("pm", phrases)?,
        })
    }
}

impl Operator for Pm {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.set.evaluate(cx, input)
    }

    fn required_literals(&self) -> Option<RequiredLiterals> {
        self.set.required_literals()
    }
}

/// C `isspace` in the "C" locale (what `std::istream` splits on).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Decodes ModSecurity's `@pm` content syntax (quotes, `|hex|`, escapes);
/// returns the input unchanged where ModSecurity would.
fn parse_pm_content(arg: &[u8]) -> Vec<u8> {
    let Some(start) = arg.iter().position(|&b| b != b' ' && b != b'\t') else {
        return arg.to_vec();
    };
    let mut body = &arg[start..];
    if body.len() >= 2 && body[0] == b'"' && body[body.len() - 1] == b'"' {
        body = &body[1..body.len() - 1];
    }
    if body.is_empty() {
        return arg.to_vec();
    }
    let mut out = Vec::with_capacity(body.len());
    let mut in_hex = false;
    let mut escaped = false;
    let mut pending: Option<u8> = None;
    for &b in body {
        if b == b'|' {
            in_hex = !in_hex;
        } else if !escaped && b == b'\\' {
            escaped = true;
        } else if in_hex {
            let Some(digit) = (b as char).to_digit(16) else {
                return arg.to_vec();
            };
            // `to_digit(16)` yields 0..=15, so this fits a byte.
            let digit = digit as u8;
            match pending.take() {
                Some(high) => out.push(high << 4 | digit),
                None => pending = Some(digit),
            }
        } else if escaped {
            if !matches!(b, b':' | b';' | b'\\' | b'"') {
                return arg.to_vec();
            }
            out.push(b);
            escaped = false;
        } else {
            out.push(b);
        }
    }
    out
}

/// A compiled phrase list shared by `@pm` and `@pmFromFile`.
#[derive(Debug)]
pub(crate) struct PhraseSet {
    /// Shared with live rulesets that built the same list (see
    /// [`crate::live::phrase_automaton`]).
    automaton: Arc<AhoCorasick>,
    phrases: Vec<Vec<u8>>,
}

impl PhraseSet {
    /// Builds the automaton (standard semantics: the match that ends first,
    /// like ModSecurity's ACMP; ASCII case-insensitive).
    pub(crate) fn new(operator: &str, phrases: Vec<Vec<u8>>) -> Result<PhraseSet, OperatorError> {
        let automaton = crate::live::phrase_automaton(true, &phrases).map_err(|e| {
            OperatorError::invalid(operator, format!("cannot build automaton: {e}"))
        })?;
        Ok(PhraseSet { automaton, phrases })
    }

    pub(crate) fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let Some(found) = self.automaton.find(input) else {
            return false;
        };
        let phrase = self
            .phrases
            .get(found.pattern().as_usize())
            .map_or(&input[found.range()], Vec::as_slice);
        if cx.capturing() {
            cx.set_capture(0, phrase);
        }
        cx.set_matched_data(phrase);
        true
    }

    pub(crate) fn required_literals(&self) -> Option<RequiredLiterals> {
        if self.phrases.is_empty() || self.phrases.iter().any(Vec::is_empty) {
            return None;
        }
        Some(RequiredLiterals {
            literals: self.phrases.clone(),
            case_insensitive: true,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.phrases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want, capture) in [
            (
                "gzip, deflate",
                "gzip compress deflate br zstd",
                true,
                Some("gzip"),
            ),
            ("GZIP", "gzip compress", true, Some("gzip")),
            ("identity", "gzip compress", false, None),
            (
                "x=document.COOKIE",
                "document.cookie document.domain",
                true,
                Some("document.cookie"),
            ),
            ("<?php ?>", "?>", true, Some("?>")),
            ("f ( x", "( )", true, Some("(")),
            ("fx", "( )", false, None),
            ("", "a", false, None),
            ("anything", "", false, None),
            ("a b", "\"a\"", true, Some("a")),
            ("xAy", "|41|", true, Some("A")),
            ("x y", "x|20|y", true, Some("x")),
            ("a;b", "a\\;b", true, Some("a;b")),
            ("a\\qb", "a\\qb", true, Some("a\\qb")),
        ] {
            let op = Pm::new(argument).unwrap();
            let mut cx = FakeCx::capturing();
            assert_eq!(
                op.evaluate(&mut cx, input.as_bytes()),
                want,
                "{input:?} @pm {argument}"
            );
            assert_eq!(
                cx.capture(0),
                capture.map(str::as_bytes),
                "{input:?} @pm {argument}"
            );
        }
    }

    #[test]
    fn first_ending_match_wins() {
        let op = Pm::new("abcd bc").unwrap();
        let mut cx = FakeCx::capturing();
        assert!(op.evaluate(&mut cx, b"xabcd"));
        assert_eq!(cx.capture(0), Some(&b"bc"[..]));
    }

    #[test]
    fn no_capture_without_capture_action() {
        let op = Pm::new("abc").unwrap();
        let mut cx = FakeCx::default();
        assert!(op.evaluate(&mut cx, b"ABC"));
        assert!(cx.captures.is_empty());
        assert_eq!(cx.matched.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn content_syntax() {
        assert_eq!(parse_pm_content(b"  \"a b\""), b"a b");
        assert_eq!(parse_pm_content(b"|4142|"), b"AB");
        // A space is not a hex digit: ModSecurity then keeps the argument.
        assert_eq!(parse_pm_content(b"|41 42|"), b"|41 42|");
        assert_eq!(parse_pm_content(b"|4g|"), b"|4g|");
        assert_eq!(parse_pm_content(b"a\\\"b"), b"a\"b");
        assert_eq!(parse_pm_content(b"a\\nb"), b"a\\nb");
        assert_eq!(parse_pm_content(b"   "), b"   ");
    }

    #[test]
    fn required_literals_are_the_phrases() {
        let op = Pm::new("Foo bar").unwrap();
        let lits = op.required_literals().unwrap();
        assert!(lits.case_insensitive);
        assert_eq!(lits.literals, vec![b"Foo".to_vec(), b"bar".to_vec()]);
        assert_eq!(Pm::new("").unwrap().required_literals(), None);
    }
}
