//! The load generator: N keep-alive http/1.1 connections (hyper's client connection, one
//! request in flight per connection, like wrk), each issuing requests back to back until
//! the deadline; latencies of requests started after the warm-up are recorded. Also the
//! same client for the requests a benchmark makes around the measured ones (seeding,
//! setup).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::stats::percentile;

/// A tiny deterministic PRNG (splitmix64): no dependency, good enough to pick ids.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One request to send.
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    /// The body and its `Content-Type`.
    pub body: Option<(Bytes, &'static str)>,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Req {
            method: hyper::Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn json(method: hyper::Method, path: impl Into<String>, body: String) -> Self {
        Req {
            method,
            path: path.into(),
            body: Some((Bytes::from(body), "application/json")),
        }
    }

    /// A POST of `body` as `content_type` (e.g. an OTLP protobuf export).
    pub fn bytes(path: impl Into<String>, body: Bytes, content_type: &'static str) -> Self {
        Req {
            method: hyper::Method::POST,
            path: path.into(),
            body: Some((body, content_type)),
        }
    }
}

/// One keep-alive client connection.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Conn { addr, sender: None }
    }

    async fn sender(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// Send one request and read the whole response: `(status, body)`.
    pub async fn send(&mut self, req: &Req) -> Result<(u16, Bytes)> {
        let host = self.addr.to_string();
        let result = async {
            let sender = self.sender().await?;
            sender.ready().await?;
            let mut builder = hyper::Request::builder()
                .method(req.method.clone())
                .uri(req.path.as_str())
                .header(hyper::header::HOST, host);
            let body = match &req.body {
                Some((b, content_type)) => {
                    builder = builder.header(hyper::header::CONTENT_TYPE, *content_type);
                    Full::new(b.clone())
                }
                None => Full::new(Bytes::new()),
            };
            let response = sender.send_request(builder.body(body)?).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        }
        .await;
        if result.is_err() {
            // Reconnect on the next request.
            self.sender = None;
        }
        result
    }
}

/// Send `req` and expect `expect`; the body parsed as JSON.
pub async fn call_json(conn: &mut Conn, req: &Req, expect: u16) -> Result<serde_json::Value> {
    let (status, body) = conn.send(req).await?;
    if status != expect {
        return Err(anyhow!(
            "{} {} -> {status}: {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// What one measured run produced.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Measured requests (started after the warm-up).
    pub requests: u64,
    /// Of those, the answers outside 2xx.
    pub non_2xx: u64,
    /// Transport errors (connect, reset, …).
    pub errors: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// CPU seconds the server's threads used during the measured window.
    pub server_cpu: f64,
}

impl Stats {
    /// Server CPU time per measured request, in microseconds.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.server_cpu * 1e6 / (self.requests.max(1) as f64)
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// `p50 … ms, p90 … ms, p99 … ms, max … ms` of the latencies.
    pub fn latency_summary(&self) -> String {
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0),
        )
    }

    /// The `p`-th percentile latency in milliseconds (NaN without requests).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
    }
}

/// Drive `addr` with `connections` connections for `warmup + duration`; `make(rng, n)`
/// builds each request (`n` is a per-run counter, unique across connections).
pub async fn run<F>(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    seed: u64,
    cpu_probe: fn() -> f64,
    make: F,
) -> Stats
where
    F: Fn(&mut Rng, u64) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        let before = cpu_probe();
        tokio::time::sleep_until(end).await;
        cpu_probe() - before
    });
    let mut tasks = Vec::new();
    for i in 0..connections.max(1) {
        let make = make.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            let mut conn = Conn::new(addr);
            let mut stats = Stats::default();
            let mut latencies = Vec::with_capacity(1 << 14);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let req = make(&mut rng, n);
                let result = conn.send(&req).await;
                let measured = t0 >= measure_from;
                match result {
                    Ok((status, _)) => {
                        if measured {
                            stats.requests += 1;
                            if !(200..300).contains(&status) {
                                stats.non_2xx += 1;
                            }
                            let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            latencies.push(us);
                        }
                    }
                    Err(_) => {
                        if measured {
                            stats.errors += 1;
                        }
                        // Don't spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            stats.latencies_us = latencies;
            stats
        }));
    }
    let mut total = Stats {
        seconds: duration.as_secs_f64(),
        ..Stats::default()
    };
    for task in tasks {
        if let Ok(s) = task.await {
            total.requests += s.requests;
            total.non_2xx += s.non_2xx;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    // Requests that started in the window may end a little after it; measure to the end
    // of the last one (the window is what the rate is over).
    total.seconds = total
        .seconds
        .max((Instant::now() - measure_from).as_secs_f64());
    total.latencies_us.sort_unstable();
    total.server_cpu = cpu.await.unwrap_or(0.0);
    total
}
