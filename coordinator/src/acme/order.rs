//! One attempt at a domain's certificate: resume the recorded order or
//! place one, answer its challenges through the edges, finalize with a new
//! key, store the certificate (every edge gets it in the same
//! transaction), and pick the renewal time (the CA's ARI window, else a
//! third of the lifetime left).

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};
use protocol::acme::HostChallenge;
use rustls::pki_types::CertificateDer;
use serde_json::json;

use super::{schedule, AcmeService};
use crate::store::{now_ms, Issued, OrderStarted};

/// Waiting for the CA to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));
/// How long edges get to hold a challenge before the CA is told to look.
const PROPAGATION: Duration = Duration::from_secs(30);
/// Edges not heard from for this long are not waited for.
const LIVE_EDGE: Duration = Duration::from_secs(60);

/// Why an attempt failed, as the status shows it.
struct Failure {
    message: String,
    rate_limited: bool,
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Failure {
        match e {
            instant_acme::Error::Api(p) => problem(&p),
            other => Failure {
                message: other.to_string(),
                rate_limited: false,
            },
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure {
            message: format!("{e:#}"),
            rate_limited: false,
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        anyhow::Error::from(e).into()
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        rate_limited: false,
    }
}

/// The CA's problem document as the user sees it: its type, detail,
/// status and subproblems, verbatim.
fn problem(p: &instant_acme::Problem) -> Failure {
    let mut doc = json!({
        "type": p.r#type,
        "detail": p.detail,
        "status": p.status,
    });
    if !p.subproblems.is_empty() {
        doc["subproblems"] = p
            .subproblems
            .iter()
            .map(|s| {
                json!({
                    "type": s.r#type,
                    "detail": s.detail,
                    "identifier": s.identifier.as_ref().map(|i| match i {
                        Identifier::Dns(d) => d.clone(),
                        other => format!("{other:?}"),
                    }),
                })
            })
            .collect();
    }
    Failure {
        message: doc.to_string(),
        rate_limited: p
            .r#type
            .as_deref()
            .is_some_and(|t| t.ends_with(":rateLimited")),
    }
}

/// DNS-01 records an attempt put in place: (name, value).
pub(super) type Presented = std::sync::Mutex<Vec<(String, String)>>;

/// Works `name`'s certificate once; a failure is recorded with its retry.
pub(super) async fn work(svc: &AcmeService, name: &str, presented: &Presented) {
    if let Err(f) = attempt(svc, name, presented).await {
        failed(svc, name, &f.message, f.rate_limited).await;
    }
}

pub(super) async fn failed(svc: &AcmeService, name: &str, message: &str, rate_limited: bool) {
    let row = svc.store.domain_cert(name).await.ok().flatten();
    let failures = row.as_ref().map_or(0, |r| r.failures) + 1;
    let now = now_ms();
    let give_up = schedule::give_up(row.as_ref().and_then(|r| r.failing_since), now);
    let next = now + schedule::backoff(failures, rate_limited).as_millis() as i64;
    tracing::warn!(domain = %name, failures, error = %message, give_up, "certificate order failed");
    if let Err(e) = svc
        .store
        .record_cert_failure(name, message, next, give_up)
        .await
    {
        tracing::warn!(domain = %name, error = %e, "recording a failed order");
    }
    // Filed under the domain's project (the platform's own wildcard has none).
    if let Ok(Some(d)) = svc.store.domain(name).await {
        let event = crate::app::errors::coordinator_event(
            &d.project_id,
            None,
            crate::errors::Source::Certificate,
            "order_failed",
            name,
            message,
            serde_json::json!({ "domain": name, "failures": failures, "next_attempt": next, "gave_up": give_up }),
        );
        crate::app::errors::record_in(&svc.store, event).await;
    }
}

async fn attempt(svc: &AcmeService, name: &str, presented: &Presented) -> Result<(), Failure> {
    let Some(row) = svc.store.domain_cert(name).await? else {
        return Ok(());
    };
    // A custom domain while it is served, or the platform's own wildcard.
    let team = if svc.base_wildcard.as_deref() == Some(name) {
        None
    } else {
        match svc.store.domain(name).await? {
            Some(d) if d.serves() => Some(d.team_id),
            _ => return Ok(()),
        }
    };
    let renewing = row.chain_pem.is_some();
    let directory = match (
        &row.order_url,
        &row.order_directory,
        &svc.config.fallback_directory,
    ) {
        (Some(_), Some(d), _) => d.clone(),
        (_, _, Some(f)) if schedule::use_fallback(row.failures) => f.clone(),
        _ => svc.config.directory.clone(),
    };
    let account = svc.account(&directory).await?;
    // A wildcard can only be proven through DNS.
    let challenge = if name.starts_with("*.") {
        "dns-01".to_string()
    } else {
        schedule::challenge_for(&svc.config.challenges, row.failures).to_string()
    };

    let resumed = match (&row.order_url, &row.order_key_enc) {
        (Some(url), Some(key)) if row.order_directory.as_deref() == Some(directory.as_str()) => {
            match account.order(url.clone()).await {
                Ok(mut o) => match svc.secrets.open(key) {
                    Ok(key) if o.state().status != OrderStatus::Invalid => {
                        tracing::info!(domain = %name, "resuming the order in flight");
                        svc.store.record_challenge(name, &challenge).await?;
                        Some((o, key))
                    }
                    // Invalid, or its key no longer opens: a new order.
                    _ => None,
                },
                // The CA no longer knows it: a new order.
                Err(instant_acme::Error::Api(p)) if p.status == Some(404) => None,
                // The CA out of reach: the same order, later (a second one
                // now could be a second certificate).
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let (mut order, key_pem) = match resumed {
        Some(r) => r,
        None => place(svc, &account, name, &row, &directory, &challenge, renewing).await?,
    };
    if order.state().status == OrderStatus::Pending {
        answer(svc, &account, &mut order, name, &challenge, presented).await?;
        let status = order.poll_ready(&POLL).await;
        if !matches!(status, Ok(OrderStatus::Ready)) {
            let why = match status {
                Err(e) => Failure::from(e),
                Ok(s) => fail(format!("the order is {s:?}")),
            };
            let why = challenge_problem(&mut order).await.unwrap_or(why);
            svc.store.clear_order(name).await?;
            return Err(why);
        }
    }
    if order.state().status == OrderStatus::Ready {
        let finalized = async {
            let key = rcgen::KeyPair::from_pem(&key_pem).map_err(anyhow::Error::from)?;
            let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
                .map_err(anyhow::Error::from)?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            let csr = params
                .serialize_request(&key)
                .map_err(anyhow::Error::from)?;
            order.finalize_csr(csr.der()).await?;
            Ok::<(), Failure>(())
        }
        .await;
        if let Err(f) = finalized {
            // Whatever failed here would fail again on this order.
            svc.store.clear_order(name).await?;
            return Err(f);
        }
    }
    let chain = match order.poll_certificate(&POLL).await {
        Ok(c) => c,
        Err(e) => {
            svc.store.clear_order(name).await?;
            return Err(e.into());
        }
    };
    let issued = issued(svc, &account, &directory, chain, &key_pem).await?;
    let not_after = issued.not_after;
    if !svc.store.record_issued(name, &issued).await? {
        return Ok(());
    }
    tracing::info!(domain = %name, not_after, renewing, "certificate issued");
    crate::accounts::audit::record_as(
        &svc.store,
        None,
        "acme",
        "",
        team.as_deref(),
        if renewing {
            "domain.certificate.renew"
        } else {
            "domain.certificate.issue"
        },
        name,
        json!({ "issuer": directory, "not_after": not_after, "challenge": challenge }),
    )
    .await;
    Ok(())
}

/// Places a new order, recording it (URL, new key) before anything else.
async fn place(
    svc: &AcmeService,
    account: &Account,
    name: &str,
    row: &crate::store::CertRow,
    directory: &str,
    challenge: &str,
    renewing: bool,
) -> Result<(Order, String), Failure> {
    let ids = [Identifier::Dns(name.to_string())];
    let replaces = row.cert_id.as_deref().filter(|_| renewing).and_then(|id| {
        let quoted = json!(id).to_string();
        serde_json::from_str::<CertificateIdentifier>(&quoted)
            .ok()
            .map(CertificateIdentifier::into_owned)
    });
    let order = match replaces {
        Some(r) => match account.new_order(&NewOrder::new(&ids).replaces(r)).await {
            Ok(o) => o,
            // No ARI at this CA, or it will not take the replacement:
            // an ordinary order does.
            Err(_) => account.new_order(&NewOrder::new(&ids)).await?,
        },
        None => account.new_order(&NewOrder::new(&ids)).await?,
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(anyhow::Error::from)?;
    let key_pem = key.serialize_pem();
    svc.store
        .record_order(
            name,
            &OrderStarted {
                url: order.url(),
                directory,
                key_enc: &svc.secrets.seal(&key_pem),
                challenge,
                renewing,
                busy_for_ms: super::ORDER_TIMEOUT.as_millis() as i64,
            },
        )
        .await?;
    tracing::info!(domain = %name, challenge, directory, "certificate order placed");
    Ok((order, key_pem))
}

pub(super) fn take(presented: &Presented) -> Vec<(String, String)> {
    std::mem::take(&mut *presented.lock().unwrap())
}

/// Removes the DNS-01 records an attempt put in place.
pub(super) async fn cleanup(svc: &AcmeService, presented: &[(String, String)]) {
    let Some(dns) = &svc.dns01 else {
        return;
    };
    for (fqdn, value) in presented {
        if let Err(e) = dns.cleanup(fqdn, value).await {
            tracing::warn!(%fqdn, error = %format!("{e:#}"), "removing a DNS-01 record");
        }
    }
}

/// Makes every pending authorization's challenge answerable (on every
/// edge, or in DNS), then tells the CA to look. DNS-01 records put in
/// place are pushed to `presented`, for the cleanup.
async fn answer(
    svc: &AcmeService,
    account: &Account,
    order: &mut Order,
    name: &str,
    challenge: &str,
    presented: &Presented,
) -> Result<(), Failure> {
    let published = svc.published_thumbprint().await;
    let stateless = published.as_deref() == Some(account.key_thumbprint());
    let ty = match challenge {
        "tls-alpn-01" => ChallengeType::TlsAlpn01,
        "dns-01" => ChallengeType::Dns01,
        _ => ChallengeType::Http01,
    };
    if ty == ChallengeType::Dns01 && svc.dns01.is_none() {
        return Err(fail(
            "DNS-01 (wildcards) needs a DNS provider: set [acme.dns01] (provider = \"rfc2136\" or \"exec\")",
        ));
    }
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        match a.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(fail(format!("the CA's authorization is {other:?}"))),
        }
        let mut ch = a
            .challenge(ty.clone())
            .ok_or_else(|| fail(format!("the CA offers no {challenge} challenge for {name}")))?;
        let ka = ch.key_authorization();
        if let (ChallengeType::Dns01, Some(dns)) = (&ty, &svc.dns01) {
            let fqdn = dns.target(name).await;
            let value = ka.dns_value();
            presented
                .lock()
                .unwrap()
                .push((fqdn.clone(), value.clone()));
            if let Err(e) = dns.present(&fqdn, &value).await {
                // The provider's words (a hook's stderr, server addresses)
                // are the operator's: the log has them, the tenant a summary.
                tracing::warn!(domain = %name, %fqdn, error = %format!("{e:#}"), "DNS-01 record not in place");
                return Err(fail(format!(
                    "the DNS provider did not put the TXT record {fqdn} in place (the coordinator's log says why)"
                )));
            }
            ch.set_ready().await?;
            continue;
        }
        let entry = match ty {
            ChallengeType::TlsAlpn01 => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(ka.digest().as_ref());
                Some(HostChallenge {
                    alpn_digest: Some(digest),
                    http01: None,
                })
            }
            _ if !stateless => Some(HostChallenge {
                alpn_digest: None,
                http01: Some(ka.as_str().to_string()),
            }),
            _ => None,
        };
        if let Some(e) = entry {
            svc.store.set_challenge(name, Some(e)).await?;
        }
        edges_caught_up(svc).await;
        ch.set_ready().await?;
    }
    Ok(())
}

/// Waits (a while at most) until every edge heard from lately reports the
/// config version current now: then each holds the host, the thumbprint
/// and any challenge entry the CA may ask any of them for.
async fn edges_caught_up(svc: &AcmeService) {
    let Ok(target) = svc.store.config_version().await else {
        return;
    };
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let live_since = now_ms() - LIVE_EDGE.as_millis() as i64;
        let behind = match svc.store.list_nodes().await {
            Ok(nodes) => nodes
                .iter()
                .filter(|n| n.last_seen.is_some_and(|t| t >= live_since))
                .filter(|n| n.config_version < target)
                .count(),
            Err(_) => 0,
        };
        if behind == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                behind,
                target,
                "edges still behind; telling the CA to look anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The problem of the first challenge the CA found invalid.
async fn challenge_problem(order: &mut Order) -> Option<Failure> {
    let mut authzs = order.authorizations();
    while let Some(Ok(mut a)) = authzs.next().await {
        if let Ok(state) = a.refresh().await {
            if let Some(p) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
                return Some(problem(p));
            }
        }
    }
    None
}

/// The certificate as stored: its validity, ARI identifier and renewal time.
async fn issued(
    svc: &AcmeService,
    account: &Account,
    directory: &str,
    chain_pem: String,
    key_pem: &str,
) -> Result<Issued, Failure> {
    let ders: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("the CA's certificate chain does not parse: {e}")))?;
    let leaf = ders
        .first()
        .ok_or_else(|| fail("the CA sent an empty certificate chain"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| fail(format!("the CA's certificate does not parse: {e}")))?;
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let cert_id = CertificateIdentifier::try_from(leaf).ok();
    let fallback = schedule::renew_at(not_before * 1000, not_after * 1000);
    let (renew_at, ari_next_at) = match &cert_id {
        Some(id) => match ari(account, id).await {
            Some((at, next)) => (at, Some(next)),
            None => (fallback, None),
        },
        None => (fallback, None),
    };
    // Never at once after issuance (a window already past, a skewed
    // clock): a tenth of the lifetime first, so no reissue loop.
    let renew_at = renew_at.max(now_ms() + (not_after - not_before).max(0) * 1000 / 10);
    Ok(Issued {
        chain_pem,
        key_enc: svc.secrets.seal(key_pem),
        not_before,
        not_after,
        issuer: directory.to_string(),
        cert_id: cert_id.map(|c| c.to_string()),
        renew_at,
        ari_next_at,
    })
}

/// The CA's renewal information (RFC 9773) for certificate `id`: a time in
/// its suggested window, and when to ask again. None where the CA offers
/// no ARI.
pub(super) async fn ari(account: &Account, id: &CertificateIdentifier<'_>) -> Option<(i64, i64)> {
    let (info, retry_after) = account.renewal_info(id).await.ok()?;
    let at = schedule::in_window(
        info.suggested_window.start.unix_timestamp() * 1000,
        info.suggested_window.end.unix_timestamp() * 1000,
        rand::random::<f64>(),
        now_ms(),
    );
    Some((
        at,
        now_ms() + schedule::ari_recheck(retry_after).as_millis() as i64,
    ))
}
