//! A folder → a bundle: manifest (path → blake3, size, content type,
//! br/gzip variants, functions) plus where each referenced blob's bytes are.
//! `coordinator deploy` and the builder both go through [`collect`].

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protocol::path::PathError;
use protocol::{BlobHash, Encoding, FileEntry, FunctionEntry, Manifest, Variant};

use crate::site_config::{self, SiteConfig, SiteConfigError};

/// Files smaller than this are not worth compressing.
const MIN_COMPRESS_BYTES: u64 = 256;
/// Keep a variant only when it saves at least this fraction.
const MIN_SAVING: f64 = 0.10;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} contains no files to deploy")]
    Empty(PathBuf),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has a name that is not UTF-8")]
    NonUtf8Name(PathBuf),
    #[error("{0} is a symlink; bundles never follow links")]
    Symlink(PathBuf),
    #[error("cannot deploy {path}: {source}")]
    BadPath { path: PathBuf, source: PathError },
    #[error("the output is {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error(transparent)]
    SiteConfig(#[from] SiteConfigError),
    #[error(transparent)]
    Routing(#[from] protocol::routing::RoutingError),
}

/// Routing files read at the bundle's root besides `outpost.toml`; like it,
/// they configure the site and are not served.
pub const VERCEL_JSON: &str = "vercel.json";
pub const REDIRECTS: &str = "_redirects";
pub const HEADERS: &str = "_headers";

fn is_config_file(rel: &str) -> bool {
    [site_config::FILE_NAME, VERCEL_JSON, REDIRECTS, HEADERS].contains(&rel)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a blob's bytes are: original files stay on disk, compressed
/// variants are only in memory.
#[derive(Debug, Clone)]
pub enum BlobSource {
    File(PathBuf),
    Memory(Bytes),
}

impl BlobSource {
    pub fn read(&self) -> std::io::Result<Bytes> {
        match self {
            BlobSource::Memory(b) => Ok(b.clone()),
            BlobSource::File(p) => std::fs::read(p).map(Bytes::from),
        }
    }
}

#[derive(Debug)]
pub struct Bundle {
    pub manifest: Manifest,
    /// Every blob the manifest references.
    pub sources: HashMap<BlobHash, BlobSource>,
}

impl Bundle {
    /// Sum of the original (uncompressed) file and component sizes.
    pub fn total_bytes(&self) -> u64 {
        self.manifest.files.values().map(|f| f.size).sum::<u64>()
            + self
                .manifest
                .functions
                .values()
                .map(|f| (f.component, f.size))
                .collect::<BTreeMap<_, _>>()
                .values()
                .sum::<u64>()
    }
}

/// Lists every regular file under `dir` (bundle-relative, `/`-separated)
/// with its size. Hidden files are skipped except `.well-known/`; symlinks
/// are refused rather than followed out of the folder.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>, BundleError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&abs).map_err(io_err(&abs))? {
            let entry = entry.map_err(io_err(&abs))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(BundleError::NonUtf8Name(entry.path()));
            };
            if name.starts_with('.') && name != ".well-known" {
                continue;
            }
            let rel_path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            let ft = entry.file_type().map_err(io_err(&path))?;
            if ft.is_dir() {
                stack.push((path, rel_path));
            } else if ft.is_file() {
                protocol::path::validate_bundle_path(&rel_path).map_err(|source| {
                    BundleError::BadPath {
                        path: path.clone(),
                        source,
                    }
                })?;
                let size = entry.metadata().map_err(io_err(&path))?.len();
                out.push((rel_path, path, size));
            } else if ft.is_symlink() {
                return Err(BundleError::Symlink(path));
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn content_type(path: &str) -> String {
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

fn hash_file(rel: &str, abs: &Path) -> Result<Hashed, BundleError> {
    let data = std::fs::read(abs).map_err(io_err(abs))?;
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

/// Hashes and precompresses every file under `dir`, spread over the
/// machine's cores; `api/*.wasm` and `outpost.toml` functions become
/// manifest functions instead of static files.
pub fn collect(dir: &Path) -> Result<Bundle, BundleError> {
    collect_limited(dir, u64::MAX)
}

/// [`collect`], refusing before any hashing when the folder holds more than
/// `max_bytes` of files.
pub fn collect_limited(dir: &Path, max_bytes: u64) -> Result<Bundle, BundleError> {
    if !dir.is_dir() {
        return Err(BundleError::NotADirectory(dir.to_path_buf()));
    }
    let all = walk(dir)?;
    if all.is_empty() {
        return Err(BundleError::Empty(dir.to_path_buf()));
    }
    let size: u64 = all.iter().map(|(_, _, s)| s).sum();
    if size > max_bytes {
        return Err(BundleError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    let names: Vec<String> = all.iter().map(|(rel, _, _)| rel.clone()).collect();
    let config = SiteConfig::load(dir)?;
    let specs = site_config::functions(config.as_ref(), &names)?;
    // `walk` saw these as regular files (never links) at the root.
    let root_text = |name: &str| -> Result<Option<String>, BundleError> {
        if !names.iter().any(|n| n == name) {
            return Ok(None);
        }
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(io_err(&path))
    };
    let routing = protocol::routing::from_sources(
        config.map(|c| c.routing),
        root_text(VERCEL_JSON)?.as_deref(),
        root_text(REDIRECTS)?.as_deref(),
        root_text(HEADERS)?.as_deref(),
    )?;

    // Components and the site config are not static files: serving them
    // would publish the server code.
    let (components, files): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|(rel, _, _)| !is_config_file(rel))
        .partition(|(rel, _, _)| specs.values().any(|s| &s.component == rel));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let chunk = files.len().div_ceil(workers).max(1);
    type Part = Result<Vec<(String, PathBuf, Hashed)>, BundleError>;
    let results: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(rel, abs, _)| Ok((rel.clone(), abs.clone(), hash_file(rel, abs)?)))
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
            sources.insert(h.entry.hash, BlobSource::File(abs));
            for (vh, bytes) in h.variants {
                sources.insert(vh, BlobSource::Memory(bytes));
            }
            manifest_files.insert(rel, h.entry);
        }
    }
    let mut manifest = Manifest::new(manifest_files);
    manifest.routing = routing;
    for (rel, abs, _) in &components {
        let data = std::fs::read(abs).map_err(io_err(abs))?;
        let hash = BlobHash::of(&data);
        sources.insert(hash, BlobSource::File(abs.clone()));
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
    Ok(Bundle { manifest, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_hashes_compresses_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("index.html"), "<h1>hello</h1>".repeat(100)).unwrap();
        std::fs::create_dir(d.join("img")).unwrap();
        std::fs::write(d.join("img/logo.png"), [0u8; 10]).unwrap();
        std::fs::write(d.join(".env"), "SECRET=1").unwrap();
        let b = collect(d).unwrap();
        let names: Vec<&str> = b.manifest.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["img/logo.png", "index.html"]);
        let html = &b.manifest.files["index.html"];
        assert_eq!(html.content_type, "text/html; charset=utf-8");
        assert_eq!(html.variants.len(), 2);
        assert_eq!(b.manifest.files["img/logo.png"].content_type, "image/png");
        assert!(b.manifest.files["img/logo.png"].variants.is_empty());
        assert_eq!(b.sources.len(), 4);
        assert_eq!(b.manifest.blobs().len(), 4);
        for (h, src) in &b.sources {
            assert_eq!(BlobHash::of(&src.read().unwrap()), *h);
        }
        assert_eq!(b.total_bytes(), 1400 + 10);

        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        let err = collect(d).unwrap_err();
        assert!(matches!(err, BundleError::Symlink(_)), "{err}");
    }

    #[test]
    fn functions_are_not_static_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("index.html"), "hi").unwrap();
        std::fs::create_dir_all(d.join("api")).unwrap();
        std::fs::create_dir_all(d.join("fn")).unwrap();
        std::fs::write(d.join("api/hello.wasm"), b"\0asm-hello").unwrap();
        std::fs::write(d.join("fn/users.wasm"), b"\0asm-users").unwrap();
        std::fs::write(
            d.join(site_config::FILE_NAME),
            "[[functions]]\nroute = \"/api/users/:id\"\ncomponent = \"fn/users.wasm\"\ntimeout = \"3s\"\n\n[routing]\nfuture = true\n",
        )
        .unwrap();
        let b = collect(d).unwrap();
        assert_eq!(b.manifest.files.keys().collect::<Vec<_>>(), ["index.html"]);
        assert_eq!(
            b.manifest.functions.keys().collect::<Vec<_>>(),
            ["/api/hello", "/api/hello/*", "/api/users/:id"]
        );
        assert_eq!(b.manifest.functions["/api/users/:id"].timeout_ms, 3000);
        assert_eq!(b.sources.len(), 3);
        assert_eq!(b.manifest.blobs().len(), 3);
    }

    #[test]
    fn routing_files_become_manifest_routing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("index.html"), "hi").unwrap();
        std::fs::write(
            d.join(site_config::FILE_NAME),
            "trailing_slash = false\n[[redirects]]\nsource = \"/a\"\ndestination = \"/b\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join(VERCEL_JSON),
            r#"{"cleanUrls": true, "rewrites": [{"source": "/app/:p*", "destination": "/index.html"}]}"#,
        )
        .unwrap();
        std::fs::write(d.join(REDIRECTS), "/old /new 301\n").unwrap();
        std::fs::write(d.join(HEADERS), "/*\n  X-Frame-Options: DENY\n").unwrap();
        let b = collect(d).unwrap();
        assert_eq!(b.manifest.files.keys().collect::<Vec<_>>(), ["index.html"]);
        let r = &b.manifest.routing;
        // outpost.toml first, then vercel.json, then _redirects.
        assert_eq!(r.rules.len(), 3, "{r:?}");
        assert_eq!(r.headers.len(), 1, "{r:?}");
        assert!(r.clean_urls);
        assert_eq!(r.trailing_slash, Some(false));
        b.manifest
            .validate(&protocol::ManifestLimits::default())
            .unwrap();

        std::fs::write(d.join(REDIRECTS), "/old\n").unwrap();
        let err = collect(d).unwrap_err();
        assert!(matches!(err, BundleError::Routing(_)), "{err}");
        assert!(err.to_string().contains("_redirects"), "{err}");
    }

    #[test]
    fn empty_missing_or_oversized_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(collect(dir.path()), Err(BundleError::Empty(_))));
        assert!(matches!(
            collect(&dir.path().join("nope")),
            Err(BundleError::NotADirectory(_))
        ));
        std::fs::write(dir.path().join("a.bin"), [1u8; 100]).unwrap();
        assert!(matches!(
            collect_limited(dir.path(), 99),
            Err(BundleError::TooLarge {
                size: 100,
                limit: 99
            })
        ));
        assert!(collect_limited(dir.path(), 100).is_ok());
    }
}
