//! Operator arguments that may contain macros: a literal is kept as bytes,
//! anything with `%{...}` is expanded per evaluation.

use std::borrow::Cow;

use super::OperatorContext;
use crate::macros::MacroText;

/// A string argument: literal (resolved at build time) or a macro text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StringArg {
    /// No macro: the bytes as written.
    Literal(Vec<u8>),
    /// Contains at least one macro; expanded per evaluation.
    Macro(MacroText),
}

impl StringArg {
    /// Parses `argument`, keeping it literal when it holds no macro.
    pub(crate) fn parse(argument: &str) -> StringArg {
        let text = MacroText::parse(argument);
        match text.as_literal() {
            Some(lit) => StringArg::Literal(lit.to_vec()),
            None => StringArg::Macro(text),
        }
    }

    /// The argument's value for this evaluation (a borrow when literal).
    pub(crate) fn resolve<'a>(&'a self, cx: &dyn OperatorContext) -> Cow<'a, [u8]> {
        match self {
            StringArg::Literal(lit) => Cow::Borrowed(lit),
            StringArg::Macro(text) => Cow::Owned(cx.expand(text)),
        }
    }

    /// The literal bytes, if the argument holds no macro.
    pub(crate) fn literal(&self) -> Option<&[u8]> {
        match self {
            StringArg::Literal(lit) => Some(lit),
            StringArg::Macro(_) => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A fake [`OperatorContext`] for unit tests.

    use std::collections::HashMap;

    use crate::macros::MacroText;
    use crate::operators::OperatorContext;

    /// Records captures and matched data; expands `%{tx.key}` from `vars`.
    #[derive(Debug, Default)]
    pub(crate) struct FakeCx {
        pub(crate) capturing: bool,
        pub(crate) vars: HashMap<String, Vec<u8>>,
        pub(crate) captures: Vec<(usize, Vec<u8>)>,
        pub(crate) matched: Option<Vec<u8>>,
    }

    impl FakeCx {
        pub(crate) fn capturing() -> FakeCx {
            FakeCx {
                capturing: true,
                ..FakeCx::default()
            }
        }

        pub(crate) fn with_var(mut self, key: &str, value: &str) -> FakeCx {
            self.vars
                .insert(key.to_ascii_lowercase(), value.as_bytes().to_vec());
            self
        }

        pub(crate) fn capture(&self, index: usize) -> Option<&[u8]> {
            self.captures
                .iter()
                .rev()
                .find(|(i, _)| *i == index)
                .map(|(_, v)| v.as_slice())
        }
    }

    impl OperatorContext for FakeCx {
        fn expand(&self, text: &MacroText) -> Vec<u8> {
            text.expand_with(|collection, key, out| {
                let name = match key {
                    Some(k) => format!("{collection}.{k}").to_ascii_lowercase(),
                    None => collection.to_ascii_lowercase(),
                };
                if let Some(v) = self.vars.get(&name) {
                    out.extend_from_slice(v);
                }
            })
        }

        fn capturing(&self) -> bool {
            self.capturing
        }

        fn set_capture(&mut self, index: usize, value: &[u8]) {
            self.captures.push((index, value.to_vec()));
        }

        fn set_matched_data(&mut self, value: &[u8]) {
            self.matched = Some(value.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::FakeCx;
    use super::*;

    #[test]
    fn literal_and_macro() {
        let cx = FakeCx::default().with_var("tx.a", "GET POST");
        let lit = StringArg::parse("abc");
        assert_eq!(lit.literal(), Some(&b"abc"[..]));
        assert_eq!(lit.resolve(&cx).as_ref(), b"abc");
        let mac = StringArg::parse("%{tx.a} HEAD");
        assert_eq!(mac.literal(), None);
        assert_eq!(mac.resolve(&cx).as_ref(), b"GET POST HEAD");
        assert_eq!(StringArg::parse("").literal(), Some(&b""[..]));
    }
}
