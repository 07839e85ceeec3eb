//! Test harness: real `coordinator` and `edge-node` processes on
//! 127.0.0.1:0 with tempdirs, driven through the CLI, the REST API and
//! real HTTP(S) clients.
#![allow(dead_code)]

pub mod git;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn coordinator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coordinator"))
}

pub fn edge_bin() -> PathBuf {
    let p = coordinator_bin().with_file_name("edge-node");
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p outpost-edge-node`) so the edge-node binary is built",
        p.display()
    );
    p
}

/// A child process whose stdout lines arrive on a channel; stderr goes to
/// a log file kept next to its data for post-mortems. Killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[&str], log: PathBuf, envs: &[(&str, &str)]) -> Proc {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", "info,pingora_core=warn")
            .env_remove("RUST_BACKTRACE");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            log,
        }
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no line containing {needle:?}; exit status {:?}; log:\n{}",
                    self.child.try_wait(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Coordinator {
    pub proc: Proc,
    pub api: SocketAddr,
    pub quic: SocketAddr,
    pub token: String,
    pub dir: PathBuf,
}

fn addr_after(line: &str, prefix: &str) -> SocketAddr {
    let rest = &line[line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {line:?}"))
        + prefix.len()..];
    let end = rest.find(['/', ' ', ',']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("address in {line:?}: {e}"))
}

impl Coordinator {
    /// Starts `coordinator serve` in `dir` (created), with optional TOML.
    pub fn start(dir: &Path, config_toml: Option<&str>) -> Coordinator {
        Self::start_with(dir, config_toml, "127.0.0.1:0")
    }

    /// Like `start`, on a given QUIC address (a restarted coordinator keeps
    /// the address its edges know).
    pub fn start_with(dir: &Path, config_toml: Option<&str>, quic: &str) -> Coordinator {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--api-addr".into(),
            "127.0.0.1:0".into(),
            "--quic-addr".into(),
            quic.into(),
            "--public-url".into(),
            "http://{host}".into(),
        ];
        if let Some(t) = config_toml {
            let p = dir.join("coordinator.toml");
            std::fs::write(&p, t).unwrap();
            args.push("--config".into());
            args.push(p.display().to_string());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = Proc::spawn(&coordinator_bin(), &argv, dir.join("coordinator.log"), &[]);
        let line = proc.wait_line("coordinator API on");
        let api = addr_after(&line, "http://");
        let quic = addr_after(&line, "edge QUIC on ");
        let token = match std::fs::read_to_string(dir.join("admin-token")) {
            Ok(t) => t.trim().to_string(),
            Err(e) => panic!("admin token: {e}"),
        };
        Coordinator {
            proc,
            api,
            quic,
            token,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca").join("ca.pem")
    }

    /// Runs a client subcommand against this coordinator.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(coordinator_bin())
            .args(args)
            .env("OUTPOST_URL", self.url())
            .env("OUTPOST_TOKEN", &self.token)
            .env("HOME", &self.dir)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "coordinator {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn join_token(&self, region: &str) -> String {
        self.cli_ok(&["token", "create-join", "--region", region])
            .trim()
            .to_string()
    }

    pub fn deploy(&self, site: &Path, project: &str, prod: bool) -> serde_json::Value {
        let site = site.display().to_string();
        let mut args = vec!["deploy", site.as_str(), "--project", project, "--json"];
        if prod {
            args.push("--prod");
        }
        serde_json::from_str(&self.cli_ok(&args)).unwrap()
    }

    pub fn api(&self) -> Api {
        Api {
            base: format!("{}/api/v1", self.url()),
            token: self.token.clone(),
            http: http_client(),
        }
    }
}

pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// GET `path`, its body as JSON (whatever the status).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub struct Edge {
    pub proc: Proc,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub dir: PathBuf,
}

impl Edge {
    /// Waits for a spawned edge process to serve (it prints its addresses).
    pub fn wait_serving(mut proc: Proc, dir: &Path) -> Edge {
        let line = proc.wait_line("serving http://");
        let http = addr_after(&line, "serving http://");
        let https = addr_after(&line, "https://");
        Edge {
            proc,
            http,
            https,
            dir: dir.to_path_buf(),
        }
    }

    pub fn join(coord: &Coordinator, region: &str, dir: &Path) -> Edge {
        let token = coord.join_token(region);
        let quic = coord.quic.to_string();
        let d = dir.display().to_string();
        let args = [
            "join",
            &quic,
            "--token",
            &token,
            "--region",
            region,
            "--data-dir",
            &d,
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--mesh",
            "127.0.0.1:0",
        ];
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let log = dir.with_extension("join.log");
        Self::wait_serving(Proc::spawn(&edge_bin(), &args, log, &[]), dir)
    }

    pub fn run(dir: &Path) -> Edge {
        let d = dir.display().to_string();
        let args = [
            "run",
            "--data-dir",
            &d,
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
        ];
        let n = std::fs::read_dir(dir.parent().unwrap()).unwrap().count();
        let log = dir.with_extension(format!("run{n}.log"));
        Self::wait_serving(Proc::spawn(&edge_bin(), &args, log, &[]), dir)
    }

    /// GET `path` for `host` over plain HTTP; (status, body, headers).
    pub async fn get(&self, host: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let resp = http_client()
            .get(format!("http://{}{path}", self.http))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.text().await.unwrap(), headers)
    }
}

/// Polls `check` every 50 ms until it returns Some; None once `secs` have
/// passed.
pub async fn poll<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(secs, check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Writes a small site: index.html with `tag`, plus fixed extra files.
pub fn write_site(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        format!("<!doctype html><h1>{tag}</h1>"),
    )
    .unwrap();
    std::fs::write(dir.join("about.html"), format!("about {tag}")).unwrap();
    std::fs::write(dir.join("404.html"), "custom not found").unwrap();
    std::fs::write(dir.join("assets/app.css"), "body{color:red}".repeat(50)).unwrap();
}

/// A plain reqwest client (rustls needs its crypto provider chosen first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
