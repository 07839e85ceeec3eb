//! The edge's spool: every closed record is on disk before it is sent, and
//! leaves only once the coordinator has acknowledged it. One file per
//! record, written once (temporary file, fsync, rename) and never changed
//! in place, each with a checksum: a torn or damaged file is found on read,
//! logged and skipped, and the rest still ship.
//!
//! When the spool is over its size, the oldest minutes are merged into
//! their hour (then hours into their day) instead of being dropped; only a
//! spool of days alone loses its oldest. The record last sent and not yet
//! acknowledged is never merged: the coordinator may have counted it, and
//! its id is what makes a resend harmless.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::record::{Granularity, Record, RecordId, MAX_RECORD_BYTES};

const MAGIC: &[u8; 4] = b"OPA1";
const SUFFIX: &str = ".rec";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool file {path}: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("spool I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A record's file in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub id: RecordId,
    pub granularity: Granularity,
    pub bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn letter(g: Granularity) -> char {
    match g {
        Granularity::Minute => 'm',
        Granularity::Hour => 'h',
        Granularity::Day => 'd',
    }
}

/// `<start>-<m|h|d>-<seq>.rec`, zero-padded so names sort by time.
fn file_name(id: RecordId, g: Granularity) -> String {
    format!("{:012}-{}-{:020}{SUFFIX}", id.start, letter(g), id.seq)
}

fn parse_name(name: &str) -> Option<(RecordId, Granularity)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let start = parts.next()?.parse().ok()?;
    let g = match parts.next()? {
        "m" => Granularity::Minute,
        "h" => Granularity::Hour,
        "d" => Granularity::Day,
        _ => return None,
    };
    let seq = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some((RecordId { start, seq }, g))
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        // Temporary files of a write cut short by a crash.
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    pub fn write(&self, r: &Record) -> Result<Entry, SpoolError> {
        let payload = r.encode();
        let mut bytes = Vec::with_capacity(payload.len() + 40);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
        let path = self.dir.join(file_name(r.id, r.granularity));
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(Entry {
            path,
            id: r.id,
            granularity: r.granularity,
            bytes: bytes.len() as u64,
        })
    }

    /// The records waiting, oldest first. Files that are not records are
    /// left alone.
    pub fn list(&self) -> Vec<Entry> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut v: Vec<Entry> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let (id, granularity) = parse_name(name.to_str()?)?;
                Some(Entry {
                    path: e.path(),
                    id,
                    granularity,
                    bytes: e.metadata().ok()?.len(),
                })
            })
            .collect();
        v.sort_by_key(|e| (e.id.start, e.granularity, e.id.seq));
        v
    }

    /// Records waiting and their bytes on disk.
    pub fn usage(&self) -> (usize, u64) {
        let l = self.list();
        (l.len(), l.iter().map(|e| e.bytes).sum())
    }

    /// Reads and checks one record.
    pub fn read(&self, e: &Entry) -> Result<Record, SpoolError> {
        let damaged = |what: String| SpoolError::Damaged {
            path: e.path.clone(),
            what,
        };
        if e.bytes > (MAX_RECORD_BYTES + 64) as u64 {
            return Err(damaged(format!("{} bytes, more than any record", e.bytes)));
        }
        let bytes = fs::read(&e.path).map_err(io(&e.path))?;
        if bytes.len() < 40 || &bytes[..4] != MAGIC {
            return Err(damaged("not a spool record (truncated or foreign)".into()));
        }
        let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        if bytes.len() != 8 + len + 32 {
            return Err(damaged(format!(
                "length {len} does not match the file's {} bytes (truncated?)",
                bytes.len()
            )));
        }
        let payload = &bytes[8..8 + len];
        if blake3::hash(payload).as_bytes() != &bytes[8 + len..] {
            return Err(damaged("checksum mismatch".into()));
        }
        let r = Record::decode(payload).map_err(|err| damaged(err.to_string()))?;
        if r.id != e.id || r.granularity != e.granularity {
            return Err(damaged(
                "the record inside is not the one its name says".into(),
            ));
        }
        Ok(r)
    }

    pub fn remove(&self, e: &Entry) {
        if let Err(err) = fs::remove_file(&e.path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %e.path.display(), error = %err, "could not remove a spool record");
            }
        }
    }

    /// Brings the spool under its size by merging the oldest records into
    /// coarser ones (never `in_flight`); returns how many records it
    /// merged and how many it had to drop.
    pub fn shrink(
        &self,
        in_flight: Option<RecordId>,
        mut next_seq: impl FnMut() -> u64,
    ) -> (usize, usize) {
        let (mut merged, mut dropped) = (0, 0);
        loop {
            let entries = self.list();
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            if total <= self.max_bytes {
                return (merged, dropped);
            }
            let movable: Vec<&Entry> = entries.iter().filter(|e| Some(e.id) != in_flight).collect();
            // The finest granularity that still has records merges first.
            let Some(fine) = [Granularity::Minute, Granularity::Hour]
                .into_iter()
                .find(|g| movable.iter().any(|e| e.granularity == *g))
            else {
                // Days only: the oldest goes.
                let Some(oldest) = movable.first() else {
                    return (merged, dropped);
                };
                tracing::warn!(
                    start = oldest.id.start,
                    "analytics spool is full of days; dropping the oldest"
                );
                self.remove(oldest);
                dropped += 1;
                continue;
            };
            let coarse = fine
                .coarser()
                .expect("minutes and hours have a coarser bucket");
            // The oldest coarse bucket with records of `fine`; all of them.
            let first = movable
                .iter()
                .find(|e| e.granularity == fine)
                .expect("found above");
            let bucket = coarse.floor(first.id.start);
            let group: Vec<&Entry> = movable
                .iter()
                .copied()
                .filter(|e| {
                    e.granularity <= fine
                        && coarse.floor(e.id.start) == bucket
                        && e.granularity != coarse
                })
                .collect();
            let mut records = Vec::new();
            for e in &group {
                match self.read(e) {
                    Ok(r) => records.push(r),
                    Err(err) => {
                        tracing::warn!(error = %err, "skipping a damaged analytics spool record")
                    }
                }
            }
            // Folding the bucket's existing coarse records in as well keeps
            // one record per bucket.
            let coarse_peers: Vec<&Entry> = movable
                .iter()
                .copied()
                .filter(|e| e.granularity == coarse && e.id.start == bucket)
                .collect();
            for e in &coarse_peers {
                if let Ok(r) = self.read(e) {
                    records.push(r);
                }
            }
            let Some(one) = Record::coarsen(&records, coarse, next_seq()) else {
                for e in group.iter().chain(&coarse_peers) {
                    self.remove(e);
                }
                continue;
            };
            let written = one.encode().len() <= MAX_RECORD_BYTES && self.write(&one).is_ok();
            if !written {
                tracing::warn!(
                    start = bucket,
                    "a coarsened analytics record could not be written; its parts are dropped"
                );
                dropped += group.len();
            } else {
                merged += group.len() + coarse_peers.len();
            }
            for e in group.iter().chain(&coarse_peers) {
                self.remove(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Aggregate, Env, SiteKey};

    fn record(start: i64, seq: u64, requests: u64) -> Record {
        Record {
            id: RecordId { start, seq },
            granularity: Granularity::Minute,
            sites: vec![(
                SiteKey {
                    project: "p".into(),
                    deployment: "d".into(),
                    env: Env::Production,
                },
                Aggregate {
                    requests,
                    ..Default::default()
                },
            )],
        }
    }

    #[test]
    fn records_survive_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for (i, r) in [
            record(60, 1, 1),
            record(120, 2, 2),
            record(180, 3, 3),
            record(240, 4, 4),
        ]
        .iter()
        .enumerate()
        {
            let e = spool.write(r).unwrap();
            assert_eq!(spool.read(&e).unwrap(), *r, "{i}");
        }
        fs::write(dir.path().join("notes.txt"), "not a record").unwrap();
        let list = spool.list();
        assert_eq!(list.len(), 4);
        // Truncated, flipped, emptied.
        let b = fs::read(&list[0].path).unwrap();
        fs::write(&list[0].path, &b[..b.len() / 2]).unwrap();
        let mut b = fs::read(&list[1].path).unwrap();
        b[12] ^= 0xff;
        fs::write(&list[1].path, &b).unwrap();
        fs::write(&list[2].path, b"").unwrap();
        let list = spool.list();
        for (e, want) in list
            .iter()
            .zip(["truncated", "checksum", "not a spool record"])
        {
            let err = spool.read(e).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        assert_eq!(spool.read(&list[3]).unwrap().sites[0].1.requests, 4);
        // A file renamed to another record's name is refused too.
        let moved = dir.path().join(file_name(
            RecordId { start: 300, seq: 9 },
            Granularity::Minute,
        ));
        fs::copy(&list[3].path, &moved).unwrap();
        let e = spool.list().into_iter().find(|e| e.path == moved).unwrap();
        assert!(spool
            .read(&e)
            .unwrap_err()
            .to_string()
            .contains("not the one"));
    }

    #[test]
    fn a_full_spool_coarsens_instead_of_dropping() {
        let dir = tempfile::tempdir().unwrap();
        let one = {
            let d = tempfile::tempdir().unwrap();
            Spool::open(d.path(), 1 << 20)
                .unwrap()
                .write(&record(0, 0, 1))
                .unwrap()
                .bytes
        };
        // Room for about ten records; three hours of minutes written.
        let spool = Spool::open(dir.path(), one * 10).unwrap();
        let mut seq = 0;
        let mut total = 0;
        for m in 0..180 {
            seq += 1;
            spool.write(&record(m * 60, seq, 1)).unwrap();
            total += 1;
        }
        let in_flight = spool.list()[0].id;
        let (merged, dropped) = spool.shrink(Some(in_flight), || {
            seq += 1;
            seq
        });
        assert!(merged > 0);
        assert_eq!(dropped, 0);
        let (_, bytes) = spool.usage();
        assert!(bytes <= one * 10, "{bytes}");
        // Every request is still there, and the in-flight record untouched.
        let list = spool.list();
        assert!(list.iter().any(|e| e.id == in_flight));
        let sum: u64 = list
            .iter()
            .map(|e| {
                spool
                    .read(e)
                    .unwrap()
                    .sites
                    .iter()
                    .map(|s| s.1.requests)
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(sum, total);
    }

    #[test]
    fn names_parse_strictly() {
        let id = RecordId { start: 60, seq: 5 };
        assert_eq!(
            parse_name(&file_name(id, Granularity::Hour)),
            Some((id, Granularity::Hour))
        );
        for bad in [
            "x.rec",
            "60-m-5",
            "60-q-5.rec",
            "60-m-5-6.rec",
            "-1-m-5.rec.tmp",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
