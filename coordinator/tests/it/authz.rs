//! The authorisation matrix: two accounts on one real coordinator, and
//! every tenant-scoped route of the API tried by the one against the
//! other's projects, deployments, builds, variables, git connection,
//! tokens and team, with every kind of credential the one holds. Strangers
//! get 404 (403 or 404 on team routes), viewers read but get 403 on
//! writes, and afterwards the owner's data is exactly as it was.
//!
//! ADDING A ROUTE TO `src/api/mod.rs`? `every_route_has_a_matrix_row`
//! reads the route table from that file and fails until the new
//! (method, path) has a row in `stranger_rows` — with the other account's
//! ids filled in and the answer a stranger must get — or an entry in
//! `NOT_TENANT_SCOPED` saying why it needs none. If the route reads or
//! changes project or team data, add a row to `viewer_rows` as well.

use std::collections::BTreeSet;

use crate::support::*;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// B's secret variable: must never come back out of the API.
pub(crate) const SECRET_VALUE: &str = "s3cret-canary-b-7f2c19";
/// B's plain variable: readable by B's team, by nobody else.
pub(crate) const PLAIN_VALUE: &str = "plain-canary-b-41d0";

// ---- HTTP --------------------------------------------------------------------

/// What one request is sent with.
#[derive(Clone, Debug)]
pub(crate) enum Cred {
    Bearer(String),
    /// The dashboard's session cookie, with or without its CSRF token.
    Cookie {
        session: String,
        csrf: Option<String>,
    },
    Anonymous,
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) text: String,
    pub(crate) headers: HeaderMap,
}

pub(crate) struct Http {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    /// Sent with every sign-up (only the first account needs it).
    pub(crate) setup_token: Option<String>,
}

impl Http {
    pub(crate) async fn send(
        &self,
        cred: &Cred,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match cred {
            Cred::Bearer(t) => req = req.bearer_auth(t),
            Cred::Cookie { session, csrf } => {
                req = req.header("cookie", format!("outpost_session={session}"));
                if let Some(c) = csrf {
                    req = req.header("x-csrf-token", c);
                }
            }
            Cred::Anonymous => {}
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // A build's event stream does not end while the build is queued.
        let sse = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = if sse {
            String::new()
        } else {
            resp.text().await.unwrap()
        };
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers,
        }
    }

    pub(crate) async fn call(
        &self,
        cred: &Cred,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        self.send(cred, method, path, body.as_ref(), &[]).await
    }

    /// A request that must succeed; its JSON answer.
    pub(crate) async fn ok(
        &self,
        cred: &Cred,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let r = self.call(cred, method.clone(), path, body).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} as {cred:?}: {} {}",
            r.status,
            r.text
        );
        r.body
    }
}

// ---- accounts ------------------------------------------------------------------

pub(crate) struct Account {
    pub(crate) email: String,
    pub(crate) user_id: String,
    pub(crate) session: String,
    pub(crate) csrf: String,
    /// The team they own (for the first account: the pre-existing one).
    pub(crate) team: String,
    /// An unscoped API token of theirs.
    pub(crate) token: String,
    pub(crate) token_id: String,
}

impl Account {
    pub(crate) fn bearer(&self) -> Cred {
        Cred::Bearer(self.token.clone())
    }

    pub(crate) fn cookie(&self) -> Cred {
        Cred::Cookie {
            session: self.session.clone(),
            csrf: Some(self.csrf.clone()),
        }
    }
}

/// The session cookie's value from a `Set-Cookie` answer.
fn session_cookie(headers: &HeaderMap) -> String {
    let c = headers
        .get("set-cookie")
        .expect("a session answer sets a cookie")
        .to_str()
        .unwrap();
    let v = c
        .strip_prefix("outpost_session=")
        .unwrap_or_else(|| panic!("unexpected cookie {c:?}"));
    let v = v.split(';').next().unwrap().to_string();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    v
}

pub(crate) async fn sign_up(http: &Http, email: &str, name: &str) -> Account {
    let r = http
        .call(
            &Cred::Anonymous,
            Method::POST,
            "/auth/signup",
            Some(json!({"email": email, "name": name, "password": PASSWORD, "setup_token": http.setup_token})),
        )
        .await;
    assert_eq!(r.status, 201, "signup {email}: {}", r.text);
    let session = session_cookie(&r.headers);
    let csrf = r.body["csrf"].as_str().unwrap().to_string();
    let user_id = r.body["user"]["id"].as_str().unwrap().to_string();
    let cookie = Cred::Cookie {
        session: session.clone(),
        csrf: Some(csrf.clone()),
    };
    let me = http.ok(&cookie, Method::GET, "/me", None).await;
    let teams = me["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 1, "a new account is in one team: {me}");
    assert_eq!(teams[0]["role"], "owner", "{me}");
    let team = teams[0]["id"].as_str().unwrap().to_string();
    let (token, token_id) = new_token(http, &cookie, &format!("{name}-cli"), "all").await;
    Account {
        email: email.to_string(),
        user_id,
        session,
        csrf,
        team,
        token,
        token_id,
    }
}

/// A new API token: (secret, id).
pub(crate) async fn new_token(
    http: &Http,
    cred: &Cred,
    name: &str,
    scope: &str,
) -> (String, String) {
    let t = http
        .ok(
            cred,
            Method::POST,
            "/tokens",
            Some(json!({"name": name, "scope": scope})),
        )
        .await;
    let secret = t["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("opt_"), "{t}");
    (secret, t["id"].as_str().unwrap().to_string())
}

// ---- the world: A and B, each with a deployed project -----------------------------

/// B's custom domain.
pub(crate) const B_DOMAIN: &str = "www.b-site.example";

/// B's things, by id: what the matrix aims at.
pub(crate) struct Ids {
    pub(crate) project: String,
    pub(crate) project_id: String,
    /// B's first production deployment (no longer production).
    pub(crate) dep_old: String,
    /// B's production deployment.
    pub(crate) dep_prod: String,
    /// A queued git build of B's project (builds are off, so it stays queued).
    pub(crate) build: String,
    pub(crate) team: String,
    pub(crate) user: String,
    /// The stranger's own user id (for "make me owner" attempts).
    pub(crate) stranger: String,
    pub(crate) token_id: String,
    /// A pending invitation to B's team.
    pub(crate) pending_inv: String,
    /// The token of an invitation B revoked.
    pub(crate) revoked_inv_token: String,
    /// An error issue of B's project (a failed finalize).
    pub(crate) error_issue: String,
    /// A notification channel of B's team, and an alert rule of B's
    /// project that notifies it.
    pub(crate) channel: String,
    pub(crate) rule: String,
    /// A log drain of B's project.
    pub(crate) drain: String,
}

pub(crate) struct World {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) coord: Coordinator,
    pub(crate) http: Http,
    pub(crate) a: Account,
    pub(crate) b: Account,
    pub(crate) ids: Ids,
    pub(crate) webhook_secret: String,
}

fn deploy_as(coord: &Coordinator, token: &str, site: &std::path::Path, project: &str) -> String {
    let site = site.display().to_string();
    let out = coord.cli_ok(&[
        "deploy",
        &site,
        "--project",
        project,
        "--json",
        "--prod",
        "--token",
        token,
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["deployment"].as_str().unwrap().to_string()
}

pub(crate) async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    // Builds off: a queued build stays queued, with an id to aim at.
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        // A resolver nobody answers on: domains stay pending, at once.
        Some("[builds]\nconcurrency = 0\n[domains]\ncname_target = \"edge.example.net\"\nresolver = \"127.0.0.1:1\"\n"),
    );
    let http = Http {
        base: format!("{}/api/v1", coord.url()),
        http: http_client(),
        setup_token: coord.setup_token.clone(),
    };
    let a = sign_up(&http, "ada@example.com", "Ada").await;
    let b = sign_up(&http, "bob@example.com", "Bob").await;
    let me_a = http.ok(&a.bearer(), Method::GET, "/me", None).await;
    assert_eq!(me_a["instance_owner"], true, "{me_a}");
    let me_b = http.ok(&b.bearer(), Method::GET, "/me", None).await;
    assert_eq!(me_b["instance_owner"], false, "{me_b}");
    assert_ne!(a.team, b.team);
    // The first account adopted the bootstrap admin token.
    let admin = http
        .ok(&Cred::Bearer(coord.token.clone()), Method::GET, "/me", None)
        .await;
    assert_eq!(admin["user"]["id"], a.user_id.as_str(), "{admin}");

    http.ok(
        &a.bearer(),
        Method::POST,
        "/projects",
        Some(json!({"name": "a-site", "team": a.team})),
    )
    .await;
    let b_project = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/projects",
            Some(json!({"name": "b-site", "team": b.team})),
        )
        .await;
    assert_eq!(b_project["team_id"], b.team.as_str());

    let site = tmp.path().join("site");
    write_site(&site, "a1");
    deploy_as(&coord, &a.token, &site, "a-site");
    write_site(&site, "b1");
    let dep_old = deploy_as(&coord, &b.token, &site, "b-site");
    write_site(&site, "b2");
    let dep_prod = deploy_as(&coord, &b.token, &site, "b-site");

    http.ok(
        &b.bearer(),
        Method::PUT,
        "/projects/b-site/env/SECRET_KEY",
        Some(json!({"value": SECRET_VALUE, "secret": true})),
    )
    .await;
    http.ok(
        &b.cookie(),
        Method::PUT,
        "/projects/b-site/env/PUBLIC_NAME",
        Some(json!({"value": PLAIN_VALUE})),
    )
    .await;
    http.ok(
        &b.bearer(),
        Method::PUT,
        "/projects/b-site/outbound",
        Some(json!({"hosts": ["api.b.example"]})),
    )
    .await;
    http.ok(
        &b.bearer(),
        Method::POST,
        "/projects/b-site/domains",
        Some(json!({"name": B_DOMAIN})),
    )
    .await;
    let git = http
        .ok(
            &b.bearer(),
            Method::PUT,
            "/projects/b-site/git",
            Some(json!({"url": "https://git.example.com/bob/site.git"})),
        )
        .await;
    let webhook_secret = git["webhook_secret"].as_str().unwrap().to_string();
    assert!(webhook_secret.len() >= 32, "{git}");
    let build = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/projects/b-site/builds",
            Some(json!({})),
        )
        .await;
    assert_eq!(build["status"], "queued", "{build}");

    // An error issue of B's: a deploy whose blob never came fails to
    // finalize, and that failure is filed.
    let h = protocol::BlobHash::of(b"never uploaded").to_hex();
    let staged = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/projects/b-site/deployments",
            Some(json!({"manifest": {"format": 1, "files": {"index.html": {"hash": h, "size": 14, "content_type": "text/html"}}}, "target": "preview"})),
        )
        .await;
    let staged_id = staged["deployment"]["id"]
        .as_str()
        .or_else(|| staged["id"].as_str())
        .unwrap_or_else(|| panic!("{staged}"))
        .to_string();
    let refused = http
        .send(
            &b.bearer(),
            Method::POST,
            &format!("/deployments/{staged_id}/finalize"),
            None,
            &[],
        )
        .await;
    assert!(refused.status >= 400, "{}", refused.text);
    let issues = http
        .ok(&b.bearer(), Method::GET, "/projects/b-site/errors", None)
        .await;
    let error_issue = issues[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{issues}"))
        .to_string();
    // A channel of B's team and a rule of B's project notifying it.
    let channel = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/channels",
            Some(json!({"team": b.team, "kind": "webhook", "target": "https://hooks.b.example/alerts"})),
        )
        .await;
    let channel = channel["id"].as_str().unwrap().to_string();
    let rule = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/projects/b-site/alerts",
            Some(json!({"kind": "function_error", "threshold": 1000, "window": "5m", "channels": [channel]})),
        )
        .await;
    let rule = rule["id"].as_str().unwrap().to_string();
    let drain = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/projects/b-site/drains",
            Some(json!({"url": "https://drains.b.example/in", "sources": ["build"]})),
        )
        .await;
    let drain = drain["id"].as_str().unwrap().to_string();

    let invitations = format!("/teams/{}/invitations", b.team);
    let pending = http
        .ok(
            &b.bearer(),
            Method::POST,
            &invitations,
            Some(json!({"role": "member"})),
        )
        .await;
    let revoked = http
        .ok(
            &b.bearer(),
            Method::POST,
            &invitations,
            Some(json!({"role": "owner"})),
        )
        .await;
    let revoked_id = revoked["id"].as_str().unwrap();
    http.ok(
        &b.bearer(),
        Method::DELETE,
        &format!("{invitations}/{revoked_id}"),
        None,
    )
    .await;

    let ids = Ids {
        project: "b-site".into(),
        project_id: b_project["id"].as_str().unwrap().into(),
        dep_old,
        dep_prod,
        build: build["id"].as_str().unwrap().into(),
        team: b.team.clone(),
        user: b.user_id.clone(),
        stranger: a.user_id.clone(),
        token_id: b.token_id.clone(),
        pending_inv: pending["id"].as_str().unwrap().into(),
        revoked_inv_token: revoked["token"].as_str().unwrap().into(),
        error_issue,
        channel,
        rule,
        drain,
    };
    World {
        _tmp: tmp,
        coord,
        http,
        a,
        b,
        ids,
        webhook_secret,
    }
}

/// B invites A to B's team as a viewer; the invitation (A accepts it).
pub(crate) async fn invite_a_as_viewer(w: &World) -> Value {
    w.http
        .ok(
            &w.b.bearer(),
            Method::POST,
            &format!("/teams/{}/invitations", w.ids.team),
            Some(json!({"role": "viewer"})),
        )
        .await
}

/// Everything B can see of B's things, with B's token (which must still
/// work). Volatile bookkeeping (`last_used_at`) is left out.
pub(crate) async fn snapshot(w: &World) -> Value {
    let t = &w.ids.team;
    let paths = [
        "/me".to_string(),
        "/teams".into(),
        "/projects".into(),
        "/projects/b-site".into(),
        "/projects/b-site/aliases".into(),
        "/projects/b-site/env".into(),
        "/projects/b-site/outbound".into(),
        "/projects/b-site/domains".into(),
        format!("/domains/{B_DOMAIN}"),
        "/projects/b-site/logs".into(),
        "/projects/b-site/deployments".into(),
        "/projects/b-site/git".into(),
        "/projects/b-site/builds".into(),
        format!("/builds/{}", w.ids.build),
        format!("/deployments/{}", w.ids.dep_prod),
        format!("/deployments/{}", w.ids.dep_old),
        format!("/deployments/{}/build-logs", w.ids.build),
        format!("/teams/{t}/members"),
        format!("/teams/{t}/invitations"),
        "/projects/b-site/errors?state=all".into(),
        format!("/errors/{}", w.ids.error_issue),
        format!("/channels?team={t}"),
        format!("/channels/{}/deliveries", w.ids.channel),
        "/projects/b-site/alerts".into(),
        format!("/alerts/{}", w.ids.rule),
        "/projects/b-site/drains".into(),
        format!("/drains/{}", w.ids.drain),
        "/tokens".into(),
        format!("/audit?team={t}"),
    ];
    let mut out = serde_json::Map::new();
    for p in paths {
        let mut v = w.http.ok(&w.b.bearer(), Method::GET, &p, None).await;
        strip(&mut v, "last_used_at");
        // Moves with the clock (hourly buckets of the last 24 hours).
        strip(&mut v, "trend");
        out.insert(p, v);
    }
    Value::Object(out)
}

fn strip(v: &mut Value, key: &str) {
    match v {
        Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| strip(x, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, key)),
        _ => {}
    }
}

/// B's things are all there, as B set them up.
pub(crate) fn check_b_intact(s: &Value, w: &World) {
    let domains = s["/projects/b-site/domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1, "{domains:?}");
    assert_eq!(domains[0]["name"], B_DOMAIN);
    let env = s["/projects/b-site/env"].as_array().unwrap();
    let secret = env
        .iter()
        .find(|v| v["name"] == "SECRET_KEY")
        .expect("SECRET_KEY");
    assert_eq!(secret["secret"], true);
    assert!(
        secret["value"].is_null(),
        "a secret is never shown: {secret}"
    );
    let plain = env.iter().find(|v| v["name"] == "PUBLIC_NAME").unwrap();
    assert_eq!(plain["value"], PLAIN_VALUE);
    assert_eq!(env.len(), 4, "two variables in two envs: {env:?}");
    assert_eq!(
        s["/projects/b-site"]["production_deployment"],
        w.ids.dep_prod.as_str()
    );
    assert_eq!(
        s["/projects/b-site/outbound"]["hosts"],
        json!(["api.b.example"])
    );
    assert_eq!(
        s["/projects/b-site/git"]["webhook_secret"],
        w.webhook_secret.as_str()
    );
    assert_eq!(
        s[format!("/builds/{}", w.ids.build).as_str()]["status"],
        "queued"
    );
    let tokens = s["/tokens"].as_array().unwrap();
    let tok = tokens.iter().find(|t| t["id"] == w.b.token_id.as_str());
    assert!(tok.unwrap()["revoked_at"].is_null(), "{tokens:?}");
    let pending = s[format!("/teams/{}/invitations", w.ids.team).as_str()]
        .as_array()
        .unwrap();
    assert!(pending
        .iter()
        .any(|i| i["id"] == w.ids.pending_inv.as_str()));
}

// ---- the matrix --------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// 404: the thing must look like it does not exist.
    NotFound,
    /// 403 or 404: a team route (403 for "you are in it with too small a role").
    Hidden,
    /// 403: the caller may see it but not do this.
    Forbidden,
    /// 410: an invitation that can no longer be used.
    Gone,
    /// 401 or 404: the push webhook authenticates by signature, not credential.
    BadWebhook,
    /// 2xx.
    Ok,
}

impl Expect {
    fn allows(self, status: u16) -> bool {
        match self {
            Expect::NotFound => status == 404,
            Expect::Hidden => status == 403 || status == 404,
            Expect::Forbidden => status == 403,
            Expect::Gone => status == 410,
            Expect::BadWebhook => status == 401 || status == 404,
            Expect::Ok => (200..300).contains(&status),
        }
    }
}

struct Row {
    method: Method,
    /// The route exactly as `src/api/mod.rs` declares it.
    route: &'static str,
    path: String,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
}

/// `route` with its `{placeholders}` replaced by `args`, in order.
pub(crate) fn fill(route: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = route;
    let mut args = args.iter();
    while let Some(i) = rest.find('{') {
        let j = i + rest[i..].find('}').unwrap();
        out.push_str(&rest[..i]);
        out.push_str(
            args.next()
                .unwrap_or_else(|| panic!("too few args for {route}")),
        );
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    assert!(args.next().is_none(), "too many args for {route}");
    out
}

fn row(method: Method, route: &'static str, args: &[&str], expect: Expect) -> Row {
    Row {
        path: fill(route, args),
        method,
        route,
        body: None,
        headers: Vec::new(),
        expect,
    }
}

impl Row {
    fn body(mut self, v: Value) -> Row {
        self.body = Some(v);
        self
    }

    fn query(mut self, q: &str) -> Row {
        self.path = format!("{}?{q}", self.path);
        self
    }

    fn header(mut self, k: &'static str, v: &str) -> Row {
        self.headers.push((k, v.to_string()));
        self
    }
}

/// A valid one-file manifest, so a refusal is about who asks, not what.
fn manifest_body() -> Value {
    let h = protocol::BlobHash::of(b"pwned").to_hex();
    json!({"manifest": {"format": 1, "files": {"index.html": {"hash": h, "size": 5, "content_type": "text/html"}}}, "target": "production"})
}

/// What someone with no role in B's team tries on B's things. Bodies are
/// valid, so only authorisation can refuse them.
fn stranger_rows(ids: &Ids) -> Vec<Row> {
    use Expect::*;
    use Method as M;
    let p = ids.project.as_str();
    let pid = ids.project_id.as_str();
    let (dep, old, build) = (
        ids.dep_prod.as_str(),
        ids.dep_old.as_str(),
        ids.build.as_str(),
    );
    let (team, user) = (ids.team.as_str(), ids.user.as_str());
    vec![
        // Projects, by name and by id.
        row(M::GET, "/projects/{project}", &[p], NotFound),
        row(M::GET, "/projects/{project}", &[pid], NotFound),
        row(M::GET, "/projects/{project}/aliases", &[p], NotFound),
        row(M::DELETE, "/projects/{project}", &[p], NotFound),
        row(M::DELETE, "/projects/{project}", &[pid], NotFound),
        row(M::GET, "/projects/{project}/retention", &[p], NotFound),
        row(M::PUT, "/projects/{project}/retention", &[p], NotFound)
            .body(json!({"preview_days": 0, "production_keep": 0})),
        row(M::POST, "/projects/{project}/rollback", &[p], NotFound),
        row(M::POST, "/projects/{project}/rollback", &[pid], NotFound),
        row(
            M::POST,
            "/projects",
            &[],
            // 403 for a project-scoped token, which may create nothing.
            Hidden,
        )
        .body(json!({"name": "sneaky", "team": team})),
        // Variables and the outbound allow-list.
        row(M::GET, "/projects/{project}/env", &[p], NotFound),
        row(M::GET, "/projects/{project}/env", &[pid], NotFound),
        row(
            M::PUT,
            "/projects/{project}/env/{name}",
            &[p, "SECRET_KEY"],
            NotFound,
        )
        .body(json!({"value": "pwned", "secret": false})),
        row(
            M::PUT,
            "/projects/{project}/env/{name}",
            &[p, "NEW_VAR"],
            NotFound,
        )
        .body(json!({"value": "pwned"})),
        row(
            M::DELETE,
            "/projects/{project}/env/{name}",
            &[p, "SECRET_KEY"],
            NotFound,
        ),
        row(
            M::DELETE,
            "/projects/{project}/env/{name}",
            &[pid, "PUBLIC_NAME"],
            NotFound,
        ),
        row(M::GET, "/projects/{project}/outbound", &[p], NotFound),
        row(M::PUT, "/projects/{project}/outbound", &[p], NotFound)
            .body(json!({"hosts": ["evil.example"]})),
        // Custom domains: B's, and adding one to B's project.
        row(M::GET, "/projects/{project}/domains", &[p], NotFound),
        row(M::POST, "/projects/{project}/domains", &[p], NotFound)
            .body(json!({"name": "www.stolen.example"})),
        row(M::GET, "/domains/{domain}", &[B_DOMAIN], NotFound),
        row(M::POST, "/domains/{domain}/verify", &[B_DOMAIN], NotFound),
        row(M::DELETE, "/domains/{domain}", &[B_DOMAIN], NotFound),
        row(M::PATCH, "/domains/{domain}", &[B_DOMAIN], NotFound)
            .body(json!({"https_redirect": false})),
        // Error issues, alert rules and channels.
        row(M::GET, "/projects/{project}/errors", &[p], NotFound),
        row(M::GET, "/projects/{project}/errors", &[pid], NotFound).query("state=all"),
        row(M::GET, "/errors/{id}", &[&ids.error_issue], NotFound),
        row(M::PATCH, "/errors/{id}", &[&ids.error_issue], NotFound)
            .body(json!({"state": "resolved"})),
        row(M::GET, "/projects/{project}/alerts", &[p], NotFound),
        row(M::POST, "/projects/{project}/alerts", &[p], NotFound)
            .body(json!({"kind": "error_rate", "channels": [ids.channel]})),
        row(M::GET, "/alerts/{id}", &[&ids.rule], NotFound),
        row(M::DELETE, "/alerts/{id}", &[&ids.rule], NotFound),
        row(M::GET, "/channels", &[], Hidden).query(&format!("team={team}")),
        row(M::POST, "/channels", &[], Hidden)
            .body(json!({"team": team, "kind": "webhook", "target": "https://evil.example/x"})),
        row(M::DELETE, "/channels/{id}", &[&ids.channel], NotFound),
        row(M::POST, "/channels/{id}/test", &[&ids.channel], NotFound),
        row(
            M::GET,
            "/channels/{id}/deliveries",
            &[&ids.channel],
            NotFound,
        ),
        row(M::GET, "/projects/{project}/drains", &[p], NotFound),
        row(M::POST, "/projects/{project}/drains", &[p], NotFound)
            .body(json!({"url": "https://evil.example/steal"})),
        row(M::GET, "/drains/{id}", &[&ids.drain], NotFound),
        row(M::DELETE, "/drains/{id}", &[&ids.drain], NotFound),
        // Logs, deployments, git, builds.
        row(M::GET, "/projects/{project}/logs", &[p], NotFound),
        row(M::GET, "/projects/{project}/analytics", &[p], NotFound),
        row(M::GET, "/projects/{project}/analytics", &[p], NotFound)
            .query("since=7d&group_by=node&metric=visitors"),
        row(M::GET, "/projects/{project}/logs", &[p], NotFound).query(&format!("deployment={dep}")),
        row(M::GET, "/projects/{project}/deployments", &[p], NotFound),
        row(M::POST, "/projects/{project}/deployments", &[p], NotFound).body(manifest_body()),
        row(M::GET, "/projects/{project}/git", &[p], NotFound),
        row(M::PUT, "/projects/{project}/git", &[p], NotFound)
            .body(json!({"url": "https://evil.example/x.git"})),
        row(M::DELETE, "/projects/{project}/git", &[p], NotFound),
        row(M::GET, "/projects/{project}/builds", &[p], NotFound),
        row(M::POST, "/projects/{project}/builds", &[p], NotFound).body(json!({})),
        row(M::GET, "/builds/{id}", &[build], NotFound),
        row(M::GET, "/deployments/{id}", &[dep], NotFound),
        row(M::GET, "/deployments/{id}", &[build], NotFound),
        row(M::POST, "/deployments/{id}/cancel", &[build], NotFound),
        row(M::POST, "/deployments/{id}/redeploy", &[build], NotFound),
        row(M::POST, "/deployments/{id}/redeploy", &[dep], NotFound),
        row(M::GET, "/deployments/{id}/events", &[build], NotFound),
        row(M::GET, "/deployments/{id}/build-logs", &[build], NotFound),
        row(M::POST, "/deployments/{id}/finalize", &[dep], NotFound),
        row(M::POST, "/deployments/{id}/promote", &[old], NotFound),
        row(M::DELETE, "/deployments/{id}", &[old], NotFound),
        row(M::DELETE, "/deployments/{id}", &[build], NotFound),
        // The push webhook: a wrong signature queues nothing.
        row(M::POST, "/hooks/git/{project}", &[p], BadWebhook)
            .header("x-github-event", "push")
            .header("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)))
            .body(json!({"ref": "refs/heads/main", "after": "a".repeat(40)})),
        // The team, its members and invitations.
        row(M::GET, "/teams/{team}/members", &[team], Hidden),
        row(M::GET, "/teams/{team}/quotas", &[team], Hidden),
        row(
            M::PUT,
            "/teams/{team}/members/{user}",
            &[team, user],
            Hidden,
        )
        .body(json!({"role": "viewer"})),
        row(
            M::PUT,
            "/teams/{team}/members/{user}",
            &[team, &ids.stranger],
            Hidden,
        )
        .body(json!({"role": "owner"})),
        row(
            M::DELETE,
            "/teams/{team}/members/{user}",
            &[team, user],
            Hidden,
        ),
        row(M::GET, "/teams/{team}/invitations", &[team], Hidden),
        row(M::POST, "/teams/{team}/invitations", &[team], Hidden).body(json!({"role": "owner"})),
        row(
            M::DELETE,
            "/teams/{team}/invitations/{id}",
            &[team, &ids.pending_inv],
            Hidden,
        ),
        row(
            M::POST,
            "/invitations/{token}/accept",
            &[&ids.revoked_inv_token],
            Gone,
        ),
        row(
            M::POST,
            "/invitations/{token}/accept",
            &["inv_0000000000000000000000000000000000000000000000000000000000000000"],
            Gone,
        ),
        // Tokens and the audit log.
        row(M::POST, "/tokens", &[], NotFound)
            .body(json!({"name": "x", "scope": format!("project:{p}")})),
        row(M::POST, "/tokens", &[], NotFound)
            .body(json!({"name": "x", "scope": format!("project:{pid}")})),
        row(M::POST, "/tokens", &[], NotFound)
            .body(json!({"name": "x", "scope": format!("team:{team}")})),
        row(M::DELETE, "/tokens/{id}", &[&ids.token_id], NotFound),
        row(M::GET, "/audit", &[], Hidden).query(&format!("team={team}")),
        // The caller's own views: answered, and without B in them.
        row(M::GET, "/projects", &[], Ok),
        row(M::GET, "/me", &[], Ok),
        row(M::GET, "/teams", &[], Ok),
        row(M::GET, "/tokens", &[], Ok),
    ]
}

/// What a viewer of B's team may and may not do there.
fn viewer_rows(ids: &Ids) -> Vec<Row> {
    use Expect::*;
    use Method as M;
    let p = ids.project.as_str();
    let (dep, old, build) = (
        ids.dep_prod.as_str(),
        ids.dep_old.as_str(),
        ids.build.as_str(),
    );
    let (team, user) = (ids.team.as_str(), ids.user.as_str());
    vec![
        row(M::GET, "/projects/{project}", &[p], Ok),
        row(M::GET, "/projects/{project}/aliases", &[p], Ok),
        row(M::GET, "/projects/{project}/env", &[p], Ok),
        row(M::GET, "/projects/{project}/outbound", &[p], Ok),
        row(M::GET, "/projects/{project}/domains", &[p], Ok),
        row(M::GET, "/domains/{domain}", &[B_DOMAIN], Ok),
        row(M::POST, "/projects/{project}/domains", &[p], Forbidden)
            .body(json!({"name": "www.viewer.example"})),
        row(M::POST, "/domains/{domain}/verify", &[B_DOMAIN], Forbidden),
        row(M::DELETE, "/domains/{domain}", &[B_DOMAIN], Forbidden),
        row(M::GET, "/projects/{project}/logs", &[p], Ok),
        row(M::GET, "/projects/{project}/errors", &[p], Ok),
        row(M::GET, "/errors/{id}", &[&ids.error_issue], Ok),
        row(M::PATCH, "/errors/{id}", &[&ids.error_issue], Forbidden)
            .body(json!({"state": "ignored"})),
        row(M::GET, "/projects/{project}/alerts", &[p], Ok),
        row(M::POST, "/projects/{project}/alerts", &[p], Forbidden)
            .body(json!({"kind": "error_rate", "channels": [ids.channel]})),
        row(M::GET, "/alerts/{id}", &[&ids.rule], Ok),
        row(M::DELETE, "/alerts/{id}", &[&ids.rule], Forbidden),
        row(M::GET, "/channels", &[], Ok).query(&format!("team={team}")),
        row(M::POST, "/channels", &[], Forbidden)
            .body(json!({"team": team, "kind": "webhook", "target": "https://evil.example/x"})),
        row(M::DELETE, "/channels/{id}", &[&ids.channel], Forbidden),
        row(M::POST, "/channels/{id}/test", &[&ids.channel], Forbidden),
        row(M::GET, "/channels/{id}/deliveries", &[&ids.channel], Ok),
        row(M::GET, "/projects/{project}/drains", &[p], Ok),
        row(M::POST, "/projects/{project}/drains", &[p], Forbidden)
            .body(json!({"url": "https://evil.example/steal"})),
        row(M::GET, "/drains/{id}", &[&ids.drain], Ok),
        row(M::DELETE, "/drains/{id}", &[&ids.drain], Forbidden),
        row(M::GET, "/projects/{project}/deployments", &[p], Ok),
        row(M::GET, "/projects/{project}/git", &[p], Ok),
        row(M::GET, "/projects/{project}/builds", &[p], Ok),
        row(M::GET, "/builds/{id}", &[build], Ok),
        row(M::GET, "/deployments/{id}", &[dep], Ok),
        row(M::GET, "/deployments/{id}/build-logs", &[build], Ok),
        row(M::GET, "/deployments/{id}/events", &[build], Ok),
        row(M::GET, "/teams/{team}/members", &[team], Ok),
        row(M::GET, "/teams/{team}/quotas", &[team], Ok),
        row(M::GET, "/projects/{project}/retention", &[p], Ok),
        row(M::PUT, "/projects/{project}/retention", &[p], Forbidden)
            .body(json!({"preview_days": 0, "production_keep": 0})),
        row(M::DELETE, "/projects/{project}", &[p], Forbidden),
        row(M::DELETE, "/deployments/{id}", &[old], Forbidden),
        row(
            M::PUT,
            "/projects/{project}/env/{name}",
            &[p, "SECRET_KEY"],
            Forbidden,
        )
        .body(json!({"value": "pwned", "secret": false})),
        row(
            M::DELETE,
            "/projects/{project}/env/{name}",
            &[p, "SECRET_KEY"],
            Forbidden,
        ),
        row(M::PUT, "/projects/{project}/outbound", &[p], Forbidden)
            .body(json!({"hosts": ["evil.example"]})),
        row(M::POST, "/projects/{project}/rollback", &[p], Forbidden),
        row(M::POST, "/projects/{project}/deployments", &[p], Forbidden).body(manifest_body()),
        row(M::PUT, "/projects/{project}/git", &[p], Forbidden)
            .body(json!({"url": "https://evil.example/x.git"})),
        row(M::DELETE, "/projects/{project}/git", &[p], Forbidden),
        row(M::POST, "/projects/{project}/builds", &[p], Forbidden).body(json!({})),
        row(M::POST, "/deployments/{id}/promote", &[old], Forbidden),
        row(M::POST, "/deployments/{id}/finalize", &[dep], Forbidden),
        row(M::POST, "/deployments/{id}/cancel", &[build], Forbidden),
        row(M::POST, "/deployments/{id}/redeploy", &[build], Forbidden),
        row(M::POST, "/projects", &[], Forbidden).body(json!({"name": "sneaky", "team": team})),
        row(
            M::PUT,
            "/teams/{team}/members/{user}",
            &[team, user],
            Forbidden,
        )
        .body(json!({"role": "viewer"})),
        row(
            M::PUT,
            "/teams/{team}/members/{user}",
            &[team, &ids.stranger],
            Forbidden,
        )
        .body(json!({"role": "owner"})),
        row(
            M::DELETE,
            "/teams/{team}/members/{user}",
            &[team, user],
            Forbidden,
        ),
        row(M::GET, "/teams/{team}/invitations", &[team], Forbidden),
        row(M::POST, "/teams/{team}/invitations", &[team], Forbidden)
            .body(json!({"role": "owner"})),
        row(
            M::DELETE,
            "/teams/{team}/invitations/{id}",
            &[team, &ids.pending_inv],
            Forbidden,
        ),
        row(M::GET, "/audit", &[], Forbidden).query(&format!("team={team}")),
    ]
}

/// Routes without a stranger row, and why none is needed. Each is
/// covered elsewhere in this file or carries no tenant data.
pub(crate) const NOT_TENANT_SCOPED: &[(&str, &str, &str)] = &[
    ("GET", "/health", "public; no tenant data"),
    ("GET", "/openapi.json", "public description of the API"),
    (
        "GET",
        "/metrics",
        "operator's scrape, no tenant data: [metrics] token or loopback only; metrics::access and it::metrics check",
    ),
    ("POST", "/auth/signup", "no credential; sign_up_rules"),
    ("POST", "/auth/login", "no credential; sign_in_rate_limit"),
    ("POST", "/auth/logout", "ends the caller's own session"),
    ("POST", "/teams", "creates a team of the caller's own"),
    (
        "GET",
        "/alerts",
        "instance owner only (instance-wide rules); it::alerts checks others get 403",
    ),
    (
        "POST",
        "/alerts",
        "instance owner only (instance-wide rules); it::alerts checks others get 403",
    ),
    (
        "GET",
        "/nodes",
        "instance owner only; tokens_sessions_csrf_and_audit checks others get 403",
    ),
    (
        "DELETE",
        "/nodes/{id}",
        "instance owner only; tokens_sessions_csrf_and_audit checks others get 403",
    ),
    (
        "POST",
        "/join-tokens",
        "instance owner only; tokens_sessions_csrf_and_audit checks others get 403",
    ),
    (
        "POST",
        "/admin/gc",
        "instance owner only, instance-wide; lifecycle tests check others get 403",
    ),
    (
        "PUT",
        "/teams/{team}/quotas",
        "instance owner only; lifecycle tests check a team owner gets 403",
    ),
    (
        "POST",
        "/blobs/missing",
        "shared content-addressed store; needs the member role somewhere",
    ),
    (
        "PUT",
        "/blobs/{hash}",
        "shared content-addressed store; needs the member role somewhere",
    ),
];

/// Every (METHOD, path) the API serves, read from the handlers' source so
/// a new route cannot slip past this file: the `#[utoipa::path(…)]`
/// attributes the router is built from, and any plain `.route("…", …)`.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "rs"));
    routes_in(files)
}

/// The (METHOD, path) pairs that `files` declare, with `#[utoipa::path]`
/// attributes or `.route("…", get(…).post(…))` calls.
pub(crate) fn routes_in(
    files: impl IntoIterator<Item = std::path::PathBuf>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        for attr in src.split("#[utoipa::path(").skip(1) {
            let method: String = attr
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let start = attr.find("path = \"").expect("utoipa::path without path") + 8;
            let end = start + attr[start..].find('"').unwrap();
            out.insert((method.to_ascii_uppercase(), attr[start..end].to_string()));
        }
        for chunk in src.split(".route(").skip(1) {
            // The call's arguments: up to the parenthesis that closes it.
            let mut depth = 1;
            let end = chunk
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(chunk.len(), |(i, _)| i);
            let args = &chunk[..end];
            let Some(open) = args.find('"') else { continue };
            let close = open + 1 + args[open + 1..].find('"').unwrap();
            let path = &args[open + 1..close];
            let path = path.strip_prefix("/api/v1").unwrap_or(path);
            let rest = &args[close + 1..];
            let mut found = false;
            for m in [
                "get", "post", "put", "delete", "patch", "head", "options", "trace", "any",
            ] {
                for (i, _) in rest.match_indices(&format!("{m}(")) {
                    // `get(handler)` or `.post(handler)`, not `module::get(`.
                    let prev = rest[..i].chars().last();
                    if prev.is_some_and(|c| c == '.' || c == ',' || c == '(' || c.is_whitespace()) {
                        out.insert((m.to_ascii_uppercase(), path.to_string()));
                        found = true;
                    }
                }
            }
            assert!(found, "no method found for route {path:?} in {file:?}");
        }
    }
    out
}

/// The routes the matrix answers for: a stranger row or an exemption.
fn covered_routes() -> BTreeSet<(String, String)> {
    let mut covered: BTreeSet<(String, String)> = stranger_rows(&dummy_ids())
        .iter()
        .map(|r| (r.method.to_string(), r.route.to_string()))
        .collect();
    for (m, p, _) in NOT_TENANT_SCOPED {
        assert!(
            covered.insert((m.to_string(), p.to_string())),
            "{m} {p} has a row and an exemption"
        );
    }
    covered
}

fn dummy_ids() -> Ids {
    Ids {
        project: "p".into(),
        project_id: "pid".into(),
        dep_old: "d1".into(),
        dep_prod: "d2".into(),
        build: "b".into(),
        team: "t".into(),
        user: "u".into(),
        stranger: "s".into(),
        token_id: "k".into(),
        pending_inv: "i".into(),
        revoked_inv_token: "inv_x".into(),
        error_issue: "e".into(),
        channel: "c".into(),
        rule: "r".into(),
        drain: "dr".into(),
    }
}

#[test]
fn every_route_has_a_matrix_row() {
    let declared = declared_routes();
    assert!(
        declared.len() >= 49,
        "the route scan found only {declared:?}"
    );
    let covered = covered_routes();
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without an authorisation matrix row (add one to stranger_rows, \
         or an exemption with a reason to NOT_TENANT_SCOPED): {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:?}"
    );
    for r in viewer_rows(&dummy_ids()) {
        let key = (r.method.to_string(), r.route.to_string());
        assert!(declared.contains(&key), "viewer row for unknown {key:?}");
    }
}

/// The served OpenAPI document lists no operation the matrix misses.
async fn check_openapi_covered(w: &World) {
    let r = w
        .http
        .call(&Cred::Anonymous, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let covered = covered_routes();
    let mut served = 0;
    for (path, item) in r.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served += 1;
            let key = (method.to_ascii_uppercase(), path.clone());
            assert!(
                covered.contains(&key),
                "{key:?} is served but has no authorisation matrix row"
            );
        }
    }
    assert!(served >= 49, "only {served} operations documented");
}

/// Runs `rows` as `cred`; returns one line per wrong answer. Every answer
/// is also searched for `canaries`, which must never appear.
async fn run_rows<'r>(
    http: &Http,
    who: &str,
    cred: &Cred,
    rows: impl IntoIterator<Item = &'r Row>,
    canaries: &[&str],
) -> Vec<String> {
    let mut failures = Vec::new();
    for r in rows {
        let resp = http
            .send(cred, r.method.clone(), &r.path, r.body.as_ref(), &r.headers)
            .await;
        // Account management (tokens, accepting invitations) needs an
        // unscoped credential: scoped tokens get 403 there whatever the ids.
        let scoped = who.contains("team token") || who.contains("project token");
        let account_route = r.route.starts_with("/tokens") || r.route.starts_with("/invitations/");
        let refused_as_scoped = scoped && account_route && resp.status == 403;
        if !r.expect.allows(resp.status) && !refused_as_scoped {
            failures.push(format!(
                "{who}: {} {} (route {}) -> {} (want {:?}): {}",
                r.method, r.path, r.route, resp.status, r.expect, resp.text
            ));
        }
        for c in canaries {
            if resp.text.contains(c) {
                failures.push(format!(
                    "{who}: {} {} leaked {c:?}: {}",
                    r.method, r.path, resp.text
                ));
            }
        }
    }
    failures
}

#[tokio::test]
async fn strangers_get_404_and_viewers_only_read() {
    let w = world().await;
    let http = &w.http;
    check_openapi_covered(&w).await;
    let before = snapshot(&w).await;
    check_b_intact(&before, &w);

    // Every credential A holds: the adopted admin token, a new unscoped
    // token, the session cookie (with its CSRF token), and tokens narrowed
    // to A's team and to A's project.
    let (a_team_tok, _) =
        new_token(http, &w.a.bearer(), "a-team", &format!("team:{}", w.a.team)).await;
    let (a_proj_tok, _) = new_token(http, &w.a.bearer(), "a-proj", "project:a-site").await;
    let creds = [
        ("A admin token", Cred::Bearer(w.coord.token.clone())),
        ("A token", w.a.bearer()),
        ("A cookie", w.a.cookie()),
        ("A team token", Cred::Bearer(a_team_tok.clone())),
        ("A project token", Cred::Bearer(a_proj_tok.clone())),
    ];
    // Nothing of B's may show in any answer to A: not its secrets, and not
    // the ids A did not send (A's own paths carry B's ids, so those are
    // only checked on the rows that name none).
    let secrets = [
        SECRET_VALUE,
        PLAIN_VALUE,
        w.webhook_secret.as_str(),
        w.b.token.as_str(),
        w.b.session.as_str(),
        w.b.email.as_str(),
    ];
    let rows = stranger_rows(&w.ids);
    let mut failures = Vec::new();
    for (who, cred) in &creds {
        failures.extend(run_rows(http, who, cred, &rows, &secrets).await);
        // The caller's own views name nothing of B's at all.
        let b_ids = [
            w.ids.project.as_str(),
            w.ids.project_id.as_str(),
            w.ids.team.as_str(),
            w.ids.user.as_str(),
            w.ids.token_id.as_str(),
            w.ids.dep_prod.as_str(),
        ];
        let own = rows.iter().filter(|r| r.expect == Expect::Ok);
        failures.extend(run_rows(http, who, cred, own, &b_ids).await);
    }
    // No credential at all, or a made-up one: 401 everywhere.
    for (who, cred) in [
        ("nobody", Cred::Anonymous),
        ("bogus token", Cred::Bearer("opt_0123456789abcdef".into())),
        (
            "bogus cookie",
            Cred::Cookie {
                session: "f".repeat(64),
                csrf: Some("f".repeat(64)),
            },
        ),
    ] {
        for r in rows.iter().filter(|r| !r.route.starts_with("/hooks/")) {
            let resp = http
                .send(
                    &cred,
                    r.method.clone(),
                    &r.path,
                    r.body.as_ref(),
                    &r.headers,
                )
                .await;
            if resp.status != 401 {
                failures.push(format!(
                    "{who}: {} {} -> {} (want 401): {}",
                    r.method, r.path, resp.status, resp.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorisation matrix failures:\n{}",
        failures.join("\n")
    );

    // A's listings hold A's project only.
    let list = http.ok(&w.a.bearer(), Method::GET, "/projects", None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-site"], "{list}");
    // A's audit log (instance owner, no team asked) has none of B's team's events.
    let audit = http.ok(&w.a.bearer(), Method::GET, "/audit", None).await;
    for e in audit["items"].as_array().unwrap() {
        assert_ne!(
            e["team_id"],
            w.ids.team.as_str(),
            "A sees B's team event {e}"
        );
        assert!(!e.to_string().contains(SECRET_VALUE), "{e}");
        // B's own account events (its tokens) belong to B alone, even for
        // the instance owner, who sees only that B signed up.
        if e["action"] != "user.signup" {
            assert_ne!(
                e["actor_id"],
                w.ids.user.as_str(),
                "A sees B's account event {e}"
            );
        }
    }
    // B reads its own token events.
    let b_audit = http.ok(&w.b.bearer(), Method::GET, "/audit", None).await;
    assert!(
        b_audit["items"].as_array().unwrap().iter().any(
            |e| e["action"] == "token.create" && e["team_id"] == format!("user:{}", w.ids.user)
        ),
        "{b_audit}"
    );

    // B's world is exactly as it was, and B's token still works.
    let after = snapshot(&w).await;
    assert_eq!(before, after, "B's data changed under A's attempts");
    check_b_intact(&after, &w);

    // ---- A as a viewer of B's team ------------------------------------------------
    let inv = invite_a_as_viewer(&w).await;
    let inv_token = inv["token"].as_str().unwrap();
    assert!(inv["url"].as_str().unwrap().ends_with(inv_token), "{inv}");
    let accepted = http
        .ok(
            &w.a.bearer(),
            Method::POST,
            &format!("/invitations/{inv_token}/accept"),
            None,
        )
        .await;
    assert_eq!(accepted["team_id"], w.ids.team.as_str());
    // Once used, the link is gone — for A again and for anyone else.
    let again = http
        .call(
            &w.a.bearer(),
            Method::POST,
            &format!("/invitations/{inv_token}/accept"),
            None,
        )
        .await;
    assert_eq!(again.status, 410, "{}", again.text);

    let before = snapshot(&w).await;
    let members = before[format!("/teams/{}/members", w.ids.team).as_str()].clone();
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == w.a.user_id.as_str() && m["role"] == "viewer"),
        "{members}"
    );
    let viewer_secrets = [SECRET_VALUE, w.webhook_secret.as_str(), w.b.token.as_str()];
    let rows = viewer_rows(&w.ids);
    let mut failures = Vec::new();
    for (who, cred) in [
        ("viewer token", w.a.bearer()),
        ("viewer cookie", w.a.cookie()),
    ] {
        failures.extend(run_rows(http, who, &cred, &rows, &viewer_secrets).await);
    }
    // A's narrowed tokens do not reach B's team even now.
    for (who, tok) in [
        ("A team token", &a_team_tok),
        ("A project token", &a_proj_tok),
    ] {
        let r = http
            .call(
                &Cred::Bearer(tok.clone()),
                Method::GET,
                "/projects/b-site",
                None,
            )
            .await;
        if r.status != 404 {
            failures.push(format!("{who}: GET /projects/b-site -> {}", r.status));
        }
    }
    assert!(
        failures.is_empty(),
        "viewer matrix failures:\n{}",
        failures.join("\n")
    );
    // What the viewer reads: variables without secret values, the git
    // connection without its webhook secret.
    let env = http
        .ok(&w.a.bearer(), Method::GET, "/projects/b-site/env", None)
        .await;
    for v in env.as_array().unwrap() {
        if v["name"] == "SECRET_KEY" {
            assert!(v["value"].is_null(), "{v}");
        } else {
            assert_eq!(v["value"], PLAIN_VALUE, "{v}");
        }
    }
    let git = http
        .ok(&w.a.bearer(), Method::GET, "/projects/b-site/git", None)
        .await;
    assert_eq!(
        git["webhook_secret"], "",
        "a viewer must not get the webhook secret: {git}"
    );
    assert_eq!(git["url"], "https://git.example.com/bob/site.git");
    let list = http.ok(&w.a.bearer(), Method::GET, "/projects", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let after = snapshot(&w).await;
    assert_eq!(before, after, "B's data changed under a viewer's attempts");

    // A leaves; B's project is hidden again.
    let leave = http
        .call(
            &w.a.bearer(),
            Method::DELETE,
            &format!("/teams/{}/members/{}", w.ids.team, w.a.user_id),
            None,
        )
        .await;
    assert_eq!(leave.status, 204, "{}", leave.text);
    let r = http
        .call(&w.a.bearer(), Method::GET, "/projects/b-site", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn tokens_sessions_csrf_and_audit() {
    let w = world().await;
    let http = &w.http;
    let b = &w.b;

    // A second team of B's, with a project of its own.
    let side = http
        .ok(
            &b.bearer(),
            Method::POST,
            "/teams",
            Some(json!({"name": "Bob's side team"})),
        )
        .await;
    let side_team = side["id"].as_str().unwrap().to_string();
    http.ok(
        &b.bearer(),
        Method::POST,
        "/projects",
        Some(json!({"name": "b-side", "team": side_team})),
    )
    .await;

    // A project-scoped token reaches that one project only, and nothing
    // team- or instance-wide.
    let (ptok, _) = new_token(http, &b.bearer(), "ci", "project:b-site").await;
    let p = Cred::Bearer(ptok);
    let me = http.ok(&p, Method::GET, "/me", None).await;
    assert_eq!(me["scope"], format!("project:{}", w.ids.project_id), "{me}");
    assert_eq!(me["teams"], json!([]), "{me}");
    let list = http.ok(&p, Method::GET, "/projects", None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b-site"], "{list}");
    http.ok(&p, Method::GET, "/projects/b-site", None).await;
    http.ok(
        &p,
        Method::PUT,
        "/projects/b-site/env/FROM_CI",
        Some(json!({"value": "1"})),
    )
    .await;
    let team = &w.ids.team;
    for (method, path, body, want) in [
        (Method::GET, "/projects/b-side".to_string(), None, 404),
        (Method::GET, "/projects/b-side/env".into(), None, 404),
        (Method::GET, format!("/teams/{team}/members"), None, 404),
        (Method::GET, format!("/audit?team={team}"), None, 404),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": "from-ci"})),
            403,
        ),
        (
            Method::POST,
            "/teams".into(),
            Some(json!({"name": "ci team"})),
            403,
        ),
        (
            Method::POST,
            "/tokens".into(),
            Some(json!({"name": "wider", "scope": "all"})),
            403,
        ),
        (
            Method::POST,
            "/tokens".into(),
            Some(json!({"name": "wider", "scope": format!("team:{team}")})),
            // Scoped tokens make no tokens at all.
            403,
        ),
        (
            Method::POST,
            "/join-tokens".into(),
            Some(json!({"region": "fra"})),
            403,
        ),
    ] {
        let r = http.call(&p, method.clone(), &path, body).await;
        assert_eq!(r.status, want, "project token: {method} {path}: {}", r.text);
    }
    let audit = http.ok(&p, Method::GET, "/audit", None).await;
    assert_eq!(audit["items"], json!([]), "{audit}");

    // A team-scoped token reaches that team's projects only.
    let (ttok, _) = new_token(http, &b.bearer(), "team-ci", &format!("team:{team}")).await;
    let t = Cred::Bearer(ttok);
    http.ok(&t, Method::GET, "/projects/b-site", None).await;
    let r = http.call(&t, Method::GET, "/projects/b-side", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = http
        .call(
            &t,
            Method::POST,
            "/projects",
            Some(json!({"name": "x-side", "team": side_team})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Only the instance owner (unscoped) sees and adds nodes.
    let r = http.call(&b.bearer(), Method::GET, "/nodes", None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = http.call(&t, Method::GET, "/nodes", None).await;
    assert_eq!(r.status, 403, "a scoped token of a member: {}", r.text);
    http.ok(&w.a.bearer(), Method::GET, "/nodes", None).await;
    for cred in [&b.bearer(), &t] {
        let r = http
            .call(cred, Method::DELETE, "/nodes/n0000000000", None)
            .await;
        assert_eq!(r.status, 403, "removing a node: {}", r.text);
    }
    let r = http
        .call(&w.a.bearer(), Method::DELETE, "/nodes/n0000000000", None)
        .await;
    assert_eq!(r.status, 404, "no such node: {}", r.text);
    let r = http
        .call(
            &b.bearer(),
            Method::POST,
            "/join-tokens",
            Some(json!({"region": "fra"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    http.ok(
        &w.a.bearer(),
        Method::POST,
        "/join-tokens",
        Some(json!({"region": "fra"})),
    )
    .await;

    // A revoked token is dead at once; other tokens live on.
    let (rtok, rid) = new_token(http, &b.bearer(), "short-lived", "all").await;
    let r = Cred::Bearer(rtok);
    http.ok(&r, Method::GET, "/me", None).await;
    http.ok(&b.bearer(), Method::DELETE, &format!("/tokens/{rid}"), None)
        .await;
    let dead = http.call(&r, Method::GET, "/projects/b-site", None).await;
    assert_eq!(dead.status, 401, "{}", dead.text);
    assert_eq!(dead.body["error"]["code"], "unauthorized");
    let again = http
        .call(&b.bearer(), Method::DELETE, &format!("/tokens/{rid}"), None)
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
    http.ok(&b.bearer(), Method::GET, "/projects/b-site", None)
        .await;

    // An expired token (the API only makes ones that expire in a day or
    // more, so this one is written to the database directly).
    let store = coordinator::store::Store::connect(&format!(
        "sqlite://{}",
        w.coord.dir.join("coordinator.db").display()
    ))
    .await
    .unwrap();
    let expired = "opt_expired0000000000000000000000000000000000000000000000000000000";
    let now = coordinator::store::now_ms();
    store
        .insert_api_token(&coordinator::store::ApiToken {
            id: "expiredtoken1".into(),
            name: "old".into(),
            token_hash: coordinator::ids::token_hash(expired),
            user_id: Some(b.user_id.clone()),
            team_id: None,
            project_id: None,
            created_at: now - 3_600_000,
            expires_at: Some(now - 1000),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    let r = http
        .call(
            &Cred::Bearer(expired.into()),
            Method::GET,
            "/projects/b-site",
            None,
        )
        .await;
    assert_eq!(r.status, 401, "expired token: {}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        r.text
    );

    // Cookie writes need the session's CSRF token; reads do not.
    let put = "/projects/b-site/env/VIA_COOKIE";
    let body = json!({"value": "x"});
    for (csrf, why) in [
        (None, "no X-CSRF-Token"),
        (Some("0".repeat(64)), "a wrong X-CSRF-Token"),
        (Some(w.a.csrf.clone()), "another session's X-CSRF-Token"),
    ] {
        let c = Cred::Cookie {
            session: b.session.clone(),
            csrf,
        };
        let writes = [
            (Method::PUT, put.to_string(), Some(body.clone())),
            (
                Method::DELETE,
                "/projects/b-site/env/SECRET_KEY".into(),
                None,
            ),
            (
                Method::POST,
                format!("/deployments/{}/promote", w.ids.dep_old),
                None,
            ),
            (Method::POST, "/tokens".into(), Some(json!({"name": "x"}))),
        ];
        for (method, path, body) in writes {
            let r = http.call(&c, method.clone(), &path, body).await;
            assert_eq!(
                r.status, 403,
                "cookie {method} {path} with {why}: {}",
                r.text
            );
            assert_eq!(r.body["error"]["code"], "csrf", "{}", r.text);
        }
        let read = http
            .call(&c, Method::GET, "/projects/b-site/env", None)
            .await;
        assert_eq!(read.status, 200, "{}", read.text);
    }
    let env = http
        .ok(&b.bearer(), Method::GET, "/projects/b-site/env", None)
        .await;
    assert!(
        !env.to_string().contains("VIA_COOKIE"),
        "a refused cookie write landed: {env}"
    );
    assert!(env.to_string().contains("SECRET_KEY"), "{env}");
    http.ok(&b.cookie(), Method::PUT, put, Some(body)).await;

    // Signing out ends the session.
    let other = http
        .call(
            &Cred::Anonymous,
            Method::POST,
            "/auth/login",
            Some(json!({"email": b.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    let s2 = Cred::Cookie {
        session: session_cookie(&other.headers),
        csrf: other.body["csrf"].as_str().map(str::to_string),
    };
    http.ok(&s2, Method::GET, "/me", None).await;
    let out = http.call(&s2, Method::POST, "/auth/logout", None).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let r = http.call(&s2, Method::GET, "/me", None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    http.ok(&b.cookie(), Method::GET, "/me", None).await;

    // B's team's audit log: B's actions, who did them and from where; no
    // secret values. A cannot read it.
    let log = http
        .ok(
            &b.bearer(),
            Method::GET,
            &format!("/audit?team={team}"),
            None,
        )
        .await;
    let items = log["items"].as_array().unwrap();
    let find = |action: &str, pred: &dyn Fn(&Value) -> bool| {
        items
            .iter()
            .find(|e| e["action"] == action && pred(e))
            .unwrap_or_else(|| panic!("no {action} in {log}"))
            .clone()
    };
    let created = find("project.create", &|e| e["target"] == "b-site");
    assert_eq!(
        created["actor"], "bob@example.com (token Bob-cli)",
        "{created}"
    );
    assert_eq!(created["actor_id"], b.user_id.as_str());
    assert_eq!(created["ip"], "127.0.0.1", "{created}");
    assert_eq!(created["team_id"], team.as_str());
    let secret_set = find("env.set", &|e| {
        e["detail"].as_str().unwrap().contains("SECRET_KEY")
    });
    assert_eq!(secret_set["actor"], "bob@example.com (token Bob-cli)");
    assert_eq!(secret_set["ip"], "127.0.0.1");
    let cookie_set = find("env.set", &|e| {
        e["detail"].as_str().unwrap().contains("PUBLIC_NAME")
    });
    assert_eq!(cookie_set["actor"], "bob@example.com", "{cookie_set}");
    find("git.connect", &|_| true);
    find("invitation.revoke", &|_| true);
    assert!(!log.to_string().contains(SECRET_VALUE), "{log}");
    for cred in [w.a.bearer(), w.a.cookie()] {
        let r = http
            .call(&cred, Method::GET, &format!("/audit?team={team}"), None)
            .await;
        assert!(matches!(r.status, 403 | 404), "{}", r.text);
        assert!(!r.text.contains("b-site"), "{}", r.text);
    }
}

#[tokio::test]
async fn sign_up_and_sign_in_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let http = Http {
        base: format!("{}/api/v1", coord.url()),
        http: http_client(),
        setup_token: coord.setup_token.clone(),
    };
    let signup = |email: &str, name: &str, password: &str| json!({"email": email, "name": name, "password": password});
    for (body, code, message) in [
        (
            signup("not-an-email", "Ann", PASSWORD),
            "invalid_email",
            "that does not look like an email address",
        ),
        (
            signup("ann@localhost", "Ann", PASSWORD),
            "invalid_email",
            "that does not look like an email address",
        ),
        (
            signup("ann@example.com", "Ann", "short"),
            "weak_password",
            "password must be at least 10 characters",
        ),
        (
            signup("ann@example.com", "  ", PASSWORD),
            "invalid_name",
            "enter a name",
        ),
    ] {
        let r = http
            .call(
                &Cred::Anonymous,
                Method::POST,
                "/auth/signup",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{}", r.text);
        assert_eq!(r.body["error"]["message"], message, "{}", r.text);
        assert!(r.headers.get("set-cookie").is_none());
    }
    // The first account owns the instance: it takes the setup token the
    // coordinator printed at its first start, not just anyone's sign-up.
    let setup = coord
        .setup_token
        .clone()
        .expect("a fresh instance has a setup token");
    assert!(coord.dir.join("setup-token").exists());
    for token in [None, Some("setup_wrong"), Some("")] {
        let mut body = signup("eve@example.com", "Eve", PASSWORD);
        body["setup_token"] = json!(token);
        let r = http
            .call(&Cred::Anonymous, Method::POST, "/auth/signup", Some(body))
            .await;
        assert_eq!(r.status, 403, "{token:?}: {}", r.text);
        assert!(r.text.contains("setup token"), "{}", r.text);
    }
    let ann = sign_up(&http, "ann@example.com", "Ann").await;
    assert!(!coord.dir.join("setup-token").exists(), "spent");
    // Spent: it makes nobody else an owner.
    let mut again = signup("mallory@example.com", "Mallory", PASSWORD);
    again["setup_token"] = json!(setup);
    let r = http
        .call(&Cred::Anonymous, Method::POST, "/auth/signup", Some(again))
        .await;
    assert_eq!(r.status, 201, "open sign-up: {}", r.text);
    assert_eq!(r.body["user"]["instance_owner"], false, "{}", r.text);
    let dup = http
        .call(
            &Cred::Anonymous,
            Method::POST,
            "/auth/signup",
            Some(signup("ANN@example.com", "Ann 2", PASSWORD)),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.text);

    // Sign-in answers carry the quota.
    let login = |password: &str| {
        http.call(
            &Cred::Anonymous,
            Method::POST,
            "/auth/login",
            Some(json!({"email": ann.email, "password": password})),
        )
    };
    let ok = login(PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.headers["x-ratelimit-limit"], "5");
    assert_eq!(ok.headers["x-ratelimit-remaining"], "5");
    assert!(ok.headers.contains_key("x-ratelimit-reset"));
    // Five wrong passwords use the account's quota up...
    for left in (0..5).rev() {
        let r = login("wrong password!").await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.body["error"]["message"], "wrong email or password");
        assert_eq!(
            r.headers["x-ratelimit-remaining"],
            left.to_string().as_str(),
            "{:?}",
            r.headers
        );
    }
    // ...after which even the right one is refused until the window ends.
    let r = login(PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // A session made before is unaffected; an unknown account is told the
    // same as a wrong password.
    http.ok(&ann.cookie(), Method::GET, "/me", None).await;
    let r = http
        .call(
            &Cred::Anonymous,
            Method::POST,
            "/auth/login",
            Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"]["message"], "wrong email or password");
}

/// Projects are looked up by name or id in one query, and ids are valid
/// names. A project named like another team's project id (known, say, to
/// a former viewer) must not make that project, its deployments or its
/// builds reachable, nor hide them from their owner.
///
/// FAILS TODAY (reported, not fixed here): `Store::project` matches
/// `name = $1 OR id = $2` and returns the stranger's project, so the
/// stranger reads, promotes, finalizes and cancels the other team's
/// deployments and builds, and their owner gets 404. Remove the `ignore`
/// once project lookups cannot confuse a name with an id.
#[tokio::test]

async fn a_project_named_like_another_projects_id_reaches_nothing() {
    let w = world().await;
    let http = &w.http;
    let a = w.a.bearer();
    let r = http
        .call(
            &a,
            Method::POST,
            "/projects",
            Some(json!({"name": w.ids.project_id, "team": w.a.team})),
        )
        .await;
    if r.status != 201 {
        assert!(matches!(r.status, 400 | 409), "{}", r.text);
        return;
    }
    let mut failures = Vec::new();
    let (dep, old, build) = (&w.ids.dep_prod, &w.ids.dep_old, &w.ids.build);
    for (method, path) in [
        (Method::GET, format!("/deployments/{dep}")),
        (Method::GET, format!("/deployments/{build}")),
        (Method::GET, format!("/builds/{build}")),
        (Method::GET, format!("/deployments/{build}/build-logs")),
        (Method::POST, format!("/deployments/{old}/promote")),
        (Method::POST, format!("/deployments/{dep}/finalize")),
        (Method::POST, format!("/deployments/{build}/cancel")),
        (Method::POST, format!("/deployments/{build}/redeploy")),
    ] {
        let r = http.call(&a, method.clone(), &path, None).await;
        if r.status != 404 {
            failures.push(format!("A: {method} {path} -> {}: {}", r.status, r.text));
        }
    }
    for path in [
        format!("/projects/{}", w.ids.project_id),
        "/projects/b-site".into(),
        format!("/deployments/{dep}"),
        format!("/deployments/{build}"),
        format!("/builds/{build}"),
        format!("/deployments/{build}/build-logs"),
    ] {
        let r = http.call(&w.b.bearer(), Method::GET, &path, None).await;
        if r.status != 200 || r.text.contains(&w.a.team) {
            failures.push(format!("B: GET {path} -> {}: {}", r.status, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "a project named {:?} (B's project id) in A's team:\n{}",
        w.ids.project_id,
        failures.join("\n")
    );
}
