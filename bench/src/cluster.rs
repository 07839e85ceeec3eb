//! A real cluster for measuring: `coordinator serve` and N `edge-node`
//! processes on loopback, each with its own data directory, killed when
//! the cluster is dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use protocol::status::NodeStatus;
use test_support::cluster::{Bins, Coordinator};

/// Benchmarks want the servers' warnings only: their logs stay small.
const LOG: &[(&str, &str)] = &[("RUST_LOG", "warn")];

/// An edge node of the cluster, and the id it enrolled with.
pub struct Edge {
    node: test_support::cluster::Edge,
    pub node_id: String,
}

impl std::ops::Deref for Edge {
    type Target = test_support::cluster::Edge;
    fn deref(&self) -> &Self::Target {
        &self.node
    }
}

impl std::ops::DerefMut for Edge {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.node
    }
}

impl Edge {
    fn enrolled(node: test_support::cluster::Edge) -> anyhow::Result<Edge> {
        let node_id = test_support::cluster::node_status(&node.dir)?.node_id;
        Ok(Edge { node, node_id })
    }

    pub fn status(&self) -> Option<NodeStatus> {
        self.node.status()
    }
}

pub struct Cluster {
    pub bin_dir: PathBuf,
    pub root: tempfile::TempDir,
    /// Held so the process lives (and dies) with the cluster.
    coordinator: Coordinator,
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
        let mut toml = None;
        if builds {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))?;
            toml = Some(format!(
                "[builds]\nallow_local_git = true\ntimeout = \"10m\"\nconcurrency = 1\nwork_dir = \"{}\"\n",
                root.path().join("builds").display()
            ));
        }
        let coordinator = Coordinator::launch(
            &Bins::in_dir(bin_dir),
            &root.path().join("coordinator"),
            toml.as_deref(),
            "127.0.0.1:0",
            LOG,
        )?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cluster = Cluster {
            bin_dir: bin_dir.to_path_buf(),
            api: coordinator.url(),
            token: coordinator.token.clone(),
            coordinator,
            edges: Vec::new(),
            peer_assist,
            http: reqwest::Client::new(),
            root,
        };
        for i in 0..nodes {
            let region = &regions[i % regions.len()];
            let edge = cluster.join(i, region)?;
            cluster.edges.push(edge);
        }
        Ok(cluster)
    }

    fn join(&self, i: usize, region: &str) -> anyhow::Result<Edge> {
        self.join_with(i, region, &[])
    }

    /// Joins edge `i` with extra `edge-node` flags and adds it.
    pub fn add_edge(&mut self, region: &str, flags: &[&str]) -> anyhow::Result<()> {
        let edge = self.join_with(self.edges.len(), region, flags)?;
        self.edges.push(edge);
        Ok(())
    }

    fn join_with(&self, i: usize, region: &str, flags: &[&str]) -> anyhow::Result<Edge> {
        let dir = self.root.path().join(format!("edge{i}"));
        let name = format!("edge-{i}");
        let mut extra = vec!["--name", &name];
        extra.extend_from_slice(flags);
        if !self.peer_assist {
            extra.push("--no-peer-assist");
        }
        Edge::enrolled(test_support::cluster::Edge::launch_join(
            &self.coordinator,
            region,
            &dir,
            &extra,
        )?)
    }

    /// The coordinator process (`bench scale` joins edges of its own).
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.proc.child.id()
    }

    /// The coordinator's data directory (its database is `coordinator.db`).
    pub fn coordinator_dir(&self) -> PathBuf {
        self.coordinator.dir.clone()
    }

    /// Restarts edge `i` with its saved identity.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let dir = self.edges[i].dir.clone();
        let extra: &[&str] = if self.peer_assist {
            &[]
        } else {
            &["--no-peer-assist"]
        };
        let bins = Bins::in_dir(&self.bin_dir);
        self.edges[i] =
            Edge::enrolled(test_support::cluster::Edge::launch_run(&bins, &dir, extra)?)?;
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
