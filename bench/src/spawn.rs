//! The `orchestrator` binary as a child process (`bench-start`, `bench-ws`): where it
//! is, a command line with a clean environment, free loopback ports, and a child that
//! is stopped when dropped.

use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The workspace this crate sits in.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// `target/release/orchestrator` of this workspace (or of `CARGO_TARGET_DIR`).
pub fn default_binary() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("release/orchestrator")
}

/// An error unless `binary` exists, saying how to build it.
pub fn require(binary: &Path) -> Result<()> {
    if !binary.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p orchestrator-cli` (or pass --orchestrator)",
            binary.display()
        );
    }
    Ok(())
}

// The app `orchestrator up` runs, flattened into the arguments of the benchmarks that
// spawn it, each defaulting to the workspace's file. (A doc comment here would become
// the about text of the commands that flatten it.)
#[derive(clap::Args, Debug, Clone)]
pub struct UpApp {
    /// The Spin manifest (default: spin.toml of this workspace).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The runtime config (default: runtime-config.toml of this workspace).
    #[arg(long)]
    pub runtime_config: Option<PathBuf>,
}

impl UpApp {
    /// The manifest and runtime config, defaults filled in.
    pub fn paths(&self) -> (PathBuf, PathBuf) {
        let root = workspace();
        (
            self.manifest
                .clone()
                .unwrap_or_else(|| root.join("spin.toml")),
            self.runtime_config
                .clone()
                .unwrap_or_else(|| root.join("runtime-config.toml")),
        )
    }
}

/// A command for the `orchestrator` binary in `dir` (so no stray `.env` is read), with
/// warnings only, stdout dropped, and none of the settings a developer's shell may hold
/// that would change what is measured.
pub fn orchestrator(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for name in [
        "ORCHESTRATOR_API_TOKEN",
        "HTTP_PORT",
        "WEBSOCKET_PORT",
        "CORS_ORIGINS",
        "HEARTBEAT_SECS",
    ] {
        command.env_remove(name);
    }
    command
}

/// `orchestrator up --no-sidecar` of `manifest` on 127.0.0.1:`port`, in `dir`.
pub fn up(binary: &Path, dir: &Path, manifest: &Path, runtime_config: &Path, port: u16) -> Command {
    let mut command = orchestrator(binary, dir);
    command
        .arg("up")
        .arg("--no-sidecar")
        .arg("-f")
        .arg(manifest)
        .arg("--runtime-config-file")
        .arg(runtime_config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    command
}

/// `n` ports of `range` that could be bound just now (from a random start, so two
/// benchmarks started together are unlikely to pick the same ones).
pub fn free_ports(range: RangeInclusive<u16>, n: usize) -> Result<Vec<u16>> {
    let len = range.len();
    let start = fastrand::usize(..len);
    let mut held = Vec::new();
    for i in 0..len {
        let port = range.start() + ((start + i) % len) as u16;
        // Held until all are found, so the same port is not counted twice.
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            held.push((port, listener));
            if held.len() == n {
                return Ok(held.into_iter().map(|(p, _)| p).collect());
            }
        }
    }
    bail!("fewer than {n} free ports in {range:?}")
}

/// A child process that is stopped (SIGTERM, then SIGKILL after its grace) when dropped.
pub struct Proc {
    name: &'static str,
    child: Child,
    grace: Duration,
}

impl Proc {
    /// Start `command`; `name` says what it is in messages.
    pub fn spawn(name: &'static str, command: &mut Command, grace: Duration) -> Result<Proc> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start the {name}: {command:?}"))?;
        Ok(Proc { name, child, grace })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// An error if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.exited()? {
            Some(status) => bail!("the {} exited early: {status}", self.name),
            None => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL once the grace has passed.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "the {} did not stop within {:?} of SIGTERM; killing it",
            self.name, self.grace
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
