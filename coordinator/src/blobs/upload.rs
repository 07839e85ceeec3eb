//! A blob streamed into the store as it arrives: never held whole in
//! memory, hashed on the way, and made visible only when its bytes hash to
//! its name.
//!
//! - Local disk: a temporary file, fsynced and renamed into place (as
//!   `put_verified` does), removed if anything fails.
//! - S3: a blob that fits in one part is one `PUT`; a larger one is a
//!   multipart upload of `part_size` parts, at most two in flight, so an
//!   upload holds about three parts of memory whatever its size. Only a
//!   matching hash completes it; any failure aborts it. (A coordinator
//!   killed mid-upload cannot abort: the store's own clean-up of
//!   incomplete uploads takes those parts, see docs/operations.md.)

use std::io::Write;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use protocol::BlobHash;

use super::{key, BlobStore, BlobStoreError};

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

impl BlobStore {
    /// Streams `body` into the store as blob `expected`, refusing more than
    /// `limit` bytes. Returns the blob's size.
    pub async fn put_stream<S, E>(
        &self,
        expected: &BlobHash,
        body: S,
        limit: u64,
    ) -> Result<u64, BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let body = Bounded {
            inner: body,
            limit,
            seen: 0,
            hasher: blake3::Hasher::new(),
        };
        match &self.local {
            Some(root) => self.put_local(root, expected, body).await,
            None => self.put_s3(expected, body).await,
        }
    }

    async fn put_local<S, E>(
        &self,
        root: &std::path::Path,
        expected: &BlobHash,
        mut body: Bounded<S>,
    ) -> Result<u64, BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let hex = expected.to_hex();
        let tmp = root
            .join("tmp")
            .join(format!("{hex}.{:016x}", rand::random::<u64>()));
        let written = async {
            let mut file = Some(std::fs::File::create(&tmp)?);
            while let Some(chunk) = body.next().await? {
                let mut f = file.take().expect("file present between chunks");
                // Disk writes off the runtime's threads.
                f = tokio::task::spawn_blocking(move || f.write_all(&chunk).map(|()| f))
                    .await
                    .map_err(std::io::Error::other)??;
                file = Some(f);
            }
            body.check(expected)?;
            let f = file.take().expect("file present at the end");
            let (tmp2, dir) = (tmp.clone(), root.join("blobs").join(&hex[..2]));
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                f.sync_all()?;
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&tmp2, dir.join(&hex))?;
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok::<u64, BlobStoreError>(body.seen)
        }
        .await;
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    async fn put_s3<S, E>(
        &self,
        expected: &BlobHash,
        mut body: Bounded<S>,
    ) -> Result<u64, BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        // The first part decides: a small blob is one PUT.
        let mut first = BytesMut::new();
        while first.len() < self.part_size {
            match body.next().await? {
                Some(chunk) => first.extend_from_slice(&chunk),
                None => {
                    body.check(expected)?;
                    self.inner
                        .put(&key(expected), PutPayload::from(first.freeze()))
                        .await?;
                    return Ok(body.seen);
                }
            }
        }
        let upload = self.inner.put_multipart(&key(expected)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        writer.put(first.freeze());
        let streamed = async {
            loop {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                match body.next().await? {
                    Some(chunk) => writer.put(chunk),
                    None => break,
                }
            }
            body.check(expected)
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await?;
                Ok(body.seen)
            }
            Err(e) => {
                // Nothing of it becomes visible; the parts are freed.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(blob = %expected, error = %abort, "aborting a failed multipart upload");
                }
                Err(e)
            }
        }
    }
}

/// The request body, counted against the limit and hashed as it passes.
struct Bounded<S> {
    inner: S,
    limit: u64,
    seen: u64,
    hasher: blake3::Hasher,
}

impl<S, E> Bounded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    async fn next(&mut self) -> Result<Option<Bytes>, BlobStoreError> {
        match self.inner.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(BlobStoreError::Body(e.to_string())),
            Some(Ok(chunk)) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.limit {
                    return Err(BlobStoreError::TooLarge { limit: self.limit });
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
        }
    }

    /// At the end: the bytes must hash to the name.
    fn check(&self, expected: &BlobHash) -> Result<(), BlobStoreError> {
        let actual = BlobHash::from_blake3(self.hasher.finalize());
        if actual == *expected {
            Ok(())
        } else {
            Err(BlobStoreError::HashMismatch {
                expected: *expected,
                actual,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn chunks(data: &[u8], size: usize) -> Vec<Result<Bytes, std::io::Error>> {
        data.chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    /// Streamed in small chunks it is stored whole; a wrong hash, too many
    /// bytes and a broken body store nothing and leave no temporary file.
    #[tokio::test]
    async fn streams_verify_and_failures_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let h = BlobHash::of(&data);
        let n = store
            .put_stream(&h, futures::stream::iter(chunks(&data, 7_000)), 1 << 20)
            .await
            .unwrap();
        assert_eq!(n, data.len() as u64);
        let (_, s) = store.get(&h).await.unwrap();
        let got: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(got.concat(), data);

        let other = BlobHash::of(b"other");
        let bad: Vec<(Vec<Result<Bytes, std::io::Error>>, u64)> = vec![
            (chunks(&data, 7_000), 1 << 20),
            (chunks(&data, 7_000), 100_000),
            (
                vec![
                    Ok(Bytes::from_static(b"oth")),
                    Err(std::io::Error::other("connection reset")),
                ],
                1 << 20,
            ),
        ];
        let mut errors = Vec::new();
        for (body, limit) in bad {
            errors.push(
                store
                    .put_stream(&other, futures::stream::iter(body), limit)
                    .await
                    .unwrap_err(),
            );
        }
        assert!(
            matches!(errors[0], BlobStoreError::HashMismatch { .. }),
            "{:?}",
            errors[0]
        );
        assert!(
            matches!(errors[1], BlobStoreError::TooLarge { limit: 100_000 }),
            "{:?}",
            errors[1]
        );
        assert!(
            matches!(&errors[2], BlobStoreError::Body(m) if m.contains("reset")),
            "{:?}",
            errors[2]
        );
        assert_eq!(store.missing([other]).await.unwrap(), vec![other]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temporary file is left behind"
        );
    }
}
