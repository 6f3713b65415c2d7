//! The sidecar's connections to the API, read from `/proc/net/tcp`, `/proc/PID/fd` and
//! `ss`: how many there are at a time, and which of them carry requests. `bench-ws`
//! expects one, whatever the number of WebSocket clients.

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Inodes of ESTABLISHED TCP sockets whose remote port is `port`, with their local ports.
fn established_to(port: u16) -> HashMap<u64, u16> {
    let mut found = HashMap::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "01" {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(cols[2]) != Some(port) {
                continue;
            }
            if let (Some(local), Ok(inode)) = (port_of(cols[1]), cols[9].parse::<u64>()) {
                found.insert(inode, local);
            }
        }
    }
    found
}

/// Local ports of the ESTABLISHED connections from process `pid` to `port`.
fn connections_to(pid: u32, port: u16) -> Vec<u16> {
    let sockets = established_to(port);
    if sockets.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        {
            if let Some(local) = sockets.get(&inode) {
                ports.push(*local);
            }
        }
    }
    ports
}

/// `bytes_sent` per local port of the ESTABLISHED connections to `port`, from `ss -tni`
/// (None when `ss` is not there).
pub fn bytes_sent_to(port: u16) -> Option<HashMap<u16, u64>> {
    let output = Command::new("ss")
        .args(["-tniH", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut sent = HashMap::new();
    let mut local: Option<u16> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // "Recv-Q Send-Q Local:Port Peer:Port": the first address is ours.
            local = line
                .split_whitespace()
                .find(|t| t.contains(':'))
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok());
            if let Some(local) = local {
                sent.insert(local, 0);
            }
        } else if let Some(local) = local {
            if let Some(n) = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("bytes_sent:"))
                .and_then(|n| n.parse().ok())
            {
                sent.insert(local, n);
            }
        }
    }
    Some(sent)
}

/// What the connection monitor saw in one phase.
#[derive(Default, Clone, Debug)]
pub struct ConnStats {
    pub samples: usize,
    pub max_concurrent: usize,
    pub min_concurrent: Option<usize>,
    pub distinct: BTreeSet<u16>,
}

/// Samples the sidecar's upstream connections every 100 ms into the current phase's
/// stats until stopped.
pub struct ConnMonitor {
    phase: Arc<Mutex<Vec<ConnStats>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnMonitor {
    pub fn start(pid: u32, port: u16) -> ConnMonitor {
        let phase = Arc::new(Mutex::new(vec![ConnStats::default()]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let phase = phase.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ports = connections_to(pid, port);
                    {
                        let mut phases = phase.lock().unwrap();
                        let stats = phases.last_mut().unwrap();
                        stats.samples += 1;
                        stats.max_concurrent = stats.max_concurrent.max(ports.len());
                        stats.min_concurrent = Some(
                            stats
                                .min_concurrent
                                .map_or(ports.len(), |m| m.min(ports.len())),
                        );
                        stats.distinct.extend(ports);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        ConnMonitor {
            phase,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the current phase and starts a new one.
    pub fn next_phase(&self) {
        self.phase.lock().unwrap().push(ConnStats::default());
    }

    pub fn finish(mut self) -> Vec<ConnStats> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.phase.lock().unwrap().clone()
    }
}
