//! Running untrusted install and build commands under bubblewrap.
//!
//! Inside the sandbox: the host's system folders read-only (`/usr`, the
//! `/bin`, `/lib*`, `/sbin` links or folders, and a short list of `/etc`
//! entries programs need: name service, TLS roots, dynamic linker, Debian
//! alternatives); a fresh `/proc`, a minimal `/dev` and a private `/tmp`;
//! the checkout read-write at `/workspace`; the project's package cache
//! read-write at `/cache`; nothing else of the host's file system (not `/`,
//! not `/root`, not `/home`, not the coordinator's data). Every namespace is
//! new, the network's too: its only way out is the builder's proxy
//! ([`crate::egress`]), which reaches public addresses only. The
//! environment is exactly [`sandbox_env`] (plus the proxy's address).
//!
//! Limits: a wall-clock deadline; memory through `RLIMIT_DATA`, which counts
//! the writable private memory a process maps (heap, anonymous mmaps) but
//! not address space it only reserves — `RLIMIT_AS` would break V8 and
//! WebAssembly engines, which reserve many GiB up front — plus Node's
//! `--max-old-space-size` below it so Node fails with a readable "heap out
//! of memory"; the limit is per process (the memory cgroup would be
//! per tree but needs a writable, delegated cgroup v2 hierarchy, which build
//! hosts in containers often lack); processes through `RLIMIT_NPROC`
//! (counted in the sandbox's own user namespace); log output through the
//! shared byte budget of the [`Logger`]; the checkout's size by the
//! builder's watchdog.
//!
//! Lifetime: bwrap runs in its own process group with `--die-with-parent`
//! and a new PID namespace, so killing bwrap kills the namespace's init,
//! and the kernel then kills every process left in the namespace.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncReadExt;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::detect::PackageManager;
use crate::log::{LogStream, Logger};
use crate::process;

/// Where the checkout and the cache appear inside the sandbox.
pub const WORKSPACE: &str = "/workspace";
pub const CACHE: &str = "/cache";
/// The PATH inside; tools are looked up in these folders of the host too,
/// since the sandbox sees the host's `/usr`.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level system paths: bound read-only when they are folders,
/// recreated when they are links (merged-/usr systems).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The parts of `/etc` builds need. The rest of `/etc` (the coordinator's
/// config, host keys) stays out of view.
const ETC: &[&str] = &[
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/crypto-policies",
    "/etc/gai.conf",
    "/etc/group",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/os-release",
    "/etc/passwd",
    "/etc/pki",
    "/etc/protocols",
    "/etc/resolv.conf",
    "/etc/services",
    "/etc/ssl",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemPath {
    /// Read-only bind of the same path; skipped if it is missing.
    Bind(PathBuf),
    Symlink {
        target: PathBuf,
        path: PathBuf,
    },
}

/// The host's system paths as the sandbox should show them.
pub fn system_paths() -> Vec<SystemPath> {
    let mut out = Vec::new();
    for p in SYSTEM.iter().chain(ETC) {
        let path = PathBuf::from(p);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                out.push(SystemPath::Symlink { target, path });
            }
        } else {
            out.push(SystemPath::Bind(path));
        }
    }
    out
}

/// Everything that decides what one sandboxed command sees.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub bwrap: PathBuf,
    pub system: Vec<SystemPath>,
    /// Host folder shown read-write at [`WORKSPACE`].
    pub workspace: PathBuf,
    /// Folder under the workspace to start in (`""` for its root).
    pub workdir: String,
    /// Host folder shown read-write at [`CACHE`].
    pub cache: Option<PathBuf>,
    /// The complete environment inside.
    pub env: BTreeMap<String, String>,
    /// Run with `sh -c`.
    pub command: String,
    /// Size cap of the private /tmp (it is memory).
    pub tmp_bytes: Option<u64>,
    /// The way out, if any: without it the sandbox has loopback only.
    pub egress: Option<EgressMount>,
}

/// What the sandbox needs of [`crate::egress`]: the folder holding the
/// proxy's socket and the executable that runs the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressMount {
    pub socket_dir: PathBuf,
    pub shim: PathBuf,
}

/// Where the proxy's socket folder and the shim appear inside.
pub const EGRESS_DIR: &str = "/run/outpost";
pub const SHIM: &str = "/run/outpost-shim";

/// bwrap's arguments for `spec`, command included.
pub fn bwrap_args(spec: &SandboxSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        a.extend(args.iter().map(|s| s.as_ref().to_os_string()));
    };
    push(&[
        &"--unshare-all",
        &"--die-with-parent",
        &"--new-session",
        &"--cap-drop",
        &"ALL",
        &"--hostname",
        &"outpost-build",
    ]);
    for s in &spec.system {
        match s {
            SystemPath::Bind(p) => push(&[&"--ro-bind-try", p, p]),
            SystemPath::Symlink { target, path } => push(&[&"--symlink", target, path]),
        }
    }
    push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
    if let Some(size) = spec.tmp_bytes {
        push(&[&"--size", &size.to_string()]);
    }
    push(&[&"--tmpfs", &"/tmp"]);
    push(&[&"--bind", &spec.workspace, &WORKSPACE]);
    if let Some(cache) = &spec.cache {
        push(&[&"--bind", cache, &CACHE]);
    }
    if let Some(e) = &spec.egress {
        push(&[&"--ro-bind", &e.socket_dir, &EGRESS_DIR]);
        push(&[&"--ro-bind", &e.shim, &SHIM]);
    }
    // The root bwrap builds is a tmpfs: make it read-only once the mount
    // points exist, so only the workspace, the cache and /tmp are writable.
    push(&[&"--remount-ro", &"/"]);
    let workdir = if spec.workdir.is_empty() {
        WORKSPACE.to_string()
    } else {
        format!("{WORKSPACE}/{}", spec.workdir)
    };
    push(&[&"--chdir", &workdir, &"--clearenv"]);
    for (k, v) in &spec.env {
        push(&[&"--setenv", k, v]);
    }
    push(&[&"--"]);
    if spec.egress.is_some() {
        let socket = format!("{EGRESS_DIR}/{}", crate::egress::SOCKET_NAME);
        push(&[
            &SHIM,
            &crate::egress::SHIM_ARG,
            &crate::egress::PROXY_ADDR,
            &socket,
            &"--",
        ]);
    }
    push(&[&"/bin/sh", &"-c", &spec.command]);
    a
}

/// What a build's environment says about the proxy: every common spelling,
/// since tools read different ones; local addresses stay direct.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://{}", crate::egress::PROXY_ADDR);
    let mut out: Vec<(String, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
    ]
    .iter()
    .map(|k| (k.to_string(), url.clone()))
    .collect();
    for k in ["NO_PROXY", "no_proxy"] {
        out.push((k.into(), "localhost,127.0.0.1,::1".into()));
    }
    out
}

/// The environment a build sees: a fixed base (PATH, HOME, CI=1, package
/// manager caches under [`CACHE`] when `cache` names the project's manager,
/// Node's heap limit) with the project's build variables over it.
pub fn sandbox_env(
    project: &BTreeMap<String, String>,
    cache: Option<PackageManager>,
    memory_bytes: u64,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("PATH", PATH),
        ("HOME", "/tmp"),
        ("TMPDIR", "/tmp"),
        ("CI", "1"),
        ("LANG", "C.UTF-8"),
        ("NO_UPDATE_NOTIFIER", "1"),
        ("npm_config_update_notifier", "false"),
        ("npm_config_fund", "false"),
        ("npm_config_audit", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(pm) = cache {
        for (k, v) in [
            ("npm_config_cache", "/cache/npm"),
            ("YARN_CACHE_FOLDER", "/cache/yarn"),
            ("BUN_INSTALL_CACHE_DIR", "/cache/bun"),
            ("XDG_CACHE_HOME", "/cache/xdg"),
        ] {
            env.insert(k.into(), v.into());
        }
        // pnpm reads its store folder from npm's variable namespace, but npm
        // itself does not know `store-dir`: npm 11 prints "Unknown env config
        // \"store-dir\"" on every run (and says a later major will stop
        // accepting it), so only a pnpm build gets it.
        if pm == PackageManager::Pnpm {
            env.insert("npm_config_store_dir".into(), "/cache/pnpm-store".into());
        }
    }
    // Three quarters of the limit for V8's heap leaves room for the rest of
    // the process under RLIMIT_DATA.
    let heap_mb = memory_bytes / 4 * 3 / (1024 * 1024);
    if heap_mb > 0 {
        env.insert(
            "NODE_OPTIONS".into(),
            format!("--max-old-space-size={heap_mb}"),
        );
    }
    for (k, v) in project {
        if k == "NODE_OPTIONS" && !v.contains("--max-old-space-size") && heap_mb > 0 {
            env.insert(k.clone(), format!("{v} --max-old-space-size={heap_mb}"));
        } else {
            env.insert(k.clone(), v.clone());
        }
    }
    env
}

#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub deadline: Instant,
    pub memory_bytes: u64,
    /// Processes (and threads) at once inside. The kernel counts them per
    /// user, so this is only set when builds run as a user of their own
    /// (not the builder's, whose own threads would count against it).
    pub processes: Option<u64>,
    /// uid/gid bwrap runs as (and so every process inside).
    pub run_as: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not start bwrap: {0}")]
    Spawn(std::io::Error),
    #[error("deadline passed")]
    Deadline,
    #[error("canceled")]
    Canceled,
    #[error("log output limit reached")]
    LogLimit,
}

/// Longest log line kept; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 4096;

/// Streams a pipe to the log line by line. Signals `over` and stops once
/// the log budget is spent.
async fn pump(
    mut r: impl tokio::io::AsyncRead + Unpin,
    stream: LogStream,
    log: Logger,
    over: CancellationToken,
) {
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |line: &mut Vec<u8>, truncated: &mut bool| -> bool {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let mut text = String::from_utf8_lossy(line).into_owned();
        if *truncated {
            text.push_str(" …[line truncated]");
        }
        line.clear();
        *truncated = false;
        log.output(stream, &text).is_ok()
    };
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if !emit(&mut line, &mut truncated) {
                    over.cancel();
                    return;
                }
            } else if line.len() < MAX_LINE_BYTES {
                line.push(b);
            } else {
                truncated = true;
            }
        }
    }
    if !line.is_empty() && !emit(&mut line, &mut truncated) {
        over.cancel();
    }
}

/// Runs `spec` to completion, streaming its output to `log`.
pub(crate) async fn run(
    spec: &SandboxSpec,
    limits: RunLimits,
    log: &Logger,
    cancel: &CancellationToken,
) -> Result<ExitStatus, SandboxError> {
    let mut cmd = tokio::process::Command::new(&spec.bwrap);
    cmd.args(bwrap_args(spec))
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    process::isolate(&mut cmd);
    if let Some((uid, gid)) = limits.run_as {
        // std drops supplementary groups too when switching from root.
        cmd.uid(uid).gid(gid);
    }
    let memory = limits.memory_bytes;
    let processes = limits.processes;
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let set = |res, v: u64| {
                let lim = libc::rlimit {
                    rlim_cur: v as libc::rlim_t,
                    rlim_max: v as libc::rlim_t,
                };
                if libc::setrlimit(res, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_DATA, memory)?;
            if let Some(n) = processes {
                set(libc::RLIMIT_NPROC, n)?;
            }
            set(libc::RLIMIT_CORE, 0)
        });
    }
    let mut child = cmd.spawn().map_err(SandboxError::Spawn)?;
    let over = CancellationToken::new();
    let pumps = [
        tokio::spawn(pump(
            child.stdout.take().expect("piped"),
            LogStream::Stdout,
            log.clone(),
            over.clone(),
        )),
        tokio::spawn(pump(
            child.stderr.take().expect("piped"),
            LogStream::Stderr,
            log.clone(),
            over.clone(),
        )),
    ];
    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        _ = tokio::time::sleep_until(limits.deadline) => Err(SandboxError::Deadline),
        _ = cancel.cancelled() => Err(SandboxError::Canceled),
        _ = over.cancelled() => Err(SandboxError::LogLimit),
    };
    let result = match ended {
        Ok(Ok(_)) if over.is_cancelled() => Err(SandboxError::LogLimit),
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(SandboxError::Spawn(e)),
        Err(e) => {
            process::kill_tree(&mut child).await;
            Err(e)
        }
    };
    finish(pumps, result).await
}

/// Lets the pumps drain what the processes wrote before they died; the
/// pipes close when the PID namespace is gone.
async fn finish(
    pumps: [tokio::task::JoinHandle<()>; 2],
    result: Result<ExitStatus, SandboxError>,
) -> Result<ExitStatus, SandboxError> {
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), p)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    result
}

/// The folders of the sandbox's PATH, as they are on the host.
pub fn path_dirs() -> Vec<&'static Path> {
    PATH.split(':').map(Path::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            bwrap: "bwrap".into(),
            system: vec![
                SystemPath::Bind("/usr".into()),
                SystemPath::Symlink {
                    target: "usr/bin".into(),
                    path: "/bin".into(),
                },
                SystemPath::Bind("/etc/ssl".into()),
            ],
            workspace: "/srv/builds/1/src".into(),
            workdir: "site".into(),
            cache: Some("/srv/cache/p".into()),
            env: [("CI".to_string(), "1".to_string())].into(),
            command: "npm run build".into(),
            tmp_bytes: Some(1 << 30),
            egress: Some(EgressMount {
                socket_dir: "/srv/builds/1/egress".into(),
                shim: "/usr/bin/coordinator".into(),
            }),
        }
    }

    fn strings(spec: &SandboxSpec) -> Vec<String> {
        bwrap_args(spec)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    /// True when `needle` appears as consecutive arguments.
    fn has(args: &[String], needle: &[&str]) -> bool {
        args.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn args_isolate_everything_and_the_way_out_is_the_proxy() {
        let a = strings(&spec());
        // (arguments that must appear together, why)
        let required: &[(&[&str], &str)] = &[
            (&["--unshare-all"], "new namespaces, the network's too"),
            (
                &["--ro-bind", "/srv/builds/1/egress", "/run/outpost"],
                "the proxy's socket",
            ),
            (
                &["--ro-bind", "/usr/bin/coordinator", "/run/outpost-shim"],
                "the shim",
            ),
            (&["--die-with-parent"], "tree dies with the builder"),
            (&["--new-session"], "no terminal injection"),
            (&["--cap-drop", "ALL"], "no capabilities"),
            (&["--ro-bind-try", "/usr", "/usr"], "system read-only"),
            (&["--symlink", "usr/bin", "/bin"], "merged /usr links"),
            (&["--ro-bind-try", "/etc/ssl", "/etc/ssl"], "TLS roots"),
            (&["--proc", "/proc"], "private /proc"),
            (&["--dev", "/dev"], "minimal /dev"),
            (
                &["--size", "1073741824", "--tmpfs", "/tmp"],
                "private, bounded /tmp",
            ),
            (
                &["--bind", "/srv/builds/1/src", "/workspace"],
                "workspace rw",
            ),
            (&["--bind", "/srv/cache/p", "/cache"], "cache rw"),
            (&["--remount-ro", "/"], "root read-only"),
            (&["--chdir", "/workspace/site"], "root_dir"),
            (&["--clearenv"], "only the given environment"),
            (&["--setenv", "CI", "1"], "environment"),
            (
                &[
                    "--",
                    "/run/outpost-shim",
                    "__outpost-build-shim",
                    "127.0.0.1:3128",
                    "/run/outpost/egress.sock",
                    "--",
                    "/bin/sh",
                    "-c",
                    "npm run build",
                ],
                "the command under the shim, last",
            ),
        ];
        for (needle, why) in required {
            assert!(has(&a, needle), "{why}: {needle:?} missing from {a:?}");
        }
        assert!(a.ends_with(&["npm run build".to_string()]));
        assert!(
            !a.iter().any(|s| s == "--share-net"),
            "the host network is never shared"
        );
        // Never the whole host file system, never a writable system path.
        assert!(!has(&a, &["--bind", "/", "/"]) && !has(&a, &["--ro-bind", "/", "/"]));
        assert!(!a.iter().any(|s| s == "--dev-bind"));
        let ro: Vec<&String> = a
            .windows(2)
            .filter(|w| w[0] == "--ro-bind")
            .map(|w| &w[1])
            .collect();
        assert_eq!(ro, ["/srv/builds/1/egress", "/usr/bin/coordinator"]);

        let binds: Vec<&String> = a
            .windows(2)
            .filter(|w| w[0] == "--bind")
            .map(|w| &w[1])
            .collect();
        assert_eq!(binds, ["/srv/builds/1/src", "/srv/cache/p"]);
        // --clearenv comes before every --setenv.
        let clear = a.iter().position(|s| s == "--clearenv").unwrap();
        assert!(a.iter().position(|s| s == "--setenv").unwrap() > clear);
    }

    #[test]
    fn args_without_cache_root_dir_or_way_out() {
        let mut s = spec();
        s.cache = None;
        s.workdir = String::new();
        s.egress = None;
        let a = strings(&s);
        assert!(!a.iter().any(|x| x == "/cache"));
        assert!(has(&a, &["--chdir", "/workspace"]));
        assert!(has(&a, &["--", "/bin/sh", "-c", "npm run build"]));
        assert!(!a.iter().any(|x| x.contains("outpost-shim")));
    }

    #[test]
    fn system_paths_never_include_the_root_or_private_dirs() {
        let paths = system_paths();
        assert!(!paths.is_empty());
        for p in &paths {
            let path = match p {
                SystemPath::Bind(p) => p,
                SystemPath::Symlink { path, .. } => path,
            };
            assert!(
                SYSTEM.iter().chain(ETC).any(|s| Path::new(s) == path),
                "{path:?}"
            );
        }
        assert!(paths
            .iter()
            .any(|p| matches!(p, SystemPath::Bind(u) if u == Path::new("/usr"))));
    }

    #[test]
    fn env_is_base_plus_project_with_a_heap_limit() {
        let project: BTreeMap<String, String> = [
            ("API_URL".to_string(), "https://x".to_string()),
            ("CI".to_string(), "true".to_string()),
        ]
        .into();
        let env = sandbox_env(&project, Some(PackageManager::Npm), 2 * 1024 * 1024 * 1024);
        assert_eq!(env["PATH"], PATH);
        assert_eq!(env["API_URL"], "https://x");
        assert_eq!(env["CI"], "true");
        assert_eq!(env["npm_config_cache"], "/cache/npm");
        // npm warns about `store-dir`, a pnpm-only setting.
        assert!(!env.contains_key("npm_config_store_dir"));
        assert_eq!(env["NODE_OPTIONS"], "--max-old-space-size=1536");
        assert!(!env.contains_key("CARGO_TARGET_DIR"));

        let with_opts: BTreeMap<String, String> = [(
            "NODE_OPTIONS".to_string(),
            "--enable-source-maps".to_string(),
        )]
        .into();
        let env = sandbox_env(&with_opts, None, 1024 * 1024 * 1024);
        assert_eq!(
            env["NODE_OPTIONS"],
            "--enable-source-maps --max-old-space-size=768"
        );
        assert!(!env.contains_key("npm_config_cache"));

        let env = sandbox_env(&BTreeMap::new(), Some(PackageManager::Pnpm), 1 << 30);
        assert_eq!(env["npm_config_store_dir"], "/cache/pnpm-store");
        assert_eq!(env["npm_config_cache"], "/cache/npm");
    }
}
