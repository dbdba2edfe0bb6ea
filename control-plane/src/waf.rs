//! The bridge to `palisade-waf`: compiles a flat ruleset to validate it.
//!
//! The engine is called behind `catch_unwind` so that an engine bug can never
//! take the control plane down; such a ruleset is reported as unchecked.

use std::collections::BTreeMap;

use crate::validate::RulesetVerdict;

/// Compiles `files` with the WAF engine.
pub fn compile(files: &BTreeMap<String, Vec<u8>>) -> RulesetVerdict {
    let files = files.clone();
    let result = std::panic::catch_unwind(move || {
        palisade_waf::Ruleset::load_files(files).map(|ruleset| ruleset.rule_count())
    });
    match result {
        Ok(Ok(rules)) => RulesetVerdict::Valid { rules },
        Ok(Err(e)) => RulesetVerdict::Invalid(e.to_string()),
        Err(_) => RulesetVerdict::Unchecked("the WAF engine failed while compiling".into()),
    }
}
