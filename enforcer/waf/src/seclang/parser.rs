//! The directive parser.

use super::{ActionSpec, Directive, FileSource, Located, ParseError, VariableSpec};

/// Parses SecLang text; `file` names it in spans. `Include` is an error here
/// (there is nothing to read from); use [`parse_file`].
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Located<Directive>>, Vec<ParseError>> {
    let _ = (text, file);
    todo!("parse_str")
}

/// Parses a file from `source`, following `Include`s.
pub fn parse_file(
    source: &dyn FileSource,
    file: &str,
) -> Result<Vec<Located<Directive>>, Vec<ParseError>> {
    let _ = (source, file);
    todo!("parse_file")
}

/// Parses an action list such as `id:1,phase:2,msg:'a, b',t:none` (also used
/// for `ctl` values and `SecRuleUpdateActionById`).
pub fn parse_actions(text: &str) -> Result<Vec<ActionSpec>, String> {
    let _ = text;
    todo!("parse_actions")
}

/// Parses a variable list such as `ARGS|!ARGS:foo|&TX:x|ARGS:/^id_/`.
pub fn parse_variables(text: &str) -> Result<Vec<VariableSpec>, String> {
    let _ = text;
    todo!("parse_variables")
}
