//! The pool's writer connection (lent to the write-gate holder) and its background
//! checkpoints, as a guest sees them: every statement behaves as on the lease's own
//! connection.

use super::*;

fn options() -> PoolOptions {
    PoolOptions {
        size: 4,
        wait: Duration::from_secs(2),
        busy_timeout: Duration::from_millis(500),
        synchronous: Synchronous::Normal,
    }
}

async fn pool(dir: &tempfile::TempDir, label: &str) -> Pool {
    let pool = Pool::open(label, &dir.path().join("db"), options())
        .await
        .unwrap();
    let mut lease = pool.acquire().await.unwrap();
    run(
        &mut lease,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id))",
    )
    .await
    .unwrap();
    pool
}

/// Which SQLite connection this is.
fn id(conn: &Connection) -> usize {
    // SAFETY: only the pointer's value is used, never the handle.
    unsafe { conn.handle() as usize }
}

/// One statement as the binding runs it: gate (and writer) first if it writes.
async fn run(lease: &mut PooledConnection, sql: &str) -> rusqlite::Result<Vec<i64>> {
    lease.note_statement(sql);
    if lease.needs_write_gate(sql) {
        lease.enter_write().await;
    }
    let result = (|| match lease.conn().prepare(sql) {
        Ok(mut stmt) => stmt.query_map([], |r| r.get::<_, i64>(0))?.collect(),
        // A script (rusqlite prepares one statement at a time): run it whole.
        Err(_) => lease.conn().execute_batch(sql).map(|()| Vec::new()),
    })();
    lease.leave_write_if_done();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_transaction_runs_on_the_writer_and_the_lease_gets_its_own_back() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w1").await;
    let mut lease = pool.acquire().await.unwrap();
    let own = id(lease.own());
    run(&mut lease, "BEGIN IMMEDIATE").await.unwrap();
    assert!(
        lease.writer.is_some(),
        "the writer is lent for the transaction"
    );
    assert_ne!(id(lease.conn()), own);
    run(&mut lease, "INSERT INTO parent (id) VALUES (1)")
        .await
        .unwrap();
    // Reads inside the transaction see its writes (they run on the writer too).
    assert_eq!(
        run(&mut lease, "SELECT count(*) FROM parent")
            .await
            .unwrap(),
        [1]
    );
    run(&mut lease, "COMMIT").await.unwrap();
    assert!(lease.writer.is_none() && lease.gate.is_none());
    assert_eq!(id(lease.conn()), own);
    // The own connection sees the committed row; so does another lease.
    assert_eq!(
        run(&mut lease, "SELECT count(*) FROM parent")
            .await
            .unwrap(),
        [1]
    );
    let mut other = pool.acquire().await.unwrap();
    assert_eq!(
        run(&mut other, "SELECT count(*) FROM parent")
            .await
            .unwrap(),
        [1]
    );
    // The next writer borrows the same writer connection.
    let writer = pool.inner.writer.lock().unwrap().as_ref().map(id);
    run(&mut other, "INSERT INTO parent (id) VALUES (2)")
        .await
        .unwrap();
    assert_eq!(pool.inner.writer.lock().unwrap().as_ref().map(id), writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_follow_the_lease_onto_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w2").await;
    let mut lease = pool.acquire().await.unwrap();
    let err = run(&mut lease, "INSERT INTO child (id, parent) VALUES (1, 99)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    // A guest that turns them off writes without them...
    run(&mut lease, "PRAGMA foreign_keys = OFF").await.unwrap();
    run(&mut lease, "INSERT INTO child (id, parent) VALUES (1, 99)")
        .await
        .unwrap();
    drop(lease);
    // ...and the next lease has them on again, on the writer as on its own connection.
    let mut next = pool.acquire().await.unwrap();
    assert_eq!(run(&mut next, "PRAGMA foreign_keys").await.unwrap(), [1]);
    let err = run(&mut next, "INSERT INTO child (id, parent) VALUES (2, 98)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_insert_rowid_and_changes_are_those_of_the_lease_write() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w3").await;
    let mut lease = pool.acquire().await.unwrap();
    run(&mut lease, "INSERT INTO parent (id) VALUES (41), (42)")
        .await
        .unwrap();
    // Read after the write, on the own connection: still the write's figures.
    run(&mut lease, "SELECT 1").await.unwrap();
    assert_eq!((lease.last_insert_rowid(), lease.changes()), (42, 2));
    // Another lease's write does not change them.
    let mut other = pool.acquire().await.unwrap();
    run(&mut other, "INSERT INTO parent (id) VALUES (7)")
        .await
        .unwrap();
    assert_eq!((lease.last_insert_rowid(), lease.changes()), (42, 2));
    assert_eq!((other.last_insert_rowid(), other.changes()), (7, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_tables_stay_visible_to_the_lease_that_made_them() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w4").await;
    // Made before writing: the lease then writes on its own connection.
    let mut lease = pool.acquire().await.unwrap();
    run(&mut lease, "CREATE TEMP TABLE staged (id INTEGER)")
        .await
        .unwrap();
    run(&mut lease, "INSERT INTO staged VALUES (5)")
        .await
        .unwrap();
    run(&mut lease, "BEGIN IMMEDIATE").await.unwrap();
    assert!(lease.writer.is_none());
    run(&mut lease, "INSERT INTO parent SELECT id FROM staged")
        .await
        .unwrap();
    run(&mut lease, "COMMIT").await.unwrap();
    drop(lease);
    // Made inside a write transaction on the writer: the lease keeps that connection.
    let mut lease = pool.acquire().await.unwrap();
    run(&mut lease, "BEGIN IMMEDIATE").await.unwrap();
    assert!(lease.writer.is_some());
    run(&mut lease, "CREATE TEMP TABLE scratch (id INTEGER)")
        .await
        .unwrap();
    run(&mut lease, "INSERT INTO scratch VALUES (6)")
        .await
        .unwrap();
    run(&mut lease, "COMMIT").await.unwrap();
    assert_eq!(
        run(&mut lease, "SELECT id FROM scratch").await.unwrap(),
        [6]
    );
    run(&mut lease, "INSERT INTO parent SELECT id FROM scratch")
        .await
        .unwrap();
    // Other leases write on a writer without it.
    let mut other = pool.acquire().await.unwrap();
    run(&mut other, "INSERT INTO parent (id) VALUES (8)")
        .await
        .unwrap();
    run(&mut other, "BEGIN IMMEDIATE").await.unwrap();
    assert!(other.writer.is_some());
    let err = run(&mut other, "SELECT id FROM scratch").await.unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");
    run(&mut other, "ROLLBACK").await.unwrap();
    drop(other);
    let mut reader = pool.acquire().await.unwrap();
    assert_eq!(
        run(&mut reader, "SELECT id FROM parent ORDER BY id")
            .await
            .unwrap(),
        [5, 6, 8]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_check_interrupts_a_statement_on_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w5").await;
    let mut lease = pool.acquire().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    lease.set_stop_check(1000, {
        let stop = stop.clone();
        Arc::new(move || stop.load(Ordering::Relaxed))
    });
    run(&mut lease, "BEGIN IMMEDIATE").await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let err = run(
        &mut lease,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
         INSERT INTO parent SELECT i FROM n",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("interrupt"), "{err}");
    // Dropped mid-transaction: rolled back, and the writer serves the next lease
    // without this lease's stop check.
    drop(lease);
    assert!(
        pool.inner.writer.lock().unwrap().is_some(),
        "the rolled-back writer is back in its slot"
    );
    let mut next = pool.acquire().await.unwrap();
    run(&mut next, "INSERT INTO parent (id) VALUES (1)")
        .await
        .unwrap();
    assert_eq!(
        run(&mut next, "SELECT count(*) FROM parent").await.unwrap(),
        [1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, "w6").await;
    let db = dir.path().join("db");
    let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut lease = pool.acquire().await.unwrap();
    run(&mut lease, "CREATE TABLE big (b BLOB)").await.unwrap();
    // About 100 pages that the database file can only get from the WAL.
    for _ in 0..200 {
        run(&mut lease, "INSERT INTO big VALUES (randomblob(2000))")
            .await
            .unwrap();
    }
    // Far below the connections' own threshold: only the checkpointer copies pages
    // into the database file.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(size() > before, "the database file grew from the WAL");
    drop(lease);
    // Closing the pool stops the thread.
    pool.close(Duration::from_secs(1)).await;
    let threads = std::fs::read_dir("/proc/self/task").unwrap();
    let names: Vec<String> = threads
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(
        !names.iter().any(|n| n.trim() == "sqlite-ckpt-w6"),
        "{names:?}"
    );
}

#[test]
fn statements_that_leave_state_on_a_connection_are_recognised() {
    for sql in [
        "PRAGMA synchronous = FULL",
        "pragma cache_size=-2000;",
        "PRAGMA main.user_version = 3",
        "CREATE TEMP TABLE t (x)",
        "create temporary view v as select 1",
        "INSERT INTO temp.t VALUES (1)",
        "ATTACH DATABASE 'x.db' AS x",
        "DETACH x",
        "PRAGMA user_version; PRAGMA recursive_triggers = ON",
    ] {
        assert!(changes_connection_state(sql), "{sql}");
    }
    for sql in [
        "PRAGMA user_version",
        "PRAGMA user_version = 4",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA journal_mode = WAL",
        "SELECT * FROM pragma_table_info('agents')",
        "INSERT INTO logs (message) VALUES (?1)",
        "BEGIN IMMEDIATE",
        "UPDATE agents SET status = ?2 WHERE id = ?1 RETURNING *",
    ] {
        assert!(!changes_connection_state(sql), "{sql}");
    }
}
