//! The edge's side: every request counted into the current minute's
//! aggregates, in memory and bounded. At most `max_keys` distinct keys a
//! minute (paths, referrers, countries, function routes, sites) are held;
//! past the budget a new key is counted under [`OTHER`], never added. The
//! closer swaps the minute out whole, so a request only ever takes one
//! short lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::classify::{agent_digest, is_page_view, referrer_host, visitor_hash, Agent, Classifier};
use crate::model::{cut, Aggregate, Env, FunctionAgg, SiteKey, Top, OTHER};

/// The default budget of distinct keys a minute.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// What a site's own entry costs of the budget: it carries two sketches.
const SITE_WEIGHT: usize = 16;
/// Distinct user agents whose class is remembered (the cache is emptied
/// when full: a flood of made-up agents costs parsing, never memory).
const AGENT_CACHE: usize = 4096;
/// User agents longer than this are classified each time, never cached.
const AGENT_CACHE_MAX_LEN: usize = 512;

/// How a function request ended, beyond its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionEnd {
    Ok,
    Error,
    Timeout,
    Memory,
}

#[derive(Debug, Clone, Copy)]
pub struct FunctionHit<'a> {
    pub route: &'a str,
    pub end: FunctionEnd,
}

/// One finished request of a site.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub project: &'a Arc<str>,
    pub deployment: &'a Arc<str>,
    pub env: Env,
    /// The host the request was for (its own pages are not referrers).
    pub host: &'a str,
    /// What a visitor is unique within (the edge uses the project, so one
    /// person on the apex and on `www` is one visitor).
    pub visitor_scope: &'a str,
    /// The request's path (no query).
    pub path: &'a str,
    pub get: bool,
    pub status: u16,
    pub bytes: u64,
    pub micros: u64,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub user_agent: &'a str,
    pub referer: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// ISO country code, when the node has a GeoIP database.
    pub country: Option<&'a str>,
    pub function: Option<FunctionHit<'a>>,
}

type LiveKey = (Arc<str>, Arc<str>, Env);
type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// A top list while the minute is open: keyed by the request's own string.
#[derive(Default)]
struct LiveTop(Map<Box<str>, u64>);

/// A top list of names from a fixed set (browsers, OSes, devices): a few
/// entries, found by a short scan instead of hashing.
#[derive(Default)]
struct NameTop(Vec<(&'static str, u64)>);

impl NameTop {
    fn add(&mut self, name: &'static str) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => self.0.push((name, 1)),
        }
    }

    fn into_top(self) -> Top {
        let mut t = Top::default();
        for (n, c) in self.0 {
            t.add(n, c);
        }
        t
    }
}

impl LiveTop {
    fn add(&mut self, key: &str, budget: &mut usize) {
        let key = cut(key);
        if let Some(n) = self.0.get_mut(key) {
            *n += 1;
            return;
        }
        let key = if *budget > 0 {
            *budget -= 1;
            key
        } else {
            OTHER
        };
        *self.0.entry(key.into()).or_default() += 1;
    }

    fn into_top(self) -> Top {
        Top(self
            .0
            .into_iter()
            .map(|(k, n)| (k.into_string(), n))
            .collect())
    }
}

#[derive(Default)]
struct LiveSite {
    agg: Aggregate,
    pages: LiveTop,
    not_found: LiveTop,
    referrers: LiveTop,
    countries: LiveTop,
    browsers: NameTop,
    os: NameTop,
    devices: NameTop,
    functions: Map<Box<str>, FunctionAgg>,
}

impl LiveSite {
    fn into_aggregate(self) -> Aggregate {
        let mut a = self.agg;
        a.pages = self.pages.into_top();
        a.not_found = self.not_found.into_top();
        a.referrers = self.referrers.into_top();
        a.countries = self.countries.into_top();
        a.browsers = self.browsers.into_top();
        a.os = self.os.into_top();
        a.devices = self.devices.into_top();
        a.functions = self
            .functions
            .into_iter()
            .map(|(k, f)| (k.into_string(), f))
            .collect();
        a
    }
}

struct Live {
    /// The open minute's start (unix seconds).
    start: i64,
    sites: Map<LiveKey, LiveSite>,
    keys_left: usize,
    /// Hits of sites that found the budget spent (logged at close).
    dropped: u64,
    /// Each distinct user agent's class and digest.
    agents: Map<Box<str>, (Agent, [u8; 16])>,
    /// The visitor salt for each UTC day this node knows of.
    salts: Vec<(i64, [u8; 32])>,
}

/// Counts requests into per-minute aggregates.
pub struct Recorder {
    max_keys: usize,
    classifier: Classifier,
    live: Mutex<Live>,
}

/// A closed minute.
pub struct Closed {
    pub start: i64,
    pub sites: Vec<(SiteKey, Aggregate)>,
    /// Hits not counted because the key budget was spent on sites.
    pub dropped: u64,
}

impl Recorder {
    pub fn new(max_keys: usize, now: i64) -> Recorder {
        Recorder {
            max_keys,
            classifier: Classifier::default(),
            live: Mutex::new(Live {
                start: crate::record::Granularity::Minute.floor(now),
                sites: Map::default(),
                keys_left: max_keys,
                dropped: 0,
                agents: Map::default(),
                salts: Vec::new(),
            }),
        }
    }

    /// The visitor salts by UTC day number (days since the epoch); salts
    /// of days not listed are forgotten.
    pub fn set_salts(&self, salts: Vec<(i64, [u8; 32])>) {
        self.lock().salts = salts;
    }

    /// Keys of the budget in use this minute.
    pub fn keys_in_use(&self) -> usize {
        self.max_keys - self.lock().keys_left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, hit: &Hit<'_>) {
        let mut guard = self.lock();
        let live = &mut *guard;
        let (agent, digest) = match live.agents.get(hit.user_agent) {
            Some(a) => *a,
            None => {
                let a = (
                    self.classifier.classify(hit.user_agent),
                    agent_digest(hit.user_agent),
                );
                if hit.user_agent.len() <= AGENT_CACHE_MAX_LEN {
                    if live.agents.len() >= AGENT_CACHE {
                        live.agents.clear();
                    }
                    live.agents.insert(hit.user_agent.into(), a);
                }
                a
            }
        };
        let key = (hit.project.clone(), hit.deployment.clone(), hit.env);
        let site = match live.sites.get_mut(&key) {
            Some(s) => s,
            None => {
                if live.keys_left < SITE_WEIGHT {
                    live.dropped += 1;
                    return;
                }
                live.keys_left -= SITE_WEIGHT;
                live.sites.entry(key).or_default()
            }
        };
        let budget = &mut live.keys_left;
        let a = &mut site.agg;
        a.requests += 1;
        a.bytes += hit.bytes;
        *a.status.entry(hit.status).or_default() += 1;
        a.duration.record(hit.micros);
        match hit.content_encoding {
            Some(e) if e.eq_ignore_ascii_case("br") => a.encodings.br += 1,
            Some(e) if e.eq_ignore_ascii_case("gzip") => a.encodings.gzip += 1,
            _ => a.encodings.identity += 1,
        }
        if let Some(f) = hit.function {
            let fa = match site.functions.get_mut(f.route) {
                Some(fa) => fa,
                None => {
                    let route = if *budget > 0 {
                        *budget -= 1;
                        cut(f.route)
                    } else {
                        OTHER
                    };
                    site.functions.entry(route.into()).or_default()
                }
            };
            fa.invocations += 1;
            fa.duration.record(hit.micros);
            let failed = hit.status >= 500 || f.end != FunctionEnd::Ok;
            fa.errors += failed as u64;
            fa.timeouts += (f.end == FunctionEnd::Timeout) as u64;
            fa.memory_limit += (f.end == FunctionEnd::Memory) as u64;
        }
        if agent.bot {
            a.bots += 1;
            return;
        }
        if let Some(ip) = hit.ip {
            let day = live.start.div_euclid(86_400);
            if let Some((_, salt)) = live.salts.iter().find(|(d, _)| *d == day) {
                a.visitors
                    .insert(visitor_hash(salt, ip, &digest, hit.visitor_scope));
            }
        }
        if hit.status == 404 {
            site.not_found.add(hit.path, budget);
        }
        if is_page_view(hit.get, hit.status, hit.content_type) {
            a.page_views += 1;
            site.pages.add(hit.path, budget);
            if let Some(r) = hit.referer.and_then(|r| referrer_host(r, hit.host)) {
                site.referrers.add(&r.to_ascii_lowercase(), budget);
            }
            if let Some(c) = hit.country {
                site.countries.add(c, budget);
            }
            site.browsers.add(agent.browser);
            site.os.add(agent.os);
            site.devices.add(agent.device);
        }
    }

    /// Closes the open minute if `now` is past it: its sites, and a fresh
    /// minute opened at `now`'s.
    pub fn close(&self, now: i64) -> Option<Closed> {
        let minute = crate::record::Granularity::Minute.floor(now);
        let mut live = self.lock();
        if minute <= live.start {
            return None;
        }
        let start = std::mem::replace(&mut live.start, minute);
        let sites = std::mem::take(&mut live.sites);
        live.keys_left = self.max_keys;
        let dropped = std::mem::take(&mut live.dropped);
        drop(live);
        Some(Closed {
            start,
            sites: finish(sites),
            dropped,
        })
    }

    /// Closes the open minute whatever the time (a graceful stop).
    pub fn close_now(&self) -> Closed {
        let mut live = self.lock();
        let start = live.start;
        let sites = std::mem::take(&mut live.sites);
        live.keys_left = self.max_keys;
        let dropped = std::mem::take(&mut live.dropped);
        drop(live);
        Closed {
            start,
            sites: finish(sites),
            dropped,
        }
    }
}

fn finish(sites: Map<LiveKey, LiveSite>) -> Vec<(SiteKey, Aggregate)> {
    let mut v: Vec<(SiteKey, Aggregate)> = sites
        .into_iter()
        .map(|((project, deployment, env), s)| {
            let key = SiteKey {
                project: project.to_string(),
                deployment: deployment.to_string(),
                env,
            };
            (key, s.into_aggregate())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    fn hit<'a>(p: &'a Arc<str>, d: &'a Arc<str>, path: &'a str, status: u16) -> Hit<'a> {
        Hit {
            project: p,
            deployment: d,
            env: Env::Production,
            host: "shop.test",
            visitor_scope: "shop",
            path,
            get: true,
            status,
            bytes: 10,
            micros: 500,
            content_type: Some("text/html"),
            content_encoding: None,
            user_agent: CHROME,
            referer: None,
            ip: Some("192.0.2.1".parse().unwrap()),
            country: None,
            function: None,
        }
    }

    #[test]
    fn a_minute_counts_what_it_saw() {
        let p: Arc<str> = "shop".into();
        let d: Arc<str> = "dep1".into();
        let r = Recorder::new(1000, 120);
        r.set_salts(vec![(0, [7; 32])]);
        r.record(&hit(&p, &d, "/", 200));
        r.record(&Hit {
            ip: Some("192.0.2.2".parse().unwrap()),
            referer: Some("https://news.example/x"),
            ..hit(&p, &d, "/about", 200)
        });
        r.record(&Hit {
            content_type: Some("text/css"),
            content_encoding: Some("br"),
            ..hit(&p, &d, "/a.css", 200)
        });
        r.record(&hit(&p, &d, "/missing", 404));
        r.record(&Hit {
            user_agent: "Googlebot/2.1 (+http://www.google.com/bot.html)",
            ..hit(&p, &d, "/", 200)
        });
        r.record(&Hit {
            function: Some(FunctionHit {
                route: "/api/x",
                end: FunctionEnd::Timeout,
            }),
            content_type: Some("application/json"),
            ..hit(&p, &d, "/api/x", 504)
        });
        assert!(r.close(179).is_none(), "the minute is still open");
        let c = r.close(180).unwrap();
        assert_eq!(c.start, 120);
        assert_eq!(c.sites.len(), 1);
        let a = &c.sites[0].1;
        assert_eq!(a.requests, 6);
        assert_eq!(a.page_views, 2);
        assert_eq!(a.bots, 1);
        assert_eq!(a.bytes, 60);
        assert_eq!(a.visitors.estimate(), 2);
        assert_eq!(a.status[&200], 4);
        assert_eq!(a.encodings.br, 1);
        assert_eq!(a.not_found.0["/missing"], 1);
        assert_eq!(a.referrers.0["news.example"], 1);
        assert_eq!(a.browsers.0["Chrome"], 2);
        assert_eq!(a.devices.0["desktop"], 2);
        let f = &a.functions["/api/x"];
        assert_eq!((f.invocations, f.errors, f.timeouts), (1, 1, 1));
        // The next minute starts empty.
        assert!(r.close(240).unwrap().sites.is_empty());
    }

    #[test]
    fn a_flood_of_distinct_paths_stays_within_the_budget() {
        let p: Arc<str> = "shop".into();
        let d: Arc<str> = "dep1".into();
        let r = Recorder::new(100, 0);
        for i in 0..10_000 {
            let path = format!("/p/{i}");
            r.record(&hit(&p, &d, &path, 404));
        }
        assert!(r.keys_in_use() <= 100);
        let c = r.close(60).unwrap();
        let a = &c.sites[0].1;
        assert_eq!(a.requests, 10_000);
        assert_eq!(a.not_found.0.values().sum::<u64>(), 10_000);
        assert!(a.not_found.0.len() <= 100);
        assert!(a.not_found.0[OTHER] > 9_000);
    }

    #[test]
    fn without_a_salt_no_visitor_is_counted() {
        let p: Arc<str> = "shop".into();
        let d: Arc<str> = "dep1".into();
        let r = Recorder::new(100, 0);
        r.record(&hit(&p, &d, "/", 200));
        assert_eq!(r.close(60).unwrap().sites[0].1.visitors.estimate(), 0);
    }
}
