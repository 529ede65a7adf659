//! The web configuration file's `rate_limit` (exporter-toolkit's): token buckets, one per
//! [`Budget`], so requests whose credentials were accepted never compete with the rest.

use super::{bad, Problem, RateLimitFile};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which budget of the rate limit a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Requests whose basic-auth credentials were accepted.
    Authenticated,
    /// Everything else: `/healthz`, requests without or with wrong credentials, and every
    /// request when basic authentication is off.
    Open,
}

/// Two token buckets of the same size (exporter-toolkit's `rate_limit`): `burst` at once, then
/// one per `interval`, one for each [`Budget`], so nothing an unauthenticated client sends can
/// spend an authenticated scraper's budget. Requests beyond their bucket are answered 429.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    authenticated: Mutex<(f64, Instant)>,
    open: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(super) fn from_file(r: &RateLimitFile) -> Result<Option<RateLimiter>, Problem> {
        let interval = r.interval.map_or(0.0, |s| s.0);
        if !interval.is_finite() || interval < 0.0 {
            return bad(
                "rate_limit.interval",
                format!("{interval} must not be negative"),
            );
        }
        if interval == 0.0 {
            return Ok(None);
        }
        let burst = r.burst.unwrap_or(0);
        if burst == 0 {
            return bad(
                "rate_limit.burst",
                "must be at least 1 when interval is set (0 would refuse every request)",
            );
        }
        Ok(Some(RateLimiter::new(
            Duration::from_secs_f64(interval),
            burst,
        )))
    }

    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        let full = (f64::from(burst), Instant::now());
        RateLimiter {
            interval,
            burst: f64::from(burst),
            authenticated: Mutex::new(full),
            open: Mutex::new(full),
        }
    }

    /// Takes a token from `budget`'s bucket; false when none is left.
    pub fn allow(&self, budget: Budget) -> bool {
        let bucket = match budget {
            Budget::Authenticated => &self.authenticated,
            Budget::Open => &self.open,
        };
        let mut g = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(g.1).as_secs_f64() / self.interval.as_secs_f64();
        g.0 = (g.0 + refill).min(self.burst);
        g.1 = now;
        if g.0 >= 1.0 {
            g.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refills_and_keeps_a_budget_for_authenticated_requests() {
        let r = RateLimiter::new(Duration::from_millis(50), 2);
        assert!(r.allow(Budget::Open) && r.allow(Budget::Open));
        assert!(!r.allow(Budget::Open));
        // The open budget is spent; the authenticated one is whole.
        assert!(r.allow(Budget::Authenticated) && r.allow(Budget::Authenticated));
        assert!(!r.allow(Budget::Authenticated));
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.allow(Budget::Open) && r.allow(Budget::Authenticated));
    }
}
