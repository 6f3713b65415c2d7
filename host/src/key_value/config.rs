//! The key-value capability's runtime-config section, `[key_value_store.<label>]`:
//! `type = "spin", path = "..."`, a SQLite file, its relative path resolved against
//! the runtime config file's directory (as Spin resolves it). Other types are a
//! start-up error rather than a silent fallback to a local file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use serde::Deserialize;

use crate::runtime_config::file_path;

/// Where Spin keeps the `default` key-value store: `.spin/sqlite_key_value.db` under
/// the manifest's directory.
pub fn default_store_path(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("sqlite_key_value.db")
}

/// One `[key_value_store.<label>]` table as written.
#[derive(Deserialize)]
pub(crate) struct RawKeyValueStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
}

/// Resolve every `[key_value_store.<label>]` section to its file, relative paths
/// against `config_dir`. Errors name the section.
pub(crate) fn parse_sections(
    raw: BTreeMap<String, RawKeyValueStore>,
    config_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>> {
    raw.into_iter()
        .map(|(label, store)| {
            let section = format!("key_value_store.{label}");
            if store.kind != "spin" {
                return Err(anyhow!(
                    "[{section}] type = \"{}\" is not supported by this host (only \"spin\", a local file)",
                    store.kind
                ));
            }
            Ok((label, file_path(&section, store.path, config_dir)?))
        })
        .collect()
}
