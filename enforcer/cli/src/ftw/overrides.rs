//! Platform overrides (the format of the CRS `*-overrides.yaml` files, schema
//! ftw-tests-schema `overrides`): per-platform replacements of a test's
//! expected output, each with a reason.
//!
//! An override names a `rule_id` and the `test_ids` it applies to (none: every
//! test of the rule), optionally the `stage_ids` (0-based; none: every stage).
//! Its `output` replaces the stage's output entirely, as in go-ftw. An
//! override without `output` marks the test as ignored: it is skipped and its
//! reason printed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::schema::Output;

/// A problem reading an overrides file.
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    /// The file could not be read.
    #[error("cannot read overrides {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse or has the wrong shape.
    #[error("{path}: invalid overrides file: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_yaml::Error,
    },
}

/// An overrides file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Overrides {
    /// Schema version.
    pub version: String,
    /// Engine and platform the overrides are for.
    pub meta: OverridesMeta,
    /// The overrides.
    pub test_overrides: Vec<TestOverride>,
}

/// Who the overrides are for.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OverridesMeta {
    /// WAF engine name.
    pub engine: String,
    /// Platform (web server) name.
    pub platform: String,
}

/// One override.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TestOverride {
    /// Rule whose tests are overridden.
    pub rule_id: u64,
    /// Tests it applies to (empty: all).
    pub test_ids: Vec<u64>,
    /// Stages it applies to, 0-based (empty: all).
    pub stage_ids: Vec<usize>,
    /// Why.
    pub reason: String,
    /// The replacement output; `None` ignores the test.
    pub output: Option<Output>,
}

impl TestOverride {
    /// Whether this override applies to test `test_id` of rule `rule_id`.
    pub fn applies_to(&self, rule_id: u64, test_id: u64) -> bool {
        self.rule_id == rule_id && (self.test_ids.is_empty() || self.test_ids.contains(&test_id))
    }

    /// Whether it applies to stage `index` (0-based).
    pub fn applies_to_stage(&self, index: usize) -> bool {
        self.stage_ids.is_empty() || self.stage_ids.contains(&index)
    }
}

/// What the overrides say about one test case.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict<'a> {
    /// No override applies.
    None,
    /// The test is ignored, for this reason.
    Ignored(&'a str),
    /// Outputs are replaced by these overrides (in file order; a later one
    /// wins for a stage both cover).
    Replaced(Vec<&'a TestOverride>),
}

impl Overrides {
    /// Parses overrides YAML.
    pub fn parse(path: &Path, text: &str) -> Result<Overrides, OverridesError> {
        let mut overrides: Overrides =
            serde_yaml::from_str(text).map_err(|source| OverridesError::Yaml {
                path: path.to_path_buf(),
                source,
            })?;
        for o in &mut overrides.test_overrides {
            if let Some(output) = &mut o.output {
                output.normalise_deprecated();
            }
        }
        Ok(overrides)
    }

    /// Reads an overrides file.
    pub fn load(path: &Path) -> Result<Overrides, OverridesError> {
        let text = fs::read_to_string(path).map_err(|source| OverridesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Overrides::parse(path, &text)
    }

    /// What applies to test `test_id` of rule `rule_id`.
    pub fn verdict(&self, rule_id: u64, test_id: u64) -> Verdict<'_> {
        let matching: Vec<&TestOverride> = self
            .test_overrides
            .iter()
            .filter(|o| o.applies_to(rule_id, test_id))
            .collect();
        if let Some(ignored) = matching.iter().find(|o| o.output.is_none()) {
            return Verdict::Ignored(&ignored.reason);
        }
        if matching.is_empty() {
            Verdict::None
        } else {
            Verdict::Replaced(matching)
        }
    }

    /// Number of test cases the overrides touch, counted over `cases`
    /// (`(rule_id, test_id)` pairs).
    pub fn count_touched(&self, cases: impl IntoIterator<Item = (u64, u64)>) -> usize {
        cases
            .into_iter()
            .filter(|(r, t)| !matches!(self.verdict(*r, *t), Verdict::None))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
version: "v0.0.0"
meta:
  engine: "palisade"
  platform: "in-process"
test_overrides:
  - rule_id: 920100
    test_ids: [4, 5]
    reason: 'server says 404'
    output:
      status: 404
  - rule_id: 920100
    test_ids: [8]
    stage_ids: [1]
    reason: 'only stage 1'
    output:
      log:
        expect_ids: [920100]
  - rule_id: 932200
    test_ids: [13]
    reason: 'wip'
  - rule_id: 934131
    reason: 'every test'
    output:
      log_contains: 'x'
"#;

    fn overrides() -> Overrides {
        Overrides::parse(Path::new("o.yaml"), TEXT).expect("parses")
    }

    #[test]
    fn parses_meta_and_entries() {
        let o = overrides();
        assert_eq!(o.meta.engine, "palisade");
        assert_eq!(o.test_overrides.len(), 4);
        assert_eq!(
            o.test_overrides[0]
                .output
                .as_ref()
                .map(|o| o.status.clone()),
            Some(vec![404])
        );
        assert!(o.test_overrides[2].output.is_none());
        let mapped = o.test_overrides[3]
            .output
            .as_ref()
            .and_then(|o| o.log.match_regex.clone());
        assert_eq!(mapped.as_deref(), Some("x"));
    }

    #[test]
    fn verdicts() {
        let o = overrides();
        assert_eq!(o.verdict(920100, 1), Verdict::None);
        assert!(matches!(o.verdict(920100, 5), Verdict::Replaced(v) if v.len() == 1));
        assert_eq!(o.verdict(932200, 13), Verdict::Ignored("wip"));
        assert_eq!(o.verdict(932200, 12), Verdict::None);
        assert!(matches!(o.verdict(934131, 77), Verdict::Replaced(_)));
        let stage_only = &o.test_overrides[1];
        assert!(!stage_only.applies_to_stage(0));
        assert!(stage_only.applies_to_stage(1));
        assert_eq!(o.count_touched([(920100, 4), (920100, 9), (932200, 13)]), 2);
    }

    #[test]
    fn coraza_style_file_parses() {
        let text = "version: v0\nmeta: {engine: coraza, platform: go, annotations: [{purpose: x}]}\ntest_overrides:\n  - rule_id: 1\n    test_ids: [2]\n    reason: r\n    retry_once: true\n    output: {status: 200, log: {no_expect_ids: [1]}}\n";
        let o = Overrides::parse(Path::new("c.yaml"), text).expect("parses");
        assert_eq!(
            o.test_overrides[0]
                .output
                .as_ref()
                .map(|x| x.log.no_expect_ids.clone()),
            Some(vec![1])
        );
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(Overrides::parse(Path::new("x"), "test_overrides: 5").is_err());
        assert!(Overrides::load(Path::new("/nonexistent/palisade.yaml")).is_err());
    }

    #[test]
    fn project_overrides_file_is_valid_and_small() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../integration/crs/palisade-overrides.yaml");
        let o = Overrides::load(&path).expect("our overrides load");
        let touched: usize = o
            .test_overrides
            .iter()
            .map(|t| t.test_ids.len().max(1))
            .sum();
        assert!(
            touched <= 10,
            "at most 10 documented exclusions, found {touched}"
        );
        assert!(o.test_overrides.iter().all(|t| !t.reason.trim().is_empty()));
    }
}
