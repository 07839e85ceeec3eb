//! The edge's side: every request counted into the current minute's
//! aggregates, in memory and bounded. At most `max_keys` distinct keys a
//! minute (paths, referrers, countries, function routes) and one site
//! entry per 16 of them are held; past the budget a new key is counted
//! under [`OTHER`], never added. Each serving thread counts into a shard of
//! its own; the closer takes the shards' sites and merges them, so a
//! request only ever takes a short lock no other thread is waiting for.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::classify::{agent_digest, is_page_view, referrer_host, visitor_hash, Agent, Classifier};
use crate::model::{cut, Aggregate, Env, FunctionAgg, SiteKey, Top, OTHER};

/// The default budget of distinct keys a minute.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// Site entries a minute may hold per key of the budget: one for every 16
/// keys (an entry carries two sketches), from a budget of their own so
/// that paths spending the keys never keep a site from being counted.
const SITE_WEIGHT: usize = 16;
/// Distinct user agents whose class is remembered (the cache is emptied
/// when full: a flood of made-up agents costs parsing, never memory).
const AGENT_CACHE: usize = 4096;
/// User agents longer than this are classified each time, never cached.
const AGENT_CACHE_MAX_LEN: usize = 512;

/// How a function request ended, beyond its status. The edge's function
/// path keeps it as a `u8` ([`FunctionEnd::code`]) in an atomic the
/// dispatcher reads back after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FunctionEnd {
    Ok = 0,
    Error = 1,
    Timeout = 2,
    Memory = 3,
}

impl FunctionEnd {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The end a [`code`](Self::code) stands for (anything unknown: `Ok`).
    pub fn from_code(c: u8) -> FunctionEnd {
        match c {
            1 => FunctionEnd::Error,
            2 => FunctionEnd::Timeout,
            3 => FunctionEnd::Memory,
            _ => FunctionEnd::Ok,
        }
    }
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
/// Visitor salts by UTC day.
type Salts = Arc<Vec<(i64, [u8; 32])>>;

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
    /// Counts `key`; a new key only if `take` grants one of the budget.
    fn add(&mut self, key: &str, take: impl Fn(usize) -> bool) {
        let key = cut(key);
        if let Some(n) = self.0.get_mut(key) {
            *n += 1;
            return;
        }
        let key = if take(1) { key } else { OTHER };
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

/// One thread's share of the open minute. Requests count into the shard of
/// the thread serving them, so the per-request lock is one no other thread
/// wants (a shared lock's cache line moving between cores cost more than
/// the counting); the closer takes each shard's sites in turn and merges.
#[derive(Default)]
struct Shard {
    /// Sites by a hash of (project, deployment, environment), so a lookup
    /// needs no owned key (no reference counts touched per request).
    sites: Map<u64, Vec<(LiveKey, LiveSite)>>,
    /// Hits of sites that found the budget spent (logged at close).
    dropped: u64,
    /// Each distinct user agent's class and digest.
    agents: Map<Box<str>, (Agent, [u8; 16])>,
    /// The visitor salt for each UTC day this node knows of.
    salts: Salts,
    /// The last visitor hash made here: consecutive requests on a thread
    /// are often one client's (a keep-alive connection), and the keyed hash
    /// is most of what counting a request costs.
    last_visitor: Option<LastVisitor>,
}

struct LastVisitor {
    ip: IpAddr,
    agent: [u8; 16],
    day: i64,
    scope: Box<str>,
    hash: u64,
}

static NEXT_RECORDER: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard of each live recorder, by the recorder's id.
    static SHARDS: RefCell<Vec<(usize, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
}

/// Counts requests into per-minute aggregates.
pub struct Recorder {
    id: usize,
    max_keys: usize,
    classifier: Classifier,
    /// The open minute's start (unix seconds).
    start: AtomicI64,
    /// What is left of this minute's key budget (all shards share it).
    keys_left: AtomicUsize,
    /// What is left of this minute's site entries (a site counted on two
    /// threads has an entry in each).
    sites_left: AtomicUsize,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    salts: Mutex<Salts>,
    /// Keys sites by (project, deployment, environment).
    hasher: ahash::RandomState,
}

/// A closed minute.
pub struct Closed {
    pub start: i64,
    pub sites: Vec<(SiteKey, Aggregate)>,
    /// Hits not counted because the key budget was spent on sites.
    pub dropped: u64,
}

fn site_budget(max_keys: usize) -> usize {
    (max_keys / SITE_WEIGHT).max(1)
}

/// Takes `n` of `budget`, if that many are left.
fn take_from(budget: &AtomicUsize, n: usize) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(n)
        })
        .is_ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    pub fn new(max_keys: usize, now: i64) -> Recorder {
        Recorder {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            max_keys,
            classifier: Classifier::default(),
            start: AtomicI64::new(crate::record::Granularity::Minute.floor(now)),
            keys_left: AtomicUsize::new(max_keys),
            sites_left: AtomicUsize::new(site_budget(max_keys)),
            shards: Mutex::new(Vec::new()),
            salts: Mutex::new(Arc::new(Vec::new())),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The visitor salts by UTC day number (days since the epoch); salts
    /// of days not listed are forgotten.
    pub fn set_salts(&self, salts: Vec<(i64, [u8; 32])>) {
        let salts = Arc::new(salts);
        *lock(&self.salts) = salts.clone();
        for shard in lock(&self.shards).iter() {
            let mut s = lock(shard);
            s.salts = salts.clone();
            // A hash made with a salt no longer listed must not be reused.
            s.last_visitor = None;
        }
    }

    /// Keys of the budget in use this minute.
    pub fn keys_in_use(&self) -> usize {
        self.max_keys
            .saturating_sub(self.keys_left.load(Ordering::Relaxed))
    }

    /// Takes `n` keys of the budget, if that many are left.
    fn take(&self, n: usize) -> bool {
        take_from(&self.keys_left, n)
    }

    /// Runs `f` on this thread's shard (made and registered on first use).
    fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        SHARDS.with(|cell| {
            let mut mine = cell.borrow_mut();
            if let Some((_, s)) = mine.iter().find(|(id, _)| *id == self.id) {
                // Nothing in `f` touches the thread's list again.
                return f(&mut lock(s));
            }
            // First use on this thread. Shards of recorders that are gone
            // (only this thread still holds them) go first.
            mine.retain(|(_, s)| Arc::strong_count(s) > 1);
            let shard = Arc::new(Mutex::new(Shard {
                salts: lock(&self.salts).clone(),
                ..Default::default()
            }));
            lock(&self.shards).push(shard.clone());
            mine.push((self.id, shard.clone()));
            drop(mine);
            let mut g = lock(&shard);
            f(&mut g)
        })
    }

    pub fn record(&self, hit: &Hit<'_>) {
        let site_hash = self
            .hasher
            .hash_one((&**hit.project, &**hit.deployment, hit.env));
        self.with_shard(|shard| self.record_into(shard, site_hash, hit));
    }

    fn record_into(&self, shard: &mut Shard, site_hash: u64, hit: &Hit<'_>) {
        let (agent, digest) = match shard.agents.get(hit.user_agent) {
            Some(a) => *a,
            None => {
                let a = (
                    self.classifier.classify(hit.user_agent),
                    agent_digest(hit.user_agent),
                );
                if hit.user_agent.len() <= AGENT_CACHE_MAX_LEN {
                    if shard.agents.len() >= AGENT_CACHE {
                        shard.agents.clear();
                    }
                    shard.agents.insert(hit.user_agent.into(), a);
                }
                a
            }
        };
        let bucket = shard.sites.entry(site_hash).or_default();
        let at = bucket.iter().position(|((p, d, e), _)| {
            **p == **hit.project && **d == **hit.deployment && *e == hit.env
        });
        let site = match at {
            Some(i) => &mut bucket[i].1,
            None => {
                if !take_from(&self.sites_left, 1) {
                    shard.dropped += 1;
                    return;
                }
                let key = (hit.project.clone(), hit.deployment.clone(), hit.env);
                bucket.push((key, LiveSite::default()));
                &mut bucket.last_mut().expect("just pushed").1
            }
        };
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
                    let route = if self.take(1) { cut(f.route) } else { OTHER };
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
            let day = self.start.load(Ordering::Relaxed).div_euclid(86_400);
            let known = shard.last_visitor.as_ref().filter(|v| {
                v.ip == ip && v.agent == digest && v.day == day && *v.scope == *hit.visitor_scope
            });
            match known {
                Some(v) => a.visitors.insert(v.hash),
                None => {
                    if let Some((_, salt)) = shard.salts.iter().find(|(d, _)| *d == day) {
                        let hash = visitor_hash(salt, ip, &digest, hit.visitor_scope);
                        a.visitors.insert(hash);
                        shard.last_visitor = Some(LastVisitor {
                            ip,
                            agent: digest,
                            day,
                            scope: hit.visitor_scope.into(),
                            hash,
                        });
                    }
                }
            }
        }
        let take = |n| self.take(n);
        if hit.status == 404 {
            site.not_found.add(hit.path, take);
        }
        if is_page_view(hit.get, hit.status, hit.content_type) {
            a.page_views += 1;
            site.pages.add(hit.path, take);
            if let Some(r) = hit.referer.and_then(|r| referrer_host(r, hit.host)) {
                site.referrers.add(&r.to_ascii_lowercase(), take);
            }
            if let Some(c) = hit.country {
                site.countries.add(c, take);
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
        let start = self.start.load(Ordering::Relaxed);
        if minute <= start {
            return None;
        }
        self.start.store(minute, Ordering::Relaxed);
        Some(self.take_all(start))
    }

    /// Closes the open minute whatever the time (a graceful stop).
    pub fn close_now(&self) -> Closed {
        self.take_all(self.start.load(Ordering::Relaxed))
    }

    /// Every shard's sites, merged, as the minute that started at `start`;
    /// the budget starts again. A request counted while this runs lands in
    /// one minute or the other, never in both.
    fn take_all(&self, start: i64) -> Closed {
        self.keys_left.store(self.max_keys, Ordering::Relaxed);
        self.sites_left
            .store(site_budget(self.max_keys), Ordering::Relaxed);
        let shards: Vec<Arc<Mutex<Shard>>> = lock(&self.shards).clone();
        let mut merged: BTreeMap<SiteKey, Aggregate> = BTreeMap::new();
        let mut dropped = 0;
        for shard in shards {
            let (sites, d) = {
                let mut g = lock(&shard);
                (std::mem::take(&mut g.sites), std::mem::take(&mut g.dropped))
            };
            dropped += d;
            for ((project, deployment, env), s) in sites.into_values().flatten() {
                let key = SiteKey {
                    project: project.to_string(),
                    deployment: deployment.to_string(),
                    env,
                };
                let a = s.into_aggregate();
                match merged.get_mut(&key) {
                    Some(m) => m.merge(&a),
                    None => {
                        merged.insert(key, a);
                    }
                }
            }
        }
        Closed {
            start,
            sites: merged.into_iter().collect(),
            dropped,
        }
    }
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
        assert!(a.not_found.0.len() <= 101, "100 keys and (other)");
        assert!(a.not_found.0[OTHER] > 9_000);
    }

    #[test]
    fn threads_count_into_shards_that_merge_into_one_minute() {
        let p: Arc<str> = "shop".into();
        let d: Arc<str> = "dep1".into();
        let r = Recorder::new(200, 0);
        r.set_salts(vec![(0, [7; 32])]);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (r, p, d) = (&r, &p, &d);
                s.spawn(move || {
                    for i in 0..1000 {
                        let path = format!("/t{t}/{i}");
                        r.record(&hit(p, d, &path, 404));
                    }
                });
            }
        });
        assert!(r.keys_in_use() <= 200);
        let c = r.close(60).unwrap();
        assert_eq!(c.sites.len(), 1, "one site, whatever the threads");
        let a = &c.sites[0].1;
        assert_eq!(a.requests, 4000);
        assert_eq!(a.not_found.0.values().sum::<u64>(), 4000);
        assert_eq!(a.visitors.estimate(), 1);
        // The next minute starts with the whole budget and nothing in it.
        assert_eq!(r.keys_in_use(), 0);
        assert!(r.close(120).unwrap().sites.is_empty());
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

#[cfg(test)]
mod cost {
    use super::*;

    /// Rough per-request cost of `record` (run with `--release --ignored`).
    #[test]
    #[ignore]
    fn record_cost() {
        let p: Arc<str> = "shop".into();
        let d: Arc<str> = "dep1".into();
        let r = Recorder::new(DEFAULT_MAX_KEYS, 0);
        r.set_salts(vec![(0, [7; 32])]);
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let hit = Hit {
            project: &p,
            deployment: &d,
            env: Env::Production,
            host: "shop.test",
            visitor_scope: "shop",
            path: "/1k.html",
            get: true,
            status: 200,
            bytes: 1024,
            micros: 380,
            content_type: Some("text/html; charset=utf-8"),
            content_encoding: None,
            user_agent: ua,
            referer: None,
            ip: Some("127.0.0.1".parse().unwrap()),
            country: None,
            function: None,
        };
        for _ in 0..10_000 {
            r.record(&hit);
        }
        let n = 2_000_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            r.record(std::hint::black_box(&hit));
        }
        eprintln!("record: {:.0} ns", t.elapsed().as_nanos() as f64 / n as f64);
        let salt = [7u8; 32];
        let dg = agent_digest(ua);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        for i in 0..n {
            x ^= visitor_hash(
                &salt,
                "127.0.0.1".parse().unwrap(),
                &dg,
                if i % 2 == 0 { "shop" } else { "shoq" },
            );
        }
        eprintln!(
            "visitor_hash: {:.0} ns ({x})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
