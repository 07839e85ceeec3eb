//! Valid inputs for each target: what the platform itself sends and
//! stores. The tests run every check on them (so each check's round trips
//! run in CI on real encodings), and `fuzz/run.sh` starts each fuzzer's
//! corpus from them, so mutation begins inside the format rather than at
//! its first length check.

use std::collections::BTreeMap;

use analytics::model::Aggregate;
use analytics::{Env, Granularity, Record, RecordId, SiteKey};
use protocol::config::{
    Change, ChangeBatch, Entry, EnvKind, HostKind, HostRedirect, HostTarget, Key,
};
use protocol::hash::BlobHash;
use protocol::manifest::{FileEntry, Manifest};
use protocol::mesh::{ConfigAnnounce, MemberState, MemberView, PeerMessage, PeerRequest};
use protocol::routing::from_sources;
use protocol::sealed::{KeyMaterial, SealKey};
use protocol::signing::{ConfigSigner, SignedBatch};
use protocol::state_hash::{StateHash, STATE_BYTES};
use protocol::wire::{encode_frame, CoordinatorMessage, EdgeReport, EdgeRequest, Subscribe};

const VERCEL: &str = r#"{"cleanUrls":true,"redirects":[{"source":"/old/:slug","destination":"/new/:slug"}],"rewrites":[{"source":"/app/(.*)","destination":"/app/index.html"}],"headers":[{"source":"/(.*)","headers":[{"key":"X-Frame-Options","value":"DENY"}]}]}"#;
const REDIRECTS: &str = "/blog/* /news/:splat 301\n/shop https://shop.example/ 302!\n/spa/* /spa/index.html 200\n/q id=:id /item/:id 301\n";
const HEADERS: &str =
    "/*\n  X-Frame-Options: DENY\n/assets/*\n  Cache-Control: public, max-age=31536000\n";
const OUTPOST_TOML: &str = "clean_urls = true\ntrailing_slash = false\n\n[[redirects]]\nsource = \"/old/:slug\"\ndestination = \"/new/:slug\"\nstatus = 301\n\n[[rewrites]]\nsource = \"/app/*\"\ndestination = \"/app/index.html\"\n\n[[headers]]\nsource = \"/*\"\nheaders = { \"X-Frame-Options\" = \"DENY\" }\n\n[[functions]]\nroute = \"/api/:name\"\ncomponent = \"api.wasm\"\ntimeout = \"5s\"\n";

fn host(project: &str) -> Entry {
    Entry::Host(HostTarget {
        project: project.into(),
        deployment: "d1".into(),
        bundle: BlobHash::of(project.as_bytes()),
        env: EnvKind::Production,
        kind: HostKind::Production,
    })
}

fn batch() -> ChangeBatch {
    ChangeBatch {
        version: 1,
        changes: vec![
            Change {
                key: Key::Host("a.example".into()),
                value: Some(host("a")),
            },
            Change {
                key: Key::Host("www.a.example".into()),
                value: Some(Entry::Redirect(HostRedirect {
                    to: "a.example".into(),
                    status: 308,
                })),
            },
            Change {
                key: Key::Host("gone.example".into()),
                value: None,
            },
        ],
    }
}

fn manifest() -> Manifest {
    let file = |body: &[u8], content_type: &str| FileEntry {
        hash: BlobHash::of(body),
        size: body.len() as u64,
        content_type: content_type.into(),
        variants: Vec::new(),
    };
    let mut m = Manifest::new(BTreeMap::from([
        ("index.html".to_string(), file(b"<h1>hi</h1>", "text/html")),
        ("404.html".to_string(), file(b"gone", "text/html")),
        ("a/index.html".to_string(), file(b"a", "text/html")),
        ("app.3f2a.js".to_string(), file(b"js", "text/javascript")),
    ]));
    m.routing = from_sources(None, Some(VERCEL), Some(REDIRECTS), Some(HEADERS)).unwrap();
    m
}

fn signed() -> SignedBatch {
    let signer = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
    let batch = batch();
    let signature = signer.sign(&batch, StateHash::default().checksum());
    SignedBatch { batch, signature }
}

fn body<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
}

fn with(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    v.extend_from_slice(rest);
    v
}

fn record() -> Record {
    let mut aggregate = Aggregate {
        requests: 3,
        page_views: 2,
        bytes: 300,
        ..Default::default()
    };
    aggregate.status.insert(200, 2);
    aggregate.status.insert(404, 1);
    aggregate.pages.add("/", 2);
    Record {
        id: RecordId {
            start: 1_700_000_040,
            seq: 1,
        },
        granularity: Granularity::Minute,
        sites: vec![(
            SiteKey {
                project: "a".into(),
                deployment: "d1".into(),
                env: Env::Production,
            },
            aggregate,
        )],
    }
}

/// Seeds of a target, by name (empty for none).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let frame = |first: u8, bytes: Vec<u8>| with(first, &bytes);
    match target {
        "wire_frames" => vec![
            frame(0, encode_frame(&EdgeRequest::GetBlob { hash: BlobHash::of(b"x") }).unwrap()),
            frame(0, encode_frame(&EdgeRequest::Subscribe(Subscribe {
                have_version: 3,
                software_version: "0.1.0".into(),
                http_addr: Some("127.0.0.1:80".into()),
                https_addr: None,
                mesh_addr: Some("127.0.0.1:7000".into()),
            }))
            .unwrap()),
            frame(0, encode_frame(&EdgeRequest::Analytics(record().encode())).unwrap()),
            frame(1, encode_frame(&CoordinatorMessage::Manifest(manifest().canonical_bytes())).unwrap()),
            frame(1, encode_frame(&CoordinatorMessage::Batches(vec![signed()])).unwrap()),
            frame(1, encode_frame(&CoordinatorMessage::SnapshotPage(vec![(
                Key::Host("a.example".into()).encode(),
                host("a").encode(),
            )]))
            .unwrap()),
            frame(2, encode_frame(&EdgeReport::Status {
                config_version: 4,
                bundles_present: 1,
                bundles_pending: 0,
                members: vec![MemberView { node_id: "n1".into(), state: MemberState::Alive }],
                resources: Default::default(),
            })
            .unwrap()),
            frame(3, encode_frame(&PeerRequest::GetBatches { have_version: 2 }).unwrap()),
            frame(4, encode_frame(&PeerMessage::UpToDate { version: 2 }).unwrap()),
        ],
        "manifest_bytes" => vec![manifest().canonical_bytes(), Manifest::new(BTreeMap::new()).canonical_bytes()],
        "manifest_json" => vec![serde_json::to_vec(&manifest()).unwrap()],
        "config_keys" => [
            Key::Host("a.example".into()),
            Key::Project("a".into()),
            Key::Epoch,
            Key::Salt(20_000),
            Key::Coordinators,
        ]
        .iter()
        .map(|k| k.encode().into_bytes())
        .collect(),
        "config_entries" => batch()
            .changes
            .iter()
            .filter_map(|c| c.value.as_ref().map(Entry::encode))
            .collect(),
        "signed_batches" => vec![with(0, &body(&vec![signed()])), with(1, &body(&batch()))],
        "snapshot_pages" => vec![body(&vec![
            (Key::Host("a.example".into()).encode(), host("a").encode()),
            (Key::Project("a".into()).encode(), Entry::Project(Default::default()).encode()),
        ])],
        "state_hash" => vec![with(9, &vec![7u8; STATE_BYTES])],
        "config_announce" => vec![ConfigAnnounce { node_id: "n1".into(), version: 9 }.encode()],
        "join_token" => vec![format!("opj_{}_{}", "a1".repeat(32), "0f".repeat(32)).into_bytes()],
        "node_cert" => vec![node_cert()],
        "request_path" => ["/", "/a/b%20c/", "/docs/?x=1", "/%2e%2e/etc", "/caf%C3%A9"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "host_header" => ["Blog.Example.com:8080", "a.example.", "x.localhost"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "routing_sources" => vec![with(7, [VERCEL, REDIRECTS, HEADERS].join("\0").as_bytes())],
        "outpost_toml" => vec![OUTPOST_TOML.as_bytes().to_vec()],
        "analytics_record" => vec![record().encode()],
        "sealed_secret" => {
            let key = SealKey::new(KeyMaterial { generation: 7, key: [42; 32] });
            vec![with(0, &body(&key.seal("p/project", b"API_KEY=1"))), with(1, b"secret")]
        }
        "node_status" => vec![br#"{"node_id":"n1","name":"a","region":"fra","mesh_addr":"127.0.0.1:1","software_version":"0.1.0","config_version":3,"coordinator_link":true,"bundles_present":1,"bundles_pending":0,"blob_bytes_from_coordinator":10,"blob_bytes_from_peers":0,"blobs_served_to_peers":0,"members":[],"updated_at_ms":1}"#.to_vec()],
        _ => Vec::new(),
    }
}

/// A node certificate as the cluster CA issues one (self-signed here: the
/// decoder reads names and validity, not the chain).
fn node_cert() -> Vec<u8> {
    let name = format!("n1.{}", protocol::wire::NODE_NAME_SUFFIX);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}
