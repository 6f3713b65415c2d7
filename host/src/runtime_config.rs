//! Spin runtime configuration (`runtime-config.toml`): the TOML entry point that
//! reads the file and hands each section to the capability that owns it.
//!
//! Interpreted: `[sqlite_database.<label>]` (see [`crate::sqlite::config`]) and
//! `[key_value_store.<label>]` (see [`crate::key_value::config`]). Other sections
//! (variable providers, ...) are ignored.
//!
//! Relative paths resolve as Spin resolves them, which differs by section: a SQLite
//! database `path` against the working directory of the process, a key-value store
//! `path` against the runtime config file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::key_value::config::RawKeyValueStore;
use crate::sqlite::config::RawSqliteDatabase;
// Their home is the SQLite capability; re-exported where embedders first found them.
pub use crate::sqlite::config::{default_database_path, LibsqlConfig, SqliteDatabase};

/// A parsed runtime config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// SQLite database label to where it lives.
    pub sqlite_databases: BTreeMap<String, SqliteDatabase>,
    /// Key-value store label to its SQLite file (`[key_value_store.<label>]`),
    /// resolved against the runtime config file's directory.
    pub key_value_stores: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawSqliteDatabase>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawKeyValueStore>,
}

impl RuntimeConfig {
    /// Read and parse the runtime config at `path`. Errors are one line and name the
    /// file (with line and column for TOML errors).
    pub fn from_file(path: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read runtime config {}: {e}", path.display()))?;
        RuntimeConfig::parse(&text, path)
    }

    /// Parse `text` as if read from `path`, resolving SQLite paths against the
    /// process's working directory.
    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfig> {
        let cwd = std::env::current_dir()
            .map_err(|e| anyhow!("cannot read the working directory: {e}"))?;
        RuntimeConfig::parse_in(text, path, &cwd)
    }

    /// [`RuntimeConfig::parse`] with the working directory given.
    pub fn parse_in(text: &str, path: &Path, cwd: &Path) -> Result<RuntimeConfig> {
        let raw: RawRuntimeConfig = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid runtime config {}: {}",
                path.display(),
                crate::diag::toml_error(text, &e)
            )
        })?;
        let config_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let invalid = |e: anyhow::Error| anyhow!("invalid runtime config {}: {e}", path.display());
        Ok(RuntimeConfig {
            sqlite_databases: crate::sqlite::config::parse_sections(raw.sqlite_database, cwd)
                .map_err(invalid)?,
            key_value_stores: crate::key_value::config::parse_sections(
                raw.key_value_store,
                config_dir,
            )
            .map_err(invalid)?,
        })
    }
}

/// `path` of section `[section]` resolved against `base`; required (in-memory
/// databases are not supported). Shared by the sections that name a file.
pub(crate) fn file_path(section: &str, path: Option<String>, base: &Path) -> Result<PathBuf> {
    match path {
        Some(p) if !p.is_empty() => Ok(base.join(p)),
        _ => bail!("[{section}] needs a `path` (in-memory databases are not supported)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> SqliteDatabase {
        SqliteDatabase::File(PathBuf::from(p))
    }

    #[test]
    fn sqlite_paths_resolve_against_the_working_directory_kv_against_the_file() {
        let rc = RuntimeConfig::parse_in(
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
            Path::new("/srv/work"),
        )
        .unwrap();
        assert_eq!(
            rc.sqlite_databases["default"],
            file("/srv/work/data/app.db")
        );
        assert_eq!(rc.sqlite_databases["abs"], file("/var/lib/x.db"));
        assert_eq!(rc.sqlite_databases.len(), 2);
        assert_eq!(rc.key_value_stores["default"], Path::new("/etc/app/kv.db"));
    }

    #[test]
    fn parse_uses_the_process_working_directory() {
        let rc = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"a.db\"\n",
            Path::new("/elsewhere/runtime-config.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            rc.sqlite_databases["default"],
            SqliteDatabase::File(cwd.join("a.db"))
        );
    }

    #[test]
    fn libsql_url_and_token() {
        let rc = RuntimeConfig::parse_in(
            r#"
[sqlite_database.default]
type = "libsql"
url = "https://db-org.turso.io"
token = "secret-token"

[sqlite_database.local]
type = "libsql"
url = "http://127.0.0.1:8080"
"#,
            Path::new("rc.toml"),
            Path::new("/w"),
        )
        .unwrap();
        let SqliteDatabase::Libsql(remote) = &rc.sqlite_databases["default"] else {
            panic!("{:?}", rc.sqlite_databases["default"]);
        };
        assert_eq!(remote.url, "https://db-org.turso.io");
        assert_eq!(remote.token, "secret-token");
        // The token stays out of debug output (logs, error chains).
        let shown = format!("{rc:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(
            rc.sqlite_databases["local"],
            SqliteDatabase::Libsql(LibsqlConfig::new("http://127.0.0.1:8080", "").unwrap())
        );
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
                "[sqlite_database.default]\ntype = \"postgres\"\n",
                "type = \"postgres\" is not supported",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\ntoken = \"t\"\n",
                "[sqlite_database.default] type = \"libsql\" needs a `url`",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"\"\n",
                "`url` is empty",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"ftp://x\"\n",
                "must start with http://, https:// or libsql://",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://a b\"\n",
                "not a valid URL",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\npath = \"a.db\"\n",
                "not a `path`",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\nurl = \"http://x\"\n",
                "did you mean type = \"libsql\"",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\n",
                "needs a `path`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "type = \"redis\" is not supported",
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
}
