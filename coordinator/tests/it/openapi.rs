//! `/api/v1/openapi.json` describes every route the API serves, and every
//! route it describes exists and guards itself.

use crate::support::{http_client, Coordinator};

#[tokio::test]
async fn the_openapi_document_matches_the_served_routes() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), None);
    let http = http_client();
    let res = http
        .get(format!("{}/api/v1/openapi.json", coord.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "served without credentials");
    let doc: serde_json::Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    for scheme in ["bearer", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    assert!(doc["components"]["schemas"]["CreateToken"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/projects",
        "/projects/{project}/deployments",
        "/deployments/{id}/events",
        "/tokens",
        "/teams/{team}/invitations",
        "/audit",
        "/auth/login",
        "/blobs/{hash}",
        "/nodes",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    // Every documented operation is served: without credentials it answers
    // 401 (public ones: anything but "no such route"), never the 404 route
    // fallback or 405.
    let public = [
        "/health",
        "/auth/signup",
        "/auth/login",
        "/auth/logout",
        "/hooks/git/{project}",
    ];
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}: summary"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path}: tags"
            );
            let url = format!(
                "{}/api/v1{}",
                coord.url(),
                path.replace("{project}", "nope")
                    .replace("{id}", "nope")
                    .replace("{team}", "nope")
                    .replace("{user}", "nope")
                    .replace("{name}", "NOPE")
                    .replace("{token}", "nope")
                    .replace("{hash}", &"0".repeat(64))
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = http
                .request(m, &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not served");
            if public.contains(&path.as_str()) {
                assert!(
                    !(status == 404 && body.contains("route not found")),
                    "{method} {path}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status, 401,
                    "{method} {path} must demand credentials: {body}"
                );
            }
        }
    }
    assert!(operations >= 49, "only {operations} operations documented");
}
