//! Publicly trusted certificates for custom domains (issue 23) against a
//! real ACME CA: Pebble, resolving through a real DNS server
//! (challtestsrv) and validating against the test's real edges. Edges
//! listen on their own loopback addresses (127.0.0.2, 127.0.0.3) at the
//! ports Pebble validates on, as two hosts of a fleet would on 80 and 443.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::acme::{PebbleOptions, TestPebble};
use test_support::bind::TestBind;
use test_support::dns::{free_port, TestDns};

use crate::support::*;

const EDGE_IPS: [&str; 2] = ["127.0.0.2", "127.0.0.3"];

struct Fleet {
    dns: TestDns,
    /// The zone's authoritative server, when DNS-01 goes through RFC 2136.
    bind: Option<TestBind>,
    pebble: TestPebble,
    coord: Coordinator,
    /// Its TOML, for a restart.
    config: String,
    edges: Vec<Edge>,
    /// The root Pebble issues under: what "a browser" trusts here.
    root: String,
}

/// What the tests vary.
struct Setup {
    /// `[acme] challenges`.
    challenges: &'static str,
    /// Whether Pebble's HTTP-01 port is the edges' (else nothing listens).
    http01_reachable: bool,
    validity_secs: Option<u64>,
    va_sleep_secs: Option<u32>,
    edges: usize,
    /// DNS-01: `Rfc2136(zone)` through a real BIND serving `zone` (Pebble
    /// and the coordinator resolve through it), `Exec` through a hook
    /// script that sets challtestsrv's records.
    dns01: Dns01,
    /// The platform's base domain, given a public wildcard too.
    base: Option<&'static str>,
}

impl Setup {
    /// HTTP-01 against the edges, at once, certificates of Pebble's
    /// default lifetime, no DNS provider.
    fn http01(edges: usize) -> Setup {
        Setup {
            challenges: "[\"http-01\"]",
            http01_reachable: true,
            validity_secs: None,
            va_sleep_secs: None,
            edges,
            dns01: Dns01::None,
            base: None,
        }
    }
}

#[derive(PartialEq)]
enum Dns01 {
    None,
    Rfc2136(&'static str),
    Exec,
    /// A hook that fails, saying something only the operator should read.
    FailingExec,
}

fn available() -> bool {
    let ok = test_support::dns::available() && test_support::acme::available();
    if !ok {
        eprintln!(
            "\n\n!!!!! SKIPPING ACME tests: pebble / pebble-challtestsrv are not installed (Debian package pebble) !!!!!\n\n"
        );
    }
    ok
}

/// A loopback port free on every edge address (TCP).
fn port_free_on_edges() -> u16 {
    loop {
        let p = free_port();
        if EDGE_IPS.iter().all(|ip| {
            std::net::TcpListener::bind((ip.parse::<std::net::Ipv4Addr>().unwrap(), p)).is_ok()
        }) {
            return p;
        }
    }
}

/// A temporary directory and the fleet of `s` in it; `None` (said
/// loudly) where Pebble, or BIND for an RFC 2136 setup, is not installed.
async fn start(s: Setup) -> Option<(tempfile::TempDir, Fleet)> {
    if !available() {
        return None;
    }
    if matches!(s.dns01, Dns01::Rfc2136(_)) && !test_support::bind::available() {
        eprintln!(
            "\n\n!!!!! SKIPPING an RFC 2136 test: named (Debian package bind9) is not installed !!!!!\n\n"
        );
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = fleet(tmp.path(), s).await;
    Some((tmp, f))
}

async fn fleet(tmp: &std::path::Path, s: Setup) -> Fleet {
    let dns = TestDns::start(&tmp.join("dns")).unwrap();
    let bind = match s.dns01 {
        Dns01::Rfc2136(zone) => {
            Some(TestBind::start(&tmp.join("bind"), zone, &EDGE_IPS[..1]).unwrap())
        }
        _ => None,
    };
    // Who Pebble and the coordinator's verification ask.
    let resolver = bind.as_ref().map_or(dns.dns, |b| b.addr);
    let dns01 = match (&s.dns01, &bind) {
        (Dns01::Rfc2136(_), Some(b)) => format!(
            "[acme.dns01]\nprovider = \"rfc2136\"\nserver = \"{}\"\ntsig_key_name = \"{}\"\n\
             tsig_secret = \"{}\"\npropagation_timeout = \"20s\"\n",
            b.addr, b.key_name, b.key_secret
        ),
        (Dns01::FailingExec, _) => {
            let hook = tmp.join("dns-hook");
            std::fs::write(
                &hook,
                "#!/bin/sh\necho 'zone key at 10.1.2.3 refused: INTERNAL-DETAIL' >&2\nexit 3\n",
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            format!(
                "[acme.dns01]\nprovider = \"exec\"\ncommand = \"{}\"\n",
                hook.display()
            )
        }
        (Dns01::Exec, _) => {
            let hook = tmp.join("dns-hook");
            let m = dns.management_url();
            std::fs::write(
                &hook,
                format!(
                    "#!/bin/sh\nset -e\ncase \"$1\" in\n\
                     present) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}}\" {m}/set-txt ;;\n\
                     cleanup) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\"}}\" {m}/clear-txt ;;\n\
                     *) echo \"unknown verb $1\" >&2; exit 2 ;;\nesac\n"
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            format!(
                "[acme.dns01]\nprovider = \"exec\"\ncommand = \"{}\"\npropagation_timeout = \"20s\"\n",
                hook.display()
            )
        }
        _ => String::new(),
    };
    let (http_port, https_port) = (port_free_on_edges(), port_free_on_edges());
    let pebble = TestPebble::start(
        &tmp.join("pebble"),
        &PebbleOptions {
            http_port: if s.http01_reachable {
                http_port
            } else {
                port_free_on_edges()
            },
            tls_port: https_port,
            dns: resolver,
            validity_secs: s.validity_secs,
            va_sleep_secs: s.va_sleep_secs,
            blocklist: vec!["blocked.test".into()],
        },
    )
    .unwrap();
    pebble.ready().await.unwrap();
    let base = match s.base {
        Some(b) => format!("base_domain = \"{b}\"\n"),
        None => String::new(),
    };
    let base_acme = if s.base.is_some() {
        "base_domain = true\n"
    } else {
        ""
    };
    let config = format!(
        "{base}[domains]\napex_addresses = [\"{}\", \"{}\"]\nresolver = \"{}\"\nrecheck_every = \"1s\"\n\
         [acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nchallenges = {}\nemail = \"ops@shop.test\"\n{base_acme}{dns01}",
        EDGE_IPS[0],
        EDGE_IPS[1],
        resolver,
        pebble.directory,
        pebble.ca_file.display(),
        s.challenges,
    );
    let coord = Coordinator::start(&tmp.join("coord"), Some(&config));
    let mut edges = Vec::new();
    for (i, ip) in EDGE_IPS.iter().take(s.edges).enumerate() {
        let edge = Edge::launch_join_on(
            &coord,
            "fra",
            &tmp.join(format!("edge{i}")),
            &format!("{ip}:{http_port}"),
            &format!("{ip}:{https_port}"),
            &[],
        )
        .unwrap();
        edges.push(edge);
    }
    let root = pebble.root().await.unwrap();
    Fleet {
        dns,
        bind,
        pebble,
        coord,
        config,
        edges,
        root,
    }
}

/// GET `https://host/` at `addr`, trusting only Pebble's root.
async fn https_get(root: &str, host: &str, addr: SocketAddr) -> Result<(u16, String), String> {
    let client = crate::e2e::https_client(root.as_bytes(), host, addr);
    let r = client
        .get(format!("https://{host}:{}/", addr.port()))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

async fn https_everywhere(f: &Fleet, host: &str, want: &str, secs: u64) {
    for edge in &f.edges {
        let last = std::sync::Mutex::new(String::new());
        let served = poll(secs, || async {
            match https_get(&f.root, host, edge.https).await {
                Ok((200, body)) if body.contains(want) => Some(()),
                other => {
                    *last.lock().unwrap() = format!("{other:?}");
                    None
                }
            }
        })
        .await;
        assert!(
            served.is_some(),
            "https://{host}/ on {} never served {want:?}; last: {}",
            edge.https,
            last.lock().unwrap()
        );
    }
}

/// A site saying `tag` in production on `project`, under `tmp`.
fn deploy(f: &Fleet, tmp: &std::path::Path, project: &str, tag: &str) {
    let site = tmp.join(format!("site-{project}"));
    write_site(&site, tag);
    f.coord.deploy(&site, project, true);
}

/// `domain` pointed at `ips` in the test's DNS (none: BIND's zone has it
/// already) and added to `project`; the answer.
async fn add_domain(f: &Fleet, domain: &str, project: &str, ips: &[&str]) -> Value {
    if !ips.is_empty() {
        f.dns.set_a(domain, ips).await;
    }
    let out = f
        .coord
        .cli_ok(&["domains", "add", domain, "--project", project, "--json"]);
    serde_json::from_str(&out).unwrap()
}

fn inspect(coord: &Coordinator, name: &str) -> Value {
    serde_json::from_str(&coord.cli_ok(&["domains", "inspect", name, "--json"])).unwrap()
}

/// A plain HTTP request to `edge` for `host` (no redirects followed).
async fn http_get(edge: &Edge, host: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", host)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn http01_issues_a_certificate_every_edge_serves_and_removal_takes_it_away() {
    let Some((tmp, f)) = start(Setup::http01(2)).await else {
        return;
    };
    deploy(&f, tmp.path(), "shop", "shop v1");
    f.dns.set_a("shop.test", &EDGE_IPS).await;

    // DNS already in place: add, then nothing else.
    let added = Instant::now();
    let d: Value = serde_json::from_str(&f.coord.cli_ok(&[
        "domains",
        "add",
        "shop.test",
        "--project",
        "shop",
        "--json",
    ]))
    .unwrap();
    assert_eq!(d["state"], "active", "{d}");
    // A wildcard needs DNS-01, and this coordinator has no DNS provider.
    let out = f
        .coord
        .cli(&["domains", "add", "*.shop.test", "--project", "shop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("[acme.dns01]"),
        "{err}"
    );
    https_everywhere(&f, "shop.test", "shop v1", 90).await;
    eprintln!(
        "FIGURE acme: domains add → HTTPS served by all {} edges: {} ms (Pebble, HTTP-01)",
        f.edges.len(),
        added.elapsed().as_millis()
    );
    let d = inspect(&f.coord, "shop.test");
    let c = &d["certificate"];
    assert_eq!(c["state"], "active", "{d}");
    assert_eq!(c["challenge"], "http-01", "{d}");
    assert!(c["not_after"].as_i64().unwrap() > 0, "{d}");
    assert!(c["renew_at"].as_i64().unwrap() > 0, "{d}");

    // The CA refuses a name: its problem document, verbatim, in the
    // status, and a retry scheduled.
    f.dns.set_a("blocked.test", &EDGE_IPS).await;
    f.coord
        .cli_ok(&["domains", "add", "blocked.test", "--project", "shop"]);
    let d = eventually(60, "the CA's refusal in the status", || async {
        let d = inspect(&f.coord, "blocked.test");
        (d["certificate"]["state"] == "failed").then_some(d)
    })
    .await;
    let error = d["certificate"]["error"].as_str().unwrap();
    let problem: Value = serde_json::from_str(error).unwrap();
    assert_eq!(
        problem["type"], "urn:ietf:params:acme:error:rejectedIdentifier",
        "{d}"
    );
    assert!(d["certificate"]["next_retry_at"].as_i64().is_some(), "{d}");
    let shown =
        String::from_utf8_lossy(&f.coord.cli(&["domains", "inspect", "blocked.test"]).stdout)
            .to_string();
    assert!(shown.contains("rejectedIdentifier"), "{shown}");

    // Plain HTTP now redirects (308), except challenges.
    let edge = &f.edges[0];
    let r = http_get(edge, "shop.test", "/a/b?x=1").await;
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(r.headers()["location"], "https://shop.test/a/b?x=1");
    let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    let r = http_get(
        edge,
        "shop.test",
        &format!("/.well-known/acme-challenge/{token}"),
    )
    .await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "a challenge is answered, never redirected"
    );
    let body = r.text().await.unwrap();
    let (t, thumbprint) = body.split_once('.').unwrap();
    assert_eq!(t, token);
    assert_eq!(thumbprint.len(), 43, "{body}");
    // Malformed tokens and hosts the edge does not serve: 404, nothing echoed.
    for (host, path) in [
        (
            "shop.test",
            "/.well-known/acme-challenge/<script>alert(1)</script>xxxxxxxxxxxx",
        ),
        ("shop.test", "/.well-known/acme-challenge/short"),
        (
            "shop.test",
            "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0/x",
        ),
        (
            "elsewhere.test",
            &format!("/.well-known/acme-challenge/{token}"),
        ),
    ] {
        let r = http_get(edge, host, path).await;
        assert_eq!(r.status().as_u16(), 404, "{host}{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("script") && !body.contains(token), "{body}");
    }

    // HSTS on request, over HTTPS only.
    f.coord
        .cli_ok(&["domains", "https", "shop.test", "--hsts-max-age", "300"]);
    eventually(20, "the HSTS header", || async {
        let client = crate::e2e::https_client(f.root.as_bytes(), "shop.test", edge.https);
        let r = client
            .get(format!("https://shop.test:{}/", edge.https.port()))
            .send()
            .await
            .ok()?;
        (r.headers()
            .get("strict-transport-security")?
            .to_str()
            .ok()?
            == "max-age=300")
            .then_some(())
    })
    .await;
    f.coord
        .cli_ok(&["domains", "https", "shop.test", "--redirect", "off"]);
    eventually(20, "plain HTTP served again", || async {
        (http_get(edge, "shop.test", "/").await.status().as_u16() == 200).then_some(())
    })
    .await;

    // Removed: its certificate leaves every edge (the handshake fails).
    f.coord.cli_ok(&["domains", "rm", "shop.test"]);
    for edge in &f.edges {
        eventually(30, "the certificate gone", || async {
            https_get(&f.root, "shop.test", edge.https)
                .await
                .is_err()
                .then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn tls_alpn01_issues_when_http01_is_unreachable() {
    let Some((tmp, f)) = start(Setup {
        challenges: "[\"tls-alpn-01\"]",
        http01_reachable: false,
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "alpn", "alpn v1");
    add_domain(&f, "alpn.test", "alpn", &EDGE_IPS[..1]).await;
    https_everywhere(&f, "alpn.test", "alpn v1", 90).await;
    let d = inspect(&f.coord, "alpn.test");
    assert_eq!(d["certificate"]["state"], "active", "{d}");
    assert_eq!(d["certificate"]["challenge"], "tls-alpn-01", "{d}");
}

#[tokio::test]
async fn renewal_reaches_every_edge_and_a_ca_outage_keeps_the_old_certificate() {
    // 45 s certificates: renewal is due 30 s after issue.
    let Some((tmp, mut f)) = start(Setup {
        validity_secs: Some(45),
        ..Setup::http01(2)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "renew", "renew v1");
    add_domain(&f, "renew.test", "renew", &EDGE_IPS).await;
    https_everywhere(&f, "renew.test", "renew v1", 90).await;
    let first = inspect(&f.coord, "renew.test")["certificate"]["not_after"]
        .as_i64()
        .unwrap();

    // Renewed with no failed request on any edge meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for edge in &f.edges {
            let r = https_get(&f.root, "renew.test", edge.https).await;
            assert!(
                matches!(&r, Ok((200, _))),
                "a request failed during renewal: {r:?}"
            );
        }
        let now = inspect(&f.coord, "renew.test")["certificate"]["not_after"]
            .as_i64()
            .unwrap();
        if now > first {
            break;
        }
        assert!(Instant::now() < deadline, "not renewed in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The CA goes away: the next renewal fails, is retried later, says why,
    // and the certificate held keeps serving meanwhile.
    f.pebble.stop();
    eventually(60, "the failed renewal in the status", || async {
        let d = inspect(&f.coord, "renew.test");
        let c = &d["certificate"];
        (c["state"] == "failed" && c["error"].as_str().is_some_and(|e| !e.is_empty())).then_some(d)
    })
    .await;
    let d = inspect(&f.coord, "renew.test");
    assert!(d["certificate"]["next_retry_at"].as_i64().is_some(), "{d}");
    for edge in &f.edges {
        let r = https_get(&f.root, "renew.test", edge.https).await;
        assert!(matches!(r, Ok((200, _))), "{r:?}");
    }
}

#[tokio::test]
async fn a_coordinator_killed_mid_order_resumes_that_order() {
    // Validation takes up to 8 s, as a real CA's may: time to kill.
    let Some((tmp, mut f)) = start(Setup {
        va_sleep_secs: Some(8),
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "resume", "resume v1");
    add_domain(&f, "resume.test", "resume", &EDGE_IPS[..1]).await;
    eventually(30, "an order in flight", || async {
        let d = inspect(&f.coord, "resume.test");
        (d["certificate"]["state"] == "issuing").then_some(())
    })
    .await;
    f.coord.proc.kill9();
    let quic = f.coord.quic.to_string();
    f.coord = Coordinator::start_with(&tmp.path().join("coord"), Some(&f.config), &quic);
    https_everywhere(&f, "resume.test", "resume v1", 90).await;
    let log = f.coord.proc.log_text();
    assert!(log.contains("resuming the order in flight"), "{log}");
    assert!(
        !log.contains("certificate order placed"),
        "a restart placed a second order: {log}"
    );
    assert_eq!(
        inspect(&f.coord, "resume.test")["certificate"]["state"],
        "active"
    );
}

/// HTTPS for every name under a wildcard domain, on every edge.
async fn wildcard_served(f: &Fleet, base: &str, want: &str) {
    for host in [format!("a.{base}"), format!("deep-name.{base}")] {
        https_everywhere(f, &host, want, 90).await;
    }
}

#[tokio::test]
async fn dns01_over_rfc2136_issues_a_wildcard_against_bind() {
    let Some((tmp, f)) = start(Setup {
        dns01: Dns01::Rfc2136("wild.test"),
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "wild", "wild v1");
    let added = Instant::now();
    let d: Value = serde_json::from_str(&f.coord.cli_ok(&[
        "domains",
        "add",
        "*.wild.test",
        "--project",
        "wild",
        "--json",
    ]))
    .unwrap();
    assert_eq!(d["state"], "active", "{d}");
    wildcard_served(&f, "wild.test", "wild v1").await;
    eprintln!(
        "FIGURE acme: domains add *.wild.test → HTTPS: {} ms (Pebble, DNS-01 through BIND)",
        added.elapsed().as_millis()
    );
    let d = inspect(&f.coord, "*.wild.test");
    assert_eq!(d["certificate"]["state"], "active", "{d}");
    assert_eq!(d["certificate"]["challenge"], "dns-01", "{d}");
    // The challenge record was removed after the order.
    let log = std::fs::read_to_string(tmp.path().join("bind/named.log")).unwrap_or_default();
    assert!(log.contains("adding an RR"), "BIND took no update: {log}");
    assert!(
        log.contains("deleting an RR"),
        "the TXT record was not cleaned up: {log}"
    );
    assert!(f.bind.is_some());
}

#[tokio::test]
async fn dns01_through_an_exec_hook() {
    let Some((tmp, f)) = start(Setup {
        dns01: Dns01::Exec,
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "hook", "hook v1");
    add_domain(&f, "*.hook.test", "hook", &EDGE_IPS[..1]).await;
    wildcard_served(&f, "hook.test", "hook v1").await;
    let d = inspect(&f.coord, "*.hook.test");
    assert_eq!(d["certificate"]["challenge"], "dns-01", "{d}");
}

#[tokio::test]
async fn the_base_domain_gets_a_public_wildcard_through_dns01() {
    let Some((tmp, f)) = start(Setup {
        dns01: Dns01::Rfc2136("sites.test"),
        base: Some("sites.test"),
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    let site = tmp.path().join("site");
    write_site(&site, "preview v1");
    let d = f.coord.deploy(&site, "blog", false);
    let id = d["deployment"].as_str().unwrap();
    // A per-deployment URL and the production URL, trusted through
    // Pebble's root (the cluster CA's wildcard is not).
    https_everywhere(&f, &format!("{id}--blog.sites.test"), "preview v1", 90).await;
    f.coord.deploy(&site, "blog", true);
    https_everywhere(&f, "blog.sites.test", "preview v1", 90).await;
}

#[tokio::test]
async fn a_failing_dns_provider_is_summarised_for_the_tenant() {
    let Some((tmp, f)) = start(Setup {
        dns01: Dns01::FailingExec,
        ..Setup::http01(1)
    })
    .await
    else {
        return;
    };
    deploy(&f, tmp.path(), "fail", "fail v1");
    add_domain(&f, "*.fail.test", "fail", &EDGE_IPS[..1]).await;
    let d = eventually(60, "the failure in the status", || async {
        let d = inspect(&f.coord, "*.fail.test");
        (d["certificate"]["state"] == "failed").then_some(d)
    })
    .await;
    let error = d["certificate"]["error"].as_str().unwrap();
    assert!(error.contains("_acme-challenge.fail.test"), "{error}");
    assert!(
        !error.contains("INTERNAL-DETAIL") && !error.contains("10.1.2.3"),
        "{error}"
    );
    // The operator's log has the hook's words.
    let log = f.coord.proc.log_text();
    assert!(log.contains("INTERNAL-DETAIL"), "{log}");
}
