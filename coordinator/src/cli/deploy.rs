//! `coordinator deploy DIR`: turn a folder into a bundle with
//! `builder::bundle::collect` (the same code builds use), upload only the
//! blobs the coordinator lacks, finalize.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use builder::bundle::BlobSource;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use protocol::{BlobHash, Manifest};
use serde::Serialize;
use serde_json::json;

use super::client::{ApiFailure, Client};
use crate::api::views::{DeploymentView, ProjectView, Staged as Created};

const UPLOAD_CONCURRENCY: usize = 8;

pub struct DeployOptions<'a> {
    pub dir: &'a Path,
    pub project: &'a str,
    pub prod: bool,
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct DeployResult {
    pub project: String,
    pub functions: Vec<String>,
    pub deployment: String,
    pub bundle: String,
    pub url: String,
    pub production_url: Option<String>,
    pub files: usize,
    pub blobs: usize,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub duration_ms: u128,
}

/// A deployment whose blobs are all uploaded, waiting for `finalize`.
pub struct Staged {
    pub id: String,
    pub project: String,
    pub manifest: Manifest,
    pub blobs: usize,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    started: Instant,
}

pub async fn deploy(client: &Client, opts: DeployOptions<'_>) -> anyhow::Result<DeployResult> {
    let staged = stage(client, opts).await?;
    finalize(client, staged).await
}

/// Everything before `finalize`: project, manifest, uploads of what the
/// coordinator lacks. (Benchmarks time `finalize` alone.)
pub async fn stage(client: &Client, opts: DeployOptions<'_>) -> anyhow::Result<Staged> {
    let started = Instant::now();
    ensure_project(client, opts.project, opts.json).await?;
    let dir = opts.dir.to_path_buf();
    let prepared = tokio::task::spawn_blocking(move || builder::bundle::collect(&dir)).await??;
    let sizes = prepared.manifest.blob_sizes();
    let created: Created = client
        .post(
            &format!("/projects/{}/deployments", opts.project),
            &json!({
                "manifest": prepared.manifest,
                "target": if opts.prod { "production" } else { "preview" },
            }),
        )
        .await?;
    let id = created.deployment.deployment.id;
    let missing: Vec<BlobHash> = created.missing;
    let total_bytes: u64 = missing
        .iter()
        .map(|h| sizes.get(h).copied().unwrap_or(0))
        .sum();

    let bar = if opts.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total_bytes)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} uploading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} blobs", missing.len()));
    stream::iter(missing.iter())
        .map(|h| {
            let bar = bar.clone();
            let sources = &prepared.sources;
            let len = sizes.get(h).copied().unwrap_or(0);
            async move {
                let src = sources
                    .get(h)
                    .context("the coordinator asked for a blob this deploy does not have")?;
                let bytes = match src {
                    BlobSource::Memory(b) => b.clone(),
                    BlobSource::File(p) => {
                        let data = tokio::fs::read(p)
                            .await
                            .with_context(|| format!("reading {}", p.display()))?;
                        if BlobHash::of(&data) != *h {
                            bail!("{} changed during the deploy; run it again", p.display());
                        }
                        Bytes::from(data)
                    }
                };
                client.put_bytes(&format!("/blobs/{h}"), bytes).await?;
                bar.inc(len);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    bar.finish_and_clear();
    Ok(Staged {
        id,
        project: opts.project.to_string(),
        blobs: prepared.sources.len(),
        manifest: prepared.manifest,
        uploaded_blobs: missing.len(),
        uploaded_bytes: total_bytes,
        started,
    })
}

/// Makes a staged deployment ready (and production, if it was staged so).
pub async fn finalize(client: &Client, staged: Staged) -> anyhow::Result<DeployResult> {
    let done: DeploymentView = client
        .post(&format!("/deployments/{}/finalize", staged.id), &json!({}))
        .await?;
    Ok(DeployResult {
        functions: staged.manifest.functions.keys().cloned().collect(),
        project: staged.project,
        deployment: staged.id,
        bundle: done.deployment.bundle_id,
        url: done.url,
        production_url: done.production_url,
        files: staged.manifest.files.len(),
        blobs: staged.blobs,
        uploaded_blobs: staged.uploaded_blobs,
        uploaded_bytes: staged.uploaded_bytes,
        duration_ms: staged.started.elapsed().as_millis(),
    })
}

/// Deploying to a project that does not exist yet creates it.
async fn ensure_project(client: &Client, project: &str, quiet: bool) -> anyhow::Result<()> {
    match client
        .get::<ProjectView>(&format!("/projects/{project}"))
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 404) =>
        {
            let _: ProjectView = client
                .post("/projects", &json!({ "name": project }))
                .await?;
            if !quiet {
                eprintln!("created project {project}");
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}
