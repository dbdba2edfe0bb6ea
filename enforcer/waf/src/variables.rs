//! SecLang variables and collections: the closed vocabulary of what a rule can
//! inspect, and how a rule's variable list selects members.
//!
//! Names are looked up in one exhaustive table ([`Variable::from_name`]); an
//! unknown name is a compile error naming file and line. Collection keys are
//! matched ASCII case-insensitively, as ModSecurity v3 does for every
//! collection (its collections hash and compare keys without case).

use std::sync::Arc;

use regex::bytes::Regex;

use crate::seclang::{Selector, VariableSpec};

macro_rules! variables {
    ($( $variant:ident => $name:literal, $collection:literal; )*) => {
        /// Every variable and collection Palisade knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Variable {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Variable {
            /// Looks a name up, case-insensitively.
            pub fn from_name(name: &str) -> Option<Variable> {
                $(
                    if name.eq_ignore_ascii_case($name) {
                        return Some(Variable::$variant);
                    }
                )*
                None
            }

            /// The SecLang name (uppercase).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Variable::$variant => $name, )*
                }
            }

            /// Whether this is a collection (accepts `:key` selectors).
            pub fn is_collection(&self) -> bool {
                match self {
                    $( Variable::$variant => $collection, )*
                }
            }
        }
    };
}

variables! {
    Args => "ARGS", true;
    ArgsGet => "ARGS_GET", true;
    ArgsPost => "ARGS_POST", true;
    ArgsNames => "ARGS_NAMES", true;
    ArgsGetNames => "ARGS_GET_NAMES", true;
    ArgsPostNames => "ARGS_POST_NAMES", true;
    ArgsCombinedSize => "ARGS_COMBINED_SIZE", false;
    RequestHeaders => "REQUEST_HEADERS", true;
    RequestHeadersNames => "REQUEST_HEADERS_NAMES", true;
    RequestCookies => "REQUEST_COOKIES", true;
    RequestCookiesNames => "REQUEST_COOKIES_NAMES", true;
    RequestUri => "REQUEST_URI", false;
    RequestUriRaw => "REQUEST_URI_RAW", false;
    RequestLine => "REQUEST_LINE", false;
    RequestMethod => "REQUEST_METHOD", false;
    RequestProtocol => "REQUEST_PROTOCOL", false;
    RequestFilename => "REQUEST_FILENAME", false;
    RequestBasename => "REQUEST_BASENAME", false;
    PathInfo => "PATH_INFO", false;
    QueryString => "QUERY_STRING", false;
    RequestBody => "REQUEST_BODY", false;
    RequestBodyLength => "REQUEST_BODY_LENGTH", false;
    FullRequest => "FULL_REQUEST", false;
    FullRequestLength => "FULL_REQUEST_LENGTH", false;
    ReqbodyProcessor => "REQBODY_PROCESSOR", false;
    ReqbodyError => "REQBODY_ERROR", false;
    ReqbodyErrorMsg => "REQBODY_ERROR_MSG", false;
    ReqbodyProcessorError => "REQBODY_PROCESSOR_ERROR", false;
    ReqbodyProcessorErrorMsg => "REQBODY_PROCESSOR_ERROR_MSG", false;
    InboundDataError => "INBOUND_DATA_ERROR", false;
    OutboundDataError => "OUTBOUND_DATA_ERROR", false;
    UrlencodedError => "URLENCODED_ERROR", false;
    Files => "FILES", true;
    FilesNames => "FILES_NAMES", true;
    FilesSizes => "FILES_SIZES", true;
    FilesTmpNames => "FILES_TMPNAMES", true;
    FilesTmpContent => "FILES_TMP_CONTENT", true;
    FilesCombinedSize => "FILES_COMBINED_SIZE", false;
    MultipartPartHeaders => "MULTIPART_PART_HEADERS", true;
    MultipartFilename => "MULTIPART_FILENAME", false;
    MultipartName => "MULTIPART_NAME", false;
    MultipartStrictError => "MULTIPART_STRICT_ERROR", false;
    MultipartUnmatchedBoundary => "MULTIPART_UNMATCHED_BOUNDARY", false;
    MultipartBoundaryQuoted => "MULTIPART_BOUNDARY_QUOTED", false;
    MultipartBoundaryWhitespace => "MULTIPART_BOUNDARY_WHITESPACE", false;
    MultipartDataAfter => "MULTIPART_DATA_AFTER", false;
    MultipartDataBefore => "MULTIPART_DATA_BEFORE", false;
    MultipartFileLimitExceeded => "MULTIPART_FILE_LIMIT_EXCEEDED", false;
    MultipartHeaderFolding => "MULTIPART_HEADER_FOLDING", false;
    MultipartInvalidHeaderFolding => "MULTIPART_INVALID_HEADER_FOLDING", false;
    MultipartInvalidPart => "MULTIPART_INVALID_PART", false;
    MultipartInvalidQuoting => "MULTIPART_INVALID_QUOTING", false;
    MultipartLfLine => "MULTIPART_LF_LINE", false;
    MultipartMissingSemicolon => "MULTIPART_MISSING_SEMICOLON", false;
    MultipartCrlfLfLines => "MULTIPART_CRLF_LF_LINES", false;
    Xml => "XML", true;
    Tx => "TX", true;
    Ip => "IP", true;
    Session => "SESSION", true;
    User => "USER", true;
    Global => "GLOBAL", true;
    Resource => "RESOURCE", true;
    Env => "ENV", true;
    Geo => "GEO", true;
    Rule => "RULE", true;
    MatchedVar => "MATCHED_VAR", false;
    MatchedVarName => "MATCHED_VAR_NAME", false;
    MatchedVars => "MATCHED_VARS", true;
    MatchedVarsNames => "MATCHED_VARS_NAMES", true;
    RemoteAddr => "REMOTE_ADDR", false;
    RemoteHost => "REMOTE_HOST", false;
    RemotePort => "REMOTE_PORT", false;
    RemoteUser => "REMOTE_USER", false;
    ServerAddr => "SERVER_ADDR", false;
    ServerName => "SERVER_NAME", false;
    ServerPort => "SERVER_PORT", false;
    UniqueId => "UNIQUE_ID", false;
    AuthType => "AUTH_TYPE", false;
    ResponseStatus => "RESPONSE_STATUS", false;
    ResponseProtocol => "RESPONSE_PROTOCOL", false;
    ResponseHeaders => "RESPONSE_HEADERS", true;
    ResponseHeadersNames => "RESPONSE_HEADERS_NAMES", true;
    ResponseBody => "RESPONSE_BODY", false;
    ResponseContentType => "RESPONSE_CONTENT_TYPE", false;
    ResponseContentLength => "RESPONSE_CONTENT_LENGTH", false;
    StatusLine => "STATUS_LINE", false;
    Duration => "DURATION", false;
    HighestSeverity => "HIGHEST_SEVERITY", false;
    Time => "TIME", false;
    TimeDay => "TIME_DAY", false;
    TimeEpoch => "TIME_EPOCH", false;
    TimeHour => "TIME_HOUR", false;
    TimeMin => "TIME_MIN", false;
    TimeMon => "TIME_MON", false;
    TimeSec => "TIME_SEC", false;
    TimeWday => "TIME_WDAY", false;
    TimeYear => "TIME_YEAR", false;
    WebserverErrorLog => "WEBSERVER_ERROR_LOG", false;
    Userid => "USERID", false;
    Sessionid => "SESSIONID", false;
    Webappid => "WEBAPPID", false;
}

/// Whether a transaction keeps this variable's values in stable storage for
/// the rest of the phase (so results computed from them may be cached).
/// TX, the matched-variable collections, persistent collections and computed
/// values (sizes, time, duration) change while rules run.
pub fn has_stable_slot(v: Variable) -> bool {
    use Variable as V;
    !matches!(
        v,
        V::Tx
            | V::Ip
            | V::Session
            | V::User
            | V::Global
            | V::Resource
            | V::Env
            | V::Geo
            | V::Rule
            | V::MatchedVar
            | V::MatchedVarName
            | V::MatchedVars
            | V::MatchedVarsNames
            | V::ArgsCombinedSize
            | V::Duration
            | V::HighestSeverity
            | V::Time
            | V::TimeDay
            | V::TimeEpoch
            | V::TimeHour
            | V::TimeMin
            | V::TimeMon
            | V::TimeSec
            | V::TimeWday
            | V::TimeYear
    )
}

/// A compiled member selector.
#[derive(Clone, Debug)]
pub enum KeySelector {
    /// Every member.
    All,
    /// Members whose key equals this (ASCII case-insensitive).
    Key(Arc<[u8]>),
    /// Members whose key matches this regex (case-insensitive).
    Regex(Arc<KeyRegex>),
}

/// A selector regex (`TX:/^header_name_/`) and the literal every key it
/// selects starts with, so that most keys are turned down by a prefix
/// compare instead of a regex search (CRS 920450 walks every TX variable).
#[derive(Debug)]
pub struct KeyRegex {
    regex: Regex,
    /// Lowercased literal prefix of every selected key (may be empty).
    prefix: Box<[u8]>,
    /// The pattern is `^` and the prefix, nothing more: the prefix compare
    /// is the whole test.
    prefix_only: bool,
    /// Lowercased literal every selected key contains, for a pattern that
    /// is not anchored (`TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/`; may be empty).
    infix: Box<[u8]>,
}

impl KeyRegex {
    /// Compiles a case-insensitive selector regex, with size limits.
    pub fn new(pattern: &str) -> Result<KeyRegex, String> {
        let prefix = literal_prefix(pattern);
        Ok(KeyRegex {
            regex: selector_regex(pattern)?,
            prefix_only: pattern.starts_with('^') && pattern.len() == prefix.len() + 1,
            prefix: prefix.into(),
            infix: literal_infix(pattern).into(),
        })
    }

    /// Whether `key` is selected.
    pub fn is_match(&self, key: &[u8]) -> bool {
        // The first byte turns down most keys (TX holds ~100 for CRS 920450
        // to walk) before the whole prefix is compared.
        if let (Some(&p), Some(&k)) = (self.prefix.first(), key.first()) {
            if p != k.to_ascii_lowercase() {
                return false;
            }
        }
        key.len() >= self.prefix.len()
            && key[..self.prefix.len()].eq_ignore_ascii_case(&self.prefix)
            && contains_ignore_case(key, &self.infix)
            && (self.prefix_only || self.regex.is_match(key))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }
}

/// The literal a pattern anchored with `^` requires at the start of every
/// match, lowercased: the run of letters, digits, `_` and `-` after the `^`,
/// without its last character when a quantifier follows it. Empty when the
/// pattern is not anchored or has an alternation anywhere (`^a|b`).
fn literal_prefix(pattern: &str) -> Vec<u8> {
    let Some(rest) = pattern.strip_prefix('^') else {
        return Vec::new();
    };
    if pattern.contains('|') {
        return Vec::new();
    }
    leading_literal(rest)
}

/// The literal every match of a pattern that is not anchored contains,
/// lowercased: its leading run as for [`literal_prefix`]. Empty for an
/// anchored pattern or one with an alternation.
fn literal_infix(pattern: &str) -> Vec<u8> {
    if pattern.starts_with('^') || pattern.contains('|') {
        return Vec::new();
    }
    leading_literal(pattern)
}

/// Whether `hay` contains `needle` (lowercase) ASCII case-insensitively:
/// only the places holding the needle's first byte, in either case, are
/// compared (most TX keys hold none of them).
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    let mut from = 0;
    while let Some(p) = hay
        .get(from..=last_start)
        .and_then(|h| memchr::memchr2(first, first.to_ascii_uppercase(), h))
    {
        let at = from + p;
        if hay[at + 1..at + needle.len()].eq_ignore_ascii_case(rest) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The run of letters, digits, `_` and `-` at the start of `rest`,
/// lowercased, without its last character when a quantifier follows it.
fn leading_literal(rest: &str) -> Vec<u8> {
    let bytes = rest.as_bytes();
    let run = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
        .unwrap_or(bytes.len());
    let quantified = matches!(bytes.get(run), Some(b'?' | b'*' | b'{' | b'+'));
    let end = if quantified {
        run.saturating_sub(1)
    } else {
        run
    };
    bytes[..end].to_ascii_lowercase()
}

impl KeySelector {
    /// Whether `key` is selected.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeySelector::All => true,
            KeySelector::Key(k) => k.eq_ignore_ascii_case(key),
            KeySelector::Regex(r) => r.is_match(key),
        }
    }

    /// The text of the selector as written in a variable name (`ARGS:foo`).
    pub fn describe(&self) -> Option<String> {
        match self {
            KeySelector::All => None,
            KeySelector::Key(k) => Some(String::from_utf8_lossy(k).into_owned()),
            KeySelector::Regex(r) => Some(format!("/{}/", r.as_str().trim_start_matches("(?i)"))),
        }
    }
}

/// One compiled target of a rule: a variable, its selector, and whether it counts.
#[derive(Clone, Debug)]
pub struct Target {
    /// The variable.
    pub variable: Variable,
    /// Member selector (`All` for scalars).
    pub selector: KeySelector,
    /// `&VAR`: yield the number of selected members instead of their values.
    pub count: bool,
    /// Raw XPath for `XML:<xpath>` (the selector is kept literally).
    pub xpath: Option<String>,
    /// Which stored XML selection `xpath` names, decided once here so that
    /// evaluating a rule does not read the XPath text.
    pub xml_list: XmlList,
}

/// The XML selections a transaction stores when it parses an XML body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmlList {
    /// `XML:/*` (also `XML` without an XPath): every text node.
    Text,
    /// `XML://@*`: every attribute value.
    Attributes,
    /// Any other XPath, evaluated on the document when collected.
    Other,
}

impl XmlList {
    /// The selection an XPath (`None`: `XML` without one) names.
    pub fn of(xpath: Option<&str>) -> XmlList {
        match xpath.unwrap_or("/*") {
            "/*" => XmlList::Text,
            "//@*" => XmlList::Attributes,
            _ => XmlList::Other,
        }
    }
}

/// An exclusion (`!ARGS:foo`) applied to a rule's targets.
#[derive(Clone, Debug)]
pub struct Exclusion {
    /// The collection the exclusion applies to.
    pub variable: Variable,
    /// Which members to drop.
    pub selector: KeySelector,
}

impl Exclusion {
    /// Whether a value of `variable` with `key` is excluded.
    pub fn excludes(&self, variable: Variable, key: &[u8]) -> bool {
        self.variable == variable && self.selector.matches(key)
    }
}

/// A compiled variable list element.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    /// A target to inspect.
    Target(Target),
    /// An exclusion.
    Exclusion(Exclusion),
}

/// Builds a case-insensitive selector regex, with size limits.
pub fn selector_regex(pattern: &str) -> Result<Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .unicode(false)
        .size_limit(8 << 20)
        .dfa_size_limit(8 << 20)
        .build()
        .map_err(|e| format!("invalid selector regex /{pattern}/: {e}"))
}

/// Compiles one parsed variable element.
pub fn compile(spec: &VariableSpec) -> Result<TargetSpec, String> {
    let variable =
        Variable::from_name(&spec.name).ok_or_else(|| format!("unknown variable {}", spec.name))?;
    let mut xpath = None;
    let selector = match &spec.selector {
        None => KeySelector::All,
        Some(_) if !variable.is_collection() => {
            return Err(format!("variable {} takes no selector", variable.name()))
        }
        Some(Selector::Key(k)) if variable == Variable::Xml => {
            xpath = Some(k.clone());
            KeySelector::All
        }
        Some(Selector::Regex(r)) if variable == Variable::Xml => {
            xpath = Some(r.clone());
            KeySelector::All
        }
        Some(Selector::Key(k)) => KeySelector::Key(Arc::from(k.as_bytes())),
        Some(Selector::Regex(r)) => KeySelector::Regex(Arc::new(KeyRegex::new(r)?)),
    };
    if spec.exclude {
        return Ok(TargetSpec::Exclusion(Exclusion { variable, selector }));
    }
    Ok(TargetSpec::Target(Target {
        variable,
        selector,
        count: spec.count,
        xml_list: XmlList::of(xpath.as_deref()),
        xpath,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, sel: Option<Selector>, exclude: bool, count: bool) -> VariableSpec {
        VariableSpec {
            exclude,
            count,
            name: name.into(),
            selector: sel,
        }
    }

    #[test]
    fn names_are_case_insensitive_and_closed() {
        assert_eq!(
            Variable::from_name("request_headers"),
            Some(Variable::RequestHeaders)
        );
        assert_eq!(
            Variable::from_name("ARGS_GET_NAMES"),
            Some(Variable::ArgsGetNames)
        );
        assert_eq!(Variable::from_name("NOPE"), None);
    }

    #[test]
    fn compiles_selectors_and_exclusions() {
        let t = compile(&spec(
            "ARGS",
            Some(Selector::Key("Foo".into())),
            false,
            false,
        ))
        .unwrap();
        match t {
            TargetSpec::Target(t) => {
                assert!(t.selector.matches(b"foo"));
                assert!(!t.selector.matches(b"foobar"));
            }
            _ => panic!("expected target"),
        }
        let e = compile(&spec(
            "REQUEST_COOKIES",
            Some(Selector::Regex("^__utm".into())),
            true,
            false,
        ))
        .unwrap();
        match e {
            TargetSpec::Exclusion(e) => {
                assert!(e.excludes(Variable::RequestCookies, b"__UTMZ"));
                assert!(!e.excludes(Variable::Args, b"__utmz"));
            }
            _ => panic!("expected exclusion"),
        }
        assert!(compile(&spec(
            "REQUEST_URI",
            Some(Selector::Key("x".into())),
            false,
            false
        ))
        .is_err());
        assert!(compile(&spec("BOGUS", None, false, false))
            .unwrap_err()
            .contains("BOGUS"));
    }

    #[test]
    fn infixes_are_found_in_any_case_wherever_they_are() {
        let reference = |hay: &[u8], needle: &[u8]| {
            needle.is_empty()
                || hay
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle))
        };
        let needles: [&[u8]; 4] = [b"", b"m", b"mum", b"multipart_"];
        let hays: [&[u8]; 11] = [
            b"",
            b"m",
            b"M",
            b"mu",
            b"mumum",
            b"xMUMx",
            b"mmultipart_",
            b"MULTIPART",
            b"anomaly_score_multipart_",
            b"multipart_headers",
            b"mulTipart_x",
        ];
        for needle in needles {
            for hay in hays {
                assert_eq!(
                    contains_ignore_case(hay, needle),
                    reference(hay, needle),
                    "{:?} in {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(hay)
                );
            }
        }
    }

    #[test]
    fn selector_regexes_turn_keys_down_by_their_literal_prefix() {
        let cases: &[(&str, &[u8])] = &[
            ("^header_name_920450_", b"header_name_920450_"),
            ("^__utm", b"__utm"),
            ("^ABc?d", b"ab"),
            ("^ab*", b"a"),
            ("^ab{0,2}", b"a"),
            ("^ab(c|d)", b""),
            ("^a|b", b""),
            ("abc", b""),
            ("^x-", b"x-"),
            ("^\\x41", b""),
        ];
        for (pattern, prefix) in cases {
            assert_eq!(literal_prefix(pattern), *prefix, "{pattern}");
        }
        // (unanchored pattern, the literal every selected key contains)
        let infixes: &[(&str, &[u8])] = &[
            (
                "MULTIPART_HEADERS_CONTENT_TYPES_*",
                b"multipart_headers_content_types",
            ),
            ("paramcounter_.*", b"paramcounter_"),
            ("a|b", b""),
            ("^abc", b""),
            ("\\x22?\\x24Version", b""),
        ];
        for (pattern, infix) in infixes {
            assert_eq!(literal_infix(pattern), *infix, "{pattern}");
        }
        let r = KeyRegex::new("MULTIPART_HEADERS_CONTENT_TYPES_*").expect("compiles");
        assert!(r.is_match(b"multipart_headers_content_types_x-file"));
        assert!(r.is_match(b"A_MULTIPART_HEADERS_CONTENT_TYPES"));
        assert!(!r.is_match(b"multipart_headers_content_type"));
        assert!(!r.is_match(b"x"));
        let r = KeyRegex::new("^Header_Name_920450_").expect("compiles");
        assert!(r.is_match(b"header_name_920450_content-range"));
        assert!(r.is_match(b"HEADER_NAME_920450_X"));
        assert!(!r.is_match(b"header_name_920451_x"));
        assert!(!r.is_match(b"head"));
        let r = KeyRegex::new("^ab?c").expect("compiles");
        assert!(r.is_match(b"ac") && r.is_match(b"abc") && !r.is_match(b"bc"));
        // (pattern, answered by the prefix alone)
        for (pattern, prefix_only) in [
            ("^header_name_920450_", true),
            ("^a-b", true),
            ("^ab?c", false),
            ("^abc$", false),
            ("^ab|cd", false),
            ("abc", false),
            ("a", false),
            ("^", true),
        ] {
            let r = KeyRegex::new(pattern).expect("compiles");
            assert_eq!(r.prefix_only, prefix_only, "{pattern:?}");
        }
    }
}
