//! Helpers shared by the end-to-end tests in `tests/tests/`.

use std::path::{Path, PathBuf};

/// The repository root (the folder holding `spin.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// A TOML file as JSON, for schema validation.
pub fn toml_file_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
    serde_json::to_value(value).expect("TOML converts to JSON")
}
