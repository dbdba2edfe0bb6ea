//! An in-process go-ftw runner: loads a go-ftw regression suite (the format
//! of the OWASP CRS `tests/regression/tests`), sends every stage through the
//! engine without a network, and reports like go-ftw, ending with
//! `N passed, N failed, N skipped`.
//!
//! How each part of go-ftw's world is modelled lives in the submodules:
//! [`schema`] (the YAML), [`build`] (the bytes go-ftw sends), [`server`] (the
//! web server's own checks), [`backend`] (the albedo backend), [`log`] (the
//! error log go-ftw reads), [`check`](mod@check) (the assertions) and [`overrides`]
//! (platform overrides). `docs/crs-regression.md` explains the choices.

pub mod backend;
pub mod build;
pub mod check;
pub mod log;
pub mod overrides;
pub mod schema;
pub mod server;
pub mod stage;
pub mod template;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use palisade_waf::{LoadError, Ruleset};
use regex::Regex;

use self::check::{check, list};
use self::overrides::{Overrides, OverridesError, Verdict};
use self::schema::{Output, SchemaError, TestCase, TestFile};
use self::stage::run_stage;
use crate::ruleset::{crs_load_order, load_files, EmbeddedDefault, RulesetPathError};

/// Options of one run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only cases whose `<rule>-<test>` id matches (inclusion beats exclusion).
    pub include: Option<Regex>,
    /// Skip cases whose id matches.
    pub exclude: Option<Regex>,
    /// Platform overrides.
    pub overrides: Option<Overrides>,
    /// Print every case, and the log of failed ones.
    pub verbose: bool,
    /// Keep a [`CaseRecord`] of every case that ran in [`Summary::records`].
    pub record: bool,
}

/// What one stage did, for machine-readable reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StageRecord {
    /// The request as the WAF saw it, or why it did not.
    pub request: String,
    /// Response status, or `None` for an HTTP-level error.
    pub status: Option<u16>,
    /// Rule ids in the log.
    pub logged_ids: Vec<u64>,
    /// Problems found (empty when the stage passed).
    pub problems: Vec<String>,
}

/// What one case did, for machine-readable reports (`palisade ftw --results`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaseRecord {
    /// `<rule>-<test>`.
    pub id: String,
    /// Whether it passed.
    pub passed: bool,
    /// The stages that ran (a failing stage ends the case).
    pub stages: Vec<StageRecord>,
}

/// A failed test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFailure {
    /// `<rule>-<test>`.
    pub id: String,
    /// The rule the test targets.
    pub rule_id: u64,
    /// The test number.
    pub test_id: u64,
    /// The test's description.
    pub desc: String,
    /// Test file.
    pub file: PathBuf,
    /// Failing stage, 0-based.
    pub stage: usize,
    /// Number of stages.
    pub stages: usize,
    /// What went wrong.
    pub problems: Vec<String>,
    /// Ids the stage expected.
    pub expected_ids: Vec<u64>,
    /// Ids the stage must not log.
    pub not_expected_ids: Vec<u64>,
    /// Ids the log held.
    pub logged_ids: Vec<u64>,
    /// The request as the WAF saw it, or why it did not.
    pub request: String,
    /// The log lines.
    pub log_lines: Vec<String>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases not run: filtered out by include/exclude, or ignored by an override.
    pub skipped: usize,
    /// Of the skipped, those an override ignored.
    pub ignored: usize,
    /// Stages run.
    pub stages: usize,
    /// Stages the server model answered (or broke off) before the WAF.
    pub stages_stopped_by_server: usize,
    /// Wall time of the cases that ran.
    pub elapsed: Duration,
    /// The failures, in run order.
    pub failures: Vec<CaseFailure>,
    /// Every case that ran, when [`RunOptions::record`] is set.
    pub records: Vec<CaseRecord>,
}

impl Summary {
    /// `N passed, N failed, N skipped`.
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// Cases that ran.
    pub fn ran(&self) -> usize {
        self.passed + self.failed
    }
}

/// Anything that stops a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A test file is unreadable or malformed.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The overrides file is unreadable or malformed.
    #[error(transparent)]
    Overrides(#[from] OverridesError),
    /// A ruleset path is wrong.
    #[error(transparent)]
    RulesetPath(#[from] RulesetPathError),
    /// The ruleset does not compile.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The embedded default configuration could not be written out.
    #[error("cannot write the default configuration: {0}")]
    Embedded(#[source] io::Error),
    /// No test files were found.
    #[error("no test files in {0}")]
    NoTests(PathBuf),
}

/// Where the CRS keeps its regression tests.
pub fn crs_tests_dir(crs_dir: &Path) -> PathBuf {
    crs_dir.join("tests").join("regression").join("tests")
}

/// Loads the ruleset the CRS suite runs against: the embedded
/// `modsecdefault.conf` (or `modsecdefault` when given), then the CRS files
/// in [`crs_load_order`].
pub fn load_crs_ruleset(
    crs_dir: &Path,
    modsecdefault: Option<&Path>,
) -> Result<Ruleset, SuiteError> {
    let embedded;
    let default_path = match modsecdefault {
        Some(path) => path.to_path_buf(),
        None => {
            embedded = EmbeddedDefault::write().map_err(SuiteError::Embedded)?;
            embedded.path()
        }
    };
    let files = crs_load_order(crs_dir, &default_path)?;
    Ok(load_files(&files)?)
}

/// Loads every test file under `dir`, failing when there are none.
pub fn load_tests(dir: &Path) -> Result<Vec<TestFile>, SuiteError> {
    let files = schema::load_test_dir(dir)?;
    if files.is_empty() {
        return Err(SuiteError::NoTests(dir.to_path_buf()));
    }
    Ok(files)
}

/// go-ftw's rule for skipping a case by id.
fn filtered_out(opts: &RunOptions, id: &str) -> bool {
    if let Some(include) = &opts.include {
        if include.is_match(id) {
            return false;
        }
    }
    if let Some(exclude) = &opts.exclude {
        if exclude.is_match(id) {
            return true;
        }
    }
    opts.include
        .as_ref()
        .is_some_and(|include| !include.is_match(id))
}

/// The expected output of each stage of `case` after overrides.
fn effective_outputs(case: &TestCase, verdict: &Verdict<'_>) -> Vec<Output> {
    case.stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let mut output = stage.output.clone();
            if let Verdict::Replaced(list) = verdict {
                for o in list.iter().filter(|o| o.applies_to_stage(index)) {
                    if let Some(replacement) = &o.output {
                        output = replacement.clone();
                    }
                }
            }
            output
        })
        .collect()
}

/// Runs `files` against `ruleset`, writing progress and failures to `out`;
/// the last line written is [`Summary::line`].
pub fn run_suite(
    ruleset: &Ruleset,
    files: &[TestFile],
    opts: &RunOptions,
    out: &mut dyn Write,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut port_counter: u32 = 0;
    for file in files {
        for case in &file.tests {
            let id = case.id_string();
            if filtered_out(opts, &id) {
                summary.skipped += 1;
                continue;
            }
            let verdict = opts
                .overrides
                .as_ref()
                .map_or(Verdict::None, |o| o.verdict(case.rule_id, case.test_id));
            if let Verdict::Ignored(reason) = verdict {
                summary.skipped += 1;
                summary.ignored += 1;
                writeln!(out, "IGNORED {id}: {}", one_line(reason))?;
                continue;
            }
            let outputs = effective_outputs(case, &verdict);
            let mut failure = None;
            let mut records = Vec::new();
            for (index, (stage, expected)) in case.stages.iter().zip(&outputs).enumerate() {
                port_counter = port_counter.wrapping_add(1);
                let client_port = 40000 + (port_counter % 20000) as u16;
                let unique_id = format!("{id}-{}", index + 1);
                let run = run_stage(ruleset, &stage.input, &unique_id, client_port);
                summary.stages += 1;
                if !run.reached_waf && run.harness_error.is_none() {
                    summary.stages_stopped_by_server += 1;
                }
                let mut problems: Vec<String> = run.harness_error.iter().cloned().collect();
                if run.harness_error.is_none() {
                    problems.extend(check(expected, &run.result));
                }
                if opts.record {
                    records.push(StageRecord {
                        request: run.summary.clone(),
                        status: run.result.response.as_ref().ok().map(|(status, _)| *status),
                        logged_ids: run.result.logged_ids.clone(),
                        problems: problems.clone(),
                    });
                }
                if !problems.is_empty() {
                    failure = Some(CaseFailure {
                        id: id.clone(),
                        rule_id: case.rule_id,
                        test_id: case.test_id,
                        desc: case.desc.clone(),
                        file: file.path.clone(),
                        stage: index,
                        stages: case.stages.len(),
                        problems,
                        expected_ids: expected.log.expect_ids.clone(),
                        not_expected_ids: expected.log.no_expect_ids.clone(),
                        logged_ids: run.result.logged_ids.clone(),
                        request: run.summary.clone(),
                        log_lines: run.result.log_lines.clone(),
                    });
                    break;
                }
            }
            if opts.record {
                summary.records.push(CaseRecord {
                    id: id.clone(),
                    passed: failure.is_none(),
                    stages: records,
                });
            }
            match failure {
                None => {
                    summary.passed += 1;
                    if opts.verbose {
                        writeln!(out, "PASS {id}")?;
                    }
                }
                Some(f) => {
                    summary.failed += 1;
                    write_failure(out, &f, opts.verbose)?;
                    summary.failures.push(f);
                }
            }
        }
    }
    summary.elapsed = started.elapsed();
    if !summary.failures.is_empty() {
        let ids: Vec<&str> = summary.failures.iter().map(|f| f.id.as_str()).collect();
        writeln!(out, "failed cases: {}", ids.join(" "))?;
    }
    let per_case = if summary.ran() == 0 {
        0.0
    } else {
        summary.elapsed.as_secs_f64() * 1e3 / summary.ran() as f64
    };
    writeln!(
        out,
        "ran {} cases ({} stages) in {:.2} s, {:.3} ms per case on average",
        summary.ran(),
        summary.stages,
        summary.elapsed.as_secs_f64(),
        per_case
    )?;
    if summary.stages_stopped_by_server > 0 {
        writeln!(
            out,
            "{} stages were answered by the server model without reaching the WAF",
            summary.stages_stopped_by_server
        )?;
    }
    if summary.ignored > 0 {
        writeln!(
            out,
            "{} of the skipped cases were ignored by overrides",
            summary.ignored
        )?;
    }
    writeln!(out, "{}", summary.line())?;
    Ok(summary)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes one failure report.
pub fn write_failure(out: &mut dyn Write, f: &CaseFailure, with_log: bool) -> io::Result<()> {
    writeln!(
        out,
        "FAIL {} (rule {}, test {}, stage {}/{}) {}",
        f.id,
        f.rule_id,
        f.test_id,
        f.stage + 1,
        f.stages,
        f.file.display()
    )?;
    if !f.desc.trim().is_empty() {
        writeln!(out, "     desc: {}", one_line(&f.desc))?;
    }
    writeln!(out, "     request: {}", f.request)?;
    writeln!(
        out,
        "     expected ids {} not expected {}; logged ids {}",
        list(&f.expected_ids),
        list(&f.not_expected_ids),
        list(&f.logged_ids)
    )?;
    for problem in &f.problems {
        writeln!(out, "     - {problem}")?;
    }
    if with_log {
        for line in &f.log_lines {
            writeln!(out, "     | {line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::overrides::TestOverride;
    use super::schema::{LogExpect, Stage};
    use super::*;

    fn case(rule_id: u64, test_id: u64, stages: usize) -> TestCase {
        let stage = Stage {
            output: Output {
                status: vec![200],
                ..Output::default()
            },
            ..Stage::default()
        };
        TestCase {
            rule_id,
            test_id,
            desc: String::new(),
            stages: vec![stage; stages],
        }
    }

    #[test]
    fn include_exclude_follow_go_ftw() {
        let re = |s: &str| Some(Regex::new(s).expect("regex"));
        let cases = [
            (None, None, "942100-1", false),
            (re("^942"), None, "942100-1", false),
            (re("^942"), None, "941100-1", true),
            (None, re("-1$"), "942100-1", true),
            (None, re("-1$"), "942100-2", false),
            (re("942100-1"), re("942100"), "942100-1", false),
            (re("942100-1"), re("942100"), "942100-2", true),
        ];
        for (include, exclude, id, skipped) in cases {
            let opts = RunOptions {
                include,
                exclude,
                ..RunOptions::default()
            };
            assert_eq!(filtered_out(&opts, id), skipped, "{id}");
        }
    }

    #[test]
    fn overrides_replace_chosen_stages() {
        let replacement = Output {
            log: LogExpect {
                expect_ids: vec![9],
                ..LogExpect::default()
            },
            ..Output::default()
        };
        let all = TestOverride {
            rule_id: 1,
            output: Some(replacement.clone()),
            ..TestOverride::default()
        };
        let second = TestOverride {
            stage_ids: vec![1],
            ..all.clone()
        };
        let c = case(1, 1, 2);
        let outputs = effective_outputs(&c, &Verdict::Replaced(vec![&all]));
        assert_eq!(outputs, vec![replacement.clone(), replacement.clone()]);
        let outputs = effective_outputs(&c, &Verdict::Replaced(vec![&second]));
        assert_eq!(outputs[0].status, vec![200]);
        assert_eq!(outputs[1], replacement);
        assert_eq!(effective_outputs(&c, &Verdict::None)[0].status, vec![200]);
    }

    #[test]
    fn summary_line() {
        let s = Summary {
            passed: 3,
            failed: 1,
            skipped: 2,
            ..Summary::default()
        };
        assert_eq!(s.line(), "3 passed, 1 failed, 2 skipped");
        assert_eq!(s.ran(), 4);
    }

    #[test]
    fn failure_report() {
        let f = CaseFailure {
            id: "1-2".into(),
            rule_id: 1,
            test_id: 2,
            desc: "a\n  b".into(),
            file: PathBuf::from("t/1.yaml"),
            stage: 0,
            stages: 1,
            problems: vec!["missing expected ids [1]".into()],
            expected_ids: vec![1],
            not_expected_ids: vec![],
            logged_ids: vec![3],
            request: "GET / HTTP/1.1".into(),
            log_lines: vec!["[id \"3\"]".into()],
        };
        let mut out = Vec::new();
        write_failure(&mut out, &f, true).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "FAIL 1-2 (rule 1, test 2, stage 1/1) t/1.yaml\n     desc: a b\n     request: GET / HTTP/1.1\n     expected ids [1] not expected []; logged ids [3]\n     - missing expected ids [1]\n     | [id \"3\"]\n"
        );
    }
}
