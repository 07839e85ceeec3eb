//! Sending one notification: an HTTP POST (webhook, Slack) or an e-mail.
//! Every address an HTTP target resolves to is checked before the
//! connection is made and the connection is pinned to the checked
//! address, so a name that resolves to an internal address (now, or by
//! the time we connect) cannot make the coordinator call the operator's
//! internal services. Bounded: 10 s per attempt, answers read up to 4 KiB.

use std::net::SocketAddr;
use std::time::Duration;

use super::config::{SmtpConfig, SmtpSecurity};

pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer kept for the delivery history.
const ANSWER_KEPT: usize = 4096;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// The HTTP status (SMTP's reply code for e-mail), when one came.
    pub status: Option<i64>,
    pub error: Option<String>,
}

impl Outcome {
    fn failed(e: impl std::fmt::Display) -> Outcome {
        Outcome {
            ok: false,
            status: None,
            error: Some(protocol::errors::bounded(&e.to_string(), 1000)),
        }
    }
}

/// Where deliveries may go: internal addresses or not, and the extra
/// certificate authorities trusted beside the public roots.
#[derive(Clone, Default)]
pub struct Targets {
    pub allow_private: bool,
    pub roots: Vec<reqwest::Certificate>,
}

/// Why a URL may not be a target.
pub fn check_url(url: &str, allow_private: bool) -> Result<url::Url, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    let u = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("the URL must be https".into()),
        s => return Err(format!("scheme {s:?}: use https")),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("the URL must not carry credentials; use a signing secret".into());
    }
    let Some(host) = u.host() else {
        return Err("the URL has no host".into());
    };
    if !allow_private {
        let ip = match host {
            url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.');
                if d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal") {
                    return Err(format!("{d} is an internal host"));
                }
                None
            }
        };
        if ip.is_some_and(protocol::addr::is_restricted) {
            return Err(format!(
                "{host} is an internal address (the operator may allow private targets: [alerts] allow_private_targets)"
            ));
        }
    }
    Ok(u)
}

/// Resolves a target's host and picks an address it may be called at.
async fn pin(u: &url::Url, allow_private: bool) -> Result<SocketAddr, String> {
    let host = u.host_str().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = u.port_or_known_default().ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| protocol::addr::is_restricted(a.ip())) {
            return Err(format!(
                "{host} resolves to the internal address {}",
                a.ip()
            ));
        }
    }
    Ok(addrs[0])
}

/// POSTs a body of `content_type` with extra headers.
pub async fn post(
    url: &str,
    targets: &Targets,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Outcome {
    let allow_private = targets.allow_private;
    let u = match check_url(url, allow_private) {
        Ok(u) => u,
        Err(e) => return Outcome::failed(e),
    };
    let addr = match pin(&u, allow_private).await {
        Ok(a) => a,
        Err(e) => return Outcome::failed(e),
    };
    let host = u.host_str().unwrap_or("").to_string();
    let mut builder = reqwest::Client::builder();
    for root in &targets.roots {
        builder = builder.add_root_certificate(root.clone());
    }
    let client = match builder
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .user_agent(concat!("outpost-alerts/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e),
    };
    let mut req = client
        .post(u)
        .header("content-type", content_type)
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut kept = Vec::new();
            let mut resp = resp;
            while let Ok(Some(chunk)) = resp.chunk().await {
                kept.extend_from_slice(&chunk[..chunk.len().min(ANSWER_KEPT - kept.len())]);
                if kept.len() >= ANSWER_KEPT {
                    break;
                }
            }
            let ok = status.is_success();
            Outcome {
                ok,
                status: Some(i64::from(status.as_u16())),
                error: (!ok).then(|| {
                    format!(
                        "answered {status}: {}",
                        String::from_utf8_lossy(&kept)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )
                }),
            }
        }
        Err(e) => Outcome::failed(if e.is_timeout() {
            "no answer within 10 s".to_string()
        } else {
            format!("{e}")
        }),
    }
}

/// Sends an e-mail through `[smtp]`.
pub async fn email(smtp: Option<&SmtpConfig>, to: &str, subject: &str, text: &str) -> Outcome {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let Some(smtp) = smtp else {
        return Outcome::failed("no [smtp] server is configured on the coordinator");
    };
    let message = (|| -> Result<Message, String> {
        Message::builder()
            .from(smtp.from.parse().map_err(|e| format!("from: {e}"))?)
            .to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| e.to_string())
    })();
    let message = match message {
        Ok(m) => m,
        Err(e) => return Outcome::failed(e),
    };
    let builder = match smtp.security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
    };
    let mut builder = match builder {
        Ok(b) => b.port(smtp.port).timeout(Some(TIMEOUT)),
        Err(e) => return Outcome::failed(e),
    };
    let password = smtp
        .password
        .clone()
        .or_else(|| std::env::var("OUTPOST_SMTP_PASSWORD").ok());
    if let (Some(user), Some(pass)) = (&smtp.username, password) {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            pass,
        ));
    }
    match builder.build().send(message).await {
        Ok(r) => Outcome {
            ok: r.is_positive(),
            status: Some(i64::from(u16::from(r.code()))),
            error: (!r.is_positive()).then(|| r.message().collect::<Vec<_>>().join(" ")),
        },
        Err(e) => Outcome {
            ok: false,
            status: e.status().map(|c| i64::from(u16::from(c))),
            error: Some(protocol::errors::bounded(&format!("{e}"), 1000)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked() {
        for ok in ["https://hooks.example.com/x", "https://203.0.113.9/hook"] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        let bad = [
            ("http://hooks.example.com/x", "https"),
            ("ftp://example.com/", "scheme"),
            ("https://127.0.0.1/", "internal"),
            ("https://10.1.2.3/", "internal"),
            ("https://169.254.169.254/latest", "internal"),
            ("https://[::1]/", "internal"),
            ("https://localhost/", "internal"),
            ("https://metadata.google.internal/", "internal"),
            ("https://user:pw@example.com/", "credentials"),
            ("not a url", "not a URL"),
        ];
        for (url, says) in bad {
            let e = check_url(url, false).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
        // The operator (or dev mode) may allow them.
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(3000)), false).is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_inside_is_refused_at_send_time() {
        // What passes the URL check is checked again once resolved.
        let u = url::Url::parse("https://localhost:9/x").unwrap();
        let e = pin(&u, false).await.unwrap_err();
        assert!(e.contains("internal address"), "{e}");
        assert!(pin(&u, true).await.is_ok());
        let out = post(
            "https://localhost.:9/x",
            &Targets::default(),
            "application/json",
            &[],
            b"{}",
        )
        .await;
        assert!(!out.ok && out.error.unwrap().contains("internal"));
    }
}
