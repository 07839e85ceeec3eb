//! A real Prometheus server for tests (Debian's `prometheus`), scraping
//! the targets a test names every second, on a loopback port of its own
//! with its storage in the test's directory; and `promtool check
//! metrics`, the linter of the exposition format.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::dns::free_port;
use crate::process::Proc;
use crate::{Error, Result};

pub const BINARY: &str = "prometheus";
pub const PROMTOOL: &str = "promtool";

/// Whether Prometheus and promtool are installed (`.ci/run` installs them).
pub fn available() -> bool {
    [BINARY, PROMTOOL].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `promtool check metrics` on an exposition; `Err` with what it
/// said when it finds a problem (malformed text, or a lint such as a
/// counter without `_total`).
pub fn check_metrics(exposition: &str) -> Result<()> {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("starting {PROMTOOL}: {e}")))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 0 with nothing to say; lints make it exit 3, parse
    // errors 1.
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "promtool check metrics ({}): {said}",
            out.status
        )))
    }
}

/// One scrape target: a job name and the `host:port` whose `/metrics` it reads.
pub struct Target {
    pub job: String,
    pub addr: SocketAddr,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer_token: Option<String>,
}

pub struct TestPrometheus {
    pub proc: Proc,
    /// Where its HTTP API listens (`http://{addr}/api/v1/…`).
    pub addr: SocketAddr,
    http: reqwest::Client,
}

impl TestPrometheus {
    /// Starts Prometheus in `dir` (created), scraping `targets` every second.
    pub fn start(dir: &Path, targets: &[Target]) -> Result<TestPrometheus> {
        std::fs::create_dir_all(dir)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for t in targets {
            config.push_str(&format!(
                "  - job_name: {:?}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{:?}]\n",
                t.job,
                t.addr.to_string()
            ));
            if let Some(token) = &t.bearer_token {
                let file = dir.join(format!("{}.token", t.job));
                std::fs::write(&file, token)?;
                config.push_str(&format!(
                    "    authorization:\n      type: Bearer\n      credentials_file: {:?}\n",
                    file.display().to_string()
                ));
            }
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let data: PathBuf = dir.join("data");
        let proc = Proc::launch(
            Path::new(BINARY),
            &[
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address={addr}"),
            ],
            dir.join("prometheus.log"),
            &[],
        )?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| Error::new(e.to_string()))?;
        Ok(TestPrometheus { proc, addr, http })
    }

    /// `GET /api/v1/query?query=…`: the result vector (empty while
    /// Prometheus is starting or has nothing yet).
    pub async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>> {
        let r = self
            .http
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| Error::new(format!("prometheus query: {e}")))?;
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| Error::new(format!("prometheus query: {e}")))?;
        if body["status"] != "success" {
            return Err(Error::new(format!("prometheus query {promql:?}: {body}")));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The scrape targets as Prometheus sees them (`/api/v1/targets`):
    /// (job, health, last error) each.
    pub async fn targets(&self) -> Result<Vec<(String, String, String)>> {
        let body: serde_json::Value = self
            .http
            .get(format!("http://{}/api/v1/targets", self.addr))
            .send()
            .await
            .map_err(|e| Error::new(format!("prometheus targets: {e}")))?
            .json()
            .await
            .map_err(|e| Error::new(format!("prometheus targets: {e}")))?;
        Ok(body["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_string(),
                    s("health"),
                    s("lastError"),
                )
            })
            .collect())
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn promtool_finds_what_is_wrong() {
        if !super::available() {
            eprintln!("\n\n!!!!! SKIPPING: promtool is not installed (Debian package prometheus) !!!!!\n\n");
            return;
        }
        super::check_metrics("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n").unwrap();
        for bad in ["# HELP a A.\n# TYPE a counter\na 1\n", "a{ 1\n"] {
            assert!(super::check_metrics(bad).is_err(), "{bad}");
        }
    }
}
