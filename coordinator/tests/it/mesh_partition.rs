//! A network partition made with a network namespace: one edge node lives
//! in its own namespace, joined to the host by a veth pair that the test
//! cuts and heals. Needs root (CAP_NET_ADMIN) and `ip`; without them the
//! test says so and passes without running.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::support::*;

struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let octet = 100 + (tag % 150);
        let third = (tag / 150) % 250;
        let n = Netns {
            name: format!("opm{tag}"),
            host_if: format!("oph{tag}"),
            host_ip: format!("10.{octet}.{third}.1"),
            ns_ip: format!("10.{octet}.{third}.2"),
        };
        let ns_if = format!("opn{tag}");
        let _ = ip(&["netns", "del", &n.name]);
        ip(&["netns", "add", &n.name])?;
        let setup = || -> Result<(), String> {
            ip(&[
                "link", "add", &n.host_if, "type", "veth", "peer", "name", &ns_if,
            ])?;
            ip(&["link", "set", &ns_if, "netns", &n.name])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/24", n.host_ip),
                "dev",
                &n.host_if,
            ])?;
            ip(&["link", "set", &n.host_if, "up"])?;
            let exec = |args: &[&str]| {
                let mut full = vec!["netns", "exec", &n.name, "ip"];
                full.extend_from_slice(args);
                ip(&full)
            };
            exec(&["addr", "add", &format!("{}/24", n.ns_ip), "dev", &ns_if])?;
            exec(&["link", "set", &ns_if, "up"])?;
            exec(&["link", "set", "lo", "up"])
        };
        setup().inspect_err(|_| {
            let _ = ip(&["link", "del", &n.host_if]);
            let _ = ip(&["netns", "del", &n.name]);
        })?;
        Ok(n)
    }

    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }

    /// GET inside the namespace (the host cannot reach it while cut).
    fn curl(&self, addr: SocketAddr, host: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-s", "-m", "5", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Joins an edge listening on `listen_ip` (HTTP, HTTPS and mesh), inside
/// `ns` when given.
fn join(coord: &Coordinator, dir: &Path, listen_ip: &str, ns: Option<&Netns>) -> Edge {
    let any = format!("{listen_ip}:0");
    let mut argv: Vec<String> = match ns {
        Some(ns) => ["netns", "exec", &ns.name, &edge_bin().display().to_string()]
            .map(String::from)
            .to_vec(),
        None => Vec::new(),
    };
    let token = coord.join_token("fra");
    let (quic, d) = (coord.quic.to_string(), dir.display().to_string());
    argv.extend(
        [
            "join",
            &quic,
            "--token",
            &token,
            "--region",
            "fra",
            "--data-dir",
            &d,
            "--http",
            &any,
            "--https",
            &any,
            "--mesh",
            &any,
        ]
        .map(String::from),
    );
    let bin = match ns {
        Some(_) => Path::new("/usr/sbin/ip").to_path_buf(),
        None => edge_bin(),
    };
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let log = dir.with_extension("join.log");
    Edge::wait_serving(Proc::spawn(&bin, &args, log, &[]), dir)
}

async fn serves(e: &Edge, marker: &str, what: &str) {
    eventually(30, what, || async {
        let (s, body, _) = e.get("blog.localhost", "/").await;
        (s == 200 && body.contains(marker)).then_some(())
    })
    .await;
}

fn status(e: &Edge) -> Option<protocol::status::NodeStatus> {
    crate::support::node_status(&e.dir).ok()
}

fn sees(viewer: &Edge, node: &str, state: &str) -> bool {
    status(viewer).is_some_and(|s| {
        s.members
            .iter()
            .any(|m| m.node_id == node && m.state == state)
    })
}

#[tokio::test]
async fn partitioned_node_keeps_serving_and_converges_after_healing() {
    if !Path::new("/usr/sbin/ip").exists() || Command::new("curl").arg("-V").output().is_err() {
        eprintln!("SKIPPED: partition test needs `ip` (iproute2) and curl");
        return;
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot create a network namespace ({e}); run as root to test partitions"
            );
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with(
        &tmp.path().join("coord"),
        None,
        &format!("{}:0", ns.host_ip),
    );
    let a = join(&coord, &tmp.path().join("a"), &ns.host_ip, None);
    let b = join(&coord, &tmp.path().join("b"), &ns.host_ip, None);
    let c = join(&coord, &tmp.path().join("c"), &ns.ns_ip, Some(&ns));
    let ids: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|e| status(e).unwrap().node_id)
        .collect();
    for (viewer, others) in [(&a, [1, 2]), (&b, [0, 2]), (&c, [0, 1])] {
        for i in others {
            eventually(30, "mesh to form", || async {
                sees(viewer, &ids[i], "alive").then_some(())
            })
            .await;
        }
    }

    let site = tmp.path().join("site");
    write_site(&site, "before-cut");
    coord.deploy(&site, "blog", true);
    for e in [&a, &b, &c] {
        serves(e, "before-cut", "v1 everywhere").await;
    }

    ns.cut();
    write_site(&site, "after-cut");
    coord.deploy(&site, "blog", true);
    for e in [&a, &b] {
        serves(e, "after-cut", "the connected side to converge").await;
        eventually(
            30,
            "the connected side to mark the cut node down",
            || async { sees(e, &ids[2], "down").then_some(()) },
        )
        .await;
    }
    eventually(30, "the cut node to mark its peers down", || async {
        (sees(&c, &ids[0], "down") && sees(&c, &ids[1], "down")).then_some(())
    })
    .await;
    // Cut off from everyone, it still serves its last state.
    let body = ns.curl(c.http, "blog.localhost");
    assert!(body.contains("before-cut"), "{body:?}");

    ns.heal();
    // Over the coordinator link (it reconnects with backoff) or from peers.
    eventually(
        60,
        "the healed node to converge to the newest config",
        || async {
            let (s, body, _) = c.get("blog.localhost", "/").await;
            (s == 200 && body.contains("after-cut")).then_some(())
        },
    )
    .await;
    for e in [&a, &b] {
        eventually(60, "peers to see the healed node alive", || async {
            sees(e, &ids[2], "alive").then_some(())
        })
        .await;
    }
    let newest = status(&a).unwrap().config_version;
    eventually(10, "equal config versions", || async {
        (status(&c)?.config_version == newest).then_some(())
    })
    .await;
}
