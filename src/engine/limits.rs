//! Client-side quotas: one adaptive rate limiter per quota class (and per operation where the
//! user sets an operation rate), and rolling 24-hour budgets.
//!
//! A run talks to one partner account, so one `Limits` is the per-account limiter set.
//! Rates start at the configured rate (documented quota unless overridden) and adapt when the
//! service throttles anyway: multiplicative decrease (halve, floor 1/16 of configured) on a
//! ThrottlingException, additive increase (+5% of configured per success) back up to, never
//! above, the configured rate. Pacing uses `governor` with a burst of one, so calls leave
//! evenly spaced and a service-side token bucket never sees a burst.

use crate::model::QuotaClass;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// Configured rates (requests per second) and daily budgets.
#[derive(Debug, Clone)]
pub struct RateConfig {
    pub class_rates: HashMap<QuotaClass, f64>,
    pub op_rates: HashMap<String, f64>,
    pub daily: HashMap<QuotaClass, u64>,
}

impl Default for RateConfig {
    /// The documented quotas.
    fn default() -> Self {
        let mut class_rates = HashMap::new();
        let mut daily = HashMap::new();
        for c in QuotaClass::ALL {
            let spec = c.documented();
            class_rates.insert(c, spec.rate);
            if let Some(d) = spec.daily {
                daily.insert(c, d);
            }
        }
        RateConfig {
            class_rates,
            op_rates: HashMap::new(),
            daily,
        }
    }
}

impl RateConfig {
    /// Apply `NAME=RATE` where NAME is a quota class or an operation and RATE is `N/s`, `N/m`
    /// or `N/h` (as `--rate` and `limits.rates` give them).
    pub fn set(&mut self, name: &str, per_second: f64) {
        match QuotaClass::parse(name) {
            Some(c) => {
                self.class_rates.insert(c, per_second);
            }
            None => {
                self.op_rates.insert(name.to_string(), per_second);
            }
        }
    }

    pub fn class_rate(&self, c: QuotaClass) -> f64 {
        self.class_rates
            .get(&c)
            .copied()
            .unwrap_or_else(|| c.documented().rate)
    }
}

/// A rolling 24-hour budget was used up.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyExhausted {
    pub class: QuotaClass,
    pub limit: u64,
    /// When the oldest call in the window leaves it, so one more call fits.
    pub resume_at: SystemTime,
}

struct Adaptive {
    configured: f64,
    state: Mutex<(f64, Arc<DefaultDirectRateLimiter>)>,
}

fn limiter_for(rate: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("period is positive")
        .allow_burst(std::num::NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

impl Adaptive {
    fn new(rate: f64) -> Self {
        Adaptive {
            configured: rate,
            state: Mutex::new((rate, limiter_for(rate))),
        }
    }
    fn current(&self) -> Arc<DefaultDirectRateLimiter> {
        self.state.lock().unwrap().1.clone()
    }
    fn rate(&self) -> f64 {
        self.state.lock().unwrap().0
    }
    fn decrease(&self) {
        let mut st = self.state.lock().unwrap();
        let new = (st.0 / 2.0).max(self.configured / 16.0);
        if new < st.0 {
            *st = (new, limiter_for(new));
        }
    }
    fn increase(&self) {
        let mut st = self.state.lock().unwrap();
        if st.0 < self.configured {
            let new = (st.0 + self.configured * 0.05).min(self.configured);
            *st = (new, limiter_for(new));
        }
    }
}

struct Daily {
    limit: u64,
    calls: VecDeque<SystemTime>,
}

/// The limiter set of one run (one partner account).
pub struct Limits {
    config: RateConfig,
    classes: HashMap<QuotaClass, Adaptive>,
    ops: HashMap<String, Adaptive>,
    daily: HashMap<QuotaClass, Mutex<Daily>>,
}

impl Limits {
    pub fn new(config: RateConfig) -> Self {
        let classes = QuotaClass::ALL
            .into_iter()
            .map(|c| (c, Adaptive::new(config.class_rate(c))))
            .collect();
        let ops = config
            .op_rates
            .iter()
            .map(|(op, r)| (op.clone(), Adaptive::new(*r)))
            .collect();
        let daily = config
            .daily
            .iter()
            .map(|(c, limit)| {
                (
                    *c,
                    Mutex::new(Daily {
                        limit: *limit,
                        calls: VecDeque::new(),
                    }),
                )
            })
            .collect();
        Limits {
            config,
            classes,
            ops,
            daily,
        }
    }

    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// Count calls made before this process (from the journal) against the daily budgets.
    pub fn seed_daily(&self, class: QuotaClass, at: SystemTime) {
        if let Some(d) = self.daily.get(&class) {
            let mut d = d.lock().unwrap();
            d.calls.push_back(at);
        }
    }

    /// Reserve one call of `op` in its daily budget, then wait for its turn in the rate
    /// limiters (the operation's own, if set, and its class's).
    pub async fn acquire(&self, op: &str) -> Result<(), DailyExhausted> {
        let class = QuotaClass::of(op);
        self.reserve_daily(class, SystemTime::now())?;
        if let Some(a) = self.ops.get(op) {
            a.current().until_ready().await;
        }
        self.classes[&class].current().until_ready().await;
        Ok(())
    }

    fn reserve_daily(&self, class: QuotaClass, now: SystemTime) -> Result<(), DailyExhausted> {
        let Some(d) = self.daily.get(&class) else {
            return Ok(());
        };
        let mut d = d.lock().unwrap();
        let horizon = now.checked_sub(DAY).unwrap_or(SystemTime::UNIX_EPOCH);
        while d.calls.front().is_some_and(|t| *t <= horizon) {
            d.calls.pop_front();
        }
        if d.calls.len() as u64 >= d.limit {
            let oldest = d.calls.front().copied().unwrap_or(now);
            return Err(DailyExhausted {
                class,
                limit: d.limit,
                resume_at: oldest + DAY,
            });
        }
        d.calls.push_back(now);
        Ok(())
    }

    /// The service throttled a call of `op`: slow its class (and operation) down.
    pub fn throttled(&self, op: &str) {
        self.classes[&QuotaClass::of(op)].decrease();
        if let Some(a) = self.ops.get(op) {
            a.decrease();
        }
    }

    /// A call of `op` went through: recover towards the configured rate.
    pub fn succeeded(&self, op: &str) {
        self.classes[&QuotaClass::of(op)].increase();
        if let Some(a) = self.ops.get(op) {
            a.increase();
        }
    }

    /// The rate a class runs at now (after adaptation).
    pub fn current_rate(&self, class: QuotaClass) -> f64 {
        self.classes[&class].rate()
    }
}

/// Exponential backoff with full jitter: a uniformly random delay in
/// `[0, min(cap, base * 2^attempt))`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let upper = exp.min(cap);
    upper.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn calls_are_paced_at_the_configured_rate_without_burst() {
        let mut cfg = RateConfig::default();
        cfg.set("write", 50.0);
        let limits = Limits::new(cfg);
        let t0 = Instant::now();
        for _ in 0..11 {
            limits.acquire("CreateEngagementInvitation").await.unwrap();
        }
        // 11 calls at 50/s with burst 1: the first is immediate, ten more need 200 ms.
        let el = t0.elapsed();
        assert!(el >= Duration::from_millis(190), "{el:?}");
        assert!(el < Duration::from_millis(600), "{el:?}");
    }

    #[test]
    fn throttling_halves_and_successes_recover_but_never_exceed_configured() {
        let limits = Limits::new(RateConfig::default());
        assert_eq!(limits.current_rate(QuotaClass::Write), 1.0);
        limits.throttled("CreateEngagementInvitation");
        assert_eq!(limits.current_rate(QuotaClass::Write), 0.5);
        for _ in 0..100 {
            limits.succeeded("StartEngagementByAcceptingInvitationTask");
        }
        assert_eq!(limits.current_rate(QuotaClass::Write), 1.0);
        for _ in 0..10 {
            limits.throttled("CreateEngagementInvitation");
        }
        assert_eq!(limits.current_rate(QuotaClass::Write), 1.0 / 16.0);
    }

    #[test]
    fn daily_budget_is_rolling_and_says_when_to_resume() {
        let mut cfg = RateConfig::default();
        cfg.daily.insert(QuotaClass::Write, 2);
        let limits = Limits::new(cfg);
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        limits.seed_daily(QuotaClass::Write, t0);
        let now = SystemTime::now();
        limits.reserve_daily(QuotaClass::Write, now).unwrap();
        let err = limits.reserve_daily(QuotaClass::Write, now).unwrap_err();
        assert_eq!(err.resume_at, t0 + DAY);
        // a day later the first call has left the window
        limits
            .reserve_daily(QuotaClass::Write, t0 + DAY + Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn backoff_has_full_jitter_under_the_cap() {
        for attempt in 0..20 {
            let d = backoff(attempt, Duration::from_millis(100), Duration::from_secs(5));
            assert!(d < Duration::from_secs(5));
            assert!(d < Duration::from_millis(100) * (1 << attempt.min(16)));
        }
    }
}
