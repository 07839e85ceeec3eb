//! A real SMTP server for tests: Debian's `python3-aiosmtpd`, started on a
//! loopback port, delivering every message into a Maildir the test reads.
//! `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Proc;

pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    proc: Proc,
}

/// Whether aiosmtpd is installed.
pub fn available() -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Smtp {
    /// Starts aiosmtpd in `dir` and waits until it accepts connections.
    pub fn start(dir: &Path) -> Smtp {
        // aiosmtpd's Mailbox makes the Maildir (new/, cur/, tmp/) only
        // when the directory does not exist yet.
        std::fs::create_dir_all(dir).unwrap();
        let maildir = dir.join("maildir");
        let port = crate::dns::free_port();
        let listen = format!("127.0.0.1:{port}");
        let md = maildir.display().to_string();
        let proc = Proc::launch(
            Path::new("/usr/bin/python3"),
            &[
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &listen,
                "-c",
                "aiosmtpd.handlers.Mailbox",
                &md,
            ],
            dir.join("smtp.log"),
            &[],
        )
        .expect("starting aiosmtpd (apt install python3-aiosmtpd)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&listen).is_ok() {
                return Smtp {
                    port,
                    maildir,
                    proc,
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aiosmtpd did not start on {listen}");
    }

    /// Every message delivered so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in dir.flatten() {
                    if let Ok(s) = std::fs::read_to_string(e.path()) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// Stops the server (a test of "SMTP down").
    pub fn stop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}
