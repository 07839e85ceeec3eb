//! The lines a drain sends, in Vercel's log drain format (NDJSON, one
//! object per line) so that tools reading Vercel drains read ours:
//! `id`, `deploymentId`, `projectId`, `source` (`lambda` for function
//! output, `build`, `edge` for requests), `host`, `path`, `statusCode`,
//! `requestId`, `timestamp` (ms), `message`, `level`, `type`, and for
//! requests `proxy { timestamp, method, scheme, host, path, userAgent[],
//! referer, statusCode, region, responseByteSize }`. Pure.

use serde_json::{json, Value};

use crate::store::drains::DrainLine;

/// A function's stdout/stderr line.
pub fn function_line(
    project_id: &str,
    deployment: &str,
    request_id: &str,
    ts: i64,
    stream: &str,
    message: &str,
) -> DrainLine {
    DrainLine {
        source: "function",
        at: ts,
        bucket: 0,
        line: json!({
            "projectId": project_id,
            "deploymentId": deployment,
            "source": "lambda",
            "type": stream,
            "level": if stream == "stderr" { "error" } else { "info" },
            "requestId": request_id,
            "timestamp": ts,
            "message": message,
        }),
    }
}

/// A build log line.
pub fn build_line(
    project_id: &str,
    build: &str,
    ts: i64,
    stream: &str,
    message: &str,
) -> DrainLine {
    DrainLine {
        source: "build",
        at: ts,
        bucket: 0,
        line: json!({
            "projectId": project_id,
            "deploymentId": build,
            "buildId": build,
            "source": "build",
            "type": stream,
            "level": if stream == "stderr" { "error" } else { "info" },
            "timestamp": ts,
            "message": message,
        }),
    }
}

/// A request an edge answered (`region` is the edge's).
pub fn request_line(
    project_id: &str,
    region: &str,
    r: &protocol::wire::RequestLogRecord,
) -> DrainLine {
    let id = u64::from_str_radix(&r.request_id, 16).unwrap_or_else(|_| {
        let h = blake3::hash(r.request_id.as_bytes());
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
    });
    let level = match r.status {
        500.. => "error",
        400.. => "warning",
        _ => "info",
    };
    DrainLine {
        source: "request",
        at: r.ts_ms,
        bucket: protocol::config::RequestLogPolicy::bucket(id),
        line: json!({
            "projectId": project_id,
            "deploymentId": r.deployment,
            "source": "edge",
            "level": level,
            "host": r.host,
            "path": r.path,
            "statusCode": r.status,
            "requestId": r.request_id,
            "timestamp": r.ts_ms,
            "message": format!("{} {} {} {}ms", r.method, r.path, r.status, r.duration_ms),
            "proxy": {
                "timestamp": r.ts_ms,
                "method": r.method,
                "scheme": r.scheme,
                "host": r.host,
                "path": r.path,
                "userAgent": [r.user_agent],
                "referer": r.referer,
                "statusCode": r.status,
                "region": region,
                "responseByteSize": r.bytes,
                "duration": r.duration_ms,
            },
        }),
    }
}

/// One batch's body: each queued line with its `id`, one per line.
pub fn ndjson(lines: &[crate::store::drains::QueuedLine]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        let mut v: Value = serde_json::from_str(&l.line).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), Value::String(l.id.to_string()));
        }
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The signature headers of a batch: Vercel's `x-vercel-signature` (hex
/// HMAC-SHA1 of the body, what Vercel drain readers check) and ours,
/// `x-outpost-signature` (hex HMAC-SHA256).
pub fn signatures(secret: &str, body: &[u8]) -> [(&'static str, String); 2] {
    let sha1 = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let sha256 = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    [
        (
            "x-vercel-signature",
            hex::encode(ring::hmac::sign(&sha1, body).as_ref()),
        ),
        (
            "x-outpost-signature",
            hex::encode(ring::hmac::sign(&sha256, body).as_ref()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::drains::QueuedLine;

    #[test]
    fn lines_carry_vercels_fields() {
        let f = function_line("p1", "dpl1", "00ff", 1000, "stderr", "oops");
        assert_eq!(f.line["source"], "lambda");
        assert_eq!(f.line["level"], "error");
        assert_eq!(f.line["requestId"], "00ff");
        let r = protocol::wire::RequestLogRecord {
            ts_ms: 5,
            project: "shop".into(),
            deployment: "dpl1".into(),
            request_id: "00000000000000ff".into(),
            method: "GET".into(),
            scheme: "https".into(),
            host: "shop.example".into(),
            path: "/a?b=1".into(),
            status: 404,
            duration_ms: 3,
            bytes: 120,
            user_agent: "curl/8".into(),
            referer: String::new(),
        };
        let l = request_line("p1", "fra", &r);
        assert_eq!(l.line["statusCode"], 404);
        assert_eq!(l.line["level"], "warning");
        assert_eq!(l.line["proxy"]["userAgent"][0], "curl/8");
        assert_eq!(l.line["proxy"]["region"], "fra");
        assert_eq!(l.bucket, protocol::config::RequestLogPolicy::bucket(0xff));
        let body = ndjson(&[
            QueuedLine {
                id: 7,
                line: f.line.to_string(),
            },
            QueuedLine {
                id: 9,
                line: l.line.to_string(),
            },
        ]);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], "7");
        assert_eq!(lines[1]["id"], "9");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn signatures_are_hex_hmacs() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (SHA-256).
        let [(n1, s1), (n2, s2)] = signatures("Jefe", b"what do ya want for nothing?");
        assert_eq!(n1, "x-vercel-signature");
        assert_eq!(s1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(n2, "x-outpost-signature");
        assert_eq!(
            s2,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
