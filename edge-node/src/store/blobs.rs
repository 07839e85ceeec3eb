//! Content-addressed blob files: `blobs/<2 hex>/<64 hex>`.
//!
//! Blobs are written to a temporary file while being hashed and renamed into
//! place only when the hash matches, so a file under its final name was
//! complete and correct when written. Reads verify again: a small blob is
//! hashed on every read from disk (then cached in memory), a large one once
//! per (size, mtime, inode) of its file. A mismatch deletes the file and is
//! reported on the `corrupt` channel so the sync loop fetches it again.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::BlobHash;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Blobs up to this size are served from memory after verification.
pub const SMALL_BLOB_BYTES: u64 = 256 * 1024;
/// Memory given to the small-blob cache.
const MEMORY_CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} is not on this node")]
    Missing(BlobHash),
    #[error("blob {0} on disk does not match its hash; it was removed and will be fetched again")]
    Corrupt(BlobHash),
    #[error("received bytes hash to {actual}, expected {expected}")]
    HashMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error("received {actual} bytes for a blob of {expected} bytes")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("blob store i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A verified blob, ready to send.
pub enum BlobBody {
    Memory(Bytes),
    File { file: std::fs::File, len: u64 },
}

impl BlobBody {
    pub fn len(&self) -> u64 {
        match self {
            BlobBody::Memory(b) => b.len() as u64,
            BlobBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileStamp {
    fn of(m: &std::fs::Metadata) -> Self {
        FileStamp {
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ino: m.ino(),
        }
    }
}

#[derive(Default)]
struct Caches {
    memory: HashMap<BlobHash, Bytes>,
    memory_bytes: usize,
    verified_files: HashMap<BlobHash, FileStamp>,
}

pub struct BlobStore {
    root: PathBuf,
    caches: Mutex<Caches>,
    // Bounded: a burst of requests for one bad blob must not queue without
    // limit; dropping a report is fine, the first one already queued a fetch.
    corrupt: mpsc::Sender<BlobHash>,
}

impl BlobStore {
    /// Opens (creating) the store under `root`; corrupt blobs found while
    /// serving are announced on the returned receiver.
    pub fn open(root: &Path) -> Result<(Arc<Self>, mpsc::Receiver<BlobHash>), BlobError> {
        std::fs::create_dir_all(root.join("tmp"))?;
        // Leftovers of a crash mid-write are never valid blobs.
        for e in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        let (tx, rx) = mpsc::channel(1024);
        Ok((
            Arc::new(BlobStore {
                root: root.to_path_buf(),
                caches: Mutex::default(),
                corrupt: tx,
            }),
            rx,
        ))
    }

    fn path_of(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Streams a blob from `chunks` into the store, verifying size and hash
    /// before it becomes visible.
    pub async fn write<E>(
        &self,
        hash: &BlobHash,
        expected_size: u64,
        mut next_chunk: impl AsyncChunkSource<E>,
    ) -> Result<(), WriteError<E>> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{}", hash.to_hex(), rand_suffix()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(BlobError::Io)?;
            let mut hasher = blake3::Hasher::new();
            let mut written: u64 = 0;
            while let Some(chunk) = next_chunk.next_chunk().await.map_err(WriteError::Source)? {
                written += chunk.len() as u64;
                if written > expected_size {
                    return Err(BlobError::SizeMismatch {
                        expected: expected_size,
                        actual: written,
                    }
                    .into());
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(BlobError::Io)?;
            }
            if written != expected_size {
                return Err(BlobError::SizeMismatch {
                    expected: expected_size,
                    actual: written,
                }
                .into());
            }
            let actual = BlobHash::from_blake3(hasher.finalize());
            if actual != *hash {
                return Err(BlobError::HashMismatch {
                    expected: *hash,
                    actual,
                }
                .into());
            }
            file.sync_all().await.map_err(BlobError::Io)?;
            drop(file);
            let dest = self.path_of(hash);
            tokio::fs::create_dir_all(dest.parent().unwrap())
                .await
                .map_err(BlobError::Io)?;
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(BlobError::Io)?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// A verified small blob from memory, if cached. Never blocks on disk.
    pub fn cached(&self, hash: &BlobHash) -> Option<Bytes> {
        self.caches.lock().unwrap().memory.get(hash).cloned()
    }

    /// Opens a blob for serving, verified against its hash. Blocking: call
    /// from `spawn_blocking` or accept the cost for small files.
    pub fn open_verified(&self, hash: &BlobHash) -> Result<BlobBody, BlobError> {
        if let Some(b) = self.cached(hash) {
            return Ok(BlobBody::Memory(b));
        }
        let path = self.path_of(hash);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Someone deleted it under us: fetch it again, like a corrupt one.
                let _ = self.corrupt.try_send(*hash);
                return Err(BlobError::Missing(*hash));
            }
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        if meta.len() <= SMALL_BLOB_BYTES {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut buf)?;
            if BlobHash::of(&buf) != *hash {
                return Err(self.quarantine(hash, &path));
            }
            let bytes = Bytes::from(buf);
            self.remember(hash, &bytes);
            return Ok(BlobBody::Memory(bytes));
        }
        let stamp = FileStamp::of(&meta);
        let known = self.caches.lock().unwrap().verified_files.get(hash) == Some(&stamp);
        if !known {
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(&mut file)?;
            if BlobHash::from_blake3(hasher.finalize()) != *hash {
                return Err(self.quarantine(hash, &path));
            }
            self.caches
                .lock()
                .unwrap()
                .verified_files
                .insert(*hash, stamp);
            file = std::fs::File::open(&path)?;
        }
        Ok(BlobBody::File {
            file,
            len: meta.len(),
        })
    }

    /// Every blob file under the store, with its size and modification
    /// time (Unix ms). Names that are not a blob's are left alone.
    pub fn list(&self) -> Result<Vec<super::gc::BlobFile>, BlobError> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(&self.root)? {
            let dir = dir?;
            let name = dir.file_name();
            let Some(prefix) = name.to_str().filter(|n| n.len() == 2) else {
                continue;
            };
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(dir.path())? {
                let f = f?;
                let Some(hash) = f
                    .file_name()
                    .to_str()
                    .filter(|n| n.starts_with(prefix))
                    .and_then(|n| n.parse::<BlobHash>().ok())
                else {
                    continue;
                };
                // Gone since the listing (another pass, a quarantine): skip.
                let Ok(meta) = f.metadata() else { continue };
                out.push(super::gc::BlobFile {
                    hash,
                    bytes: meta.len(),
                    modified_ms: meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000,
                });
            }
        }
        Ok(out)
    }

    /// Removes a blob's file and whatever is cached of it. Removing one
    /// that is not there is not an error.
    pub fn remove(&self, hash: &BlobHash) -> Result<(), BlobError> {
        {
            let mut c = self.caches.lock().unwrap();
            if let Some(b) = c.memory.remove(hash) {
                c.memory_bytes -= b.len();
            }
            c.verified_files.remove(hash);
        }
        match std::fs::remove_file(self.path_of(hash)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn remember(&self, hash: &BlobHash, bytes: &Bytes) {
        let mut c = self.caches.lock().unwrap();
        if c.memory_bytes + bytes.len() > MEMORY_CACHE_BYTES {
            // Crude but bounded: start over rather than track recency.
            c.memory.clear();
            c.memory_bytes = 0;
        }
        c.memory_bytes += bytes.len();
        c.memory.insert(*hash, bytes.clone());
    }

    fn quarantine(&self, hash: &BlobHash, path: &Path) -> BlobError {
        tracing::error!(blob = %hash, path = %path.display(), "blob on disk does not match its hash; removing it and fetching it again");
        let _ = std::fs::remove_file(path);
        self.caches.lock().unwrap().verified_files.remove(hash);
        let _ = self.corrupt.try_send(*hash);
        BlobError::Corrupt(*hash)
    }
}

/// Where [`BlobStore::write`] gets its bytes: a QUIC stream in practice.
pub trait AsyncChunkSource<E> {
    fn next_chunk(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>, E>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    #[error(transparent)]
    Store(#[from] BlobError),
    #[error("reading the blob failed: {0}")]
    Source(E),
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chunks(Vec<Bytes>);
    impl AsyncChunkSource<std::convert::Infallible> for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, std::convert::Infallible> {
            Ok(if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0))
            })
        }
    }

    fn chunks(data: &[u8]) -> Chunks {
        Chunks(data.chunks(7).map(Bytes::copy_from_slice).collect())
    }

    fn body_bytes(b: BlobBody) -> Vec<u8> {
        match b {
            BlobBody::Memory(b) => b.to_vec(),
            BlobBody::File { mut file, .. } => {
                let mut v = vec![];
                file.read_to_end(&mut v).unwrap();
                v
            }
        }
    }

    #[tokio::test]
    async fn write_verify_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut corrupt) = BlobStore::open(dir.path()).unwrap();
        let data = b"hello blob store".to_vec();
        let h = BlobHash::of(&data);

        // Wrong hash, short and long bodies never become visible.
        let wrong = BlobHash::of(b"other");
        assert!(matches!(
            store.write(&wrong, data.len() as u64, chunks(&data)).await,
            Err(WriteError::Store(BlobError::HashMismatch { .. }))
        ));
        assert!(matches!(
            store.write(&h, data.len() as u64 + 1, chunks(&data)).await,
            Err(WriteError::Store(BlobError::SizeMismatch { .. }))
        ));
        assert!(matches!(
            store.write(&h, 3, chunks(&data)).await,
            Err(WriteError::Store(BlobError::SizeMismatch { .. }))
        ));
        assert!(!store.contains(&h) && !store.contains(&wrong));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        store
            .write(&h, data.len() as u64, chunks(&data))
            .await
            .unwrap();
        assert_eq!(body_bytes(store.open_verified(&h).unwrap()), data);
        assert!(corrupt.try_recv().is_err());
        assert!(matches!(
            store.open_verified(&wrong),
            Err(BlobError::Missing(_))
        ));
        assert_eq!(corrupt.try_recv().unwrap(), wrong);
    }

    #[tokio::test]
    async fn corruption_is_detected_for_small_and_large_blobs() {
        let dir = tempfile::tempdir().unwrap();
        for size in [100usize, (SMALL_BLOB_BYTES as usize) * 2] {
            let (store, mut corrupt) = BlobStore::open(dir.path()).unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let h = BlobHash::of(&data);
            store.write(&h, size as u64, chunks(&data)).await.unwrap();
            let path = store.path_of(&h);
            let mut bad = data.clone();
            bad[size / 2] ^= 0xff;
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(
                store.open_verified(&h),
                Err(BlobError::Corrupt(_))
            ));
            assert_eq!(corrupt.try_recv().unwrap(), h);
            assert!(!path.exists(), "corrupt blob must be removed");
        }
    }
}
