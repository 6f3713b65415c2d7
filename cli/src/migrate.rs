//! `orchestrator migrate`: the core's migrations runner, natively, on a local file or a
//! libSQL server.

use std::path::Path;

use anyhow::{anyhow, Result};
use orchestrator_core::db::native::NativeDatabase;
use orchestrator_core::migrations;

use crate::args::DatabaseArgs;
use crate::database::Target;

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub fn run(args: &MigrateArgs) -> Result<()> {
    let target = args.database.target()?;
    let version = migrate_target(&target)?;
    println!(
        "{}: schema version {version} (latest {})",
        target.describe(),
        migrations::latest_version()
    );
    Ok(())
}

/// Open and migrate a database; the error names it and the cause: an unwritable folder,
/// a file that is not SQLite, a server that does not answer or refuses the token, a
/// schema newer than this build. Several processes may run this at once on one
/// database: the runner's `BEGIN IMMEDIATE` and re-check apply each migration once.
/// Blocking.
pub fn migrate_target(target: &Target) -> Result<i64> {
    let db = target.open()?;
    migrations::migrate(&db).map_err(|e| anyhow!("database {}: {}", target.describe(), e.message))
}

/// [`migrate_target`] for a file.
pub fn migrate_file(path: &Path) -> Result<i64> {
    let db = NativeDatabase::open(path).map_err(|e| anyhow!("{}", e.message))?;
    migrations::migrate(&db).map_err(|e| anyhow!("database {}: {}", path.display(), e.message))
}
