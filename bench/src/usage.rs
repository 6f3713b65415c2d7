//! What a process uses, read from `/proc` (Linux; elsewhere the readings are zero or
//! errors): CPU time of a process or of some of this process's threads, its memory, and
//! the machine's core count and load average to print beside them.

use std::time::Instant;

use anyhow::{Context, Result};

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` writes them (`?` if unread).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`
/// (`/proc/self/task/*/schedstat`, nanoseconds on CPU; Linux only, 0 elsewhere).
/// Threads that exited meanwhile are not counted.
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns: u64 = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Some(v) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
        {
            ns += v;
        }
    }
    ns as f64 / 1e9
}

/// The memory lines of `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kb: u64,
    /// `VmHWM`: the most ever resident.
    pub hwm_kb: u64,
    /// `RssAnon`: resident anonymous memory (heaps, stacks).
    pub anon_kb: u64,
    /// `RssFile`: resident file-backed memory (the binary, mapped files).
    pub file_kb: u64,
}

/// The memory of process `pid` now.
pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        anon_kb: kb("RssAnon:"),
        file_kb: kb("RssFile:"),
    })
}

/// KiB as MiB.
pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// One reading of a process: when, its CPU time so far and its memory.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// Clock ticks per second, the unit of [`Sample::cpu_ticks`].
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Read process `pid` now.
pub fn sample(pid: u32) -> Result<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')').context("odd /proc/PID/stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        Ok(fields
            .get(n - 3)
            .context("short /proc/PID/stat")?
            .parse::<u64>()?)
    };
    let cpu_ticks = field(14)? + field(15)?;
    let memory = memory(pid)?;
    Ok(Sample {
        at,
        cpu_ticks,
        rss_kb: memory.rss_kb,
        hwm_kb: memory.hwm_kb,
    })
}

/// CPU seconds, wall seconds and percent of one core between two samples.
pub fn cpu_between(a: &Sample, b: &Sample, ticks: f64) -> (f64, f64, f64) {
    let secs = (b.cpu_ticks - a.cpu_ticks) as f64 / ticks;
    let wall = (b.at - a.at).as_secs_f64();
    (secs, wall, 100.0 * secs / wall.max(1e-9))
}
