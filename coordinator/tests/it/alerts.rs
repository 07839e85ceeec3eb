//! Alerts end to end (issue 25): an error-rate rule over a real edge's
//! traffic fires to a webhook receiver (signature verified as Standard
//! Webhooks does) and to a real SMTP server (aiosmtpd) within the rule's
//! window plus 10 s, and resolves when the errors stop; bad rules,
//! private targets and an SMTP server that is down are refused or
//! retried visibly.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::receiver::Receiver;
use test_support::smtp::Smtp;

use crate::support::*;

const HOST: &str = "shop.localhost";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn hit(edge: &Edge, path: &str) -> u16 {
    test_support::cluster::no_redirect_client()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", HOST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn post(api: &Api, path: &str, body: Value) -> (u16, Value) {
    let r = api
        .req(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The receiver's check of a Standard Webhooks signature.
fn verify(secret: &str, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat();
    header.split(' ').any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
    })
}

fn alerts_config(smtp_port: u16) -> String {
    format!(
        "[alerts]\nevaluate_every = \"1s\"\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\n\
         allow_private_targets = true\n\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\n\
         from = \"Outpost <alerts@outpost.test>\"\n"
    )
}

#[tokio::test]
async fn an_error_rate_alert_fires_to_a_signed_webhook_and_email_then_resolves() {
    if !test_support::smtp::available() {
        panic!("python3-aiosmtpd is not installed (.ci/run installs it)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&tmp.path().join("smtp"));
    let hook = Receiver::start().await;
    let coord = Coordinator::start(&tmp.path().join("coord"), Some(&alerts_config(smtp.port)));
    let api = coord.api();
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    write_site(&site, "shop");
    std::fs::create_dir_all(site.join("api")).unwrap();
    std::fs::copy(
        test_support::wasm_fixture("headers"),
        site.join("api/headers.wasm"),
    )
    .unwrap();
    coord.deploy(&site, "shop", true);
    eventually(60, "the site to be served", || async {
        (hit(&edge, "/").await == 200).then_some(())
    })
    .await;

    // Channels through the CLI, the rule through the CLI.
    let webhook: Value = serde_json::from_str(&coord.cli_ok(&[
        "channels",
        "add",
        "webhook",
        &hook.url("/alertmanager"),
        "--secret",
        SECRET,
        "--json",
    ]))
    .unwrap();
    let email: Value = serde_json::from_str(&coord.cli_ok(&[
        "channels",
        "add",
        "email",
        "ops@shop.test",
        "--json",
    ]))
    .unwrap();
    let (wid, eid) = (
        webhook["id"].as_str().unwrap(),
        email["id"].as_str().unwrap(),
    );
    assert_eq!(webhook["signed"], true);
    let listed = coord.cli_ok(&["channels", "ls"]);
    assert!(listed.contains(wid) && listed.contains(eid), "{listed}");
    let rule: Value = serde_json::from_str(&coord.cli_ok(&[
        "alerts",
        "add",
        "shop",
        "--type",
        "error_rate",
        "--threshold",
        "5",
        "--window",
        "1m",
        "--for",
        "0s",
        "--channel",
        wid,
        "--channel",
        eid,
        "--json",
    ]))
    .unwrap();
    assert_eq!(rule["kind"], "error_rate");
    assert_eq!(rule["window"], "1m");

    // Errors: half the requests answer 500.
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(hit(&edge, "/api/headers?status=500").await, 500);
        assert_eq!(hit(&edge, "/").await, 200);
    }
    let firing = eventually(150, "a firing webhook", || async {
        hook.received()
            .into_iter()
            .find(|r| r.json()["status"] == "firing")
    })
    .await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(60 + 10),
        "fired {took:?} after the errors began; the window is 1m"
    );
    let body = firing.json();
    assert_eq!(firing.method, "POST");
    assert_eq!(firing.path, "/alertmanager");
    assert_eq!(body["version"], "4", "{body}");
    let alert = &body["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "error_rate");
    assert_eq!(alert["labels"]["project"], "shop");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    // Ten 500s among the requests (and the warm-up's 200).
    let value: f64 = alert["annotations"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((40.0..=50.0).contains(&value), "{body}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("% of requests"),
        "{body}"
    );
    let (id, ts, sig) = (
        firing.header("webhook-id").unwrap(),
        firing.header("webhook-timestamp").unwrap(),
        firing.header("webhook-signature").unwrap(),
    );
    assert!(verify(SECRET, id, ts, &firing.body, sig), "signature {sig}");
    assert!(!verify(SECRET, id, ts, b"{\"tampered\":1}", sig));

    let mut mail = None;
    for _ in 0..60 {
        mail = smtp
            .messages()
            .into_iter()
            .find(|m| m.contains("[FIRING:1] error_rate shop"));
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mail = mail.unwrap_or_else(|| {
        panic!(
            "no alert e-mail; got {:?}; the coordinator's log: {}",
            smtp.messages(),
            std::fs::read_to_string(tmp.path().join("coord/coordinator.log")).unwrap_or_default()
        )
    });
    assert!(mail.contains("ops@shop.test"), "{mail}");
    assert!(mail.contains("alerts@outpost.test"), "{mail}");

    // The errors stop (only good requests now): it resolves.
    let resolved = eventually(200, "a resolved webhook", || async {
        let _ = hit(&edge, "/").await;
        hook.received()
            .into_iter()
            .find(|r| r.json()["status"] == "resolved")
    })
    .await;
    let a = &resolved.json()["alerts"][0];
    assert_eq!(a["status"], "resolved");
    assert_ne!(a["endsAt"], "0001-01-01T00:00:00Z");
    eventually(30, "the resolved e-mail", || async {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("[RESOLVED] error_rate shop"))
    })
    .await;
    // One firing and one resolved message each: no flood.
    let statuses: Vec<Value> = hook
        .received()
        .iter()
        .map(|r| r.json()["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("firing"), json!("resolved")]);

    // The delivery history has both, with the receiver's status.
    let history = api.get_json(&format!("/channels/{wid}/deliveries")).await;
    let sent: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "sent" && d["last_status"] == 200)
        .collect();
    assert_eq!(sent.len(), 2, "{history}");
    let rules = api.get_json("/projects/shop/alerts").await;
    assert_eq!(rules[0]["alerts"][0]["state"], "resolved", "{rules}");

    // Instance-wide rules over real readings: every node's disk and
    // memory, the coordinator's disk, the node certificates (30 days, so
    // under a 365-day threshold; the CA's ten years are not).
    let mut instance = Vec::new();
    for (kind, threshold) in [
        ("disk_space", 1.0),
        ("high_memory", 1.0),
        ("ssl_expiry", 365.0),
    ] {
        let (s, v) = post(
            &api,
            "/alerts",
            json!({"kind": kind, "threshold": threshold, "channels": [wid]}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        instance.push((kind, v["id"].as_str().unwrap().to_string()));
    }
    // And a project's function errors (the ten 500s above were reported
    // by the edge as they happened).
    let (s, v) = post(
        &api,
        "/projects/shop/alerts",
        json!({"kind": "function_error", "threshold": 0, "window": "10m", "channels": [wid]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    instance.push(("function_error", v["id"].as_str().unwrap().to_string()));
    for (kind, id) in &instance {
        let got = eventually(30, &format!("the {kind} alert"), || async {
            hook.received()
                .into_iter()
                .map(|r| r.json())
                .find(|b| b["groupKey"] == format!("rule:{id}") && b["status"] == "firing")
        })
        .await;
        let series: Vec<String> = got["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"]["series"].as_str().unwrap().to_string())
            .collect();
        match *kind {
            "disk_space" => {
                assert!(series.contains(&"coordinator".to_string()), "{got}");
                assert!(series.len() >= 2, "the edge's disk too: {got}");
            }
            "high_memory" => assert!(got["alerts"][0]["labels"]["node"].is_string(), "{got}"),
            "ssl_expiry" => {
                assert!(series.iter().any(|s| s.starts_with("node ")), "{got}");
                assert!(!series.contains(&"cluster CA".to_string()), "{got}");
            }
            _ => assert_eq!(series, ["project"], "{got}"),
        }
    }

    // A Slack-compatible channel gets its `{"text": …}`.
    let (s, slack) = post(
        &api,
        "/channels",
        json!({"kind": "slack", "target": hook.url("/slack")}),
    )
    .await;
    assert_eq!(s, 201, "{slack}");
    let (s, _) = post(
        &api,
        &format!("/channels/{}/test", slack["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(s, 202);
    let text = eventually(30, "the Slack message", || async {
        hook.received()
            .into_iter()
            .find(|r| r.path == "/slack")
            .map(|r| r.json())
    })
    .await;
    assert!(
        text["text"]
            .as_str()
            .unwrap()
            .contains("this channel works"),
        "{text}"
    );

    // "Send test" reaches the receiver, signed.
    let (s, d) = post(&api, &format!("/channels/{wid}/test"), json!({})).await;
    assert_eq!(s, 202, "{d}");
    let test = eventually(30, "the test message", || async {
        hook.received()
            .into_iter()
            .find(|r| r.json()["groupKey"] == "test")
    })
    .await;
    assert!(verify(
        SECRET,
        test.header("webhook-id").unwrap(),
        test.header("webhook-timestamp").unwrap(),
        &test.body,
        test.header("webhook-signature").unwrap()
    ));
}

#[tokio::test]
async fn bad_rules_private_targets_and_smtp_down() {
    let tmp = tempfile::tempdir().unwrap();
    // An SMTP port nothing listens on.
    let dead = test_support::dns::free_port();
    let config = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {dead}\nsecurity = \"none\"\nfrom = \"alerts@outpost.test\"\n"
    );
    let coord = Coordinator::start(&tmp.path().join("coord"), Some(&config));
    let api = coord.api();
    api.create_project("shop").await;

    // Private and plain-http targets are refused (the operator has not
    // allowed them).
    for (target, says) in [
        ("http://127.0.0.1:9/hook", "https"),
        ("https://127.0.0.1/hook", "internal"),
        ("https://10.0.0.7/hook", "internal"),
        ("https://169.254.169.254/latest/meta-data", "internal"),
        ("https://[::1]/x", "internal"),
        ("https://localhost/x", "internal"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("gopher://hooks.example.com/", "scheme"),
    ] {
        let (s, v) = post(
            &api,
            "/channels",
            json!({"kind": "webhook", "target": target}),
        )
        .await;
        assert_eq!(s, 400, "{target}: {v}");
        assert_eq!(v["error"]["code"], "invalid_target", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{target}: {v}"
        );
    }
    for (body, code) in [
        (
            json!({"kind": "pager", "target": "https://x.example/"}),
            "invalid_kind",
        ),
        (
            json!({"kind": "email", "target": "not-an-address"}),
            "invalid_target",
        ),
        (
            json!({"kind": "webhook", "target": "https://x.example/", "secret": "short"}),
            "invalid_secret",
        ),
        (
            json!({"kind": "email", "target": "a@b.test", "name": ""}),
            "invalid_name",
        ),
    ] {
        let (s, v) = post(&api, "/channels", body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, v) = post(
        &api,
        "/channels",
        json!({"kind": "email", "target": "ops@shop.test"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let email = v["id"].as_str().unwrap().to_string();

    // Bad rules: unknown metric, negative window, a threshold out of
    // range, a per-project type made instance-wide, no channel, a
    // channel that does not exist.
    for (path, body, code) in [
        (
            "/projects/shop/alerts",
            json!({"kind": "cpu_temperature", "channels": [email]}),
            "invalid_kind",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "error_rate", "window": "-1m", "channels": [email]}),
            "invalid_window",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "error_rate", "window": "30s", "channels": [email]}),
            "invalid_rule",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "error_rate", "threshold": 150, "channels": [email]}),
            "invalid_rule",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "error_rate", "for": "soon", "channels": [email]}),
            "invalid_for",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "high_memory", "channels": [email]}),
            "invalid_rule",
        ),
        (
            "/alerts",
            json!({"kind": "error_rate", "channels": [email]}),
            "invalid_rule",
        ),
        (
            "/projects/shop/alerts",
            json!({"kind": "error_rate", "channels": []}),
            "invalid_channels",
        ),
    ] {
        let (s, v) = post(&api, path, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, v) = post(
        &api,
        "/projects/shop/alerts",
        json!({"kind": "error_rate", "channels": ["nosuchchannel"]}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = post(
        &api,
        "/projects/shop/alerts",
        json!({"kind": "error_rate", "bogus": 1, "channels": [email]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // The CLI names a bad type too.
    let out = coord.cli(&[
        "alerts",
        "add",
        "shop",
        "--type",
        "cpu",
        "--channel",
        &email,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error_rate"),
        "{out:?}"
    );
    // Instance-wide rules are the instance owner's (the admin token is).
    let (s, v) = post(
        &api,
        "/alerts",
        json!({"kind": "disk_space", "threshold": 99.5, "channels": [email]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(api.get_json("/alerts").await.as_array().unwrap().len(), 1);

    // Drains: a private endpoint, unknown sources, a sample rate out of
    // range, a short secret.
    for (body, code) in [
        (json!({"url": "https://10.1.1.1/drain"}), "invalid_url"),
        (json!({"url": "http://drains.example.com/"}), "invalid_url"),
        (
            json!({"url": "https://drains.example.com/", "sources": ["stdout"]}),
            "invalid_sources",
        ),
        (
            json!({"url": "https://drains.example.com/", "sources": []}),
            "invalid_sources",
        ),
        (
            json!({"url": "https://drains.example.com/", "sample_rate": 0.0}),
            "invalid_sample_rate",
        ),
        (
            json!({"url": "https://drains.example.com/", "sample_rate": 1.5}),
            "invalid_sample_rate",
        ),
        (
            json!({"url": "https://drains.example.com/", "secret": "short"}),
            "invalid_secret",
        ),
    ] {
        let (s, v) = post(&api, "/projects/shop/drains", body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, v) = post(
        &api,
        "/projects/shop/drains",
        json!({"url": "https://drains.example.com/x", "sources": ["build"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["secret"].as_str().unwrap().len() >= 32, "shown once: {v}");
    let shown = api
        .get_json(&format!("/drains/{}", v["id"].as_str().unwrap()))
        .await;
    assert!(shown.get("secret").is_none(), "{shown}");

    // SMTP is down: the test message is retried, and the failure shows.
    let (s, _) = post(&api, &format!("/channels/{email}/test"), json!({})).await;
    assert_eq!(s, 202);
    let d = eventually(30, "a failed attempt in the history", || async {
        let h = api.get_json(&format!("/channels/{email}/deliveries")).await;
        h.as_array()
            .and_then(|a| a.first().cloned())
            .filter(|d| d["attempts"] == 1)
    })
    .await;
    assert_eq!(d["status"], "pending", "retried later: {d}");
    assert!(d["next_at"].as_i64().unwrap() > d["created_at"].as_i64().unwrap());
    assert!(!d["last_error"].as_str().unwrap_or("").is_empty(), "{d}");
    let out = coord.cli_ok(&["channels", "deliveries", &email]);
    assert!(out.contains("pending"), "{out}");
}
