//! Rulesets from the filesystem: a flat ruleset directory (`policies/rulesets/<name>/`)
//! and the OWASP CRS release directory named by `PALISADE_CRS_DIR`, both turned
//! into [`RulesetFiles`] as a ConfigMap would hold them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::RulesetFiles;

/// Name of the ruleset made from `PALISADE_CRS_DIR`.
pub const CRS_RULESET: &str = "crs";
/// Name of Palisade's own small ruleset (policies/rulesets/baseline).
pub const BASELINE_RULESET: &str = "baseline";
/// The engine defaults file every ruleset starts with.
pub const MODSECDEFAULT: &str = "modsecdefault.conf";
/// The CRS setup file, as a ruleset holds it.
pub const CRS_SETUP: &str = "crs-setup.conf";

/// Errors reading rulesets from disk.
#[derive(Debug, thiserror::Error)]
pub enum RulesetDirError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The CRS directory lacks `crs-setup.conf.example` or `rules/`.
    #[error("{0} is not a CRS release directory (needs crs-setup.conf.example and rules/)")]
    NotCrs(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RulesetDirError + '_ {
    move |source| RulesetDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True for files a flat ruleset keeps: `*.conf` and `*.data` (and any other
/// non-hidden regular file a rule may read, except docs).
fn keeps(name: &str) -> bool {
    !name.starts_with('.')
        && !name.ends_with(".md")
        && !name.ends_with(".example")
        && !name.eq_ignore_ascii_case("README")
        && !name.eq_ignore_ascii_case("LICENSE")
}

/// Reads the regular files of one directory (not recursive).
fn read_flat(dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<(), RulesetDirError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if keeps(name) {
                entries.push((name.to_string(), path));
            }
        }
    }
    for (name, path) in entries {
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        files.insert(name, bytes);
    }
    Ok(())
}

/// Reads a flat ruleset directory; when it has no `modsecdefault.conf`, the
/// given one (the policies directory's) is added.
pub fn load_dir(
    name: &str,
    dir: &Path,
    modsecdefault: Option<&[u8]>,
) -> Result<RulesetFiles, RulesetDirError> {
    let mut files = BTreeMap::new();
    read_flat(dir, &mut files)?;
    if let (false, Some(default)) = (files.contains_key(MODSECDEFAULT), modsecdefault) {
        files.insert(MODSECDEFAULT.to_string(), default.to_vec());
    }
    Ok(RulesetFiles {
        name: name.to_string(),
        files,
    })
}

/// Builds the `crs` ruleset from a CRS release directory: `modsecdefault.conf`
/// (given), `crs-setup.conf` (from `crs-setup.conf.example`), and the
/// `rules/*.conf` and `rules/*.data` files, flattened.
pub fn load_crs(dir: &Path, modsecdefault: Option<&[u8]>) -> Result<RulesetFiles, RulesetDirError> {
    let setup = dir.join("crs-setup.conf.example");
    let rules = dir.join("rules");
    if !setup.is_file() || !rules.is_dir() {
        return Err(RulesetDirError::NotCrs(dir.to_path_buf()));
    }
    let mut files = BTreeMap::new();
    read_flat(&rules, &mut files)?;
    files.insert(
        CRS_SETUP.to_string(),
        std::fs::read(&setup).map_err(io_err(&setup))?,
    );
    if let Some(default) = modsecdefault {
        files.insert(MODSECDEFAULT.to_string(), default.to_vec());
    }
    Ok(RulesetFiles {
        name: CRS_RULESET.to_string(),
        files,
    })
}

/// The cheap identity of a tree of files (paths, sizes, modification times),
/// compared between polls to notice changes.
pub fn tree_signature(root: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_dir_gets_default_and_skips_docs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "SecRule").unwrap();
        std::fs::write(dir.path().join("words.data"), "x").unwrap();
        std::fs::write(dir.path().join("README.md"), "doc").unwrap();
        let r = load_dir("r", dir.path(), Some(b"SecRuleEngine On")).unwrap();
        assert_eq!(
            r.files.keys().collect::<Vec<_>>(),
            ["a.conf", MODSECDEFAULT, "words.data"]
        );
    }

    #[test]
    fn crs_dir_is_flattened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("crs-setup.conf.example"), "setup").unwrap();
        std::fs::write(
            dir.path().join("rules/REQUEST-901-INITIALIZATION.conf"),
            "r",
        )
        .unwrap();
        std::fs::write(
            dir.path()
                .join("rules/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf.example"),
            "e",
        )
        .unwrap();
        std::fs::write(dir.path().join("rules/unix-shell.data"), "d").unwrap();
        let r = load_crs(dir.path(), Some(b"m")).unwrap();
        assert_eq!(r.name, CRS_RULESET);
        assert_eq!(
            r.files.keys().collect::<Vec<_>>(),
            [
                "REQUEST-901-INITIALIZATION.conf",
                CRS_SETUP,
                MODSECDEFAULT,
                "unix-shell.data"
            ]
        );
        assert!(matches!(
            load_crs(&dir.path().join("rules"), None),
            Err(RulesetDirError::NotCrs(_))
        ));
    }
}
