//! Static serving: a bundle file's response planned from the manifest
//! alone ([`plan_file`]: encoding, validators, ranges, cache policy), then
//! its blob opened, so a missing or corrupt blob can still turn into a
//! clean 503 before any byte of the response is written, and sent. Also
//! the response-head helpers and the platform's own pages that
//! `dispatch` and `proxy` answer with.

use bytes::Bytes;
use http::header::{self, HeaderName};
use pingora_core::protocols::http::ServerSession;
use pingora_core::{OrErr, ReadError};
use pingora_http::{RequestHeader, ResponseHeader};
use protocol::{BlobHash, Encoding, FileEntry};

use super::negotiate::{self, RangeDecision};
use super::transport::ZeroCopy;
use super::{pages, EdgeHttp, Stamps};
use crate::functions::serve::{RequestId, X_REQUEST_ID};
use crate::state::{Site, X_OUTPOST_DEPLOYMENT};
use crate::store::{read_at, BlobBody, BlobError, Prefer};

/// Body chunk for file-backed blobs sent through user space (TLS, and only
/// for blobs too large for memory): big enough that the thread hop of each
/// read is amortised, small enough that many concurrent downloads stay cheap.
const CHUNK: u64 = 256 * 1024;

/// From this size a body over plain HTTP goes out with `sendfile`; smaller
/// ones leave from memory together with their head in a single write.
const ZERO_COPY_MIN: u64 = 32 * 1024;

const NO_STORE: &str = "no-store";

/// The request headers a static response depends on. Repeated header lines
/// are joined with `,`, which is how HTTP defines their meaning.
#[derive(Debug, Default)]
pub struct Conditionals {
    pub accept_encoding: String,
    pub if_none_match: Option<String>,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

impl Conditionals {
    pub(super) fn from_request(req: &RequestHeader) -> Self {
        let joined = |name: HeaderName| {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let single = |name: HeaderName| {
            let mut all = req.headers.get_all(name).iter();
            match (all.next(), all.next()) {
                // Two `Range` lines are as ambiguous as a malformed one.
                (Some(v), None) => v.to_str().ok().map(str::to_string),
                _ => None,
            }
        };
        Conditionals {
            accept_encoding: joined(header::ACCEPT_ENCODING).unwrap_or_default(),
            if_none_match: joined(header::IF_NONE_MATCH),
            range: single(header::RANGE),
            if_range: single(header::IF_RANGE),
        }
    }
}

/// A static response, decided from the manifest alone.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePlan {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    /// The bytes to send (for HEAD: the bytes a GET would send).
    pub body: Option<BlobSlice>,
    /// `None` only for 304, which describes a body without carrying one.
    pub content_length: Option<u64>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct BlobSlice {
    pub hash: BlobHash,
    /// Size of the whole blob, checked against what the store opens.
    pub size: u64,
    pub start: u64,
    pub len: u64,
}

/// Entity tag of one stored representation. Each encoding gets its own tag
/// (RFC 9110 §8.8.3: different content codings are different
/// representations), so a cache holding the br body never revalidates it
/// against the gzip one.
pub fn etag(hash: &BlobHash) -> String {
    format!("\"{}\"", hash.to_hex())
}

/// `found` is false when `entry` is the bundle's 404 page: then the status
/// is 404 and conditionals and ranges do not apply (they are defined for
/// successful responses only).
pub fn plan_file(path: &str, entry: &FileEntry, found: bool, cond: &Conditionals) -> FilePlan {
    let mut headers = vec![(
        header::CACHE_CONTROL,
        negotiate::cache_control(path, &entry.content_type).to_string(),
    )];
    if !entry.variants.is_empty() {
        headers.push((header::VARY, "Accept-Encoding".into()));
    }
    let available: Vec<Encoding> = entry.variants.iter().map(|v| v.encoding).collect();
    let representation = |enc: Option<Encoding>| match enc
        .and_then(|e| entry.variants.iter().find(|v| v.encoding == e))
    {
        Some(v) => (v.hash, v.size),
        None => (entry.hash, entry.size),
    };
    let whole = |hash, size| BlobSlice {
        hash,
        size,
        start: 0,
        len: size,
    };

    if !found {
        let enc = negotiate::choose_encoding(&cond.accept_encoding, &available);
        let (hash, size) = representation(enc);
        headers.push((header::CONTENT_TYPE, entry.content_type.clone()));
        if let Some(e) = enc {
            headers.push((header::CONTENT_ENCODING, e.token().into()));
        }
        return FilePlan {
            status: 404,
            headers,
            body: Some(whole(hash, size)),
            content_length: Some(size),
        };
    }

    headers.push((header::ACCEPT_RANGES, "bytes".into()));
    // Ranges address the identity bytes only; a range of a compressed
    // variant would be useless to every real client.
    let range = match &cond.range {
        Some(r) if negotiate::if_range_allows(cond.if_range.as_deref(), &etag(&entry.hash)) => {
            negotiate::parse_range(r, entry.size)
        }
        _ => RangeDecision::Full,
    };
    let enc = match range {
        RangeDecision::Full => negotiate::choose_encoding(&cond.accept_encoding, &available),
        _ => None,
    };
    let (hash, size) = representation(enc);
    let tag = etag(&hash);
    headers.push((header::ETAG, tag.clone()));

    if cond
        .if_none_match
        .as_deref()
        .is_some_and(|inm| negotiate::if_none_match(inm, &tag))
    {
        return FilePlan {
            status: 304,
            headers,
            body: None,
            content_length: None,
        };
    }

    headers.push((header::CONTENT_TYPE, entry.content_type.clone()));
    match range {
        RangeDecision::Unsatisfiable => {
            headers.push((header::CONTENT_RANGE, format!("bytes */{size}")));
            FilePlan {
                status: 416,
                headers,
                body: None,
                content_length: Some(0),
            }
        }
        RangeDecision::Partial { start, end } => {
            headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            let len = end - start + 1;
            FilePlan {
                status: 206,
                headers,
                body: Some(BlobSlice {
                    hash,
                    size,
                    start,
                    len,
                }),
                content_length: Some(len),
            }
        }
        RangeDecision::Full => {
            if let Some(e) = enc {
                headers.push((header::CONTENT_ENCODING, e.token().into()));
            }
            FilePlan {
                status: 200,
                headers,
                body: Some(whole(hash, size)),
                content_length: Some(size),
            }
        }
    }
}

pub(super) fn base_header(status: u16) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, Some(12)).expect("status codes used here are valid");
    set(&mut h, header::SERVER, "outpost");
    set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    h
}

/// Values come from manifests and config; one that is not a valid header
/// value is dropped rather than failing the response.
pub(super) fn set(h: &mut ResponseHeader, name: HeaderName, value: &str) {
    if let Err(e) = h.insert_header(name.clone(), value) {
        tracing::warn!(header = %name, error = %e, "dropping invalid response header value");
    }
}

/// Which deployment answered (its header value was made with the site).
pub(super) fn set_deployment(h: &mut ResponseHeader, site: &Site) {
    if let Some(value) = &site.deployment_header {
        if let Err(e) = h.insert_header(X_OUTPOST_DEPLOYMENT, value.clone()) {
            tracing::warn!(error = %e, "dropping the deployment header");
        }
    }
}

/// The id of a request in its project's request log sample (see
/// `crate::requestlog`), so its response and its log line match.
pub(super) fn set_request_id(h: &mut ResponseHeader, id: Option<RequestId>) {
    if let Some(id) = id {
        if let Err(e) = h.insert_header(X_REQUEST_ID, id.header_value()) {
            tracing::warn!(error = %e, "dropping the request id header");
        }
    }
}

/// One of our pages; `request_id` when the request is in its project's
/// request log sample.
pub(super) async fn send_page(
    session: &mut ServerSession,
    status: u16,
    site: Option<&Site>,
    request_id: Option<RequestId>,
    head: bool,
) -> pingora_core::Result<()> {
    let body = pages::page(status);
    let mut h = base_header(status);
    set(&mut h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(&mut h, header::CONTENT_LENGTH, &body.len().to_string());
    set(&mut h, header::CACHE_CONTROL, NO_STORE);
    match status {
        405 => set(&mut h, header::ALLOW, "GET, HEAD"),
        503 | 504 => set(&mut h, header::RETRY_AFTER, "1"),
        _ => {}
    }
    if let Some(site) = site {
        set_deployment(&mut h, site);
    }
    set_request_id(&mut h, request_id);
    session.write_response_header(Box::new(h)).await?;
    let body = if head { Bytes::new() } else { body };
    session.write_response_body(body, true).await
}

/// A bundle file's answer, decided: what `send_file` sends.
pub(super) struct FileReply<'a> {
    pub site: &'a Site,
    pub plan: FilePlan,
    /// Headers from the bundle's header rules.
    pub extra: &'a [(String, String)],
    /// HSTS and Alt-Svc, set last so no rule replaces them.
    pub stamps: &'a Stamps,
    pub request_id: Option<RequestId>,
    pub head: bool,
}

pub(super) async fn send_file(
    app: &EdgeHttp,
    session: &mut ServerSession,
    file: FileReply<'_>,
    zero_copy: Option<&ZeroCopy>,
) -> pingora_core::Result<()> {
    let FileReply {
        site,
        plan,
        extra,
        stamps,
        request_id,
        head,
    } = file;
    let prefer = match (zero_copy, plan.body) {
        (Some(_), Some(slice)) if slice.len >= ZERO_COPY_MIN && !head => Prefer::File,
        _ => Prefer::Memory,
    };
    // HEAD opens the blob too, so it answers exactly as GET would (a blob
    // that is missing here is a 503 for both).
    let opened = match plan.body {
        Some(slice) => match open_blob(app, slice, prefer).await {
            Some(body) => Some((body, slice)),
            None => return send_page(session, 503, Some(site), request_id, head).await,
        },
        None => None,
    };
    let mut h = base_header(plan.status);
    for (name, value) in plan.headers {
        set(&mut h, name, &value);
    }
    // After ours, so a rule's `Cache-Control` replaces the default one.
    // Rule headers were validated (tokens, no framing headers) at deploy.
    for (name, value) in extra {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            set(&mut h, name, value);
        }
    }
    stamps.apply_to(&mut h);
    if let Some(len) = plan.content_length {
        set(&mut h, header::CONTENT_LENGTH, &len.to_string());
    }
    set_deployment(&mut h, site);
    set_request_id(&mut h, request_id);
    session.write_response_header(Box::new(h)).await?;
    match opened {
        Some((body, slice)) if !head => send_blob(session, body, slice, zero_copy).await,
        _ => session.write_response_body(Bytes::new(), true).await,
    }
}

/// Opens and verifies a blob off the async threads (verification may hash
/// the whole file). `None` means the node cannot serve it right now; the
/// store has already queued a corrupt blob for re-fetch.
async fn open_blob(app: &EdgeHttp, slice: BlobSlice, prefer: Prefer) -> Option<BlobBody> {
    let hash = slice.hash;
    // Hot blobs are in memory or have a kept descriptor: no thread hop.
    let opened = match app.blobs.cached(&hash, prefer) {
        Some(body) => Ok(Ok(body)),
        None => {
            let blobs = app.blobs.clone();
            tokio::task::spawn_blocking(move || blobs.open_for(&hash, prefer)).await
        }
    };
    match opened {
        Ok(Ok(body)) if body.len() == slice.size => Some(body),
        Ok(Ok(body)) => {
            tracing::error!(blob = %hash, manifest_size = slice.size, blob_size = body.len(), "manifest size disagrees with the verified blob");
            None
        }
        Ok(Err(BlobError::Missing(_))) => {
            tracing::warn!(blob = %hash, "blob of an active bundle is missing");
            None
        }
        Ok(Err(BlobError::Corrupt(_))) => None,
        Ok(Err(e)) => {
            tracing::error!(blob = %hash, error = %e, "could not open blob");
            None
        }
        Err(e) => {
            tracing::error!(blob = %hash, error = %e, "blob open task failed");
            None
        }
    }
}

async fn send_blob(
    session: &mut ServerSession,
    body: BlobBody,
    slice: BlobSlice,
    zero_copy: Option<&ZeroCopy>,
) -> pingora_core::Result<()> {
    match body {
        BlobBody::Memory(bytes) => {
            let range = slice.start as usize..(slice.start + slice.len) as usize;
            session.write_response_body(bytes.slice(range), true).await
        }
        BlobBody::File { .. } if slice.len == 0 => {
            session.write_response_body(Bytes::new(), true).await
        }
        BlobBody::File { file, .. } => match zero_copy {
            Some(zc) => zc.send_body(session, file, slice.start, slice.len).await,
            None => {
                let (mut at, end) = (slice.start, slice.start + slice.len);
                while at < end {
                    let n = (end - at).min(CHUNK);
                    let chunk = read_at(&file, at, n as usize)
                        .await
                        .or_err(ReadError, "reading blob file")?;
                    at += n;
                    session.write_response_body(chunk, at == end).await?;
                }
                Ok(())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Variant;

    fn entry(variants: &[Encoding]) -> FileEntry {
        FileEntry {
            hash: BlobHash::of(b"identity"),
            size: 100,
            content_type: "text/javascript".into(),
            variants: variants
                .iter()
                .map(|&encoding| Variant {
                    encoding,
                    hash: BlobHash::of(encoding.token().as_bytes()),
                    size: 40,
                })
                .collect(),
        }
    }

    fn cond(
        ae: &str,
        inm: Option<&str>,
        range: Option<&str>,
        if_range: Option<&str>,
    ) -> Conditionals {
        Conditionals {
            accept_encoding: ae.into(),
            if_none_match: inm.map(Into::into),
            range: range.map(Into::into),
            if_range: if_range.map(Into::into),
        }
    }

    fn header(p: &FilePlan, name: HeaderName) -> Option<&str> {
        p.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn plan_table() {
        let id = BlobHash::of(b"identity");
        let br = BlobHash::of(b"br");
        let gz = BlobHash::of(b"gzip");
        let both = entry(&[Encoding::Br, Encoding::Gzip]);
        let plain = entry(&[]);
        let id_tag = etag(&id);
        let br_tag = etag(&br);
        let weak_br = format!("W/{br_tag}");
        // (entry, found, conditionals) → (status, blob sent, content-encoding, content-length)
        type Want = (
            u16,
            Option<(BlobHash, u64, u64)>,
            Option<&'static str>,
            Option<u64>,
        );
        let cases: Vec<(&FileEntry, bool, Conditionals, Want)> = vec![
            (
                &both,
                true,
                cond("", None, None, None),
                (200, Some((id, 0, 100)), None, Some(100)),
            ),
            (
                &both,
                true,
                cond("gzip, br", None, None, None),
                (200, Some((br, 0, 40)), Some("br"), Some(40)),
            ),
            (
                &both,
                true,
                cond("gzip", None, None, None),
                (200, Some((gz, 0, 40)), Some("gzip"), Some(40)),
            ),
            (
                &plain,
                true,
                cond("br", None, None, None),
                (200, Some((id, 0, 100)), None, Some(100)),
            ),
            // Validators are per representation.
            (
                &both,
                true,
                cond("br", Some(&br_tag), None, None),
                (304, None, None, None),
            ),
            (
                &both,
                true,
                cond("br", Some(&weak_br), None, None),
                (304, None, None, None),
            ),
            (
                &both,
                true,
                cond("", Some(&br_tag), None, None),
                (200, Some((id, 0, 100)), None, Some(100)),
            ),
            (
                &both,
                true,
                cond("", Some("*"), None, None),
                (304, None, None, None),
            ),
            // Ranges are on the identity bytes whatever the client accepts.
            (
                &both,
                true,
                cond("br", None, Some("bytes=10-19"), None),
                (206, Some((id, 10, 10)), None, Some(10)),
            ),
            (
                &both,
                true,
                cond("br", None, Some("bytes=100-"), None),
                (416, None, None, Some(0)),
            ),
            (
                &both,
                true,
                cond("", Some(&id_tag), Some("bytes=0-1"), None),
                (304, None, None, None),
            ),
            (
                &both,
                true,
                cond("", None, Some("bytes=0-1"), Some(&id_tag)),
                (206, Some((id, 0, 2)), None, Some(2)),
            ),
            (
                &both,
                true,
                cond("br", None, Some("bytes=0-1"), Some("\"stale\"")),
                (200, Some((br, 0, 40)), Some("br"), Some(40)),
            ),
            // The bundle's 404 page: no conditionals, no ranges.
            (
                &both,
                false,
                cond("br", Some("*"), Some("bytes=0-1"), None),
                (404, Some((br, 0, 40)), Some("br"), Some(40)),
            ),
        ];
        for (i, (e, found, c, want)) in cases.iter().enumerate() {
            let p = plan_file("app.js", e, *found, c);
            let got = (
                p.status,
                p.body.map(|b| (b.hash, b.start, b.len)),
                header(&p, header::CONTENT_ENCODING),
                p.content_length,
            );
            let (ws, wb, we, wl) = want;
            assert_eq!(got, (*ws, *wb, *we, *wl), "case {i}: {c:?}");
            assert_eq!(
                header(&p, header::VARY).is_some(),
                !e.variants.is_empty(),
                "case {i}: Vary"
            );
        }
        let partial = plan_file(
            "app.js",
            &both,
            true,
            &cond("", None, Some("bytes=-5"), None),
        );
        assert_eq!(
            header(&partial, header::CONTENT_RANGE),
            Some("bytes 95-99/100")
        );
        assert_eq!(header(&partial, header::ETAG), Some(id_tag.as_str()));
        let unsat = plan_file(
            "app.js",
            &both,
            true,
            &cond("", None, Some("bytes=500-"), None),
        );
        assert_eq!(header(&unsat, header::CONTENT_RANGE), Some("bytes */100"));
    }
}
