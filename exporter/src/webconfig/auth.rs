//! Basic authentication of the web configuration file's `basic_auth_users`: bcrypt hashes
//! checked with the `bcrypt` crate (constant-time comparison), off the connection loop.
//!
//! Invariants: a successful (user, password) check is remembered, as a keyed SHA-256 digest
//! (never the password), for the cache lifetime after its last use, and answered before and
//! without the queue of pending checks; failures are never remembered; pending checks are
//! bounded in all ([`BCRYPT_MAX_PENDING`]) and per client address
//! ([`BCRYPT_MAX_PENDING_PER_CLIENT`]); an unknown user costs a bcrypt check too.

use super::{bad, Problem};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a successful (user, password) verification is remembered after its last use (the
/// default of `web.basic_auth_cache_ttl`). Longer than the usual scrape intervals (15 s to
/// 2 min), so a scraper pays bcrypt once, not per scrape; each use renews it.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many remembered verifications; the oldest is dropped first.
pub const AUTH_CACHE_ENTRIES: usize = 64;
/// bcrypt verifications running at once (each takes one core for its duration).
pub const BCRYPT_CONCURRENCY: usize = 1;
/// bcrypt verifications running or waiting; beyond, a request that needs one is answered 429 at
/// once, so a flood of wrong passwords cannot hold every connection slot in a queue.
pub const BCRYPT_MAX_PENDING: usize = 8;
/// Of those, at most this many for one client address (an IPv4 address, or the /64 of an IPv6
/// one), so one address cannot take every slot from a scraper whose check is not cached yet.
pub const BCRYPT_MAX_PENDING_PER_CLIENT: usize = 2;
/// The realm in `WWW-Authenticate`.
pub const REALM: &str = "joulebook";

/// Users and their bcrypt hashes, with the cache of recent successful verifications.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// Verified for unknown users, so an unknown user takes as long as a wrong password.
    dummy: OnceLock<Option<String>>,
    dummy_cost: u32,
    /// Keyed digest of (user, password, hash) → when it was last used.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    cache_key: [u8; 32],
    /// How long a remembered success lasts after its last use.
    cache_ttl: Duration,
    verifying: Arc<tokio::sync::Semaphore>,
    /// Verifications running or waiting, per client (see [`client_key`]); at most
    /// [`BCRYPT_MAX_PENDING`] keys.
    pending: Mutex<HashMap<IpAddr, usize>>,
}

/// The address a client is counted under: an IPv4 address (IPv4-mapped IPv6 included), or the
/// /64 network of an IPv6 address (one host usually holds a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A reserved place among the pending verifications, given back when dropped.
struct Pending {
    auth: Arc<BasicAuth>,
    client: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut p = self.auth.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = p.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.client);
            }
        }
    }
}

/// The outcome of a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// Unknown user or wrong password.
    Denied,
    /// Too many verifications already running or waiting: try again later.
    Busy,
}

impl BasicAuth {
    pub(super) fn new(
        users: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<BasicAuth, Problem> {
        let mut map = HashMap::new();
        let mut max_cost = 4;
        for (user, hash) in users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return bad(
                    &key,
                    "a user name cannot contain ':' (basic auth splits on it)",
                );
            }
            let cost = check_hash(hash).map_err(|m| Problem::Key(key.clone(), m))?;
            if cost > 14 {
                warnings.push(format!(
                    "{key}: bcrypt cost {cost} takes seconds per check; every wrong password \
                     costs that much CPU (10 is the usual cost)"
                ));
            }
            max_cost = max_cost.max(cost);
            map.insert(user.clone(), hash.clone());
        }
        Ok(BasicAuth {
            users: map,
            dummy: OnceLock::new(),
            dummy_cost: max_cost,
            cache: Mutex::new(HashMap::new()),
            cache_key: random_key(),
            cache_ttl: AUTH_CACHE_TTL,
            verifying: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Builds the checker for tests and benchmarks, from (user, bcrypt hash) pairs, remembering
    /// successes for [`AUTH_CACHE_TTL`].
    pub fn from_users(users: &[(&str, &str)]) -> Result<BasicAuth, String> {
        BasicAuth::with_cache_ttl(users, AUTH_CACHE_TTL)
    }

    /// Like [`BasicAuth::from_users`], remembering successes for `cache_ttl` after their last
    /// use.
    pub fn with_cache_ttl(
        users: &[(&str, &str)],
        cache_ttl: Duration,
    ) -> Result<BasicAuth, String> {
        let m: BTreeMap<String, String> = users
            .iter()
            .map(|(u, h)| (u.to_string(), h.to_string()))
            .collect();
        let mut auth = BasicAuth::new(&m, &mut Vec::new()).map_err(|p| match p {
            Problem::Key(k, m) => format!("{k}: {m}"),
            Problem::Syntax(m) => m,
        })?;
        auth.cache_ttl = cache_ttl;
        Ok(auth)
    }

    /// How long a remembered success lasts after its last use.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    pub(super) fn set_cache_ttl(&mut self, ttl: Duration) {
        self.cache_ttl = ttl;
    }

    /// The same users, with `ttl` and an empty cache.
    pub(super) fn with_new_cache(&self, ttl: Duration) -> BasicAuth {
        BasicAuth {
            users: self.users.clone(),
            dummy: OnceLock::new(),
            dummy_cost: self.dummy_cost,
            cache: Mutex::new(HashMap::new()),
            cache_key: random_key(),
            cache_ttl: ttl,
            verifying: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Number of configured users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn digest(&self, user: &str, password: &[u8], hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// Whether `d` is a remembered success; using it renews it, so a scraper in use is never
    /// sent back to the queue.
    fn cached(&self, d: &[u8; 32]) -> bool {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match c.get_mut(d) {
            Some(t) if t.elapsed() < self.cache_ttl => {
                *t = Instant::now();
                true
            }
            Some(_) => {
                c.remove(d);
                false
            }
            None => false,
        }
    }

    fn remember(&self, d: [u8; 32]) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.cache_ttl;
        c.retain(|_, t| t.elapsed() < ttl);
        if c.len() >= AUTH_CACHE_ENTRIES {
            if let Some(oldest) = c.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                c.remove(&oldest);
            }
        }
        c.insert(d, Instant::now());
    }

    /// Number of remembered verifications (tests).
    pub fn cache_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Verifications running or waiting (tests).
    pub fn pending_len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A place among the pending verifications for `client`, or `None` when all places, or all
    /// of that client's, are taken.
    fn reserve(self: &Arc<Self>, client: IpAddr) -> Option<Pending> {
        let client = client_key(client);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = p.values().sum();
        let mine = p.get(&client).copied().unwrap_or(0);
        if total >= BCRYPT_MAX_PENDING || mine >= BCRYPT_MAX_PENDING_PER_CLIENT {
            return None;
        }
        p.insert(client, mine + 1);
        Some(Pending {
            auth: self.clone(),
            client,
        })
    }

    /// Checks an `Authorization` header value sent from `client`. A remembered success is
    /// answered at once; otherwise bcrypt runs on the blocking pool, if `client` may queue one.
    pub async fn check(
        self: &Arc<Self>,
        authorization: Option<&[u8]>,
        client: IpAddr,
    ) -> AuthOutcome {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return AuthOutcome::Missing;
        };
        let hash = self.users.get(&user).cloned();
        if let Some(h) = &hash {
            if self.cached(&self.digest(&user, &password, h)) {
                return AuthOutcome::Allowed;
            }
        }
        let Some(pending) = self.reserve(client) else {
            return AuthOutcome::Busy;
        };
        // The slot and the pending count move into the blocking task: they are given back when
        // bcrypt is done, even if the client went away meanwhile.
        let Ok(slot) = self.verifying.clone().acquire_owned().await else {
            return AuthOutcome::Denied;
        };
        let me = self.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _pending = pending;
            match &hash {
                Some(h) => {
                    let ok = bcrypt::verify(&password, h).unwrap_or(false);
                    if ok {
                        me.remember(me.digest(&user, &password, h));
                    }
                    ok
                }
                None => {
                    // Unknown user: spend the same time on a hash of the highest configured cost.
                    if let Some(d) = me
                        .dummy
                        .get_or_init(|| bcrypt::hash("joulebook", me.dummy_cost).ok())
                    {
                        let _ = bcrypt::verify(&password, d);
                    }
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        if verdict {
            AuthOutcome::Allowed
        } else {
            AuthOutcome::Denied
        }
    }
}

/// `Basic base64(user:password)` → (user, password). The scheme is case-insensitive.
pub fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

/// Checks a bcrypt hash's form without running bcrypt; returns its cost. Never echoes the hash.
pub fn check_hash(hash: &str) -> Result<u32, String> {
    use base64::Engine;
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
        "not a bcrypt hash ($2a$, $2b$ or $2y$, cost, 53 characters of salt and hash); make one \
         with htpasswd -nBC 10 \"\" | tr -d ':\\n'"
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4..31"));
    }
    // bcrypt's own base64 alphabet, decoded as the bcrypt crate does, so a hash accepted here
    // never fails at request time (which would deny everyone).
    let engine = base64::alphabet::Alphabet::new(
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
    .map(|a| base64::engine::GeneralPurpose::new(&a, base64::engine::general_purpose::NO_PAD))
    .map_err(|e| format!("bcrypt alphabet: {e}"))?;
    match engine.decode(parts.get_salt()) {
        Ok(s) if s.len() == 16 => {}
        _ => return Err("the bcrypt hash's salt does not decode".into()),
    }
    let digest = hash.get(hash.len().saturating_sub(31)..).unwrap_or("");
    match engine.decode(digest) {
        Ok(d) if d.len() == 23 => Ok(cost),
        _ => Err("the bcrypt hash's digest does not decode".into()),
    }
}

/// 32 bytes from the kernel's random source, or from std's randomly seeded hasher if that fails.
fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut key = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .is_ok()
    {
        return key;
    }
    use std::hash::{BuildHasher, Hasher};
    for chunk in key.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6a6f756c65626f6f);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn hashes() {
        assert_eq!(check_hash(&bcrypt::hash("x", 5).unwrap()), Ok(5));
        assert!(check_hash("$2y$10$short").is_err());
        assert!(check_hash("").is_err());
    }
    #[test]
    fn basic_header() {
        use base64::Engine;
        let enc = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        assert_eq!(
            parse_basic(format!("basic {enc}").as_bytes()),
            Some(("alice".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }
    #[test]
    fn auth_caches_successes_only() {
        use base64::Engine;
        let h = bcrypt::hash("right", 4).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(auth.check(None, LOCAL).await, AuthOutcome::Missing);
            let wrong = header("alice", "wrong");
            assert_eq!(
                auth.check(Some(wrong.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            assert_eq!(auth.cache_len(), 0);
            let bob = header("bob", "right");
            assert_eq!(
                auth.check(Some(bob.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            let right = header("alice", "right");
            assert_eq!(
                auth.check(Some(right.as_bytes()), LOCAL).await,
                AuthOutcome::Allowed
            );
            assert_eq!(auth.cache_len(), 1);
            assert_eq!(
                auth.check(Some(right.as_bytes()), LOCAL).await,
                AuthOutcome::Allowed
            );
            assert_eq!(
                auth.check(Some(wrong.as_bytes()), LOCAL).await,
                AuthOutcome::Denied
            );
            assert_eq!(auth.cache_len(), 1);
        });
    }
    #[test]
    fn a_flood_of_wrong_passwords_is_answered_busy_not_queued() {
        let h = bcrypt::hash("right", 8).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let wrong = basic("alice", "wrong");
        // Twelve addresses, three requests each: more than all the places.
        let outcomes = runtime().block_on(async {
            let tasks: Vec<_> = (0..36u8)
                .map(|i| {
                    let auth = auth.clone();
                    let wrong = wrong.clone();
                    let client = IpAddr::from([10, 0, 0, i % 12]);
                    tokio::spawn(async move { auth.check(Some(wrong.as_bytes()), client).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let busy = outcomes.iter().filter(|o| **o == AuthOutcome::Busy).count();
        let denied = outcomes
            .iter()
            .filter(|o| **o == AuthOutcome::Denied)
            .count();
        assert!(
            busy > 0 && denied > 0 && denied <= BCRYPT_MAX_PENDING,
            "{outcomes:?}"
        );
        assert_eq!(busy + denied, outcomes.len());
        assert_eq!(auth.pending_len(), 0);
    }
    #[test]
    fn one_address_cannot_take_every_pending_place() {
        let h = bcrypt::hash("right", 4).unwrap();
        let auth = Arc::new(BasicAuth::from_users(&[("alice", &h)]).unwrap());
        let flooder = IpAddr::from([10, 0, 0, 1]);
        let held: Vec<_> = (0..BCRYPT_MAX_PENDING_PER_CLIENT)
            .map(|_| auth.reserve(flooder).expect("a place"))
            .collect();
        assert!(auth.reserve(flooder).is_none(), "its share is taken");
        let rt = runtime();
        let flood = basic("alice", "wrong");
        assert_eq!(
            rt.block_on(auth.check(Some(flood.as_bytes()), flooder)),
            AuthOutcome::Busy
        );
        // Another address is checked (and remembered) meanwhile.
        let right = basic("alice", "right");
        let scraper = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(
            rt.block_on(auth.check(Some(right.as_bytes()), scraper)),
            AuthOutcome::Allowed
        );
        // IPv6: one /64 is one client; IPv4-mapped addresses count as IPv4.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), flooder);
        drop(held);
        assert_eq!(auth.pending_len(), 0);
        assert!(auth.reserve(flooder).is_some());
    }
    /// A remembered success is renewed by each use and answered before the queue: with every
    /// pending place taken, a scraper using it every quarter of the lifetime is let in for three
    /// lifetimes; left unused for a lifetime, it is forgotten.
    #[test]
    fn a_success_in_use_is_renewed_and_answered_before_the_queue() {
        let h = bcrypt::hash("right", 4).unwrap();
        let ttl = Duration::from_millis(600);
        let auth = Arc::new(BasicAuth::with_cache_ttl(&[("alice", &h)], ttl).unwrap());
        assert_eq!(auth.cache_ttl(), ttl);
        let rt = runtime();
        let right = basic("alice", "right");
        let check = |client: IpAddr| rt.block_on(auth.check(Some(right.as_bytes()), client));
        assert_eq!(check(LOCAL), AuthOutcome::Allowed);
        let held: Vec<_> = (0..BCRYPT_MAX_PENDING as u8)
            .filter_map(|i| auth.reserve(IpAddr::from([10, 0, 1, i])))
            .collect();
        assert_eq!(held.len(), BCRYPT_MAX_PENDING);
        let wrong = basic("alice", "wrong");
        assert_eq!(
            rt.block_on(auth.check(Some(wrong.as_bytes()), LOCAL)),
            AuthOutcome::Busy,
            "the queue is full"
        );
        let start = Instant::now();
        while start.elapsed() < 3 * ttl {
            assert_eq!(
                check(LOCAL),
                AuthOutcome::Allowed,
                "at {:?}",
                start.elapsed()
            );
            std::thread::sleep(ttl / 4);
        }
        std::thread::sleep(ttl + ttl / 3);
        assert_eq!(
            check(LOCAL),
            AuthOutcome::Busy,
            "expired: needs the queue again"
        );
        assert_eq!(auth.cache_len(), 0);
    }
}
