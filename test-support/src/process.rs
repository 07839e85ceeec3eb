//! A child process of a test or benchmark: stdout lines arrive on a
//! channel (so a test can wait for "serving http://…"), stderr goes to a
//! log file kept for post-mortems, and the process is killed on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long a process may take to print the line a caller waits for.
pub const STARTUP: Duration = Duration::from_secs(60);

/// The log filter children get unless the caller sets `RUST_LOG`.
const DEFAULT_LOG: &str = "info,pingora_core=warn";

pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `bin` with `args` and `envs`; its stderr goes to `log`.
    pub fn launch<S: AsRef<OsStr>>(
        bin: &Path,
        args: &[S],
        log: PathBuf,
        envs: &[(&str, &str)],
    ) -> Result<Proc> {
        let stderr = std::fs::File::create(&log)
            .map_err(|e| Error::new(format!("creating {}: {e}", log.display())))?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", DEFAULT_LOG)
            .env_remove("RUST_BACKTRACE");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("starting {}: {e}", bin.display())))?;
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            lines: rx,
            log,
        })
    }

    /// [`launch`](Self::launch) for tests: panics when the process cannot start.
    pub fn spawn(bin: &Path, args: &[&str], log: PathBuf, envs: &[(&str, &str)]) -> Proc {
        Self::launch(bin, args, log, envs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits up to `within` for a stdout line containing `needle`.
    pub fn try_wait_line(&mut self, needle: &str, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    return Err(Error::new(format!(
                        "no line containing {needle:?}; exit status {:?}; log:\n{}",
                        self.child.try_wait(),
                        self.log_text()
                    )))
                }
            }
        }
    }

    /// Waits for a stdout line containing `needle`, or panics with the log.
    pub fn wait_line(&mut self, needle: &str) -> String {
        self.try_wait_line(needle, STARTUP)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (up to 30 s) for a graceful exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends `sig` (`TERM`, `STOP`, `CONT`, …) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The socket address printed after `prefix` in `line` (up to `/`, a
/// space or a comma).
pub fn addr_after(line: &str, prefix: &str) -> Result<SocketAddr> {
    let start = line
        .find(prefix)
        .ok_or_else(|| Error::new(format!("{prefix:?} not in {line:?}")))?
        + prefix.len();
    let rest = &line[start..];
    let end = rest.find(['/', ' ', ',']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .map_err(|e| Error::new(format!("address in {line:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_after_their_prefix() {
        let line = "coordinator API on http://127.0.0.1:4100/api/v1, edge QUIC on 127.0.0.1:4101";
        assert_eq!(
            addr_after(line, "http://").unwrap(),
            "127.0.0.1:4100".parse().unwrap()
        );
        assert_eq!(
            addr_after(line, "edge QUIC on ").unwrap(),
            "127.0.0.1:4101".parse().unwrap()
        );
        assert!(addr_after(line, "https://").is_err());
        assert!(addr_after("serving http://nowhere", "http://").is_err());
    }

    #[test]
    fn a_line_is_waited_for_and_a_silent_process_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::launch(
            Path::new("sh"),
            &["-c", "echo noise; echo ready at 1; sleep 5"],
            dir.path().join("sh.log"),
            &[],
        )
        .unwrap();
        assert_eq!(p.wait_line("ready"), "ready at 1");
        let err = p
            .try_wait_line("never", Duration::from_millis(200))
            .unwrap_err();
        assert!(err.to_string().contains("never"), "{err}");
    }
}
