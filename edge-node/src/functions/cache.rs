//! Compiled components on disk: `<dir>/<component hash>-<engine hash>.cwasm`.
//!
//! The engine hash is `Engine::precompile_compatibility_hash` (wasmtime
//! version, target, compiler settings) fed through blake3, so an upgrade or
//! a settings change picks new names instead of loading stale code. Files
//! are written to a temporary name, synced and renamed into place, so a
//! crash never leaves a partial artefact under a final name.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::BlobHash;

/// A `Hasher` over blake3, so `Hash` values get a digest that is stable
/// across processes (std's `DefaultHasher` makes no such promise).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let d = self.0.finalize();
        u64::from_le_bytes(d.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

/// 32 hex characters identifying what compiled code an engine accepts.
pub fn compatibility_tag(hashable: impl Hash) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    hashable.hash(&mut h);
    h.0.finalize().to_hex()[..32].to_string()
}

pub fn artefact_path(dir: &Path, component: &BlobHash, tag: &str) -> PathBuf {
    dir.join(format!("{}-{tag}.cwasm", component.to_hex()))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("artefact paths have a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artefact"),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Leftover temporary files of an interrupted write.
pub fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_depend_on_component_and_engine() {
        let dir = Path::new("/data/functions");
        let a = BlobHash::of(b"a");
        let b = BlobHash::of(b"b");
        let t1 = compatibility_tag(("wasmtime 48", "x86_64", 1u32));
        let t2 = compatibility_tag(("wasmtime 48", "x86_64", 2u32));
        assert_eq!(t1, compatibility_tag(("wasmtime 48", "x86_64", 1u32)));
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 32);
        let p = artefact_path(dir, &a, &t1);
        assert_eq!(p, dir.join(format!("{}-{t1}.cwasm", a.to_hex())),);
        assert_ne!(p, artefact_path(dir, &b, &t1));
        assert_ne!(p, artefact_path(dir, &a, &t2));
    }

    #[test]
    fn atomic_write_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.cwasm");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        std::fs::write(dir.path().join("sub/.x.cwasm.1.tmp"), b"partial").unwrap();
        remove_temporaries(&dir.path().join("sub"));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.cwasm")]);
    }
}
