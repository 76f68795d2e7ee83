//! Rate limits (GCRA): per user, per user × command, and per service × mutating operation.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use crate::core::error::UserError;
use crate::core::types::{CommandName, ServiceName, UserId, format_duration, parse_duration};

/// `N/period`: N calls per period, refilled smoothly (a burst of N, then one every period/N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RateSpec {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl RateSpec {
    /// Panics on zero count or period; for constants only.
    pub fn new(count: u32, per: Duration) -> Self {
        assert!(
            count > 0 && !per.is_zero(),
            "RateSpec::new needs a positive count and period"
        );
        Self {
            count: NonZeroU32::new(count).expect("checked above"),
            per,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("rate `{s}` must look like `10/1m` (count/period)"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("rate `{s}`: `{n}` is not a count"))?;
        let count = NonZeroU32::new(count)
            .ok_or_else(|| format!("rate `{s}`: count must be at least 1"))?;
        let per = parse_duration(per).map_err(|e| format!("rate `{s}`: {e}"))?;
        if per.is_zero() {
            return Err(format!("rate `{s}`: period must be positive"));
        }
        Ok(Self { count, per })
    }
}

impl TryFrom<String> for RateSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            format_duration(self.per).replace(' ', "")
        )
    }
}

/// Where the limits read the time: monotonic, and movable in tests.
pub trait Clock: Send + Sync {
    /// Time since some fixed origin.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock.
pub struct MonotonicClock(std::time::Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told, shared by its clones.
#[derive(Clone, Default)]
pub struct FakeClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl FakeClock {
    pub fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// One limit over many keys, by the generic cell rate algorithm: a key's "theoretical arrival
/// time" moves one emission interval (period / count) per allowed call; a call is allowed while
/// that time is no further ahead than the burst allows. Checking and counting are separate, so
/// a call refused by any limit counts against none.
struct Gcra<K> {
    interval: Duration,
    tolerance: Duration,
    tat: HashMap<K, Duration>,
}

impl<K: Hash + Eq + Clone> Gcra<K> {
    fn new(spec: &RateSpec) -> Self {
        let interval = (spec.per / spec.count.get()).max(Duration::from_nanos(1));
        Self {
            interval,
            tolerance: interval.saturating_mul(spec.count.get() - 1),
            tat: HashMap::new(),
        }
    }

    /// How long `key` must wait at `now`; zero when a call is allowed.
    fn wait(&self, key: &K, now: Duration) -> Duration {
        let tat = self.tat.get(key).copied().unwrap_or(now);
        tat.saturating_sub(self.tolerance).saturating_sub(now)
    }

    fn count(&mut self, key: K, now: Duration) {
        let tat = self.tat.get(&key).copied().unwrap_or(now).max(now);
        self.tat.insert(key, tat.saturating_add(self.interval));
        if self.tat.len() > 10_000 {
            // A key whose time has come is the same as a fresh one.
            self.tat.retain(|_, t| *t > now);
        }
    }
}

struct State {
    per_user: Gcra<UserId>,
    per_user_command: Gcra<(UserId, CommandName)>,
    per_command: HashMap<CommandName, Gcra<UserId>>,
    per_service_operation: Gcra<(ServiceName, &'static str)>,
}

/// All the limits of one bot process. Generic over the clock so tests can move time.
pub struct RateLimits<C: Clock = MonotonicClock> {
    clock: C,
    state: std::sync::Mutex<State>,
}

impl RateLimits<MonotonicClock> {
    pub fn new(
        per_user: &RateSpec,
        per_user_command: &RateSpec,
        per_service_operation: &RateSpec,
        overrides: impl IntoIterator<Item = (CommandName, RateSpec)>,
    ) -> Self {
        Self::with_clock(
            per_user,
            per_user_command,
            per_service_operation,
            overrides,
            MonotonicClock::default(),
        )
    }
}

impl<C: Clock> RateLimits<C> {
    pub fn with_clock(
        per_user: &RateSpec,
        per_user_command: &RateSpec,
        per_service_operation: &RateSpec,
        overrides: impl IntoIterator<Item = (CommandName, RateSpec)>,
        clock: C,
    ) -> Self {
        Self {
            state: std::sync::Mutex::new(State {
                per_user: Gcra::new(per_user),
                per_user_command: Gcra::new(per_user_command),
                per_command: overrides
                    .into_iter()
                    .map(|(c, s)| (c, Gcra::new(&s)))
                    .collect(),
                per_service_operation: Gcra::new(per_service_operation),
            }),
            clock,
        }
    }

    /// Checks one call against every limit it falls under and counts it only when all allow
    /// it: a refused call uses up nobody's budget. `mutations` are the (service, operation)
    /// pairs the call would change; they share one budget whoever asks, which is what stops
    /// restart storms.
    pub fn check(
        &self,
        user: &UserId,
        command: &CommandName,
        mutations: &[(ServiceName, &'static str)],
    ) -> Result<(), UserError> {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (service, op) in mutations {
            let wait = s.per_service_operation.wait(&(service.clone(), *op), now);
            if !wait.is_zero() {
                return Err(refusal(
                    format!("{op} of `{service}` was done too often recently, by anyone"),
                    wait,
                ));
            }
        }
        let user_command = (user.clone(), command.clone());
        let wait = match s.per_command.get(command) {
            Some(l) => l.wait(user, now),
            None => s.per_user_command.wait(&user_command, now),
        };
        if !wait.is_zero() {
            return Err(refusal(format!("your `/{command}` calls"), wait));
        }
        let wait = s.per_user.wait(user, now);
        if !wait.is_zero() {
            return Err(refusal("all your commands".to_owned(), wait));
        }
        for (service, op) in mutations {
            s.per_service_operation.count((service.clone(), *op), now);
        }
        match s.per_command.get_mut(command) {
            Some(l) => l.count(user.clone(), now),
            None => s.per_user_command.count(user_command, now),
        }
        s.per_user.count(user.clone(), now);
        Ok(())
    }
}

fn refusal(scope: String, wait: Duration) -> UserError {
    // Round up so "retry in 0s" never happens.
    let retry_after = Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
    UserError::RateLimited { scope, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn c(s: &str) -> CommandName {
        CommandName::parse(s).unwrap()
    }
    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }
    fn generous() -> RateSpec {
        RateSpec::new(1000, Duration::from_secs(60))
    }

    #[test]
    fn rate_specs_parse_and_refuse_nonsense() {
        assert_eq!(
            RateSpec::parse("3/10m").unwrap(),
            RateSpec::new(3, Duration::from_secs(600))
        );
        assert!(RateSpec::parse("3").is_err());
        assert!(RateSpec::parse("0/1m").is_err());
        assert!(RateSpec::parse("3/0s").is_err());
        assert!(RateSpec::parse("x/1m").is_err());
    }

    #[test]
    fn restart_storm_on_one_service_is_stopped_whoever_asks() {
        let clock = FakeClock::default();
        let l = RateLimits::with_clock(
            &generous(),
            &generous(),
            &RateSpec::new(3, Duration::from_secs(600)),
            [],
            clock.clone(),
        );
        let api = [(svc("api-1"), "restart")];
        assert!(l.check(&u("alice"), &c("restart"), &api).is_ok());
        assert!(l.check(&u("bob"), &c("restart"), &api).is_ok());
        assert!(l.check(&u("erin"), &c("restart"), &api).is_ok());
        let refused = l.check(&u("carol"), &c("restart"), &api).unwrap_err();
        match &refused {
            UserError::RateLimited { scope, retry_after } => {
                assert!(scope.contains("api-1"), "{scope}");
                // One cell refills every 200 s.
                assert_eq!(*retry_after, Duration::from_secs(200));
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
        // Another service is not affected by api-1's storm.
        assert!(
            l.check(&u("carol"), &c("restart"), &[(svc("api-2"), "restart")])
                .is_ok()
        );
        clock.advance(Duration::from_secs(200));
        assert!(l.check(&u("carol"), &c("restart"), &api).is_ok());
    }

    #[test]
    fn per_user_limit_applies_across_commands() {
        let clock = FakeClock::default();
        let l = RateLimits::with_clock(
            &RateSpec::new(2, Duration::from_secs(60)),
            &generous(),
            &generous(),
            [],
            clock,
        );
        assert!(l.check(&u("dave"), &c("status"), &[]).is_ok());
        assert!(l.check(&u("dave"), &c("logs"), &[]).is_ok());
        assert!(matches!(
            l.check(&u("dave"), &c("stats"), &[]),
            Err(UserError::RateLimited { .. })
        ));
        assert!(l.check(&u("alice"), &c("stats"), &[]).is_ok());
    }

    #[test]
    fn a_call_refused_by_one_limit_counts_against_none() {
        let clock = FakeClock::default();
        let l = RateLimits::with_clock(
            &generous(),
            &RateSpec::new(1, Duration::from_secs(600)),
            &RateSpec::new(3, Duration::from_secs(600)),
            [],
            clock,
        );
        let both = [(svc("api-1"), "restart"), (svc("api-2"), "restart")];
        assert!(l.check(&u("alice"), &c("restart"), &both).is_ok());
        // Alice is over her own /restart limit: refused, and the shared budget is untouched.
        for _ in 0..5 {
            let e = l.check(&u("alice"), &c("restart"), &both).unwrap_err();
            assert!(e.to_string().contains("your `/restart` calls"), "{e}");
        }
        assert!(l.check(&u("bob"), &c("restart"), &both).is_ok());
        assert!(l.check(&u("carol"), &c("restart"), &both).is_ok());
        // Three restarts of each in all: api-2 refuses the fourth, and api-1 is not spent by it.
        let e = l
            .check(&u("dave"), &c("restart"), &[(svc("api-1"), "restart")])
            .unwrap_err();
        assert!(e.to_string().contains("api-1"), "{e}");
        let l = RateLimits::with_clock(
            &generous(),
            &generous(),
            &RateSpec::new(1, Duration::from_secs(600)),
            [],
            FakeClock::default(),
        );
        assert!(
            l.check(&u("erin"), &c("restart"), &[(svc("api-2"), "restart")])
                .is_ok()
        );
        assert!(
            l.check(&u("erin"), &c("restart-app"), &both).is_err(),
            "api-2 is spent"
        );
        assert!(
            l.check(&u("erin"), &c("restart"), &[(svc("api-1"), "restart")])
                .is_ok(),
            "the refused group restart did not spend api-1"
        );
    }

    #[test]
    fn a_command_override_replaces_the_default_per_command_limit() {
        let clock = FakeClock::default();
        let l = RateLimits::with_clock(
            &generous(),
            &generous(),
            &generous(),
            [(c("disk"), RateSpec::new(1, Duration::from_secs(60)))],
            clock,
        );
        assert!(l.check(&u("dave"), &c("disk"), &[]).is_ok());
        let e = l.check(&u("dave"), &c("disk"), &[]).unwrap_err();
        assert!(e.markdown().contains("Try again in 1m"), "{}", e.markdown());
        assert!(l.check(&u("dave"), &c("status"), &[]).is_ok());
    }
}
