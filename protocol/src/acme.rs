//! What edges need of ACME (RFC 8555) to help the coordinator prove
//! control of a domain, and the per-host HTTPS policy that follows a
//! certificate. Pure: the coordinator runs the orders, edges only answer.
//!
//! HTTP-01 is answered **statelessly**: the key authorization of a token is
//! `<token>.<account key thumbprint>`, and the thumbprint is public and
//! fixed for the account, so every edge can answer any token the moment it
//! holds the thumbprint (one entry in the signed config, written once)
//! instead of waiting for a per-challenge entry to reach every edge that a
//! CA's vantage points may hit. The token is checked to be base64url of a
//! sane length and nothing else of the request is echoed.
//!
//! TLS-ALPN-01 (RFC 8737) cannot be stateless (the handshake carries only
//! the name, not the token): the digest of the key authorization travels
//! as a [`HostChallenge`] entry under the host, and the edge makes the
//! self-signed challenge certificate itself (any key will do; the CA checks
//! only the `acmeIdentifier` extension). The same entry carries an HTTP-01
//! answer for an order placed with another account than the published one
//! (a fallback CA whose account needed External Account Binding).

use serde::{Deserialize, Serialize};

/// Where HTTP-01 challenges are asked for (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Tokens shorter than this cannot carry RFC 8555's 128 bits of entropy
/// (22 base64url characters); longer than the upper bound is nobody's.
const TOKEN_MIN: usize = 22;
const TOKEN_MAX: usize = 256;

/// The ACME account every order is placed with, as edges need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    /// base64url(SHA-256(JWK)) of the account key (RFC 7638).
    pub thumbprint: String,
}

impl AcmeAccount {
    /// A thumbprint is 43 base64url characters (32 bytes, unpadded).
    pub fn is_valid(&self) -> bool {
        self.thumbprint.len() == 43 && is_base64url(&self.thumbprint)
    }
}

/// A challenge under way for one host.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChallenge {
    /// TLS-ALPN-01: SHA-256 of the key authorization, for the
    /// certificate's `acmeIdentifier` extension.
    pub alpn_digest: Option<[u8; 32]>,
    /// HTTP-01 with an account other than the published one: the whole key
    /// authorization (`<token>.<thumbprint>`).
    pub http01: Option<String>,
}

impl HostChallenge {
    /// The HTTP-01 answer this entry holds for `token`, if any.
    pub fn http01_for(&self, token: &str) -> Option<&str> {
        let ka = self.http01.as_deref()?;
        (ka.split_once('.')?.0 == token).then_some(ka)
    }
}

impl std::fmt::Debug for HostChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostChallenge").finish_non_exhaustive()
    }
}

/// What a host with a publicly trusted certificate does over plain HTTP
/// and which `Strict-Transport-Security` it sends over HTTPS. Written only
/// while the host's certificate is active, so a redirect never points at a
/// name the edge has no certificate for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsPolicy {
    /// Plain HTTP answers 308 to the same URL over HTTPS (ACME challenges
    /// excepted).
    pub redirect: bool,
    pub hsts: Option<Hsts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hsts {
    /// Seconds.
    pub max_age: u32,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Hsts {
    /// The header's value.
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// The token of an HTTP-01 challenge request, if `path` is one and the
/// token is well-formed (base64url, 22 to 256 characters). Anything else
/// under the prefix is no challenge of ours.
pub fn http01_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(HTTP01_PREFIX)?;
    ((TOKEN_MIN..=TOKEN_MAX).contains(&token.len()) && is_base64url(token)).then_some(token)
}

/// Whether `path` asks for an HTTP-01 challenge (well-formed or not):
/// such requests are never redirected to HTTPS.
pub fn is_http01_path(path: &str) -> bool {
    path.starts_with(HTTP01_PREFIX)
}

/// The HTTP-01 response body (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

    #[test]
    fn challenge_paths() {
        let ok = format!("{HTTP01_PREFIX}{TOKEN}");
        let cases: &[(&str, Option<&str>)] = &[
            (&ok, Some(TOKEN)),
            ("/.well-known/acme-challenge/", None),
            ("/.well-known/acme-challenge/short", None),
            ("/.well-known/acme-challenge/../../etc/passwd", None),
            (
                "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0/x",
                None,
            ),
            (
                "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0?a=b",
                None,
            ),
            (
                "/.well-known/acme-challenge/<script>alert(1)</script>aaaaaaaaaaaa",
                None,
            ),
            (
                "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0=",
                None,
            ),
            (
                "/.well-known/acme-challengeLoqXcYV8q5ONbJQxbmR7SCTNo3t",
                None,
            ),
            ("/index.html", None),
        ];
        for (path, want) in cases {
            assert_eq!(http01_token(path), *want, "{path}");
        }
        let long = format!("{HTTP01_PREFIX}{}", "a".repeat(257));
        assert_eq!(http01_token(&long), None);
        assert!(is_http01_path(&long));
        assert!(!is_http01_path("/.well-known/other"));
    }

    #[test]
    fn key_authorization_is_token_dot_thumbprint() {
        assert_eq!(key_authorization("tok", "thumb"), "tok.thumb");
    }

    #[test]
    fn thumbprints() {
        let ok = AcmeAccount {
            thumbprint: "a".repeat(43),
        };
        assert!(ok.is_valid());
        for bad in [
            "a".repeat(42),
            "a".repeat(44),
            format!("{}+", "a".repeat(42)),
        ] {
            assert!(!AcmeAccount { thumbprint: bad }.is_valid());
        }
    }

    #[test]
    fn hsts_header() {
        let mut h = Hsts {
            max_age: 31_536_000,
            include_subdomains: false,
            preload: false,
        };
        assert_eq!(h.header_value(), "max-age=31536000");
        h.include_subdomains = true;
        h.preload = true;
        assert_eq!(
            h.header_value(),
            "max-age=31536000; includeSubDomains; preload"
        );
    }

    #[test]
    fn host_challenges() {
        let c = HostChallenge {
            alpn_digest: Some([7; 32]),
            http01: Some(format!("{TOKEN}.thumb")),
        };
        assert!(!format!("{c:?}").contains('7'));
        assert_eq!(c.http01_for(TOKEN), Some(format!("{TOKEN}.thumb").as_str()));
        assert_eq!(c.http01_for("other"), None);
        let none = HostChallenge {
            alpn_digest: None,
            http01: None,
        };
        assert_eq!(none.http01_for(TOKEN), None);
    }
}
