//! Locating external tools the tests run (Helm, Envoy): an environment variable
//! wins, then `<repo>/.tools/bin`, where `scripts/setup` installs them.

use std::path::{Path, PathBuf};

/// Root of the repository (the workspace directory holding `integration/`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// Where a tool was looked for when it was not found.
#[derive(Debug, thiserror::Error)]
#[error(
    "{tool} not found (looked at {looked}); run scripts/setup, or set {env} to a {tool} binary"
)]
pub struct ToolNotFound {
    /// The tool's name.
    pub tool: String,
    /// The environment variable that overrides the location.
    pub env: String,
    /// The places looked at.
    pub looked: String,
}

/// Finds `tool`: the path in environment variable `env` when set, else
/// `<repo>/.tools/bin/<tool>`.
pub fn find_tool(tool: &str, env: &str) -> Result<PathBuf, ToolNotFound> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("{env}={}", p.display()));
    }
    let default = repo_root().join(".tools").join("bin").join(tool);
    if default.is_file() {
        return Ok(default);
    }
    looked.push(default.display().to_string());
    Err(ToolNotFound {
        tool: tool.to_owned(),
        env: env.to_owned(),
        looked: looked.join(", "),
    })
}

/// The Helm binary: `PALISADE_HELM`, else `<repo>/.tools/bin/helm`.
pub fn helm() -> Result<PathBuf, ToolNotFound> {
    find_tool("helm", "PALISADE_HELM")
}

/// The Envoy binary: `PALISADE_ENVOY`, else `<repo>/.tools/bin/envoy`.
pub fn envoy() -> Result<PathBuf, ToolNotFound> {
    find_tool("envoy", "PALISADE_ENVOY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("integration").is_dir());
    }

    #[test]
    fn missing_tool_names_the_variable() {
        let err = find_tool("no-such-tool-palisade", "PALISADE_NO_SUCH_TOOL").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("PALISADE_NO_SUCH_TOOL"), "{msg}");
        assert!(msg.contains("scripts/setup"), "{msg}");
    }
}
