//! API tokens from the CLI: a project-scoped token made with `token create`
//! reaches that project only, shows in `token list`, and stops working
//! once `token revoke`d.

use std::process::Command;

use crate::support::{coordinator_bin, Coordinator};

fn cli_as(coord: &Coordinator, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(coordinator_bin())
        .args(args)
        .env("OUTPOST_URL", coord.url())
        .env("OUTPOST_TOKEN", token)
        .env("HOME", &coord.dir)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

#[test]
fn scoped_tokens_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("c"), None);
    coord.cli_ok(&["projects", "create", "alpha"]);
    coord.cli_ok(&["projects", "create", "beta"]);
    let created: serde_json::Value = serde_json::from_str(&coord.cli_ok(&[
        "token",
        "create",
        "ci-alpha",
        "--scope",
        "project:alpha",
        "--expires-days",
        "30",
        "--json",
    ]))
    .unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("opt_"), "{created}");
    assert_eq!(
        created["scope"],
        format!("project:{}", created["project_id"].as_str().unwrap())
    );

    let list = coord.cli_ok(&["token", "list"]);
    assert!(
        list.contains("ci-alpha") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&secret), "secrets are never listed");

    let projects = cli_as(&coord, &secret, &["projects", "--json"]);
    assert!(projects.status.success());
    let page: serde_json::Value = serde_json::from_slice(&projects.stdout).unwrap();
    let names: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha"], "a project token sees its project only");
    let other = cli_as(&coord, &secret, &["deployments", "beta"]);
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("not found"),
        "{other:?}"
    );
    let create = cli_as(&coord, &secret, &["projects", "create", "gamma"]);
    assert!(
        !create.status.success(),
        "a project token cannot create projects"
    );

    let bad_scope = coord.cli(&["token", "create", "x", "--scope", "planet:mars"]);
    assert!(!bad_scope.status.success());
    assert!(
        String::from_utf8_lossy(&bad_scope.stderr).contains("scope must be"),
        "{bad_scope:?}"
    );
    let bad_expiry = coord.cli(&["token", "create", "x", "--expires-days", "0"]);
    assert!(
        String::from_utf8_lossy(&bad_expiry.stderr).contains("expires_in_days"),
        "{bad_expiry:?}"
    );

    coord.cli_ok(&["token", "revoke", created["id"].as_str().unwrap()]);
    let after = cli_as(&coord, &secret, &["projects"]);
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(coord.cli_ok(&["token", "list"]).contains("revoked"));
}
