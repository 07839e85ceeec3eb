//! Real git repositories in tempdirs (with `test_support::git`), and a
//! builder that may fetch them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use builder::git::UrlPolicy;
use builder::{BuildError, BuildOutput, BuildRequest, Builder, BuilderConfig, Limits, LogLine};
pub use test_support::git::git;
use tokio_util::sync::CancellationToken;

/// A builder, or `return` from the test (loudly) when bubblewrap is absent.
#[allow(unused_macros)]
macro_rules! builder_or_skip {
    ($test:expr) => {{
        if !crate::support::have("bwrap", $test) {
            return;
        }
        crate::support::builder()
    }};
}

/// Whether `program` is on PATH; says loudly when a test is skipped.
pub fn have(program: &str, test: &str) -> bool {
    let found = test_support::git::have(program);
    if !found {
        eprintln!("(that skips {test})");
    }
    found
}

/// A repository in a tempdir; each `commit` writes files and returns the sha.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        Repo { dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, text) in files {
            let p = self.dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", message]);
        git(self.dir.path(), &["rev-parse", "HEAD"])
    }
}

pub fn builder() -> Builder {
    Builder::new(BuilderConfig {
        url_policy: UrlPolicy {
            allow_local: true,
            allowed_hosts: vec![],
        },
        shim: Some(env!("CARGO_BIN_EXE_outpost-build-shim").into()),
        ..BuilderConfig::default()
    })
    .expect("builder starts")
}

/// A work folder and a cache folder for one build.
pub struct Dirs {
    pub work: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let cache = tempfile::tempdir().unwrap();
        // Like a coordinator's data folder: private to its owner.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Dirs {
            work: tempfile::tempdir().unwrap(),
            cache,
        }
    }

    pub fn request(&self, url: &str, commit: &str) -> BuildRequest {
        BuildRequest {
            repo_url: url.to_string(),
            commit: commit.to_string(),
            settings: Default::default(),
            env: BTreeMap::new(),
            redact: Vec::new(),
            limits: Limits {
                timeout: std::time::Duration::from_secs(120),
                memory_bytes: 2 << 30,
                ..Limits::default()
            },
            work_dir: self.work.path().join("build"),
            cache_dir: self.cache.path().to_path_buf(),
        }
    }

    pub fn src(&self) -> PathBuf {
        self.work.path().join("build/src")
    }
}

pub async fn run(
    b: &Builder,
    req: BuildRequest,
    cancel: CancellationToken,
) -> (Result<BuildOutput, BuildError>, Vec<LogLine>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = b.run(req, tx, cancel).await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    (result, lines)
}

pub fn text(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| format!("[{:?}] {}", l.stream, l.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Host pids of processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// A number no other process on the host has on its command line.
pub fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("86{:03}.{}{}", std::process::id() % 1000, nanos, 7)
}
