//! The stylesheet, script and icon, compiled into the binary so the
//! dashboard needs no files on disk and no front-end toolchain.

const STYLE: &[u8] = include_bytes!("../assets/style.css");
const APP: &[u8] = include_bytes!("../assets/app.js");
const FAVICON: &[u8] = include_bytes!("../assets/favicon.svg");

/// The embedded file named `path` (as mounted at `/assets/{path}`) and its
/// content type. Only the exact names below match, so `../` and friends
/// can never reach anything else.
pub fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    match path {
        "style.css" => Some((STYLE, "text/css; charset=utf-8")),
        "app.js" => Some((APP, "text/javascript; charset=utf-8")),
        "favicon.svg" => Some((FAVICON, "image/svg+xml")),
        _ => None,
    }
}

const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Changes whenever any asset changes, so the lead can serve them with a
/// long cache lifetime and browsers still pick up new versions.
const VERSION: u64 = fnv1a(fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, STYLE), APP), FAVICON);

/// `/assets/{file}?v=…` for links from pages.
pub fn url(file: &str) -> String {
    format!("/assets/{file}?v={:012x}", VERSION & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_known_files_with_their_types() {
        let cases = [
            (
                "style.css",
                "text/css; charset=utf-8",
                "prefers-color-scheme",
            ),
            ("app.js", "text/javascript; charset=utf-8", "EventSource"),
            ("favicon.svg", "image/svg+xml", "<svg"),
        ];
        for (path, ctype, marker) in cases {
            let (body, ty) = asset(path).unwrap();
            assert_eq!(ty, ctype);
            assert!(
                std::str::from_utf8(body).unwrap().contains(marker),
                "{path}"
            );
        }
    }

    #[test]
    fn refuses_everything_else() {
        for path in [
            "",
            "style",
            "../Cargo.toml",
            "../src/lib.rs",
            "/style.css",
            "./app.js",
            "STYLE.CSS",
            "style.css?v=1",
            "assets/style.css",
            "..%2Fstyle.css",
        ] {
            assert!(asset(path).is_none(), "{path}");
        }
    }

    #[test]
    fn urls_carry_a_version() {
        let u = url("style.css");
        assert!(u.starts_with("/assets/style.css?v="));
        assert_eq!(u.len(), "/assets/style.css?v=".len() + 12);
    }

    #[test]
    fn script_never_writes_html() {
        let js = std::str::from_utf8(asset("app.js").unwrap().0).unwrap();
        assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML"));
        assert!(js.contains("textContent"));
    }
}
