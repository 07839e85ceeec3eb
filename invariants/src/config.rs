//! The config log: keys and entries as stored and sent, signed batches,
//! snapshot pages, and the keyspace's state hash.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use protocol::config::{ChangeBatch, Entry, Key, Keyspace};
use protocol::signing::{ConfigSigner, ConfigVerifier, SignedBatch};
use protocol::state_hash::{StateHash, STATE_BYTES};
use protocol::wire::decode_body;

use crate::bytes::{pick, text};

/// A signer no input can know the key of: whatever a fuzzer sends, no
/// signature it makes verifies.
fn signer() -> &'static (ConfigSigner, ConfigVerifier) {
    static KEYS: OnceLock<(ConfigSigner, ConfigVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
        let verifier = ConfigVerifier::from_hex(&signer.public_key_hex()).unwrap();
        (signer, verifier)
    })
}

/// A key decodes to the one key its text names, and back.
pub fn keys(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(key) = Key::decode(s) {
        assert_eq!(key.encode(), s, "a key's text is not canonical");
        assert_eq!(Key::decode(&key.encode()).as_ref(), Ok(&key));
    }
}

/// An entry decodes and re-encodes to itself; what the edge asks of an
/// entry (does it fit its key, where does a redirect go) never panics, and
/// a host redirect never leaves its target host.
pub fn entries(data: &[u8]) {
    let Ok(entry) = Entry::decode(data) else {
        return;
    };
    check_entry(&entry);
    let bytes = entry.encode();
    assert_eq!(
        Entry::decode(&bytes).as_ref(),
        Ok(&entry),
        "decode(encode(e)) != e"
    );
    if let Entry::Redirect(r) = &entry {
        for pq in [
            "/",
            "//evil.example/x",
            "/a?b=c",
            "evil.example",
            "@evil.example",
        ] {
            if let Some(location) = r.location("https", pq) {
                let prefix = format!("https://{}/", r.to);
                assert!(location.starts_with(&prefix), "{location} leaves {}", r.to);
            }
        }
    }
}

fn check_entry(entry: &Entry) {
    for key in [Key::Host("a.example".into()), Key::Epoch, Key::Coordinators] {
        let _ = entry.fits(&key);
    }
    match entry {
        Entry::Coordinators(list) => {
            let _ = list.is_valid();
        }
        Entry::RequestLog(policy) => {
            let _ = policy.is_valid();
        }
        _ => {}
    }
}

/// A batch from the network never verifies under a key its sender does
/// not hold; one the coordinator signs verifies, and only for the state
/// it was signed with.
pub fn signed_batches(data: &[u8]) {
    let (which, rest) = pick(data);
    if which % 2 == 0 {
        if let Ok(batches) = decode_body::<Vec<SignedBatch>>(rest) {
            check_batches(&batches);
        }
        return;
    }
    // A batch as the coordinator makes one: applied to an empty keyspace,
    // signed with the state after it.
    let Ok(mut batch) = decode_body::<ChangeBatch>(rest) else {
        return;
    };
    let _ = batch.validate();
    batch.version = 1;
    let mut ks = Keyspace::default();
    if ks.apply(&batch).is_err() {
        assert_eq!(
            ks,
            Keyspace::default(),
            "a refused batch changed the keyspace"
        );
        return;
    }
    let state = state_of(&ks);
    // Applied change by change, as an edge does, the state is the same.
    let mut shadow: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut incremental = StateHash::default();
    for change in &batch.changes {
        let key = change.key.encode();
        if let Some(old) = shadow.remove(&key) {
            incremental.remove(&key, &old);
        }
        if let Some(v) = &change.value {
            let v = v.encode();
            incremental.add(&key, &v);
            shadow.insert(key, v);
        }
    }
    assert_eq!(
        shadow, ks.entries,
        "the keyspace is not its changes in order"
    );
    assert_eq!(
        incremental.checksum(),
        state,
        "incremental and whole state differ"
    );
    let (signer, verifier) = signer();
    let sig = signer.sign(&batch, state);
    verifier
        .verify(&batch, &sig, state)
        .expect("a signed batch verifies");
    let mut other = state;
    other[0] ^= 1;
    assert!(
        verifier.verify(&batch, &sig, other).is_err(),
        "verified for another state"
    );
    let mut fewer = batch.clone();
    if fewer.changes.pop().is_some() {
        assert!(
            verifier.verify(&fewer, &sig, state).is_err(),
            "verified another batch"
        );
    }
}

/// What an edge does with batches it is sent: validate, then verify.
pub fn check_batches(batches: &[SignedBatch]) {
    let (_, verifier) = signer();
    for b in batches {
        let _ = b.batch.validate();
        let _ = verifier.verify_signature(&b.signature);
        assert!(
            verifier
                .verify(&b.batch, &b.signature, b.signature.state)
                .is_err(),
            "a batch signed without the key verified"
        );
    }
}

/// Snapshot pages: entries as stored, each key and entry canonical.
pub fn snapshot_pages(data: &[u8]) {
    if let Ok(page) = decode_body::<Vec<(String, Vec<u8>)>>(data) {
        check_page(&page);
    }
}

pub fn check_page(page: &[(String, Vec<u8>)]) {
    for (k, v) in page {
        keys(k.as_bytes());
        if let (Ok(key), Ok(entry)) = (Key::decode(k), Entry::decode(v)) {
            let _ = entry.fits(&key);
            check_entry(&entry);
        }
    }
}

/// The state hash: exactly its size or nothing; stored bytes come back
/// as they were; removing what was added restores the state.
pub fn state_hash(data: &[u8]) {
    let (split, rest) = pick(data);
    match StateHash::from_bytes(rest) {
        Some(s) => {
            assert_eq!(rest.len(), STATE_BYTES);
            assert_eq!(s.to_bytes(), rest);
            let cut = usize::from(split).min(rest.len());
            let key = String::from_utf8_lossy(&rest[..cut]);
            let mut t = s.clone();
            t.add(&key, &rest[cut..]);
            assert_ne!(t.checksum(), s.checksum(), "an element added nothing");
            t.remove(&key, &rest[cut..]);
            assert_eq!(t, s, "remove did not undo add");
        }
        None => assert_ne!(rest.len(), STATE_BYTES),
    }
}

fn state_of(ks: &Keyspace) -> [u8; 32] {
    StateHash::of(ks.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).checksum()
}
