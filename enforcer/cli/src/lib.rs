//! The library behind the `palisade` command: evaluating JSON-lines requests
//! against a ruleset ([`eval`]), linting rulesets ([`lint`]) and running
//! go-ftw regression suites such as the OWASP CRS tests in-process ([`ftw`]).
//!
//! ```no_run
//! use std::path::Path;
//! use palisade_cli::ftw::{self, RunOptions};
//!
//! let crs = Path::new("../shared/crs");
//! let ruleset = ftw::load_crs_ruleset(crs, None)?;
//! let tests = ftw::load_tests(&ftw::crs_tests_dir(crs))?;
//! let summary = ftw::run_suite(&ruleset, &tests, &RunOptions::default(), &mut std::io::stdout())?;
//! println!("{}", summary.line());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod eval;
pub mod ftw;
pub mod lint;
pub mod request;
pub mod ruleset;
