//! Limits on password checks, so that sign-in can be neither flooded nor guessed at speed.
//!
//! - **Few at a time.** An Argon2id check takes about 19 MiB and tens of milliseconds of CPU. At most
//!   [`SignInGuard::CONCURRENT_CHECKS`] run at once and [`SignInGuard::QUEUE`] more wait; beyond that a
//!   sign-in is answered 503 with `Retry-After` at once instead of being held (and its memory taken).
//! - **Failures slow down.** Each failed check counts against the account and against the client's
//!   address. After [`SignInGuard::FREE_FAILURES`] failures in a row, each further attempt must wait
//!   twice as long as the last (1 s, 2 s, 4 s, … up to [`SignInGuard::MAX_DELAY`]); an attempt that comes
//!   too early is answered 429 with `Retry-After`, and is not checked at all, so even the right password
//!   waits. A success resets the account and the address.
//!
//! The counts live in this process: several servers behind one balancer each keep their own, which
//! multiplies an attacker's rate by the number of servers and no more.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{ApiError, Code};

/// Who a failure counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Client(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No check before this.
    blocked_until: Instant,
    last: Instant,
}

/// The gate every password check passes.
#[derive(Debug)]
pub(crate) struct SignInGuard {
    checks: Semaphore,
    waiting: AtomicUsize,
    failures: Mutex<HashMap<Subject, Failures>>,
}

impl Default for SignInGuard {
    fn default() -> Self {
        SignInGuard {
            checks: Semaphore::new(Self::CONCURRENT_CHECKS),
            waiting: AtomicUsize::new(0),
            failures: Mutex::default(),
        }
    }
}

/// Why a password is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many failures lately: wait this long.
    TooSoon { secs: u64 },
    /// Too many checks running and waiting.
    Busy,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::TooSoon { secs } => ApiError {
                retry_after_secs: Some(secs),
                ..ApiError::with_code(
                    Code::RateLimited,
                    format!("too many failed sign-ins for this account or address; try again in {secs} s"),
                )
            },
            Refusal::Busy => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::unavailable("too many sign-ins at once; try again in a moment")
            },
        }
    }
}

/// A place among the checks running now; dropped when the check ends.
pub(crate) struct CheckSlot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl SignInGuard {
    pub(crate) const CONCURRENT_CHECKS: usize = 2;
    pub(crate) const QUEUE: usize = 16;
    pub(crate) const FREE_FAILURES: u32 = 3;
    pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
    /// Failures older than this are forgotten.
    const MEMORY: Duration = Duration::from_secs(60 * 60);
    /// Subjects remembered at most; when full, the forgotten go, and if none had, the oldest half.
    const CAPACITY: usize = 100_000;

    /// Refuses, with 429 and how long to wait, an attempt for `account` from `client` that comes too early.
    pub(crate) fn admit(&self, account: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = subjects(account, client)
            .filter_map(|s| failures.get(&s))
            .map(|f| f.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            return Ok(());
        }
        Err(Refusal::TooSoon { secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) })
    }

    /// Waits for a place among the running checks, or refuses with 503 when too many wait already.
    pub(crate) async fn slot(&self) -> Result<CheckSlot<'_>, Refusal> {
        if let Ok(permit) = self.checks.try_acquire() {
            return Ok(CheckSlot { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= Self::QUEUE {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::Busy);
        }
        let permit = self.checks.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Ok(CheckSlot { _permit: permit.expect("the semaphore is never closed") })
    }

    pub(crate) fn failed(&self, account: &str, client: Option<IpAddr>, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= Self::CAPACITY {
            failures.retain(|_, f| now.saturating_duration_since(f.last) < Self::MEMORY);
            if failures.len() >= Self::CAPACITY {
                let mut ages: Vec<Instant> = failures.values().map(|f| f.last).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                failures.retain(|_, f| f.last > cut);
            }
        }
        for subject in subjects(account, client) {
            let entry = failures.entry(subject).or_insert(Failures { count: 0, blocked_until: now, last: now });
            if now.saturating_duration_since(entry.last) >= Self::MEMORY {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
            entry.blocked_until = now + delay_after(entry.count);
        }
    }

    pub(crate) fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for subject in subjects(account, client) {
            failures.remove(&subject);
        }
    }
}

fn subjects(account: &str, client: Option<IpAddr>) -> impl Iterator<Item = Subject> {
    // Account names compare as the store compares them; an unknown name counts like a known one, so
    // that the answers do not tell which names exist.
    std::iter::once(Subject::Account(account.to_owned())).chain(client.map(Subject::Client))
}

/// How long to wait after `count` failures in a row.
fn delay_after(count: u32) -> Duration {
    match count.checked_sub(SignInGuard::FREE_FAILURES) {
        None | Some(0) => Duration::ZERO,
        Some(n) => Duration::from_secs(1u64 << (n - 1).min(20)).min(SignInGuard::MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)));
    const AWAY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));

    #[test]
    fn delays_double_after_the_free_failures() {
        let delays: Vec<u64> = (1..=8).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16]);
        assert_eq!(delay_after(40), SignInGuard::MAX_DELAY);
        assert_eq!(delay_after(u32::MAX), SignInGuard::MAX_DELAY);
    }

    #[test]
    fn failures_block_the_account_and_the_address_until_their_time() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            guard.admit("alice", HOME, t0).unwrap();
            guard.failed("alice", HOME, t0);
        }
        guard.admit("alice", HOME, t0).unwrap();
        guard.failed("alice", HOME, t0);
        // The fourth failure asks for a second's wait, for the account from anywhere and for the address.
        let refused = ApiError::from(guard.admit("alice", AWAY, t0).unwrap_err());
        assert_eq!((refused.code, refused.retry_after_secs), (Code::RateLimited, Some(1)));
        assert!(guard.admit("bob", HOME, t0).is_err(), "the address is slowed too");
        guard.admit("bob", AWAY, t0).unwrap();
        guard.admit("alice", HOME, t0 + Duration::from_millis(1001)).unwrap();
        guard.failed("alice", HOME, t0 + Duration::from_secs(2));
        assert_eq!(guard.admit("alice", HOME, t0 + Duration::from_secs(3)), Err(Refusal::TooSoon { secs: 1 }));
        // A success clears both.
        guard.succeeded("alice", HOME);
        guard.admit("alice", HOME, t0 + Duration::from_secs(2)).unwrap();
        guard.admit("bob", HOME, t0 + Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn old_failures_are_forgotten() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for _ in 0..6 {
            guard.failed("alice", None, t0);
        }
        let later = t0 + SignInGuard::MEMORY + Duration::from_secs(1);
        guard.admit("alice", None, later).unwrap();
        guard.failed("alice", None, later);
        guard.admit("alice", None, later).unwrap();
    }

    #[tokio::test]
    async fn beyond_the_queue_checks_are_refused_at_once() {
        let guard = std::sync::Arc::new(SignInGuard::default());
        let running: Vec<_> =
            (0..SignInGuard::CONCURRENT_CHECKS).map(|_| guard.checks.try_acquire().unwrap()).collect();
        let mut waiters = Vec::new();
        for _ in 0..SignInGuard::QUEUE {
            let guard = guard.clone();
            waiters.push(tokio::spawn(async move { guard.slot().await.is_ok() }));
        }
        while guard.waiting.load(Ordering::SeqCst) < SignInGuard::QUEUE {
            tokio::task::yield_now().await;
        }
        let refused = ApiError::from(guard.slot().await.err().expect("the queue is full"));
        assert_eq!((refused.code, refused.retry_after_secs), (Code::Unavailable, Some(1)));
        drop(running);
        for waiter in waiters {
            assert!(waiter.await.unwrap(), "a queued check gets its turn");
        }
    }
}
