//! Helpers for the builds-from-git tests: real repositories (from
//! `test_support::git`), signed push webhooks, a coordinator that builds from
//! local repositories, and waiting on builds.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

pub use test_support::git::{commit, git, have, init};

use super::{eventually, Api, Coordinator};

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// A GitHub `push` event body for `sha` on `branch`.
pub fn github_push(branch: &str, sha: &str, message: &str) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "deleted": false,
        "head_commit": {"id": sha, "message": message, "author": {"name": "Ada Tester", "email": "ada@example.com"}},
        "commits": [],
    })
    .to_string()
    .into_bytes()
}

/// Sends a correctly signed GitHub push of `sha` to `project`'s webhook;
/// returns the queued build's id.
pub async fn send_github_push(
    coord: &Coordinator,
    project: &str,
    secret: &str,
    branch: &str,
    sha: &str,
    message: &str,
) -> String {
    let body = github_push(branch, sha, message);
    let r = test_support::cluster::http_client()
        .post(format!("{}/api/v1/hooks/git/{project}", coord.url()))
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(secret, &body)),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let queued: Value = r.json().await.unwrap();
    queued["queued"].as_str().unwrap().to_string()
}

/// A coordinator allowed to build from local repositories, with its build
/// workspace where the unprivileged build user can reach it.
pub fn start(tmp: &Path) -> Coordinator {
    start_with_timeout(tmp, "2m")
}

/// [`start`] with another per-build wall clock, e.g. `"10m"`.
pub fn start_with_timeout(tmp: &Path, timeout: &str) -> Coordinator {
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o711)).unwrap();
    let builds = tmp.join("builds");
    Coordinator::start(
        &tmp.join("coord"),
        Some(&format!(
            "[builds]\nallow_local_git = true\ntimeout = \"{timeout}\"\nconcurrency = 2\nwork_dir = \"{}\"\n",
            builds.display()
        )),
    )
}

/// Queues a build of `project`'s branch head through the API; its id.
pub async fn queue_build(api: &Api, project: &str) -> String {
    let b: Value = api
        .req(Method::POST, &format!("/projects/{project}/builds"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["id"].as_str().unwrap().to_string()
}

pub async fn build_status(api: &Api, id: &str) -> Value {
    api.get_json(&format!("/builds/{id}")).await
}

/// Waits up to `secs` for build `id` to reach `want`; fails at once if it
/// ends in another state.
pub async fn wait_status(api: &Api, id: &str, want: &str, secs: u64) -> Value {
    eventually(secs, &format!("build {id} to be {want}"), || async {
        let b = build_status(api, id).await;
        if b["status"] == want {
            return Some(b);
        }
        let s = b["status"].as_str().unwrap_or("");
        assert!(
            s == "queued" || s == "building" || s == want,
            "build {id} is {s}, waiting for {want}: {b}"
        );
        None
    })
    .await
}

/// Reads the SSE stream to its end (the `status` event).
pub async fn sse(api: &Api, id: &str) -> String {
    let mut resp = api
        .req(Method::GET, &format!("/deployments/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: status") && text.ends_with("\n\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("SSE stream ends with a status event");
    text
}
