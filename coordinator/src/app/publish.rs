//! The one path by which a manifest becomes a live deployment, for uploads
//! (`deploy` → finalize) and for builds from git alike: the manifest is
//! validated, every blob is present, every function is a wasi:http
//! component, the bundle is stored once by id, and only then does the
//! deployment become ready, its aliases move and the edges hear of it.
//!
//! Architecture invariant: no deployment is marked ready unless its
//! manifest validated, all its blobs are in the blob store and all its
//! functions passed the component check.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::{BlobHash, Manifest};

use super::{AppError, AppResult};
use crate::blobs::BlobStore;
use crate::config::Limits;
use crate::edge_config::ConfigHub;
use crate::store::{BundleRow, Deployment, Project, ReadyBuild, Store, Target};

/// What publishing needs: held by the app and by the build service.
pub struct Publisher<'a> {
    pub store: &'a Store,
    pub blobs: &'a BlobStore,
    pub hub: &'a ConfigHub,
    pub limits: &'a Limits,
}

/// Where a bundle's bytes come from while it is checked: the blob store
/// (uploads) or the build's output folder (not uploaded yet).
pub enum Blobs<'a> {
    Stored,
    Local(&'a Arc<HashMap<BlobHash, builder::bundle::BlobSource>>),
}

impl Publisher<'_> {
    /// The manifest within the instance's limits.
    pub fn validate(&self, manifest: &Manifest) -> AppResult<()> {
        manifest
            .validate(&self.limits.manifest())
            .map_err(|e| AppError::invalid("invalid_manifest", e.to_string()))
    }

    /// Stores the manifest once by its id (a no-op if it is there already).
    pub async fn store_bundle(&self, manifest: &Manifest) -> AppResult<BlobHash> {
        let canonical = manifest.canonical_bytes();
        let id = BlobHash::of(&canonical);
        let total: u64 = manifest.blob_sizes().values().sum();
        self.store
            .put_bundle(&BundleRow {
                id: id.to_hex(),
                manifest: canonical,
                file_count: manifest.files.len() as i64,
                total_size: total as i64,
            })
            .await?;
        Ok(id)
    }

    /// The stored manifest of a bundle id.
    pub async fn manifest(&self, bundle_id: &str) -> AppResult<Manifest> {
        let bytes = self
            .store
            .bundle_manifest(bundle_id)
            .await?
            .ok_or_else(|| AppError::internal(format!("bundle {bundle_id} is missing")))?;
        Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
            .map_err(AppError::internal)
    }

    /// Every blob of the manifest is in the blob store.
    pub async fn check_blobs_present(&self, manifest: &Manifest) -> AppResult<()> {
        let missing = self.blobs.missing(manifest.blobs()).await?;
        if !missing.is_empty() {
            return Err(AppError::conflict(
                "blobs_missing",
                format!(
                    "{} blobs are still missing; upload them first",
                    missing.len()
                ),
            )
            .with_details(serde_json::json!({ "missing": missing })));
        }
        Ok(())
    }

    /// Every function must be a wasi:http component; a bad one is refused
    /// here, before any edge sees it.
    pub async fn check_functions(&self, manifest: &Manifest, from: Blobs<'_>) -> AppResult<()> {
        use futures::TryStreamExt;
        for (route, f) in &manifest.functions {
            let h = f.component;
            let bytes = match &from {
                Blobs::Stored => {
                    let (_, stream) = self.blobs.get(&h).await?;
                    let chunks: Vec<bytes::Bytes> = stream.try_collect().await?;
                    bytes::Bytes::from(chunks.concat())
                }
                Blobs::Local(sources) => {
                    let src = (*sources).clone();
                    tokio::task::spawn_blocking(move || match src.get(&h) {
                        Some(s) => s.read(),
                        None => Err(std::io::Error::other(format!("component {h} not built"))),
                    })
                    .await
                    .map_err(AppError::internal)?
                    .map_err(AppError::internal)?
                }
            };
            let checked = tokio::task::spawn_blocking(move || {
                crate::components::validate_http_component(&bytes)
            })
            .await
            .map_err(AppError::internal)?;
            if let Err(e) = checked {
                return Err(AppError::invalid(
                    "invalid_function",
                    format!("function {route}: {e}"),
                ));
            }
        }
        Ok(())
    }

    /// An uploaded deployment whose blobs are all present becomes ready;
    /// one made for production is promoted.
    pub async fn ready_upload(&self, p: &Project, d: &Deployment) -> AppResult<()> {
        let promote = d.target == Target::Production;
        self.store.finalize_upload(&p.id, &d.id, promote).await?;
        self.hub.refresh().await?;
        Ok(())
    }

    /// A finished build becomes its deployment (with its aliases) in one
    /// transaction, then the edges hear of it.
    pub async fn ready_build(&self, ready: &ReadyBuild<'_>) -> AppResult<()> {
        self.store.finish_build_ready(ready).await?;
        self.hub.refresh().await?;
        Ok(())
    }
}
