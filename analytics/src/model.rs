//! What one site served in one bucket of time, as edges send it and the
//! coordinator stores it: counters, bounded top lists and two sketches.
//! Everything here merges (sums, unions), so a minute from two nodes, or
//! sixty minutes into an hour, are one `merge` each.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sketch::{Latency, Visitors};

/// The key every top list folds its overflow into.
pub const OTHER: &str = "(other)";
/// Longest key kept in a top list (a path, a referrer host); longer ones
/// are cut at a character boundary.
pub const MAX_KEY_BYTES: usize = 512;

/// Which of a project's environments served the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Env {
    Production,
    Preview,
}

impl Env {
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Production => "production",
            Env::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Env> {
        match s {
            "production" => Some(Env::Production),
            "preview" => Some(Env::Preview),
            _ => None,
        }
    }
}

/// Whose traffic an aggregate counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SiteKey {
    pub project: String,
    pub deployment: String,
    pub env: Env,
}

/// Counts per key, bounded: past `cap` keys the smallest go to [`OTHER`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top(pub BTreeMap<String, u64>);

impl Top {
    pub fn add(&mut self, key: &str, n: u64) {
        match self.0.get_mut(key) {
            Some(c) => *c = c.saturating_add(n),
            None => {
                self.0.insert(cut(key).to_string(), n);
            }
        }
    }

    pub fn merge(&mut self, other: &Top, cap: usize) {
        for (k, n) in &other.0 {
            self.add(k, *n);
        }
        self.trim(cap);
    }

    /// Keeps the `cap` largest keys (ties by key), folding the rest into
    /// [`OTHER`].
    pub fn trim(&mut self, cap: usize) {
        if self.0.len() <= cap {
            return;
        }
        let other = self.0.remove(OTHER).unwrap_or(0);
        let mut v: Vec<(String, u64)> = std::mem::take(&mut self.0).into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let keep = cap.saturating_sub(1);
        let folded = v[keep.min(v.len())..]
            .iter()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        v.truncate(keep);
        self.0 = v.into_iter().collect();
        self.0
            .insert(OTHER.to_string(), other.saturating_add(folded));
    }

    /// The `n` largest, largest first (ties by key).
    pub fn largest(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.0.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// `s` cut to [`MAX_KEY_BYTES`] at a character boundary.
pub fn cut(s: &str) -> &str {
    if s.len() <= MAX_KEY_BYTES {
        return s;
    }
    let mut end = MAX_KEY_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A function route's numbers. Every request routed to a function is an
/// invocation; errors are the ones that ended in a 5xx or were cut off
/// (timeouts and memory-limit hits are errors too, and counted apart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionAgg {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub memory_limit: u64,
    pub duration: Latency,
}

impl FunctionAgg {
    pub fn merge(&mut self, o: &FunctionAgg) {
        self.invocations = self.invocations.saturating_add(o.invocations);
        self.errors = self.errors.saturating_add(o.errors);
        self.timeouts = self.timeouts.saturating_add(o.timeouts);
        self.memory_limit = self.memory_limit.saturating_add(o.memory_limit);
        self.duration.merge(&o.duration);
    }
}

/// How response bodies left: precompressed variants or as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encodings {
    pub br: u64,
    pub gzip: u64,
    pub identity: u64,
}

/// One site's traffic in one bucket (on one node, or merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub requests: u64,
    /// HTML responses with status 200, 201 or 304 to GET, bots excluded.
    pub page_views: u64,
    /// Requests from known bots (counted in `requests`, nowhere else).
    pub bots: u64,
    /// Response body bytes sent.
    pub bytes: u64,
    pub status: BTreeMap<u16, u64>,
    pub encodings: Encodings,
    /// Distinct visitors among non-bot requests.
    pub visitors: Visitors,
    /// Time from the request's head to the response's end.
    pub duration: Latency,
    /// Page views per path.
    pub pages: Top,
    /// 404s per path (bots excluded).
    pub not_found: Top,
    /// Page views per referring host (other sites only).
    pub referrers: Top,
    /// Page views per ISO country code, when the edge has a GeoIP database.
    pub countries: Top,
    pub browsers: Top,
    pub os: Top,
    /// `desktop`, `mobile`, `tablet` or `other`.
    pub devices: Top,
    /// Per function route (`/api/users/:id`).
    pub functions: BTreeMap<String, FunctionAgg>,
}

/// Keys each top list keeps once merged at the coordinator.
pub const MERGED_TOP_CAP: usize = 1000;
/// Function routes a site may have (routes beyond fold into [`OTHER`]).
pub const MAX_FUNCTION_ROUTES: usize = 256;

impl Aggregate {
    /// Counters saturate: records come from edges, and no pair of them may
    /// wrap a total (or, in a debug build, panic).
    pub fn merge(&mut self, o: &Aggregate) {
        self.requests = self.requests.saturating_add(o.requests);
        self.page_views = self.page_views.saturating_add(o.page_views);
        self.bots = self.bots.saturating_add(o.bots);
        self.bytes = self.bytes.saturating_add(o.bytes);
        for (code, n) in &o.status {
            let mine = self.status.entry(*code).or_default();
            *mine = mine.saturating_add(*n);
        }
        self.encodings.br = self.encodings.br.saturating_add(o.encodings.br);
        self.encodings.gzip = self.encodings.gzip.saturating_add(o.encodings.gzip);
        self.encodings.identity = self.encodings.identity.saturating_add(o.encodings.identity);
        self.visitors.merge(&o.visitors);
        self.duration.merge(&o.duration);
        for (mine, theirs) in [
            (&mut self.pages, &o.pages),
            (&mut self.not_found, &o.not_found),
            (&mut self.referrers, &o.referrers),
            (&mut self.countries, &o.countries),
            (&mut self.browsers, &o.browsers),
            (&mut self.os, &o.os),
            (&mut self.devices, &o.devices),
        ] {
            mine.merge(theirs, MERGED_TOP_CAP);
        }
        for (route, f) in &o.functions {
            let key = if self.functions.len() >= MAX_FUNCTION_ROUTES
                && !self.functions.contains_key(route)
            {
                OTHER
            } else {
                route.as_str()
            };
            match self.functions.get_mut(key) {
                Some(mine) => mine.merge(f),
                None => {
                    self.functions.insert(key.to_string(), f.clone());
                }
            }
        }
    }

    /// Requests per status class: `2xx` … `5xx` (1xx with 2xx: none reach
    /// the counters).
    pub fn status_classes(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for (code, n) in &self.status {
            let class = match code {
                0..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            };
            let sum = m.entry(class).or_default();
            *sum = u64::saturating_add(*sum, *n);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records arrive from edges: two huge counts saturate, never wrap or
    /// panic.
    #[test]
    fn merged_counters_saturate() {
        let mut a = Aggregate {
            requests: u64::MAX - 1,
            ..Default::default()
        };
        a.status.insert(200, u64::MAX);
        a.pages.add("/", u64::MAX);
        let b = a.clone();
        a.merge(&b);
        assert_eq!(a.requests, u64::MAX);
        assert_eq!(a.status[&200], u64::MAX);
        assert_eq!(a.pages.0["/"], u64::MAX);
        assert_eq!(a.status_classes()["2xx"], u64::MAX);
        let mut t = Top::default();
        for k in ["a", "b", "c"] {
            t.add(k, u64::MAX);
        }
        t.trim(2);
        assert_eq!(t.0[OTHER], u64::MAX);
    }

    #[test]
    fn top_folds_the_smallest_into_other() {
        let mut t = Top::default();
        for (k, n) in [("/a", 5), ("/b", 1), ("/c", 3), ("/d", 1)] {
            t.add(k, n);
        }
        t.trim(3);
        assert_eq!(
            t.0,
            BTreeMap::from([
                ("/a".to_string(), 5),
                ("/c".to_string(), 3),
                (OTHER.to_string(), 2)
            ])
        );
        // Merging keeps the total.
        let mut u = Top::default();
        u.add("/e", 10);
        u.merge(&t, 3);
        assert_eq!(u.0.values().sum::<u64>(), 20);
        assert_eq!(u.largest(1), vec![("/e".to_string(), 10)]);
    }

    #[test]
    fn long_keys_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_KEY_BYTES);
        let c = cut(&long);
        assert!(c.len() <= MAX_KEY_BYTES && c.len() >= MAX_KEY_BYTES - 1);
        let mut t = Top::default();
        t.add(&long, 1);
        assert!(t.0.keys().all(|k| k.len() <= MAX_KEY_BYTES));
    }

    #[test]
    fn aggregates_merge_by_sum_and_union() {
        let mut a = Aggregate {
            requests: 3,
            page_views: 2,
            bytes: 100,
            ..Default::default()
        };
        a.status.insert(200, 2);
        a.status.insert(404, 1);
        a.visitors.insert(crate::sketch::tests::h(1));
        let mut b = a.clone();
        b.visitors.insert(crate::sketch::tests::h(2));
        b.functions.insert(
            "/api".into(),
            FunctionAgg {
                invocations: 2,
                errors: 1,
                ..Default::default()
            },
        );
        a.merge(&b);
        assert_eq!((a.requests, a.page_views, a.bytes), (6, 4, 200));
        assert_eq!(a.status[&200], 4);
        assert_eq!(a.visitors.estimate(), 2);
        assert_eq!(a.functions["/api"].errors, 1);
        assert_eq!(a.status_classes(), BTreeMap::from([("2xx", 4), ("4xx", 2)]));
    }
}
