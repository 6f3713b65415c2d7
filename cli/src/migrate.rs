//! `orchestrator migrate`: the core's migrations runner, natively.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use orchestrator_core::db::native::NativeDatabase;
use orchestrator_core::migrations;

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    /// The SQLite file (created with its folder if missing).
    #[arg(long, env = "DATABASE_PATH", default_value = "data/orchestrator.db")]
    pub database_path: PathBuf,
}

pub fn run(args: &MigrateArgs) -> Result<()> {
    let version = migrate_file(&args.database_path)?;
    println!(
        "{}: schema version {version} (latest {})",
        args.database_path.display(),
        migrations::latest_version()
    );
    Ok(())
}

/// Open (creating) and migrate a database file; the error names the file and the cause:
/// an unwritable folder, a file that is not SQLite, a schema newer than this build.
pub fn migrate_file(path: &Path) -> Result<i64> {
    let db = NativeDatabase::open(path).map_err(|e| anyhow!("{}", e.message))?;
    migrations::migrate(&db).map_err(|e| anyhow!("database {}: {}", path.display(), e.message))
}
