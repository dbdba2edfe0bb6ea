//! Ruleset PATH arguments: expanding them into files in load order, the OWASP
//! CRS load order used by `palisade ftw --crs`, and loading the result.

use std::fs;
use std::path::{Path, PathBuf};

use palisade_waf::seclang::{ruleset_files, FsSource};
use palisade_waf::{LoadError, Ruleset};

/// The project's default engine configuration (`policies/modsecdefault.conf`),
/// embedded so that `palisade ftw --crs` works from any directory.
pub const MODSECDEFAULT_CONF: &str = include_str!("../../../policies/modsecdefault.conf");

/// File name the embedded default configuration is written under.
pub const MODSECDEFAULT_NAME: &str = "modsecdefault.conf";

/// A problem with the ruleset arguments themselves (not with their contents).
#[derive(Debug, thiserror::Error)]
pub enum RulesetPathError {
    /// A PATH could not be read or listed.
    #[error("cannot read ruleset path {path}: {source}")]
    Io {
        /// The PATH.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PATH is not valid UTF-8 (the engine names files by strings).
    #[error("ruleset path {0} is not valid utf-8")]
    NotUtf8(PathBuf),
    /// No `*.conf` file was found.
    #[error("no ruleset files found in {0}")]
    Empty(String),
}

/// Expands ruleset PATHs (each a file or a flat directory) into files, in
/// load order: the PATHs in the order given, each directory expanded as
/// [`Ruleset::load`] does (`modsecdefault.conf`, `crs-setup.conf`, then the
/// other `*.conf` sorted by name).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RulesetPathError> {
    let mut files = Vec::new();
    for path in paths {
        let name = path
            .to_str()
            .ok_or_else(|| RulesetPathError::NotUtf8(path.clone()))?;
        fs::metadata(path).map_err(|source| RulesetPathError::Io {
            path: path.clone(),
            source,
        })?;
        let expanded = ruleset_files(&FsSource, name).map_err(|source| RulesetPathError::Io {
            path: path.clone(),
            source,
        })?;
        files.extend(expanded.into_iter().map(PathBuf::from));
    }
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(RulesetPathError::Empty(shown.join(", ")));
    }
    Ok(files)
}

/// The load order the CRS regression suite needs: `modsecdefault`, then
/// `CRS/crs-setup.conf.example`, `CRS/crs-test-setup.conf` and
/// `CRS/rules/*.conf` sorted by name.
pub fn crs_load_order(
    crs_dir: &Path,
    modsecdefault: &Path,
) -> Result<Vec<PathBuf>, RulesetPathError> {
    let mut files = vec![
        modsecdefault.to_path_buf(),
        crs_dir.join("crs-setup.conf.example"),
        crs_dir.join("crs-test-setup.conf"),
    ];
    for file in &files[1..] {
        fs::metadata(file).map_err(|source| RulesetPathError::Io {
            path: file.clone(),
            source,
        })?;
    }
    let rules_dir = crs_dir.join("rules");
    let entries = fs::read_dir(&rules_dir).map_err(|source| RulesetPathError::Io {
        path: rules_dir.clone(),
        source,
    })?;
    let mut rules = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RulesetPathError::Io {
            path: rules_dir.clone(),
            source,
        })?;
        let path = entry.path();
        let is_conf = path.extension().is_some_and(|e| e == "conf");
        if is_conf && path.is_file() {
            rules.push(path);
        }
    }
    if rules.is_empty() {
        return Err(RulesetPathError::Empty(rules_dir.display().to_string()));
    }
    rules.sort();
    files.extend(rules);
    Ok(files)
}

/// Loads files, in order, as one ruleset.
pub fn load_files(files: &[PathBuf]) -> Result<Ruleset, LoadError> {
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    Ruleset::load_paths(&refs)
}

/// The embedded [`MODSECDEFAULT_CONF`] written to a private temporary
/// directory, for loaders that read from the filesystem. The file is removed
/// when this value is dropped.
#[derive(Debug)]
pub struct EmbeddedDefault {
    dir: tempfile::TempDir,
}

impl EmbeddedDefault {
    /// Writes the embedded configuration out.
    pub fn write() -> std::io::Result<EmbeddedDefault> {
        let dir = tempfile::Builder::new().prefix("palisade-").tempdir()?;
        fs::write(dir.path().join(MODSECDEFAULT_NAME), MODSECDEFAULT_CONF)?;
        Ok(EmbeddedDefault { dir })
    }

    /// Path of the written file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(MODSECDEFAULT_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_sets_the_basics() {
        for directive in [
            "SecRuleEngine On",
            "SecRequestBodyAccess On",
            "SecResponseBodyAccess On",
            "id:200000",
            "id:200001",
            "id:200002",
            "id:200003",
        ] {
            assert!(
                MODSECDEFAULT_CONF.contains(directive),
                "missing {directive}"
            );
        }
    }

    #[test]
    fn embedded_default_round_trips_to_disk() {
        let written = EmbeddedDefault::write().expect("write");
        let text = fs::read_to_string(written.path()).expect("read back");
        assert_eq!(text, MODSECDEFAULT_CONF);
    }

    #[test]
    fn crs_order_puts_setup_first_and_sorts_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("rules")).expect("mkdir");
        for name in ["crs-setup.conf.example", "crs-test-setup.conf"] {
            fs::write(dir.path().join(name), "# x\n").expect("write");
        }
        for name in [
            "REQUEST-942-B.conf",
            "REQUEST-901-A.conf",
            "x.data",
            "y.conf.example",
        ] {
            fs::write(dir.path().join("rules").join(name), "# x\n").expect("write");
        }
        let order = crs_load_order(dir.path(), Path::new("/m/modsecdefault.conf")).expect("order");
        let names: Vec<String> = order
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "modsecdefault.conf",
                "crs-setup.conf.example",
                "crs-test-setup.conf",
                "REQUEST-901-A.conf",
                "REQUEST-942-B.conf"
            ]
        );
    }

    #[test]
    fn crs_order_reports_missing_setup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = crs_load_order(dir.path(), Path::new("m.conf")).expect_err("must fail");
        assert!(err.to_string().contains("crs-setup.conf.example"), "{err}");
    }

    #[test]
    fn expand_paths_orders_directories_like_the_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "b.conf",
            "crs-setup.conf",
            "modsecdefault.conf",
            "a.conf",
            "z.data",
        ] {
            fs::write(dir.path().join(name), "# x\n").expect("write");
        }
        let extra = dir.path().join("a.conf");
        let files = expand_paths(&[dir.path().to_path_buf(), extra]).expect("expand");
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "modsecdefault.conf",
                "crs-setup.conf",
                "a.conf",
                "b.conf",
                "a.conf"
            ]
        );
    }

    #[test]
    fn expand_paths_rejects_missing_path() {
        let err = expand_paths(&[PathBuf::from("/nonexistent/palisade/x.conf")]).expect_err("err");
        assert!(matches!(err, RulesetPathError::Io { .. }));
    }
}
