//! `coordinator token …`: API tokens for CI and scripts.

use serde_json::{json, Value};

use super::client::Client;
use super::commands::ago;

pub async fn create(
    client: &Client,
    name: &str,
    scope: &str,
    expires_days: Option<i64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let t: Value = client
        .post(
            "/tokens",
            &json!({ "name": name, "scope": scope, "expires_in_days": expires_days }),
        )
        .await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        println!("{}", t["secret"].as_str().unwrap_or(""));
        eprintln!(
            "token {} ({}), scope {}: shown once; set OUTPOST_TOKEN to use it",
            t["id"].as_str().unwrap_or(""),
            name,
            t["scope"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn list(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let tokens: Value = client.get("/tokens").await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<24} {:<22} {:<10} {:<10} STATUS",
        "ID", "NAME", "SCOPE", "CREATED", "LAST USED"
    );
    for t in tokens.as_array().into_iter().flatten() {
        let status = if t["revoked_at"].is_i64() {
            "revoked"
        } else if t["expires_at"]
            .as_i64()
            .is_some_and(|e| e <= crate::store::now_ms())
        {
            "expired"
        } else {
            "active"
        };
        println!(
            "{:<14} {:<24} {:<22} {:<10} {:<10} {status}",
            t["id"].as_str().unwrap_or(""),
            t["name"].as_str().unwrap_or(""),
            t["scope"].as_str().unwrap_or(""),
            ago(t["created_at"].as_i64()),
            ago(t["last_used_at"].as_i64()),
        );
    }
    Ok(())
}

pub async fn revoke(client: &Client, id: &str) -> anyhow::Result<()> {
    client.delete(&format!("/tokens/{id}")).await?;
    eprintln!("revoked token {id}");
    Ok(())
}
