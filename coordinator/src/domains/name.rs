//! A custom domain's name, normalised and checked before anything else
//! looks at it (pure; the table below is the rule book). A name is stored
//! and compared only in this form: lower-case ASCII (IDN labels in
//! punycode), no trailing dot, optionally a whole leftmost `*` label.

use std::fmt;

/// The longest name DNS carries, and the longest label.
pub const MAX_NAME: usize = 253;
pub const MAX_LABEL: usize = 63;

/// A valid custom domain name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*.shop.com` → true.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its wildcard label (`shop.com` for `*.shop.com`).
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }

    /// Whether the name is a registrable domain itself (`shop.com`, not
    /// `www.shop.com`): it needs A/AAAA records, a CNAME cannot stand there.
    pub fn is_apex(&self) -> bool {
        is_apex(&self.0)
    }

    /// The registrable domain the name lies in (`shop.com` for
    /// `a.b.shop.com`): where another team's claim is looked for.
    pub fn registrable(&self) -> &str {
        psl::domain_str(self.base()).unwrap_or(self.base())
    }

    /// Every name strictly above this one, up to its registrable domain
    /// (`b.shop.com`, `shop.com` for `a.b.shop.com`).
    pub fn parents(&self) -> Vec<&str> {
        let top = self.registrable();
        let mut out = Vec::new();
        let mut rest = self.base();
        if self.is_wildcard() {
            out.push(rest);
        }
        while rest != top {
            match rest.split_once('.') {
                Some((_, up)) => {
                    rest = up;
                    out.push(rest);
                }
                None => break,
            }
        }
        out.retain(|p| *p != self.0);
        out
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the normalised `name` is a registrable domain itself (see
/// [`DomainName::is_apex`]).
pub fn is_apex(name: &str) -> bool {
    !name.starts_with("*.") && psl::domain_str(name) == Some(name)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a domain name is required")]
    Empty,
    #[error("{0:?} is not a valid domain name (IDNA: {1})")]
    Idna(String, String),
    #[error("{0:?} is longer than {MAX_NAME} characters")]
    TooLong(String),
    #[error("{0:?} has a label that is empty or longer than {MAX_LABEL} characters")]
    BadLabel(String),
    #[error("{0:?} has a character a host name may not have")]
    BadCharacter(String),
    #[error("{0:?} needs at least two labels (like shop.com)")]
    SingleLabel(String),
    #[error("{0:?} is an IP address; custom domains are names")]
    IpLiteral(String),
    #[error("a wildcard is only a whole leftmost label (*.shop.com): {0:?}")]
    BadWildcard(String),
    #[error("{0:?} is a public suffix (like co.uk): nobody can own it")]
    PublicSuffix(String),
    #[error("{0:?} lies under the platform's base domain {1}; the operator has not allowed it")]
    UnderBaseDomain(String, String),
    #[error("{0:?} lies under the cluster's internal name space")]
    Internal(String),
}

/// Normalises and checks `input`. `base_domain` is the platform's (names
/// under it are refused unless `allow_under_base`).
pub fn parse(
    input: &str,
    base_domain: &str,
    allow_under_base: bool,
) -> Result<DomainName, NameError> {
    let trimmed = input.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    // Bounded before IDNA looks at it (a name is at most 253 octets; IDN
    // input a few times that).
    if trimmed.len() > 4 * MAX_NAME {
        return Err(NameError::TooLong(shorten(trimmed)));
    }
    let (wild, rest) = match trimmed.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, trimmed),
    };
    if rest.contains('*') {
        return Err(NameError::BadWildcard(trimmed.to_string()));
    }
    if rest.parse::<std::net::IpAddr>().is_ok()
        || rest
            .trim_matches(['[', ']'])
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    {
        return Err(NameError::IpLiteral(trimmed.to_string()));
    }
    let ascii = idna::domain_to_ascii_strict(rest)
        .map_err(|e| NameError::Idna(shorten(trimmed), format!("{e:?}")))?;
    let name = if wild {
        format!("*.{ascii}")
    } else {
        ascii.clone()
    };
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(shorten(&name)));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > MAX_LABEL) {
        return Err(NameError::BadLabel(name));
    }
    if !ascii
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        || labels
            .iter()
            .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Err(NameError::BadCharacter(name));
    }
    if labels.len() < 2 {
        return Err(NameError::SingleLabel(name));
    }
    // An all-numeric last label is an IPv4 address in disguise (1.2.3.4.5).
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NameError::IpLiteral(name));
    }
    if psl::domain_str(&ascii).is_none() {
        return Err(NameError::PublicSuffix(name));
    }
    let under = |parent: &str| ascii == parent || ascii.ends_with(&format!(".{parent}"));
    if under(crate::ca::INTERNAL_DOMAIN) {
        return Err(NameError::Internal(name));
    }
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    if !allow_under_base && !base.is_empty() && under(&base) {
        return Err(NameError::UnderBaseDomain(name, base));
    }
    Ok(DomainName(name))
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "outpost.example.net";

    #[test]
    fn names_are_normalised() {
        for (input, want) in [
            ("www.Shop.com", "www.shop.com"),
            ("  www.shop.com.  ", "www.shop.com"),
            ("*.Shop.com", "*.shop.com"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("WWW.BÜCHER.de.", "www.xn--bcher-kva.de"),
            ("shop.co.uk", "shop.co.uk"),
            ("a-b.example.org", "a-b.example.org"),
            ("blog.shop.test", "blog.shop.test"),
        ] {
            assert_eq!(parse(input, BASE, false).unwrap().as_str(), want, "{input}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        let huge = "a".repeat(5000);
        type Case<'a> = (&'a str, fn(&NameError) -> bool);
        let cases: Vec<Case> = vec![
            ("", |e| matches!(e, NameError::Empty)),
            (".", |e| matches!(e, NameError::Empty)),
            ("localhost", |e| {
                matches!(e, NameError::SingleLabel(_) | NameError::PublicSuffix(_))
            }),
            ("com", |e| {
                matches!(e, NameError::SingleLabel(_) | NameError::PublicSuffix(_))
            }),
            ("co.uk", |e| matches!(e, NameError::PublicSuffix(_))),
            ("*.co.uk", |e| matches!(e, NameError::PublicSuffix(_))),
            ("github.io", |e| matches!(e, NameError::PublicSuffix(_))),
            ("192.168.1.1", |e| matches!(e, NameError::IpLiteral(_))),
            ("[::1]", |e| matches!(e, NameError::IpLiteral(_))),
            ("::1", |e| matches!(e, NameError::IpLiteral(_))),
            ("1.2.3.4.5", |e| matches!(e, NameError::IpLiteral(_))),
            ("www.*.shop.com", |e| matches!(e, NameError::BadWildcard(_))),
            ("*shop.com", |e| matches!(e, NameError::BadWildcard(_))),
            ("**.shop.com", |e| matches!(e, NameError::BadWildcard(_))),
            ("sh op.com", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadCharacter(_))
            }),
            ("shop_x.com", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadCharacter(_))
            }),
            ("-shop.com", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadCharacter(_))
            }),
            ("a..com", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadLabel(_))
            }),
            ("shop.com/evil", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadCharacter(_))
            }),
            ("shop.com:443", |e| {
                matches!(e, NameError::Idna(..) | NameError::BadCharacter(_))
            }),
            (&long_label, |e| {
                matches!(e, NameError::Idna(..) | NameError::BadLabel(_))
            }),
            (&long_name, |e| {
                matches!(e, NameError::Idna(..) | NameError::TooLong(_))
            }),
            (&huge, |e| matches!(e, NameError::TooLong(_))),
            ("blog.outpost.example.net", |e| {
                matches!(e, NameError::UnderBaseDomain(..))
            }),
            ("outpost.example.net", |e| {
                matches!(e, NameError::UnderBaseDomain(..))
            }),
            ("*.outpost.example.net", |e| {
                matches!(e, NameError::UnderBaseDomain(..))
            }),
            ("x.node.outpost.internal", |e| {
                matches!(e, NameError::Internal(_))
            }),
        ];
        for (input, ok) in cases {
            match parse(input, BASE, false) {
                Err(e) => assert!(ok(&e), "{input:?}: {e}"),
                Ok(n) => panic!("{input:?} was accepted as {n}"),
            }
        }
        // The operator may allow names under the base domain.
        assert!(parse("blog.outpost.example.net", BASE, true).is_ok());
        assert!(parse("x.node.outpost.internal", "outpost.internal", true).is_err());
    }

    #[test]
    fn apex_parents_and_registrable_domain() {
        let n = |s| parse(s, BASE, false).unwrap();
        assert!(n("shop.com").is_apex() && n("shop.co.uk").is_apex());
        assert!(!n("www.shop.com").is_apex() && !n("*.shop.com").is_apex());
        assert_eq!(n("a.b.shop.com").registrable(), "shop.com");
        assert_eq!(n("a.b.shop.com").parents(), ["b.shop.com", "shop.com"]);
        assert_eq!(n("*.shop.com").parents(), ["shop.com"]);
        assert!(n("shop.com").parents().is_empty());
        assert_eq!(
            n("*.b.shop.co.uk").parents(),
            ["b.shop.co.uk", "shop.co.uk"]
        );
    }
}
