//! `coordinator dev`: the all-in-one mode of the README's first command.

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn dev_mode_serves_a_deploy_made_with_saved_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
    let data = tmp.path().join("dev");
    let d = data.display().to_string();
    let home_s = home.display().to_string();
    let args = [
        "dev",
        "--data-dir",
        &d,
        "--api-port",
        &ports[0],
        "--quic-port",
        &ports[1],
        "--http-port",
        &ports[2],
        "--https-port",
        &ports[3],
    ];
    let mut dev = Proc::spawn(
        &coordinator_bin(),
        &args,
        tmp.path().join("dev.log"),
        &[("HOME", &home_s)],
    );
    dev.wait_line("Outpost dev is running");
    let token_line = dev.wait_line("admin token:");
    let ca_line = dev.wait_line("cluster CA:");
    assert!(token_line.contains("opt_"));
    assert!(ca_line.trim_end().ends_with("ca.pem"));

    let site = tmp.path().join("site");
    write_site(&site, "from-dev");
    // No URL or token given: the credentials `dev` saved are used.
    let out = std::process::Command::new(coordinator_bin())
        .args([
            "deploy",
            site.to_str().unwrap(),
            "--project",
            "blog",
            "--prod",
        ])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("OUTPOST_URL")
        .env_remove("OUTPOST_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("http://blog.localhost:{}/", ports[2])),
        "{stdout}"
    );

    let http = http_client();
    eventually(20, "the dev edge to serve the deploy", || async {
        let r = http
            .get(format!("http://127.0.0.1:{}/", ports[2]))
            .header("Host", "blog.localhost")
            .send()
            .await
            .ok()?;
        r.text().await.ok()?.contains("from-dev").then_some(())
    })
    .await;
    assert!(dev.terminate().success(), "{}", dev.log_text());
}

#[test]
fn dev_mode_refuses_a_taken_port_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = std::process::Command::new(coordinator_bin())
        .args([
            "dev",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--api-port",
            &port,
        ])
        .env("HOME", tmp.path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port) && err.contains("--api-port"), "{err}");
}
