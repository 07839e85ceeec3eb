//! The per-project package-manager store, keyed by lockfile hash.
//!
//! Layout: `<cache_dir>/<manager>/<key>/`, where key is the lockfile's
//! blake3 (16 hex digits) or `no-lockfile`. Only one key per manager is
//! kept: when the lockfile changes, the previous store is renamed to the
//! new key rather than started afresh, because the npm, pnpm, yarn and bun
//! caches are content-addressed and most packages survive a lockfile
//! change. The key then says whether this exact dependency set was
//! installed before. Two builds of one project must not run at once (the
//! coordinator's queue sees to that); they would share the store.

use std::io;
use std::path::{Path, PathBuf};

use crate::detect::PackageManager;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// This lockfile was built before.
    Hit,
    /// The store of an earlier lockfile, renamed.
    Reused,
    Empty,
}

/// A lockfile larger than this is not hashed (and not cached by key).
const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;

/// The lockfile's key, reading it only if it is a regular file (a symlink
/// in the checkout could point anywhere on the build host).
pub fn lockfile_key(root: &Path, lockfile: Option<&str>) -> io::Result<String> {
    let Some(name) = lockfile else {
        return Ok("no-lockfile".into());
    };
    let path = root.join(name);
    let meta = std::fs::symlink_metadata(&path)?;
    if !meta.file_type().is_file() || meta.len() > MAX_LOCKFILE_BYTES {
        return Ok("no-lockfile".into());
    }
    let hash = blake3::hash(&std::fs::read(&path)?);
    Ok(hash.to_hex()[..16].to_string())
}

/// The store folder for `key`, created or taken over from an earlier key.
pub fn prepare(
    cache_dir: &Path,
    pm: PackageManager,
    key: &str,
) -> io::Result<(PathBuf, CacheState)> {
    let base = cache_dir.join(pm.name());
    std::fs::create_dir_all(&base)?;
    let dir = base.join(key);
    if dir.is_dir() {
        return Ok((dir, CacheState::Hit));
    }
    let previous = std::fs::read_dir(&base)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    let state = match previous {
        Some((_, old)) => {
            std::fs::rename(old, &dir)?;
            CacheState::Reused
        }
        None => {
            std::fs::create_dir(&dir)?;
            CacheState::Empty
        }
    };
    // Leftovers from older keys would only take disk space.
    for e in std::fs::read_dir(&base)?.filter_map(Result::ok) {
        if e.path() != dir {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok((dir, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_by_lockfile_and_reused_on_change() {
        let src = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("package-lock.json"), "{\"v\":1}").unwrap();
        let k1 = lockfile_key(src.path(), Some("package-lock.json")).unwrap();
        assert_eq!(k1.len(), 16);
        let (d1, s1) = prepare(cache.path(), PackageManager::Npm, &k1).unwrap();
        assert_eq!(s1, CacheState::Empty);
        std::fs::write(d1.join("blob"), "x").unwrap();
        assert_eq!(
            prepare(cache.path(), PackageManager::Npm, &k1).unwrap(),
            (d1.clone(), CacheState::Hit)
        );

        std::fs::write(src.path().join("package-lock.json"), "{\"v\":2}").unwrap();
        let k2 = lockfile_key(src.path(), Some("package-lock.json")).unwrap();
        assert_ne!(k1, k2);
        let (d2, s2) = prepare(cache.path(), PackageManager::Npm, &k2).unwrap();
        assert_eq!(s2, CacheState::Reused);
        assert_eq!(std::fs::read_to_string(d2.join("blob")).unwrap(), "x");
        assert!(!d1.exists());

        let (_, s3) = prepare(cache.path(), PackageManager::Pnpm, &k2).unwrap();
        assert_eq!(s3, CacheState::Empty);
    }

    #[test]
    fn linked_lockfiles_are_not_read() {
        let src = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", src.path().join("yarn.lock")).unwrap();
        assert_eq!(
            lockfile_key(src.path(), Some("yarn.lock")).unwrap(),
            "no-lockfile"
        );
        assert_eq!(lockfile_key(src.path(), None).unwrap(), "no-lockfile");
    }
}
