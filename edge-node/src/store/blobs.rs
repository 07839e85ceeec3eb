//! Content-addressed blob files: `blobs/<2 hex>/<64 hex>`.
//!
//! Blobs are written to a temporary file while being hashed and renamed into
//! place only when the hash matches, so a file under its final name was
//! complete and correct when written. Reads verify again before a byte is
//! served:
//! - a blob up to [`MEMORY_BLOB_BYTES`] is read and hashed once, then served
//!   from memory (a byte budget, least recently used out first): the bytes
//!   sent are the very bytes that were hashed;
//! - a larger one, or one a caller wants as a file (zero-copy `sendfile`), is
//!   hashed once per (size, mtime, inode) of its file, and its open
//!   descriptor is kept (a bounded set, like nginx's `open_file_cache`).
//!   Every use of a kept descriptor `fstat`s it first, so a file changed
//!   since it was hashed is hashed again before it is served.
//!
//! A mismatch deletes the file and is reported on the `corrupt` channel so
//! the sync loop fetches it again.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use protocol::BlobHash;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Blobs up to this size are served from memory after verification (most
/// of a site: pages, scripts, styles, fonts, most images).
pub const MEMORY_BLOB_BYTES: u64 = 2 * 1024 * 1024;
/// Default memory given to verified blobs (`--memory-cache`).
pub const DEFAULT_MEMORY_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Open descriptors kept for blobs served from their files, at most; and
/// never more than an eighth of the process's descriptor limit, so that
/// under a shell's default of 1,024 the kept files cannot starve sockets.
const OPEN_FILES: usize = 1024;

fn open_files_bound() -> NonZeroUsize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    NonZeroUsize::new((soft / 8).clamp(16, OPEN_FILES)).expect("at least 16")
}

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
    /// A verified file. Shared: the same descriptor serves every request
    /// for it, so readers use positioned reads (`pread`, `sendfile` with
    /// an offset) and never the file's own cursor.
    File {
        file: Arc<std::fs::File>,
        len: u64,
    },
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

/// `len` bytes of a verified file from `offset`, read off the async
/// threads with a positioned read (the descriptor is shared). A file
/// shorter than that is an error: its blob was verified at full length.
pub async fn read_at(file: &Arc<std::fs::File>, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// How the caller will send the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// Bytes in memory where the blob is small enough (TLS encrypts from
    /// memory anyway; tiny bodies go out with their head in one write).
    Memory,
    /// A file descriptor, for a zero-copy `sendfile` to a plain socket.
    File,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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

struct Caches {
    memory: LruCache<BlobHash, Bytes>,
    memory_bytes: u64,
    memory_budget: u64,
    /// Verified descriptors, with the stamp their file had when hashed.
    files: LruCache<BlobHash, (Arc<std::fs::File>, FileStamp)>,
    verified_files: HashMap<BlobHash, FileStamp>,
}

impl Caches {
    fn new(memory_budget: u64) -> Self {
        Caches {
            memory: LruCache::unbounded(),
            memory_bytes: 0,
            memory_budget,
            files: LruCache::new(open_files_bound()),
            verified_files: HashMap::new(),
        }
    }

    fn forget(&mut self, hash: &BlobHash) {
        if let Some(b) = self.memory.pop(hash) {
            self.memory_bytes -= b.len() as u64;
        }
        self.files.pop(hash);
        self.verified_files.remove(hash);
    }
}

pub struct BlobStore {
    root: PathBuf,
    caches: Mutex<Caches>,
    // Bounded: a burst of requests for one bad blob must not queue without
    // limit; dropping a report is fine, the first one already queued a fetch.
    corrupt: mpsc::Sender<BlobHash>,
}

impl BlobStore {
    /// Opens (creating) the store under `root` with the default memory
    /// budget; corrupt blobs found while serving are announced on the
    /// returned receiver.
    pub fn open(root: &Path) -> Result<(Arc<Self>, mpsc::Receiver<BlobHash>), BlobError> {
        Self::open_with_memory(root, DEFAULT_MEMORY_CACHE_BYTES)
    }

    /// [`Self::open`] with `memory_bytes` for verified blobs held in memory.
    pub fn open_with_memory(
        root: &Path,
        memory_bytes: u64,
    ) -> Result<(Arc<Self>, mpsc::Receiver<BlobHash>), BlobError> {
        std::fs::create_dir_all(root.join("tmp"))?;
        // Leftovers of a crash mid-write are never valid blobs.
        for e in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        let (tx, rx) = mpsc::channel(1024);
        Ok((
            Arc::new(BlobStore {
                root: root.to_path_buf(),
                caches: Mutex::new(Caches::new(memory_bytes)),
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

    /// A verified blob without touching the disk beyond one `fstat`: from
    /// memory, or (for [`Prefer::File`]) a kept descriptor whose file is
    /// unchanged since it was hashed. `None`: ask [`Self::open_verified`]
    /// off the async threads.
    pub fn cached(&self, hash: &BlobHash, prefer: Prefer) -> Option<BlobBody> {
        let mut c = self.caches.lock().unwrap();
        if prefer == Prefer::File {
            if let Some((file, stamp)) = c.files.get(hash) {
                let (file, stamp) = (file.clone(), *stamp);
                drop(c);
                // Outside the lock: an fstat of an open file never waits on
                // the disk for data, but it is still a system call.
                return match file.metadata() {
                    Ok(m) if FileStamp::of(&m) == stamp => Some(BlobBody::File {
                        file,
                        len: stamp.len,
                    }),
                    // Changed since it was hashed (or unreadable): the
                    // blocking path opens and hashes it again.
                    _ => {
                        let mut c = self.caches.lock().unwrap();
                        c.files.pop(hash);
                        c.verified_files.remove(hash);
                        None
                    }
                };
            }
            // Not kept as a file (yet): the caller opens it once, rather
            // than copy it from memory on every request where `sendfile`
            // could send it. A copy read into memory left its file's stamp
            // in `verified_files`, so that open hashes nothing. Unless the
            // kept descriptors are all taken: then more hot files than it
            // holds would open one per request, where the copy in memory
            // costs no system call at all.
            if c.files.len() < c.files.cap().get() {
                return None;
            }
        }
        c.memory.get(hash).cloned().map(BlobBody::Memory)
    }

    /// Opens a blob for serving, verified against its hash. Blocking (it
    /// may hash the whole file): call from `spawn_blocking`.
    pub fn open_verified(&self, hash: &BlobHash) -> Result<BlobBody, BlobError> {
        self.open_for(hash, Prefer::Memory)
    }

    /// [`Self::open_verified`], as a file when `prefer` says so and the
    /// blob is not empty.
    pub fn open_for(&self, hash: &BlobHash, prefer: Prefer) -> Result<BlobBody, BlobError> {
        if let Some(b) = self.cached(hash, prefer) {
            return Ok(b);
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
        if prefer == Prefer::Memory && meta.len() <= MEMORY_BLOB_BYTES {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut buf)?;
            if BlobHash::of(&buf) != *hash {
                return Err(self.quarantine(hash, &path));
            }
            // The file is verified too, as long as its stamp holds (the
            // stamp again after reading: a write that raced the read
            // leaves nothing remembered).
            let stamp = FileStamp::of(&meta);
            if FileStamp::of(&file.metadata()?) == stamp {
                self.caches
                    .lock()
                    .unwrap()
                    .verified_files
                    .insert(*hash, stamp);
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
            // The stamp again, after hashing: a write that raced the hash
            // leaves a stamp that will not match at the next use.
            let after = FileStamp::of(&file.metadata()?);
            if after != stamp {
                return Err(self.quarantine(hash, &path));
            }
        }
        let file = Arc::new(file);
        let mut c = self.caches.lock().unwrap();
        c.verified_files.insert(*hash, stamp);
        c.files.put(*hash, (file.clone(), stamp));
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
        self.caches.lock().unwrap().forget(hash);
        match std::fs::remove_file(self.path_of(hash)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Bytes of verified blobs held in memory (for tests and metrics).
    pub fn memory_bytes(&self) -> u64 {
        self.caches.lock().unwrap().memory_bytes
    }

    fn remember(&self, hash: &BlobHash, bytes: &Bytes) {
        let mut c = self.caches.lock().unwrap();
        let len = bytes.len() as u64;
        if len > c.memory_budget {
            return;
        }
        if let Some(old) = c.memory.pop(hash) {
            c.memory_bytes -= old.len() as u64;
        }
        while c.memory_bytes + len > c.memory_budget {
            match c.memory.pop_lru() {
                Some((_, old)) => c.memory_bytes -= old.len() as u64,
                None => break,
            }
        }
        c.memory_bytes += len;
        c.memory.put(*hash, bytes.clone());
    }

    fn quarantine(&self, hash: &BlobHash, path: &Path) -> BlobError {
        tracing::error!(blob = %hash, path = %path.display(), "blob on disk does not match its hash; removing it and fetching it again");
        let _ = std::fs::remove_file(path);
        self.caches.lock().unwrap().forget(hash);
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

    /// Small chunks, to exercise reassembly; large blobs in 64 KiB ones.
    fn chunks(data: &[u8]) -> Chunks {
        let size = if data.len() > 4096 { 64 * 1024 } else { 7 };
        Chunks(data.chunks(size).map(Bytes::copy_from_slice).collect())
    }

    fn body_bytes(b: BlobBody) -> Vec<u8> {
        match b {
            BlobBody::Memory(b) => b.to_vec(),
            BlobBody::File { file, len } => {
                use std::os::unix::fs::FileExt;
                let mut v = vec![0; len as usize];
                file.read_exact_at(&mut v, 0).unwrap();
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
    async fn corruption_is_detected_in_memory_and_file_paths() {
        let dir = tempfile::tempdir().unwrap();
        // (size, how it is asked for): read into memory, or a file either
        // because it is too large for memory or because the caller wants
        // one for sendfile.
        let cases = [
            (100usize, Prefer::Memory),
            (100, Prefer::File),
            (MEMORY_BLOB_BYTES as usize + 1, Prefer::Memory),
        ];
        for (size, prefer) in cases {
            let (store, mut corrupt) = BlobStore::open(dir.path()).unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let h = BlobHash::of(&data);
            store.write(&h, size as u64, chunks(&data)).await.unwrap();
            let path = store.path_of(&h);
            let mut bad = data.clone();
            bad[size / 2] ^= 0xff;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(store.open_for(&h, prefer), Err(BlobError::Corrupt(_))),
                "{size} {prefer:?}"
            );
            assert_eq!(corrupt.try_recv().unwrap(), h);
            assert!(!path.exists(), "corrupt blob must be removed");
        }
    }

    /// A kept descriptor is only used while its file is what was hashed:
    /// a file rewritten in place after it was verified is hashed again
    /// (and here found corrupt) before any byte of it is served.
    #[tokio::test]
    async fn a_kept_descriptor_is_checked_before_every_use() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut corrupt) = BlobStore::open(dir.path()).unwrap();
        let data = vec![7u8; 300 * 1024];
        let h = BlobHash::of(&data);
        store
            .write(&h, data.len() as u64, chunks(&data))
            .await
            .unwrap();
        let first = store.open_for(&h, Prefer::File).unwrap();
        assert!(matches!(first, BlobBody::File { .. }));
        assert_eq!(body_bytes(first), data);
        // The second use comes from the kept descriptor, without opening.
        assert!(matches!(
            store.cached(&h, Prefer::File),
            Some(BlobBody::File { .. })
        ));
        // Rewrite the same inode in place, then make its mtime differ for
        // sure (the write may land within the same clock tick).
        {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(store.path_of(&h))
                .unwrap();
            f.seek(std::io::SeekFrom::Start(1000)).unwrap();
            f.write_all(b"corrupt").unwrap();
            f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
                .unwrap();
        }
        assert!(store.cached(&h, Prefer::File).is_none());
        assert!(matches!(
            store.open_for(&h, Prefer::File),
            Err(BlobError::Corrupt(_))
        ));
        assert_eq!(corrupt.try_recv().unwrap(), h);
    }

    /// A blob first read into memory (a TLS response, say) is still sent
    /// from its file where a caller wants one (sendfile), opened once and
    /// kept, and trusted by the stamp its file had when it was hashed; a
    /// file changed since then is hashed again.
    #[tokio::test]
    async fn a_blob_in_memory_is_still_opened_as_a_file_when_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut corrupt) = BlobStore::open(dir.path()).unwrap();
        let data = vec![9u8; 100 * 1024];
        let h = BlobHash::of(&data);
        store
            .write(&h, data.len() as u64, chunks(&data))
            .await
            .unwrap();
        assert!(matches!(
            store.open_for(&h, Prefer::Memory).unwrap(),
            BlobBody::Memory(_)
        ));
        assert!(matches!(
            store.cached(&h, Prefer::Memory),
            Some(BlobBody::Memory(_))
        ));
        assert!(
            store.cached(&h, Prefer::File).is_none(),
            "not kept as a file yet"
        );
        let file = store.open_for(&h, Prefer::File).unwrap();
        assert!(matches!(file, BlobBody::File { .. }));
        assert_eq!(body_bytes(file), data);
        assert!(matches!(
            store.cached(&h, Prefer::File),
            Some(BlobBody::File { .. })
        ));

        // Forget the kept descriptor, change the file: the remembered
        // stamp no longer holds, so the open hashes, and finds it corrupt.
        store.caches.lock().unwrap().files.pop(&h);
        {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(store.path_of(&h))
                .unwrap();
            f.seek(std::io::SeekFrom::Start(10)).unwrap();
            f.write_all(b"x").unwrap();
            f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
                .unwrap();
        }
        assert!(matches!(
            store.open_for(&h, Prefer::File),
            Err(BlobError::Corrupt(_))
        ));
        assert_eq!(corrupt.try_recv().unwrap(), h);
    }

    /// With every kept descriptor taken by other files, a blob in memory
    /// is served from there rather than opened per request.
    #[tokio::test]
    async fn a_full_descriptor_cache_falls_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _corrupt) = BlobStore::open(dir.path()).unwrap();
        store
            .caches
            .lock()
            .unwrap()
            .files
            .resize(NonZeroUsize::new(1).unwrap());
        let (a, b) = (vec![1u8; 64 * 1024], vec![2u8; 64 * 1024]);
        let (ha, hb) = (BlobHash::of(&a), BlobHash::of(&b));
        for (h, data) in [(ha, &a), (hb, &b)] {
            store
                .write(&h, data.len() as u64, chunks(data))
                .await
                .unwrap();
        }
        assert!(matches!(
            store.open_for(&ha, Prefer::Memory).unwrap(),
            BlobBody::Memory(_)
        ));
        assert!(store.cached(&ha, Prefer::File).is_none(), "room: open it");
        assert!(matches!(
            store.open_for(&hb, Prefer::File).unwrap(),
            BlobBody::File { .. }
        ));
        assert!(matches!(
            store.cached(&ha, Prefer::File),
            Some(BlobBody::Memory(_))
        ));
    }

    /// The memory budget holds: the least recently used blobs leave first,
    /// and one larger than the whole budget is served but not kept.
    #[tokio::test]
    async fn memory_is_bounded_and_least_recently_used_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _corrupt) = BlobStore::open_with_memory(dir.path(), 250).unwrap();
        let mut hashes = vec![];
        for i in 0..3u8 {
            let data = vec![i; 100];
            let h = BlobHash::of(&data);
            store.write(&h, 100, chunks(&data)).await.unwrap();
            hashes.push(h);
        }
        store.open_verified(&hashes[0]).unwrap();
        store.open_verified(&hashes[1]).unwrap();
        // Touch the first, so the second is the least recently used.
        assert!(store.cached(&hashes[0], Prefer::Memory).is_some());
        store.open_verified(&hashes[2]).unwrap();
        assert_eq!(store.memory_bytes(), 200);
        assert!(store.cached(&hashes[0], Prefer::Memory).is_some());
        assert!(store.cached(&hashes[1], Prefer::Memory).is_none());
        assert!(store.cached(&hashes[2], Prefer::Memory).is_some());

        let big = vec![9u8; 300];
        let hb = BlobHash::of(&big);
        store.write(&hb, 300, chunks(&big)).await.unwrap();
        assert_eq!(body_bytes(store.open_verified(&hb).unwrap()), big);
        assert!(store.cached(&hb, Prefer::Memory).is_none());
        assert_eq!(store.memory_bytes(), 200);
    }
}
