//! `bench-http`: starts, in this process, (a) the real host (`spin_host::Host` with the
//! repo's `spin.toml` and runtime config, the `.wasm` components) and (b) a native server
//! (hyper + `orchestrator_core::api::handle` over rusqlite, no wasm), each on its own
//! fresh SQLite file in a temp dir; seeds both identically over HTTP; drives each endpoint
//! with the built-in load generator (GETs, then PATCH, then POST); prints one table.
//!
//! Loopback only, bounded: every run lasts `--warmup + --duration`.

mod native;
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use orchestrator_core::Config;

use crate::host::{migrate, serve_app, AppArgs};
use crate::load::{self, Req, Rng};
use crate::runtimes;
use crate::seed::{self, SeedCounts, Seeded, AGENT_TYPES};
use crate::usage::{cores, loadavg, threads_cpu_seconds};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Measured seconds per endpoint and server.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds per endpoint and server (same connections, not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Worker threads of the load generator's own runtime (the servers get another).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Worker threads of the servers' runtime (default: the number of cores).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Which servers to drive.
    #[arg(long, value_enum, default_value_t = Target::Both)]
    target: Target,
    /// Endpoints to run (comma-separated; default all, in the fixed order GETs, PATCH, POST).
    #[arg(long, value_enum, value_delimiter = ',')]
    endpoints: Vec<Endpoint>,
    /// Definitions to seed.
    #[arg(long, default_value_t = 100)]
    seed_definitions: usize,
    /// Runtime agents to seed.
    #[arg(long, default_value_t = 1000)]
    seed_runs: usize,
    /// Agent logs to seed (POST /api/runtime/logs).
    #[arg(long, default_value_t = 5000)]
    seed_logs: usize,
    /// Concurrent connections while seeding.
    #[arg(long, default_value_t = 16)]
    seed_concurrency: usize,
    #[command(flatten)]
    app: AppArgs,
    /// SQLite connections in the host's pool.
    #[arg(long, default_value_t = 16)]
    host_pool_size: usize,
    /// After seeding, print the addresses and serve this many seconds without driving
    /// any load (for wrk, perf, …), then exit.
    #[arg(long)]
    serve_only: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Both,
    Host,
    Native,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum Endpoint {
    /// GET /api/agents?limit=100
    ListAgents,
    /// GET /api/agents/{id}
    GetAgent,
    /// GET /api/runtime/agents?limit=100
    ListRuns,
    /// GET /api/runtime/logs
    ListLogs,
    /// PATCH /api/runtime/agents/{id}
    PatchRun,
    /// POST /api/agents
    PostAgent,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 6] = [
        Endpoint::ListAgents,
        Endpoint::GetAgent,
        Endpoint::ListRuns,
        Endpoint::ListLogs,
        Endpoint::PatchRun,
        Endpoint::PostAgent,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Endpoint::ListAgents => "GET /api/agents?limit=100",
            Endpoint::GetAgent => "GET /api/agents/{id}",
            Endpoint::ListRuns => "GET /api/runtime/agents?limit=100",
            Endpoint::ListLogs => "GET /api/runtime/logs",
            Endpoint::PatchRun => "PATCH /api/runtime/agents/{id}",
            Endpoint::PostAgent => "POST /api/agents",
        }
    }

    /// The request builder for one server's run.
    pub(crate) fn requests(
        self,
        seeded: &Seeded,
        tag: String,
    ) -> impl Fn(&mut Rng, u64) -> Req + Send + Sync + 'static {
        let defs = Arc::new(seeded.definitions.clone());
        let runs = Arc::new(seeded.runs.clone());
        move |rng: &mut Rng, n: u64| match self {
            Endpoint::ListAgents => Req::get("/api/agents?limit=100"),
            Endpoint::GetAgent => Req::get(format!("/api/agents/{}", rng.pick(&defs))),
            Endpoint::ListRuns => Req::get("/api/runtime/agents?limit=100"),
            Endpoint::ListLogs => Req::get("/api/runtime/logs"),
            Endpoint::PatchRun => {
                const STATUSES: [&str; 3] = ["planning", "executing", "reviewing"];
                Req::json(
                    hyper::Method::PATCH,
                    format!("/api/runtime/agents/{}", rng.pick(&runs)),
                    format!(r#"{{"status":"{}"}}"#, rng.pick(&STATUSES)),
                )
            }
            Endpoint::PostAgent => Req::json(
                hyper::Method::POST,
                "/api/agents",
                format!(
                    r#"{{"name":"bench-{tag}-{n}","description":"created by the load test","agent_type":"{}","capabilities":["read_files","run_tests"],"default_model":"claude-sonnet-4"}}"#,
                    AGENT_TYPES[(n % AGENT_TYPES.len() as u64) as usize]
                ),
            ),
        }
    }
}

/// One server under test.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    seeded: Option<Seeded>,
}

/// The variables' defaults from `spin.toml`, as the components read them.
fn app_config() -> Result<Config> {
    Config::from_variables(|name| match name {
        "web_ui_port" => Some("5173".into()),
        "max_body_bytes" => Some("1048576".into()),
        _ => Some(String::new()),
    })
    .map_err(anyhow::Error::msg)
}

/// Run `bench-http`: start the servers, seed them, drive each endpoint, print the table.
pub fn run(args: Options) -> Result<()> {
    if args.duration <= 0.0 || args.warmup < 0.0 || args.connections == 0 {
        bail!("--duration must be > 0, --warmup >= 0, --connections >= 1");
    }
    if args.seed_runs > 0 && args.seed_definitions == 0 {
        bail!("--seed-runs needs at least one definition");
    }
    if args.seed_logs > 0 && args.seed_runs == 0 {
        bail!("--seed-logs needs at least one runtime agent");
    }
    let endpoints: Vec<Endpoint> = if args.endpoints.is_empty() {
        Endpoint::ALL.to_vec()
    } else {
        let mut e = args.endpoints.clone();
        e.sort();
        e.dedup();
        e
    };
    let dir = tempfile::tempdir()?;
    let server_rt = runtimes::server(Some(args.server_threads.unwrap_or_else(cores)))?;
    let client_rt = runtimes::client(args.client_threads)?;

    // --- servers ---------------------------------------------------------------------
    let mut servers = Vec::new();
    if args.target != Target::Native {
        let db = dir.path().join("host.db");
        let started = std::time::Instant::now();
        let addr = serve_app(&server_rt, &args.app, db.clone(), |config| {
            config.sqlite_pool_size = args.host_pool_size.max(1)
        })?;
        migrate(&db)?;
        eprintln!(
            "host   on http://{addr} (started in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        servers.push(Server {
            name: "host",
            addr,
            seeded: None,
        });
    }
    if args.target != Target::Host {
        let db = dir.path().join("native.db");
        migrate(&db)?;
        let addr = server_rt.block_on(native::start(db, app_config()?))?;
        eprintln!("native on http://{addr}");
        servers.push(Server {
            name: "native",
            addr,
            seeded: None,
        });
    }

    // --- seed --------------------------------------------------------------------------
    let counts = SeedCounts {
        definitions: args.seed_definitions,
        runs: args.seed_runs,
        logs: args.seed_logs,
        concurrency: args.seed_concurrency,
    };
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    for server in &mut servers {
        let started = std::time::Instant::now();
        let seeded = client_rt
            .block_on(seed::seed(server.addr, counts, &tag))
            .with_context(|| format!("seeding {}", server.name))?;
        eprintln!(
            "seeded {}: {} definitions, {} runtime agents, {} logs in {:.1} s",
            server.name,
            seeded.definitions.len(),
            seeded.runs.len(),
            counts.logs,
            started.elapsed().as_secs_f64()
        );
        server.seeded = Some(seeded);
    }

    if let Some(secs) = args.serve_only {
        for server in &servers {
            println!("{} http://{}", server.name, server.addr);
        }
        std::thread::sleep(Duration::from_secs(secs));
        return Ok(());
    }

    // --- load ----------------------------------------------------------------------------
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let load_before = loadavg();
    let mut rows: Vec<report::Row> = Vec::new();
    for (e, endpoint) in endpoints.iter().enumerate() {
        let mut results = Vec::new();
        for (s, server) in servers.iter().enumerate() {
            let seeded = server.seeded.as_ref().expect("seeded above");
            let make = endpoint.requests(seeded, format!("{tag}-{s}"));
            // Let the previous run's leftovers (connection teardown) settle.
            std::thread::sleep(Duration::from_millis(300));
            let stats = client_rt.block_on(load::run(
                server.addr,
                args.connections,
                warmup,
                duration,
                (e * 16 + s) as u64 + 1,
                || threads_cpu_seconds("server"),
                make,
            ));
            eprintln!(
                "{:<34} {:<6} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  cpu {:>5.0} us/req  non-2xx {}  errors {}",
                endpoint.label(),
                server.name,
                stats.rps(),
                stats.percentile_ms(50.0),
                stats.percentile_ms(99.0),
                stats.cpu_us_per_request(),
                stats.non_2xx,
                stats.errors
            );
            results.push((server.name, stats));
        }
        rows.push((endpoint.label(), results));
    }
    let load_after = loadavg();

    // --- report --------------------------------------------------------------------------
    println!();
    println!(
        "# bench-http  cores={}  connections={}  warmup={}s  duration={}s  seed={}/{}/{}  loadavg before [{}] after [{}]",
        cores(),
        args.connections,
        args.warmup,
        args.duration,
        counts.definitions,
        counts.runs,
        counts.logs,
        load_before,
        load_after
    );
    report::print_table(&rows);
    Ok(())
}
