//! Child processes that die as a whole: each runs in its own process group,
//! and a deadline or a cancel kills the group and reaps the child.

use std::process::{ExitStatus, Output, Stdio};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a process was killed before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    Deadline,
    Canceled,
}

#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(std::io::Error),
    Stopped(Stopped),
}

/// Puts the command in a new process group so the whole group can be
/// killed, and makes dropping the handle kill it too.
pub(crate) fn isolate(cmd: &mut Command) {
    cmd.process_group(0).kill_on_drop(true);
}

/// SIGKILL to the child's process group, then reap the child.
pub(crate) async fn kill_tree(child: &mut Child) {
    if let Some(pid) = child.id() {
        // The child leads its own group (see `isolate`), so -pid names
        // exactly the processes it started that stayed in the group.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

/// Waits for the child unless the deadline passes or `cancel` fires first;
/// then the group is killed and the child reaped before returning.
pub(crate) async fn wait(
    child: &mut Child,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<ExitStatus, RunError> {
    let stopped = tokio::select! {
        status = child.wait() => return status.map_err(RunError::Spawn),
        _ = tokio::time::sleep_until(deadline) => Stopped::Deadline,
        _ = cancel.cancelled() => Stopped::Canceled,
    };
    kill_tree(child).await;
    Err(RunError::Stopped(stopped))
}

/// Keeps the first `cap` bytes of a stream and drains the rest, so a chatty
/// child never blocks on a full pipe.
async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs to completion with captured (bounded) stdout and stderr.
pub(crate) async fn output(
    mut cmd: Command,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Output, RunError> {
    const CAP: usize = 256 * 1024;
    isolate(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let pid = child.id();
    let out = tokio::spawn(read_capped(child.stdout.take().expect("piped"), CAP));
    let err = tokio::spawn(read_capped(child.stderr.take().expect("piped"), CAP));
    let status = wait(&mut child, deadline, cancel).await;
    let status = match status {
        Ok(s) => {
            // Leftovers in the group (a helper the child forked) would hold
            // the pipes open and stall the readers below.
            if let Some(pid) = pid {
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
            s
        }
        Err(e) => {
            out.abort();
            err.abort();
            return Err(e);
        }
    };
    Ok(Output {
        status,
        stdout: out.await.unwrap_or_default(),
        stderr: err.await.unwrap_or_default(),
    })
}
