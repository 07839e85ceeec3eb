//! Real processes of a cluster: `coordinator serve` and `edge-node`, each
//! on `127.0.0.1:0` with its own data directory, driven through the CLI,
//! the REST API and real HTTP(S) clients. Every process dies with its
//! handle.
//!
//! The binaries are the workspace's own: `cargo test --workspace` builds
//! them before any integration test runs, next to the test executables'
//! `deps/` folder ([`Bins::of_tests`]); the benchmarks take a folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use protocol::status::NodeStatus;

use crate::process::{addr_after, Proc, STARTUP};
use crate::{Error, Result};

/// Where the `coordinator` and `edge-node` binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    pub coordinator: PathBuf,
    pub edge: PathBuf,
}

impl Bins {
    pub fn in_dir(dir: &Path) -> Bins {
        Bins {
            coordinator: dir.join("coordinator"),
            edge: dir.join("edge-node"),
        }
    }

    /// The binaries of the build this test executable belongs to
    /// (`target/<profile>/deps/<test>` → `target/<profile>/`).
    pub fn of_tests() -> Bins {
        let exe = std::env::current_exe().expect("the test executable's path");
        let deps = exe.parent().expect("the test executable is in deps/");
        let dir = if deps.ends_with("deps") {
            deps.parent().unwrap()
        } else {
            deps
        };
        let bins = Bins::in_dir(dir);
        for b in [&bins.coordinator, &bins.edge] {
            assert!(
                b.exists(),
                "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins`) so the binaries are built",
                b.display()
            );
        }
        bins
    }
}

pub struct Coordinator {
    pub proc: Proc,
    pub api: SocketAddr,
    pub quic: SocketAddr,
    pub token: String,
    /// While no account exists: what the first sign-up needs.
    pub setup_token: Option<String>,
    pub dir: PathBuf,
    pub bins: Bins,
}

impl Coordinator {
    /// Starts `coordinator serve` in `dir` (created), with optional TOML,
    /// QUIC on `quic` (a restarted coordinator keeps the address its
    /// edges know) and extra environment.
    pub fn launch(
        bins: &Bins,
        dir: &Path,
        config_toml: Option<&str>,
        quic: &str,
        envs: &[(&str, &str)],
    ) -> Result<Coordinator> {
        Self::launch_member(bins, dir, config_toml, quic, envs, &[], None)
    }

    /// Like [`launch`](Self::launch), for one of several coordinators on
    /// one database: `extra` flags (`--role builder`), and the cluster's
    /// admin token when another coordinator made it (only the first one
    /// has it in its data directory). A builder has no QUIC address
    /// (`quic` is then `0.0.0.0:0`).
    pub fn launch_member(
        bins: &Bins,
        dir: &Path,
        config_toml: Option<&str>,
        quic: &str,
        envs: &[(&str, &str)],
        extra: &[&str],
        token: Option<&str>,
    ) -> Result<Coordinator> {
        std::fs::create_dir_all(dir)?;
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
        // Tests and benchmarks talk to loopback only: no ACME CA out there
        // is ever asked, unless a test points `[acme]` at its own.
        let mut toml = config_toml.unwrap_or_default().to_string();
        if !toml.contains("[acme]") {
            toml.push_str("\n[acme]\nenabled = false\n");
        }
        // Tests drive the API harder than a person (the authorization
        // matrix alone makes hundreds of calls with one token): the
        // default 100 a minute is for people. The rate-limit tests set
        // their own.
        if !toml.contains("[rate_limits]") {
            toml.push_str("\n[rate_limits]\napi = \"1000000/1m\"\nauth = \"1000000/1m\"\n");
        }
        let p = dir.join("coordinator.toml");
        std::fs::write(&p, toml)?;
        args.push("--config".into());
        args.push(p.display().to_string());
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut proc = Proc::launch(&bins.coordinator, &args, dir.join("coordinator.log"), envs)?;
        let line = proc.try_wait_line("coordinator API on", STARTUP)?;
        let api = addr_after(&line, "http://")?;
        let quic = if line.contains("edge QUIC on none") {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            addr_after(&line, "edge QUIC on ")?
        };
        let token = match std::fs::read_to_string(dir.join("admin-token")) {
            Ok(t) => t.trim().to_string(),
            Err(e) => match token {
                Some(t) => t.to_string(),
                None => return Err(Error::new(format!("admin token: {e}"))),
            },
        };
        let setup_token = std::fs::read_to_string(dir.join("setup-token"))
            .ok()
            .map(|t| t.trim().to_string());
        Ok(Coordinator {
            proc,
            api,
            quic,
            token,
            setup_token,
            dir: dir.to_path_buf(),
            bins: bins.clone(),
        })
    }

    /// For tests: the workspace's binaries, any QUIC port; panics on failure.
    pub fn start(dir: &Path, config_toml: Option<&str>) -> Coordinator {
        Self::start_with(dir, config_toml, "127.0.0.1:0")
    }

    /// Like [`start`](Self::start), on a given QUIC address.
    pub fn start_with(dir: &Path, config_toml: Option<&str>, quic: &str) -> Coordinator {
        Self::launch(&Bins::of_tests(), dir, config_toml, quic, &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca").join("ca.pem")
    }

    /// Runs a client subcommand against this coordinator.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bins.coordinator)
            .args(args)
            .env("OUTPOST_URL", self.url())
            .env("OUTPOST_TOKEN", &self.token)
            .env("HOME", &self.dir)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    }

    /// A client subcommand that must succeed; its stdout.
    pub fn try_cli(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args);
        if !out.status.success() {
            return Err(Error::new(format!(
                "coordinator {args:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_join_token(&self, region: &str) -> Result<String> {
        Ok(self
            .try_cli(&["token", "create-join", "--region", region])?
            .trim()
            .to_string())
    }

    pub fn join_token(&self, region: &str) -> String {
        self.try_join_token(region)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `coordinator deploy SITE --project P [--prod] --json`, its answer.
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

/// The REST API of one coordinator, as one credential.
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

    /// Creates a project of this credential's team (201, or it panics).
    pub async fn create_project(&self, name: &str) {
        let r = self
            .req(reqwest::Method::POST, "/projects")
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "creating project {name}: {}",
            r.text().await.unwrap()
        );
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

/// An edge's HTTP and HTTPS listeners: loopback, any free port.
const LOOPBACK_LISTENERS: [&str; 4] = ["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"];

pub struct Edge {
    pub proc: Proc,
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// Where it serves `GET /metrics`, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    pub dir: PathBuf,
}

impl Edge {
    /// Waits for a spawned edge process to serve (it prints its addresses).
    pub fn try_wait_serving(mut proc: Proc, dir: &Path) -> Result<Edge> {
        let line = proc.try_wait_line("serving http://", STARTUP)?;
        let http = addr_after(&line, "serving http://")?;
        let https = addr_after(&line, "https://")?;
        let metrics = addr_after(&line, "metrics http://").ok();
        Ok(Edge {
            proc,
            http,
            https,
            metrics,
            dir: dir.to_path_buf(),
        })
    }

    pub fn wait_serving(proc: Proc, dir: &Path) -> Edge {
        Self::try_wait_serving(proc, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `edge-node join` into `dir` with a fresh join token of `region`,
    /// listening on loopback port 0 for HTTP, HTTPS and the mesh, plus
    /// `extra` arguments (`--name`, `--no-peer-assist`, …).
    pub fn launch_join(
        coord: &Coordinator,
        region: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Result<Edge> {
        Self::launch_join_on(coord, region, dir, "127.0.0.1:0", "127.0.0.1:0", extra)
    }

    /// [`Edge::launch_join`] with its HTTP and HTTPS listeners at `http`
    /// and `https` (another loopback address, a fixed port).
    pub fn launch_join_on(
        coord: &Coordinator,
        region: &str,
        dir: &Path,
        http: &str,
        https: &str,
        extra: &[&str],
    ) -> Result<Edge> {
        let token = coord.try_join_token(region)?;
        let quic = coord.quic.to_string();
        let d = dir.display().to_string();
        let mut args = vec!["join", &quic, "--token", &token, "--region", region];
        args.extend(["--data-dir", &d]);
        args.extend(["--http", http, "--https", https]);
        args.extend(["--mesh", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log = dir.with_extension("join.log");
        Self::try_wait_serving(Proc::launch(&coord.bins.edge, &args, log, &[])?, dir)
    }

    pub fn join(coord: &Coordinator, region: &str, dir: &Path) -> Edge {
        Self::launch_join(coord, region, dir, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `edge-node run` on an identity saved in `dir`, plus `extra` arguments.
    pub fn launch_run(bins: &Bins, dir: &Path, extra: &[&str]) -> Result<Edge> {
        let d = dir.display().to_string();
        let mut args = vec!["run", "--data-dir", &d];
        args.extend(LOOPBACK_LISTENERS);
        args.extend_from_slice(extra);
        let n = dir
            .parent()
            .and_then(|p| std::fs::read_dir(p).ok())
            .map_or(0, |d| d.count());
        let log = dir.with_extension(format!("run{n}.log"));
        Self::try_wait_serving(Proc::launch(&bins.edge, &args, log, &[])?, dir)
    }

    pub fn run(dir: &Path) -> Edge {
        Self::launch_run(&Bins::of_tests(), dir, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// What the node last wrote to its status file, if it reads.
    pub fn status(&self) -> Option<NodeStatus> {
        node_status(&self.dir).ok()
    }

    /// GET `path` for `host` over plain HTTP; (status, body, headers).
    /// Redirects are answers here, never followed: a followed redirect
    /// would leave the loopback address for a host name no resolver knows.
    pub async fn get(&self, host: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let resp = no_redirect_client()
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

/// The status file of the edge node whose data directory is `dir`.
pub fn node_status(dir: &Path) -> Result<NodeStatus> {
    let p = dir.join(protocol::status::FILE);
    let bytes = std::fs::read(&p).map_err(|e| Error::new(format!("{}: {e}", p.display())))?;
    protocol::status::decode(&bytes).map_err(|e| Error::new(format!("{}: {e}", p.display())))
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

/// A client that reports redirects instead of following them.
pub fn no_redirect_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}
