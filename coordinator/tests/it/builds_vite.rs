//! One real Vite build, end to end, from the npm registry: a git repository
//! with a committed package-lock.json, a signed GitHub push, `npm ci` and
//! `vite build` in the bubblewrap sandbox, and a real edge node serving the
//! built page with its fingerprinted, precompressed assets. A second push
//! must find the project's package cache warm.
//!
//! It needs the npm registry, so it runs only with
//! `OUTPOST_TEST_NPM_REGISTRY=1` (and bwrap and npm installed).

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support::webhooks::{commit, have, send_github_push, start_with_timeout, wait_status};
use crate::support::{eventually, Edge};
use reqwest::Method;
use serde_json::{json, Value};

const ENV_GATE: &str = "OUTPOST_TEST_NPM_REGISTRY";

/// Written to the real stderr, which the test harness does not capture, so
/// a skipped run says so even when the test "passes".
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n\n!!!!! SKIPPING builds_vite: {why} !!!!!\n\n"
    );
}

/// npm's major version on this host.
fn npm_major() -> u32 {
    let out = Command::new("npm")
        .arg("--version")
        .output()
        .expect("npm runs");
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("npm --version printed {v:?}"))
}

/// Vite 8 (rolldown) installs with npm 11; where npm is older use Vite 7.
/// Exact versions, so that the build (and its asset names) is repeatable.
fn vite_version(npm_major: u32) -> &'static str {
    if npm_major >= 11 {
        "8.3.8"
    } else {
        "7.3.8"
    }
}

fn main_js(message: &str) -> String {
    format!(
        r#"import './style.css';

const message = '{message}';

function render(root) {{
  const h = document.createElement('h2');
  h.className = 'greeting';
  h.textContent = message;
  root.appendChild(h);
  const list = document.createElement('ul');
  for (const step of ['pushed', 'installed', 'built', 'served']) {{
    const li = document.createElement('li');
    li.textContent = 'The site was ' + step + ' by Outpost from a git push.';
    list.appendChild(li);
  }}
  root.appendChild(list);
}}

render(document.querySelector('#app'));
"#
    )
}

const STYLE_CSS: &str = r#"body {
  font-family: system-ui, sans-serif;
  margin: 0 auto;
  max-width: 40rem;
  color: #1d2a3a;
  background: #fafaf7;
}

.greeting {
  color: rebeccapurple;
  border-bottom: 2px solid #c0b0e0;
  padding-bottom: 0.5rem;
}

ul li {
  line-height: 1.6;
  list-style: square;
}

ul li:nth-child(odd) {
  background: #f0eef8;
}

ul li:nth-child(even) {
  background: #f7f6fb;
}

footer {
  color: #6b6b6b;
  font-size: 0.875rem;
  border-top: 1px solid #e0e0e0;
}
"#;

const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1.0" />
    <title>Outpost Vite fixture</title>
  </head>
  <body>
    <h1>Built by Vite on Outpost</h1>
    <div id="app"></div>
    <script type="module" src="/src/main.js"></script>
  </body>
</html>
"#;

/// A minimal Vite project with a lockfile made by the host's npm.
fn init_vite_repo(repo: &Path, vite: &str) -> String {
    crate::support::webhooks::init(repo);
    let package_json = json!({
        "name": "vite-site",
        "version": "1.0.0",
        "private": true,
        "type": "module",
        "scripts": {"build": "vite build"},
        "devDependencies": {"vite": vite},
    });
    std::fs::write(
        repo.join("package.json"),
        serde_json::to_string_pretty(&package_json).unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    let out = Command::new("npm")
        .args(["install", "--package-lock-only", "--no-audit", "--no-fund"])
        .current_dir(repo)
        .output()
        .expect("npm runs");
    assert!(
        out.status.success(),
        "npm install --package-lock-only: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "package-lock.json for vite@{vite} resolved in {:.1?}",
        t.elapsed()
    );
    assert!(repo.join("package-lock.json").is_file());
    commit(
        repo,
        &[
            (".gitignore", "node_modules/\ndist/\n"),
            ("index.html", INDEX_HTML),
            ("src/main.js", &main_js("hello from vite")),
            ("src/style.css", STYLE_CSS),
        ],
        "Vite site",
    )
}

/// The value of `attr="…"` in the first tag of `html` that has `marker`.
fn attr_of_tag(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = &tag[tag.find(&key)? + key.len()..];
    Some(v[..v.find('"')?].to_string())
}

/// GET with request headers, returning the raw (undecoded) body.
async fn get_raw(
    edge: &Edge,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let mut req = crate::support::http_client()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.bytes().await.unwrap().to_vec(), h)
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        other => panic!("unexpected encoding {other}"),
    }
    out
}

/// The whole build log, as the CLI prints it: complete once the build is
/// `ready` (its lines are stored before the status changes).
fn build_log(coord: &crate::support::Coordinator, id: &str) -> String {
    let log = coord.cli_ok(&["logs", id]);
    assert!(log.contains(" Ready: "), "log complete at ready: {log}");
    log
}

/// Checks a fingerprinted asset: served, immutable, and precompressed for
/// a client that asks. Returns its identity body.
async fn check_asset(edge: &Edge, path: &str, content_type: &str, contains: &str) -> String {
    let (s, body, h) = get_raw(edge, "vite-site.localhost", path, &[]).await;
    assert_eq!(s, 200, "{path}");
    let body = String::from_utf8(body).unwrap();
    assert!(
        header(&h, "content-type").contains(content_type),
        "{path}: {h:?}"
    );
    assert!(
        header(&h, "cache-control").contains("immutable"),
        "{path} has a content hash in its name, so it must be cached as immutable: {h:?}"
    );
    assert!(body.contains(contains), "{path} lacks {contains:?}: {body}");
    let mut encodings = Vec::new();
    for enc in ["br", "gzip"] {
        let (s, raw, h) = get_raw(
            edge,
            "vite-site.localhost",
            path,
            &[("Accept-Encoding", enc)],
        )
        .await;
        assert_eq!(s, 200);
        let got = header(&h, "content-encoding");
        if got.is_empty() {
            continue;
        }
        assert_eq!(got, enc, "{path}: asked for {enc}: {h:?}");
        assert!(
            header(&h, "vary")
                .to_ascii_lowercase()
                .contains("accept-encoding"),
            "{path}: {h:?}"
        );
        assert!(raw.len() < body.len(), "{path}: {enc} is not smaller");
        assert_eq!(decode(enc, &raw), body.as_bytes(), "{path}: {enc} variant");
        encodings.push(enc);
    }
    assert!(
        !encodings.is_empty(),
        "{path} ({} bytes) has neither a br nor a gzip variant",
        body.len()
    );
    eprintln!("{path}: {} bytes, variants {encodings:?}", body.len());
    body
}

#[tokio::test]
async fn vite_build_from_push_to_served_page() {
    if std::env::var(ENV_GATE).as_deref() != Ok("1") {
        skip(&format!(
            "it needs the npm registry; set {ENV_GATE}=1 where the registry is reachable"
        ));
        return;
    }
    if !have("bwrap") || !have("npm") || !have("node") || !have("git") {
        skip("a program it needs is missing (see above)");
        return;
    }
    let npm = npm_major();
    let vite = vite_version(npm);
    eprintln!("npm {npm}.x on this host: building with vite@{vite}");

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let first = init_vite_repo(&repo, vite);
    let coord = start_with_timeout(tmp.path(), "10m");
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let api = coord.api();

    let url = format!("file://{}", repo.display());
    coord.cli_ok(&[
        "projects",
        "create",
        "vite-site",
        "--git",
        &url,
        "--branch",
        "main",
    ]);
    let conn: Value = serde_json::from_str(&coord.cli_ok(&["git", "vite-site", "--json"])).unwrap();
    let secret = conn["webhook_secret"].as_str().unwrap().to_string();

    // Cold: the project's package cache is empty.
    let t = Instant::now();
    let id = send_github_push(&coord, "vite-site", &secret, "main", &first, "Vite site").await;
    let b = wait_status(&api, &id, "ready", 600).await;
    let cold = t.elapsed();
    eprintln!("cold Vite build (push to ready): {cold:.1?}");
    assert_eq!(b["git"]["commit_sha"], first.as_str());
    let log = build_log(&coord, &id);
    eprintln!("----- cold build log -----\n{log}\n--------------------------");
    assert!(
        log.contains("Detected Vite (package.json depends on vite)"),
        "{log}"
    );
    assert!(
        log.contains("package manager npm (package-lock.json)"),
        "{log}"
    );
    assert!(log.contains("npm cache: empty"), "{log}");
    assert!(log.contains("Running `npm ci`"), "{log}");
    assert!(log.contains("Running `npm run build`"), "{log}");
    assert!(log.contains("vite v"), "vite's own banner: {log}");

    // The built page, its script and its stylesheet, from the edge.
    let html = eventually(60, "the Vite page served", || async {
        let (s, body, _) = edge.get("vite-site.localhost", "/").await;
        (s == 200 && body.contains("Built by Vite on Outpost")).then_some(body)
    })
    .await;
    assert!(
        !html.contains("/src/main.js"),
        "not the source page: {html}"
    );
    let (_, _, h) = edge.get("vite-site.localhost", "/").await;
    assert!(
        !header(&h, "cache-control").contains("immutable"),
        "HTML must revalidate: {h:?}"
    );
    let js = attr_of_tag(&html, "<script type=\"module\"", "src")
        .unwrap_or_else(|| panic!("no module script in {html}"));
    let css = attr_of_tag(&html, "rel=\"stylesheet\"", "href")
        .unwrap_or_else(|| panic!("no stylesheet link in {html}"));
    assert!(
        js.starts_with("/assets/index-") && js.ends_with(".js"),
        "{js}"
    );
    assert!(
        css.starts_with("/assets/index-") && css.ends_with(".css"),
        "{css}"
    );
    check_asset(&edge, &js, "javascript", "hello from vite").await;
    check_asset(&edge, &css, "text/css", "#c0b0e0").await;

    // Warm: a new commit with the same lockfile finds the store.
    let second = commit(
        &repo,
        &[("src/main.js", &main_js("hello again from vite"))],
        "New greeting",
    );
    let t = Instant::now();
    let id2 = send_github_push(
        &coord,
        "vite-site",
        &secret,
        "main",
        &second,
        "New greeting",
    )
    .await;
    wait_status(&api, &id2, "ready", 600).await;
    let warm = t.elapsed();
    eprintln!("cached Vite build (push to ready): {warm:.1?}");
    let log2 = build_log(&coord, &id2);
    eprintln!("----- cached build log -----\n{log2}\n----------------------------");
    assert!(log2.contains("npm cache: hit for lockfile"), "{log2}");
    let html2 = eventually(60, "the new commit served", || async {
        let (s, body, _) = edge.get("vite-site.localhost", "/").await;
        (s == 200 && body != html).then_some(body)
    })
    .await;
    let js2 = attr_of_tag(&html2, "<script type=\"module\"", "src").unwrap();
    assert_ne!(js, js2, "new content, new hash");
    check_asset(&edge, &js2, "javascript", "hello again from vite").await;
    // The second build is production now.
    let d: Value = api
        .req(Method::GET, &format!("/deployments/{id2}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["is_production"], true, "{d}");
    eprintln!(
        "Vite builds: cold {cold:.1?}, cached {warm:.1?} (push to ready, npm {npm}, vite@{vite})"
    );
}
