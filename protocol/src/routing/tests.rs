//! Table tests for parsing, merging, validation and evaluation. Rows follow
//! the examples of Netlify's redirect docs (splats, placeholders, query
//! parameters, shadowing and `!`, 200/404 rewrites, proxies), Cloudflare
//! Pages' `_redirects`/`_headers` docs and Vercel's project configuration
//! docs (`redirects` 308/307, `rewrites`, `cleanUrls`, `trailingSlash`,
//! query strings passed to the destination).

use std::collections::BTreeSet;

use super::*;

fn exists_in(paths: &[&str]) -> impl Fn(&str) -> bool {
    let set: BTreeSet<String> = paths.iter().map(|p| p.to_string()).collect();
    move |p: &str| set.contains(p)
}

fn redirect(status: u16, location: &str) -> Decision {
    Decision::Redirect {
        status,
        location: location.into(),
    }
}

fn rewrite(path: &str, query: Option<&str>, status: u16) -> Decision {
    Decision::Rewrite {
        path: path.into(),
        query: query.map(Into::into),
        status,
    }
}

fn proxy(url: &str) -> Decision {
    Decision::Proxy { url: url.into() }
}

fn run_table(cfg: &RoutingConfig, files: &[&str], cases: &[(&str, Decision)]) {
    let exists = exists_in(files);
    for (target, want) in cases {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (*target, None),
        };
        let got = route(cfg, path, query, &exists);
        assert_eq!(&got, want, "request {target}");
    }
}

const NETLIFY: &str = "\
# Netlify / Cloudflare style
/home              /                      301
/blog/*            /news/:splat           302
/news/:year/:month/:slug   /articles/:year-:month/:slug   301
/store  id=:id     /items/:id             301
/search q=:q       /find?term=:q          302
/pagethatexists    /other                 301
/forced            /other                 301!
/api/*             https://api.example.com/:splat   200
/en/*              /en/404.html           404
/twitch            https://twitch.tv
/querystrings      /?query=string         301
/loop              /loop                  301!
/*                 /index.html            200
";

#[test]
fn netlify_redirects_table() {
    let cfg = from_sources(None, None, Some(NETLIFY), None).unwrap();
    let files = [
        "/",
        "/index.html",
        "/pagethatexists",
        "/forced",
        "/app.js",
        "/en/about",
        "/en/404.html",
    ];
    let cases = [
        ("/home", redirect(301, "/")),
        ("/home/", redirect(301, "/")),
        ("/home?utm=x", redirect(301, "/?utm=x")),
        ("/blog/a/b", redirect(302, "/news/a/b")),
        ("/blog/a b/ü", redirect(302, "/news/a%20b/%C3%BC")),
        ("/blog", redirect(302, "/news/")),
        ("/news/2024/05/hi", redirect(301, "/articles/2024-05/hi")),
        // Matched query parameters are consumed, not passed on.
        ("/store?id=42", redirect(301, "/items/42")),
        ("/store?x=1&id=7", redirect(301, "/items/7")),
        // Without the parameter the rule does not match: the SPA rule does.
        ("/store", rewrite("/index.html", None, 200)),
        (
            "/search?q=rust%20lang&x=1",
            redirect(302, "/find?term=rust%20lang"),
        ),
        // Shadowing: an existing path wins over a rule unless it is forced.
        ("/pagethatexists", Decision::Pass),
        ("/forced", redirect(301, "/other")),
        ("/forced?a=1", redirect(301, "/other?a=1")),
        (
            "/api/users/1?x=2",
            proxy("https://api.example.com/users/1?x=2"),
        ),
        ("/api", proxy("https://api.example.com/")),
        ("/en/missing", rewrite("/en/404.html", None, 404)),
        ("/en/about", Decision::Pass),
        ("/twitch", redirect(301, "https://twitch.tv")),
        ("/querystrings?a=1", redirect(301, "/?query=string&a=1")),
        // A redirect to itself is skipped; the next rule applies.
        ("/loop", rewrite("/index.html", None, 200)),
        ("/", Decision::Pass),
        ("/app.js", Decision::Pass),
        (
            "/dashboard/settings?tab=2",
            rewrite("/index.html", Some("tab=2"), 200),
        ),
    ];
    run_table(&cfg, &files, &cases);
}

const VERCEL: &str = r#"{
  "$schema": "https://openapi.vercel.sh/vercel.json",
  "buildCommand": "npm run build",
  "cleanUrls": true,
  "trailingSlash": false,
  "redirects": [
    { "source": "/old", "destination": "/new" },
    { "source": "/temp", "destination": "/t", "permanent": false },
    { "source": "/s/:slug", "destination": "/posts/:slug", "statusCode": 301 },
    { "source": "/ext/:path*", "destination": "https://example.com/:path*" },
    { "source": "/shadow", "destination": "/elsewhere" }
  ],
  "rewrites": [
    { "source": "/app/:path*", "destination": "/app/index.html" },
    { "source": "/docs/(.*)", "destination": "/documentation/$1" },
    { "source": "/proxy/:path*", "destination": "https://upstream.example/:path*" },
    { "source": "/u/:name", "destination": "/api/user?name=:name" }
  ],
  "headers": [
    { "source": "/(.*)", "headers": [ { "key": "X-Frame-Options", "value": "DENY" } ] }
  ]
}"#;

#[test]
fn vercel_table() {
    let cfg = from_sources(None, Some(VERCEL), None, None).unwrap();
    assert!(cfg.clean_urls);
    assert_eq!(cfg.trailing_slash, Some(false));
    let files = [
        "/",
        "/index.html",
        "/about.html",
        "/about",
        "/docs/index.html",
        "/app/index.html",
        "/app/existing.js",
        "/shadow",
    ];
    let cases = [
        ("/old", redirect(308, "/new")),
        ("/old?x=1", redirect(308, "/new?x=1")),
        ("/temp", redirect(307, "/t")),
        ("/s/hello", redirect(301, "/posts/hello")),
        ("/ext/a/b?q=1", redirect(308, "https://example.com/a/b?q=1")),
        // Redirects come before the filesystem on Vercel.
        ("/shadow", redirect(308, "/elsewhere")),
        ("/about.html", redirect(308, "/about")),
        ("/about.html?x=1", redirect(308, "/about?x=1")),
        ("/missing.html", Decision::Pass),
        ("/index.html", redirect(308, "/")),
        ("/docs/index.html", redirect(308, "/docs")),
        ("/about/", redirect(308, "/about")),
        ("/about/?a=b", redirect(308, "/about?a=b")),
        ("/", Decision::Pass),
        ("/about", Decision::Pass),
        // Rewrites come after the filesystem.
        ("/app/x/y", rewrite("/app/index.html", None, 200)),
        ("/app/existing.js", Decision::Pass),
        ("/docs/a/b", rewrite("/documentation/a/b", None, 200)),
        ("/proxy/x?y=1", proxy("https://upstream.example/x?y=1")),
        (
            "/u/ann?lang=en",
            rewrite("/api/user", Some("name=ann&lang=en"), 200),
        ),
        ("/u/a b", rewrite("/api/user", Some("name=a%20b"), 200)),
    ];
    run_table(&cfg, &files, &cases);
}

#[test]
fn vercel_query_strings_are_merged() {
    let cfg = from_sources(
        None,
        Some(r#"{"redirects":[{"source":"/","destination":"/lol/?path=foo"}]}"#),
        None,
        None,
    )
    .unwrap();
    run_table(
        &cfg,
        &["/"],
        &[
            ("/?baz=10", redirect(308, "/lol/?path=foo&baz=10")),
            ("/", redirect(308, "/lol/?path=foo")),
        ],
    );
}

#[test]
fn trailing_slash_true_and_clean_urls() {
    let outpost = OutpostRouting {
        clean_urls: Some(true),
        trailing_slash: Some(true),
        ..OutpostRouting::default()
    };
    let cfg = from_sources(Some(outpost), None, None, None).unwrap();
    let files = ["/", "/about.html", "/docs/index.html", "/app.js"];
    let cases = [
        ("/about", redirect(308, "/about/")),
        ("/about?x=1", redirect(308, "/about/?x=1")),
        ("/a b", redirect(308, "/a%20b/")),
        ("/about/", Decision::Pass),
        ("/app.js", Decision::Pass),
        ("/", Decision::Pass),
        ("/about.html", redirect(308, "/about/")),
        ("/docs/index.html", redirect(308, "/docs/")),
    ];
    run_table(&cfg, &files, &cases);
}

#[test]
fn outpost_rules_come_first_and_override_flags() {
    let outpost: OutpostRouting = toml::from_str(
        r#"
        clean_urls = false
        [[functions]]
        route = "/api/x"
        component = "x.wasm"

        [[redirects]]
        source = "/old"
        destination = "/from-outpost"

        [[redirects]]
        source = "/gone/*"
        destination = "/"
        status = 302

        [[rewrites]]
        source = "/spa/*"
        destination = "/spa/index.html"

        [[rewrites]]
        source = "/nf/*"
        destination = "/nf.html"
        status = 404
        force = true

        [[headers]]
        source = "/*"
        headers = { "X-Frame-Options" = "DENY" }
        "#,
    )
    .unwrap();
    let cfg = from_sources(
        Some(outpost),
        Some(VERCEL),
        Some("/old /from-netlify 301\n"),
        Some("/*\n  X-Frame-Options: SAMEORIGIN\n"),
    )
    .unwrap();
    // outpost.toml's `clean_urls = false` wins over vercel.json's `true`;
    // vercel.json's trailingSlash applies since outpost.toml is silent.
    assert!(!cfg.clean_urls);
    assert_eq!(cfg.trailing_slash, Some(false));
    let files = ["/about.html", "/nf/here"];
    run_table(
        &cfg,
        &files,
        &[
            ("/old", redirect(308, "/from-outpost")),
            ("/gone/a", redirect(302, "/")),
            ("/spa/deep/link", rewrite("/spa/index.html", None, 200)),
            ("/nf/here", rewrite("/nf.html", None, 404)),
            ("/about.html", Decision::Pass),
        ],
    );
    assert_eq!(
        headers_for(&cfg, "/x"),
        vec![(
            "X-Frame-Options".to_string(),
            "DENY, DENY, SAMEORIGIN".to_string()
        )]
    );
}

#[test]
fn headers_table() {
    let text = "\
# security for everything
/*
  X-Frame-Options: DENY
  X-Robots-Tag: noindex

/assets/*
  Cache-Control: public, max-age=31536000, immutable
  x-robots-tag: nofollow
/blog/:slug
\tLink: </style.css>; rel=preload
";
    let cfg = from_sources(None, None, None, Some(text)).unwrap();
    let h = |p: &str| headers_for(&cfg, p);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        h("/"),
        pairs(&[("X-Frame-Options", "DENY"), ("X-Robots-Tag", "noindex")])
    );
    assert_eq!(
        h("/assets/app.js"),
        pairs(&[
            ("X-Frame-Options", "DENY"),
            ("X-Robots-Tag", "noindex, nofollow"),
            ("Cache-Control", "public, max-age=31536000, immutable"),
        ])
    );
    assert_eq!(
        h("/blog/hello"),
        pairs(&[
            ("X-Frame-Options", "DENY"),
            ("X-Robots-Tag", "noindex"),
            ("Link", "</style.css>; rel=preload"),
        ])
    );
    assert!(headers_for(&RoutingConfig::default(), "/").is_empty());
}

#[test]
fn empty_config_is_a_no_op() {
    let cfg = from_sources(None, Some("{}"), Some("# nothing\n\n"), Some("")).unwrap();
    assert!(cfg.is_empty());
    assert_eq!(cfg, RoutingConfig::default());
    let called = std::cell::Cell::new(false);
    let d = route(&cfg, "/x", Some("a=1"), |_| {
        called.set(true);
        true
    });
    assert_eq!(d, Decision::Pass);
    assert!(
        !called.get(),
        "an empty config must not look at the filesystem"
    );
}

#[test]
fn exists_is_asked_at_most_once() {
    let cfg = from_sources(
        None,
        None,
        Some("/a/* /b 301\n/a/x /c 301\n/* /i.html 200\n"),
        None,
    )
    .unwrap();
    let calls = std::cell::Cell::new(0);
    let d = route(&cfg, "/a/x", None, |_| {
        calls.set(calls.get() + 1);
        true
    });
    assert_eq!(d, Decision::Pass);
    assert_eq!(calls.get(), 1);
}

/// Every kind of bad input, with the file, position and problem it names.
#[test]
fn errors_name_file_position_and_problem() {
    let many: String = (0..=MAX_RULES).map(|i| format!("/r{i} /x 301\n")).collect();
    let huge = " ".repeat(MAX_FILE_BYTES + 1);
    let long_source = format!("/{} /x 301\n", "a".repeat(MAX_SOURCE_BYTES));
    let long_dest = format!("/x /{} 301\n", "a".repeat(MAX_DESTINATION_BYTES));
    let captures: String = (0..=MAX_CAPTURES).map(|i| format!("/:p{i}")).collect();
    let many_captures = format!("{captures} /x 301\n");
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (Some("{ not json"), None, None, "vercel.json: invalid JSON"),
        (Some("[]"), None, None, "vercel.json: invalid JSON"),
        (
            Some(r#"{"redirects":[{"source":"/a","destination":"/b","statusCode":305}]}"#),
            None,
            None,
            "vercel.json redirects[0]: status 305 is not allowed for a redirect",
        ),
        (
            Some(
                r#"{"redirects":[{"source":"/a","destination":"/b"},{"source":"/c","destination":"/d","has":[{"type":"query","key":"x"}]}]}"#,
            ),
            None,
            None,
            "vercel.json redirects[1]: conditional routing",
        ),
        (
            Some(r#"{"rewrites":[{"source":"/a","destination":"/b","basePath":false}]}"#),
            None,
            None,
            "vercel.json rewrites[0]: invalid JSON: unknown field `basePath`",
        ),
        (
            Some(r#"{"routes":[{"src":"/a","dest":"/b"}]}"#),
            None,
            None,
            "vercel.json: the legacy `routes` array",
        ),
        (
            Some(r#"{"redirects":[{"source":"/m/:path((?!x).*)","destination":"/b"}]}"#),
            None,
            None,
            "redirects[0]: source: \":path((?!x).*)\": regular expressions are not supported",
        ),
        (
            Some(r#"{"rewrites":[{"source":"/a","destination":"ftp://x/y"}]}"#),
            None,
            None,
            "only http:// and https:// URLs",
        ),
        (
            Some(r#"{"redirects":[{"source":"/a","destination":"javascript:alert(1)"}]}"#),
            None,
            None,
            "must be a path starting with '/'",
        ),
        (
            Some(r#"{"headers":[{"source":"/a","headers":[{"key":"Bad Name","value":"x"}]}]}"#),
            None,
            None,
            "vercel.json headers[0]: header name \"Bad Name\" is not a valid HTTP token",
        ),
        (
            Some(
                r#"{"headers":[{"source":"/a","headers":[{"key":"X-A","value":"a\r\nSet-Cookie: x=y"}]}]}"#,
            ),
            None,
            None,
            "value of header \"X-A\" contains CR, LF, NUL",
        ),
        (
            Some(r#"{"headers":[{"source":"/a","headers":[]}]}"#),
            None,
            None,
            "needs 1..=64 headers",
        ),
        (Some(&huge), None, None, "vercel.json: the file is"),
        (
            None,
            Some("/a /b 301\n\n/c /d 418\n"),
            None,
            "_redirects line 3: status 418",
        ),
        (
            None,
            Some("/only-source\n"),
            None,
            "_redirects line 1: expected a destination",
        ),
        (
            None,
            Some("/a /b 301 Country=us\n"),
            None,
            "Country, Language, Role and Cookie conditions is not supported",
        ),
        (
            None,
            Some("/a /b 301 extra\n"),
            None,
            "unexpected \"extra\"",
        ),
        (None, Some("/a /b abc\n"), None, "expected a status"),
        (None, Some("/a b /c\n"), None, "neither a query condition"),
        (
            None,
            Some("/a x=1&y=2 /c\n"),
            None,
            "query condition \"x=1&y=2\"",
        ),
        (
            None,
            Some("https://blog.example.com/* https://example.com/:splat 301\n"),
            None,
            "domain-level source",
        ),
        (None, Some("a /b\n"), None, "must start with '/'"),
        (
            None,
            Some("/a /../etc/passwd 200\n"),
            None,
            "may not contain '.', '..'",
        ),
        (
            None,
            Some("/a //evil.example 301\n"),
            None,
            "must be a path starting with '/'",
        ),
        (
            None,
            Some("/a https://x.example/ 404\n"),
            None,
            "a 404 rewrite must name a page",
        ),
        (
            None,
            Some("/a https://user@x.example/ 200\n"),
            None,
            "no user info",
        ),
        (
            None,
            Some("/a /b#frag 200\n"),
            None,
            "cannot have a #fragment",
        ),
        (
            None,
            Some("/a/*/b /c 301\n"),
            None,
            "may only be the last segment",
        ),
        (
            None,
            Some("/:x/:x /c 301\n"),
            None,
            "capture name \"x\" is used twice",
        ),
        (
            None,
            Some(&long_source),
            None,
            "_redirects line 1: source: longer than",
        ),
        (None, Some(&long_dest), None, "destination \"/aaa"),
        (None, Some(&many_captures), None, "more than 16 captures"),
        (None, Some(&many), None, "rules in total; the limit is 2000"),
        (
            None,
            None,
            Some("  X-A: b\n"),
            "_headers line 1: a header line comes before any path line",
        ),
        (
            None,
            None,
            Some("/a\n  Content-Length: 5\n"),
            "_headers line 2: header \"Content-Length\" may not be set",
        ),
        (
            None,
            None,
            Some("/a\n  Transfer-Encoding: chunked\n"),
            "may not be set",
        ),
        (
            None,
            None,
            Some("/a\n  X-A: a\0b\n"),
            "_headers line 2: value of header \"X-A\"",
        ),
        (
            None,
            None,
            Some("/a\n  X-A: a\rb\n"),
            "_headers line 2: value of header \"X-A\"",
        ),
        (
            None,
            None,
            Some("/a\n  ! X-Powered-By\n"),
            "removing headers",
        ),
        (
            None,
            None,
            Some("/a\n  no colon here\n"),
            "expected 'Name: value'",
        ),
        (
            None,
            None,
            Some("/a\n/b\n  X-A: 1\n"),
            "_headers line 1: a header rule needs",
        ),
        (
            None,
            None,
            Some("https://x.pages.dev/*\n  X-A: 1\n"),
            "host-based path",
        ),
        (
            None,
            None,
            Some("nopath\n  X-A: 1\n"),
            "expected a path starting with '/'",
        ),
    ];
    let mut wrong = Vec::new();
    for (vercel, redirects, headers, needle) in cases {
        match from_sources(None, vercel, redirects, headers) {
            Ok(_) => wrong.push(format!("accepted; wanted {needle:?}")),
            Err(e) if !e.to_string().contains(needle) => {
                wrong.push(format!("{:?} lacks {needle:?}", e.to_string()))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn outpost_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "[[redirects]]\nsource = \"/a\"\ndestination = \"/b\"\nstatus = 200\n",
            "outpost.toml redirects[0]: status 200 is not allowed for a redirect",
        ),
        (
            "[[rewrites]]\nsource = \"/a\"\ndestination = \"/b\"\nstatus = 302\n",
            "outpost.toml rewrites[0]: status 302 is not allowed for a rewrite",
        ),
        (
            "[[headers]]\nsource = \"/a\"\nheaders = { \"Connection\" = \"close\" }\n",
            "outpost.toml headers[0]: header \"Connection\" may not be set",
        ),
        (
            "[[rewrites]]\nsource = \"a\"\ndestination = \"/b\"\n",
            "outpost.toml rewrites[0]: source: \"a\" must start with '/'",
        ),
    ];
    for (text, needle) in cases {
        let o: OutpostRouting = toml::from_str(text).unwrap();
        let err = from_sources(Some(o), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    // The struct's own fields are strict: a typo is a TOML error.
    assert!(toml::from_str::<OutpostRouting>(
        "[[redirects]]\nsource = \"/a\"\ndestination = \"/b\"\nstauts = 301\n"
    )
    .is_err());
}

#[test]
fn sources_are_normalised() {
    let cfg = from_sources(None, None, Some("/caf%C3%A9 /coffee 301\n"), None).unwrap();
    assert_eq!(cfg.rules[0].source, "/café");
    run_table(&cfg, &[], &[("/café", redirect(301, "/coffee"))]);
}

#[test]
fn manifest_validation_rechecks_rules() {
    let mut cfg = from_sources(None, None, Some("/a /b 301\n"), None).unwrap();
    assert!(cfg.validate().is_ok());
    cfg.rules[0].action = Action::Redirect { status: 200 };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("manifest routing rules[0]: status 200"),
        "{err}"
    );
    cfg.rules.clear();
    cfg.headers.push(HeaderRule {
        source: "/x".into(),
        headers: vec![("X-A".into(), "a\nb".into())],
    });
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.starts_with("manifest routing headers[0]"), "{err}");
}

#[test]
fn bincode_and_json_round_trip() {
    let cfg = from_sources(None, Some(VERCEL), Some(NETLIFY), Some("/*\n  X-A: 1\n")).unwrap();
    let bytes = bincode::serde::encode_to_vec(&cfg, bincode::config::standard()).unwrap();
    let (back, used): (RoutingConfig, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(back, cfg);
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<RoutingConfig>(&json).unwrap(), cfg);
}

/// No capture can send a redirect to another host: a relative destination
/// stays a path (no `//host`, no `/\host`), and an absolute destination's
/// host must be written out in full.
#[test]
fn captures_never_change_where_a_redirect_goes() {
    let rules = "\
/go/*      /:splat                      301
/store id=:id  /:id                     301
/ext/*     https://example.com/:splat   301
";
    let cfg = from_sources(None, None, Some(rules), None).unwrap();
    let cases = [
        ("/go//evil.example/x", redirect(301, "/evil.example/x")),
        ("/go/fine/path", redirect(301, "/fine/path")),
        ("/store?id=//evil.example", redirect(301, "/evil.example")),
        ("/store?id=/\\evil.example", redirect(301, "/evil.example")),
        ("/store?id=\\\\evil.example", redirect(301, "/evil.example")),
        ("/store?id=ok", redirect(301, "/ok")),
        (
            "/ext/@evil.example",
            redirect(301, "https://example.com/@evil.example"),
        ),
    ];
    run_table(&cfg, &[], &cases);
    for (d, ok) in [
        ("https://example.com:splat", false),
        ("https://:host/", false),
        ("https://ex$1.com/", false),
        ("https://example.com*/", false),
        ("https://example.com:8080/:splat", true),
        ("https://[::1]:8080/x", true),
        ("https://[::1/x", false),
        ("https://example.com:99999/", false),
    ] {
        let r = from_sources(None, None, Some(&format!("/a/* {d} 301\n")), None);
        assert_eq!(r.is_ok(), ok, "{d}: {r:?}");
        if !ok {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains(d.split('/').nth(2).unwrap_or(d)) || e.contains("destination"),
                "{e}"
            );
        }
    }
}

/// Header rules cannot make a response carry megabytes of headers: their
/// names and values are bounded in total, when a config is parsed and when
/// a manifest is checked, and evaluation stops at the bound whatever the
/// config.
#[test]
fn header_rules_are_bounded_in_total() {
    let value = "v".repeat(MAX_HEADER_VALUE_BYTES);
    let rule = |i: usize| format!("/*\n  X-Big-{i}: {value}\n");
    let fits: String = (0..4).map(rule).collect();
    let cfg = from_sources(None, None, None, Some(&fits)).unwrap();
    assert_eq!(headers_for(&cfg, "/x").len(), 4);
    let too_much: String = (0..20).map(rule).collect();
    let e = from_sources(None, None, None, Some(&too_much)).unwrap_err();
    assert!(matches!(e.problem, Problem::HeaderBytes(_)), "{e}");
    // A config that skipped the parser (a manifest) is refused too …
    let mut big = cfg.clone();
    for i in 4..20 {
        big.headers.push(HeaderRule {
            source: "/*".into(),
            headers: vec![(format!("X-Big-{i}"), value.clone())],
        });
    }
    let e = big.validate().unwrap_err();
    assert!(matches!(e.problem, Problem::HeaderBytes(_)), "{e}");
    // … and evaluating it anyway stops at the bound.
    let got: usize = headers_for(&big, "/x")
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    assert!(got <= MAX_HEADER_RULE_BYTES, "{got}");
}
