//! Source → bundle: clone a repository at an exact commit, detect how to
//! build it, run install and build in a bubblewrap sandbox with limits, and
//! collect the output folder into a manifest plus blobs, streaming a log.

pub mod bundle;
pub mod cache;
pub mod detect;
pub mod egress;
pub mod git;
pub mod log;
mod process;
pub mod sandbox;
pub mod site_config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use detect::{Detected, ProjectSettings};
pub use log::{LogLine, LogSink, LogStream};

use crate::bundle::{Bundle, BundleError};
use crate::detect::DetectError;
use crate::git::GitError;
use crate::log::{Logger, Redactor};
use crate::sandbox::{SandboxError, SandboxSpec};

/// The unprivileged account builds run as when the builder runs as root.
pub const NOBODY: (u32, u32) = (65534, 65534);

#[derive(Debug, Clone)]
pub struct BuilderConfig {
    pub url_policy: git::UrlPolicy,
    /// bubblewrap; a bare name is looked up on PATH.
    pub bwrap: PathBuf,
    /// uid/gid builds run as. When the builder runs as root this is never
    /// `None`: it falls back to [`NOBODY`].
    pub run_as: Option<(u32, u32)>,
    /// Where builds may reach through the proxy (their only way out).
    pub egress: egress::EgressPolicy,
    /// The executable that runs [`egress::shim_main`] inside the sandbox
    /// when called with [`egress::SHIM_ARG`]; default: this executable
    /// (the coordinator dispatches it first thing in `main`).
    pub shim: Option<PathBuf>,
    /// A folder the build user can reach where the shim is copied (the
    /// executable itself may live where it cannot: `/root/…`). Default:
    /// `<temp dir>/outpost-builds/shim`.
    pub shim_dir: Option<PathBuf>,
}

impl Default for BuilderConfig {
    fn default() -> Self {
        BuilderConfig {
            url_policy: git::UrlPolicy::default(),
            bwrap: "bwrap".into(),
            run_as: is_root().then_some(NOBODY),
            egress: Default::default(),
            shim: None,
            shim_dir: None,
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall clock for the whole build: clone, install, build, collect.
    pub timeout: Duration,
    /// Per process, as RLIMIT_DATA; also sizes Node's heap and /tmp.
    pub memory_bytes: u64,
    /// The output folder's total size.
    pub max_output_bytes: u64,
    /// What install and build may print.
    pub max_log_bytes: u64,
    /// Processes (and threads) a build runs at once.
    pub max_processes: u64,
    /// The checkout's size on disk, sources and `node_modules` included:
    /// a build past it is stopped.
    pub max_workspace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(15 * 60),
            memory_bytes: 4 << 30,
            max_output_bytes: 1 << 30,
            max_log_bytes: 8 << 20,
            max_processes: 512,
            max_workspace_bytes: 8 << 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub repo_url: String,
    /// The exact commit (full sha) to build.
    pub commit: String,
    pub settings: ProjectSettings,
    /// Build-scope variables: with a fixed base (PATH, HOME, CI=1, caches)
    /// the only environment the build sees.
    pub env: BTreeMap<String, String>,
    /// Secret values, replaced by "[redacted]" in every log line.
    pub redact: Vec<String>,
    pub limits: Limits,
    /// An empty folder for this build; the caller deletes it afterwards.
    /// Every parent folder must be searchable (`o+x`) by `run_as`.
    pub work_dir: PathBuf,
    /// The project's cache root, kept across builds.
    pub cache_dir: PathBuf,
}

#[derive(Debug)]
pub struct BuildOutput {
    pub commit: git::CommitInfo,
    pub detected: Detected,
    pub bundle: Bundle,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the build host has no usable `{tool}`: {detail}")]
    HostSetup { tool: &'static str, detail: String },
    #[error("invalid build request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Git(GitError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error("the build needs `{0}`, which is not installed on this build host")]
    MissingTool(&'static str),
    #[error("{}", command_failed(command, *code))]
    CommandFailed {
        phase: &'static str,
        command: String,
        /// `None` when a signal ended it.
        code: Option<i32>,
    },
    #[error("build exceeded its {} timeout", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("canceled")]
    Canceled,
    #[error("the build printed more than {} of log output and was stopped", bytesize::ByteSize(*.0))]
    LogLimit(u64),
    #[error("the checkout grew past {} on disk and the build was stopped", bytesize::ByteSize(*.0))]
    WorkspaceTooLarge(u64),
    #[error("root directory `{0}` does not exist in the repository — check root_dir")]
    RootDirMissing(String),
    #[error("output directory `{0}` does not exist after the build — set output_dir")]
    OutputMissing(String),
    #[error("output directory `{0}` leads outside the project (a symlink?)")]
    OutputOutside(String),
    #[error("the output is {}; the limit is {}", bytesize::ByteSize(*size), bytesize::ByteSize(*limit))]
    OutputTooLarge { size: u64, limit: u64 },
    #[error("collecting the output: {0}")]
    Bundle(BundleError),
    #[error("could not start the sandbox: {0}")]
    Sandbox(std::io::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn command_failed(command: &str, code: Option<i32>) -> String {
    match code {
        Some(127) => format!(
            "`{command}` exited with code 127: a program it runs was not found on this build host"
        ),
        Some(c) => format!("`{command}` exited with code {c}"),
        None => format!("`{command}` was killed by a signal (out of memory?)"),
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// A relative path inside the checkout: no `..`, not absolute.
fn safe_relative(field: &str, p: &str) -> Result<(), BuildError> {
    let bad = p.contains('\0')
        || Path::new(p)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if bad {
        return Err(BuildError::InvalidRequest(format!(
            "{field} {p:?} must be a relative path inside the repository"
        )));
    }
    Ok(())
}

/// `base/rel` when it is a real folder inside `base` after resolving links.
fn dir_inside(base: &Path, rel: &str) -> Option<PathBuf> {
    let base = base.canonicalize().ok()?;
    let dir = base.join(rel).canonicalize().ok()?;
    (dir.starts_with(&base) && dir.is_dir()).then_some(dir)
}

/// Hands a tree to the build user. Links are re-owned, never followed.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid))?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}

/// Whether `uid`/`gid` may search every folder from `/` down to `path`:
/// bwrap resolves the bind sources as that user.
fn searchable_by(path: &Path, uid: u32, gid: u32) -> Result<(), PathBuf> {
    use std::os::unix::fs::MetadataExt;
    for p in path.ancestors() {
        let Ok(m) = std::fs::metadata(p) else {
            return Err(p.to_path_buf());
        };
        let bit = if m.uid() == uid {
            0o100
        } else if m.gid() == gid {
            0o010
        } else {
            0o001
        };
        if m.mode() & bit == 0 {
            return Err(p.to_path_buf());
        }
    }
    Ok(())
}

/// `name` as given when it contains a slash, else the first executable
/// match on PATH.
fn find_program(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.components().count() > 1 {
        return executable(name).then(|| name.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

fn elapsed(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

pub struct Builder {
    policy: git::UrlPolicy,
    bwrap: PathBuf,
    run_as: Option<(u32, u32)>,
    system: Vec<sandbox::SystemPath>,
    egress: egress::EgressPolicy,
    shim: PathBuf,
}

impl Builder {
    /// Checks that git and bubblewrap are there and that bubblewrap can
    /// create a sandbox as the build user on this host.
    pub fn new(cfg: BuilderConfig) -> Result<Builder, BuildError> {
        let bwrap = find_program(&cfg.bwrap).ok_or_else(|| BuildError::HostSetup {
            tool: "bwrap",
            detail: format!("{} not found (install bubblewrap)", cfg.bwrap.display()),
        })?;
        if find_program(Path::new("git")).is_none() {
            return Err(BuildError::HostSetup {
                tool: "git",
                detail: "not found on PATH".into(),
            });
        }
        let run_as = cfg.run_as.or(is_root().then_some(NOBODY));
        let source = match cfg.shim {
            Some(s) => s,
            None => std::env::current_exe().map_err(|e| BuildError::HostSetup {
                tool: "shim",
                detail: format!("cannot find this executable: {e}"),
            })?,
        };
        let dir = cfg
            .shim_dir
            .unwrap_or_else(|| std::env::temp_dir().join("outpost-builds").join("shim"));
        let shim = install_shim(&source, &dir).map_err(|e| BuildError::HostSetup {
            tool: "shim",
            detail: format!("copying {} into {}: {e}", source.display(), dir.display()),
        })?;
        let builder = Builder {
            policy: cfg.url_policy,
            bwrap,
            run_as,
            system: sandbox::system_paths(),
            egress: cfg.egress,
            shim,
        };
        builder.smoke_test()?;
        Ok(builder)
    }

    /// Hosts that forbid unprivileged user namespaces fail here, at
    /// startup, rather than in the first build.
    fn smoke_test(&self) -> Result<(), BuildError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.bwrap);
        cmd.args(["--unshare-all", "--die-with-parent"]);
        for s in &self.system {
            match s {
                sandbox::SystemPath::Bind(p) => cmd.arg("--ro-bind-try").arg(p).arg(p),
                sandbox::SystemPath::Symlink { target, path } => {
                    cmd.arg("--symlink").arg(target).arg(path)
                }
            };
        }
        cmd.args(["--", "/bin/true"])
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().map_err(|e| BuildError::HostSetup {
            tool: "bwrap",
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(BuildError::HostSetup {
                tool: "bwrap",
                detail: format!(
                    "it cannot create a sandbox here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    pub async fn run(
        &self,
        req: BuildRequest,
        log: LogSink,
        cancel: CancellationToken,
    ) -> Result<BuildOutput, BuildError> {
        let mut secrets = req.redact.clone();
        secrets.extend(git::url_secrets(&req.repo_url));
        let logger = Logger::new(log, Redactor::new(secrets), req.limits.max_log_bytes);
        let started = Instant::now();
        let result = self.build(&req, &logger, &cancel, started).await;
        match &result {
            Ok(_) => logger.system(format!("Build finished in {}", elapsed(started))),
            Err(e) => logger.system(format!("Build failed after {}: {e}", elapsed(started))),
        }
        result
    }

    async fn build(
        &self,
        req: &BuildRequest,
        log: &Logger,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<BuildOutput, BuildError> {
        let deadline = started + req.limits.timeout;
        let timeout = BuildError::Timeout(req.limits.timeout);
        if !git::is_full_sha(&req.commit) {
            return Err(BuildError::Git(GitError::BadCommit(req.commit.clone())));
        }
        let root_dir = req.settings.root_dir.clone().unwrap_or_default();
        safe_relative("root_dir", &root_dir)?;
        if let Some(out) = &req.settings.output_dir {
            safe_relative("output_dir", out)?;
        }
        git::validate_url(&req.repo_url, &self.policy).map_err(BuildError::Git)?;

        let src = req.work_dir.join("src");
        std::fs::create_dir_all(&req.work_dir).map_err(io("creating the work folder"))?;
        std::fs::create_dir(&src).map_err(io("creating the checkout folder"))?;
        log.system(format!(
            "Cloning {} at {}",
            git::redact_url(&req.repo_url),
            &req.commit[..7]
        ));
        let t = Instant::now();
        let commit = git::clone_at(
            &req.repo_url,
            &req.commit,
            &src,
            &self.policy,
            deadline.saturating_duration_since(Instant::now()),
            cancel,
        )
        .await
        .map_err(|e| match e {
            GitError::Timeout(_) => BuildError::Timeout(req.limits.timeout),
            GitError::Canceled => BuildError::Canceled,
            e => BuildError::Git(e),
        })?;
        log.system(format!(
            "Checked out {} \"{}\" by {} in {}",
            &commit.sha[..7],
            commit.message,
            commit.author_name,
            elapsed(t)
        ));

        let root = dir_inside(&src, &root_dir)
            .ok_or_else(|| BuildError::RootDirMissing(root_dir.clone()))?;
        let tree = detect::Tree::scan(&root)?;
        let detected = detect::detect(&tree, &req.settings)?;
        log.system(detected.summary());
        if let Some(tool) = detect::missing_tool(&detected.tools_needed, &sandbox::path_dirs()) {
            return Err(BuildError::MissingTool(tool));
        }

        let commands: Vec<(&'static str, &String)> = [
            ("install", detected.install_command.as_ref()),
            ("build", detected.build_command.as_ref()),
        ]
        .into_iter()
        .filter_map(|(phase, c)| Some((phase, c?)))
        .collect();
        if commands.is_empty() {
            log.system("Nothing to install or build");
        } else {
            let cache = self.prepare_cache(req, &detected, &root, log)?;
            self.hand_over(req, &src, cache.as_deref())?;
            // The build's only way out, for as long as it runs.
            let egress_dir = req.work_dir.join("egress");
            std::fs::create_dir(&egress_dir).map_err(io("creating the proxy's folder"))?;
            std::fs::set_permissions(
                &egress_dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .map_err(io("opening the proxy's folder"))?;
            let refusals = log.clone();
            let _egress = egress::Egress::start(&egress_dir, self.egress.clone(), move |why| {
                refusals.system(why)
            })
            .map_err(io("starting the build's network proxy"))?;
            let workdir = root
                .strip_prefix(src.canonicalize().map_err(io("resolving the checkout"))?)
                .unwrap_or(Path::new(""))
                .to_string_lossy()
                .into_owned();
            for (phase, command) in commands {
                if cancel.is_cancelled() {
                    return Err(BuildError::Canceled);
                }
                let spec = SandboxSpec {
                    bwrap: self.bwrap.clone(),
                    system: self.system.clone(),
                    workspace: src.clone(),
                    workdir: workdir.clone(),
                    cache: cache.clone(),
                    env: {
                        let mut env = sandbox::sandbox_env(
                            &req.env,
                            cache.as_ref().and(detected.package_manager),
                            req.limits.memory_bytes,
                        );
                        env.extend(sandbox::proxy_env());
                        env
                    },
                    command: command.clone(),
                    tmp_bytes: Some(req.limits.memory_bytes),
                    egress: Some(sandbox::EgressMount {
                        socket_dir: egress_dir.clone(),
                        shim: self.shim.clone(),
                    }),
                };
                log.system(format!("Running `{command}`"));
                let t = Instant::now();
                let limits = sandbox::RunLimits {
                    deadline,
                    memory_bytes: req.limits.memory_bytes,
                    // SAFETY: geteuid has no preconditions.
                    processes: self
                        .run_as
                        .filter(|(uid, _)| *uid != unsafe { libc::geteuid() })
                        .map(|_| req.limits.max_processes),
                    run_as: self.run_as,
                };
                // The checkout may not grow past its limit (node_modules
                // included): a watchdog stops the command when it does.
                let stop = cancel.child_token();
                let too_big = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let watchdog = tokio::spawn(watch_size(
                    src.clone(),
                    req.limits.max_workspace_bytes,
                    stop.clone(),
                    too_big.clone(),
                ));
                let ran = sandbox::run(&spec, limits, log, &stop).await;
                watchdog.abort();
                let status = ran.map_err(|e| match e {
                    SandboxError::Spawn(e) => BuildError::Sandbox(e),
                    SandboxError::Deadline => BuildError::Timeout(req.limits.timeout),
                    SandboxError::Canceled if too_big.load(std::sync::atomic::Ordering::SeqCst) => {
                        BuildError::WorkspaceTooLarge(req.limits.max_workspace_bytes)
                    }
                    SandboxError::Canceled => BuildError::Canceled,
                    SandboxError::LogLimit => BuildError::LogLimit(req.limits.max_log_bytes),
                })?;
                if !status.success() {
                    return Err(BuildError::CommandFailed {
                        phase,
                        command: command.clone(),
                        code: status.code(),
                    });
                }
                log.system(format!("`{command}` finished in {}", elapsed(t)));
            }
        }
        if Instant::now() >= deadline {
            return Err(timeout);
        }

        let out_rel = detected.output_dir.clone();
        // A link here could point the collector (which runs outside the
        // sandbox, with the builder's rights) anywhere on the host.
        match std::fs::symlink_metadata(root.join(&out_rel)) {
            Ok(m) if m.file_type().is_symlink() => return Err(BuildError::OutputOutside(out_rel)),
            Ok(m) if m.is_dir() => {}
            _ => return Err(BuildError::OutputMissing(out_rel)),
        }
        let out_dir = dir_inside(&root, &out_rel)
            .ok_or_else(|| BuildError::OutputOutside(out_rel.clone()))?;
        let t = Instant::now();
        let max = req.limits.max_output_bytes;
        let bundle = tokio::task::spawn_blocking(move || bundle::collect_limited(&out_dir, max))
            .await
            .map_err(|e| BuildError::Io {
                what: "collecting the output".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|e| match e {
                BundleError::TooLarge { size, limit } => BuildError::OutputTooLarge { size, limit },
                BundleError::Empty(_) => BuildError::OutputMissing(out_rel.clone()),
                e => BuildError::Bundle(e),
            })?;
        let mut bundle = bundle;
        detect::add_immutable_rule(detected.framework, &mut bundle.manifest.routing);
        let functions: BTreeSet<_> = bundle
            .manifest
            .functions
            .values()
            .map(|f| f.component)
            .collect();
        log.system(format!(
            "Collected {} files ({} functions), {} in {}",
            bundle.manifest.files.len(),
            functions.len(),
            bytesize::ByteSize(bundle.total_bytes()),
            elapsed(t)
        ));
        Ok(BuildOutput {
            commit,
            detected,
            bundle,
        })
    }

    /// The package manager's store for this lockfile, if there is a
    /// package manager.
    fn prepare_cache(
        &self,
        req: &BuildRequest,
        detected: &Detected,
        root: &Path,
        log: &Logger,
    ) -> Result<Option<PathBuf>, BuildError> {
        let Some(pm) = detected.package_manager else {
            return Ok(None);
        };
        let key = cache::lockfile_key(root, detected.lockfile.as_deref())
            .map_err(io("reading the lockfile"))?;
        let (dir, state) =
            cache::prepare(&req.cache_dir, pm, &key).map_err(io("preparing the package cache"))?;
        log.system(match state {
            cache::CacheState::Hit => format!("{pm} cache: hit for lockfile {key}"),
            cache::CacheState::Reused => {
                format!("{pm} cache: lockfile changed ({key}); reusing the previous store")
            }
            cache::CacheState::Empty => format!("{pm} cache: empty"),
        });
        Ok(Some(dir))
    }

    /// Gives the checkout and the cache to the build user and checks that
    /// bubblewrap, running as that user, can reach them.
    fn hand_over(
        &self,
        req: &BuildRequest,
        src: &Path,
        cache: Option<&Path>,
    ) -> Result<(), BuildError> {
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        if !is_root() {
            return Ok(());
        }
        std::os::unix::fs::lchown(&req.work_dir, Some(uid), Some(gid))
            .map_err(io("handing the work folder to the build user"))?;
        chown_tree(src, uid, gid).map_err(io("handing the checkout to the build user"))?;
        if let Some(c) = cache {
            // The cache root and the manager's folder above the store, so
            // that bwrap can reach the store even if the root was 0700.
            for dir in c
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&req.cache_dir))
            {
                std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
                    .map_err(io("handing the cache to the build user"))?;
            }
            chown_tree(c, uid, gid).map_err(io("handing the cache to the build user"))?;
        }
        for p in std::iter::once(src).chain(cache) {
            if let Err(blocked) = searchable_by(p, uid, gid) {
                return Err(BuildError::InvalidRequest(format!(
                    "the build user (uid {uid}) cannot reach {}: {} is not searchable by it",
                    p.display(),
                    blocked.display()
                )));
            }
        }
        Ok(())
    }
}

/// Copies the shim into `dir` (mode 0755, readable by the build user)
/// unless the same file is there already.
///
/// The copy is named for its source (path, size, modification time): the
/// folder is shared by every builder on the host, and builders started from
/// different executables (a coordinator, a test binary) must never run each
/// other's copy, which a single shared name allowed.
fn install_shim(source: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let src_meta = std::fs::metadata(source)?;
    let mut id = blake3::Hasher::new();
    id.update(source.as_os_str().as_encoded_bytes());
    id.update(&src_meta.len().to_le_bytes());
    if let Ok(t) = src_meta.modified() {
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        id.update(&since.as_nanos().to_le_bytes());
    }
    let id = id.finalize().to_hex();
    let dest = dir.join(format!("outpost-build-shim-{}", &id[..16]));
    let same = std::fs::metadata(&dest).is_ok_and(|d| d.len() == src_meta.len());
    if !same {
        // Several builders may install at once (tests): each its own file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".shim-{}-{n}", std::process::id()));
        std::fs::copy(source, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(dest)
}

/// Every few seconds, the checkout's size on disk; past `max`, `too_big`
/// is set and `stop` cancelled (which ends the sandboxed command).
async fn watch_size(
    dir: PathBuf,
    max: u64,
    stop: CancellationToken,
    too_big: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = stop.cancelled() => return,
        }
        let d = dir.clone();
        let Ok(used) = tokio::task::spawn_blocking(move || disk_usage(&d)).await else {
            return;
        };
        if used > max {
            too_big.store(true, std::sync::atomic::Ordering::SeqCst);
            stop.cancel();
            return;
        }
    }
}

/// Bytes of disk the files under `dir` take (links not followed).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        for ok in ["", ".", "site", "apps/web", "./dist"] {
            assert!(safe_relative("x", ok).is_ok(), "{ok}");
        }
        for bad in ["/etc", "..", "a/../../b", "a\0b"] {
            assert!(safe_relative("x", bad).is_err(), "{bad}");
        }
    }

    /// Two executables installed into one shared folder keep their own
    /// copies (a test binary once replaced a coordinator's shim), and the
    /// same one installed twice is copied once.
    #[test]
    fn shims_from_different_sources_never_share_a_copy() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, "shim a").unwrap();
        std::fs::write(&b, "shim b").unwrap();
        let dir = d.path().join("shared");
        let ia = install_shim(&a, &dir).unwrap();
        let ib = install_shim(&b, &dir).unwrap();
        assert_ne!(ia, ib);
        assert_eq!(install_shim(&a, &dir).unwrap(), ia);
        assert_eq!(std::fs::read(&ia).unwrap(), b"shim a");
        assert_eq!(std::fs::read(&ib).unwrap(), b"shim b");
    }

    #[test]
    fn dir_inside_refuses_links_out() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("in")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        assert!(dir_inside(d.path(), "in").is_some());
        assert!(dir_inside(d.path(), "").is_some());
        assert!(dir_inside(d.path(), "out").is_none());
        assert!(dir_inside(d.path(), "missing").is_none());
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            BuildError::Timeout(Duration::from_secs(600)).to_string(),
            "build exceeded its 10m timeout"
        );
        assert_eq!(
            BuildError::MissingTool("pnpm").to_string(),
            "the build needs `pnpm`, which is not installed on this build host"
        );
        assert_eq!(
            BuildError::OutputMissing("dist".into()).to_string(),
            "output directory `dist` does not exist after the build — set output_dir"
        );
        let failed = BuildError::CommandFailed {
            phase: "build",
            command: "npm run build".into(),
            code: Some(2),
        };
        assert_eq!(failed.to_string(), "`npm run build` exited with code 2");
    }
}
