//! Spin runtime configuration (`runtime-config.toml`): where each SQLite database
//! label lives.
//!
//! Only `[sqlite_database.<label>]` and `[key_value_store.<label>]` with
//! `type = "spin", path = "..."` are interpreted; a
//! relative `path` is resolved against the directory of the runtime config file, as
//! Spin does. Other sections (variable providers, ...) are ignored.
//! Backends this host cannot serve (e.g. `type = "libsql"`) are a start-up error
//! rather than a silent fallback to a local file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

/// Where Spin keeps the `default` database when the runtime config doesn't say:
/// `.spin/sqlite_db.db` under the manifest's directory.
pub fn default_database_path(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("sqlite_db.db")
}

/// A parsed runtime config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// SQLite database label to its file, already resolved against the runtime
    /// config file's directory.
    pub sqlite_databases: BTreeMap<String, PathBuf>,
    /// Key-value store label to its SQLite file (`[key_value_store.<label>]`),
    /// resolved the same way.
    pub key_value_stores: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawSqliteDatabase>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawSqliteDatabase>,
}

#[derive(Deserialize)]
struct RawSqliteDatabase {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
}

impl RuntimeConfig {
    /// Read and parse the runtime config at `path`. Errors are one line and name the
    /// file (with line and column for TOML errors).
    pub fn from_file(path: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read runtime config {}: {e}", path.display()))?;
        RuntimeConfig::parse(&text, path)
    }

    /// Parse `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfig> {
        let raw: RawRuntimeConfig = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid runtime config {}: {}",
                path.display(),
                crate::diag::toml_error(text, &e)
            )
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut sqlite_databases = BTreeMap::new();
        for (label, db) in raw.sqlite_database {
            let resolved = resolve(&format!("sqlite_database.{label}"), db, dir)
                .map_err(|e| anyhow!("invalid runtime config {}: {e}", path.display()))?;
            sqlite_databases.insert(label, resolved);
        }
        let mut key_value_stores = BTreeMap::new();
        for (label, store) in raw.key_value_store {
            let resolved = resolve(&format!("key_value_store.{label}"), store, dir)
                .map_err(|e| anyhow!("invalid runtime config {}: {e}", path.display()))?;
            key_value_stores.insert(label, resolved);
        }
        Ok(RuntimeConfig {
            sqlite_databases,
            key_value_stores,
        })
    }
}

fn resolve(section: &str, db: RawSqliteDatabase, dir: &Path) -> Result<PathBuf> {
    // `section` is `sqlite_database.<label>` or `key_value_store.<label>`.
    let label = section;
    if db.kind != "spin" {
        bail!(
            "[{label}] type = \"{}\" is not supported by this host (only \"spin\", a local file)",
            db.kind
        );
    }
    match db.path {
        Some(p) if !p.is_empty() => Ok(dir.join(p)),
        _ => bail!("[{label}] needs a `path` (in-memory databases are not supported)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_against_the_config_directory() {
        let rc = RuntimeConfig::parse(
            r#"
[sqlite_database.default]
type = "spin"
path = "data/app.db"

[sqlite_database.abs]
type = "spin"
path = "/var/lib/x.db"

[key_value_store.default]
type = "spin"
path = "kv.db"
"#,
            Path::new("/etc/app/runtime-config.toml"),
        )
        .unwrap();
        assert_eq!(
            rc.sqlite_databases["default"],
            Path::new("/etc/app/data/app.db")
        );
        assert_eq!(rc.sqlite_databases["abs"], Path::new("/var/lib/x.db"));
        assert_eq!(rc.sqlite_databases.len(), 2);
        assert_eq!(rc.key_value_stores["default"], Path::new("/etc/app/kv.db"));
    }

    #[test]
    fn relative_config_path() {
        let rc = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"a.db\"\n",
            Path::new("runtime-config.toml"),
        )
        .unwrap();
        assert_eq!(rc.sqlite_databases["default"], Path::new("./a.db"));
    }

    #[test]
    fn empty_config_is_fine() {
        let rc = RuntimeConfig::parse("", Path::new("rc.toml")).unwrap();
        assert!(rc.sqlite_databases.is_empty());
    }

    #[test]
    fn errors_are_one_line_and_name_the_file() {
        for (text, needle) in [
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://x\"\n",
                "not supported",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\n",
                "needs a `path`",
            ),
            ("[sqlite_database.default]\ntype = spin\n", "line 2"),
        ] {
            let e = RuntimeConfig::parse(text, Path::new("/c/rc.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("/c/rc.toml"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn default_path_is_spins() {
        assert_eq!(
            default_database_path(Path::new("/app")),
            Path::new("/app/.spin/sqlite_db.db")
        );
    }
}
