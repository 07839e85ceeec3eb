//! The platform's own small pages, used when no tenant content applies
//! (unknown host, malformed request, a blob not yet on this node). They never
//! echo request data back, so they cannot be used for reflection.

use bytes::Bytes;

pub fn page(status: u16) -> Bytes {
    let (title, detail) = match status {
        400 => ("Bad request", "The request could not be understood."),
        404 => (
            "Not found",
            "There is no site at this address, or the page does not exist.",
        ),
        405 => (
            "Method not allowed",
            "Only GET and HEAD are supported here.",
        ),
        413 => (
            "Request too large",
            "The request body is larger than this server accepts.",
        ),
        502 => (
            "Bad gateway",
            "The upstream server could not be reached or refused the request.",
        ),
        504 => (
            "Gateway timeout",
            "The upstream server did not answer in time.",
        ),
        508 => (
            "Loop detected",
            "This request was already forwarded by a proxy rewrite; it is not forwarded again.",
        ),
        503 => (
            "Temporarily unavailable",
            "This deployment's files are still being synchronised to this server, or cannot be fetched right now. Please retry in a moment.",
        ),
        _ => ("Error", "The request could not be served."),
    };
    framed(status, title, detail, "<small>outpost</small>")
}

/// The frame of every platform page: `footer` is ours (never request data).
pub fn framed(status: u16, title: &str, detail: &str, footer: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{status} {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}p{{color:#555}}small{{color:#999}}</style></head>\
         <body><h1>{status} · {title}</h1><p>{detail}</p>{footer}</body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_name_their_status() {
        for s in [400, 404, 405, 413, 502, 503, 504, 508, 500] {
            let body = String::from_utf8(super::page(s).to_vec()).unwrap();
            assert!(body.contains(&format!("<title>{s} ")), "{body}");
        }
    }
}
