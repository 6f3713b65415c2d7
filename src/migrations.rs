//! The migrations runner: `migrations/*.sql`, embedded at compile time, applied once, in
//! order, on first use of a database.
//!
//! Safe under concurrency: the fast path reads `PRAGMA user_version`; when work is needed
//! it takes the write lock (`BEGIN IMMEDIATE`), reads the version *again* and applies only
//! what is still missing, so two instances racing on a fresh file apply each migration
//! once. The transaction goes through [`crate::db::write_transaction`], so a `BEGIN` a
//! libSQL server answers busy (another replica is migrating) is sent again, not fatal.
//! The version lives in `user_version` (one header read on the fast path) and each
//! applied migration is recorded in `schema_migrations` with its time.

use crate::db::{split_statements, Connector, Database, DbError, DbErrorKind};
use crate::domain::time::now_rfc3339;

/// One numbered migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. The files in `migrations/` are the single source of schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_run_display_fields",
        sql: include_str!("../migrations/0002_run_display_fields.sql"),
    },
    Migration {
        version: 3,
        name: "0003_ingest",
        sql: include_str!("../migrations/0003_ingest.sql"),
    },
    Migration {
        version: 4,
        name: "0004_incremental_roll_up",
        sql: include_str!("../migrations/0004_incremental_roll_up.sql"),
    },
    Migration {
        version: 5,
        name: "0005_ingest_fidelity",
        sql: include_str!("../migrations/0005_ingest_fidelity.sql"),
    },
    Migration {
        version: 6,
        name: "0006_steering",
        sql: include_str!("../migrations/0006_steering.sql"),
    },
    Migration {
        version: 7,
        name: "0007_dispatch",
        sql: include_str!("../migrations/0007_dispatch.sql"),
    },
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Connect ([`crate::db::connect`]: the connection pragmas) and bring the schema up to
/// date: what every request does before it reads or writes.
pub fn open<C: Connector>(connector: &C) -> Result<C::Db, DbError> {
    let db = crate::db::connect(connector)?;
    migrate(&db)?;
    Ok(db)
}

/// The database's schema version (`PRAGMA user_version`).
pub fn current_version<D: Database>(db: &D) -> Result<i64, DbError> {
    let mut rows = db.execute("PRAGMA user_version", &[])?;
    rows.first().map_or(Ok(0), |row| row.int(0))
}

/// Bring the schema up to [`latest_version`]; returns the version now in force.
/// A database newer than this build is refused (`SchemaTooNew`), never silently used.
pub fn migrate<D: Database>(db: &D) -> Result<i64, DbError> {
    let latest = latest_version();
    let version = current_version(db)?;
    if version == latest {
        return Ok(version);
    }
    if version > latest {
        return Err(schema_too_new(version, latest));
    }
    // journal_mode cannot change inside a transaction; it is persistent, so once suffices.
    // An in-memory database answers "memory" and stays so, which is fine. A libSQL server
    // keeps its own log and its client refuses the pragma: best-effort (see db::pragmas).
    crate::db::pragmas::best_effort(db, "PRAGMA journal_mode = WAL")?;
    // Replicas starting together on one libSQL server race for its write lock, and the
    // server answers the losers busy (or interrupted) rather than waiting as a file's
    // busy timeout does: the core's transaction retry sends the BEGIN again, and the
    // re-check inside finds the work done by the winner.
    crate::db::write_transaction(db, |db| apply_missing(db, latest))
}

fn apply_missing<D: Database>(db: &D, latest: i64) -> Result<i64, DbError> {
    // Another instance may have migrated while we waited for the lock.
    let version = current_version(db)?;
    if version > latest {
        return Err(schema_too_new(version, latest));
    }
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
        &[],
    )?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > version) {
        for statement in split_statements(migration.sql) {
            db.execute(&statement, &[]).map_err(|e| {
                DbError::new(
                    e.kind,
                    format!("migration {} failed: {}", migration.name, e.message),
                )
            })?;
        }
        db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            &[
                migration.version.into(),
                migration.name.into(),
                now_rfc3339().into(),
            ],
        )?;
    }
    // PRAGMA takes no parameters; the value is our own integer.
    db.execute(&format!("PRAGMA user_version = {latest}"), &[])?;
    Ok(latest)
}

fn schema_too_new(found: i64, supported: i64) -> DbError {
    DbError::new(
        DbErrorKind::SchemaTooNew,
        format!(
            "database schema version {found} is newer than this build supports ({supported}); \
             upgrade the orchestrator"
        ),
    )
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::db::native::NativeDatabase;

    #[test]
    fn a_fresh_database_gets_every_table_and_the_latest_version() {
        let db = NativeDatabase::open_in_memory().unwrap();
        assert_eq!(migrate(&db).unwrap(), latest_version());
        let mut rows = db
            .execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                &[],
            )
            .unwrap();
        let names: Vec<String> = rows.iter().map(|mut r| r.text(0).unwrap()).collect();
        assert_eq!(
            names,
            [
                "agent_logs",
                "agents",
                "approvals",
                "dispatches",
                "ingest_keys",
                "orchestrator_agents",
                "prompts",
                "schema_migrations",
                "system_logs"
            ]
        );
        let recorded = db
            .execute("SELECT version FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(recorded.rows.len(), MIGRATIONS.len());
    }

    #[test]
    fn migrating_twice_applies_nothing_the_second_time() {
        let db = NativeDatabase::open_in_memory().unwrap();
        migrate(&db).unwrap();
        migrate(&db).unwrap();
        let mut recorded = db
            .execute("SELECT count(*) FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(
            recorded.first().unwrap().int(0).unwrap(),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn a_database_newer_than_the_code_is_refused() {
        let db = NativeDatabase::open_in_memory().unwrap();
        db.execute(
            &format!("PRAGMA user_version = {}", latest_version() + 1),
            &[],
        )
        .unwrap();
        let err = migrate(&db).unwrap_err();
        assert_eq!(err.kind, DbErrorKind::SchemaTooNew);
        assert!(err.message.contains("newer"));
    }

    #[test]
    fn two_connections_racing_on_a_fresh_file_migrate_once() {
        let dir = tempdir();
        let path = dir.join("race.db");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = NativeDatabase::open(&path).unwrap();
                    migrate(&db).unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), latest_version());
        }
        let db = NativeDatabase::open(&path).unwrap();
        let mut recorded = db
            .execute("SELECT count(*) FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(
            recorded.first().unwrap().int(0).unwrap(),
            MIGRATIONS.len() as i64
        );
        let mut mode = db.execute("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode.first().unwrap().text(0).unwrap(), "wal");
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("orch-mig-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
