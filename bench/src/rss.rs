//! Resident set sizes from /proc: one process's VmRSS, a process tree's
//! (nginx: the master and its workers), and the peak of either while a
//! load runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// How often [`Peak`] reads the resident set.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// VmRSS of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    vm_rss(&s).with_context(|| format!("no VmRSS in {path}"))
}

/// The `VmRSS:` line of a /proc/<pid>/status text, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `pid` and every process under it (children of any of its threads).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
                }
            }
        }
        i += 1;
    }
    out
}

/// VmRSS summed over `pid`'s tree (pages the processes share count once
/// per process); the number of processes. An error if `pid` is gone;
/// children exiting meanwhile are skipped.
pub fn tree_rss_bytes(pid: u32) -> anyhow::Result<(u64, usize)> {
    let root = rss_bytes(pid)?;
    let mut total = root;
    let mut n = 1;
    for p in tree(pid).into_iter().skip(1) {
        if let Ok(b) = rss_bytes(p) {
            total += b;
            n += 1;
        }
    }
    Ok((total, n))
}

/// The highest resident set of a process (or its tree) seen every
/// [`SAMPLE_EVERY`] until [`stop`](Peak::stop).
pub struct Peak {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    pid: u32,
    tree: bool,
}

impl Peak {
    /// Starts sampling `pid`, with its descendants when `tree`.
    pub fn start(pid: u32, tree: bool) -> Peak {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(b) = sample(pid, tree) {
                    p.fetch_max(b, Ordering::Relaxed);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Peak {
            peak,
            task,
            pid,
            tree,
        }
    }

    /// The peak in bytes (one last sample included); an error if no
    /// sample could be read (the process was gone throughout).
    pub fn stop(self) -> anyhow::Result<u64> {
        self.task.abort();
        let last = sample(self.pid, self.tree).unwrap_or(0);
        match self.peak.load(Ordering::Relaxed).max(last) {
            0 => anyhow::bail!("no resident set read for process {}", self.pid),
            b => Ok(b),
        }
    }
}

fn sample(pid: u32, tree: bool) -> Option<u64> {
    if tree {
        tree_rss_bytes(pid).ok().map(|(b, _)| b)
    } else {
        rss_bytes(pid).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tnginx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nRssAnon:\t 10 kB\n";
        assert_eq!(vm_rss(status), Some(1234 * 1024));
        assert_eq!(vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn a_tree_holds_the_children() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(me);
        assert_eq!(t[0], me);
        assert!(t.contains(&child.id()), "{t:?}");
        let (total, n) = tree_rss_bytes(me).unwrap();
        assert!(n >= 2, "{n}");
        assert!(total > rss_bytes(me).unwrap(), "{total}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(rss_bytes(u32::MAX).is_err());
    }

    #[tokio::test]
    async fn a_peak_is_sampled_and_a_missing_process_is_an_error() {
        let p = Peak::start(std::process::id(), false);
        tokio::time::sleep(SAMPLE_EVERY * 2).await;
        assert!(p.stop().unwrap() > 0);
        let gone = Peak::start(u32::MAX, true);
        tokio::time::sleep(SAMPLE_EVERY * 2).await;
        assert!(gone.stop().is_err());
    }
}
