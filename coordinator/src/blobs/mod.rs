//! The coordinator's blob store on `object_store`: local disk by default,
//! any S3-compatible store with `[blobs] url` (`config.rs`). Keys are
//! `blobs/<2 hex>/<64 hex>`; a blob is written only after its bytes hash
//! to its name: an upload streams into the store and is completed (local:
//! renamed into place; S3: the multipart upload completed) only once the
//! hash matched (`upload.rs`).
//!
//! On local disk a blob is written durably: a temporary file under `tmp/`,
//! fsynced, renamed into place, and its directory fsynced, so that after a
//! crash a blob is either whole or absent. Every read is hashed as it
//! streams: a blob that no longer matches its name (a disk that lied) ends
//! its stream with an error and is removed, so the next deploy that needs
//! it is told it is missing and uploads it again.

mod config;
mod upload;

pub use config::{BlobsConfig, S3Location};

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use protocol::BlobHash;

#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error("blob bytes hash to {actual}, not {expected}")]
    HashMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error("blob {0} not found")]
    NotFound(BlobHash),
    #[error("blob {0} in storage no longer matches its hash; it was removed")]
    Corrupt(BlobHash),
    #[error("blob storage: {0}")]
    Backend(#[from] object_store::Error),
    #[error("blob storage i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob is larger than the {limit}-byte limit (limits.max_blob_bytes)")]
    TooLarge { limit: u64 },
    #[error("the upload's body broke off: {0}")]
    Body(String),
}

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store: writes go through the file system
    /// there, durably.
    local: Option<Arc<std::path::PathBuf>>,
    /// Multipart part size (S3).
    part_size: usize,
}

fn key(h: &BlobHash) -> ObjectPath {
    let hex = h.to_hex();
    ObjectPath::from(format!("blobs/{}/{hex}", &hex[..2]))
}

impl BlobStore {
    /// The store `[blobs]` names: S3 when it has a URL, else local disk
    /// under `data_dir/blobs`.
    pub fn open(config: &BlobsConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        match config.location()? {
            None => Ok(Self::local(&data_dir.join("blobs"))?),
            Some(loc) => {
                let s3 = config.s3(&loc)?;
                let inner: Arc<dyn ObjectStore> = if loc.prefix.is_empty() {
                    s3
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(
                        s3,
                        loc.prefix.as_str(),
                    ))
                };
                Ok(BlobStore {
                    inner,
                    local: None,
                    part_size: config.part_size() as usize,
                })
            }
        }
    }

    /// Where blobs are kept, for logs (no credentials).
    pub fn describe(config: &BlobsConfig, data_dir: &std::path::Path) -> String {
        match &config.url {
            Some(u) => match &config.endpoint {
                Some(e) => format!("{u} at {e}"),
                None => u.clone(),
            },
            None => data_dir.join("blobs").display().to_string(),
        }
    }

    pub fn local(dir: &std::path::Path) -> Result<Self, BlobStoreError> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        // Leftovers of a crash mid-write were never blobs.
        for e in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        Ok(BlobStore {
            inner: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
            local: Some(Arc::new(dir.to_path_buf())),
            part_size: config::DEFAULT_PART_SIZE as usize,
        })
    }

    pub async fn contains(&self, h: &BlobHash) -> Result<bool, BlobStoreError> {
        match self.inner.head(&key(h)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Which of `hashes` the store lacks, checked concurrently.
    pub async fn missing(
        &self,
        hashes: impl IntoIterator<Item = BlobHash>,
    ) -> Result<Vec<BlobHash>, BlobStoreError> {
        let checks = futures::stream::iter(hashes.into_iter().map(|h| async move {
            self.contains(&h)
                .await
                .map(|present| (!present).then_some(h))
        }))
        .buffer_unordered(32);
        let mut missing: Vec<BlobHash> = checks
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await?;
        missing.sort();
        Ok(missing)
    }

    pub async fn put_verified(
        &self,
        expected: &BlobHash,
        bytes: Bytes,
    ) -> Result<(), BlobStoreError> {
        let actual = BlobHash::of(&bytes);
        if actual != *expected {
            return Err(BlobStoreError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        match &self.local {
            Some(root) => {
                let root = root.clone();
                let h = *expected;
                tokio::task::spawn_blocking(move || write_durably(&root, &h, &bytes))
                    .await
                    .map_err(std::io::Error::other)??;
            }
            None => {
                self.inner
                    .put(&key(expected), PutPayload::from(bytes))
                    .await?;
            }
        }
        Ok(())
    }

    /// The blob's size and a stream of its bytes.
    pub async fn get(
        &self,
        h: &BlobHash,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, BlobStoreError>>), BlobStoreError> {
        match self.inner.get(&key(h)).await {
            Ok(r) => {
                let size = r.meta.size;
                let checked = Checked {
                    store: self.clone(),
                    hash: *h,
                    hasher: blake3::Hasher::new(),
                    inner: r.into_stream().map_err(BlobStoreError::from).boxed(),
                    done: false,
                };
                Ok((size, checked.into_stream()))
            }
            Err(object_store::Error::NotFound { .. }) => Err(BlobStoreError::NotFound(*h)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Temporary file, fsync, rename into place, fsync the directory.
fn write_durably(root: &std::path::Path, h: &BlobHash, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let hex = h.to_hex();
    let dir = root.join("blobs").join(&hex[..2]);
    std::fs::create_dir_all(&dir)?;
    let tmp = root
        .join("tmp")
        .join(format!("{hex}.{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(&hex))?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A blob's bytes, hashed as they pass; the end of the stream is where a
/// mismatch shows (the reader must not trust what came before it).
struct Checked {
    store: BlobStore,
    hash: BlobHash,
    hasher: blake3::Hasher,
    inner: BoxStream<'static, Result<Bytes, BlobStoreError>>,
    done: bool,
}

impl Checked {
    fn into_stream(self) -> BoxStream<'static, Result<Bytes, BlobStoreError>> {
        futures::stream::unfold(self, |mut c| async move {
            if c.done {
                return None;
            }
            match c.inner.next().await {
                Some(Ok(chunk)) => {
                    c.hasher.update(&chunk);
                    Some((Ok(chunk), c))
                }
                Some(Err(e)) => {
                    c.done = true;
                    Some((Err(e), c))
                }
                None => {
                    c.done = true;
                    if BlobHash::from_blake3(c.hasher.finalize()) == c.hash {
                        return None;
                    }
                    tracing::error!(blob = %c.hash, "stored blob does not match its hash; removing it (the next deploy that needs it uploads it again)");
                    let _ = c.store.inner.delete(&key(&c.hash)).await;
                    Some((Err(BlobStoreError::Corrupt(c.hash)), c))
                }
            }
        })
        .boxed()
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub blobs: u64,
    pub bytes: u64,
    pub kept: u64,
}

impl BlobStore {
    /// The sweep of a mark and sweep: deletes every blob that is not in
    /// `referenced` and was last written before `cutoff` (unix milliseconds). A blob written
    /// since (an upload for a deployment not made yet) is newer than the
    /// cutoff and stays: the grace period is what makes the race with
    /// uploads safe. Each candidate's time is read again just before it
    /// is deleted, so a blob uploaded again meanwhile is kept.
    pub async fn sweep(
        &self,
        referenced: &std::collections::HashSet<BlobHash>,
        cutoff: i64,
    ) -> Result<Swept, BlobStoreError> {
        let mut out = Swept::default();
        let mut listing = self.inner.list(Some(&ObjectPath::from("blobs")));
        let mut candidates = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            let Some(hash) = meta
                .location
                .filename()
                .and_then(|f| f.parse::<BlobHash>().ok())
            else {
                continue;
            };
            if referenced.contains(&hash) || meta.last_modified.timestamp_millis() >= cutoff {
                out.kept += 1;
                continue;
            }
            candidates.push(hash);
        }
        for hash in candidates {
            match self.inner.head(&key(&hash)).await {
                Ok(meta) if meta.last_modified.timestamp_millis() < cutoff => {
                    match self.inner.delete(&key(&hash)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            out.blobs += 1;
                            out.bytes += meta.size;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(_) => out.kept += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

/// Unix milliseconds `ago` before now: a sweep's cutoff.
pub fn cutoff(ago: std::time::Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now - ago.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_on_write_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let a = Bytes::from_static(b"alpha");
        let ha = BlobHash::of(&a);
        let hb = BlobHash::of(b"beta");
        assert!(matches!(
            store.put_verified(&hb, a.clone()).await,
            Err(BlobStoreError::HashMismatch { .. })
        ));
        assert_eq!(store.missing([ha, hb]).await.unwrap().len(), 2);
        store.put_verified(&ha, a.clone()).await.unwrap();
        assert_eq!(store.missing([ha, hb]).await.unwrap(), vec![hb]);
        let (size, stream) = store.get(&ha).await.unwrap();
        assert_eq!(size, 5);
        let got: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(got.concat(), b"alpha");
        assert!(matches!(
            store.get(&hb).await,
            Err(BlobStoreError::NotFound(_))
        ));
    }

    /// A blob damaged on disk after it was written (a crash, a disk that
    /// lied) is never passed on as good: its stream ends with an error, it
    /// is removed, and it is reported missing so that it is uploaded again.
    #[tokio::test]
    async fn a_damaged_blob_is_refused_on_read_and_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let body = Bytes::from(vec![7u8; 100_000]);
        let h = BlobHash::of(&body);
        store.put_verified(&h, body.clone()).await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temporary file is left behind"
        );
        let hex = h.to_hex();
        let file = dir.path().join("blobs").join(&hex[..2]).join(&hex);
        assert_eq!(std::fs::read(&file).unwrap(), body);
        // Truncated, as a crash between write and flush would leave it.
        std::fs::write(&file, &body[..50_000]).unwrap();
        let (_, stream) = store.get(&h).await.unwrap();
        let got: Vec<Result<Bytes, BlobStoreError>> = stream.collect().await;
        assert!(
            matches!(got.last(), Some(Err(BlobStoreError::Corrupt(x))) if *x == h),
            "{:?}",
            got.last()
        );
        assert_eq!(store.missing([h]).await.unwrap(), vec![h]);
        // Uploaded again, it reads whole.
        store.put_verified(&h, body.clone()).await.unwrap();
        let (_, stream) = store.get(&h).await.unwrap();
        let again: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(again.concat(), body);
    }

    /// GC racing an upload: a blob written just now survives a sweep that
    /// would take it by reference alone; an old one nobody references goes;
    /// an old referenced one stays.
    #[tokio::test]
    async fn sweep_takes_only_old_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let put = |b: &'static [u8]| {
            let store = store.clone();
            async move {
                let h = BlobHash::of(b);
                store.put_verified(&h, Bytes::from_static(b)).await.unwrap();
                h
            }
        };
        let fresh = put(b"uploaded a moment ago").await;
        let old = put(b"nobody uses me").await;
        let kept = put(b"a bundle uses me").await;
        let age = |h: &BlobHash| {
            let hex = h.to_hex();
            let p = dir.path().join("blobs").join(&hex[..2]).join(hex);
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
                .unwrap();
        };
        age(&old);
        age(&kept);
        let referenced = [kept].into_iter().collect();
        let cutoff = super::cutoff(std::time::Duration::from_secs(3600));
        let swept = store.sweep(&referenced, cutoff).await.unwrap();
        assert_eq!((swept.blobs, swept.kept), (1, 2), "{swept:?}");
        assert_eq!(store.missing([fresh, old, kept]).await.unwrap(), vec![old]);
    }
}
