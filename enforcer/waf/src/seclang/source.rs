//! Where SecLang text and data files come from: the filesystem, or an
//! in-memory map of names to contents (a Kubernetes ConfigMap).

use std::io;

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

/// The files of a ruleset PATH, in load order: a single file is itself; a
/// flat directory yields `modsecdefault.conf` first, then `crs-setup.conf`,
/// then every other `*.conf` sorted by name.
pub fn ruleset_files(source: &dyn FileSource, path: &str) -> io::Result<Vec<String>> {
    let _ = (source, path);
    todo!("seclang::source::ruleset_files")
}
