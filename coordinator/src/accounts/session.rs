//! Credentials on a request: a bearer API token or the dashboard's session
//! cookie, resolved to a [`Principal`].

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, HeaderValue};

use super::authz::{Principal, Scope, Via};
use crate::ids::token_hash;
use crate::store::{now_ms, Role, Session, Store, StoreError, User};

pub const COOKIE: &str = "outpost_session";
/// The session cookie's name over TLS. Browsers accept a `__Host-` cookie
/// only with `Secure`, `Path=/` and no `Domain`, so a site on a sibling
/// host (a tenant's, under the same parent domain) can neither set nor
/// overwrite it ("cookie tossing").
pub const SECURE_COOKIE: &str = "__Host-outpost_session";
/// Dashboard scripts send the session's CSRF token in this header.
pub const CSRF_HEADER: &str = "x-csrf-token";
const MAX_TOKEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("invalid, expired or revoked API token")]
    BadToken,
    #[error("session expired; sign in again")]
    BadSession,
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session cookie's value, if the request carries one. Over TLS
/// (`secure`) only the `__Host-` cookie counts: a plain one may have been
/// set by another site under the same parent domain.
pub fn session_cookie(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let valid = |v: &&str| !v.is_empty() && v.len() <= MAX_TOKEN;
    match cookie(headers, SECURE_COOKIE).filter(valid) {
        Some(v) => Some(v),
        None if secure => None,
        None => cookie(headers, COOKIE).filter(valid),
    }
}

/// The client's address: the TCP peer, unless the peer is one of the
/// operator's `trusted` proxies; then the rightmost `X-Forwarded-For` entry
/// that is not a trusted proxy (each proxy appends the address it saw, so
/// entries left of the first untrusted one are the client's own claims).
/// An entry that is not an address ends the walk.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: &[ipnet::IpNet],
) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    let canonical = |ip: std::net::IpAddr| ip.to_canonical();
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(&ip));
    let mut client = canonical(peer.ip());
    if !is_trusted(client) {
        return client.to_string();
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev().take(64) {
        let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    client.to_string()
}

/// The client address of a request's parts (the peer from axum's
/// `ConnectInfo`, or `X-Forwarded-For` behind a trusted proxy).
pub fn client_ip_of_parts(parts: &axum::http::request::Parts, trusted: &[ipnet::IpNet]) -> String {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    client_ip(&parts.headers, peer, trusted)
}

/// Resolves whatever credential the request carries; `Ok(None)` when it
/// carries none.
pub async fn resolve(
    store: &Store,
    headers: &HeaderMap,
    ip: String,
    secure: bool,
) -> Result<Result<Option<Principal>, CredentialError>, StoreError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
        else {
            return Ok(Err(CredentialError::Malformed));
        };
        let Some(t) = store.live_api_token(&token_hash(token)).await? else {
            return Ok(Err(CredentialError::BadToken));
        };
        // Recording use is a write; a read-mostly API should not write on
        // every request, so only once a minute per token.
        if t.last_used_at.is_none_or(|at| now_ms() - at >= 60_000) {
            store.touch_api_token(&t.id).await?;
        }
        let scope = Scope::from_columns(t.team_id.as_deref(), t.project_id.as_deref());
        let via = Via::Token {
            id: t.id.clone(),
            name: t.name.clone(),
        };
        let principal = match &t.user_id {
            Some(uid) => match store.user(uid).await? {
                Some(user) => for_user(store, user, scope, via, ip).await?,
                None => return Ok(Err(CredentialError::BadToken)),
            },
            // The first-start admin token, before the first sign-up adopts
            // it: it owns the team projects are created in until then.
            None => Principal {
                user: None,
                instance_owner: true,
                memberships: store
                    .oldest_team()
                    .await?
                    .map(|t| vec![(t.id, Role::Owner)])
                    .unwrap_or_default(),
                scope,
                via,
                ip,
            },
        };
        return Ok(Ok(Some(principal)));
    }
    resolve_session(store, headers, ip, secure).await
}

/// The session cookie only, whatever else the request carries: the
/// dashboard's pages are for browsers, not API tokens.
pub async fn resolve_session(
    store: &Store,
    headers: &HeaderMap,
    ip: String,
    secure: bool,
) -> Result<Result<Option<Principal>, CredentialError>, StoreError> {
    if let Some(cookie) = session_cookie(headers, secure) {
        let Some((session, user)) = store.session(&token_hash(cookie)).await? else {
            return Ok(Err(CredentialError::BadSession));
        };
        let via = Via::Session {
            id_hash: session.id_hash,
            csrf: session.csrf,
        };
        return Ok(Ok(Some(for_user(store, user, Scope::All, via, ip).await?)));
    }
    Ok(Ok(None))
}

async fn for_user(
    store: &Store,
    user: User,
    scope: Scope,
    via: Via,
    ip: String,
) -> Result<Principal, StoreError> {
    let memberships = store
        .memberships(&user.id)
        .await?
        .into_iter()
        .map(|m| (m.team.id, m.role))
        .collect();
    Ok(Principal {
        instance_owner: user.instance_owner,
        user: Some(user),
        memberships,
        scope,
        via,
        ip,
    })
}

/// A new session: the cookie value (shown to the browser only) and the row.
pub fn new_session(
    user_id: &str,
    ttl: std::time::Duration,
    ip: &str,
    user_agent: &str,
) -> (String, Session) {
    let secret = crate::ids::new_secret();
    let now = now_ms();
    let session = Session {
        id_hash: token_hash(&secret),
        user_id: user_id.to_string(),
        csrf: crate::ids::new_secret(),
        created_at: now,
        expires_at: now + ttl.as_millis() as i64,
        ip: ip.chars().take(64).collect(),
        user_agent: user_agent.chars().take(200).collect(),
    };
    (secret, session)
}

/// `Set-Cookie` for a session: HttpOnly, SameSite=Lax (links from other
/// sites still land signed in; their POSTs carry no cookie), Secure on TLS.
pub fn set_cookie(value: &str, ttl: std::time::Duration, secure: bool) -> HeaderValue {
    let (name, secure) = if secure {
        (SECURE_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        ttl.as_secs()
    ))
    .expect("cookie value is hex")
}

/// `Set-Cookie` values that end a session under either name.
pub fn clear_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static("outpost_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        HeaderValue::from_static(
            "__Host-outpost_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
        ),
    ]
}

/// Whether the browser reached us over TLS (directly or via a proxy).
pub fn wants_secure_cookie(headers: &HeaderMap, configured: bool) -> bool {
    configured
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_matches(expected: &str, submitted: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && expected.as_bytes().ct_eq(submitted.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; outpost_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h, false), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "x=1".parse().unwrap());
        h.append(header::COOKIE, "outpost_session=def".parse().unwrap());
        assert_eq!(session_cookie(&h, false), Some("def"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "outpost_session=".parse().unwrap());
        assert_eq!(session_cookie(&h, false), None);
        let long = format!("outpost_session={}", "a".repeat(300));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, long.parse().unwrap());
        assert_eq!(session_cookie(&h, false), None);
        // Over TLS only the __Host- cookie counts, and it wins anyway.
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "outpost_session=tossed".parse().unwrap());
        assert_eq!(session_cookie(&h, true), None);
        assert_eq!(session_cookie(&h, false), Some("tossed"));
        h.append(
            header::COOKIE,
            "__Host-outpost_session=mine".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h, true), Some("mine"));
        assert_eq!(session_cookie(&h, false), Some("mine"));
        let set = set_cookie("v", std::time::Duration::from_secs(60), true);
        let set = set.to_str().unwrap();
        assert!(
            set.starts_with("__Host-outpost_session=v; Path=/;")
                && set.contains("Secure")
                && !set.contains("Domain"),
            "{set}"
        );
    }

    /// (peer, X-Forwarded-For, trusted proxies) → the client address
    #[test]
    fn client_ip_table() {
        let nets =
            |v: &[&str]| -> Vec<ipnet::IpNet> { v.iter().map(|s| s.parse().unwrap()).collect() };
        let lo = nets(&["127.0.0.0/8"]);
        let two = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let cases: &[(&str, Option<&str>, &[ipnet::IpNet], &str)] = &[
            // Not behind a proxy: the header is the client's to forge.
            ("10.1.1.1:5000", Some("203.0.113.9"), &[], "10.1.1.1"),
            // A trusted proxy: its appended entry is the client.
            ("127.0.0.1:5000", Some("203.0.113.9"), &lo, "203.0.113.9"),
            // The client sent its own header: the proxy appended the real one.
            (
                "127.0.0.1:5000",
                Some("6.6.6.6, 203.0.113.9"),
                &lo,
                "203.0.113.9",
            ),
            // Two proxies of ours: skip both.
            (
                "127.0.0.1:5000",
                Some("6.6.6.6, 203.0.113.9, 10.2.3.4"),
                &two,
                "203.0.113.9",
            ),
            // A peer that is not a proxy of ours is believed about nothing.
            (
                "198.51.100.7:5000",
                Some("203.0.113.9"),
                &lo,
                "198.51.100.7",
            ),
            // Garbage ends the walk at what was believed so far.
            ("127.0.0.1:5000", Some("junk"), &lo, "127.0.0.1"),
            (
                "127.0.0.1:5000",
                Some("203.0.113.9, junk"),
                &lo,
                "127.0.0.1",
            ),
            // Only proxies of ours all the way: the leftmost.
            ("127.0.0.1:5000", Some("10.9.9.9"), &two, "10.9.9.9"),
            ("127.0.0.1:5000", None, &lo, "127.0.0.1"),
            // IPv4-mapped IPv6 peers count as their IPv4 address.
            (
                "[::ffff:127.0.0.1]:5000",
                Some("203.0.113.9"),
                &lo,
                "203.0.113.9",
            ),
        ];
        for (peer, xff, trusted, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(x) = xff {
                h.insert("x-forwarded-for", x.parse().unwrap());
            }
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(client_ip(&h, Some(peer), trusted), *want, "{peer} {xff:?}");
        }
    }

    #[test]
    fn cookies_and_csrf() {
        let c = set_cookie("ab12", std::time::Duration::from_secs(60), true);
        let c = c.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Max-Age=60", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("ab", std::time::Duration::from_secs(1), false)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("", ""));
    }
}
