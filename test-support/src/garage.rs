//! A real S3-compatible object store for tests: Garage (a distributed
//! store written for self-hosting), one node on loopback ports in a
//! tempdir, with a single-node layout, one bucket and one key made through
//! its own CLI. `.ci/run` installs it with `cargo install garage` into a
//! cache outside the checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::dns::free_port;
use crate::process::Proc;
use crate::{Error, Result};

/// Where the binary is: `OUTPOST_GARAGE`, else `garage` in `.ci/run`'s tool
/// cache, else on the PATH.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTPOST_GARAGE") {
        return p.into();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = Path::new(&home).join(".cache/outpost-tools/bin/garage");
        if cached.exists() {
            return cached;
        }
    }
    "garage".into()
}

/// Whether Garage is installed.
pub fn available() -> bool {
    Command::new(binary())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub struct Garage {
    proc: Option<Proc>,
    dir: PathBuf,
    config: PathBuf,
    /// `http://127.0.0.1:PORT`: the S3 API.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

impl Garage {
    /// Starts a one-node Garage in `dir` and makes a bucket `outpost`
    /// with a read-write key.
    pub fn start(dir: &Path) -> Result<Garage> {
        std::fs::create_dir_all(dir)?;
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.join("garage.toml");
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) as u8))
            .collect();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )?;
        let mut g = Garage {
            proc: None,
            dir: dir.to_path_buf(),
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            region: "garage".into(),
            bucket: "outpost".into(),
            key_id: String::new(),
            secret: String::new(),
        };
        g.run_server()?;
        // A single-node layout: this node holds everything.
        let id = g.cli(&["node", "id", "-q"])?;
        let id = id.trim().split('@').next().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(Error::new("garage node id printed nothing"));
        }
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        g.cli(&["layout", "apply", "--version", "1"])?;
        g.cli(&["bucket", "create", &g.bucket.clone()])?;
        let made = g.cli(&["key", "create", "outpost-key"])?;
        g.key_id = field(&made, "Key ID")?;
        g.secret = field(&made, "Secret key")?;
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "outpost",
            "--key",
            "outpost-key",
        ])?;
        Ok(g)
    }

    /// Starts the server process and waits until its S3 port answers.
    fn run_server(&mut self) -> Result<()> {
        let cfg = self.config.display().to_string();
        let proc = Proc::launch(
            &binary(),
            &["-c", &cfg, "server"],
            self.dir.join("garage.log"),
            &[("RUST_LOG", "garage=warn")],
        )?;
        self.proc = Some(proc);
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                // The RPC layer comes up with the API; the CLI talks to it.
                for _ in 0..100 {
                    if self.cli(&["status"]).is_ok() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::new(format!(
            "garage did not start on {addr}: {}",
            self.log_text()
        )))
    }

    /// Runs `garage -c CONFIG ARGS…`; its stdout, or an error with both
    /// streams.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "garage {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server (SIGKILL): the store is down until [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn resume(&mut self) -> Result<()> {
        self.run_server()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }

    /// The coordinator's `[blobs]` section for this store.
    pub fn blobs_toml(&self, prefix: &str) -> String {
        format!(
            "[blobs]\nurl = \"s3://{}/{prefix}\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.bucket, self.endpoint, self.region, self.key_id, self.secret
        )
    }
}

/// `Name: value` from the CLI's output.
fn field(text: &str, name: &str) -> Result<String> {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
        .ok_or_else(|| Error::new(format!("no {name:?} in garage's output: {text}")))
}
