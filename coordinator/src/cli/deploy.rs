//! `coordinator deploy DIR`: hash a folder into a manifest (precompressing
//! text assets), upload only the blobs the coordinator lacks, finalize.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use protocol::{BlobHash, Encoding, FileEntry, FunctionEntry, Manifest, Variant};
use serde::Serialize;
use serde_json::json;

use super::client::{ApiFailure, Client};

/// Files smaller than this are not worth compressing.
const MIN_COMPRESS_BYTES: u64 = 256;
/// Keep a variant only when it saves at least this fraction.
const MIN_SAVING: f64 = 0.10;
const UPLOAD_CONCURRENCY: usize = 8;

/// Where a blob's bytes come from at upload time.
enum Source {
    File(PathBuf),
    Memory(Bytes),
}

pub struct Prepared {
    pub manifest: Manifest,
    sources: HashMap<BlobHash, (Source, u64)>,
}

pub struct DeployOptions<'a> {
    pub dir: &'a Path,
    pub project: &'a str,
    pub prod: bool,
    pub json: bool,
}

/// Lists every regular file under `dir` (bundle-relative, `/`-separated).
/// Hidden files are skipped except `.well-known/`; symlinks are refused
/// rather than followed out of the folder.
fn walk(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for entry in
            std::fs::read_dir(&abs).with_context(|| format!("reading {}", abs.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                bail!("{} has a name that is not UTF-8", entry.path().display());
            };
            if name.starts_with('.') && name != ".well-known" {
                continue;
            }
            let rel_path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push((entry.path(), rel_path));
            } else if ft.is_file() {
                protocol::path::validate_bundle_path(&rel_path)
                    .with_context(|| format!("cannot deploy {}", entry.path().display()))?;
                out.push((rel_path, entry.path()));
            } else if ft.is_symlink() {
                bail!(
                    "{} is a symlink; deploy refuses to follow links",
                    entry.path().display()
                );
            }
        }
    }
    out.sort();
    Ok(out)
}

fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == "text"
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg" | "manifest+json"
        );
    if textual {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    }
}

fn compressible(ct: &str) -> bool {
    ct.starts_with("text/")
        || [
            "javascript",
            "json",
            "xml",
            "svg",
            "wasm",
            "font/ttf",
            "font/otf",
            "vnd.ms-fontobject",
        ]
        .iter()
        .any(|k| ct.contains(k))
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 9, 22);
        w.write_all(data).expect("in-memory write");
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    w.write_all(data).expect("in-memory write");
    w.finish().expect("in-memory write")
}

struct Hashed {
    entry: FileEntry,
    variants: Vec<(BlobHash, Bytes)>,
}

fn hash_file(rel: &str, abs: &Path) -> anyhow::Result<Hashed> {
    let data = std::fs::read(abs).with_context(|| format!("reading {}", abs.display()))?;
    let ct = content_type(rel);
    let mut variants = Vec::new();
    let mut entries = Vec::new();
    if data.len() as u64 >= MIN_COMPRESS_BYTES && compressible(&ct) {
        for (enc, bytes) in [(Encoding::Br, brotli(&data)), (Encoding::Gzip, gzip(&data))] {
            if (bytes.len() as f64) < data.len() as f64 * (1.0 - MIN_SAVING) {
                let h = BlobHash::of(&bytes);
                entries.push(Variant {
                    encoding: enc,
                    hash: h,
                    size: bytes.len() as u64,
                });
                variants.push((h, Bytes::from(bytes)));
            }
        }
    }
    Ok(Hashed {
        entry: FileEntry {
            hash: BlobHash::of(&data),
            size: data.len() as u64,
            content_type: ct,
            variants: entries,
        },
        variants,
    })
}

/// Hashes and precompresses every file, spread over the machine's cores.
pub fn prepare(dir: &Path) -> anyhow::Result<Prepared> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let all = walk(dir)?;
    if all.is_empty() {
        bail!("{} contains no files to deploy", dir.display());
    }
    let names: Vec<String> = all.iter().map(|(rel, _)| rel.clone()).collect();
    let specs = super::site_config::functions(dir, &names)?;
    // Components and the site config are not static files: serving them
    // would publish the server code.
    let (components, files): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|(rel, _)| rel != super::site_config::FILE_NAME)
        .partition(|(rel, _)| specs.values().any(|s| &s.component == rel));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let chunk = files.len().div_ceil(workers).max(1);
    let results: Vec<anyhow::Result<Vec<(String, PathBuf, Hashed)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(rel, abs)| Ok((rel.clone(), abs.clone(), hash_file(rel, abs)?)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hash worker panicked"))
            .collect()
    });
    let mut manifest_files = BTreeMap::new();
    let mut sources = HashMap::new();
    for part in results {
        for (rel, abs, h) in part? {
            sources.insert(h.entry.hash, (Source::File(abs), h.entry.size));
            for (vh, bytes) in h.variants {
                let len = bytes.len() as u64;
                sources.insert(vh, (Source::Memory(bytes), len));
            }
            manifest_files.insert(rel, h.entry);
        }
    }
    let mut manifest = Manifest::new(manifest_files);
    for (rel, abs) in &components {
        let data = std::fs::read(abs).with_context(|| format!("reading {}", abs.display()))?;
        let hash = BlobHash::of(&data);
        sources.insert(hash, (Source::File(abs.clone()), data.len() as u64));
        for (route, spec) in specs.iter().filter(|(_, s)| &s.component == rel) {
            manifest.functions.insert(
                route.clone(),
                FunctionEntry {
                    component: hash,
                    size: data.len() as u64,
                    timeout_ms: spec.timeout_ms,
                    memory_bytes: spec.memory_bytes,
                },
            );
        }
    }
    Ok(Prepared { manifest, sources })
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
    let prepared = tokio::task::spawn_blocking(move || prepare(&dir)).await??;
    let created: serde_json::Value = client
        .post(
            &format!("/projects/{}/deployments", opts.project),
            &json!({
                "manifest": prepared.manifest,
                "target": if opts.prod { "production" } else { "preview" },
            }),
        )
        .await?;
    let id = created["deployment"]["id"]
        .as_str()
        .context("no deployment id in the answer")?
        .to_string();
    let missing: Vec<BlobHash> = serde_json::from_value(created["missing"].clone())?;
    let total_bytes: u64 = missing
        .iter()
        .map(|h| prepared.sources.get(h).map_or(0, |s| s.1))
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
            async move {
                let (src, len) = sources
                    .get(h)
                    .context("the coordinator asked for a blob this deploy does not have")?;
                let bytes = match src {
                    Source::Memory(b) => b.clone(),
                    Source::File(p) => {
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
                bar.inc(*len);
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
    let done: serde_json::Value = client
        .post(&format!("/deployments/{}/finalize", staged.id), &json!({}))
        .await?;
    Ok(DeployResult {
        functions: staged.manifest.functions.keys().cloned().collect(),
        project: staged.project,
        deployment: staged.id,
        bundle: done["bundle_id"].as_str().unwrap_or_default().to_string(),
        url: done["url"].as_str().unwrap_or_default().to_string(),
        production_url: done["production_url"].as_str().map(str::to_string),
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
        .get::<serde_json::Value>(&format!("/projects/{project}"))
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 404) =>
        {
            let _: serde_json::Value = client
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_hashes_compresses_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("index.html"), "<h1>hello</h1>".repeat(100)).unwrap();
        std::fs::create_dir(d.join("img")).unwrap();
        std::fs::write(d.join("img/logo.png"), [0u8; 10]).unwrap();
        std::fs::write(d.join(".env"), "SECRET=1").unwrap();
        let p = prepare(d).unwrap();
        let names: Vec<&str> = p.manifest.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["img/logo.png", "index.html"]);
        let html = &p.manifest.files["index.html"];
        assert_eq!(html.content_type, "text/html; charset=utf-8");
        assert_eq!(html.variants.len(), 2);
        assert_eq!(p.manifest.files["img/logo.png"].content_type, "image/png");
        assert!(p.manifest.files["img/logo.png"].variants.is_empty());
        assert_eq!(p.sources.len(), 4);

        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        let err = prepare(d).err().unwrap().to_string();
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn empty_or_missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare(dir.path()).is_err());
        assert!(prepare(&dir.path().join("nope")).is_err());
    }
}
