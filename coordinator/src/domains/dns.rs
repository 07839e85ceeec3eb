//! Does a custom domain point at the fleet? `evaluate` is the pure rule
//! (table-tested); `Lookup` asks DNS (hickory, the operator's resolver or
//! the system's) for what `evaluate` needs.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use serde::{Deserialize, Serialize};

/// The TXT record that proves ownership: `_outpost-challenge.<domain>`.
pub const CHALLENGE_LABEL: &str = "_outpost-challenge";
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Records of one type kept from an answer (what a status shows).
const MAX_RECORDS: usize = 16;

/// Where the operator's fleet is: `[domains] cname_target` and `apex_addresses`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub cname_target: Option<String>,
    pub apex_addresses: Vec<IpAddr>,
}

/// What DNS said about a name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub cname: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// TXT values at `_outpost-challenge.<name>`.
    pub challenge_txt: Vec<String>,
}

/// A DNS record the user should create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The name points at the fleet.
    Active,
    /// No record yet.
    Pending,
    /// Records exist, pointing elsewhere (or partly elsewhere).
    Misconfigured(String),
}

fn trim(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

/// What to create for `name` (the name a lookup uses: for a wildcard, the
/// wildcard itself).
pub fn records(name: &str, apex: bool, fleet: &Fleet) -> Vec<Record> {
    match (&fleet.cname_target, apex) {
        (Some(target), false) => vec![Record {
            kind: "CNAME".into(),
            name: name.to_string(),
            value: trim(target),
        }],
        _ => fleet
            .apex_addresses
            .iter()
            .map(|ip| Record {
                kind: if ip.is_ipv4() { "A" } else { "AAAA" }.into(),
                name: name.to_string(),
                value: ip.to_string(),
            })
            .collect(),
    }
}

/// The TXT record proving ownership of `name` with `token`.
pub fn ownership_record(base: &str, token: &str) -> Record {
    Record {
        kind: "TXT".into(),
        name: format!("{CHALLENGE_LABEL}.{base}"),
        value: token.to_string(),
    }
}

/// Whether what was found points `name` at the fleet: a CNAME to the
/// target, or only addresses of the fleet.
pub fn evaluate(fleet: &Fleet, found: &Found) -> Verdict {
    if let (Some(c), Some(t)) = (&found.cname, &fleet.cname_target) {
        if trim(c) == trim(t) {
            return Verdict::Active;
        }
    }
    if found.cname.is_none() && found.addresses.is_empty() {
        return Verdict::Pending;
    }
    let ours = |ip: &IpAddr| fleet.apex_addresses.contains(ip);
    if found.cname.is_none() && found.addresses.iter().all(ours) {
        return Verdict::Active;
    }
    let mut seen = Vec::new();
    if let Some(c) = &found.cname {
        seen.push(format!("CNAME {}", trim(c)));
    }
    seen.extend(found.addresses.iter().map(|ip| {
        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
        let mark = if ours(ip) { "" } else { " (not ours)" };
        format!("{kind} {ip}{mark}")
    }));
    Verdict::Misconfigured(seen.join(", "))
}

/// DNS lookups for verification.
pub struct Lookup {
    resolver: TokioResolver,
}

impl Lookup {
    /// Through `server` (`[domains] resolver`), else the system's resolvers.
    pub fn new(server: Option<std::net::SocketAddr>) -> anyhow::Result<Lookup> {
        let mut builder = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()?,
        };
        let o = builder.options_mut();
        o.timeout = QUERY_TIMEOUT;
        o.attempts = 2;
        // Verification wants today's answer, not a cached one.
        o.cache_size = 0;
        Ok(Lookup {
            resolver: builder.build()?,
        })
    }

    /// The CNAME target of `name`, if it is one.
    pub async fn cname(&self, name: &str) -> Option<String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let l = self
            .resolver
            .lookup(fqdn.as_str(), RecordType::CNAME)
            .await
            .ok()?;
        l.answers().iter().find_map(|r| match &r.data {
            RData::CNAME(c) => Some(trim(&c.0.to_ascii())),
            _ => None,
        })
    }

    /// The TXT values at `name` (each record's strings joined), at most
    /// a few.
    pub async fn txt(&self, name: &str) -> Vec<String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let Ok(l) = self.resolver.lookup(fqdn.as_str(), RecordType::TXT).await else {
            return Vec::new();
        };
        l.answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .take(MAX_RECORDS)
            .collect()
    }

    /// What DNS says about `name` (a wildcard is looked up as itself: an
    /// authoritative server answers the wildcard's records for it).
    pub async fn find(&self, name: &str, challenge_base: &str) -> Found {
        let fqdn = format!("{name}.");
        let mut found = Found {
            cname: self.cname(name).await,
            ..Found::default()
        };
        if found.cname.is_none() {
            for kind in [RecordType::A, RecordType::AAAA] {
                if let Ok(l) = self.resolver.lookup(fqdn.as_str(), kind).await {
                    found
                        .addresses
                        .extend(l.answers().iter().filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        }));
                }
            }
            found.addresses.truncate(MAX_RECORDS);
        }
        found.challenge_txt = self
            .txt(&format!("{CHALLENGE_LABEL}.{challenge_base}"))
            .await;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            cname_target: Some("edge.example.net.".into()),
            apex_addresses: vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn verdicts() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: Vec<(&str, Found, Verdict)> = vec![
            ("nothing yet", Found::default(), Verdict::Pending),
            (
                "CNAME to the target",
                Found {
                    cname: Some("EDGE.example.net".into()),
                    ..Default::default()
                },
                Verdict::Active,
            ),
            (
                "our addresses",
                Found {
                    addresses: vec![ip("192.0.2.10"), ip("2001:db8::10")],
                    ..Default::default()
                },
                Verdict::Active,
            ),
            (
                "CNAME elsewhere",
                Found {
                    cname: Some("other.host.com".into()),
                    ..Default::default()
                },
                Verdict::Misconfigured("CNAME other.host.com".into()),
            ),
            (
                "one address not ours",
                Found {
                    addresses: vec![ip("192.0.2.10"), ip("198.51.100.7")],
                    ..Default::default()
                },
                Verdict::Misconfigured("A 192.0.2.10, A 198.51.100.7 (not ours)".into()),
            ),
        ];
        for (what, found, want) in cases {
            assert_eq!(evaluate(&fleet(), &found), want, "{what}");
        }
        // Without a CNAME target every name needs addresses.
        let apex_only = Fleet {
            cname_target: None,
            ..fleet()
        };
        let cname = Found {
            cname: Some("edge.example.net".into()),
            ..Default::default()
        };
        assert!(matches!(
            evaluate(&apex_only, &cname),
            Verdict::Misconfigured(_)
        ));
    }

    #[test]
    fn records_to_create() {
        let f = fleet();
        let sub = records("www.shop.com", false, &f);
        assert_eq!(sub.len(), 1);
        assert_eq!(
            (sub[0].kind.as_str(), sub[0].value.as_str()),
            ("CNAME", "edge.example.net")
        );
        let apex = records("shop.com", true, &f);
        let kinds: Vec<&str> = apex.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["A", "AAAA"]);
        let own = ownership_record("shop.com", "tok");
        assert_eq!(own.name, "_outpost-challenge.shop.com");
    }
}
