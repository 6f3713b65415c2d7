//! The host's own HTTP errors, over raw TCP: malformed requests get their status and
//! the API's JSON error body, a slow-loris is closed by the header read timeout while
//! others are served, and a client over its connection cap is refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::{fixture_dir, fixture_wasm};
use spin_host::{ErrorBody, Host, HostConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(adjust: impl FnOnce(&mut HostConfig)) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    fixture_wasm();
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(fixture_dir().join("spin.toml"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
        .sqlite_path_overrides
        .insert("default".into(), dir.path().join("app.db"));
    config
        .variables
        .insert("secret_word".into(), "xyzzy".into());
    config.max_instances = 32;
    // These tests read the host's errors in the JSON shape (the default is plain text).
    config.error_body = ErrorBody::Json;
    adjust(&mut config);
    let host = Host::start(config).await.expect("host starts");
    let addr = host.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(host.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        _stop: stop,
        _dir: dir,
    }
}

/// Everything the server sends until it closes (at most 10 s).
async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `request` on a fresh connection; returns the status and body of the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let text = read_all(&mut stream).await;
    last_response(&text)
}

/// The status and body of the last response in `text`.
fn last_response(text: &str) -> (u16, String) {
    let start = text
        .rfind("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("no response in {text:?}"));
    let response = &text[start..];
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

fn assert_json_error(status: u16, body: &str, expected: u16, case: &str) {
    assert_eq!(status, expected, "{case}: {body}");
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{case}: body {body:?} is not JSON: {e}"));
    assert_eq!(v["error"]["code"], "bad_request", "{case}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {v}"
    );
    println!("{case}: {status} {v}");
}

#[tokio::test]
async fn malformed_requests_get_their_status_and_the_json_error_body() {
    let host = start(|_| {}).await;
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "a".repeat(600 * 1024));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "too many headers",
            format!("GET /headers HTTP/1.1\r\nhost: x\r\n{many}\r\n").into_bytes(),
            431,
        ),
        (
            "too large a header",
            format!("GET /headers HTTP/1.1\r\nhost: x\r\n{huge}\r\n").into_bytes(),
            431,
        ),
        (
            "bad Content-Length",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 12abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different Content-Lengths",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"
                .to_vec(),
            400,
        ),
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "a space in the path",
            b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a control character in the path",
            b"GET /a\x01b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a target that is not a path",
            b"OPTIONS * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a malformed request after a good one on the same connection",
            b"GET /headers HTTP/1.1\r\nhost: x\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (case, request, expected) in cases {
        let (status, body) = exchange(host.addr, &request).await;
        assert_json_error(status, &body, expected, case);
    }
    // The application's own responses are untouched, and the host still serves.
    let (status, _) = exchange(
        host.addr,
        b"GET /headers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_slow_loris_is_closed_by_the_header_timeout_while_others_are_served() {
    let host = start(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let addr = host.addr;
    // 200 connections that send their head one byte a second.
    let mut loris = tokio::task::JoinSet::new();
    for _ in 0..200 {
        loris.spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = b"GET /headers HTTP/1.1\r\nhost: x\r\nx-slow: ";
            let mut buf = [0u8; 256];
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                // Closed by the server: a read returns EOF (or a reset).
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => {}
                }
                assert!(started.elapsed() < Duration::from_secs(15), "never closed");
            }
            started.elapsed()
        });
    }
    // Meanwhile a normal client keeps being served.
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let sent = Instant::now();
        let response = client
            .get(format!("http://{addr}/headers"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(sent.elapsed());
    }
    let mut closed_after = Vec::new();
    while let Some(elapsed) = loris.join_next().await {
        closed_after.push(elapsed.unwrap());
    }
    latencies.sort();
    closed_after.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!(
        "normal client: {} requests, p50 {:?}, p99 {:?}; 200 slow connections closed after {:?}..{:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        p99,
        closed_after[0],
        closed_after[closed_after.len() - 1]
    );
    assert_eq!(closed_after.len(), 200);
    // Closed by the 1 s timeout (plus scheduling), not after sending their whole head.
    assert!(
        closed_after[199] < Duration::from_secs(5),
        "{:?}",
        closed_after[199]
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn get_on(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /headers HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text[9..12].parse().unwrap()
}

#[tokio::test]
async fn a_client_over_its_connection_cap_is_refused_while_others_are_served() {
    let host = start(|c| c.max_connections_per_client = 4).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(connect_from("127.0.0.1", host.addr).await);
    }
    // Connection 5 from the same address: a 503 in the API's shape, then closed.
    let mut fifth = connect_from("127.0.0.1", host.addr).await;
    let (status, body) = last_response(&read_all(&mut fifth).await);
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "unavailable");
    println!("connection 5: {status} {v}");
    // The four admitted ones are served, and so is another address.
    for stream in &mut open {
        assert_eq!(get_on(stream).await, 200);
    }
    let mut other = connect_from("127.0.0.2", host.addr).await;
    assert_eq!(get_on(&mut other).await, 200);
    // A closed connection frees its place.
    drop(open.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut stream = connect_from("127.0.0.1", host.addr).await;
        if get_on(&mut stream).await == 200 {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place was never given out again");
}
