//! Keeps the servers under test and the load generator on separate CPUs.
//!
//! On a small machine the two otherwise compete for the same cores, and a
//! req/s ratio then mixes each server's cost with how the scheduler shares
//! the cores between it and the load generator. With the servers on one
//! half of the CPUs and the generator on the other, each server's req/s is
//! what its half can do. (One coupling stays: a response to a generator
//! that sleeps costs the server a cross-CPU wake-up, and a slower server
//! finds it asleep more often; see the README's function figures.)

use std::path::Path;

use serde::Serialize;

/// Which CPUs the servers and the load generator were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    pub servers: Vec<usize>,
    pub load: Vec<usize>,
}

impl Split {
    /// The first half of `cpus` (rounded up) for the servers, the rest for
    /// the load generator. `None` with fewer than two CPUs: nothing to split.
    pub fn of(cpus: &[usize]) -> Option<Split> {
        if cpus.len() < 2 {
            return None;
        }
        let (servers, load) = cpus.split_at(cpus.len().div_ceil(2));
        Some(Split {
            servers: servers.to_vec(),
            load: load.to_vec(),
        })
    }
}

/// The CPUs this process may use and, when pinning is asked for and there
/// are two or more, how to split them.
pub fn split_if(pin: bool) -> (Option<Vec<usize>>, Option<Split>) {
    let allowed = allowed_cpus().ok();
    let pinned = if pin {
        allowed.as_deref().and_then(Split::of)
    } else {
        None
    };
    (allowed, pinned)
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and the size passed
    // is the set's own.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins every thread of process `pid` to `cpus`. Threads it starts later
/// inherit the mask of the thread that starts them.
pub fn pin_process(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(!cpus.is_empty(), "no CPUs to pin process {pid} to");
    // SAFETY: as above; CPU_SET is given indices below CPU_SETSIZE only.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        anyhow::ensure!(
            cpu < libc::CPU_SETSIZE as usize,
            "CPU {cpu} is out of range"
        );
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let entries = std::fs::read_dir(&tasks)
        .map_err(|e| anyhow::anyhow!("cannot list the threads in {}: {e}", tasks.display()))?;
    for entry in entries {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: `set` is a valid cpu_set_t of the size given.
        let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // A thread that ended since the listing has nothing to pin.
            if e.raw_os_error() != Some(libc::ESRCH) {
                anyhow::bail!("cannot pin thread {tid} of process {pid}: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cpus_between_servers_and_load() {
        let s = |servers: &[usize], load: &[usize]| {
            Some(Split {
                servers: servers.to_vec(),
                load: load.to_vec(),
            })
        };
        let cases: &[(&[usize], Option<Split>)] = &[
            (&[], None),
            (&[3], None),
            (&[0, 1], s(&[0], &[1])),
            (&[0, 1, 2], s(&[0, 1], &[2])),
            (&[0, 1, 2, 3], s(&[0, 1], &[2, 3])),
            // Whatever CPUs the bench itself was given, in their order.
            (&[2, 5, 7, 9], s(&[2, 5], &[7, 9])),
        ];
        for (cpus, want) in cases {
            assert_eq!(&Split::of(cpus), want, "cpus {cpus:?}");
        }
    }

    #[test]
    fn pins_a_process_and_refuses_bad_input() {
        let cpus = allowed_cpus().expect("affinity of this process");
        assert!(!cpus.is_empty());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let first = cpus[..1].to_vec();
        pin_process(pid, &first).expect("pin");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(allowed, first[0].to_string());
        assert!(pin_process(pid, &[]).is_err(), "no CPUs");
        assert!(pin_process(pid, &[libc::CPU_SETSIZE as usize]).is_err());
        let _ = child.kill();
        let _ = child.wait();
        assert!(pin_process(pid, &first).is_err(), "process gone");
    }
}
