//! The edge config: what every edge node must know to serve, versioned.
//! The coordinator sends a snapshot, then deltas computed by [`EdgeConfig::diff`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::BundleId;
use crate::manifest::Manifest;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConfig {
    /// Strictly increasing; 0 means "nothing yet".
    pub version: u64,
    /// Host name (normalised) → what it serves.
    pub hosts: BTreeMap<String, HostTarget>,
    /// Every bundle some host points at.
    pub bundles: BTreeMap<BundleId, Manifest>,
    /// Certificate name (`blog.localhost` or `*.localhost`) → chain and key.
    pub certificates: BTreeMap<String, CertEntry>,
    /// Project name → what its functions may see and do.
    pub projects: BTreeMap<String, ProjectRuntime>,
}

/// Which set of variables a host's functions get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    Production,
    Preview,
}

/// Per-project function settings. Values may be secrets: `Debug` hides them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRuntime {
    pub production_env: BTreeMap<String, String>,
    pub preview_env: BTreeMap<String, String>,
    /// Hosts functions may call (`api.example.com`); empty = no outbound.
    pub outbound: Vec<String>,
}

impl ProjectRuntime {
    pub fn env(&self, kind: EnvKind) -> &BTreeMap<String, String> {
        match kind {
            EnvKind::Production => &self.production_env,
            EnvKind::Preview => &self.preview_env,
        }
    }
}

impl fmt::Debug for ProjectRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectRuntime")
            .field(
                "production_env",
                &self.production_env.keys().collect::<Vec<_>>(),
            )
            .field("preview_env", &self.preview_env.keys().collect::<Vec<_>>())
            .field("outbound", &self.outbound)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTarget {
    pub project: String,
    pub deployment: String,
    pub bundle: BundleId,
    pub env: EnvKind,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEntry {
    pub chain_pem: String,
    pub key_pem: String,
    /// Unix seconds.
    pub not_after: i64,
}

// Private keys never reach logs.
impl fmt::Debug for CertEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertEntry")
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDelta {
    pub from_version: u64,
    pub to_version: u64,
    pub hosts_set: BTreeMap<String, HostTarget>,
    pub hosts_removed: Vec<String>,
    pub bundles_added: BTreeMap<BundleId, Manifest>,
    pub bundles_removed: Vec<BundleId>,
    pub certs_set: BTreeMap<String, CertEntry>,
    pub certs_removed: Vec<String>,
    pub projects_set: BTreeMap<String, ProjectRuntime>,
    pub projects_removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("delta applies to version {expected}, but this config is at {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("delta does not move forward ({from} → {to})")]
    NotForward { from: u64, to: u64 },
    #[error("host {host:?} points at bundle {bundle} which the config lacks")]
    DanglingBundle { host: String, bundle: BundleId },
}

impl EdgeConfig {
    /// What turns `self` into `newer`. Bundles are sent once: a delta
    /// carries only manifests the older config did not have.
    pub fn diff(&self, newer: &EdgeConfig) -> ConfigDelta {
        ConfigDelta {
            from_version: self.version,
            to_version: newer.version,
            hosts_set: changed(&self.hosts, &newer.hosts),
            hosts_removed: removed(&self.hosts, &newer.hosts),
            bundles_added: newer
                .bundles
                .iter()
                .filter(|(id, _)| !self.bundles.contains_key(id))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            bundles_removed: removed(&self.bundles, &newer.bundles),
            certs_set: changed(&self.certificates, &newer.certificates),
            certs_removed: removed(&self.certificates, &newer.certificates),
            projects_set: changed(&self.projects, &newer.projects),
            projects_removed: removed(&self.projects, &newer.projects),
        }
    }

    /// Applies a delta produced by [`diff`](Self::diff) against this version.
    /// On error nothing is changed.
    pub fn apply(&mut self, delta: &ConfigDelta) -> Result<(), ConfigError> {
        if delta.from_version != self.version {
            return Err(ConfigError::VersionMismatch {
                expected: delta.from_version,
                actual: self.version,
            });
        }
        if delta.to_version <= delta.from_version {
            return Err(ConfigError::NotForward {
                from: delta.from_version,
                to: delta.to_version,
            });
        }
        let mut next = self.clone();
        next.version = delta.to_version;
        for h in &delta.hosts_removed {
            next.hosts.remove(h);
        }
        next.hosts
            .extend(delta.hosts_set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for b in &delta.bundles_removed {
            next.bundles.remove(b);
        }
        next.bundles
            .extend(delta.bundles_added.iter().map(|(k, v)| (*k, v.clone())));
        for c in &delta.certs_removed {
            next.certificates.remove(c);
        }
        next.certificates
            .extend(delta.certs_set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for p in &delta.projects_removed {
            next.projects.remove(p);
        }
        next.projects.extend(
            delta
                .projects_set
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        next.check()?;
        *self = next;
        Ok(())
    }

    /// Every host must point at a bundle the config carries.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (host, t) in &self.hosts {
            if !self.bundles.contains_key(&t.bundle) {
                return Err(ConfigError::DanglingBundle {
                    host: host.clone(),
                    bundle: t.bundle,
                });
            }
        }
        Ok(())
    }
}

fn changed<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> BTreeMap<K, V> {
    new.iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn removed<K: Ord + Clone, V>(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Vec<K> {
    old.keys()
        .filter(|k| !new.contains_key(k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::BlobHash;
    use crate::manifest::FileEntry;

    fn bundle(tag: &str) -> (BundleId, Manifest) {
        let m = Manifest::new(
            [(
                "index.html".to_string(),
                FileEntry {
                    hash: BlobHash::of(tag.as_bytes()),
                    size: tag.len() as u64,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        );
        (m.bundle_id(), m)
    }

    fn config(version: u64, hosts: &[(&str, &str)], certs: &[&str]) -> EdgeConfig {
        let mut c = EdgeConfig {
            version,
            ..Default::default()
        };
        for (host, tag) in hosts {
            let (id, m) = bundle(tag);
            c.bundles.insert(id, m);
            c.hosts.insert(
                host.to_string(),
                HostTarget {
                    project: "p".into(),
                    deployment: format!("d-{tag}"),
                    bundle: id,
                    env: EnvKind::Production,
                },
            );
        }
        c.projects.insert(
            "p".into(),
            ProjectRuntime {
                production_env: [("KEY".to_string(), format!("secret-{version}"))].into(),
                ..Default::default()
            },
        );
        for name in certs {
            c.certificates.insert(
                name.to_string(),
                CertEntry {
                    chain_pem: format!("chain {name}"),
                    key_pem: "secret".into(),
                    not_after: 1,
                },
            );
        }
        c
    }

    #[test]
    fn diff_then_apply_reaches_the_newer_config() {
        let empty = EdgeConfig::default();
        let v1 = config(1, &[("a.localhost", "one")], &["*.localhost"]);
        let v2 = config(
            2,
            &[("a.localhost", "two"), ("b.localhost", "one")],
            &["*.localhost"],
        );
        let v3 = config(3, &[("b.localhost", "two")], &["b.localhost"]);
        let v4 = config(4, &[], &[]);
        let chain = [&empty, &v1, &v2, &v3, &v4];
        for pair in chain.windows(2) {
            let mut cur = pair[0].clone();
            let delta = pair[0].diff(pair[1]);
            cur.apply(&delta).unwrap();
            assert_eq!(&cur, pair[1]);
        }
        // Skipping versions works too: a delta is between any two configs.
        let mut cur = v1.clone();
        cur.apply(&v1.diff(&v4)).unwrap();
        assert_eq!(cur, v4);
    }

    #[test]
    fn delta_sends_only_new_bundles() {
        let v1 = config(1, &[("a.localhost", "one")], &[]);
        let v2 = config(2, &[("a.localhost", "one"), ("b.localhost", "one")], &[]);
        let d = v1.diff(&v2);
        assert!(d.bundles_added.is_empty());
        assert_eq!(d.hosts_set.len(), 1);
    }

    #[test]
    fn apply_refuses_bad_deltas_and_changes_nothing() {
        let v1 = config(1, &[("a.localhost", "one")], &[]);
        let v2 = config(2, &[("a.localhost", "two")], &[]);
        let mut wrong_base = EdgeConfig::default();
        assert!(matches!(
            wrong_base.apply(&v1.diff(&v2)),
            Err(ConfigError::VersionMismatch { .. })
        ));
        assert_eq!(wrong_base, EdgeConfig::default());

        let mut cur = v1.clone();
        let mut backwards = v1.diff(&v2);
        backwards.to_version = 1;
        assert!(matches!(
            cur.apply(&backwards),
            Err(ConfigError::NotForward { .. })
        ));

        let mut dangling = v1.diff(&v2);
        dangling.bundles_added.clear();
        assert!(matches!(
            cur.apply(&dangling),
            Err(ConfigError::DanglingBundle { .. })
        ));
        assert_eq!(cur, v1);
    }

    #[test]
    fn debug_redacts_keys() {
        let c = config(1, &[], &["x.localhost"]);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("KEY"));
    }
}
