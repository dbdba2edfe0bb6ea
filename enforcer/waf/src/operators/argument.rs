//! Operator arguments: strings that may contain macros (a literal is kept as
//! bytes, anything with `%{...}` is expanded per evaluation), the evaluation
//! the string operators (`@beginsWith`, `@contains`, `@streq`, ...) share
//! around their comparison, and the data-file lists of the `...FromFile`
//! operators.

use std::borrow::Cow;

use memchr::memmem;

use super::{OperatorContext, OperatorEnv, OperatorError, RequiredLiterals};
use crate::macros::MacroText;

/// A string argument: literal (resolved at build time) or a macro text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StringArg {
    /// No macro: the bytes as written.
    Literal(Vec<u8>),
    /// Contains at least one macro; expanded per evaluation.
    Macro(MacroText),
}

/// Where a string operator matches without running its comparison.
/// ModSecurity v3 decides this per operator; each operator's docs say which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Empty {
    /// Always compare: an empty argument matches whatever the comparison
    /// says of it (every input for a prefix or substring, only the empty
    /// input for equality).
    Compare,
    /// An empty argument matches every input, recording nothing.
    ArgumentMatches,
    /// An empty input matches whatever the argument, recording nothing.
    InputMatches,
}

/// What a string operator records as matched data when its comparison
/// matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Nothing.
    Nothing,
    /// The argument's value for this evaluation.
    Argument,
    /// The input.
    Input,
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

    /// The argument's value for this evaluation: a borrow when literal, and
    /// when the macro is one variable the context holds
    /// ([`OperatorContext::expand_cow`]), so `@within %{tx.allowed_methods}`
    /// copies nothing per value.
    pub(crate) fn resolve<'a>(&'a self, cx: &'a dyn OperatorContext) -> Cow<'a, [u8]> {
        match self {
            StringArg::Literal(lit) => Cow::Borrowed(lit),
            StringArg::Macro(text) => cx.expand_cow(text),
        }
    }

    /// The macro text, if the argument holds a macro.
    pub(crate) fn macros(&self) -> Option<&MacroText> {
        match self {
            StringArg::Literal(_) => None,
            StringArg::Macro(text) => Some(text),
        }
    }

    /// The literal bytes, if the argument holds no macro.
    pub(crate) fn literal(&self) -> Option<&[u8]> {
        match self {
            StringArg::Literal(lit) => Some(lit),
            StringArg::Macro(_) => None,
        }
    }

    /// Evaluates a string operator: applies the `empty` rule, resolves the
    /// argument, runs `compare(input, argument)` and, on a match, records
    /// what `record` says as matched data.
    pub(crate) fn evaluate(
        &self,
        cx: &mut dyn OperatorContext,
        input: &[u8],
        empty: Empty,
        record: Record,
        compare: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> bool {
        if empty == Empty::InputMatches && input.is_empty() {
            return true;
        }
        // The argument may borrow from `cx`, which recording needs mutably:
        // a matched macro argument is copied out first (matches are rare).
        let matched_argument = {
            let argument = self.resolve(cx);
            if empty == Empty::ArgumentMatches && argument.is_empty() {
                return true;
            }
            if !compare(input, &argument) {
                return false;
            }
            match (record, self) {
                (Record::Argument, StringArg::Macro(_)) => Some(argument.into_owned()),
                _ => None,
            }
        };
        match (record, self) {
            (Record::Nothing, _) => {}
            (Record::Argument, StringArg::Literal(lit)) => cx.set_matched_data(lit),
            (Record::Argument, StringArg::Macro(_)) => {
                cx.set_matched_data(matched_argument.as_deref().unwrap_or_default())
            }
            (Record::Input, _) => cx.set_matched_data(input),
        }
        true
    }

    /// The prefilter hint of an operator whose every match contains the
    /// argument (case-sensitively): the argument, when it is a non-empty
    /// literal.
    pub(crate) fn required_literals(&self) -> Option<RequiredLiterals> {
        let lit = self.literal().filter(|l| !l.is_empty())?;
        Some(RequiredLiterals {
            literals: vec![lit.to_vec()],
            case_insensitive: false,
        })
    }
}

/// A [`StringArg`] searched for in the input (case-sensitively); a literal
/// gets a substring searcher built once.
#[derive(Debug)]
pub(crate) struct Needle {
    arg: StringArg,
    finder: Option<memmem::Finder<'static>>,
}

impl Needle {
    /// Whether the argument holds no macro.
    pub(crate) fn is_literal(&self) -> bool {
        self.arg.literal().is_some()
    }

    /// Parses `argument` as for [`StringArg::parse`].
    pub(crate) fn parse(argument: &str) -> Needle {
        let arg = StringArg::parse(argument);
        let finder = arg
            .literal()
            .map(|lit| memmem::Finder::new(lit).into_owned());
        Needle { arg, finder }
    }

    /// The argument.
    pub(crate) fn arg(&self) -> &StringArg {
        &self.arg
    }

    /// [`StringArg::evaluate`] with "the argument occurs in the input" as
    /// the comparison. An empty argument occurs in every input.
    pub(crate) fn evaluate(
        &self,
        cx: &mut dyn OperatorContext,
        input: &[u8],
        record: Record,
    ) -> bool {
        self.arg
            .evaluate(cx, input, Empty::Compare, record, |input, needle| {
                match &self.finder {
                    // Built from the literal, which `needle` then is.
                    Some(finder) => finder.find(input).is_some(),
                    None => crate::search::find(input, needle).is_some(),
                }
            })
    }
}

/// Reads the data files a `...FromFile` operator's argument names (one or
/// more, space-separated) through [`OperatorEnv::read_data_file`], and hands
/// each file's name and contents to `each`, in order, stopping at the first
/// error.
///
/// An argument naming no file is an error, and so is a remote list
/// (`https://...`, `http://...`): ModSecurity v3 downloads those at load
/// time, Palisade does no network I/O then.
pub(crate) fn for_each_data_file(
    operator: &str,
    argument: &str,
    env: &OperatorEnv<'_>,
    mut each: impl FnMut(&str, &[u8]) -> Result<(), OperatorError>,
) -> Result<(), OperatorError> {
    let mut files = argument.split_ascii_whitespace().peekable();
    if files.peek().is_none() {
        return Err(OperatorError::invalid(operator, "no data file named"));
    }
    for file in files {
        if file.starts_with("https://") || file.starts_with("http://") {
            return Err(OperatorError::invalid(
                operator,
                format!("remote data files are not supported: {file}"),
            ));
        }
        let data = (env.read_data_file)(file).map_err(|source| OperatorError::DataFile {
            operator: operator.to_owned(),
            file: file.to_owned(),
            source,
        })?;
        each(file, &data)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A fake [`OperatorContext`] and data files for unit tests.

    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::io;

    use crate::macros::MacroText;
    use crate::operators::{OperatorContext, OperatorEnv, RegexCache};

    /// Calls `build` with an environment whose data files are `files`
    /// (name, contents); any other name is not found.
    pub(crate) fn with_data_files<T>(
        files: &[(&str, &[u8])],
        build: impl FnOnce(&OperatorEnv<'_>) -> T,
    ) -> T {
        let read = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, data)| data.to_vec())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
        };
        let cache = RegexCache::new();
        build(&OperatorEnv {
            read_data_file: &read,
            regexes: &cache,
        })
    }

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

        /// Borrows a single variable's value, as the transaction does.
        fn expand_cow(&self, text: &MacroText) -> Cow<'_, [u8]> {
            if let Some((collection, key)) = text.single_variable() {
                let name = match key {
                    Some(k) => format!("{collection}.{k}").to_ascii_lowercase(),
                    None => collection.to_ascii_lowercase(),
                };
                if let Some(v) = self.vars.get(&name) {
                    return Cow::Borrowed(v);
                }
            }
            Cow::Owned(self.expand(text))
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
    use super::test_support::{with_data_files, FakeCx};
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

    /// The string operators built on [`StringArg::evaluate`], one table: each
    /// operator's comparison, empty rule and matched data, as its docs state
    /// them (ModSecurity v3).
    #[test]
    fn string_operators() {
        let cx = || {
            [
                ("tx.host", "example.com"),
                ("request_headers.host", "example.com"),
                ("tx.v", "abc"),
                ("tx.sp", "T P"),
                ("tx.w", "b"),
                ("tx.allowed_methods", "GET HEAD POST OPTIONS"),
            ]
            .into_iter()
            .fold(FakeCx::default(), |cx, (k, v)| cx.with_var(k, v))
        };
        let methods = "%{tx.allowed_methods}";
        let versions = "HTTP/1.0 HTTP/1.1 HTTP/2";
        // (operator, input, argument, want, matched data)
        let cases = [
            ("beginsWith", "GET / HTTP/1.1", "GET /", true, None),
            ("beginsWith", "get / HTTP/1.1", "GET /", false, None),
            ("beginsWith", "GET", "GET /", false, None),
            ("beginsWith", "", "", true, None),
            ("beginsWith", "abc", "", true, None),
            ("beginsWith", "example.com:80", "%{tx.host}", true, None),
            ("beginsWith", "www.example.com", "%{tx.host}", false, None),
            ("endsWith", "/doc.pdf", ".pdf", true, None),
            ("endsWith", "/doc.PDF", ".pdf", false, None),
            ("endsWith", "pdf", ".pdf", false, None),
            ("endsWith", "", "", true, None),
            ("endsWith", "x", "", true, None),
            (
                "endsWith",
                "a.example.com",
                ".%{request_headers.host}",
                true,
                None,
            ),
            (
                "endsWith",
                "aexample.com",
                ".%{request_headers.host}",
                false,
                None,
            ),
            ("contains", "/index.php?x", ".php", true, Some(".php")),
            ("contains", "/index.PHP", ".php", false, None),
            ("contains", "abc", "", true, Some("")),
            ("contains", "", "", true, Some("")),
            ("contains", "", "x", false, None),
            ("contains", "GET POST", "%{tx.sp}", true, Some("T P")),
            ("contains", "GETPOST", "%{tx.sp}", false, None),
            ("containsWord", "select", "select", true, Some("select")),
            ("containsWord", "1 select 2", "select", true, Some("select")),
            ("containsWord", "select x", "select", true, Some("select")),
            ("containsWord", "x select", "select", true, Some("select")),
            ("containsWord", "selected", "select", false, None),
            ("containsWord", "unselect", "select", false, None),
            ("containsWord", "1select2", "select", true, Some("select")),
            ("containsWord", "_select_", "select", true, Some("select")),
            ("containsWord", "SELECT", "select", false, None),
            (
                "containsWord",
                "selectx select",
                "select",
                true,
                Some("select"),
            ),
            ("containsWord", "a-1-1-", "-1-", true, Some("-1-")),
            ("containsWord", "", "select", false, None),
            ("containsWord", "", "", true, None),
            ("containsWord", "abc", "", true, None),
            ("containsWord", "a b", "%{tx.w}", true, Some("b")),
            ("containsWord", "ab", "%{tx.w}", false, None),
            ("streq", "POST", "POST", true, None),
            ("streq", "post", "POST", false, None),
            ("streq", "POST ", "POST", false, None),
            ("streq", "GET /", "GET /", true, None),
            ("streq", "", "", true, None),
            ("streq", "x", "", false, None),
            ("streq", "abc", "%{tx.v}", true, None),
            ("streq", "abd", "%{tx.v}", false, None),
            ("streq", "", "%{tx.missing}", true, None),
            ("strmatch", "xxWebZIPxx", "WebZIP", true, None),
            ("strmatch", "xxwebzipxx", "WebZIP", false, None),
            ("strmatch", "WebZI", "WebZIP", false, None),
            ("strmatch", "anything", "", true, None),
            ("strmatch", "", "", true, None),
            ("strmatch", "", "a", false, None),
            ("strmatch", "1abc2", "%{tx.v}", true, None),
            ("strmatch", "1ab2", "%{tx.v}", false, None),
            ("within", "GET", methods, true, Some("GET")),
            ("within", "HEAD", methods, true, Some("HEAD")),
            ("within", "DELETE", methods, false, None),
            ("within", "get", methods, false, None),
            ("within", "GE", methods, true, Some("GE")),
            ("within", "", methods, true, None),
            ("within", "", "", true, None),
            ("within", "x", "", false, None),
            ("within", "HTTP/1.1", versions, true, Some("HTTP/1.1")),
            ("within", "HTTP/3", versions, false, None),
            ("within", "x", "%{tx.missing}", false, None),
        ];
        for (operator, input, argument, want, matched) in cases {
            let op = with_data_files(&[], |env| super::super::build(operator, argument, env))
                .expect("builds");
            let mut cx = cx();
            let got = op.evaluate(&mut cx, input.as_bytes());
            let case = format!("@{operator} {argument:?} on {input:?}");
            assert_eq!(got, want, "{case}");
            assert_eq!(cx.matched.as_deref(), matched.map(str::as_bytes), "{case}");
        }
    }

    #[test]
    fn string_operators_require_a_literal_argument() {
        for operator in [
            "beginsWith",
            "endsWith",
            "contains",
            "containsWord",
            "streq",
            "strmatch",
        ] {
            let literals = |argument: &str| {
                with_data_files(&[], |env| super::super::build(operator, argument, env))
                    .expect("builds")
                    .required_literals()
                    .map(|r| (r.literals, r.case_insensitive))
            };
            assert_eq!(
                literals("abc"),
                Some((vec![b"abc".to_vec()], false)),
                "{operator}"
            );
            assert_eq!(literals("%{tx.v}"), None, "{operator}");
            assert_eq!(literals(""), None, "{operator}");
        }
        let within = with_data_files(&[], |env| super::super::build("within", "abc", env));
        assert_eq!(within.expect("builds").required_literals(), None);
    }

    #[test]
    fn evaluate_applies_the_empty_rule_and_records() {
        use Empty::{ArgumentMatches, Compare, InputMatches};
        use Record::{Argument, Input, Nothing};
        let prefix = |input: &[u8], arg: &[u8]| input.starts_with(arg);
        // (empty rule, record, input, argument, want, matched data)
        let cases = [
            (Compare, Nothing, "abc", "a", true, None),
            (Compare, Argument, "abc", "%{tx.a}", true, Some("ab")),
            (Compare, Input, "abc", "a", true, Some("abc")),
            (Compare, Argument, "abc", "b", false, None),
            (Compare, Argument, "abc", "", true, Some("")),
            (ArgumentMatches, Argument, "abc", "", true, None),
            (
                ArgumentMatches,
                Argument,
                "abc",
                "%{tx.missing}",
                true,
                None,
            ),
            (ArgumentMatches, Argument, "abc", "ab", true, Some("ab")),
            (InputMatches, Input, "", "x", true, None),
            (InputMatches, Input, "abc", "x", false, None),
            (InputMatches, Input, "abc", "", true, Some("abc")),
        ];
        for (empty, record, input, argument, want, matched) in cases {
            let mut cx = FakeCx::default().with_var("tx.a", "ab");
            let got = StringArg::parse(argument).evaluate(
                &mut cx,
                input.as_bytes(),
                empty,
                record,
                prefix,
            );
            assert_eq!(got, want, "{empty:?} {input:?} {argument:?}");
            assert_eq!(
                cx.matched.as_deref(),
                matched.map(str::as_bytes),
                "{input:?}"
            );
        }
    }

    #[test]
    fn data_files_are_read_in_order() {
        let files: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2")];
        let read = |argument: &str| {
            with_data_files(files, |env| {
                let mut seen = Vec::new();
                for_each_data_file("pmFromFile", argument, env, |name, data| {
                    seen.push(format!("{name}={}", String::from_utf8_lossy(data)));
                    Ok(())
                })
                .map(|()| seen)
            })
        };
        assert_eq!(read(" a  b ").ok(), Some(vec!["a=1".into(), "b=2".into()]));
        assert!(matches!(
            read("a missing"),
            Err(OperatorError::DataFile { .. })
        ));
        for argument in ["", "  ", "a https://example.com/x.data", "http://x"] {
            let err = read(argument).expect_err("refused");
            assert!(
                matches!(err, OperatorError::InvalidArgument { ref operator, .. } if operator == "pmFromFile"),
                "{argument:?}: {err}"
            );
        }
    }
}
