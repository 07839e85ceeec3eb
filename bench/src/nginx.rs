//! The reference server: Debian's nginx with a generated config serving
//! the same files, over HTTP/1.1, and HTTP/1.1 + HTTP/2 over TLS.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Nginx {
    child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
}

impl Drop for Nginx {
    /// SIGTERM is nginx's fast shutdown: the master stops its workers
    /// before it exits. SIGKILL would leave the workers running, holding
    /// the ports and every file descriptor they inherited.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Nginx {
    /// The master process (its workers are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Serves `root` with a certificate for `host` (written to `dir`).
    pub fn start(dir: &Path, root: &Path, cert_pem: &str, key_pem: &str) -> anyhow::Result<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context(
                "nginx is not installed (apt-get install nginx): it is the reference server",
            )?;
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::write(dir.join("cert.pem"), cert_pem)?;
        std::fs::write(dir.join("key.pem"), key_pem)?;
        let (http, https) = (free_port()?, free_port()?);
        let conf = format!(
            r#"worker_processes auto;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    types {{ text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp;
    server {{
        listen {http};
        listen {https} ssl http2;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        ssl_protocols TLSv1.3;
        root {root};
    }}
}}
"#,
            dir = dir.display(),
            root = root.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("logs/stderr.log"))?)
            .spawn()
            .context("starting nginx")?;
        let n = Nginx { child, http, https };
        let started = Instant::now();
        while std::net::TcpStream::connect(http).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "nginx did not start: {}",
                    std::fs::read_to_string(dir.join("logs/stderr.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(n)
    }
}
