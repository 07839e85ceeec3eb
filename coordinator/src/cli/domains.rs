//! `coordinator domains …`: custom domains, with the DNS records to create.

use serde_json::json;

use super::client::Client;
use super::commands::print_json;
use crate::api::domains::Domain;

fn show(d: &Domain) {
    let target = match (&d.branch, &d.redirect_to) {
        (_, Some(to)) => format!("redirects {} to {to}", d.redirect_status.unwrap_or(308)),
        (Some(b), _) => format!("branch {b}"),
        _ => "production".into(),
    };
    println!("{}  →  {} ({target})", d.name, d.project);
    let state = match d.state.as_str() {
        "active" => "active: every edge serves it".to_string(),
        "pending" => "pending DNS: create the records below".to_string(),
        "ownership" => "ownership to prove: create the TXT record below".to_string(),
        "misconfigured" => format!(
            "misconfigured: found {}; create the records below instead",
            d.found.as_deref().unwrap_or("other records")
        ),
        other => other.to_string(),
    };
    println!("  state        {state}");
    // Certificates from an ACME CA are not issued yet (issue 23).
    println!("  https        not yet: custom domains are served over HTTP");
    if d.state != "active" {
        println!("  DNS records to create:");
        for r in d.records.iter().chain(d.ownership.iter()) {
            println!("    {:<6} {:<40} {}", r.kind, r.name, r.value);
        }
    }
}

pub async fn add(
    client: &Client,
    project: &str,
    name: &str,
    branch: Option<&str>,
    redirect: Option<(&str, u16)>,
    as_json: bool,
) -> anyhow::Result<()> {
    let d: Domain = client
        .post(
            &format!("/projects/{project}/domains"),
            &json!({
                "name": name,
                "branch": branch,
                "redirect_to": redirect.map(|r| r.0),
                "redirect_status": redirect.map(|r| r.1),
            }),
        )
        .await?;
    if as_json {
        print_json(&d);
    } else {
        show(&d);
    }
    Ok(())
}

pub async fn list(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let list: Vec<Domain> = client.get(&format!("/projects/{project}/domains")).await?;
    if as_json {
        print_json(&list);
    } else if list.is_empty() {
        println!("{project} has no custom domains");
    } else {
        for d in &list {
            println!(
                "{:<40} {:<14} {}",
                d.name,
                d.state,
                d.branch.as_deref().unwrap_or("production")
            );
        }
    }
    Ok(())
}

pub async fn inspect(
    client: &Client,
    name: &str,
    verify: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let path = format!("/domains/{name}");
    let d: Domain = if verify {
        client.post(&format!("{path}/verify"), &json!({})).await?
    } else {
        client.get(&path).await?
    };
    if as_json {
        print_json(&d);
    } else {
        show(&d);
    }
    Ok(())
}

pub async fn remove(client: &Client, name: &str) -> anyhow::Result<()> {
    client.delete(&format!("/domains/{name}")).await?;
    println!("removed {name}: no edge serves it any more");
    Ok(())
}
