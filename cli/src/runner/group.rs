//! Ending a run's process group: SIGTERM, then SIGKILL after a grace, and waiting until
//! no process of the group is left.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::time::Instant;

/// SIGTERM to the process group, then SIGKILL once `grace` has passed, and wait until no
/// process of the group is left (or the grace after the KILL).
pub(super) async fn terminate_group(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    loop {
        if status.is_none() {
            status = child.try_wait()?;
        }
        if status.is_some() && !group_alive(pgid) {
            break;
        }
        if Instant::now() >= deadline {
            signal_group(pgid, libc::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match status {
        Some(status) => Ok(status),
        None => child.wait().await,
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of group `pgid` exists (zombies included until reaped).
fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 checks existence only.
    unsafe { libc::kill(-pgid, 0) == 0 }
}
