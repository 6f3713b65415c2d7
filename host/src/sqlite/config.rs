//! The SQLite capability's runtime-config section, `[sqlite_database.<label>]`: where
//! each database label lives.
//!
//! `type = "spin", path = "..."` is a local file, its relative path resolved against
//! the working directory of the process (Spin's SQLite resolver is handed
//! `std::env::current_dir()`); `type = "libsql", url = "...", token = "..."` is a
//! libSQL server (e.g. `sqld` or Turso). Other types are a start-up error rather than
//! a silent fallback to a local file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::runtime_config::file_path;

/// Where Spin keeps the `default` database when the runtime config doesn't say:
/// `.spin/sqlite_db.db` under the manifest's directory.
pub fn default_database_path(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("sqlite_db.db")
}

/// Where one SQLite database label lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteDatabase {
    /// A local file (`type = "spin"`), already resolved against the working directory.
    File(PathBuf),
    /// A libSQL server (`type = "libsql"`).
    Libsql(LibsqlConfig),
}

/// A libSQL server: its URL and the bearer token sent with every request.
#[derive(Clone, PartialEq, Eq)]
pub struct LibsqlConfig {
    /// `http://`, `https://` or `libsql://` (spoken as `https://`, as libSQL's clients do).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; empty sends none (a server without auth).
    pub token: String,
}

impl LibsqlConfig {
    /// A checked config: the URL must be absolute with one of the schemes above.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Result<LibsqlConfig> {
        let url = url.into().trim().to_string();
        if url.is_empty() {
            bail!("the libSQL `url` is empty");
        }
        let scheme_ok = ["http://", "https://", "libsql://"]
            .iter()
            .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            bail!("the libSQL `url` {url:?} must start with http://, https:// or libsql://");
        }
        url.parse::<http::Uri>()
            .map_err(|e| anyhow!("the libSQL `url` {url:?} is not a valid URL: {e}"))?;
        Ok(LibsqlConfig {
            url,
            token: token.into(),
        })
    }
}

/// The token never reaches logs or error messages.
impl std::fmt::Debug for LibsqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibsqlConfig")
            .field("url", &self.url)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// One `[sqlite_database.<label>]` table as written.
#[derive(Deserialize)]
pub(crate) struct RawSqliteDatabase {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    url: Option<String>,
    token: Option<String>,
}

/// Resolve every `[sqlite_database.<label>]` section, relative paths against `cwd`.
/// Errors name the section.
pub(crate) fn parse_sections(
    raw: BTreeMap<String, RawSqliteDatabase>,
    cwd: &Path,
) -> Result<BTreeMap<String, SqliteDatabase>> {
    raw.into_iter()
        .map(|(label, db)| {
            let section = format!("sqlite_database.{label}");
            Ok((label, sqlite_database(&section, db, cwd)?))
        })
        .collect()
}

fn sqlite_database(section: &str, db: RawSqliteDatabase, cwd: &Path) -> Result<SqliteDatabase> {
    match db.kind.as_str() {
        "spin" => {
            if db.url.is_some() || db.token.is_some() {
                bail!("[{section}] type = \"spin\" takes a `path`, not `url`/`token` (did you mean type = \"libsql\"?)");
            }
            Ok(SqliteDatabase::File(file_path(section, db.path, cwd)?))
        }
        "libsql" => {
            if db.path.is_some() {
                bail!("[{section}] type = \"libsql\" takes `url` and `token`, not a `path`");
            }
            let Some(url) = db.url else {
                bail!("[{section}] type = \"libsql\" needs a `url` (e.g. \"https://<db>.turso.io\" or \"http://127.0.0.1:8080\")");
            };
            let config = LibsqlConfig::new(url, db.token.unwrap_or_default())
                .map_err(|e| anyhow!("[{section}] {e}"))?;
            Ok(SqliteDatabase::Libsql(config))
        }
        other => bail!(
            "[{section}] type = \"{other}\" is not supported by this host (\"spin\", a local file, or \"libsql\", a libSQL server)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_spins() {
        assert_eq!(
            default_database_path(Path::new("/app")),
            Path::new("/app/.spin/sqlite_db.db")
        );
    }
}
