//! Builds from git, end to end: a real repository, signed webhooks, the
//! durable queue, a real sandboxed `npm run build`, the live log over SSE,
//! and a real edge node serving production and branch previews.

use std::path::Path;

use crate::support::webhooks::{
    commit, git, github_push, have, hmac_hex, queue_build, sse, start, wait_status,
};
use crate::support::{eventually, Edge};
use reqwest::Method;
use serde_json::{json, Value};

/// An npm project with no registry dependencies: `npm run build` writes
/// `dist/` from `message.txt` and prints a secret variable (which the log
/// must redact).
fn init_repo(repo: &Path, message: &str) -> String {
    crate::support::webhooks::init(repo);
    let build_js = r#"
const fs = require('fs');
fs.mkdirSync('dist', { recursive: true });
const msg = fs.readFileSync('message.txt', 'utf8').trim();
fs.writeFileSync('dist/index.html', `<!doctype html><h1>${msg}</h1>`);
fs.writeFileSync('dist/_redirects', '/old /  301\n');
console.log('token is ' + (process.env.API_TOKEN || 'unset'));
console.log('built ' + msg);
"#;
    commit(
        repo,
        &[
            (
                "package.json",
                r#"{"name":"site","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}}"#,
            ),
            ("build.js", build_js),
            ("message.txt", message),
        ],
        "First page",
    )
}

#[tokio::test]
async fn pushes_build_production_and_branch_previews() {
    if !have("bwrap") || !have("npm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let coord = start(tmp.path());
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let repo = tmp.path().join("repo");
    let first = init_repo(&repo, "hello from main");
    let api = coord.api();

    // Connect through the CLI; the webhook secret is shown there.
    let url = format!("file://{}", repo.display());
    let out: Value = serde_json::from_str(&coord.cli_ok(&[
        "projects", "create", "site", "--git", &url, "--branch", "main", "--json",
    ]))
    .unwrap();
    assert_eq!(out["name"], "site");
    let conn: Value = serde_json::from_str(&coord.cli_ok(&["git", "site", "--json"])).unwrap();
    let secret = conn["webhook_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32, "{conn}");
    assert!(conn["webhook_url"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/hooks/git/site"));
    let r = api
        .req(Method::PUT, "/projects/site/env/API_TOKEN")
        .json(&json!({"value": "tok-very-secret-123", "secret": true, "env": "all"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Bad webhooks queue nothing.
    let body = github_push("main", &first, "First page");
    let hook = format!("{}/api/v1/hooks/git/site", coord.url());
    let http = crate::support::http_client();
    for (sig, want) in [
        (format!("sha256={}", hmac_hex("wrong", &body)), 401),
        ("sha256=nothex".to_string(), 401),
        (String::new(), 401),
    ] {
        let mut req = http
            .post(&hook)
            .header("X-GitHub-Event", "push")
            .body(body.clone());
        if !sig.is_empty() {
            req = req.header("X-Hub-Signature-256", sig);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), want);
    }
    let r = http.post(&hook).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 400, "no provider headers");
    let r = http
        .post(format!("{}/api/v1/hooks/git/nosuch", coord.url()))
        .header("X-GitHub-Event", "push")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list: Value = api.get_json("/projects/site/builds").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // A correctly signed GitHub push builds and promotes production.
    let r = http
        .post(&hook)
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(&secret, &body)),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let queued: Value = r.json().await.unwrap();
    let id = queued["queued"].as_str().unwrap().to_string();
    assert_eq!(queued["target"], "production");

    let log = sse(&api, &id).await;
    assert!(log.contains("event: log"), "{log}");
    assert!(log.contains("Cloning"), "{log}");
    assert!(log.contains("built hello from main"), "{log}");
    assert!(log.contains("token is [redacted]"), "{log}");
    assert!(!log.contains("tok-very-secret-123"), "secret leaked: {log}");
    assert!(log.contains("\"status\":\"ready\""), "{log}");
    let b = wait_status(&api, &id, "ready", 10).await;
    assert_eq!(b["git"]["commit_sha"], first.as_str());
    assert_eq!(b["git"]["commit_message"], "First page");
    assert_eq!(b["git"]["commit_author"], "Ada Tester <ada@example.com>");

    // The deployment has the build's id and the commit it came from.
    let d: Value = api
        .req(Method::GET, &format!("/deployments/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["is_production"], true, "{d}");
    assert_eq!(d["git"]["branch"], "main");
    eventually(30, "production served", || async {
        let (s, body, _) = edge.get("site.localhost", "/").await;
        (s == 200 && body.contains("hello from main")).then_some(())
    })
    .await;
    // `_redirects` from the build output is honoured at the edge.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("http://{}/old", edge.http))
        .header("Host", "site.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/");

    // The whole log stays readable, complete as soon as the build is ready.
    let printed = coord.cli_ok(&["logs", &id]);
    assert!(printed.contains(" Ready: "), "{printed}");
    assert!(printed.contains("built hello from main"), "{printed}");
    assert!(!printed.contains("tok-very-secret-123"));

    // A GitLab push of another branch makes a preview on a stable branch
    // host; production does not move.
    git(&repo, &["checkout", "-q", "-b", "feature/x"]);
    let second = commit(&repo, &[("message.txt", "preview of x")], "Try x");
    let gl = json!({
        "object_kind": "push", "ref": "refs/heads/feature/x", "after": second,
        "checkout_sha": second,
        "commits": [{"id": second, "message": "Try x", "author": {"name": "Bo", "email": "bo@example.com"}}],
    })
    .to_string();
    let r = http
        .post(&hook)
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "not it")
        .body(gl.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&hook)
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", &secret)
        .body(gl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let queued: Value = r.json().await.unwrap();
    assert_eq!(queued["target"], "preview");
    let pid = queued["queued"].as_str().unwrap().to_string();
    let b = wait_status(&api, &pid, "ready", 120).await;
    let branch_url = b["branch_url"].as_str().unwrap();
    let branch_host = branch_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    assert!(
        branch_host.starts_with("git-feature-x-") && branch_host.ends_with("--site.localhost"),
        "{branch_host}"
    );
    eventually(30, "branch preview served", || async {
        let (s, body, _) = edge.get(&branch_host, "/").await;
        (s == 200 && body.contains("preview of x")).then_some(())
    })
    .await;
    let (_, body, _) = edge.get(&format!("{pid}--site.localhost"), "/").await;
    assert!(body.contains("preview of x"));
    let (_, body, _) = edge.get("site.localhost", "/").await;
    assert!(body.contains("hello from main"), "production moved: {body}");

    // "Deploy the latest commit of branch X" through the CLI, following
    // the log until ready.
    let third = commit(&repo, &[("message.txt", "x again")], "Again");
    let out = coord.cli_ok(&["build", "site", "--branch", "feature/x", "--follow"]);
    assert!(out.contains("built x again"), "{out}");
    assert!(out.contains(&third[..12]), "resolved commit in log: {out}");
    eventually(30, "branch alias moved", || async {
        let (_, body, _) = edge.get(&branch_host, "/").await;
        body.contains("x again").then_some(())
    })
    .await;

    // Deleting the branch drops its alias.
    let del = json!({"ref": "refs/heads/feature/x", "after": "0000000000000000000000000000000000000000", "deleted": true}).to_string();
    let r = http
        .post(&hook)
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(&secret, del.as_bytes())),
        )
        .body(del)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(30, "branch alias gone", || async {
        let (s, _, _) = edge.get(&branch_host, "/").await;
        (s == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn failures_cancel_and_restart_are_clean() {
    if !have("bwrap") || !have("npm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = start(tmp.path());
    let repo = tmp.path().join("repo");
    init_repo(&repo, "x");
    let url = format!("file://{}", repo.display());
    let api = coord.api();

    // Bad settings are refused clearly.
    for (body, code) in [
        (
            json!({"name": "a", "git": {"url": "ext::sh -c evil"}}),
            "invalid_git_settings",
        ),
        (
            json!({"name": "a", "git": {"url": url, "branch": "-x"}}),
            "invalid_git_settings",
        ),
        (
            json!({"name": "a", "git": {"url": url, "output_dir": "../up"}}),
            "invalid_git_settings",
        ),
        (
            json!({"name": "a", "git": {"url": url, "build_command": "a\nb"}}),
            "invalid_git_settings",
        ),
        (
            json!({"name": "a", "git": {"url": url, "bogus": 1}}),
            "bad_json",
        ),
    ] {
        let r = api
            .req(Method::POST, "/projects")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
    }

    // A failing build command: error status with the reason, log kept.
    let r = api
        .req(Method::POST, "/projects")
        .json(&json!({"name": "fails", "git": {"url": url, "build_command": "echo about to fail; exit 3"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = queue_build(&api, "fails").await;
    let b = wait_status(&api, &id, "error", 120).await;
    assert!(b["error"].as_str().unwrap().contains("exit"), "{b}");
    let logs: Value = api
        .req(Method::GET, &format!("/deployments/{id}/build-logs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = logs["items"].to_string();
    assert!(text.contains("about to fail"), "{text}");
    let r = api
        .req(Method::POST, &format!("/deployments/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "an ended build cannot be canceled");

    // A build that never ends: cancel stops it.
    api.req(Method::POST, "/projects")
        .json(&json!({"name": "hangs", "git": {"url": url, "build_command": "echo started; sleep 1000"}}))
        .send()
        .await
        .unwrap();
    let hang = queue_build(&api, "hangs").await;
    wait_status(&api, &hang, "building", 60).await;
    let out = coord.cli_ok(&["cancel", &hang]);
    assert!(out.contains(&hang), "{out}");
    let b = wait_status(&api, &hang, "canceled", 30).await;
    assert_eq!(b["status"], "canceled");

    // A coordinator killed mid-build re-queues the build on restart, and
    // the log says so.
    let hang2 = queue_build(&api, "hangs").await;
    eventually(60, "build started", || async {
        let logs: Value = api
            .req(Method::GET, &format!("/deployments/{hang2}/build-logs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logs["items"].to_string().contains("started").then_some(())
    })
    .await;
    coord.proc.kill9();
    let coord2 = start(tmp.path());
    let api2 = coord2.api();
    let logs = eventually(60, "re-queue noted", || async {
        let logs: Value = api2
            .req(Method::GET, &format!("/deployments/{hang2}/build-logs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t = logs["items"].to_string();
        t.contains("re-queued").then_some(t)
    })
    .await;
    assert!(logs.contains("attempt 2 of 2"), "{logs}");
    let b = wait_status(&api2, &hang2, "building", 60).await;
    assert_eq!(b["attempts"], 2);
    api2.req(Method::POST, &format!("/deployments/{hang2}/cancel"))
        .send()
        .await
        .unwrap();
    wait_status(&api2, &hang2, "canceled", 30).await;
    drop(coord);
}

/// A signed push body can be captured and sent again. The same delivery
/// builds once; an old push sent under a new delivery id (the id is not
/// signed) builds, but its older commit is not promoted over production.
#[tokio::test]
async fn a_replayed_push_builds_once_and_never_promotes_an_older_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = start(tmp.path());
    let repo = tmp.path().join("repo");
    crate::support::webhooks::init(&repo);
    let old = commit(&repo, &[("index.html", "<h1>old</h1>")], "Old page");
    // Committer times have a one-second grain.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new = commit(&repo, &[("index.html", "<h1>new</h1>")], "New page");
    let url = format!("file://{}", repo.display());
    coord.cli_ok(&[
        "projects", "create", "replay", "--git", &url, "--branch", "main",
    ]);
    let conn: Value = serde_json::from_str(&coord.cli_ok(&["git", "replay", "--json"])).unwrap();
    let secret = conn["webhook_secret"].as_str().unwrap().to_string();
    let api = coord.api();
    let http = crate::support::http_client();
    let hook = format!("{}/api/v1/hooks/git/replay", coord.url());
    let push = |sha: &str, delivery: &str| {
        let body = github_push("main", sha, "push");
        http.post(&hook)
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header(
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(&secret, &body)),
            )
            .body(body)
            .send()
    };
    let r = push(&new, "delivery-1").await.unwrap();
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let first = first["queued"].as_str().unwrap().to_string();
    wait_status(&api, &first, "ready", 60).await;
    let production = || async {
        api.get_json("/projects/replay").await["production_deployment"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(production().await.as_deref(), Some(first.as_str()));

    // The same delivery again: nothing is built.
    let r = push(&new, "delivery-1").await.unwrap();
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap_or("")
            .contains("received before"),
        "{answer}"
    );
    let builds = api.get_json("/projects/replay/builds").await;
    assert_eq!(builds["items"].as_array().unwrap().len(), 1, "{builds}");

    // An old push under a new id builds, and production stays.
    let r = push(&old, "delivery-2").await.unwrap();
    assert_eq!(r.status(), 202);
    let second: Value = r.json().await.unwrap();
    let second = second["queued"].as_str().unwrap().to_string();
    wait_status(&api, &second, "ready", 60).await;
    assert_eq!(production().await.as_deref(), Some(first.as_str()));
    let log = sse(&api, &second).await;
    assert!(log.contains("Not promoted"), "{log}");
}

/// A build's network is its own: nothing internal answers it, directly or
/// through its proxy — the coordinator's API, Postgres, a cloud metadata
/// address, a private network — and every refusal is in its log. (That
/// the proxy takes builds to public hosts is `builds_vite`'s real
/// `npm install` from the registry.)
#[tokio::test]
async fn builds_reach_nothing_internal() {
    if !have("bwrap") || !have("node") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let coord = start(tmp.path());
    let repo = tmp.path().join("repo");
    crate::support::webhooks::init(&repo);
    let api_port = coord.api.port();
    let probe = format!(
        r#"
const net = require('net');
const http = require('http');
const targets = [['127.0.0.1', {api_port}], ['127.0.0.1', 5432], ['169.254.169.254', 80], ['10.0.0.1', 80], ['localhost', {api_port}]];
const direct = ([host, port]) => new Promise(done => {{
  const s = net.connect({{host, port, timeout: 2000}});
  s.on('connect', () => {{ s.destroy(); done(`direct ${{host}}:${{port}} REACHED`); }});
  s.on('timeout', () => {{ s.destroy(); done(`direct ${{host}}:${{port}} blocked (timeout)`); }});
  s.on('error', e => done(`direct ${{host}}:${{port}} blocked (${{e.code}})`));
}});
const viaProxy = ([host, port]) => new Promise(done => {{
  const r = http.request({{host: '127.0.0.1', port: 3128, method: 'CONNECT', path: `${{host}}:${{port}}`, timeout: 5000}});
  r.on('connect', res => {{ done(`proxy ${{host}}:${{port}} ${{res.statusCode === 200 ? 'REACHED' : 'blocked (' + res.statusCode + ')'}}`); r.destroy(); }});
  r.on('error', e => done(`proxy ${{host}}:${{port}} blocked (${{e.code}})`));
  r.on('timeout', () => {{ r.destroy(); done(`proxy ${{host}}:${{port}} blocked (timeout)`); }});
  r.end();
}});
(async () => {{
  const lines = [];
  for (const t of targets) lines.push(await direct(t));
  for (const t of targets) lines.push(await viaProxy(t));
  console.log(lines.join('\n'));
  require('fs').mkdirSync('dist', {{recursive: true}});
  require('fs').writeFileSync('dist/index.html', lines.join('\n'));
}})();
"#
    );
    commit(
        &repo,
        &[
            (
                "package.json",
                r#"{"name":"probe","version":"1.0.0","private":true,"scripts":{"build":"node probe.js"}}"#,
            ),
            ("probe.js", &probe),
        ],
        "Probe the network",
    );
    let url = format!("file://{}", repo.display());
    coord.cli_ok(&[
        "projects", "create", "probe", "--git", &url, "--branch", "main",
    ]);
    let api = coord.api();
    let r = api
        .req(Method::POST, "/projects/probe/builds")
        .json(&json!({"branch": "main"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let b: Value = r.json().await.unwrap();
    let id = b["id"].as_str().unwrap().to_string();
    let log = sse(&api, &id).await;
    assert!(log.contains("\"status\":\"ready\""), "{log}");
    assert!(
        !log.contains("REACHED"),
        "a build reached an internal address:\n{log}"
    );
    assert_eq!(log.matches("direct ").count(), 5, "{log}");
    assert_eq!(log.matches("blocked (403)").count(), 5, "{log}");
    assert!(
        log.contains("network access to 127.0.0.1:5432 refused"),
        "{log}"
    );
    assert!(
        log.contains("network access to 169.254.169.254:80 refused"),
        "{log}"
    );
}
