//! Whole builds: real repositories, real `npm run build` in bubblewrap,
//! and the ways a build must fail.

use std::time::{Duration, Instant};

use crate::support::{have, run, text, Dirs, Repo};
use builder::detect::Framework;
use builder::{BuildError, LogStream};
use protocol::BlobHash;
use tokio_util::sync::CancellationToken;

const NPM_PACKAGE: &str = r#"{
  "name": "tiny-site",
  "version": "1.0.0",
  "private": true,
  "scripts": { "build": "node build.js" }
}
"#;

const NPM_BUILD: &str = r#"
const fs = require('fs');
fs.mkdirSync('dist/assets', { recursive: true });
const greeting = process.env.GREETING || 'none';
fs.writeFileSync('dist/index.html', `<h1>${greeting}</h1>` + '<p>padding</p>'.repeat(50));
fs.writeFileSync('dist/assets/app.3f2a9c1d.js', 'console.log("hi");\n'.repeat(100));
console.log('built with node ' + process.version + ' as uid ' + process.getuid());
"#;

#[tokio::test]
async fn static_site_without_a_build_step() {
    let repo = Repo::new();
    let sha = repo.commit(
        "static",
        &[
            ("index.html", "<h1>static</h1>"),
            ("css/site.css", "body{}"),
        ],
    );
    let dirs = Dirs::new();
    let (result, lines) = run(
        &builder_or_skip!("static_site_without_a_build_step"),
        dirs.request(&repo.url(), &sha),
        CancellationToken::new(),
    )
    .await;
    let out = result.unwrap_or_else(|e| panic!("{e}\n{}", text(&lines)));
    assert_eq!(out.detected.framework, Framework::Static);
    let files: Vec<&String> = out.bundle.manifest.files.keys().collect();
    assert_eq!(files, ["css/site.css", "index.html"]);
    assert_eq!(out.commit.sha, sha);
    let log = text(&lines);
    assert!(
        log.contains(&format!("Cloning {} at {}", repo.url(), &sha[..7])),
        "{log}"
    );
    assert!(
        log.contains("Detected a static site (index.html at the root)"),
        "{log}"
    );
    assert!(log.contains("Collected 2 files (0 functions)"), "{log}");
}

#[tokio::test]
async fn npm_run_build_runs_in_the_sandbox_at_the_exact_commit() {
    let b = builder_or_skip!("npm_run_build_runs_in_the_sandbox_at_the_exact_commit");
    if !have(
        "npm",
        "npm_run_build_runs_in_the_sandbox_at_the_exact_commit",
    ) {
        return;
    }
    let repo = Repo::new();
    let v1 = repo.commit(
        "v1",
        &[("package.json", NPM_PACKAGE), ("build.js", NPM_BUILD)],
    );
    // A later commit that would build something else.
    repo.commit(
        "v2",
        &[(
            "build.js",
            "require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html','v2')",
        )],
    );
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &v1);
    req.env.insert("GREETING".into(), "hello from env".into());
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    let log = text(&lines);
    let out = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(out.commit.sha, v1);
    assert_eq!(out.commit.message, "v1");
    assert_eq!(out.detected.framework, Framework::NodeScripts);
    assert_eq!(out.detected.build_command.as_deref(), Some("npm run build"));
    let m = &out.bundle.manifest;
    assert_eq!(
        m.files.keys().collect::<Vec<_>>(),
        ["assets/app.3f2a9c1d.js", "index.html"]
    );
    let index = &m.files["index.html"];
    let bytes = out.bundle.sources[&index.hash].read().unwrap();
    assert!(String::from_utf8_lossy(&bytes).starts_with("<h1>hello from env</h1>"));
    assert_eq!(index.variants.len(), 2, "brotli and gzip variants");
    for h in m.blobs() {
        let src = &out.bundle.sources[&h];
        assert_eq!(BlobHash::of(&src.read().unwrap()), h);
    }
    assert!(log.contains("Running `npm run build`"), "{log}");
    assert!(log.contains("built with node v"), "{log}");
    assert!(
        !log.contains("as uid 0\n") && !log.ends_with("as uid 0"),
        "{log}"
    );
    assert!(log.contains("Collected 2 files (0 functions)"), "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stdout && l.text.contains("built with node")),
        "build output is streamed as stdout"
    );
}

/// What `escape.js` tries, and what it found, as JSON in dist/index.html.
const ESCAPE: &str = r#"
const fs = require('fs');
const tryWrite = (p) => { try { fs.writeFileSync(p, 'escaped'); return 'WROTE'; } catch (e) { return e.code; } };
const tryRead = (p) => { try { return 'READ:' + fs.readFileSync(p, 'utf8'); } catch (e) { return e.code; } };
const r = {
  etc: tryWrite('/etc/x'),
  root: tryWrite('/root/x'),
  parent: tryWrite('../x'),
  rootfs: tryWrite('/x'),
  usr: tryWrite('/usr/x'),
  workParent: tryWrite(process.env.WORK_PARENT + '/x'),
  data: tryRead(process.env.DATA_FILE),
  hostTmpData: tryRead(process.env.TMP_DATA_FILE),
  shadow: tryRead('/etc/shadow'),
  uid: process.getuid(),
  env: Object.keys(process.env).sort(),
};
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html', JSON.stringify(r));
console.log(JSON.stringify(r));
"#;

#[tokio::test]
async fn the_build_cannot_escape_its_workspace() {
    let b = builder_or_skip!("the_build_cannot_escape_its_workspace");
    if !have("node", "the_build_cannot_escape_its_workspace") {
        return;
    }
    // The coordinator's data: once outside /tmp, once inside the host's /tmp.
    let data = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(data.path().join("secret.key"), "coordinator-secret").unwrap();
    let tmp_data = tempfile::tempdir().unwrap();
    std::fs::write(tmp_data.path().join("secret.key"), "coordinator-secret").unwrap();
    let repo = Repo::new();
    let sha = repo.commit(
        "escape",
        &[("package.json", NPM_PACKAGE), ("build.js", ESCAPE)],
    );
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.env
        .insert("WORK_PARENT".into(), dirs.work.path().display().to_string());
    req.env.insert(
        "DATA_FILE".into(),
        data.path().join("secret.key").display().to_string(),
    );
    req.env.insert(
        "TMP_DATA_FILE".into(),
        tmp_data.path().join("secret.key").display().to_string(),
    );
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    let log = text(&lines);
    let out = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let index = &out.bundle.manifest.files["index.html"];
    let report: serde_json::Value =
        serde_json::from_slice(&out.bundle.sources[&index.hash].read().unwrap()).unwrap();
    eprintln!("escape attempts: {report}");
    for key in ["etc", "root", "parent", "rootfs", "usr", "workParent"] {
        assert_ne!(report[key], "WROTE", "{key}: {report}");
    }
    for key in ["data", "hostTmpData", "shadow"] {
        let got = report[key].as_str().unwrap();
        assert!(!got.starts_with("READ:"), "{key}: {report}");
    }
    assert_ne!(report["uid"], 0, "{report}");
    // Only the base variables and the project's: nothing of ours leaks in.
    let env: Vec<&str> = report["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for leaked in [
        "CARGO_PKG_NAME",
        "CARGO_TARGET_DIR",
        "RUST_BACKTRACE",
        "USER",
        "PWD_HOST",
    ] {
        assert!(!env.contains(&leaked), "{leaked} leaked: {env:?}");
    }
    assert!(env.contains(&"CI") && env.contains(&"DATA_FILE"), "{env:?}");
    // And on the host, nothing was written.
    for p in ["/etc/x", "/root/x", "/x", "/usr/x"] {
        assert!(!std::path::Path::new(p).exists(), "{p} was written");
    }
    assert!(!dirs.work.path().join("x").exists());
    assert!(!dirs.work.path().join("build/x").exists());
}

#[tokio::test]
async fn cancel_kills_the_whole_process_tree() {
    let b = builder_or_skip!("cancel_kills_the_whole_process_tree");
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let marker = crate::support::marker();
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    // A background sleeper, a nested shell with another, and a foreground one.
    req.settings.build_command = Some(format!(
        "sleep {marker} & sh -c 'sleep {marker}' & sleep {marker}"
    ));
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { run(&b, req, cancel).await })
    };
    let t = Instant::now();
    while crate::support::processes_with(&marker).len() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the sleepers never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let (result, lines) = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("cancel returns promptly")
        .unwrap();
    assert!(matches!(result, Err(BuildError::Canceled)), "{result:?}");
    assert!(text(&lines).contains("Build failed"), "{}", text(&lines));
    let t = Instant::now();
    loop {
        let left = crate::support::processes_with(&marker);
        if left.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "survivors: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_build_past_its_timeout_fails_cleanly() {
    let b = builder_or_skip!("a_build_past_its_timeout_fails_cleanly");
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let marker = crate::support::marker();
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command = Some(format!("echo started; sleep {marker}"));
    req.limits.timeout = Duration::from_secs(3);
    let t = Instant::now();
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let err = result.unwrap_err();
    assert!(matches!(err, BuildError::Timeout(_)), "{err}");
    assert_eq!(err.to_string(), "build exceeded its 3s timeout");
    assert!(text(&lines).contains("started"));
    assert!(crate::support::processes_with(&marker).is_empty());
}

#[tokio::test]
async fn a_missing_tool_is_named() {
    let b = builder_or_skip!("a_missing_tool_is_named");
    let host =
        |t: &str| builder::detect::missing_tool(&[t], &builder::sandbox::path_dirs()).is_none();
    let repo = Repo::new();
    let (sha, tool) = if !host("hugo") {
        (
            repo.commit(
                "hugo",
                &[("hugo.toml", "title = 'x'"), ("content/_index.md", "# hi")],
            ),
            "hugo",
        )
    } else if !host("zola") {
        (
            repo.commit(
                "zola",
                &[
                    ("config.toml", "base_url = \"https://x\""),
                    ("templates/index.html", "x"),
                ],
            ),
            "zola",
        )
    } else {
        eprintln!("\n\n!!!!! SKIPPING a_missing_tool_is_named: hugo and zola are both installed !!!!!\n\n");
        return;
    };
    let dirs = Dirs::new();
    let (result, lines) = run(
        &b,
        dirs.request(&repo.url(), &sha),
        CancellationToken::new(),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the build needs `{tool}`, which is not installed on this build host")
    );
    assert!(
        text(&lines).contains("Build failed after"),
        "{}",
        text(&lines)
    );
}

#[tokio::test]
async fn secrets_are_redacted_from_every_log_line() {
    let b = builder_or_skip!("secrets_are_redacted_from_every_log_line");
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    let secret = "sk_live_7bd1c0ffee";
    req.env.insert("API_KEY".into(), secret.into());
    req.redact = vec![secret.into()];
    req.settings.build_command = Some(
        "echo \"key=$API_KEY\"; echo \"err $API_KEY\" >&2; printf 'no newline %s' \"$API_KEY\""
            .into(),
    );
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    let log = text(&lines);
    result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(!log.contains(secret), "{log}");
    assert!(log.contains("[Stdout] key=[redacted]"), "{log}");
    assert!(log.contains("[Stderr] err [redacted]"), "{log}");
    assert!(log.contains("no newline [redacted]"), "{log}");
}

#[tokio::test]
async fn output_and_log_limits() {
    let b = builder_or_skip!("output_and_log_limits");
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);

    // No output folder after the build.
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command = Some("true".into());
    req.settings.output_dir = Some("dist".into());
    let (result, _) = run(&b, req, CancellationToken::new()).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "output directory `dist` does not exist after the build — set output_dir"
    );

    // An output folder that is a link out of the checkout.
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command = Some("ln -s /etc dist".into());
    req.settings.output_dir = Some("dist".into());
    let (result, _) = run(&b, req, CancellationToken::new()).await;
    assert!(
        matches!(result, Err(BuildError::OutputOutside(_))),
        "{result:?}"
    );

    // Too much output.
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command =
        Some("mkdir dist && head -c 200000 /dev/zero > dist/big.bin".into());
    req.settings.output_dir = Some("dist".into());
    req.limits.max_output_bytes = 100_000;
    let (result, _) = run(&b, req, CancellationToken::new()).await;
    assert!(
        matches!(
            result,
            Err(BuildError::OutputTooLarge {
                size: 200_000,
                limit: 100_000
            })
        ),
        "{result:?}"
    );

    // Too much log.
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command = Some("yes 'a line of log output' | head -c 5000000".into());
    req.limits.max_log_bytes = 64 * 1024;
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    assert!(matches!(result, Err(BuildError::LogLimit(_))), "{result:?}");
    let logged: usize = lines
        .iter()
        .filter(|l| l.stream != LogStream::System)
        .map(|l| l.text.len() + 1)
        .sum();
    assert!(logged <= 64 * 1024, "{logged}");
}

#[tokio::test]
async fn memory_limit_stops_a_greedy_build() {
    let b = builder_or_skip!("memory_limit_stops_a_greedy_build");
    if !have("node", "memory_limit_stops_a_greedy_build") {
        return;
    }
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    // Buffers live outside V8's heap, so only RLIMIT_DATA can stop this.
    req.settings.build_command = Some(
        "node -e 'const a = []; for (let i = 0; i < 200; i++) a.push(Buffer.alloc(1 << 23, 1)); console.log(\"allocated\")'"
            .into(),
    );
    req.limits.memory_bytes = 512 << 20;
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    assert!(
        matches!(
            result,
            Err(BuildError::CommandFailed { phase: "build", .. })
        ),
        "{result:?}\n{}",
        text(&lines)
    );
    assert!(!lines
        .iter()
        .any(|l| l.stream == LogStream::Stdout && l.text.contains("allocated")));
}

#[tokio::test]
async fn refused_urls_and_bad_requests_clone_nothing() {
    let b = builder::Builder::new(builder::BuilderConfig::default());
    let Ok(b) = b else {
        eprintln!("\n\n!!!!! SKIPPING refused_urls_and_bad_requests_clone_nothing: no usable bwrap !!!!!\n\n");
        return;
    };
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let dirs = Dirs::new();
    // The default policy: no local repositories.
    let (result, _) = run(
        &b,
        dirs.request(&repo.url(), &sha),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(result, Err(BuildError::Git(_))), "{result:?}");
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("refusing repository URL"));
    assert!(!dirs.src().exists());

    let b = crate::support::builder();
    for (field, value) in [("root_dir", "../.."), ("output_dir", "/etc")] {
        let mut req = dirs.request(&repo.url(), &sha);
        if field == "root_dir" {
            req.settings.root_dir = Some(value.into());
        } else {
            req.settings.output_dir = Some(value.into());
        }
        let (result, _) = run(&b, req, CancellationToken::new()).await;
        assert!(
            matches!(result, Err(BuildError::InvalidRequest(_))),
            "{result:?}"
        );
    }
    let (result, _) = run(
        &b,
        dirs.request(&repo.url(), "main"),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(result, Err(BuildError::Git(_))), "{result:?}");
}

#[tokio::test]
async fn root_dir_selects_the_project_in_a_monorepo() {
    let b = builder_or_skip!("root_dir_selects_the_project_in_a_monorepo");
    let repo = Repo::new();
    let sha = repo.commit(
        "mono",
        &[
            ("README.md", "monorepo"),
            ("apps/web/public/index.html", "web"),
            ("apps/docs/mkdocs.yml", "site_name: x"),
        ],
    );
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.root_dir = Some("apps/web".into());
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    let out = result.unwrap_or_else(|e| panic!("{e}\n{}", text(&lines)));
    assert_eq!(out.detected.output_dir, "public");
    assert_eq!(
        out.bundle.manifest.files.keys().collect::<Vec<_>>(),
        ["index.html"]
    );

    let mut req = dirs.request(&repo.url(), &sha);
    req.work_dir = dirs.work.path().join("second");
    req.settings.root_dir = Some("apps/missing".into());
    let (result, _) = run(&b, req, CancellationToken::new()).await;
    assert!(
        matches!(result, Err(BuildError::RootDirMissing(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn npm_ci_installs_with_the_project_cache() {
    let b = builder_or_skip!("npm_ci_installs_with_the_project_cache");
    if !have("npm", "npm_ci_installs_with_the_project_cache") {
        return;
    }
    let repo = Repo::new();
    // A dependency from the repository itself: install runs, offline.
    for (path, text) in [
        (
            "package.json",
            r#"{"name": "with-dep", "version": "1.0.0", "private": true,
                "dependencies": {"greet": "file:./greet"},
                "scripts": {"build": "node build.js"}}"#,
        ),
        (
            "greet/package.json",
            r#"{"name": "greet", "version": "1.0.0", "main": "index.js"}"#,
        ),
        ("greet/index.js", "module.exports = (n) => `hello ${n}`;"),
        (
            "build.js",
            "require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html', require('greet')('npm'));",
        ),
    ] {
        let p = repo.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let lock = std::process::Command::new("npm")
        .args([
            "install",
            "--package-lock-only",
            "--offline",
            "--no-audit",
            "--no-fund",
        ])
        .current_dir(repo.dir.path())
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let sha = repo.commit("with a dependency", &[]);

    let dirs = Dirs::new();
    for (round, expect) in [(1, "npm cache: empty"), (2, "npm cache: hit")] {
        let mut req = dirs.request(&repo.url(), &sha);
        req.work_dir = dirs.work.path().join(format!("round{round}"));
        let (result, lines) = run(&b, req, CancellationToken::new()).await;
        let log = text(&lines);
        let out = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(out.detected.install_command.as_deref(), Some("npm ci"));
        assert!(log.contains("Running `npm ci`"), "{log}");
        assert!(log.contains(expect), "round {round}: {log}");
        let index = &out.bundle.manifest.files["index.html"];
        assert_eq!(
            &out.bundle.sources[&index.hash].read().unwrap()[..],
            b"hello npm"
        );
    }
    // npm wrote its cache under the project's cache folder, not in $HOME.
    let npm = dirs.cache.path().join("npm");
    let store = std::fs::read_dir(&npm)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(store.join("npm").is_dir(), "{store:?}");
}

/// A build may not fill the disk or the process table: past its checkout
/// size it is stopped; past its process count its forks fail.
#[tokio::test]
async fn a_build_is_bounded_in_disk_and_processes() {
    let b = builder_or_skip!("a_build_is_bounded_in_disk_and_processes");
    let repo = Repo::new();
    let sha = repo.commit("s", &[("index.html", "x")]);
    let dirs = Dirs::new();
    let mut req = dirs.request(&repo.url(), &sha);
    req.settings.build_command =
        Some("head -c 64000000 /dev/zero > filler && echo written && sleep 60".into());
    req.limits.max_workspace_bytes = 16 << 20;
    let t = Instant::now();
    let (result, lines) = run(&b, req, CancellationToken::new()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, BuildError::WorkspaceTooLarge(_)),
        "{err}: {}",
        text(&lines)
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // The limit is per user, and other builds of the same user (tests run
    // in parallel) may hold part of it: then even the build's own shell may
    // fail to start (exit 2). That is the limit holding too, but it says
    // nothing of this build's forks, so such a run is tried again once the
    // others have moved on.
    let mut attempt = 0;
    let lines = loop {
        attempt += 1;
        let dirs = Dirs::new();
        let mut req = dirs.request(&repo.url(), &sha);
        req.settings.build_command = Some(
            // Builtins only, but for the forks counted.
            "ok=0; i=0; while [ $i -lt 100 ]; do i=$((i+1)); (sleep 5 &) 2>/dev/null && ok=$((ok+1)); done; echo forked $ok".into(),
        );
        req.limits.max_processes = 32;
        let (result, lines) = run(&b, req, CancellationToken::new()).await;
        match result {
            Ok(_) => break lines,
            Err(BuildError::CommandFailed { .. }) if attempt < 5 => {
                tokio::time::sleep(Duration::from_secs(6)).await;
            }
            Err(e) => panic!("{e}: {}", text(&lines)),
        }
    };
    let forked: u32 = text(&lines)
        .lines()
        .find_map(|l| l.strip_prefix("[Stdout] forked "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", text(&lines)));
    assert!(forked < 100, "{forked} of 100 forks under a limit of 32");
}
