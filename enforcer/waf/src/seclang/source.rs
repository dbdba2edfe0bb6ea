//! Where SecLang text and data files come from: the filesystem, or an
//! in-memory map of names to contents (a Kubernetes ConfigMap).
//!
//! Names are plain strings. [`FsSource`] treats them as filesystem paths;
//! [`MemorySource`] treats them as `/`-separated keys (ConfigMap keys are flat,
//! but nested keys such as `crs/rules.conf` work too, with `.` and `..`
//! resolved lexically).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Files the parser (for `Include`) and the compiler (for `@pmFromFile`,
/// `@ipMatchFromFile`) read.
pub trait FileSource: Send + Sync + std::fmt::Debug {
    /// Reads one file by the name `resolve` or `glob` returned.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Resolves `relative` against the directory of `base` (absolute names stay as they are).
    fn resolve(&self, base: &str, relative: &str) -> String;
    /// Expands a glob (already resolved) into sorted names; a pattern without
    /// glob characters yields itself.
    fn glob(&self, pattern: &str) -> io::Result<Vec<String>>;
    /// Lists the entries directly inside the directory `dir` (as names that
    /// [`read`](FileSource::read) accepts), or returns `None` when `dir` names
    /// a file rather than a directory. Used by [`ruleset_files`].
    ///
    /// The default treats every name as a file.
    fn list_dir(&self, dir: &str) -> io::Result<Option<Vec<String>>> {
        let _ = dir;
        Ok(None)
    }
}

/// Reads from the filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsSource;

/// Reads from an in-memory map (ConfigMap keys are flat names).
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    /// File name to contents.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl MemorySource {
    /// A source holding `files` (name, contents).
    pub fn new<N, C>(files: impl IntoIterator<Item = (N, C)>) -> Self
    where
        N: Into<String>,
        C: Into<Vec<u8>>,
    {
        Self {
            files: files
                .into_iter()
                .map(|(n, c)| (n.into(), c.into()))
                .collect(),
        }
    }

    /// Adds or replaces one file.
    pub fn insert(&mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) {
        self.files.insert(name.into(), contents.into());
    }
}

/// Whether `pattern` contains glob metacharacters.
fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Glob options shared by both sources: `*` neither crosses `/` nor matches
/// a leading `.` (as in a shell).
fn match_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

fn invalid_pattern(pattern: &str, err: glob::PatternError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid glob pattern `{pattern}`: {}", err.msg),
    )
}

impl FileSource for FsSource {
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(name)
    }

    fn resolve(&self, base: &str, relative: &str) -> String {
        let rel = Path::new(relative);
        let joined = if rel.is_absolute() {
            rel.to_path_buf()
        } else {
            Path::new(base).parent().unwrap_or(Path::new("")).join(rel)
        };
        // Drop `.` components and doubled separators (lexically only: `..`
        // is kept because symlinks make resolving it lexically wrong).
        let cleaned: PathBuf = joined
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        cleaned.to_string_lossy().into_owned()
    }

    fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
        if !has_glob_chars(pattern) {
            return Ok(vec![pattern.to_string()]);
        }
        let paths =
            glob::glob_with(pattern, match_options()).map_err(|e| invalid_pattern(pattern, e))?;
        let mut names = Vec::new();
        for entry in paths {
            let path = entry.map_err(io::Error::from)?;
            // Directories cannot be read as rule files; leave them out.
            if !path.is_dir() {
                names.push(path.to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn list_dir(&self, dir: &str) -> io::Result<Option<Vec<String>>> {
        if !std::fs::metadata(dir)?.is_dir() {
            return Ok(None);
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            // `metadata` follows symlinks: ConfigMap volumes link every key
            // into a hidden `..data` directory.
            if std::fs::metadata(&path)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                names.push(path.to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

/// Joins `/`-separated names lexically, resolving `.` and `..`.
fn join_lexically(dir: &str, relative: &str) -> String {
    let absolute = relative.starts_with('/') || (relative.is_empty() && dir.starts_with('/'));
    let mut parts: Vec<&str> = Vec::new();
    let full = if relative.starts_with('/') {
        relative.to_string()
    } else {
        format!("{dir}/{relative}")
    };
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

impl FileSource for MemorySource {
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.files.get(name).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no file named `{name}`"))
        })
    }

    fn resolve(&self, base: &str, relative: &str) -> String {
        let dir = base.rsplit_once('/').map_or("", |(dir, _)| dir);
        join_lexically(dir, relative)
    }

    fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
        if !has_glob_chars(pattern) {
            return Ok(vec![pattern.to_string()]);
        }
        let compiled = glob::Pattern::new(pattern).map_err(|e| invalid_pattern(pattern, e))?;
        let options = match_options();
        // BTreeMap keys are already sorted.
        Ok(self
            .files
            .keys()
            .filter(|k| compiled.matches_with(k, options))
            .cloned()
            .collect())
    }

    fn list_dir(&self, dir: &str) -> io::Result<Option<Vec<String>>> {
        let dir = dir.trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            return Ok(Some(self.files.keys().cloned().collect()));
        }
        if self.files.contains_key(dir) {
            return Ok(None);
        }
        let prefix = format!("{dir}/");
        let names: Vec<String> = self
            .files
            .keys()
            .filter(|k| {
                k.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .cloned()
            .collect();
        if names.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no file or directory named `{dir}`"),
            ));
        }
        Ok(Some(names))
    }
}

/// The file name part of `name` (after the last `/`).
fn base_name(name: &str) -> &str {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
}

/// The files of a ruleset PATH, in load order: a single file is itself; a
/// flat directory yields `modsecdefault.conf` first, then `crs-setup.conf`,
/// then every other `*.conf` sorted by name.
///
/// Only names ending in `.conf` count (`*.conf.example` and `*.data` files are
/// left out), as are hidden files. For a [`MemorySource`], the path `""` or
/// `"."` means the whole map and a key prefix `dir` the keys `dir/*`; for an
/// [`FsSource`], directory entries are returned as full paths.
pub fn ruleset_files(source: &dyn FileSource, path: &str) -> io::Result<Vec<String>> {
    let Some(entries) = source.list_dir(path)? else {
        return Ok(vec![path.to_string()]);
    };
    let mut files: Vec<(u8, String)> = entries
        .into_iter()
        .filter_map(|name| {
            let base = base_name(&name);
            if base.starts_with('.') || !base.ends_with(".conf") {
                return None;
            }
            let rank = match base {
                "modsecdefault.conf" => 0,
                "crs-setup.conf" => 1,
                _ => 2,
            };
            Some((rank, name))
        })
        .collect();
    files.sort_by(|a, b| (a.0, base_name(&a.1), &a.1).cmp(&(b.0, base_name(&b.1), &b.1)));
    Ok(files.into_iter().map(|(_, name)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(names: &[&str]) -> MemorySource {
        MemorySource::new(names.iter().map(|n| (*n, format!("# {n}\n"))))
    }

    #[test]
    fn memory_ruleset_order() {
        let src = memory(&[
            "REQUEST-942-APPLICATION-ATTACK-SQLI.conf",
            "crs-setup.conf",
            "REQUEST-901-INITIALIZATION.conf",
            "modsecdefault.conf",
            "crs-setup.conf.example",
            "sql-errors.data",
            "RESPONSE-950-DATA-LEAKAGES.conf",
            "notes.txt",
        ]);
        let expected = [
            "modsecdefault.conf",
            "crs-setup.conf",
            "REQUEST-901-INITIALIZATION.conf",
            "REQUEST-942-APPLICATION-ATTACK-SQLI.conf",
            "RESPONSE-950-DATA-LEAKAGES.conf",
        ];
        for dir in ["", ".", "./"] {
            assert_eq!(ruleset_files(&src, dir).unwrap(), expected, "dir {dir:?}");
        }
    }

    #[test]
    fn memory_ruleset_without_setup_files() {
        let src = memory(&["b.conf", "a.conf", "c.conf.example"]);
        assert_eq!(ruleset_files(&src, "").unwrap(), ["a.conf", "b.conf"]);
    }

    #[test]
    fn memory_ruleset_single_file_and_subdir() {
        let src = memory(&["x.conf", "crs/b.conf", "crs/a.conf", "crs/deep/c.conf"]);
        assert_eq!(ruleset_files(&src, "x.conf").unwrap(), ["x.conf"]);
        assert_eq!(
            ruleset_files(&src, "crs").unwrap(),
            ["crs/a.conf", "crs/b.conf"]
        );
        assert_eq!(
            ruleset_files(&src, "").unwrap(),
            ["crs/a.conf", "crs/b.conf", "crs/deep/c.conf", "x.conf"]
        );
        let err = ruleset_files(&src, "missing").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn memory_resolve() {
        let src = MemorySource::default();
        let cases = [
            ("main.conf", "rules.conf", "rules.conf"),
            ("main.conf", "./rules.conf", "rules.conf"),
            ("crs/main.conf", "rules/*.conf", "crs/rules/*.conf"),
            ("crs/main.conf", "../x.conf", "x.conf"),
            ("a/b/main.conf", "../../../x.conf", "../x.conf"),
            ("crs/main.conf", "/etc/x.conf", "/etc/x.conf"),
        ];
        for (base, rel, want) in cases {
            assert_eq!(src.resolve(base, rel), want, "resolve({base:?}, {rel:?})");
        }
    }

    #[test]
    fn memory_glob() {
        let src = memory(&["b.conf", "a.conf", "a.data", "sub/c.conf"]);
        assert_eq!(src.glob("*.conf").unwrap(), ["a.conf", "b.conf"]);
        assert_eq!(src.glob("sub/*.conf").unwrap(), ["sub/c.conf"]);
        assert_eq!(src.glob("none-*.conf").unwrap(), Vec::<String>::new());
        assert_eq!(src.glob("plain.conf").unwrap(), ["plain.conf"]);
        assert_eq!(
            src.glob("[").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(src.read("a.conf").unwrap(), b"# a.conf\n");
        assert_eq!(src.read("zzz").unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fs_ruleset_and_glob() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "REQUEST-911.conf",
            "crs-setup.conf",
            "modsecdefault.conf",
            "crs-setup.conf.example",
            "x.data",
            ".hidden.conf",
        ] {
            std::fs::write(root.join(name), "# x\n").unwrap();
        }
        std::fs::create_dir(root.join("sub.conf")).unwrap();
        let root_str = root.to_str().unwrap();
        let got = ruleset_files(&FsSource, root_str).unwrap();
        let want: Vec<String> = ["modsecdefault.conf", "crs-setup.conf", "REQUEST-911.conf"]
            .iter()
            .map(|n| root.join(n).to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, want);

        let single = root.join("crs-setup.conf").to_string_lossy().into_owned();
        assert_eq!(
            ruleset_files(&FsSource, &single).unwrap(),
            std::slice::from_ref(&single)
        );
        assert!(ruleset_files(&FsSource, &format!("{root_str}/missing")).is_err());

        let pattern = format!("{root_str}/*.conf");
        let globbed = FsSource.glob(&pattern).unwrap();
        assert_eq!(globbed.len(), 3, "{globbed:?}"); // not .hidden.conf, not the sub.conf dir
        assert_eq!(
            FsSource.resolve(&single, "./a/b.conf"),
            format!("{root_str}/a/b.conf")
        );
        assert_eq!(FsSource.resolve(&single, "/etc/x.conf"), "/etc/x.conf");
        assert_eq!(FsSource.resolve("main.conf", "x.conf"), "x.conf");
    }
}
