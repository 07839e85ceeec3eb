//! The bundle manifest: every file of a deployment, addressed by content.
//!
//! The manifest's canonical bytes are its bincode encoding (maps are
//! `BTreeMap`s, so the order is fixed); the bundle id is their blake3.
//!
//! The shape depends on `format`, which is encoded first: format 1 is
//! `(format, files, functions)`, format 2 adds `routing`. Serde is
//! implemented by hand so that bincode bytes written before format 2 (in
//! the coordinator's database and edges' sled stores, and inside stored
//! edge configs) still decode, and re-encode to the very same bytes: their
//! bundle ids and config signatures stay valid.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::functions::{
    validate_route, FunctionEntry, RouteError, MAX_FUNCTIONS, MAX_MEMORY_BYTES, MAX_TIMEOUT_MS,
};
use crate::hash::{BlobHash, BundleId};
use crate::path::{validate_bundle_path, PathError};
use crate::routing::{RoutingConfig, RoutingError};

/// Bumped when the manifest's shape changes; old ids stay valid because the
/// version is part of the hashed bytes.
pub const MANIFEST_FORMAT: u16 = 2;
/// The oldest format still decoded and accepted (no routing config).
pub const MIN_MANIFEST_FORMAT: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub format: u16,
    /// Bundle-relative path (`assets/app.js`) → file.
    pub files: BTreeMap<String, FileEntry>,
    /// Route pattern (`/api/users/:id`) → wasi:http component.
    pub functions: BTreeMap<String, FunctionEntry>,
    /// Redirects, rewrites, headers (format 2 on; empty for format 1).
    pub routing: RoutingConfig,
}

const FIELDS: &[&str] = &["format", "files", "functions", "routing"];

impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Format 1 has no routing field: writing it would change the
        // canonical bytes (and ids) of every manifest stored before format 2.
        let with_routing = self.format >= 2;
        let mut st = s.serialize_struct("Manifest", if with_routing { 4 } else { 3 })?;
        st.serialize_field("format", &self.format)?;
        st.serialize_field("files", &self.files)?;
        st.serialize_field("functions", &self.functions)?;
        if with_routing {
            st.serialize_field("routing", &self.routing)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("Manifest", FIELDS, ManifestVisitor)
    }
}

struct ManifestVisitor;

impl<'de> Visitor<'de> for ManifestVisitor {
    type Value = Manifest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bundle manifest")
    }

    /// Bincode: fields in order; how many follows from `format`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Manifest, A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"a manifest of its format");
        let format: u16 = seq.next_element()?.ok_or_else(|| missing(0))?;
        let files = seq.next_element()?.ok_or_else(|| missing(1))?;
        let functions = seq.next_element()?.ok_or_else(|| missing(2))?;
        let routing = if format >= 2 {
            seq.next_element()?.ok_or_else(|| missing(3))?
        } else {
            RoutingConfig::default()
        };
        Ok(Manifest {
            format,
            files,
            functions,
            routing,
        })
    }

    /// JSON (the deploy API): `functions` and `routing` may be absent.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Manifest, A::Error> {
        let (mut format, mut files, mut functions, mut routing) = (None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => format = Some(map.next_value()?),
                "files" => files = Some(map.next_value()?),
                "functions" => functions = Some(map.next_value()?),
                "routing" => routing = Some(map.next_value()?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Manifest {
            format: format.ok_or_else(|| de::Error::missing_field("format"))?,
            files: files.ok_or_else(|| de::Error::missing_field("files"))?,
            functions: functions.unwrap_or_default(),
            routing: routing.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: BlobHash,
    pub size: u64,
    pub content_type: String,
    /// Precompressed forms of the same bytes, each its own blob.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub encoding: Encoding,
    pub hash: BlobHash,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// Bounds a manifest must respect; the coordinator's are configurable.
#[derive(Debug, Clone, Copy)]
pub struct ManifestLimits {
    pub max_files: usize,
    pub max_file_size: u64,
    pub max_total_size: u64,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits {
            max_files: 100_000,
            max_file_size: 512 * 1024 * 1024,
            max_total_size: 8 * 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest format {0} (this build understands {MIN_MANIFEST_FORMAT} to {MANIFEST_FORMAT})")]
    Format(u16),
    #[error("manifest lists no files")]
    Empty,
    #[error("manifest lists {count} files; the limit is {limit}")]
    TooManyFiles { count: usize, limit: usize },
    #[error("file {path:?} is {size} bytes; the limit is {limit}")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("bundle is {size} bytes in total; the limit is {limit}")]
    TotalTooLarge { size: u64, limit: u64 },
    #[error("bad path {path:?}: {source}")]
    Path { path: String, source: PathError },
    #[error("file {path:?} has an invalid content type")]
    ContentType { path: String },
    #[error("file {path:?} lists the {encoding:?} variant twice")]
    DuplicateVariant { path: String, encoding: Encoding },
    #[error("manifest could not be decoded: {0}")]
    Decode(String),
    #[error("manifest lists {count} functions; the limit is {MAX_FUNCTIONS}")]
    TooManyFunctions { count: usize },
    #[error("bad function route: {0}")]
    Route(#[from] RouteError),
    #[error("function {route:?}: timeout must be 1..={MAX_TIMEOUT_MS} ms and memory 1 MiB..={MAX_MEMORY_BYTES} bytes")]
    FunctionLimits { route: String },
    #[error("routing: {0}")]
    Routing(#[from] RoutingError),
    #[error("a format-1 manifest cannot carry routing rules; use format {MANIFEST_FORMAT}")]
    RoutingNeedsFormat2,
}

impl Manifest {
    pub fn new(files: BTreeMap<String, FileEntry>) -> Self {
        Manifest {
            format: MANIFEST_FORMAT,
            files,
            functions: BTreeMap::new(),
            routing: RoutingConfig::default(),
        }
    }

    /// Checks every path, size and header-bound field against `limits`.
    pub fn validate(&self, limits: &ManifestLimits) -> Result<(), ManifestError> {
        if !(MIN_MANIFEST_FORMAT..=MANIFEST_FORMAT).contains(&self.format) {
            return Err(ManifestError::Format(self.format));
        }
        if self.format < 2 && !self.routing.is_empty() {
            return Err(ManifestError::RoutingNeedsFormat2);
        }
        self.routing.validate()?;
        if self.files.is_empty() && self.functions.is_empty() {
            return Err(ManifestError::Empty);
        }
        if self.functions.len() > MAX_FUNCTIONS {
            return Err(ManifestError::TooManyFunctions {
                count: self.functions.len(),
            });
        }
        for (route, f) in &self.functions {
            validate_route(route)?;
            if f.timeout_ms == 0
                || f.timeout_ms > MAX_TIMEOUT_MS
                || f.memory_bytes < 1024 * 1024
                || f.memory_bytes > MAX_MEMORY_BYTES
            {
                return Err(ManifestError::FunctionLimits {
                    route: route.clone(),
                });
            }
            if f.size > limits.max_file_size {
                return Err(ManifestError::FileTooLarge {
                    path: route.clone(),
                    size: f.size,
                    limit: limits.max_file_size,
                });
            }
        }
        if self.files.len() > limits.max_files {
            return Err(ManifestError::TooManyFiles {
                count: self.files.len(),
                limit: limits.max_files,
            });
        }
        let mut total: u64 = 0;
        for (path, f) in &self.files {
            validate_bundle_path(path).map_err(|source| ManifestError::Path {
                path: path.chars().take(200).collect(),
                source,
            })?;
            if f.size > limits.max_file_size {
                return Err(ManifestError::FileTooLarge {
                    path: path.clone(),
                    size: f.size,
                    limit: limits.max_file_size,
                });
            }
            total = total.saturating_add(f.size);
            if !valid_content_type(&f.content_type) {
                return Err(ManifestError::ContentType { path: path.clone() });
            }
            let mut seen = BTreeSet::new();
            for v in &f.variants {
                if !seen.insert(v.encoding) {
                    return Err(ManifestError::DuplicateVariant {
                        path: path.clone(),
                        encoding: v.encoding,
                    });
                }
                if v.size > limits.max_file_size {
                    return Err(ManifestError::FileTooLarge {
                        path: format!("{path} ({})", v.encoding.token()),
                        size: v.size,
                        limit: limits.max_file_size,
                    });
                }
                total = total.saturating_add(v.size);
            }
        }
        if total > limits.max_total_size {
            return Err(ManifestError::TotalTooLarge {
                size: total,
                limit: limits.max_total_size,
            });
        }
        Ok(())
    }

    pub fn canonical_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("encoding a manifest into memory cannot fail")
    }

    /// Decodes canonical bytes, refusing input larger than `max_bytes`.
    pub fn from_canonical_bytes(bytes: &[u8], max_bytes: usize) -> Result<Self, ManifestError> {
        if bytes.len() > max_bytes {
            return Err(ManifestError::Decode(format!(
                "{} bytes exceeds the {max_bytes}-byte limit",
                bytes.len()
            )));
        }
        let (m, used): (Manifest, usize) =
            bincode::serde::decode_from_slice(bytes, crate::wire::decode_config())
                .map_err(|e| ManifestError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(ManifestError::Decode("trailing bytes".into()));
        }
        Ok(m)
    }

    pub fn bundle_id(&self) -> BundleId {
        BlobHash::of(&self.canonical_bytes())
    }

    /// Every blob the bundle needs: originals and variants.
    pub fn blobs(&self) -> BTreeSet<BlobHash> {
        self.blob_sizes().into_keys().collect()
    }

    /// Size of each distinct blob, for transfer accounting.
    pub fn blob_sizes(&self) -> BTreeMap<BlobHash, u64> {
        let mut out = BTreeMap::new();
        for f in self.files.values() {
            out.insert(f.hash, f.size);
            for v in &f.variants {
                out.insert(v.hash, v.size);
            }
        }
        for f in self.functions.values() {
            out.insert(f.component, f.size);
        }
        out
    }
}

/// A content type must be a short, printable header value (`type/subtype`
/// with optional parameters): it ends up verbatim in a response header.
fn valid_content_type(ct: &str) -> bool {
    !ct.is_empty()
        && ct.len() <= 200
        && ct.contains('/')
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &[u8], ct: &str) -> FileEntry {
        FileEntry {
            hash: BlobHash::of(body),
            size: body.len() as u64,
            content_type: ct.into(),
            variants: vec![],
        }
    }

    fn manifest(files: &[(&str, FileEntry)]) -> Manifest {
        Manifest::new(
            files
                .iter()
                .map(|(p, e)| (p.to_string(), e.clone()))
                .collect(),
        )
    }

    #[test]
    fn id_is_stable_and_order_independent() {
        let a = entry(b"a", "text/html");
        let b = entry(b"b", "text/css");
        let m1 = manifest(&[("index.html", a.clone()), ("style.css", b.clone())]);
        let m2 = manifest(&[("style.css", b), ("index.html", a)]);
        assert_eq!(m1.bundle_id(), m2.bundle_id());
        assert_eq!(m1.bundle_id(), BlobHash::of(&m1.canonical_bytes()));
        let back = Manifest::from_canonical_bytes(&m1.canonical_bytes(), 1 << 20).unwrap();
        assert_eq!(back, m1);
    }

    #[test]
    fn any_change_changes_id() {
        let base = manifest(&[("index.html", entry(b"a", "text/html"))]);
        let renamed = manifest(&[("home.html", entry(b"a", "text/html"))]);
        let retyped = manifest(&[("index.html", entry(b"a", "text/plain"))]);
        let rebody = manifest(&[("index.html", entry(b"b", "text/html"))]);
        for other in [renamed, retyped, rebody] {
            assert_ne!(base.bundle_id(), other.bundle_id());
        }
    }

    #[test]
    fn validation_table() {
        let ok = entry(b"x", "text/html");
        let limits = ManifestLimits {
            max_files: 2,
            max_file_size: 10,
            max_total_size: 15,
        };
        let big = FileEntry {
            size: 11,
            ..ok.clone()
        };
        let nine = FileEntry {
            size: 9,
            ..ok.clone()
        };
        let bad_ct = entry(b"x", "text/html\r\nSet-Cookie: a=b");
        let dup = FileEntry {
            variants: vec![
                Variant {
                    encoding: Encoding::Br,
                    hash: BlobHash::of(b"1"),
                    size: 1,
                },
                Variant {
                    encoding: Encoding::Br,
                    hash: BlobHash::of(b"2"),
                    size: 1,
                },
            ],
            ..ok.clone()
        };
        let mut wrong_format = manifest(&[("a", ok.clone())]);
        wrong_format.format = 99;
        let cases: Vec<(Manifest, Option<&str>)> = vec![
            (manifest(&[("index.html", ok.clone())]), None),
            (manifest(&[]), Some("no files")),
            (
                manifest(&[("a", ok.clone()), ("b", ok.clone()), ("c", ok.clone())]),
                Some("3 files"),
            ),
            (manifest(&[("a", big)]), Some("11 bytes")),
            (
                manifest(&[("a", nine.clone()), ("b", nine)]),
                Some("in total"),
            ),
            (manifest(&[("../x", ok.clone())]), Some("bad path")),
            (manifest(&[("/x", ok.clone())]), Some("bad path")),
            (manifest(&[("a", bad_ct)]), Some("content type")),
            (manifest(&[("a", dup)]), Some("twice")),
            (wrong_format, Some("format 99")),
        ];
        for (m, want) in cases {
            let got = m.validate(&limits);
            match want {
                None => assert!(got.is_ok(), "{got:?}"),
                Some(needle) => {
                    let msg = got.expect_err("should fail").to_string();
                    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
                }
            }
        }
    }

    #[test]
    fn decoding_rejects_garbage_and_oversize() {
        assert!(Manifest::from_canonical_bytes(&[0xff; 10], 1024).is_err());
        assert!(Manifest::from_canonical_bytes(&[0u8; 2048], 1024).is_err());
        let m = manifest(&[("a", entry(b"x", "text/plain"))]);
        let mut bytes = m.canonical_bytes();
        bytes.push(0);
        assert!(Manifest::from_canonical_bytes(&bytes, 1 << 20).is_err());
    }

    /// The format-1 shape, as manifests were encoded before routing existed.
    #[derive(Serialize)]
    struct V1<'a> {
        format: u16,
        files: &'a BTreeMap<String, FileEntry>,
        functions: &'a BTreeMap<String, FunctionEntry>,
    }

    fn routed() -> Manifest {
        let mut m = manifest(&[("index.html", entry(b"a", "text/html"))]);
        m.routing = crate::routing::from_sources(
            None,
            None,
            Some("/old /new 301\n/* /index.html 200\n"),
            Some("/*\n  X-Frame-Options: DENY\n"),
        )
        .unwrap();
        m
    }

    #[test]
    fn format_1_bytes_still_decode_to_the_same_bytes() {
        let files: BTreeMap<String, FileEntry> =
            [("index.html".to_string(), entry(b"a", "text/html"))].into();
        let functions = BTreeMap::new();
        let v1 = bincode::serde::encode_to_vec(
            V1 {
                format: 1,
                files: &files,
                functions: &functions,
            },
            bincode::config::standard(),
        )
        .unwrap();
        let m = Manifest::from_canonical_bytes(&v1, 1 << 20).unwrap();
        assert_eq!(m.format, 1);
        assert!(m.routing.is_empty());
        assert_eq!(m.files, files);
        // Same bytes back: the stored bundle id and config digests hold.
        assert_eq!(m.canonical_bytes(), v1);
        assert_eq!(m.bundle_id(), BlobHash::of(&v1));
        assert!(m.validate(&ManifestLimits::default()).is_ok());
    }

    #[test]
    fn format_2_round_trips_with_routing() {
        let m = routed();
        assert_eq!(m.format, 2);
        assert!(m.validate(&ManifestLimits::default()).is_ok());
        let back = Manifest::from_canonical_bytes(&m.canonical_bytes(), 1 << 20).unwrap();
        assert_eq!(back, m);
        let mut plain = m.clone();
        plain.routing = Default::default();
        assert_ne!(plain.bundle_id(), m.bundle_id());
        // JSON, as the deploy API carries it; old clients send no routing.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        let old: Manifest = serde_json::from_str(r#"{"format":1,"files":{}}"#).unwrap();
        assert!(old.routing.is_empty() && old.functions.is_empty());
    }

    #[test]
    fn routing_is_validated() {
        let mut m = routed();
        m.format = 1;
        let msg = m
            .validate(&ManifestLimits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("format-1 manifest cannot carry routing"),
            "{msg}"
        );
        let mut m = routed();
        m.routing.rules[0].destination = "ftp://x".into();
        let msg = m
            .validate(&ManifestLimits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("routing: manifest routing rules[0]: destination"),
            "{msg}"
        );
    }

    #[test]
    fn blobs_include_variants() {
        let mut e = entry(b"x", "text/html");
        e.variants.push(Variant {
            encoding: Encoding::Gzip,
            hash: BlobHash::of(b"gz"),
            size: 2,
        });
        let m = manifest(&[("a", e), ("b", entry(b"x", "text/html"))]);
        assert_eq!(m.blobs().len(), 2);
    }
}
