//! `palisade`: evaluate requests against a ruleset, lint it, or run a go-ftw suite.
//!
//! Exit status: 0 on success, 1 when a lint finds errors or a suite has
//! failures, 64 on bad configuration (arguments, unreadable paths, a ruleset
//! that does not load for `eval`/`ftw`).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use palisade_cli::ftw::overrides::Overrides;
use palisade_cli::ftw::{self, RunOptions, SuiteError};
use palisade_cli::lint::{self, LintError};
use palisade_cli::ruleset::{expand_paths, load_files};
use regex::Regex;

/// mimalloc, as in `palisade-enforcer`: `palisade eval` then measures the
/// engine with the allocator it runs with in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for bad configuration (EX_USAGE).
const EX_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "palisade", version, about = "Palisade WAF command-line tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate JSON-lines requests from stdin; write one JSON verdict per line.
    Eval(EvalArgs),
    /// Parse and compile a ruleset; report every error with file and line.
    Lint(LintArgs),
    /// Run a go-ftw regression suite (e.g. the OWASP CRS tests) in-process.
    Ftw(FtwArgs),
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Ruleset PATH (file or flat directory); repeat to load several in order.
    #[arg(long, required = true, env = "PALISADE_RULESET")]
    ruleset: Vec<PathBuf>,
    /// Do not remember, across requests, which values the rules with pure
    /// operators did not match (the verdict cache; results are the same
    /// either way, only the time differs).
    #[arg(long)]
    no_verdict_cache: bool,
}

#[derive(Debug, Args)]
struct LintArgs {
    /// Ruleset PATH (file or flat directory); repeat to load several in order.
    #[arg(long, required = true)]
    ruleset: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct FtwArgs {
    /// Ruleset PATH (file or flat directory); repeat to load several in order.
    #[arg(long)]
    ruleset: Vec<PathBuf>,
    /// Directory of go-ftw YAML test files (searched recursively).
    #[arg(long)]
    tests: Option<PathBuf>,
    /// OWASP CRS checkout: loads modsecdefault.conf, crs-setup.conf.example,
    /// crs-test-setup.conf and rules/*.conf, and runs tests/regression/tests.
    #[arg(long, env = "PALISADE_CRS_DIR")]
    crs: Option<PathBuf>,
    /// Platform overrides file (go-ftw overrides format).
    #[arg(long)]
    overrides: Option<PathBuf>,
    /// Run only cases whose `<rule>-<test>` id matches this regex.
    #[arg(long)]
    include: Option<String>,
    /// Skip cases whose `<rule>-<test>` id matches this regex.
    #[arg(long)]
    exclude: Option<String>,
    /// Print every case, and the log lines of failed ones.
    #[arg(long, short)]
    verbose: bool,
    /// Also write one JSON line per case that ran (id, passed, and per stage
    /// the request, status, logged rule ids and problems) to this file.
    #[arg(long)]
    results: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Eval(args) => eval(args),
        Command::Lint(args) => lint_cmd(args),
        Command::Ftw(args) => ftw_cmd(args),
    }
}

fn config_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("palisade: {message}");
    ExitCode::from(EX_CONFIG)
}

fn eval(args: EvalArgs) -> ExitCode {
    let files = match expand_paths(&args.ruleset) {
        Ok(files) => files,
        Err(e) => return config_error(e),
    };
    let ruleset = match load_files(&files) {
        Ok(r) => r,
        Err(e) => {
            let _ = lint::write_errors(&mut io::stderr(), &e);
            return config_error("ruleset does not load");
        }
    };
    if args.no_verdict_cache {
        ruleset.set_verdict_cache(false);
    }
    let stdin = io::stdin().lock();
    let stdout = io::BufWriter::new(io::stdout().lock());
    match palisade_cli::eval::run(&ruleset, stdin, stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade: i/o error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn lint_cmd(args: LintArgs) -> ExitCode {
    match lint::lint(&args.ruleset) {
        Ok(report) => {
            println!("{}", lint::summary_line(&report));
            ExitCode::SUCCESS
        }
        Err(LintError::Load(e)) => {
            let _ = lint::write_errors(&mut io::stdout(), &e);
            ExitCode::FAILURE
        }
        Err(LintError::Path(e)) => config_error(e),
    }
}

fn regex_arg(flag: &str, value: Option<String>) -> Result<Option<Regex>, String> {
    value
        .map(|v| Regex::new(&v).map_err(|e| format!("invalid --{flag} regex: {e}")))
        .transpose()
}

fn write_results(path: &std::path::Path, records: &[ftw::CaseRecord]) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut file, record)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

fn ftw_cmd(args: FtwArgs) -> ExitCode {
    let include = match regex_arg("include", args.include) {
        Ok(r) => r,
        Err(e) => return config_error(e),
    };
    let exclude = match regex_arg("exclude", args.exclude) {
        Ok(r) => r,
        Err(e) => return config_error(e),
    };
    let overrides = match args.overrides.as_deref().map(Overrides::load).transpose() {
        Ok(o) => o,
        Err(e) => return config_error(e),
    };
    let tests_dir = match (&args.tests, &args.crs) {
        (Some(dir), _) => dir.clone(),
        (None, Some(crs)) => ftw::crs_tests_dir(crs),
        (None, None) => return config_error("ftw needs --tests DIR or --crs DIR"),
    };
    let ruleset = match (args.ruleset.is_empty(), &args.crs) {
        (false, _) => expand_paths(&args.ruleset)
            .map_err(SuiteError::from)
            .and_then(|files| load_files(&files).map_err(SuiteError::from)),
        (true, Some(crs)) => ftw::load_crs_ruleset(crs, None),
        (true, None) => return config_error("ftw needs --ruleset PATH or --crs DIR"),
    };
    let ruleset = match ruleset {
        Ok(r) => r,
        Err(SuiteError::Load(e)) => {
            let _ = lint::write_errors(&mut io::stderr(), &e);
            return config_error("ruleset does not load");
        }
        Err(e) => return config_error(e),
    };
    let tests = match ftw::load_tests(&tests_dir) {
        Ok(t) => t,
        Err(e) => return config_error(e),
    };
    let opts = RunOptions {
        include,
        exclude,
        overrides,
        verbose: args.verbose,
        record: args.results.is_some(),
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let summary = match ftw::run_suite(&ruleset, &tests, &opts, &mut out) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade: i/o error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    if let Some(path) = &args.results {
        if let Err(e) = write_results(path, &summary.records) {
            eprintln!("palisade: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
