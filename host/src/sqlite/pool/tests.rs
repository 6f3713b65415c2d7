//! The pool as a caller sees it: connection settings, bounded waits, rollback on
//! release, the write gate, close.

use super::*;

fn options(size: usize, wait_ms: u64) -> PoolOptions {
    PoolOptions {
        size,
        wait: Duration::from_millis(wait_ms),
        busy_timeout: Duration::from_millis(500),
        synchronous: Synchronous::Normal,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pragmas_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/db.sqlite");
    let mut opts = options(2, 100);
    opts.synchronous = Synchronous::Full;
    let pool = Pool::open("default", &path, opts).await.unwrap();
    assert!(path.exists(), "folder and file are created");
    let c = pool.acquire().await.unwrap();
    let (mode, fk, sync, busy) = blocking(move || {
        let conn = c.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        (mode, fk, sync, busy)
    })
    .await;
    assert_eq!(mode, "wal");
    assert_eq!(fk, 1);
    assert_eq!(sync, 2, "FULL");
    assert_eq!(busy, 500);

    let pool = Pool::open("n", &dir.path().join("n.db"), options(1, 100))
        .await
        .unwrap();
    let c = pool.acquire().await.unwrap();
    let sync: i64 = blocking(move || {
        c.conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    })
    .await;
    assert_eq!(sync, 1, "NORMAL");
}

#[test]
fn a_cached_statement_with_a_bound_limit_is_not_re_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("db"), &options(1, 100)).unwrap();
    conn.execute_batch("CREATE TABLE t(x INTEGER PRIMARY KEY, y); CREATE INDEX i ON t(y);")
        .unwrap();
    let sql = "SELECT x FROM t ORDER BY y LIMIT ?1 OFFSET ?2";
    for _ in 0..3 {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        stmt.query([100, 0]).unwrap().next().unwrap();
    }
    let stmt = conn.prepare_cached(sql).unwrap();
    assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_waits_a_bounded_time_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open("default", &dir.path().join("db"), options(2, 200))
        .await
        .unwrap();
    let a = pool.acquire().await.unwrap();
    let _b = pool.acquire().await.unwrap();
    assert_eq!(pool.in_use(), 2);
    let started = std::time::Instant::now();
    let err = pool.acquire().await.err().expect("pool is exhausted");
    let waited = started.elapsed();
    assert!(matches!(err, PoolError::Exhausted { .. }), "{err}");
    assert!(err.to_string().contains("pool exhausted"), "{err}");
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    // A release during the wait hands the connection over.
    let pool2 = pool.clone();
    let waiter = tokio::spawn(async move { pool2.acquire().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(a);
    waiter.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transaction_is_rolled_back_on_release() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open("default", &dir.path().join("db"), options(1, 2000))
        .await
        .unwrap();
    let c = pool.acquire().await.unwrap();
    let c = blocking(move || {
        c.conn()
            .execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        assert!(!c.conn().is_autocommit());
        c
    })
    .await;
    drop(c);
    // Size 1: this is the same connection, handed back after the rollback.
    let c = pool.acquire().await.unwrap();
    let (autocommit, n) = blocking(move || {
        let n: i64 = c
            .conn()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        (c.conn().is_autocommit(), n)
    })
    .await;
    assert!(autocommit);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_writing_statements_need_the_write_gate() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open("default", &dir.path().join("db"), options(1, 100))
        .await
        .unwrap();
    let c = pool.acquire().await.unwrap();
    let gated = blocking(move || {
        c.conn().execute_batch("CREATE TABLE t(x)").unwrap();
        let statements = [
            "SELECT x FROM t",
            "  select\n x FROM t",
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 5000",
            "PRAGMA user_version",
            "BEGIN",
            "COMMIT",
            "BEGIN IMMEDIATE",
            "BEGIN EXCLUSIVE",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET x = 2",
            "PRAGMA user_version = 3",
            "CREATE TABLE u(y); INSERT INTO u VALUES (1)",
            "SELECT 1; DELETE FROM t",
        ];
        statements
            .iter()
            .map(|s| (*s, c.needs_write_gate(s)))
            .collect::<Vec<_>>()
    })
    .await;
    for (statement, needs) in gated {
        let writes = statement.starts_with("BEGIN ")
            || statement.starts_with("INSERT")
            || statement.starts_with("UPDATE")
            || statement.starts_with("CREATE")
            || statement.contains("DELETE")
            || statement.ends_with("= 3");
        assert_eq!(needs, writes, "{statement}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_take_turns_at_the_write_gate() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open("default", &dir.path().join("db"), options(2, 2000))
        .await
        .unwrap();
    let mut a = pool.acquire().await.unwrap();
    let mut b = pool.acquire().await.unwrap();
    a.enter_write().await;
    let mut a = blocking(move || {
        a.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
        a
    })
    .await;
    a.leave_write_if_done();
    assert!(a.gate.is_some(), "held while the transaction is open");
    // b waits for the gate until a commits.
    let waiter = tokio::spawn(async move {
        b.enter_write().await;
        b
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let mut a = blocking(move || {
        a.conn().execute_batch("COMMIT").unwrap();
        a
    })
    .await;
    a.leave_write_if_done();
    assert!(a.gate.is_none());
    let b = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("b gets the gate after the commit")
        .unwrap();
    assert!(b.gate.is_some());
    // A connection dropped mid-transaction gives the gate back with its rollback.
    let b = blocking(move || {
        b.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
        b
    })
    .await;
    assert!(!b.conn().is_autocommit());
    drop(b);
    tokio::time::timeout(Duration::from_secs(1), a.enter_write())
        .await
        .expect("the gate came back with the rollback");
    assert!(a.gate.is_some());
    // And the rollback released SQLite's write lock too.
    blocking(move || a.conn().execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_database_fails_to_open_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = Pool::open("default", &path, options(1, 100))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not a database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_refuses_new_acquires() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open("default", &dir.path().join("db"), options(2, 100))
        .await
        .unwrap();
    let c = pool.acquire().await.unwrap();
    drop(c);
    pool.close(Duration::from_secs(1)).await;
    assert!(matches!(pool.acquire().await, Err(PoolError::Closed(_))));
    assert_eq!(pool.idle(), 0);
}
