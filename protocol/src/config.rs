//! The edge config as a replicated change log (Cloudflare's Quicksilver is
//! the model): a keyspace of small entries — a host's target, a project's
//! runtime, a certificate — changed by numbered [`ChangeBatch`]es. The
//! coordinator writes one batch per change it makes, in the order its
//! database gives them; every edge applies them in that order into its
//! own key-value store and reads per key.
//!
//! A deploy therefore costs a batch of a few entries, whatever else
//! exists. Manifests are not entries: they are content-addressed objects an
//! edge fetches by bundle id (the id is the blake3 of their bytes, so they
//! need no signature). Per-deployment hosts are entries too (about 150
//! bytes each), but their bundles are only fetched when a request asks.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::BundleId;
use crate::sealed::{Keyring, SealError, SealKey, Sealed};

/// Most changes in one batch: bigger changes (a project with many
/// deployments deleted) are written as several batches.
pub const MAX_CHANGES_PER_BATCH: usize = 2000;
/// Longest key, in bytes (a host name is at most 253).
pub const MAX_KEY_BYTES: usize = 300;

/// Which set of variables a host's functions get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    Production,
    Preview,
}

/// What kind of host an entry is. Production and branch hosts are synced
/// eagerly (their bundles are fetched before they switch); a deployment's
/// own host is served on demand (its bundle is fetched by the first
/// request that needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    Production,
    Branch,
    Deployment,
}

impl HostKind {
    pub fn is_eager(self) -> bool {
        self != HostKind::Deployment
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostTarget {
    pub project: String,
    pub deployment: String,
    pub bundle: BundleId,
    pub env: EnvKind,
    pub kind: HostKind,
}

/// Per-project function settings. The variables are sealed to the cluster
/// key (see [`crate::sealed`]): an edge opens them in memory when it
/// serves the project's functions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRuntime {
    /// A [`RuntimeEnv`] sealed under the context `p/<project>`; `None` when
    /// the project has no variables (its functions then need no key).
    pub env: Option<Sealed>,
    /// Hosts functions may call (`api.example.com`); empty = no outbound.
    pub outbound: Vec<String>,
}

/// A project's variables, as sealed into its [`ProjectRuntime`]. Values
/// may be secrets: `Debug` hides them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEnv {
    pub production: BTreeMap<String, String>,
    pub preview: BTreeMap<String, String>,
}

impl RuntimeEnv {
    pub fn get(&self, kind: EnvKind) -> &BTreeMap<String, String> {
        match kind {
            EnvKind::Production => &self.production,
            EnvKind::Preview => &self.preview,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.production.is_empty() && self.preview.is_empty()
    }

    /// Sealed for `project`'s runtime entry (`None` if there is nothing).
    pub fn seal(&self, key: &SealKey, project: &str) -> Option<Sealed> {
        (!self.is_empty())
            .then(|| key.seal(&Key::Project(project.to_string()).encode(), &self.encode()))
    }

    /// The variables of `project`'s runtime entry.
    pub fn open(
        rt: &ProjectRuntime,
        keys: &Keyring,
        project: &str,
    ) -> Result<RuntimeEnv, SealError> {
        let Some(sealed) = &rt.env else {
            return Ok(RuntimeEnv::default());
        };
        let bytes = keys.open(&Key::Project(project.to_string()).encode(), sealed)?;
        crate::wire::decode_body(&bytes).map_err(|_| SealError::Corrupt)
    }

    fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("in-memory encode")
    }
}

impl fmt::Debug for RuntimeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeEnv")
            .field("production", &self.production.keys().collect::<Vec<_>>())
            .field("preview", &self.preview.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A host certificate: the chain in the clear, the private key (PEM)
/// sealed under the context `c/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEntry {
    pub chain_pem: String,
    pub key: Sealed,
    /// Unix seconds.
    pub not_after: i64,
}

impl CertEntry {
    pub fn seal(
        name: &str,
        chain_pem: String,
        key_pem: &str,
        not_after: i64,
        key: &SealKey,
    ) -> CertEntry {
        CertEntry {
            chain_pem,
            key: key.seal(&Key::Cert(name.to_string()).encode(), key_pem.as_bytes()),
            not_after,
        }
    }

    /// The private key (PEM) of certificate `name`.
    pub fn open_key(&self, keys: &Keyring, name: &str) -> Result<String, SealError> {
        let bytes = keys.open(&Key::Cert(name.to_string()).encode(), &self.key)?;
        String::from_utf8(bytes).map_err(|_| SealError::Corrupt)
    }
}

/// A key of the edge keyspace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// A normalised host name.
    Host(String),
    /// A project name.
    Project(String),
    /// A certificate name (`blog.example.com` or `*.example.com`).
    Cert(String),
    /// A node id removed from the cluster: every edge refuses its
    /// certificate on the mesh (the coordinator refuses it by its missing
    /// row). Kept until every certificate it may hold has expired.
    Revoked(String),
    /// The history the keyspace belongs to (see [`Epoch`]).
    Epoch,
    /// The ACME account edges answer HTTP-01 challenges for.
    Acme,
    /// A host's ACME challenge under way.
    Challenge(String),
    /// A host's HTTPS policy (redirect, HSTS) while it has a publicly
    /// trusted certificate.
    Https(String),
    /// The visitor salt of one UTC day (days since the epoch): analytics
    /// count a visitor as a keyed hash of it, so every edge counts the same
    /// visitor the same way that day. Dropped after two days.
    Salt(i64),
    /// A project whose request logs go to a log drain: edges send a
    /// sample of its requests to the coordinator.
    RequestLog(String),
    /// Every coordinator's QUIC address: where an edge links to, and moves
    /// to when its coordinator goes away.
    Coordinators,
}

impl Key {
    /// The key as stored: `h/<host>`, `p/<project>`, `c/<name>`, `r/<node id>`.
    pub fn encode(&self) -> String {
        match self {
            Key::Host(h) => format!("h/{h}"),
            Key::Project(p) => format!("p/{p}"),
            Key::Cert(c) => format!("c/{c}"),
            Key::Revoked(n) => format!("r/{n}"),
            Key::Epoch => "e/cluster".to_string(),
            Key::Acme => "a/account".to_string(),
            Key::Challenge(h) => format!("t/{h}"),
            Key::Https(h) => format!("s/{h}"),
            Key::Salt(day) => format!("v/{day}"),
            Key::RequestLog(p) => format!("q/{p}"),
            Key::Coordinators => "k/cluster".to_string(),
        }
    }

    pub fn decode(s: &str) -> Result<Key, ConfigError> {
        let bad = || ConfigError::BadKey(s.chars().take(80).collect());
        if s.len() > MAX_KEY_BYTES {
            return Err(bad());
        }
        let (kind, name) = s.split_once('/').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        match kind {
            "h" => Ok(Key::Host(name.to_string())),
            "p" => Ok(Key::Project(name.to_string())),
            "c" => Ok(Key::Cert(name.to_string())),
            "r" if crate::host::is_valid_label(name) => Ok(Key::Revoked(name.to_string())),
            "e" if name == "cluster" => Ok(Key::Epoch),
            "a" if name == "account" => Ok(Key::Acme),
            "t" => Ok(Key::Challenge(name.to_string())),
            "s" => Ok(Key::Https(name.to_string())),
            "q" => Ok(Key::RequestLog(name.to_string())),
            "k" if name == "cluster" => Ok(Key::Coordinators),
            // Digits only: the day number, never negative, no sign or padding.
            "v" if name.len() <= 12
                && name.bytes().all(|b| b.is_ascii_digit())
                && !(name.len() > 1 && name.starts_with('0')) =>
            {
                name.parse().map(Key::Salt).map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }
}

/// The value under a key; its variant must be the key's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Host(HostTarget),
    Project(ProjectRuntime),
    Cert(CertEntry),
    Revoked(Revocation),
    Epoch(Epoch),
    /// A host that only redirects (a custom domain such as `shop.com` →
    /// `www.shop.com`), under a `Key::Host`.
    Redirect(HostRedirect),
    Acme(crate::acme::AcmeAccount),
    Challenge(crate::acme::HostChallenge),
    Https(crate::acme::HttpsPolicy),
    Salt(VisitorSalt),
    RequestLog(RequestLogPolicy),
    Coordinators(CoordinatorList),
}

/// The QUIC addresses (`host:port`) of the cluster's coordinators, in the
/// order they first registered. All of them present a certificate for
/// [`crate::wire::COORDINATOR_NAME`] from the cluster CA, so any is as good
/// as another to an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorList {
    pub addrs: Vec<String>,
}

impl CoordinatorList {
    /// More coordinators than this is a config error, not a cluster.
    pub const MAX: usize = 64;
    /// A `host:port` longer than a DNS name and a port.
    pub const MAX_ADDR_BYTES: usize = 260;

    /// At most [`Self::MAX`] addresses, each a `host:port` with a port
    /// (1..=65535) and a host of visible ASCII with no spaces, no
    /// duplicates.
    pub fn is_valid(&self) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        !self.addrs.is_empty()
            && self.addrs.len() <= Self::MAX
            && self
                .addrs
                .iter()
                .all(|a| seen.insert(a.as_str()) && Self::is_valid_addr(a))
    }

    /// `host:port` or `[v6]:port`, bounded, with a non-zero port.
    pub fn is_valid_addr(a: &str) -> bool {
        if a.is_empty() || a.len() > Self::MAX_ADDR_BYTES {
            return false;
        }
        let Some((host, port)) = a.rsplit_once(':') else {
            return false;
        };
        let port_ok = matches!(port.parse::<u16>(), Ok(p) if p != 0)
            && !port.starts_with('+')
            && !port.starts_with('0');
        let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        };
        port_ok && host_ok
    }
}

/// How many of a project's requests an edge sends as request logs, in
/// parts per million (1 to 1,000,000): the largest rate any of its
/// drains asks for; each drain samples its own share of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogPolicy {
    pub sample_ppm: u32,
}

impl RequestLogPolicy {
    pub const ALL: u32 = 1_000_000;

    pub fn is_valid(&self) -> bool {
        (1..=Self::ALL).contains(&self.sample_ppm)
    }

    /// Whether the request with this id is in the sample: the same id is
    /// in or out on every edge and in every drain of lower rate.
    pub fn samples(sample_ppm: u32, request_id: u64) -> bool {
        Self::bucket(request_id) < sample_ppm
    }

    /// The request's place in `0..1_000_000`: in a sample of rate `r` ppm
    /// when below `r` (a multiplicative hash spreads sequential ids).
    pub fn bucket(request_id: u64) -> u32 {
        let h = request_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (h % u64::from(Self::ALL)) as u32
    }
}

/// A day's visitor salt (see [`Key::Salt`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorSalt(pub [u8; 32]);

impl std::fmt::Debug for VisitorSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorSalt(..)")
    }
}

/// Where a redirecting host sends every request: the same path and query
/// on host `to`, with `status` (301, 302, 307 or 308).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRedirect {
    pub to: String,
    pub status: u16,
}

impl HostRedirect {
    pub const STATUSES: [u16; 4] = [301, 302, 307, 308];

    /// The `Location` for a request of `path_and_query` over `scheme`.
    /// `to` is a normalised host name (checked when the entry is made and
    /// again here), so nothing of the request can change the host.
    pub fn location(&self, scheme: &str, path_and_query: &str) -> Option<String> {
        let host = crate::host::normalize_host(&self.to).ok()?;
        if !Self::STATUSES.contains(&self.status) || host != self.to.as_str() {
            return None;
        }
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        Some(format!("{scheme}://{host}{path}"))
    }
}

/// Which history of the config a keyspace belongs to. When the
/// coordinator's database is restored from a backup its versions go back,
/// and versions alone cannot tell an edge that "version 300" is not the
/// 300 it had: the coordinator then starts a new epoch (a batch setting
/// this entry), and since every signature covers the whole keyspace's state,
/// nothing signed in the old history verifies on top of the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// Random, new for each history.
    pub id: u64,
    /// The highest version seen of the histories this one replaced.
    pub supersedes: u64,
}

/// When a node was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Unix milliseconds.
    pub at_ms: i64,
}

impl Entry {
    /// Whether this value may stand under `key` (its variant is the key's).
    pub fn fits(&self, key: &Key) -> bool {
        matches!(
            (key, self),
            (Key::Host(_), Entry::Host(_))
                | (Key::Host(_), Entry::Redirect(_))
                | (Key::Project(_), Entry::Project(_))
                | (Key::Cert(_), Entry::Cert(_))
                | (Key::Revoked(_), Entry::Revoked(_))
                | (Key::Epoch, Entry::Epoch(_))
                | (Key::Acme, Entry::Acme(_))
                | (Key::Challenge(_), Entry::Challenge(_))
                | (Key::Https(_), Entry::Https(_))
                | (Key::Salt(_), Entry::Salt(_))
                | (Key::RequestLog(_), Entry::RequestLog(_))
                | (Key::Coordinators, Entry::Coordinators(_))
        )
    }

    /// The entry's bytes as stored and hashed (bincode of ordered maps:
    /// both sides compute the same bytes for the same entry).
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("in-memory encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, ConfigError> {
        crate::wire::decode_body(bytes).map_err(|e| ConfigError::BadEntry(e.to_string()))
    }
}

/// One key set (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: Key,
    pub value: Option<Entry>,
}

/// The changes of one version, applied together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The version this batch makes; the one before must be `version - 1`.
    pub version: u64,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("batch {got} does not follow version {have}")]
    OutOfOrder { have: u64, got: u64 },
    #[error("a batch holds at most {MAX_CHANGES_PER_BATCH} changes, this one {0}")]
    TooManyChanges(usize),
    #[error("key {0:?} is not a valid config key")]
    BadKey(String),
    #[error("the value under {0:?} is of another kind than its key")]
    WrongKind(String),
    #[error("config entry does not decode: {0}")]
    BadEntry(String),
}

impl ChangeBatch {
    /// Bounds and shape, before anything is applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.changes.len() > MAX_CHANGES_PER_BATCH {
            return Err(ConfigError::TooManyChanges(self.changes.len()));
        }
        for c in &self.changes {
            let k = c.key.encode();
            Key::decode(&k)?;
            if let Some(v) = &c.value {
                if !v.fits(&c.key) {
                    return Err(ConfigError::WrongKind(k));
                }
            }
        }
        Ok(())
    }

    /// blake3 of the batch's canonical bytes: what its signature covers.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("in-memory encode");
        *blake3::hash(&bytes).as_bytes()
    }
}

/// A keyspace in memory, for the coordinator's tests and the pure model
/// of apply: `apply(batch)` is what an edge does to its store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyspace {
    pub version: u64,
    pub entries: BTreeMap<String, Vec<u8>>,
}

impl Keyspace {
    /// Applies `batch` (which must be the next version); nothing changes
    /// on error.
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<(), ConfigError> {
        if batch.version != self.version + 1 {
            return Err(ConfigError::OutOfOrder {
                have: self.version,
                got: batch.version,
            });
        }
        batch.validate()?;
        for c in &batch.changes {
            let k = c.key.encode();
            match &c.value {
                Some(v) => self.entries.insert(k, v.encode()),
                None => self.entries.remove(&k),
            };
        }
        self.version = batch.version;
        Ok(())
    }

    /// The changes that turn `self` into `newer` (keys in order).
    pub fn diff(&self, newer: &Keyspace) -> Result<Vec<Change>, ConfigError> {
        let mut out = Vec::new();
        for (k, v) in &newer.entries {
            if self.entries.get(k) != Some(v) {
                out.push(Change {
                    key: Key::decode(k)?,
                    value: Some(Entry::decode(v)?),
                });
            }
        }
        for k in self.entries.keys() {
            if !newer.entries.contains_key(k) {
                out.push(Change {
                    key: Key::decode(k)?,
                    value: None,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::BlobHash;

    pub(crate) fn host(project: &str, deployment: &str, kind: HostKind) -> Entry {
        Entry::Host(HostTarget {
            project: project.into(),
            deployment: deployment.into(),
            bundle: BlobHash::of(deployment.as_bytes()),
            env: EnvKind::Production,
            kind,
        })
    }

    fn set(key: Key, value: Entry) -> Change {
        Change {
            key,
            value: Some(value),
        }
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        for k in [
            Key::Host("blog.localhost".into()),
            Key::Project("blog".into()),
            Key::Cert("*.localhost".into()),
            Key::Revoked("n1abc".into()),
            Key::Epoch,
            Key::Acme,
            Key::Challenge("shop.com".into()),
            Key::Https("shop.com".into()),
            Key::Salt(20_430),
            Key::Salt(0),
            Key::RequestLog("shop".into()),
            Key::Coordinators,
        ] {
            assert_eq!(Key::decode(&k.encode()).unwrap(), k);
        }
        for bad in [
            "",
            "h/",
            "x/blog",
            "blog",
            "r/not.a.label",
            "e/other",
            "k/other",
            "v/-1",
            "v/+5",
            "v/007",
            "v/1e3",
            "v/9999999999999",
            &format!("h/{}", "a".repeat(400)),
        ] {
            assert!(Key::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn batches_apply_in_order_only_and_bad_ones_change_nothing() {
        let mut ks = Keyspace::default();
        let b1 = ChangeBatch {
            version: 1,
            changes: vec![set(
                Key::Host("a.localhost".into()),
                host("a", "d1", HostKind::Production),
            )],
        };
        ks.apply(&b1).unwrap();
        let before = ks.clone();
        let skip = ChangeBatch {
            version: 3,
            changes: vec![],
        };
        assert!(matches!(
            ks.apply(&skip),
            Err(ConfigError::OutOfOrder { .. })
        ));
        let wrong_kind = ChangeBatch {
            version: 2,
            changes: vec![set(
                Key::Project("a".into()),
                host("a", "d2", HostKind::Production),
            )],
        };
        assert!(matches!(
            ks.apply(&wrong_kind),
            Err(ConfigError::WrongKind(_))
        ));
        let too_many = ChangeBatch {
            version: 2,
            changes: (0..=MAX_CHANGES_PER_BATCH)
                .map(|i| Change {
                    key: Key::Host(format!("h{i}.localhost")),
                    value: None,
                })
                .collect(),
        };
        assert!(matches!(
            ks.apply(&too_many),
            Err(ConfigError::TooManyChanges(_))
        ));
        assert_eq!(ks, before);
        let delete = ChangeBatch {
            version: 2,
            changes: vec![Change {
                key: Key::Host("a.localhost".into()),
                value: None,
            }],
        };
        ks.apply(&delete).unwrap();
        assert!(ks.entries.is_empty());
    }

    #[test]
    fn diff_then_apply_reaches_the_newer_keyspace() {
        let mut a = Keyspace::default();
        a.apply(&ChangeBatch {
            version: 1,
            changes: vec![
                set(
                    Key::Host("x.localhost".into()),
                    host("x", "1", HostKind::Production),
                ),
                set(
                    Key::Host("y.localhost".into()),
                    host("y", "1", HostKind::Deployment),
                ),
            ],
        })
        .unwrap();
        let mut b = Keyspace::default();
        b.apply(&ChangeBatch {
            version: 1,
            changes: vec![
                set(
                    Key::Host("x.localhost".into()),
                    host("x", "2", HostKind::Production),
                ),
                set(
                    Key::Project("x".into()),
                    Entry::Project(ProjectRuntime::default()),
                ),
            ],
        })
        .unwrap();
        let changes = a.diff(&b).unwrap();
        let mut c = a.clone();
        c.apply(&ChangeBatch {
            version: 2,
            changes,
        })
        .unwrap();
        assert_eq!(c.entries, b.entries);
    }

    #[test]
    fn redirect_locations_keep_the_path_and_never_change_the_host() {
        let r = HostRedirect {
            to: "www.shop.com".into(),
            status: 308,
        };
        for (scheme, pq, want) in [
            ("https", "/a/b?x=1", Some("https://www.shop.com/a/b?x=1")),
            ("http", "/", Some("http://www.shop.com/")),
            (
                "http",
                "//evil.com/x",
                Some("http://www.shop.com//evil.com/x"),
            ),
            ("http", "evil.com", Some("http://www.shop.com/")),
        ] {
            assert_eq!(r.location(scheme, pq).as_deref(), want, "{pq}");
        }
        let bad_status = HostRedirect {
            status: 200,
            ..r.clone()
        };
        let bad_host = HostRedirect {
            to: "evil.com/x".into(),
            ..r.clone()
        };
        assert_eq!(bad_status.location("http", "/"), None);
        assert_eq!(bad_host.location("http", "/"), None);
        assert!(Entry::Redirect(r).fits(&Key::Host("shop.com".into())));
    }

    #[test]
    fn debug_redacts_keys_and_values() {
        let env = RuntimeEnv {
            production: [("KEY".to_string(), "secret".to_string())].into(),
            ..Default::default()
        };
        let key = SealKey::generate(1);
        let rt = ProjectRuntime {
            env: env.seal(&key, "shop"),
            outbound: vec![],
        };
        let cert = CertEntry::seal("shop.example.com", "chain".into(), "secret", 1, &key);
        let dbg = format!("{env:?} {rt:?} {cert:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("KEY"));
    }

    /// What edges open is what the coordinator sealed, only under the
    /// entry it was sealed for, and a project without variables needs no key.
    #[test]
    fn runtime_and_certificate_secrets_open_only_where_they_belong() {
        let key = SealKey::generate(2);
        let mut ring = Keyring::default();
        let env = RuntimeEnv {
            production: [("TOKEN".to_string(), "p-secret".to_string())].into(),
            preview: [("TOKEN".to_string(), "v-secret".to_string())].into(),
        };
        let rt = ProjectRuntime {
            env: env.seal(&key, "shop"),
            outbound: vec![],
        };
        assert_eq!(
            RuntimeEnv::open(&rt, &ring, "shop"),
            Err(SealError::UnknownKey(2))
        );
        ring.insert(SealKey::new(key.material().clone()));
        let opened = RuntimeEnv::open(&rt, &ring, "shop").unwrap();
        assert_eq!(opened.get(EnvKind::Preview)["TOKEN"], "v-secret");
        assert_eq!(opened, env);
        assert_eq!(
            RuntimeEnv::open(&rt, &ring, "blog"),
            Err(SealError::Corrupt)
        );
        let bare = ProjectRuntime::default();
        assert!(RuntimeEnv::open(&bare, &Keyring::default(), "x")
            .unwrap()
            .is_empty());
        assert_eq!(RuntimeEnv::default().seal(&key, "shop"), None);

        let cert = CertEntry::seal("a.example.com", "chain".into(), "PEM", 9, &key);
        assert_eq!(cert.open_key(&ring, "a.example.com").unwrap(), "PEM");
        assert_eq!(
            cert.open_key(&ring, "b.example.com"),
            Err(SealError::Corrupt)
        );
        let bytes = Entry::Cert(cert.clone()).encode();
        assert!(!bytes.windows(3).any(|w| w == b"PEM"));
    }

    #[test]
    fn request_log_sampling_is_stable_and_near_its_rate() {
        assert!(RequestLogPolicy { sample_ppm: 1 }.is_valid());
        assert!(!RequestLogPolicy { sample_ppm: 0 }.is_valid());
        assert!(!RequestLogPolicy {
            sample_ppm: 1_000_001
        }
        .is_valid());
        let n = 100_000u64;
        for ppm in [10_000u32, 250_000, 1_000_000] {
            let kept = (0..n)
                .filter(|&id| RequestLogPolicy::samples(ppm, id))
                .count() as f64;
            let want = n as f64 * f64::from(ppm) / 1e6;
            assert!(
                (kept - want).abs() <= want * 0.05 + 10.0,
                "{ppm}: {kept} of {n}"
            );
        }
        // A lower rate keeps a subset of a higher one.
        for id in 0..10_000u64 {
            if RequestLogPolicy::samples(100_000, id) {
                assert!(RequestLogPolicy::samples(500_000, id));
            }
        }
    }

    #[test]
    fn coordinator_lists_are_bounded_and_well_formed() {
        let list = |a: &[&str]| CoordinatorList {
            addrs: a.iter().map(|s| s.to_string()).collect(),
        };
        for good in [
            &["127.0.0.1:8701"][..],
            &["coord-a.example.com:8701", "[::1]:8701", "c_b:1"],
        ] {
            assert!(list(good).is_valid(), "{good:?}");
        }
        let long = format!("{}:8701", "a".repeat(300));
        let many: Vec<String> = (0..=CoordinatorList::MAX)
            .map(|i| format!("c{i}:1"))
            .collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        for bad in [
            &[][..],
            &["127.0.0.1"],
            &["127.0.0.1:0"],
            &["127.0.0.1:65536"],
            &["127.0.0.1:08701"],
            &["127.0.0.1:+1"],
            &[":8701"],
            &["a b:8701"],
            &["[nonsense]:8701"],
            &["a:1", "a:1"],
            &[long.as_str()],
            &many,
        ] {
            assert!(!list(bad).is_valid(), "{:?}", bad.first());
        }
        let e = Entry::Coordinators(list(&["127.0.0.1:8701"]));
        assert!(e.fits(&Key::Coordinators));
        assert!(!e.fits(&Key::Epoch));
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }
}
