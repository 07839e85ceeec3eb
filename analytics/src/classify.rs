//! What a request is, from its headers: a bot or not, which browser, OS
//! and device class (a user agent is parsed once per distinct string a
//! minute, not per request), where it was referred from, and who the
//! visitor is without keeping anything that identifies them.

use std::net::IpAddr;

/// A user agent's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    pub bot: bool,
    pub browser: &'static str,
    pub os: &'static str,
    pub device: &'static str,
}

/// Classifies user agents: `isbot`'s maintained crawler list first, then
/// `woothee` for browser, OS and device.
pub struct Classifier {
    bots: isbot::Bots,
    parser: woothee::parser::Parser,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            bots: isbot::Bots::default(),
            parser: woothee::parser::Parser::new(),
        }
    }
}

/// Names kept as they are; anything else is `Other` (a bounded set, so a
/// hostile user agent cannot add keys).
const BROWSERS: &[&str] = &[
    "Chrome",
    "Safari",
    "Firefox",
    "Edge",
    "Opera",
    "Internet Explorer",
    "Vivaldi",
    "Yandex Browser",
    "Samsung Internet",
    "UC Browser",
];
const OSES: &[&str] = &[
    "Windows 10",
    "Windows 8.1",
    "Windows 8",
    "Windows 7",
    "Mac OSX",
    "iPhone",
    "iPad",
    "iPod",
    "Android",
    "Linux",
    "ChromeOS",
    "BlackBerry",
    "FreeBSD",
];

impl Classifier {
    pub fn classify(&self, user_agent: &str) -> Agent {
        // No user agent at all is a script's habit, not a browser's.
        if user_agent.is_empty() || self.bots.is_bot(user_agent) {
            return Agent {
                bot: true,
                browser: "Bot",
                os: "Other",
                device: "bot",
            };
        }
        let Some(r) = self.parser.parse(user_agent) else {
            return Agent {
                bot: false,
                browser: "Other",
                os: "Other",
                device: "other",
            };
        };
        if r.category == "crawler" {
            return Agent {
                bot: true,
                browser: "Bot",
                os: "Other",
                device: "bot",
            };
        }
        let known = |list: &[&'static str], v: &str| -> &'static str {
            list.iter().copied().find(|k| *k == v).unwrap_or("Other")
        };
        let os = known(OSES, r.os);
        // woothee puts tablets with phones; the OS tells most of them apart.
        let device = match r.category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" if r.os == "iPad" => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        };
        Agent {
            bot: false,
            browser: known(BROWSERS, r.name),
            os,
            device,
        }
    }
}

/// The host of a `Referer` as written (callers lower-case it before
/// counting), when it is another site's (`None` for none, a malformed one,
/// or the site itself, in any case).
pub fn referrer_host<'a>(referer: &'a str, own_host: &str) -> Option<&'a str> {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    };
    if host.is_empty()
        || host.len() > 253
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'.'
                || b == b'-'
                || b == b'_'
                || b == b'['
                || b == b']'
                || b == b':'
        })
        || host.eq_ignore_ascii_case(own_host)
    {
        return None;
    }
    Some(host)
}

/// A page view: an HTML answer (200, 201 or 304) to GET, as Netlify counts.
pub fn is_page_view(get: bool, status: u16, content_type: Option<&str>) -> bool {
    get && matches!(status, 200 | 201 | 304)
        && content_type
            .is_some_and(|t| t.len() >= 9 && t.as_bytes()[..9].eq_ignore_ascii_case(b"text/html"))
}

/// A user agent's digest, as [`visitor_hash`] takes it (computed once per
/// distinct agent: the recorder caches it with the agent's class).
pub fn agent_digest(user_agent: &str) -> [u8; 16] {
    blake3::hash(user_agent.as_bytes()).as_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

/// The visitor's hash: keyed by the day's salt, over address, user agent
/// (its [`agent_digest`]) and scope (Plausible's scheme, with the project
/// for the site). The address never leaves this function; without the
/// salt (dropped after two days) the hash cannot be tied back to it.
pub fn visitor_hash(salt: &[u8; 32], ip: IpAddr, agent: &[u8; 16], scope: &str) -> u64 {
    // Fixed-length parts first (an IPv4 address as its IPv6 mapping), so
    // no two inputs feed the same bytes; one-shot on a stack buffer, which
    // is about twice as fast as blake3's incremental hasher for this size.
    let ip = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut buf = [0u8; 128];
    let scope = scope.as_bytes();
    let out = if scope.len() <= buf.len() - 32 {
        buf[..16].copy_from_slice(&ip.octets());
        buf[16..32].copy_from_slice(agent);
        buf[32..32 + scope.len()].copy_from_slice(scope);
        blake3::keyed_hash(salt, &buf[..32 + scope.len()])
    } else {
        let mut h = blake3::Hasher::new_keyed(salt);
        h.update(&ip.octets());
        h.update(agent);
        h.update(scope);
        h.finalize()
    };
    u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_classified() {
        let c = Classifier::default();
        let chrome_win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1";
        let firefox_linux =
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        let table: &[(&str, bool, &str, &str, &str)] = &[
            (chrome_win, false, "Chrome", "Windows 10", "desktop"),
            (iphone, false, "Safari", "iPhone", "mobile"),
            (ipad, false, "Safari", "iPad", "tablet"),
            (firefox_linux, false, "Firefox", "Linux", "desktop"),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                true,
                "Bot",
                "Other",
                "bot",
            ),
            ("curl/8.5.0", true, "Bot", "Other", "bot"),
            ("", true, "Bot", "Other", "bot"),
            (
                "<script>alert(1)</script>",
                false,
                "Other",
                "Other",
                "other",
            ),
        ];
        for (ua, bot, browser, os, device) in table {
            let a = c.classify(ua);
            assert_eq!(
                (a.bot, a.browser, a.os, a.device),
                (*bot, *browser, *os, *device),
                "{ua}"
            );
        }
    }

    #[test]
    fn referrers_are_other_sites_hosts() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "https://news.example.org/item?id=1",
                Some("news.example.org"),
            ),
            (
                "http://user:pw@Search.Example:8080/x",
                Some("Search.Example"),
            ),
            ("https://shop.test/page", None),
            ("https://SHOP.test/", None),
            ("android-app://com.x", None),
            ("not a url", None),
            ("https:///path", None),
            ("https://bad host/", None),
        ];
        for (r, want) in table {
            assert_eq!(referrer_host(r, "shop.test"), *want, "{r}");
        }
    }

    #[test]
    fn page_views_follow_netlify() {
        let html = Some("text/html; charset=utf-8");
        assert!(is_page_view(true, 200, html));
        assert!(is_page_view(true, 304, html));
        assert!(is_page_view(true, 201, Some("TEXT/HTML")));
        assert!(!is_page_view(false, 200, html), "HEAD");
        assert!(!is_page_view(true, 404, html));
        assert!(!is_page_view(true, 200, Some("text/css")));
        assert!(!is_page_view(true, 200, None));
    }

    #[test]
    fn visitor_hashes_depend_on_every_part() {
        let s1 = [1u8; 32];
        let s2 = [2u8; 32];
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        let (ua, ub) = (agent_digest("ua"), agent_digest("ub"));
        let base = visitor_hash(&s1, ip, &ua, "a.test");
        assert_eq!(base, visitor_hash(&s1, ip, &ua, "a.test"));
        for other in [
            visitor_hash(&s2, ip, &ua, "a.test"),
            visitor_hash(&s1, ip2, &ua, "a.test"),
            visitor_hash(&s1, ip, &ub, "a.test"),
            visitor_hash(&s1, ip, &ua, "b.test"),
        ] {
            assert_ne!(base, other);
        }
    }
}
