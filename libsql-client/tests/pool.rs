//! The client against the fake server: streams pinned per connection, batons,
//! transactions across calls, rollback and close at drop, value mapping, errors,
//! bounded waits, busy retries, the token.

use std::time::{Duration, Instant};

use libsql_client::fake_server::{FakeLibsql, SQLD_REFUSES};
use libsql_client::{Error, PoolOptions, RemotePool, Value};

fn options(size: usize, wait_ms: u64) -> PoolOptions {
    PoolOptions {
        size,
        wait: Duration::from_millis(wait_ms),
        busy_timeout: Duration::from_millis(500),
    }
}

async fn open(server: &FakeLibsql, options: &PoolOptions) -> RemotePool {
    RemotePool::open("default", server.url(), server.token(), options)
        .await
        .unwrap()
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_pins_one_stream_and_rolls_back_when_dropped() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let pool = open(&server, &options(4, 1000)).await;
    let mut setup = pool.acquire().await.unwrap();
    setup.execute("CREATE TABLE t(x)", &[]).await.unwrap();
    setup.close().await;

    // A transaction spans calls: every statement on one stream.
    let mut c = pool.acquire().await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    assert!(!c.is_autocommit().await);
    let streams: Vec<u64> = server.log().iter().rev().take(2).map(|(s, _)| *s).collect();
    assert_eq!(streams[0], streams[1], "{:?}", server.log());
    // Dropped mid-transaction (a trap, a deadline): rolled back, stream closed.
    drop(c);
    eventually("the rollback and close", || {
        server.log().last().map(|(_, s)| s.as_str()) == Some("ROLLBACK")
            && server.open_streams() == 0
    })
    .await;
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 0);

    // A committed transaction stays; an idle connection's stream is closed at drop.
    let mut c = pool.acquire().await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    c.execute("COMMIT", &[]).await.unwrap();
    assert!(c.is_autocommit().await);
    drop(c);
    eventually("the close", || server.open_streams() == 0).await;
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 1);
    assert_ne!(server.log().last().unwrap().1, "ROLLBACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_counters_and_errors_come_back_as_the_server_sent_them() {
    let server = FakeLibsql::start(SQLD_REFUSES, Some("s3cret")).await;
    let pool = open(&server, &options(2, 1000)).await;
    let mut c = pool.acquire().await.unwrap();
    c.execute(
        "CREATE TABLE v(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB)",
        &[],
    )
    .await
    .unwrap();
    let row = [
        Value::Text("héllo".into()),
        Value::Real(1.5),
        Value::Blob(vec![0, 1, 2, 254, 255]),
    ];
    c.execute("INSERT INTO v(name, score, data) VALUES (?, ?, ?)", &row)
        .await
        .unwrap();
    assert_eq!(c.changes(), 1);
    assert_eq!(c.last_insert_rowid(), 1);
    c.execute(
        "INSERT INTO v(id, name, score, data) VALUES (?, 'n', NULL, NULL)",
        &[Value::Integer(9_007_199_254_740_993)],
    )
    .await
    .unwrap();
    let r = c
        .execute("SELECT id, name, score, data FROM v ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(r.columns, ["id", "name", "score", "data"]);
    assert_eq!(
        r.rows,
        vec![
            vec![
                Value::Integer(1),
                row[0].clone(),
                row[1].clone(),
                row[2].clone()
            ],
            vec![
                Value::Integer(9_007_199_254_740_993),
                Value::Text("n".into()),
                Value::Null,
                Value::Null
            ],
        ]
    );
    // SQLite's message as the server sent it (the core classifies it).
    let e = c
        .execute("INSERT INTO v(name) VALUES ('n')", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Statement(m) if m.contains("UNIQUE constraint failed: v.name")),
        "{e:?}"
    );
    // Refused as libSQL's client refuses them (without a round trip)…
    let before = server.log().len();
    for pragma in ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL"] {
        let e = c.execute(pragma, &[]).await.unwrap_err();
        assert_eq!(e, Error::Unsupported);
    }
    assert_eq!(server.log().len(), before);
    // …and what the server refuses arrives with its text.
    let e = c
        .execute("PRAGMA synchronous = FULL", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Statement(m) if m.starts_with("unsupported statement")),
        "{e:?}"
    );
    // The stream survives errors: the table is still there on it.
    let r = c.execute("SELECT count(*) FROM v", &[]).await.unwrap();
    assert_eq!(r.rows, vec![vec![Value::Integer(2)]]);

    // A wrong token fails at open, naming the server, never showing the token.
    let e = RemotePool::open("default", server.url(), "nope", &options(1, 1000))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(server.url()) && e.contains("401"), "{e}");
    assert!(!e.contains("nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_stream_and_for_the_server_are_bounded() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // size 1, wait 300 ms; an exchange may take wait + busy_timeout = 800 ms.
    let pool = open(&server, &options(1, 300)).await;
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let e = pool
        .acquire()
        .await
        .err()
        .expect("the only stream is taken");
    assert!(matches!(e, Error::Exhausted { .. }), "{e}");
    assert!(e.to_string().contains("pool exhausted"), "{e}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(held);
    // A server that takes 3 s: the statement fails after ~800 ms.
    let mut c = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let e = c.execute("SELECT 'stall'", &[]).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        // Worded so that a guest can tell it from SQLite's errors: the core answers 503.
        matches!(&e, Error::Server(m) if m.contains("no answer from")),
        "{e:?}"
    );
    assert!(
        waited >= Duration::from_millis(790) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    // Lost outside a transaction: the next statement simply opens a new stream.
    let r = c.execute("SELECT 1", &[]).await.unwrap();
    assert_eq!(r.rows, vec![vec![Value::Integer(1)]]);

    // Lost inside one: its later statements must not run outside it.
    c.execute("CREATE TABLE w(x)", &[]).await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO w VALUES (1)", &[]).await.unwrap();
    assert!(c.execute("SELECT 'stall'", &[]).await.is_err());
    let e = c
        .execute("INSERT INTO w VALUES (2)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Server(m) if m.contains("lost inside a transaction")),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_begin_or_autocommit_statement_waits_but_nothing_inside_a_transaction_is_resent() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // busy_timeout 500 ms: the same wait a file's writer gets.
    let pool = open(&server, &options(2, 1000)).await;
    let mut c = pool.acquire().await.unwrap();
    c.execute("CREATE TABLE t(x)", &[]).await.unwrap();

    // BEGIN IMMEDIATE answered busy 3 times: sent again until the lock is free.
    server.busy("BEGIN IMMEDIATE", 3);
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    assert_eq!(server.sent("BEGIN IMMEDIATE"), 4);
    assert!(!c.is_autocommit().await);
    // Inside the transaction a busy statement is not resent: the guest sees it once.
    server.busy("INSERT INTO t VALUES (1)", 1);
    let e = c
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Statement(m) if m.contains("database is locked")),
        "{e:?}"
    );
    assert_eq!(server.sent("INSERT INTO t VALUES (1)"), 1);
    c.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    server.busy("COMMIT", 1);
    assert!(
        c.execute("COMMIT", &[]).await.is_err(),
        "COMMIT is not resent"
    );
    assert_eq!(server.sent("COMMIT"), 1);
    c.execute("COMMIT", &[]).await.unwrap();
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 1);

    // An autocommit write answered busy 5 times: resent, and applied once.
    server.busy("INSERT INTO t VALUES (3)", 5);
    c.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    assert_eq!(c.changes(), 1);
    assert_eq!(server.sent("INSERT INTO t VALUES (3)"), 6);
    assert_eq!(server.query_i64("SELECT count(*) FROM t WHERE x = 3"), 1);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_longer_than_the_busy_timeout_is_still_the_busy_error() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let pool = open(&server, &options(2, 1000)).await;
    let mut c = pool.acquire().await.unwrap();
    c.execute("CREATE TABLE t(x)", &[]).await.unwrap();
    for sql in ["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)"] {
        server.busy(sql, u32::MAX);
        let started = Instant::now();
        let e = c.execute(sql, &[]).await.unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(&e, Error::Statement(m) if m == "SQLite error: database is locked"),
            "{sql}: {e:?}"
        );
        // Retried for the busy timeout (500 ms; pauses 1, 2, 4 … 50 ms), then given up.
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_millis(2000),
            "{sql}: {waited:?}"
        );
        assert!(server.sent(sql) > 5, "{sql}: {}", server.sent(sql));
        server.busy(sql, 0);
    }
    assert!(c.is_autocommit().await);
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 0);
    c.close().await;
}
