//! A real cluster for measuring: `coordinator serve` and N `edge-node`
//! processes on loopback, each with its own data directory, killed when
//! the cluster is dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edge_node::status::NodeStatus;

pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(bin: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Proc> {
        let stderr = std::fs::File::create(&log)?;
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            lines: rx,
            log,
        })
    }

    fn wait_line(&mut self, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => bail!(
                    "no {needle:?} from the process; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn addr_after(line: &str, prefix: &str) -> anyhow::Result<SocketAddr> {
    let start = line.find(prefix).context("address missing")? + prefix.len();
    let rest = &line[start..];
    let end = rest.find(['/', ' ', ',']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .with_context(|| format!("address in {line:?}"))
}

pub struct Edge {
    pub proc: Proc,
    pub dir: PathBuf,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub node_id: String,
}

impl Edge {
    pub fn status(&self) -> Option<NodeStatus> {
        edge_node::status::read(&self.dir).ok()
    }
}

pub struct Cluster {
    pub bin_dir: PathBuf,
    pub root: tempfile::TempDir,
    /// Held so the process lives (and dies) with the cluster.
    _coordinator: Proc,
    pub api: String,
    pub token: String,
    pub edges: Vec<Edge>,
    pub peer_assist: bool,
    http: reqwest::Client,
}

impl Cluster {
    pub fn start(
        bin_dir: &Path,
        nodes: usize,
        regions: &[String],
        peer_assist: bool,
    ) -> anyhow::Result<Cluster> {
        Self::start_with(bin_dir, nodes, regions, peer_assist, false)
    }

    /// A cluster whose coordinator builds from local git repositories
    /// (`[builds] allow_local_git`), its build work folder under the
    /// cluster's root, which is made searchable (`o+x`) for the
    /// unprivileged build user.
    pub fn start_building(
        bin_dir: &Path,
        nodes: usize,
        regions: &[String],
    ) -> anyhow::Result<Cluster> {
        Self::start_with(bin_dir, nodes, regions, true, true)
    }

    fn start_with(
        bin_dir: &Path,
        nodes: usize,
        regions: &[String],
        peer_assist: bool,
        builds: bool,
    ) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new().prefix("outpost-bench").tempdir()?;
        let coord_dir = root.path().join("coordinator");
        std::fs::create_dir_all(&coord_dir)?;
        let mut args: Vec<String> = [
            "serve",
            "--data-dir",
            &coord_dir.display().to_string(),
            "--api-addr",
            "127.0.0.1:0",
            "--quic-addr",
            "127.0.0.1:0",
            "--public-url",
            "http://{host}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if builds {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))?;
            let toml = coord_dir.join("coordinator.toml");
            std::fs::write(
                &toml,
                format!(
                    "[builds]\nallow_local_git = true\ntimeout = \"10m\"\nconcurrency = 1\nwork_dir = \"{}\"\n",
                    root.path().join("builds").display()
                ),
            )?;
            args.extend(["--config".to_string(), toml.display().to_string()]);
        }
        let mut coordinator = Proc::spawn(
            &bin_dir.join("coordinator"),
            &args,
            root.path().join("coordinator.log"),
        )?;
        let line = coordinator.wait_line("coordinator API on")?;
        let api = format!("http://{}", addr_after(&line, "http://")?);
        let quic = addr_after(&line, "edge QUIC on ")?;
        let token = std::fs::read_to_string(coord_dir.join("admin-token"))?
            .trim()
            .to_string();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cluster = Cluster {
            bin_dir: bin_dir.to_path_buf(),
            _coordinator: coordinator,
            api,
            token,
            edges: Vec::new(),
            peer_assist,
            http: reqwest::Client::new(),
            root,
        };
        for i in 0..nodes {
            let region = &regions[i % regions.len()];
            let edge = cluster.join(i, region, quic)?;
            cluster.edges.push(edge);
        }
        Ok(cluster)
    }

    fn join_token(&self, region: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin_dir.join("coordinator"))
            .args(["token", "create-join", "--region", region])
            .env("OUTPOST_URL", &self.api)
            .env("OUTPOST_TOKEN", &self.token)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "creating a join token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    fn join(&self, i: usize, region: &str, quic: SocketAddr) -> anyhow::Result<Edge> {
        let dir = self.root.path().join(format!("edge{i}"));
        let (quic, token, name, d) = (
            quic.to_string(),
            self.join_token(region)?,
            format!("edge-{i}"),
            dir.display().to_string(),
        );
        let args = [
            "join",
            &quic,
            "--token",
            &token,
            "--region",
            region,
            "--name",
            &name,
            "--data-dir",
            &d,
            "--mesh",
            "127.0.0.1:0",
        ];
        self.spawn_edge(dir.clone(), &args, "join")
    }

    /// Starts an edge with `args` plus the listen addresses and the
    /// cluster's peer-assist choice; waits until it serves.
    fn spawn_edge(&self, dir: PathBuf, args: &[&str], what: &str) -> anyhow::Result<Edge> {
        let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        argv.extend(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"].map(String::from));
        if !self.peer_assist {
            argv.push("--no-peer-assist".into());
        }
        let log = dir.with_extension(format!("{what}.log"));
        let mut proc = Proc::spawn(&self.bin_dir.join("edge-node"), &argv, log)?;
        let line = proc.wait_line("serving http://")?;
        let http = addr_after(&line, "serving http://")?;
        let https = addr_after(&line, "https://")?;
        let node_id = edge_node::status::read(&dir)?.node_id;
        Ok(Edge {
            proc,
            dir,
            http,
            https,
            node_id,
        })
    }

    /// Restarts edge `i` with its saved identity.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let dir = self.edges[i].dir.clone();
        let d = dir.display().to_string();
        self.edges[i] = self.spawn_edge(dir, &["run", "--data-dir", &d], "run")?;
        Ok(())
    }

    /// Waits until every node sees every other node alive.
    pub async fn wait_formed(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let formed = self.edges.iter().all(|e| {
                e.status().is_some_and(|s| {
                    s.members.iter().filter(|m| m.state == "alive").count() == self.edges.len() - 1
                })
            });
            if formed {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!("the mesh did not form within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The cluster CA edges' HTTPS certificates chain to.
    pub fn ca_pem(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(
            self.root.path().join("coordinator/ca/ca.pem"),
        )?)
    }

    /// Deploys `site` to production as project `project` and returns when
    /// finalize does.
    pub async fn deploy(&self, site: &Path, project: &str) -> anyhow::Result<()> {
        let client = self.client()?;
        let staged = self.stage(&client, site, project).await?;
        coordinator::cli::deploy::finalize(&client, staged).await?;
        Ok(())
    }

    /// Uploads `site` as a production deployment of `project`, short of
    /// finalize (which benchmarks time on their own).
    pub async fn stage(
        &self,
        client: &coordinator::cli::client::Client,
        site: &Path,
        project: &str,
    ) -> anyhow::Result<coordinator::cli::deploy::Staged> {
        let opts = coordinator::cli::deploy::DeployOptions {
            dir: site,
            project,
            prod: true,
            json: true,
        };
        coordinator::cli::deploy::stage(client, opts).await
    }

    pub fn client(&self) -> anyhow::Result<coordinator::cli::client::Client> {
        coordinator::cli::client::Client::new(&coordinator::cli::credentials::Credentials {
            url: self.api.clone(),
            token: self.token.clone(),
        })
    }

    /// An authenticated request to the coordinator API (`path` under `/api/v1`).
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.api))
            .bearer_auth(&self.token)
    }

    async fn health(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .get(format!("{}/api/v1/health", self.api))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Blob bytes the coordinator has sent to edges since it started.
    pub async fn egress(&self) -> anyhow::Result<u64> {
        self.health().await?["blob_bytes_sent_to_edges"]
            .as_u64()
            .context("health lacks egress")
    }

    /// The config version the coordinator publishes.
    pub async fn config_version(&self) -> anyhow::Result<u64> {
        self.health().await?["config_version"]
            .as_u64()
            .context("health lacks config_version")
    }
}
