//! Macro expansion in action and operator arguments: `%{TX.anomaly_score}`,
//! `%{MATCHED_VAR}`, `%{REQUEST_HEADERS.host}`, `%{rule.id}`.
//!
//! A [`MacroText`] is parsed once at compile time; the transaction expands it.
//! Text without `%{` is kept as one literal so expansion is a borrow.

/// One piece of a macro text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MacroPart {
    /// Literal bytes.
    Literal(Vec<u8>),
    /// `%{COLLECTION}` or `%{COLLECTION.key}`; collection uppercased, key
    /// lowercased.
    Variable {
        /// Collection or variable name, uppercase (`TX`, `MATCHED_VAR`, `RULE`).
        collection: String,
        /// Member key after the first `.`, if any, lowercased: every key
        /// is looked up case-insensitively, and TX keys are stored
        /// lowercased, so a lookup needs no copy.
        key: Option<String>,
    },
}

/// A text that may contain macros.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MacroText {
    parts: Vec<MacroPart>,
}

impl MacroText {
    /// Parses `text`; an unterminated `%{` is kept literally, as ModSecurity does.
    pub fn parse(text: &str) -> MacroText {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && bytes.get(i + 1) == Some(&b'{') {
                if let Some(close) = bytes[i + 2..].iter().position(|&b| b == b'}') {
                    let inner = &text[i + 2..i + 2 + close];
                    if !inner.is_empty() {
                        if !literal.is_empty() {
                            parts.push(MacroPart::Literal(std::mem::take(&mut literal)));
                        }
                        let (collection, key) = match inner.split_once(['.', ':']) {
                            Some((c, k)) => (c, Some(k.to_ascii_lowercase())),
                            None => (inner, None),
                        };
                        parts.push(MacroPart::Variable {
                            collection: collection.trim().to_ascii_uppercase(),
                            key,
                        });
                        i += 2 + close + 1;
                        continue;
                    }
                }
            }
            literal.push(bytes[i]);
            i += 1;
        }
        if !literal.is_empty() {
            parts.push(MacroPart::Literal(literal));
        }
        MacroText { parts }
    }

    /// Whether the text contains no macro.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, MacroPart::Literal(_)))
    }

    /// The literal bytes when [`is_literal`](Self::is_literal).
    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [MacroPart::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[MacroPart] {
        &self.parts
    }

    /// `(collection, key)` when the whole text is one macro (`%{tx.a}`), so
    /// that its value can be shared or borrowed instead of copied.
    pub fn single_variable(&self) -> Option<(&str, Option<&str>)> {
        match self.parts.as_slice() {
            [MacroPart::Variable { collection, key }] => Some((collection, key.as_deref())),
            _ => None,
        }
    }

    /// Expands with `lookup(collection, key)`; unknown variables expand to nothing.
    pub fn expand_with(&self, lookup: impl FnMut(&str, Option<&str>, &mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        self.expand_into(&mut out, lookup);
        out
    }

    /// [`expand_with`](Self::expand_with), appending to `out` (a buffer the
    /// caller reuses, so that expanding allocates nothing once it is warm).
    pub fn expand_into(
        &self,
        out: &mut Vec<u8>,
        mut lookup: impl FnMut(&str, Option<&str>, &mut Vec<u8>),
    ) {
        for part in &self.parts {
            match part {
                MacroPart::Literal(l) => out.extend_from_slice(l),
                MacroPart::Variable { collection, key } => lookup(collection, key.as_deref(), out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_and_variables() {
        let m = MacroText::parse("score %{TX.Anomaly_Score} by %{MATCHED_VAR_NAME}!");
        assert_eq!(
            m.parts(),
            &[
                MacroPart::Literal(b"score ".to_vec()),
                MacroPart::Variable {
                    collection: "TX".into(),
                    key: Some("anomaly_score".into())
                },
                MacroPart::Literal(b" by ".to_vec()),
                MacroPart::Variable {
                    collection: "MATCHED_VAR_NAME".into(),
                    key: None
                },
                MacroPart::Literal(b"!".to_vec()),
            ]
        );
        assert!(!m.is_literal());
    }

    #[test]
    fn unterminated_macro_stays_literal() {
        let m = MacroText::parse("a %{tx.b");
        assert_eq!(m.as_literal(), Some(&b"a %{tx.b"[..]));
    }

    #[test]
    fn expands() {
        let m = MacroText::parse("%{tx.a}-%{request_headers.host}");
        let out = m.expand_with(|c, k, out| {
            out.extend_from_slice(format!("{c}/{}", k.unwrap_or("")).as_bytes())
        });
        assert_eq!(out, b"TX/a-REQUEST_HEADERS/host");
        let mut buf = b"x:".to_vec();
        m.expand_into(&mut buf, |c, _, out| out.extend_from_slice(c.as_bytes()));
        assert_eq!(buf, b"x:TX-REQUEST_HEADERS");
    }

    #[test]
    fn single_variable() {
        // (text, the one variable it is)
        let cases = [
            ("%{tx.a}", Some(("TX", Some("a")))),
            ("%{MATCHED_VAR}", Some(("MATCHED_VAR", None))),
            (
                "%{request_headers.User-Agent}",
                Some(("REQUEST_HEADERS", Some("user-agent"))),
            ),
            ("/%{tx.0}/", None),
            ("%{tx.a}%{tx.b}", None),
            ("abc", None),
            ("", None),
            ("%{tx.a", None),
        ];
        for (text, want) in cases {
            assert_eq!(MacroText::parse(text).single_variable(), want, "{text:?}");
        }
    }
}
