//! What the first coordinator of a cluster makes and every other one reads
//! from the database: the cluster CA and the config-signing key (one
//! sealed document in `cluster_material`), and the admin token.
//!
//! The database is where they live, sealed with the instance secret key,
//! so any coordinator started with that key (and the database URL) is a
//! full member: nothing has to be copied between machines but the key.
//! Each coordinator keeps a copy in `<data_dir>/ca` (keys mode 0600),
//! checked against the database at every start: the files `ClusterCa`
//! has always read. Two coordinators starting together on an empty
//! database each make a CA, and `INSERT … ON CONFLICT DO NOTHING` keeps one;
//! both then use the one kept.
//!
//! A data directory that already holds a CA (a single coordinator from
//! before) gives the database its CA and key the first time, so an
//! upgrade keeps every edge's trust.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};

use crate::secrets::SecretBox;
use crate::store::Store;

/// The row holding the CA and signing key.
const MATERIAL: &str = "cluster-ca";

/// The files of `<data_dir>/ca` that make up the cluster's keys; the
/// private ones are written with mode 0600.
const FILES: [(&str, bool); 7] = [
    ("ca.pem", false),
    ("ca-key.pem", true),
    ("identity-ca.pem", false),
    ("identity-ca-key.pem", true),
    ("hosts-ca.pem", false),
    ("hosts-ca-key.pem", true),
    ("config-key.pk8", true),
];

/// Files by name, contents hex-encoded (the signing key is binary).
type Material = BTreeMap<String, String>;

/// Makes sure `ca_dir` holds the cluster's CA and signing key as the
/// database has them, creating them (or taking this directory's) when the
/// database has none yet.
pub async fn cluster_material(
    store: &Store,
    secrets: &SecretBox,
    ca_dir: &Path,
) -> anyhow::Result<()> {
    if store.cluster_material(MATERIAL).await?.is_none() {
        let made = if ca_dir.join("ca.pem").exists() {
            // An existing single coordinator's: complete it (intermediates
            // and signing key of older versions) and offer it.
            crate::ca::ClusterCa::load_or_create(ca_dir)?;
            crate::ca::load_or_create_config_signer(ca_dir)?;
            read_dir(ca_dir)?
        } else {
            let tmp = tempdir_beside(ca_dir)?;
            crate::ca::ClusterCa::load_or_create(tmp.path())?;
            crate::ca::load_or_create_config_signer(tmp.path())?;
            read_dir(tmp.path())?
        };
        let sealed = secrets.seal(&serde_json::to_string(&made)?);
        if store.insert_cluster_material(MATERIAL, &sealed).await? {
            tracing::info!("cluster CA and config-signing key stored in the database (sealed)");
        }
    }
    let sealed = store
        .cluster_material(MATERIAL)
        .await?
        .context("the cluster CA vanished from the database while starting")?;
    let json = secrets.open(&sealed).map_err(|e| {
        anyhow::anyhow!(
            "the cluster CA in the database cannot be opened with this coordinator's instance secret key ({e}): \
             every coordinator of one cluster needs the same key (OUTPOST_SECRET_KEY / --secret-key, \
             or the first coordinator's <data_dir>/secret.key)"
        )
    })?;
    let material: Material =
        serde_json::from_str(&json).context("the cluster CA in the database is malformed")?;
    write_dir(ca_dir, &material)
}

/// On the first start of a cluster, creates the admin API token (stored
/// hashed, written to `<data_dir>/admin-token`, mode 0600) and returns it.
/// Its id is fixed, so of coordinators starting together exactly one
/// makes it.
pub async fn admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if store.count_api_tokens().await? > 0 {
        return Ok(None);
    }
    let token = format!(
        "{}{}",
        crate::ids::API_TOKEN_PREFIX,
        crate::ids::new_secret()
    );
    if !store
        .create_api_token_once("admin", "admin", &crate::ids::token_hash(&token))
        .await?
    {
        return Ok(None);
    }
    platform::fs::write_private(
        &data_dir.join("admin-token"),
        format!("{token}\n").as_bytes(),
    )?;
    Ok(Some(token))
}

fn read_dir(dir: &Path) -> anyhow::Result<Material> {
    FILES
        .iter()
        .map(|(name, _)| {
            let bytes = std::fs::read(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))?;
            Ok((name.to_string(), hex::encode(bytes)))
        })
        .collect()
}

/// Writes the material's files into `dir`. A file that is there with other
/// contents means this data directory belongs to another cluster: refused,
/// rather than changing what the edges it enrolled trust.
fn write_dir(dir: &Path, material: &Material) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, private) in FILES {
        let hex_bytes = material
            .get(name)
            .with_context(|| format!("the cluster CA in the database lacks {name}"))?;
        let bytes = hex::decode(hex_bytes)
            .with_context(|| format!("the cluster CA in the database has a malformed {name}"))?;
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(have) if have == bytes => continue,
            Ok(_) => bail!(
                "{} differs from the cluster CA in the database: this data directory belongs to another cluster. \
                 Point the coordinator at its own database, or move {} aside to join this one",
                path.display(),
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if private {
            platform::fs::write_private(&path, &bytes)?;
        } else {
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// A temporary directory next to `dir` (same file system, same
/// permissions regime), removed when dropped.
fn tempdir_beside(dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    Ok(tempfile::Builder::new()
        .prefix(".ca-new-")
        .tempdir_in(parent)?)
}
