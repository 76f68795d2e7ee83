//! Rate limits (governor): per user, per user × command, and per service × mutating operation.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
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

    fn quota(&self) -> Quota {
        // Replenish one cell every per/count, with a burst of count: `count` calls fit in a window.
        let cell = self.per / self.count.get();
        Quota::with_period(cell.max(Duration::from_nanos(1)))
            .expect("period is positive")
            .allow_burst(self.count)
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

type Keyed<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

fn keyed<K: Hash + Eq + Clone, C: Clock + Clone>(spec: &RateSpec, clock: &C) -> Keyed<K, C> {
    RateLimiter::new(
        spec.quota(),
        DefaultKeyedStateStore::default(),
        clock.clone(),
    )
}

/// All the limiters of one bot process. Generic over the clock so tests can move time.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    clock: C,
    per_user: Keyed<UserId, C>,
    per_user_command: Keyed<(UserId, CommandName), C>,
    per_command: HashMap<CommandName, Keyed<UserId, C>>,
    per_service_operation: Keyed<(ServiceName, &'static str), C>,
}

impl RateLimits<DefaultClock> {
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
            DefaultClock::default(),
        )
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(
        per_user: &RateSpec,
        per_user_command: &RateSpec,
        per_service_operation: &RateSpec,
        overrides: impl IntoIterator<Item = (CommandName, RateSpec)>,
        clock: C,
    ) -> Self {
        Self {
            per_user: keyed(per_user, &clock),
            per_user_command: keyed(per_user_command, &clock),
            per_command: overrides
                .into_iter()
                .map(|(c, s)| (c, keyed(&s, &clock)))
                .collect(),
            per_service_operation: keyed(per_service_operation, &clock),
            clock,
        }
    }

    /// Checks (and counts) one call. `mutations` are the (service, operation) pairs the call
    /// would change; they share one budget whoever asks, which is what stops restart storms.
    /// The narrowest limits are checked first so a refusal costs as little budget as possible.
    pub fn check(
        &self,
        user: &UserId,
        command: &CommandName,
        mutations: &[(ServiceName, &'static str)],
    ) -> Result<(), UserError> {
        for (service, op) in mutations {
            self.per_service_operation
                .check_key(&(service.clone(), *op))
                .map_err(|n| {
                    self.refusal(
                        format!("{op} of `{service}` was done too often recently, by anyone"),
                        n,
                    )
                })?;
        }
        match self.per_command.get(command) {
            Some(l) => l.check_key(user),
            None => self
                .per_user_command
                .check_key(&(user.clone(), command.clone())),
        }
        .map_err(|n| self.refusal(format!("your `/{command}` calls"), n))?;
        self.per_user
            .check_key(user)
            .map_err(|n| self.refusal("all your commands".to_owned(), n))?;
        Ok(())
    }

    fn refusal(&self, scope: String, n: governor::NotUntil<C::Instant>) -> UserError {
        let wait = n.wait_time_from(self.clock.now());
        // Round up so "retry in 0s" never happens.
        let retry_after = Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        UserError::RateLimited { scope, retry_after }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

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
        let clock = FakeRelativeClock::default();
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
        let clock = FakeRelativeClock::default();
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
    fn a_command_override_replaces_the_default_per_command_limit() {
        let clock = FakeRelativeClock::default();
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
