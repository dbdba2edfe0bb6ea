//! The small part of Go's `text/template` (with sprig's `repeat`) that go-ftw
//! test data uses: `{{ "1" | repeat 64200 }}`.
//!
//! go-ftw runs every `data` field through `text/template`. Supported here:
//! literal text; actions holding a string literal (`"…"` with Go escapes, or
//! a raw `` `…` `` string), optionally piped through `repeat N`, or written
//! as `repeat N "…"`; and the `{{-`/`-}}` whitespace trimming markers.
//! Anything else is an error, so a test that needs more fails loudly instead
//! of sending the wrong body.

/// Why a template could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("unclosed action in template")]
    Unclosed,
    /// An action this subset does not implement.
    #[error("unsupported template action {0:?}")]
    Unsupported(String),
    /// The expansion would be unreasonably large.
    #[error("template expansion exceeds {0} bytes")]
    TooLarge(usize),
}

/// Largest expansion accepted (go-ftw has no limit; this guards memory).
pub const MAX_EXPANSION: usize = 64 * 1024 * 1024;

/// Expands `text`.
pub fn expand(text: &str) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut literal = &rest[..start];
        let after_open = &rest[start + 2..];
        let (trim_left, after_open) = match after_open.strip_prefix("- ") {
            Some(r) => (true, r),
            None => (false, after_open),
        };
        if trim_left {
            literal = literal.trim_end();
        }
        out.push_str(literal);
        let end = after_open.find("}}").ok_or(TemplateError::Unclosed)?;
        let mut action = &after_open[..end];
        let mut after_close = &after_open[end + 2..];
        if let Some(a) = action.strip_suffix(" -") {
            action = a;
            after_close = after_close.trim_start();
        }
        let value = eval_action(action.trim())?;
        if out.len() + value.len() > MAX_EXPANSION {
            return Err(TemplateError::TooLarge(MAX_EXPANSION));
        }
        out.push_str(&value);
        rest = after_close;
    }
    out.push_str(rest);
    Ok(out)
}

fn eval_action(action: &str) -> Result<String, TemplateError> {
    let unsupported = || TemplateError::Unsupported(action.to_string());
    let (head, pipe) = match action.split_once('|') {
        Some((h, p)) => (h.trim(), Some(p.trim())),
        None => (action, None),
    };
    // `repeat N "lit"` (function call form).
    if let Some(args) = head.strip_prefix("repeat ") {
        if pipe.is_some() {
            return Err(unsupported());
        }
        let (count, literal) = args.trim().split_once(' ').ok_or_else(unsupported)?;
        let count = parse_count(count).ok_or_else(unsupported)?;
        let (value, rest) = string_literal(literal.trim()).ok_or_else(unsupported)?;
        if !rest.trim().is_empty() {
            return Err(unsupported());
        }
        return repeat(&value, count);
    }
    let (value, rest) = string_literal(head).ok_or_else(unsupported)?;
    if !rest.trim().is_empty() {
        return Err(unsupported());
    }
    match pipe {
        None => Ok(value),
        Some(func) => {
            let count = func.strip_prefix("repeat ").ok_or_else(unsupported)?;
            let count = parse_count(count.trim()).ok_or_else(unsupported)?;
            repeat(&value, count)
        }
    }
}

fn parse_count(text: &str) -> Option<usize> {
    text.parse().ok()
}

fn repeat(value: &str, count: usize) -> Result<String, TemplateError> {
    match value.len().checked_mul(count) {
        Some(n) if n <= MAX_EXPANSION => Ok(value.repeat(count)),
        _ => Err(TemplateError::TooLarge(MAX_EXPANSION)),
    }
}

/// Parses a Go string literal at the start of `text`; returns its value and
/// what follows it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    if let Some(body) = text.strip_prefix('`') {
        let end = body.find('`')?;
        return Some((body[..end].to_string(), &body[end + 1..]));
    }
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => {
                let (_, esc) = chars.next()?;
                value.push(match esc {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    _ => return None,
                });
            }
            '\n' => return None,
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions() {
        let cases = [
            ("plain text", "plain text"),
            ("a{{ \"1\" | repeat 3 }}b", "a111b"),
            ("{{ repeat 2 \"xy\" }}", "xyxy"),
            ("{{\"q\"}}", "q"),
            ("{{ `r\\n` }}", "r\\n"),
            ("{{ \"a\\tb\" }}", "a\tb"),
            ("x  {{- \"1\" -}}  y", "x1y"),
            ("{{ \"1\" | repeat 0 }}", ""),
            ("single { brace }", "single { brace }"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input).as_deref(), Ok(want), "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[{}\"`| a-z0-9\\\\-]{0,60}") {
            let _ = expand(&text);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(expand("{{ \"1\""), Err(TemplateError::Unclosed));
        for input in [
            "{{ .Payload }}",
            "{{ \"1\" | upper }}",
            "{{ \"1\" | repeat x }}",
            "{{ repeat 2 }}",
            "{{ \"a\" \"b\" }}",
            "{{ \"\\q\" }}",
        ] {
            assert!(
                matches!(expand(input), Err(TemplateError::Unsupported(_))),
                "{input}"
            );
        }
        assert_eq!(
            expand("{{ \"ab\" | repeat 99999999999 }}"),
            Err(TemplateError::TooLarge(MAX_EXPANSION))
        );
    }
}
