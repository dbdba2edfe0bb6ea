//! Palisade's WAF engine: a SecLang rule engine that runs the OWASP Core Rule
//! Set v4 with ModSecurity v3 semantics.
//!
//! Pure library: no async runtime, no I/O besides reading rule and data files
//! at load time.
//!
//! ```no_run
//! use palisade_waf::Ruleset;
//!
//! let rules = Ruleset::from_text(r#"
//!     SecRuleEngine On
//!     SecRule ARGS "@rx (?i)union\s+select" "id:1,phase:2,deny,status:403,msg:'sqli'"
//! "#).unwrap();
//! let mut tx = rules.transaction();
//! tx.process_connection("10.0.0.1", 40000, "10.0.0.2", 80);
//! tx.process_uri("/?q=1%20union%20select%202", "GET", "HTTP/1.1");
//! tx.add_request_header(b"Host", b"example");
//! assert!(tx.process_request_headers().is_none());
//! let verdict = tx.process_request_body();
//! assert_eq!(verdict.map(|i| i.status), Some(403));
//! ```

pub mod actions;
pub mod body;
mod byteset;
pub mod engine;
mod live;
pub mod macros;
pub mod operators;
mod search;
pub mod seclang;
pub mod transformations;
pub mod variables;

pub use engine::{
    CompileError, DisruptiveAction, EngineMode, Intervention, LoadError, MatchedRule, Ruleset,
    RulesetStats, Transaction,
};
