//! A real authoritative DNS server for tests: ISC BIND (`named`, Debian's
//! `bind9`), serving one zone on a loopback port of its own and taking
//! RFC 2136 updates signed with a TSIG key the test gets.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::dns::free_port;
use crate::process::Proc;
use crate::{Error, Result};

/// Where Debian puts it (root's PATH may lack /usr/sbin).
pub fn binary() -> PathBuf {
    for p in ["/usr/sbin/named", "/usr/bin/named"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "named".into()
}

/// Whether BIND is installed (`.ci/run` installs it).
pub fn available() -> bool {
    std::process::Command::new(binary())
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub struct TestBind {
    pub proc: Proc,
    /// Where queries and updates go (UDP and TCP).
    pub addr: SocketAddr,
    pub zone: String,
    /// The TSIG key updates must be signed with (hmac-sha256).
    pub key_name: String,
    /// Base64, as BIND's `key` statement has it.
    pub key_secret: String,
}

impl TestBind {
    /// Starts `named` for `zone`, whose apex and every name under it
    /// (`*`) have A records `addresses`.
    pub fn start(dir: &Path, zone: &str, addresses: &[&str]) -> Result<TestBind> {
        std::fs::create_dir_all(dir)?;
        // named (run as root) may drop to its own user for some files:
        // let anyone read and write here.
        let _ = std::process::Command::new("chmod")
            .args(["0777", &dir.display().to_string()])
            .status();
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let key_name = "outpost-test.".to_string();
        let key_secret = secret();
        let d = dir.display();
        let conf = format!(
            r#"options {{
    directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file none;
    recursion no;
    dnssec-validation no;
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    allow-query {{ any; }};
    notify no;
}};
controls {{ }};
key "{key_name}" {{
    algorithm hmac-sha256;
    secret "{key_secret}";
}};
zone "{zone}" {{
    type primary;
    file "{d}/{zone}.zone";
    allow-update {{ key "{key_name}"; }};
}};
"#
        );
        let mut records = String::new();
        for a in addresses {
            records.push_str(&format!("@ IN A {a}\n* IN A {a}\n"));
        }
        let zone_file = format!(
            "$TTL 5\n@ IN SOA ns.{zone}. admin.{zone}. 1 60 60 600 5\n@ IN NS ns.{zone}.\n\
             ns IN A 127.0.0.1\n{records}"
        );
        std::fs::write(dir.join(format!("{zone}.zone")), zone_file)?;
        let conf_path = dir.join("named.conf");
        std::fs::write(&conf_path, conf)?;
        let proc = Proc::launch(
            &binary(),
            &[
                "-g".to_string(),
                "-n".into(),
                "1".into(),
                "-c".into(),
                conf_path.display().to_string(),
            ],
            dir.join("named.log"),
            &[],
        )?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("named.log")).unwrap_or_default();
                return Err(Error::new(format!("named did not start: {log}")));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(TestBind {
            proc,
            addr,
            zone: zone.to_string(),
            key_name,
            key_secret,
        })
    }
}

/// 32 random bytes, base64.
fn secret() -> String {
    use base64::Engine as _;
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(buf)
}
