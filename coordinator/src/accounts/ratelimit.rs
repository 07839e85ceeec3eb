//! Slows down password guessing: failed sign-ins are counted per account
//! and per client address in a fixed window; over the limit, sign-in is
//! refused (429) until the window ends, even with the right password.
//!
//! Hand-written rather than `governor`: we count *failures* only and
//! forget them on success, and we need the remaining count and the reset
//! time for `X-RateLimit-*` headers — a few lines over a mutex'd map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The map is bounded: past this many keys, expired windows are dropped,
/// and if none have expired the oldest window goes.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub limit: u32,
    pub window: Duration,
}

/// What the caller may still do in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Until the window ends (zero when nothing has been counted).
    pub reset: Duration,
}

pub struct Limiter {
    rule: Rule,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(rule: Rule) -> Self {
        Limiter {
            rule,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The quota for `key` now; `remaining == 0` means refuse.
    pub fn check(&self, key: &str, now: Instant) -> Quota {
        let map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.quota(map.get(key).copied(), now)
    }

    /// Counts one failure and returns the quota after it.
    pub fn fail(&self, key: &str, now: Instant) -> Quota {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        self.count(&mut map, key, now)
    }

    /// Checks and counts in one step: `Err` (nothing counted) when the
    /// window is used up, else the attempt is counted as a failure until
    /// [`Limiter::refund`] gives it back.
    pub fn reserve(&self, key: &str, now: Instant) -> Result<Quota, Quota> {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let q = self.quota(map.get(key).copied(), now);
        if q.remaining == 0 {
            return Err(q);
        }
        Ok(self.count(&mut map, key, now))
    }

    /// Gives back one attempt counted by [`Limiter::reserve`].
    pub fn refund(&self, key: &str) {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get_mut(key) {
            w.1 = w.1.saturating_sub(1);
        }
    }

    fn count(&self, map: &mut HashMap<String, (Instant, u32)>, key: &str, now: Instant) -> Quota {
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.rule.window;
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
            if map.len() >= MAX_KEYS {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.rule.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let current = *entry;
        self.quota(Some(current), now)
    }

    pub fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn quota(&self, window: Option<(Instant, u32)>, now: Instant) -> Quota {
        match window {
            Some((start, used)) if now.duration_since(start) < self.rule.window => Quota {
                limit: self.rule.limit,
                remaining: self.rule.limit.saturating_sub(used),
                reset: self.rule.window - now.duration_since(start),
            },
            _ => Quota {
                limit: self.rule.limit,
                remaining: self.rule.limit,
                reset: Duration::ZERO,
            },
        }
    }
}

/// Sign-in limits: per account and per client address.
pub struct LoginLimits {
    pub account: Limiter,
    pub ip: Limiter,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let window = Duration::from_secs(15 * 60);
        LoginLimits {
            account: Limiter::new(Rule { limit: 5, window }),
            ip: Limiter::new(Rule { limit: 20, window }),
        }
    }
}

impl LoginLimits {
    /// The tighter of the two quotas: the one a response reports.
    pub fn check(&self, email: &str, ip: &str, now: Instant) -> Quota {
        tighter(self.account.check(email, now), self.ip.check(ip, now))
    }

    pub fn fail(&self, email: &str, ip: &str, now: Instant) -> Quota {
        tighter(self.account.fail(email, now), self.ip.fail(ip, now))
    }

    /// One sign-in attempt, counted as a failure under both limits before
    /// the password is checked; `Err` with the quota that refused it.
    pub fn reserve(&self, email: &str, ip: &str, now: Instant) -> Result<Quota, Quota> {
        let account = self.account.reserve(email, now)?;
        match self.ip.reserve(ip, now) {
            Ok(ip) => Ok(tighter(account, ip)),
            Err(q) => {
                self.account.refund(email);
                Err(q)
            }
        }
    }

    /// A reserved attempt that was not judged (the hashing gate was full).
    pub fn refund(&self, email: &str, ip: &str) {
        self.account.refund(email);
        self.ip.refund(ip);
    }

    /// The password was right: the account's failures are forgotten, and
    /// the attempt does not count against the address.
    pub fn succeed(&self, email: &str, ip: &str) {
        self.account.clear(email);
        self.ip.refund(ip);
    }
}

fn tighter(a: Quota, b: Quota) -> Quota {
    match (a.remaining, b.remaining) {
        (0, 0) => {
            if a.reset >= b.reset {
                a
            } else {
                b
            }
        }
        (0, _) => a,
        (_, 0) => b,
        _ if a.remaining <= b.remaining => a,
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_in_a_window_and_resets() {
        let l = Limiter::new(Rule {
            limit: 3,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0).remaining, 3);
        assert_eq!(l.fail("a", t0).remaining, 2);
        assert_eq!(l.fail("a", t0).remaining, 1);
        let q = l.fail("a", t0 + Duration::from_secs(10));
        assert_eq!(q.remaining, 0);
        assert_eq!(q.reset, Duration::from_secs(50));
        assert_eq!(l.check("b", t0).remaining, 3, "keys are separate");
        assert_eq!(l.check("a", t0 + Duration::from_secs(61)).remaining, 3);
        assert_eq!(l.fail("a", t0 + Duration::from_secs(61)).remaining, 2);
        l.clear("a");
        assert_eq!(l.check("a", t0 + Duration::from_secs(62)).remaining, 3);
    }

    #[test]
    fn reports_the_tighter_quota() {
        let limits = LoginLimits::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            limits.fail("ada@example.com", "10.0.0.1", t0);
        }
        let q = limits.check("ada@example.com", "10.0.0.2", t0);
        assert_eq!((q.limit, q.remaining), (5, 0));
        let other = limits.check("bob@example.com", "10.0.0.1", t0);
        assert_eq!(
            (other.limit, other.remaining),
            (5, 5),
            "bob's own quota is tighter"
        );
        for _ in 0..15 {
            limits.fail("eve@example.com", "10.0.0.1", t0);
        }
        let q = limits.check("carol@example.com", "10.0.0.1", t0);
        assert_eq!((q.limit, q.remaining), (20, 0), "the address is used up");
        limits.succeed("ada@example.com", "10.0.0.3");
        assert_eq!(limits.check("ada@example.com", "10.0.0.3", t0).remaining, 5);
    }

    /// Checking and counting are one step: of many attempts at once, no
    /// more than the limit get through, whatever the interleaving.
    #[test]
    fn concurrent_reservations_never_pass_the_limit() {
        let limits = std::sync::Arc::new(LoginLimits::default());
        let t0 = Instant::now();
        let passed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if limits.reserve("ada@example.com", "10.0.0.1", t0).is_ok() {
                            passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 5, "the account's limit");
        // A refused account takes nothing from the address …
        assert_eq!(limits.check("bob@example.com", "10.0.0.1", t0).remaining, 5);
        assert_eq!(limits.ip.check("10.0.0.1", t0).remaining, 15);
        // … and a refund gives an attempt back.
        limits.refund("ada@example.com", "10.0.0.1");
        assert!(limits.reserve("ada@example.com", "10.0.0.1", t0).is_ok());
        assert!(limits.reserve("ada@example.com", "10.0.0.1", t0).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = Limiter::new(Rule {
            limit: 1,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            l.fail(&i.to_string(), t0);
        }
        assert!(l.windows.lock().unwrap().len() <= MAX_KEYS);
    }
}
