//! The coordinator's blob store on `object_store`: local disk by default,
//! any S3-compatible store later. Keys are `blobs/<2 hex>/<64 hex>`; a blob
//! is written only after its bytes hash to its name.

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
    #[error("blob storage: {0}")]
    Backend(#[from] object_store::Error),
}

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

fn key(h: &BlobHash) -> ObjectPath {
    let hex = h.to_hex();
    ObjectPath::from(format!("blobs/{}/{hex}", &hex[..2]))
}

impl BlobStore {
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
            store: "local",
            source: Box::new(e),
        })?;
        Ok(BlobStore {
            inner: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
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
        self.inner
            .put(&key(expected), PutPayload::from(bytes))
            .await?;
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
                Ok((size, r.into_stream().map_err(BlobStoreError::from).boxed()))
            }
            Err(object_store::Error::NotFound { .. }) => Err(BlobStoreError::NotFound(*h)),
            Err(e) => Err(e.into()),
        }
    }
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
}
