//! The cluster key on this node (see [`protocol::sealed`]): held in memory
//! only, never written to the data directory, so that a copy of the
//! directory holds the config's secrets only sealed. After a start the
//! node asks its coordinator for the keys, or, while the coordinator is
//! away, a live peer (peers answer only nodes the cluster still has).
//! Until the key arrives, functions of projects with variables answer 503
//! and certificates sealed to it are not served; static sites over HTTP,
//! and functions without variables, are not held up.
//!
//! An operator who wants HTTPS and functions back after a restart with no
//! coordinator and no peer (a one-node cluster) may name a key cache
//! (`--key-cache`): a file *outside* the data directory, best on a tmpfs
//! such as `/run`, so that it outlives the process but not the machine and
//! is never part of a copy of the data directory.
//!
//! Architecture invariant: a key from a peer is installed only for a
//! generation the signed config uses and only if it opens a value sealed
//! to that generation, so a peer can withhold keys but not plant one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::sealed::{KeyMaterial, Keyring, SealKey, Sealed, MAX_KEYS_PER_MESSAGE};
use protocol::wire::{CoordinatorMessage, EdgeRequest, MAX_CONTROL_FRAME_BYTES};
use protocol::Key;
use tokio::sync::watch;

use crate::config_state::{ConfigState, Desired};
use crate::mesh::Mesh;

/// How often a node that lacks a key the config uses asks again.
const RETRY: Duration = Duration::from_secs(2);
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The generations this node holds; a new keyring is published whenever
/// one is added (sites are then built again with what it opens).
pub struct ClusterKeys {
    ring: watch::Sender<Arc<Keyring>>,
    /// `--key-cache`: where the keyring is kept across restarts, if anywhere.
    cache: Option<PathBuf>,
}

impl Default for ClusterKeys {
    fn default() -> Self {
        ClusterKeys {
            ring: watch::channel(Arc::new(Keyring::default())).0,
            cache: None,
        }
    }
}

/// `p` with its folder's links and `..` resolved where the folder exists.
fn resolved(p: &Path) -> PathBuf {
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    match p.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// A key cache is a handful of 36-byte keys; anything larger is not one.
const MAX_CACHE_BYTES: u64 = 64 * 1024;

impl ClusterKeys {
    /// Keys kept in `cache` (which must lie outside `data_dir`), read now
    /// if the file exists and written whenever a generation is added.
    pub fn with_cache(cache: &Path, data_dir: &Path) -> anyhow::Result<ClusterKeys> {
        if resolved(cache).starts_with(resolved(data_dir)) {
            bail!(
                "--key-cache {} lies inside the data directory {}: a copy of the directory would \
                 carry the key that opens its secrets; put it outside (e.g. on the tmpfs /run)",
                cache.display(),
                data_dir.display()
            );
        }
        let mut ring = Keyring::default();
        match std::fs::metadata(cache) {
            Ok(m) if m.len() > MAX_CACHE_BYTES => {
                bail!(
                    "--key-cache {}: {} bytes is not a key cache",
                    cache.display(),
                    m.len()
                )
            }
            Ok(_) => {
                let bytes = std::fs::read(cache)
                    .with_context(|| format!("reading the key cache {}", cache.display()))?;
                match protocol::wire::decode_body::<Vec<KeyMaterial>>(&bytes) {
                    Ok(keys) => {
                        for m in keys.into_iter().take(MAX_KEYS_PER_MESSAGE) {
                            ring.insert(SealKey::new(m));
                        }
                    }
                    // Not ours, or torn: the coordinator or a peer refills it.
                    Err(e) => {
                        tracing::warn!(cache = %cache.display(), error = %e, "ignoring an unreadable key cache")
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("--key-cache {}: {e}", cache.display()),
        }
        Ok(ClusterKeys {
            ring: watch::channel(Arc::new(ring)).0,
            cache: Some(cache.to_path_buf()),
        })
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.ring.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Keyring>> {
        self.ring.subscribe()
    }

    /// Adds what `keys` holds that this node lacks: from the coordinator
    /// (`trusted`) every generation; from a peer only those the config
    /// uses, each checked against a value sealed to it. Returns how many
    /// generations were added.
    pub fn install(&self, keys: Vec<KeyMaterial>, desired: &Desired, trusted: bool) -> usize {
        let mut ring = Keyring::clone(&self.current());
        let want = missing(desired, &ring);
        let mut added = 0;
        for m in keys.into_iter().take(MAX_KEYS_PER_MESSAGE) {
            // A generation held is replaced only when it does not open the
            // config (the database that made it was rebuilt).
            if ring.contains(m.generation) && !want.contains_key(&m.generation) {
                continue;
            }
            let key = SealKey::new(m);
            let fits = match want.get(&key.generation()) {
                Some((context, sample)) => key.open(context, sample).is_ok(),
                None => trusted,
            };
            if fits {
                ring.insert(key);
                added += 1;
            } else {
                tracing::warn!(
                    generation = key.generation(),
                    "refused a cluster key that does not open the config"
                );
            }
        }
        if added > 0 {
            self.save(&ring);
            self.ring.send_replace(Arc::new(ring));
        }
        added
    }

    fn save(&self, ring: &Keyring) {
        let Some(path) = &self.cache else { return };
        let bytes = bincode::serde::encode_to_vec(ring.materials(), bincode::config::standard())
            .expect("in-memory encode");
        if let Err(e) = platform::fs::write_private(path, &bytes) {
            tracing::warn!(cache = %path.display(), error = %e, "writing the key cache");
        }
    }
}

/// The generations the config uses that `ring` lacks (or holds a key of
/// that does not open them), each with one value sealed to it (its
/// context and the sealed bytes).
pub fn missing(desired: &Desired, ring: &Keyring) -> BTreeMap<u32, (String, Sealed)> {
    let runtimes = desired.projects.iter().filter_map(|(p, rt)| {
        rt.env
            .as_ref()
            .map(|s| (Key::Project(p.clone()).encode(), s))
    });
    let certs = desired
        .certs
        .iter()
        .map(|(name, c)| (Key::Cert(name.clone()).encode(), &c.key));
    let mut out = BTreeMap::new();
    let mut fine = std::collections::BTreeSet::new();
    for (context, sealed) in runtimes.chain(certs) {
        if fine.contains(&sealed.key) || out.contains_key(&sealed.key) {
            continue;
        }
        if ring.open(&context, sealed).is_ok() {
            fine.insert(sealed.key);
        } else {
            out.insert(sealed.key, (context, sealed.clone()));
        }
    }
    out
}

/// Keeps the keyring complete until shutdown: asks the coordinator at
/// every new link (new generations arrive before the entries that use
/// them are needed) and whenever the config uses a generation this node
/// lacks; without a link, asks live peers in turn.
pub async fn run(
    keys: Arc<ClusterKeys>,
    config: Arc<ConfigState>,
    mut conn: watch::Receiver<Option<quinn::Connection>>,
    mesh: Arc<Mesh>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut desired = config.subscribe();
    let mut fresh_link = true;
    // Said once per stretch without the key, not at every retry.
    let mut warned = false;
    loop {
        let d = desired.borrow_and_update().clone();
        let link = conn.borrow_and_update().clone();
        let lacking = !missing(&d, &keys.current()).is_empty();
        if lacking || (fresh_link && link.is_some()) {
            fresh_link = false;
            if let Err(e) = fetch(&keys, &d, link.as_ref(), &mesh).await {
                if lacking && !warned {
                    warned = true;
                    tracing::warn!(error = %format!("{e:#}"), "the cluster key is not here yet; functions with variables and sealed certificates wait for it");
                }
            }
        }
        let lacking = !missing(&d, &keys.current()).is_empty();
        warned &= lacking;
        tokio::select! {
            _ = desired.changed() => {}
            r = conn.changed() => {
                if r.is_err() { return; }
                fresh_link = true;
            }
            _ = tokio::time::sleep(RETRY), if lacking => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round: the coordinator if linked, else each live peer until the
/// config's generations are all here.
async fn fetch(
    keys: &ClusterKeys,
    desired: &Desired,
    link: Option<&quinn::Connection>,
    mesh: &Mesh,
) -> anyhow::Result<()> {
    if let Some(conn) = link {
        let got = from_coordinator(conn).await?;
        let added = keys.install(got, desired, true);
        if added > 0 {
            tracing::info!(added, "cluster key received from the coordinator");
        }
        return Ok(());
    }
    let mut last = None;
    for peer in mesh.live_peers() {
        match crate::mesh::peer::request_keys(&mesh.transport, &peer).await {
            Ok(got) => {
                let added = keys.install(got, desired, false);
                if added > 0 {
                    tracing::info!(added, peer = %peer.node_id, "cluster key received from a peer");
                }
                if missing(desired, &keys.current()).is_empty() {
                    return Ok(());
                }
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => bail!("no coordinator link and no live peer to ask"),
    }
}

async fn from_coordinator(conn: &quinn::Connection) -> anyhow::Result<Vec<KeyMaterial>> {
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &EdgeRequest::ClusterKeys).await?;
        send.finish()?;
        read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
            .await?
            .context("the coordinator closed the stream without answering")
    };
    match tokio::time::timeout(ASK_TIMEOUT, ask)
        .await
        .context("no answer to the cluster key request")??
    {
        CoordinatorMessage::ClusterKeys(k) => Ok(k),
        CoordinatorMessage::Error(e) => bail!("the coordinator refused: {}", e.message),
        other => bail!("unexpected answer to a cluster key request: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{CertEntry, ProjectRuntime, RuntimeEnv};

    fn config_sealed_to(key: &SealKey) -> Desired {
        let env = RuntimeEnv {
            production: [("K".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let rt = ProjectRuntime {
            env: env.seal(key, "shop"),
            outbound: vec![],
        };
        let cert = CertEntry::seal("shop.example.com", "chain".into(), "pem", 1, key);
        Desired {
            projects: Arc::new([("shop".to_string(), Arc::new(rt))].into()),
            certs: Arc::new([("shop.example.com".to_string(), cert)].into()),
            ..Default::default()
        }
    }

    /// The key cache: never inside the data directory, bounded, a torn or
    /// foreign file ignored, and what was installed is there after a restart.
    #[test]
    fn the_key_cache_lives_outside_the_data_directory_and_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inside = ClusterKeys::with_cache(&data.join("keys"), &data);
        assert!(inside
            .err()
            .unwrap()
            .to_string()
            .contains("inside the data directory"));
        std::fs::create_dir_all(data.join("sub")).unwrap();
        let dotted = data.join("sub/../keys");
        assert!(ClusterKeys::with_cache(&dotted, &data).is_err());

        let cache = tmp.path().join("run-keys");
        std::fs::write(&cache, vec![0u8; (MAX_CACHE_BYTES + 1) as usize]).unwrap();
        assert!(ClusterKeys::with_cache(&cache, &data).is_err(), "oversized");
        std::fs::write(&cache, b"\xff\xff torn").unwrap();
        let keys = ClusterKeys::with_cache(&cache, &data).unwrap();
        assert!(keys.current().is_empty(), "a torn cache is ignored");

        let real = SealKey::generate(3);
        let desired = config_sealed_to(&real);
        assert_eq!(
            keys.install(vec![real.material().clone()], &desired, true),
            1
        );
        let again = ClusterKeys::with_cache(&cache, &data).unwrap();
        assert!(missing(&desired, &again.current()).is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    /// A peer can withhold a key but not plant one: only a generation the
    /// config uses, and only the key that opens it.
    #[test]
    fn only_keys_that_open_the_config_are_taken_from_peers() {
        let real = SealKey::generate(4);
        let desired = config_sealed_to(&real);
        let keys = ClusterKeys::default();
        assert_eq!(
            missing(&desired, &keys.current())
                .keys()
                .collect::<Vec<_>>(),
            [&4]
        );

        let forged = SealKey::generate(4).material().clone();
        let unused = SealKey::generate(9).material().clone();
        assert_eq!(
            keys.install(vec![forged, unused.clone()], &desired, false),
            0
        );
        assert!(keys.current().is_empty());

        assert_eq!(
            keys.install(vec![real.material().clone()], &desired, false),
            1
        );
        assert!(missing(&desired, &keys.current()).is_empty());
        // The coordinator is trusted with generations not in use yet.
        assert_eq!(keys.install(vec![unused], &desired, true), 1);
        assert_eq!(keys.current().len(), 2);

        // A config sealed to another key of a generation held (the
        // coordinator's database was rebuilt): that generation is missing
        // again, and the key that opens it replaces the one held.
        let remade = SealKey::generate(4);
        let desired = config_sealed_to(&remade);
        assert_eq!(
            missing(&desired, &keys.current())
                .keys()
                .collect::<Vec<_>>(),
            [&4]
        );
        assert_eq!(
            keys.install(vec![real.material().clone()], &desired, true),
            0
        );
        assert_eq!(
            keys.install(vec![remade.material().clone()], &desired, false),
            1
        );
        assert!(missing(&desired, &keys.current()).is_empty());
    }
}
