//! `coordinator domains …`: custom domains, with the DNS records to create.

use serde_json::json;

use super::client::Client;
use super::commands::print_json;
use crate::api::domains::{Domain, Hsts};

/// `domains add`'s arguments.
pub struct Add<'a> {
    pub project: &'a str,
    pub name: &'a str,
    pub branch: Option<&'a str>,
    pub redirect: Option<(&'a str, u16)>,
    pub https_redirect: bool,
    pub hsts: Option<Hsts>,
}

fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn certificate(d: &Domain) -> String {
    let c = &d.certificate;
    let until = c
        .not_after
        .map(|t| format!(" until {}", when(t * 1000)))
        .unwrap_or_default();
    match c.state.as_str() {
        "none" => "none: this coordinator issues no certificates ([acme] enabled = false)".into(),
        "waiting" => "waiting for the domain's DNS".into(),
        "pending" => "pending: the CA will be asked shortly".into(),
        "issuing" => format!(
            "issuing ({})",
            c.challenge.as_deref().unwrap_or("challenge")
        ),
        "active" => format!(
            "active{until}, renewing from {}",
            c.renew_at.map(when).unwrap_or_default()
        ),
        "renewing" => format!("renewing (the current one serves{until})"),
        "failed" => format!(
            "failed ({} in a row){}; {}\n               the CA said: {}",
            c.failures,
            if until.is_empty() {
                String::new()
            } else {
                format!(", the current one serves{until}")
            },
            match c.next_retry_at {
                Some(t) => format!("next try {}", when(t)),
                None => "retrying stopped after 30 days: `domains verify` tries again".into(),
            },
            c.error.as_deref().unwrap_or("(nothing)")
        ),
        other => other.to_string(),
    }
}

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
    println!("  certificate  {}", certificate(d));
    println!(
        "  https        {}{}",
        if d.https_redirect {
            "HTTP redirects to HTTPS once the certificate is active"
        } else {
            "HTTP is served as is"
        },
        d.hsts
            .as_ref()
            .map(|h| format!("; HSTS max-age={}", h.max_age))
            .unwrap_or_default()
    );
    if d.state != "active" {
        println!("  DNS records to create:");
        for r in d.records.iter().chain(d.ownership.iter()) {
            println!("    {:<6} {:<40} {}", r.kind, r.name, r.value);
        }
    }
}

pub async fn add(client: &Client, a: &Add<'_>, as_json: bool) -> anyhow::Result<()> {
    let d: Domain = client
        .post(
            &format!("/projects/{}/domains", a.project),
            &json!({
                "name": a.name,
                "branch": a.branch,
                "redirect_to": a.redirect.map(|r| r.0),
                "redirect_status": a.redirect.map(|r| r.1),
                "https_redirect": a.https_redirect,
                "hsts": a.hsts,
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

pub async fn set_https(
    client: &Client,
    name: &str,
    redirect: Option<bool>,
    hsts: Option<Option<Hsts>>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut body = serde_json::Map::new();
    if let Some(r) = redirect {
        body.insert("https_redirect".into(), json!(r));
    }
    if let Some(h) = hsts {
        body.insert("hsts".into(), json!(h));
    }
    let d: Domain = client.patch(&format!("/domains/{name}"), &body).await?;
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
                "{:<40} {:<14} {:<10} {}",
                d.name,
                d.state,
                d.certificate.state,
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
