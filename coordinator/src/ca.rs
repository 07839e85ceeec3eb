//! The cluster CA: one self-signed root per coordinator data directory
//! (what edges trust and join tokens pin), which signs nothing itself but
//! two intermediates with name constraints, so that neither can stand in
//! for the other:
//!
//! - the **identity** CA, permitted only under `outpost.internal`: the
//!   coordinator's QUIC certificate and every node certificate (node id
//!   bound in as a DNS SAN);
//! - the **hosts** CA, excluded from `outpost.internal`: the HTTPS
//!   certificates edges serve for platform hosts.
//!
//! A host certificate can never name a node (webpki enforces the
//! constraints on every chain), whatever a tenant's host is called.
//! Certificates issued by the root directly, before the split, stay valid
//! until they are renewed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use time::{Duration, OffsetDateTime};

pub use protocol::wire::COORDINATOR_NAME;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cluster CA files in {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster CA in {0} is incomplete (ca.pem without ca-key.pem or the reverse)")]
    Incomplete(PathBuf),
    #[error("certificate signing request is invalid: {0}")]
    BadCsr(String),
    #[error("config signing key {0}")]
    BadSigningKey(String),
}

pub struct ClusterCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    cert_path: PathBuf,
    identity: Intermediate,
    hosts: Intermediate,
}

/// An intermediate CA and its certificate (PEM, sent along in chains).
struct Intermediate {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// The internal name space: node and coordinator identities live under it,
/// and no host certificate may.
pub const INTERNAL_DOMAIN: &str = "outpost.internal";

/// A certificate and its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

impl ClusterCa {
    /// Loads `ca.pem` + `ca-key.pem` from `dir`, creating them on first start
    /// (the key file with mode 0600).
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let io = |source| CaError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let (cert_pem, cert_der, root) = match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert_pem = std::fs::read_to_string(&cert_path).map_err(io)?;
                let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path).map_err(io)?)?;
                let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
                let cert_der =
                    pem_to_der(&cert_pem).ok_or_else(|| CaError::Incomplete(dir.into()))?;
                (cert_pem, cert_der, issuer)
            }
            (false, false) => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(Vec::<String>::new())?;
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, "Outpost cluster CA");
                params.distinguished_name = dn;
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
                params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
                let cert = params.self_signed(&key)?;
                platform::fs::write_private(&key_path, key.serialize_pem().as_bytes())
                    .map_err(io)?;
                std::fs::write(&cert_path, cert.pem()).map_err(io)?;
                (cert.pem(), cert.der().to_vec(), Issuer::new(params, key))
            }
            _ => return Err(CaError::Incomplete(dir.into())),
        };
        let internal = || GeneralSubtree::DnsName(INTERNAL_DOMAIN.to_string());
        let identity = Intermediate::load_or_create(
            dir,
            "identity-ca",
            "Outpost cluster identities",
            NameConstraints {
                permitted_subtrees: vec![internal()],
                excluded_subtrees: vec![],
            },
            &root,
        )?;
        let hosts = Intermediate::load_or_create(
            dir,
            "hosts-ca",
            "Outpost platform hosts",
            NameConstraints {
                permitted_subtrees: vec![],
                excluded_subtrees: vec![internal()],
            },
            &root,
        )?;
        Ok(ClusterCa {
            cert_pem,
            cert_der,
            cert_path,
            identity,
            hosts,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// blake3 of the CA certificate's DER: what a join token pins.
    pub fn fingerprint(&self) -> String {
        blake3::hash(&self.cert_der).to_hex().to_string()
    }

    fn leaf_params(
        &self,
        names: Vec<String>,
        life: Duration,
    ) -> Result<CertificateParams, CaError> {
        let mut params = CertificateParams::new(names)?;
        // Backdated a little for clocks behind ours; never more than a
        // tenth of the lifetime, so short test lifetimes stay meaningful.
        let now = OffsetDateTime::now_utc();
        params.not_before = now - std::cmp::min(life / 10_i32, Duration::hours(1));
        params.not_after = now + life;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    /// An HTTPS certificate (fresh key) for platform host `names`, from
    /// the hosts CA. A name in the internal name space is refused.
    pub fn issue_server(&self, names: Vec<String>, days: i64) -> Result<Issued, CaError> {
        if let Some(n) = names.iter().find(|n| is_internal(n)) {
            return Err(CaError::BadCsr(format!(
                "{n} is in the cluster's internal name space ({INTERNAL_DOMAIN})"
            )));
        }
        self.issue(&self.hosts, names, Duration::days(days))
    }

    /// The coordinator's own certificate (fresh key), valid for `life`,
    /// from the identity CA.
    pub fn issue_coordinator(&self, life: Duration) -> Result<Issued, CaError> {
        self.issue(&self.identity, vec![COORDINATOR_NAME.to_string()], life)
    }

    fn issue(
        &self,
        by: &Intermediate,
        names: Vec<String>,
        life: Duration,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate()?;
        let mut params = self.leaf_params(names, life)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let not_after = params.not_after;
        let cert = params.signed_by(&key, &by.issuer)?;
        Ok(Issued {
            // The root too: a joining node finds the CA its token pins in it.
            cert_pem: format!("{}{}{}", cert.pem(), by.cert_pem, self.cert_pem),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// Signs a node's CSR for `life_secs`. Only the CSR's public key is
    /// used: the names and usages are ours, so a node cannot ask for another
    /// node's identity. Returns the PEM and its end (Unix seconds).
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        life_secs: i64,
    ) -> Result<(String, i64), CaError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(CaError::BadCsr("larger than 16 KiB".into()));
        }
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        let mut params = self.leaf_params(
            vec![protocol::wire::node_name(node_id)],
            Duration::seconds(life_secs),
        )?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        params.distinguished_name = dn;
        let not_after = params.not_after.unix_timestamp();
        csr.params = params;
        let leaf = csr.signed_by(&self.identity.issuer)?.pem();
        Ok((format!("{leaf}{}", self.identity.cert_pem), not_after))
    }
}

/// Whether `name` lies in the internal name space (or is it).
pub fn is_internal(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == INTERNAL_DOMAIN || n.ends_with(&format!(".{INTERNAL_DOMAIN}"))
}

impl Intermediate {
    /// `<stem>.pem` + `<stem>-key.pem` in `dir`, made (signed by `root`)
    /// when absent. Lives as long as the root.
    fn load_or_create(
        dir: &Path,
        stem: &str,
        name: &str,
        constraints: NameConstraints,
        root: &Issuer<'static, KeyPair>,
    ) -> Result<Intermediate, CaError> {
        let io = |source| CaError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert_pem = std::fs::read_to_string(&cert_path).map_err(io)?;
                let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path).map_err(io)?)?;
                Ok(Intermediate {
                    issuer: Issuer::from_ca_cert_pem(&cert_pem, key)?,
                    cert_pem,
                })
            }
            (false, false) => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(Vec::<String>::new())?;
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, name);
                params.distinguished_name = dn;
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.name_constraints = Some(constraints);
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
                params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
                params.use_authority_key_identifier_extension = true;
                let cert = params.signed_by(&key, root)?;
                platform::fs::write_private(&key_path, key.serialize_pem().as_bytes())
                    .map_err(io)?;
                std::fs::write(&cert_path, cert.pem()).map_err(io)?;
                Ok(Intermediate {
                    cert_pem: cert.pem(),
                    issuer: Issuer::new(params, key),
                })
            }
            _ => Err(CaError::Incomplete(dir.into())),
        }
    }
}

/// The ed25519 key every edge config is signed with, next to the CA
/// (`config-key.pk8`, mode 0600), created on first start. Nodes get its
/// public half at `join`.
pub fn load_or_create_config_signer(
    dir: &Path,
) -> Result<protocol::signing::ConfigSigner, CaError> {
    let io = |source| CaError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let path = dir.join("config-key.pk8");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = protocol::signing::ConfigSigner::generate_pkcs8();
            platform::fs::write_private(&path, &b).map_err(io)?;
            b
        }
        Err(e) => return Err(io(e)),
    };
    protocol::signing::ConfigSigner::from_pkcs8(&bytes)
        .map_err(|e| CaError::BadSigningKey(format!("{}: {e}", path.display())))
}

pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let mut rd = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut rd).next()?;
    first.ok().map(|c| c.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_reload_keeps_the_same_root() {
        let dir = tempfile::tempdir().unwrap();
        let a = ClusterCa::load_or_create(dir.path()).unwrap();
        let b = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("ca-key.pem"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn config_signer_persists_and_a_corrupt_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_config_signer(dir.path()).unwrap();
        let b = load_or_create_config_signer(dir.path()).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        std::fs::write(dir.path().join("config-key.pk8"), b"garbage").unwrap();
        assert!(matches!(
            load_or_create_config_signer(dir.path()),
            Err(CaError::BadSigningKey(_))
        ));
    }

    #[test]
    fn half_a_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
        assert!(matches!(
            ClusterCa::load_or_create(dir.path()),
            Err(CaError::Incomplete(_))
        ));
    }

    #[test]
    fn bad_csr_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        for bad in ["", "not a csr", &"A".repeat(20_000)] {
            assert!(matches!(
                ca.sign_node_csr(bad, "n1", 3600),
                Err(CaError::BadCsr(_))
            ));
        }
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(vec!["evil.node.outpost.internal".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let (pem, not_after) = ca.sign_node_csr(&csr, "n1", 30 * 24 * 3600).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE"));
        // The certificate names the node we chose, not the one asked for,
        // and lasts as long as we said: both sides read it so.
        let der = pem_to_der(&pem).unwrap();
        assert_eq!(protocol::node_cert::node_id(&der).as_deref(), Some("n1"));
        let (from, until) = protocol::node_cert::validity(&der).unwrap();
        assert_eq!(until, not_after);
        assert!((until - OffsetDateTime::now_utc().unix_timestamp() - 30 * 24 * 3600).abs() < 5);
        assert!(until - from <= 30 * 24 * 3600 + 3600);
        assert!(!protocol::node_cert::renew_due((from, until), from + 3600));
        // The coordinator's certificate names no node.
        let server = ca.issue_coordinator(Duration::days(1)).unwrap();
        assert_eq!(
            protocol::node_cert::node_id(&pem_to_der(&server.cert_pem).unwrap()),
            None
        );
        // A node's chain verifies against the root through the identity CA.
        verify(&ca, &pem, "n1.node.outpost.internal").unwrap();
    }

    /// Verifies `chain_pem` (leaf first) for `name` against the root alone.
    fn verify(ca: &ClusterCa, chain_pem: &str, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls_pemfile::certs(&mut chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().to_vec().into()).unwrap();
        let v = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots))
            .build()
            .unwrap();
        v.verify_server_cert(
            &chain[0],
            &chain[1..],
            &rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn host_certificates_can_never_name_a_node_and_node_ones_only_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        // What the CA issues verifies against the root, through the right
        // intermediate.
        let host = ca.issue_server(vec!["blog.example.com".into()], 1).unwrap();
        verify(&ca, &host.cert_pem, "blog.example.com").unwrap();
        let coord = ca.issue_coordinator(Duration::days(1)).unwrap();
        verify(&ca, &coord.cert_pem, COORDINATOR_NAME).unwrap();
        // It refuses to issue a host certificate in the internal space...
        for internal in [
            "n1.node.outpost.internal",
            "outpost.internal",
            "X.Outpost.Internal.",
        ] {
            assert!(
                ca.issue_server(vec![internal.into()], 1).is_err(),
                "{internal}"
            );
        }
        // ...and were the hosts CA ever made to sign one, no verifier would
        // take it: the name constraints hold on the wire.
        let key = KeyPair::generate().unwrap();
        let evil = ca
            .leaf_params(vec!["n1.node.outpost.internal".into()], Duration::days(1))
            .unwrap()
            .signed_by(&key, &ca.hosts.issuer)
            .unwrap();
        let chain = format!("{}{}", evil.pem(), ca.hosts.cert_pem);
        assert!(verify(&ca, &chain, "n1.node.outpost.internal").is_err());
        // Nor can the identity CA vouch for a public host.
        let evil = ca
            .leaf_params(vec!["bank.example.com".into()], Duration::days(1))
            .unwrap()
            .signed_by(&key, &ca.identity.issuer)
            .unwrap();
        let chain = format!("{}{}", evil.pem(), ca.identity.cert_pem);
        assert!(verify(&ca, &chain, "bank.example.com").is_err());
        // Intermediates persist with the root.
        let again = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(again.hosts.cert_pem, ca.hosts.cert_pem);
        assert_eq!(again.identity.cert_pem, ca.identity.cert_pem);
    }
}
