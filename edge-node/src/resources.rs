//! The host's memory and the data directory's disk, reported with the
//! node's status (the coordinator's edge memory and disk alerts). A reading
//! that fails reports zeros: "unknown", never an alert.

use std::path::Path;

use protocol::errors::Resources;

/// Memory from `/proc/meminfo` and the file system holding `data_dir`.
pub fn read(data_dir: &Path) -> Resources {
    let (memory_used, memory_total) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or((0, 0));
    let (disk_used, disk_total) = platform::fs::disk_usage(data_dir).unwrap_or((0, 0));
    Resources {
        memory_used,
        memory_total,
        disk_used,
        disk_total,
    }
}

/// `(used, total)` bytes from meminfo text: used is `MemTotal` less
/// `MemAvailable` (page cache is not "used").
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match name.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        let mut parts = value.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        let bytes = match parts.next() {
            Some("kB") => n.checked_mul(1024)?,
            None => n,
            Some(_) => return None,
        };
        *slot = Some(bytes);
    }
    let (total, available) = (total?, available?);
    Some((total.saturating_sub(available), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_table() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            (
                "MemTotal:       16384 kB\nMemFree:  1024 kB\nMemAvailable:    4096 kB\n",
                Some((12288 * 1024, 16384 * 1024)),
            ),
            // Order does not matter; other lines are skipped.
            (
                "MemAvailable: 10 kB\nBuffers: 3 kB\nMemTotal: 30 kB",
                Some((20 * 1024, 30 * 1024)),
            ),
            // Available above total (never seen, but no underflow).
            ("MemTotal: 1 kB\nMemAvailable: 2 kB", Some((0, 1024))),
            // Old kernels without MemAvailable: unknown.
            ("MemTotal: 1 kB\nMemFree: 1 kB", None),
            ("MemTotal: lots kB\nMemAvailable: 1 kB", None),
            ("MemTotal: 1 MB\nMemAvailable: 1 kB", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_meminfo(text), *want, "{text:?}");
        }
    }

    #[test]
    fn reads_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let r = read(dir.path());
        assert!(
            r.memory_total > 0 && r.memory_used <= r.memory_total,
            "{r:?}"
        );
        assert!(r.disk_total > 0 && r.disk_used <= r.disk_total, "{r:?}");
        let missing = read(&dir.path().join("missing"));
        assert_eq!((missing.disk_used, missing.disk_total), (0, 0));
    }
}
