//! What the security review asked of the coordinator's HTTP side, each
//! checked on a real coordinator process.

use reqwest::Method;

use crate::support::*;

/// Every answer, API or dashboard, error or not, carries the headers that
/// keep it from being framed, sniffed or leaking its URL; HSTS only when
/// the browser came over TLS.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let http = http_client();
    for path in [
        "/api/v1/health",
        "/api/v1/projects",
        "/login",
        "/no-such-page",
    ] {
        for tls in [false, true] {
            let mut req = http.get(format!("{}{path}", coord.url()));
            if tls {
                req = req.header("x-forwarded-proto", "https");
            }
            let r = req.send().await.unwrap();
            let h = r.headers();
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["referrer-policy"], "same-origin", "{path}");
            assert_eq!(
                h.contains_key("strict-transport-security"),
                tls,
                "{path}: HSTS only over TLS"
            );
        }
    }
    // A signed-in API answer too.
    let r = coord
        .api()
        .req(Method::GET, "/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

/// Sign-up is closed: several people racing with one invitation link get
/// one account between them; the others are told the link is used, and
/// no account of theirs exists.
#[tokio::test]
async fn one_invitation_makes_one_account_however_many_race_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[accounts]\nopen_signup = false\n"),
    );
    let http = http_client();
    let url = |p: &str| format!("{}/api/v1{p}", coord.url());
    let setup = coord.setup_token.clone();
    let signup = |email: String, invite: Option<String>| {
        let http = http.clone();
        let u = url("/auth/signup");
        let setup = setup.clone();
        async move {
            http.post(u)
                .json(&serde_json::json!({
                    "email": email, "name": "Racer", "password": "correct horse battery staple",
                    "invite": invite, "setup_token": setup,
                }))
                .send()
                .await
                .unwrap()
        }
    };
    // The first account owns the instance (and adopts the admin token).
    let r = signup("owner@example.com".into(), None).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let api = coord.api();
    let teams: serde_json::Value = api.get_json("/teams").await;
    let team = teams[0]["id"].as_str().unwrap().to_string();
    let inv: serde_json::Value = api
        .req(Method::POST, &format!("/teams/{team}/invitations"))
        .json(&serde_json::json!({"role": "member"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = inv["token"].as_str().unwrap().to_string();

    let racers = (0..8).map(|i| signup(format!("racer{i}@example.com"), Some(token.clone())));
    let answers = futures::future::join_all(racers).await;
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 410), "{codes:?}");
    let members: serde_json::Value = api.get_json(&format!("/teams/{team}/members")).await;
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");
    // The losers have no account: signing in fails, signing up without
    // the link is refused (sign-up is closed).
    for (i, code) in codes.iter().enumerate() {
        if *code == 201 {
            continue;
        }
        let r = signup(format!("racer{i}@example.com"), None).await;
        assert_eq!(r.status(), 403, "racer{i}");
        let r = http
            .post(url("/auth/login"))
            .json(&serde_json::json!({"email": format!("racer{i}@example.com"), "password": "correct horse battery staple"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "racer{i} has an account");
    }
}

/// What anyone may send without a credential is small: sign-up and
/// sign-in bodies over 16 KiB are refused, and a webhook for a project
/// that does not exist, or without a signature, is answered before its
/// body is read (here: a body that never comes).
#[tokio::test]
async fn unauthenticated_bodies_are_small_and_webhooks_are_checked_before_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let http = http_client();
    let big = "x".repeat(64 * 1024);
    // Refused: a 413, or the connection closed on a body the server will
    // not read (the client may still be sending when the answer comes).
    let refused = |r: Result<reqwest::Response, reqwest::Error>| match r {
        Ok(r) => r.status() == 413,
        Err(e) => e.is_request(),
    };
    for path in ["/api/v1/auth/signup", "/api/v1/auth/login"] {
        let r = http
            .post(format!("{}{path}", coord.url()))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"email":"a@example.com","name":"{big}","password":"x"}}"#
            ))
            .send()
            .await;
        assert!(refused(r), "{path}");
    }
    let r = http
        .post(format!("{}/login", coord.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email=a%40example.com&password={big}"))
        .send()
        .await;
    assert!(refused(r), "the dashboard's sign-in form");
    // A small one is read as usual (a wrong password, not a refusal). A
    // new client: a pooled connection may be the one the server just
    // closed on the refused body.
    let r = http_client()
        .post(format!("{}/api/v1/auth/login", coord.url()))
        .json(&serde_json::json!({"email": "a@example.com", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A project with no git connection, then a made-up one: both answered
    // at once, though the 20 MB body they announce never arrives.
    coord.api().create_project("site").await;
    let addr = coord.url().trim_start_matches("http://").to_string();
    for project in ["site", "nobody"] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/hooks/git/{project} HTTP/1.1\r\nHost: {addr}\r\n\
             X-GitHub-Event: push\r\nContent-Type: application/json\r\n\
             Content-Length: 20000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 404"), "{project}: {answer}");
    }
}

/// A repository URL with a token in it: the token is taken out and sealed;
/// the URL everyone sees (viewers, the audit log, the database column) has
/// none, and a database from before is cleaned at start.
#[tokio::test]
async fn repository_credentials_are_kept_apart_and_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("coord");
    let coord = Coordinator::start(&dir, None);
    let api = coord.api();
    api.create_project("creds").await;
    let secret = "s3cr3t-t0ken";
    let put = |url: String| {
        let api = coord.api();
        async move {
            let r = api
                .req(Method::PUT, "/projects/creds/git")
                .json(&serde_json::json!({ "url": url, "branch": "main" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let v = put(format!(
        "https://deploy:{secret}@git.example.com/org/site.git"
    ))
    .await;
    assert_eq!(v["url"], "https://git.example.com/org/site.git", "{v}");
    assert_eq!(v["has_credentials"], true, "{v}");
    let shown = api.get_json("/projects/creds/git").await;
    assert_eq!(shown["url"], "https://git.example.com/org/site.git");
    let teams = api.get_json("/teams").await;
    let team = teams[0]["id"].as_str().unwrap();
    let audit = api.get_json(&format!("/audit?team={team}")).await;
    assert!(audit.to_string().contains("git.connect"), "{audit}");
    for seen in [v.to_string(), shown.to_string(), audit.to_string()] {
        assert!(!seen.contains(secret), "{seen}");
    }
    let db = dir.join("coordinator.db");
    let read_row = || async {
        let mut c =
            sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
                .await
                .unwrap();
        let r =
            sqlx::query("SELECT git_url, git_credentials_enc FROM projects WHERE name = 'creds'")
                .fetch_one(&mut c)
                .await
                .unwrap();
        use sqlx::Row;
        (
            r.get::<Option<String>, _>("git_url"),
            r.get::<Option<Vec<u8>>, _>("git_credentials_enc"),
        )
    };
    let (url, sealed) = read_row().await;
    assert!(!url.unwrap().contains(secret));
    let sealed = sealed.expect("credentials stored");
    assert!(!String::from_utf8_lossy(&sealed).contains(secret));

    // A new URL without credentials drops the old ones (they are never
    // sent to another host).
    let v = put("https://other.example.com/site.git".into()).await;
    assert_eq!(v["has_credentials"], false, "{v}");
    assert!(read_row().await.1.is_none());

    // A row from before credentials were kept apart is cleaned at start.
    {
        let mut c =
            sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
                .await
                .unwrap();
        sqlx::query("UPDATE projects SET git_url = 'https://u:legacy-pw@h.example/x.git' WHERE name = 'creds'")
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(coord);
    let coord = Coordinator::start(&dir, None);
    let shown = coord.api().get_json("/projects/creds/git").await;
    assert_eq!(shown["url"], "https://h.example/x.git", "{shown}");
    assert_eq!(shown["has_credentials"], true);
    assert!(!read_row().await.0.unwrap().contains("legacy-pw"));
}

/// Over TLS the session cookie is `__Host-` (no sibling host can set or
/// replace it), and a plain session cookie, which one could, is not read.
#[tokio::test]
async fn over_tls_only_the_host_prefixed_session_cookie_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let http = http_client();
    let r = http
        .post(format!("{}/api/v1/auth/signup", coord.url()))
        .header("x-forwarded-proto", "https")
        .json(&serde_json::json!({
            "email": "owner@example.com", "name": "Owner",
            "password": "correct horse battery staple", "setup_token": coord.setup_token,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-outpost_session="), "{set}");
    assert!(
        set.contains("; Secure") && set.contains("Path=/") && !set.contains("Domain"),
        "{set}"
    );
    let value = set["__Host-outpost_session=".len()..]
        .split(';')
        .next()
        .unwrap();
    let me = |cookie: String, tls: bool| {
        let mut req = http
            .get(format!("{}/api/v1/me", coord.url()))
            .header("cookie", cookie);
        if tls {
            req = req.header("x-forwarded-proto", "https");
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        me(format!("__Host-outpost_session={value}"), true).await,
        200
    );
    // A tossed plain cookie (a sibling site can set one) is ignored over TLS.
    assert_eq!(me(format!("outpost_session={value}"), true).await, 401);
    assert_eq!(me(format!("outpost_session={value}"), false).await, 200);
}

/// A client that never finishes its request head is cut off (10 s), so a
/// few slow connections cannot hold the API's sockets for ever; a normal
/// request on another connection is answered meanwhile.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let mut slow = tokio::net::TcpStream::connect(coord.api).await.unwrap();
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let r = http_client()
        .get(format!("{}/api/v1/health", coord.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), slow.read(&mut buf))
        .await
        .expect("the server closes the connection");
    // Closed (0 bytes, or a reset), or answered with a timeout status.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}
