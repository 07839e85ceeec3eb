//! API rate limits: which class a route belongs to (pure, table-tested),
//! the `[rate_limits]` table, and the limiter (`governor`'s GCRA, one
//! keyed limiter per class).
//!
//! A class is counted per *credential* (the API token or the session a
//! request was authenticated with), or per *client address* for routes
//! anyone may call (sign-up, sign-in, webhooks) and for requests that
//! carry no valid credential. Blob uploads have their own budget: a
//! deploy uploads one request per missing file, so a 10,000-file deploy
//! must not spend the budget of ordinary calls (it would take 100 minutes
//! at 100 a minute).
//!
//! The counts live in this coordinator's memory: with several
//! coordinators behind a load balancer each one counts what it sees, so a
//! client spread evenly over N coordinators gets up to N times the limit
//! (docs/operations.md says so).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as GcraQuota, RateLimiter};
use serde::Deserialize;

use crate::accounts::ratelimit::Quota;

/// What a route is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Not limited: the health check load balancers poll, the OpenAPI document.
    Exempt,
    /// Sign-up, sign-in, accepting an invitation: per client address.
    Auth,
    /// A git provider's push webhook: per client address.
    Hooks,
    /// Blob uploads and the missing-blob query of a deploy: per credential.
    Uploads,
    /// Everything else: per credential (per address without one).
    Api,
}

impl RouteClass {
    /// The class of a route, from its method and template (`MatchedPath`,
    /// e.g. `/api/v1/deployments/{id}/blobs/{hash}`).
    pub fn of(method: &axum::http::Method, template: &str) -> RouteClass {
        use axum::http::Method;
        let Some(path) = template.strip_prefix("/api/v1") else {
            return RouteClass::Exempt;
        };
        match path {
            "/health" | "/openapi.json" => RouteClass::Exempt,
            "/auth/signup" | "/auth/login" => RouteClass::Auth,
            p if p.starts_with("/invitations/") && method == Method::POST => RouteClass::Auth,
            p if p.starts_with("/hooks/") => RouteClass::Hooks,
            "/blobs/missing" | "/blobs/{hash}" => RouteClass::Uploads,
            _ => RouteClass::Api,
        }
    }

    /// Whether requests of this class are always counted per address.
    pub fn per_address(self) -> bool {
        matches!(self, RouteClass::Auth | RouteClass::Hooks)
    }

    pub fn name(self) -> &'static str {
        match self {
            RouteClass::Exempt => "exempt",
            RouteClass::Auth => "auth",
            RouteClass::Hooks => "hooks",
            RouteClass::Uploads => "uploads",
            RouteClass::Api => "api",
        }
    }
}

/// `100/min`, `20000/1m`, `5/s`, `1000/h`: a number of requests per a
/// duration (humantime; a bare unit means one of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    pub const fn new(limit: u32, per_secs: u64) -> Rate {
        let limit = match NonZeroU32::new(limit) {
            Some(l) => l,
            None => NonZeroU32::MIN,
        };
        Rate {
            limit,
            per: Duration::from_secs(per_secs),
        }
    }

    pub fn parse(s: &str) -> Result<Rate, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected <requests>/<duration>, e.g. 100/min"))?;
        let limit: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: {n:?} is not a whole number of requests"))?;
        let limit = NonZeroU32::new(limit)
            .filter(|l| l.get() <= 10_000_000)
            .ok_or_else(|| format!("{s:?}: requests must be between 1 and 10000000"))?;
        let per = per.trim();
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
            humantime::parse_duration(per)
        } else {
            humantime::parse_duration(&format!("1{per}"))
        }
        .map_err(|e| format!("{s:?}: {e}"))?;
        if per < Duration::from_secs(1) || per > Duration::from_secs(24 * 3600) {
            return Err(format!("{s:?}: the period must be between 1s and 24h"));
        }
        Ok(Rate { limit, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The `[rate_limits]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Ordinary API routes, per credential (default `100/min`).
    pub api: Rate,
    /// Blob uploads and missing-blob queries, per credential (default
    /// `20000/min`: a 10,000-file deploy in one go, twice).
    pub uploads: Rate,
    /// Sign-up, sign-in and accepting invitations, per client address
    /// (default `20/min`; failed sign-ins have their own, stricter count).
    pub auth: Rate,
    /// Git webhooks, per client address (default `300/min`).
    pub hooks: Rate,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            api: Rate::new(100, 60),
            uploads: Rate::new(20_000, 60),
            auth: Rate::new(20, 60),
            hooks: Rate::new(300, 60),
        }
    }
}

impl RateLimitsConfig {
    /// The period a class's limit is counted over (for messages).
    pub fn period(&self, class: RouteClass) -> Duration {
        self.rate(class).map(|r| r.per).unwrap_or_default()
    }

    fn rate(&self, class: RouteClass) -> Option<Rate> {
        match class {
            RouteClass::Exempt => None,
            RouteClass::Auth => Some(self.auth),
            RouteClass::Hooks => Some(self.hooks),
            RouteClass::Uploads => Some(self.uploads),
            RouteClass::Api => Some(self.api),
        }
    }
}

/// Who a request is counted as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An API token, by its id.
    Token(String),
    /// A dashboard session, by the hash of its cookie.
    Session(String),
    /// A client address (no valid credential, or a per-address class).
    Address(String),
}

type Keyed =
    RateLimiter<Caller, DefaultKeyedStateStore<Caller>, DefaultClock, StateInformationMiddleware>;

struct ClassLimiter {
    rate: Rate,
    limiter: Keyed,
}

/// One keyed GCRA limiter per class. Callers that have not been seen for a
/// full period are forgotten now and then, so the map holds only recent
/// callers.
pub struct ApiLimits {
    classes: Vec<(RouteClass, ClassLimiter)>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Forget idle callers once every this many checks.
const PRUNE_EVERY: u64 = 4096;

impl ApiLimits {
    pub fn new(config: &RateLimitsConfig) -> ApiLimits {
        let classes = [
            RouteClass::Auth,
            RouteClass::Hooks,
            RouteClass::Uploads,
            RouteClass::Api,
        ]
        .into_iter()
        .filter_map(|c| {
            let rate = config.rate(c)?;
            // `limit` requests at once, one more every `per / limit`.
            let every = rate.per / rate.limit.get();
            let quota =
                GcraQuota::with_period(every.max(Duration::from_nanos(1)))?.allow_burst(rate.limit);
            let limiter =
                RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>();
            Some((c, ClassLimiter { rate, limiter }))
        })
        .collect();
        ApiLimits {
            classes,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of `caller` in `class`: `Ok` with what is left,
    /// or `Err` (nothing counted) with when to come back. `None` for an
    /// exempt class.
    pub fn check(&self, class: RouteClass, caller: &Caller) -> Option<Result<Quota, Quota>> {
        let (_, c) = self.classes.iter().find(|(k, _)| *k == class)?;
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            for (_, c) in &self.classes {
                c.limiter.retain_recent();
                c.limiter.shrink_to_fit();
            }
        }
        let limit = c.rate.limit.get();
        let per_request = c.rate.per / limit;
        Some(match c.limiter.check_key(caller) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit);
                Ok(Quota {
                    limit,
                    remaining,
                    // Until the whole budget is back.
                    reset: per_request * (limit - remaining),
                })
            }
            Err(not_until) => Err(Quota {
                limit,
                remaining: 0,
                reset: not_until.wait_time_from(self.clock.now()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn routes_fall_into_their_classes() {
        let cases = [
            (Method::GET, "/api/v1/health", RouteClass::Exempt),
            (Method::GET, "/api/v1/openapi.json", RouteClass::Exempt),
            (Method::GET, "/metrics", RouteClass::Exempt),
            (Method::POST, "/api/v1/auth/signup", RouteClass::Auth),
            (Method::POST, "/api/v1/auth/login", RouteClass::Auth),
            (Method::POST, "/api/v1/auth/logout", RouteClass::Api),
            (
                Method::POST,
                "/api/v1/invitations/{token}/accept",
                RouteClass::Auth,
            ),
            (
                Method::POST,
                "/api/v1/hooks/git/{project}",
                RouteClass::Hooks,
            ),
            (Method::PUT, "/api/v1/blobs/{hash}", RouteClass::Uploads),
            (Method::POST, "/api/v1/blobs/missing", RouteClass::Uploads),
            (Method::GET, "/api/v1/projects", RouteClass::Api),
            (
                Method::POST,
                "/api/v1/deployments/{id}/finalize",
                RouteClass::Api,
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(RouteClass::of(&m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn rates_parse_and_bad_ones_are_refused() {
        for (s, limit, secs) in [
            ("100/min", 100, 60),
            ("20000/1m", 20_000, 60),
            ("5/s", 5, 1),
            ("1000/h", 1000, 3600),
            (" 7 / 10s ", 7, 10),
        ] {
            let r = Rate::parse(s).unwrap();
            assert_eq!((r.limit.get(), r.per.as_secs()), (limit, secs), "{s}");
        }
        for bad in [
            "",
            "100",
            "0/min",
            "-1/min",
            "x/min",
            "100/",
            "100/fortnight",
            "100/500ms",
            "100/2d",
            "99999999/min",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_caller_gets_its_limit_then_waits() {
        let config = RateLimitsConfig {
            api: Rate::new(3, 60),
            ..Default::default()
        };
        let limits = ApiLimits::new(&config);
        let me = Caller::Token("t1".into());
        let left: Vec<u32> = (0..3)
            .map(|_| {
                limits
                    .check(RouteClass::Api, &me)
                    .unwrap()
                    .unwrap()
                    .remaining
            })
            .collect();
        assert_eq!(left, [2, 1, 0]);
        let refused = limits.check(RouteClass::Api, &me).unwrap().unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (3, 0));
        // One request comes back every 20 s.
        assert!(
            refused.reset > Duration::from_secs(15) && refused.reset <= Duration::from_secs(20)
        );
        // Another caller, and another class, have their own budgets.
        let other = Caller::Address("192.0.2.1".into());
        assert!(limits.check(RouteClass::Api, &other).unwrap().is_ok());
        assert!(limits.check(RouteClass::Uploads, &me).unwrap().is_ok());
        assert!(limits.check(RouteClass::Exempt, &me).is_none());
    }
}
