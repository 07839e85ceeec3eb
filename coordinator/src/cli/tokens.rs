//! `coordinator token …`: API tokens for CI and scripts.

use serde_json::json;

use super::client::Client;
use super::commands::{ago, print_json};
use crate::app::accounts::{NewToken, TokenView};

pub async fn create(
    client: &Client,
    name: &str,
    scope: &str,
    expires_days: Option<i64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let t: NewToken = client
        .post(
            "/tokens",
            &json!({ "name": name, "scope": scope, "expires_in_days": expires_days }),
        )
        .await?;
    if as_json {
        print_json(&t);
    } else {
        println!("{}", t.secret);
        eprintln!(
            "token {} ({}), scope {}: shown once; set OUTPOST_TOKEN to use it",
            t.view.token.id, name, t.view.scope
        );
    }
    Ok(())
}

pub async fn list(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let tokens: Vec<TokenView> = client.get("/tokens").await?;
    if as_json {
        print_json(&tokens);
        return Ok(());
    }
    println!(
        "{:<14} {:<24} {:<22} {:<10} {:<10} STATUS",
        "ID", "NAME", "SCOPE", "CREATED", "LAST USED"
    );
    for t in &tokens {
        let (scope, t) = (&t.scope, &t.token);
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= crate::store::now_ms()) {
            "expired"
        } else {
            "active"
        };
        println!(
            "{:<14} {:<24} {:<22} {:<10} {:<10} {status}",
            t.id,
            t.name,
            scope,
            ago(Some(t.created_at)),
            ago(t.last_used_at),
        );
    }
    Ok(())
}

pub async fn revoke(client: &Client, id: &str) -> anyhow::Result<()> {
    client.delete(&format!("/tokens/{id}")).await?;
    eprintln!("revoked token {id}");
    Ok(())
}
