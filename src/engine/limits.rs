//! Client-side quotas: one adaptive pacer per quota class (and per operation where the user
//! sets an operation rate), and rolling 24-hour budgets.
//!
//! A run talks to one partner account, so one `Limits` is the per-account limiter set.
//! Rates start at the configured rate (documented quota unless overridden) and adapt when the
//! service throttles anyway: multiplicative decrease (halve, floor 1/16 of configured) on a
//! ThrottlingException, additive increase (+5% of configured per success) back up to, never
//! above, the configured rate.
//!
//! **Pacing.** Each pacer is one FIFO queue (a fair async mutex) with the time the next call
//! may leave. The caller at the head of the queue sleeps until that time, leaves, and sets the
//! next time one interval *at the rate in force then* after its slot (not after the moment its
//! timer fired, so a busy machine's late wake-ups do not add up; a late call is caught up, but
//! never to less than half an interval after it left). So calls leave evenly spaced
//! (a burst of one: a service-side token bucket never sees a burst), a rate change applies to
//! the very next call (no caller keeps an old schedule), and cancelling a waiting caller
//! (Ctrl-C) costs it its place and nothing else. This is the GCRA of `governor` with a burst
//! of one, written out because `governor` cannot change a limiter's quota in place: swapping
//! in a new limiter let the callers still queued on the old one through in a bunch.
//!
//! **Daily budgets** are reserved only once a call has its turn, just before it is sent, so a
//! call that is cancelled while it waits is never counted.

use crate::model::QuotaClass;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// Configured rates (requests per second) and daily budgets.
#[derive(Debug, Clone)]
pub struct RateConfig {
    pub class_rates: HashMap<QuotaClass, f64>,
    pub op_rates: HashMap<String, f64>,
    pub daily: HashMap<QuotaClass, u64>,
    /// The length of the rolling window of the `daily` budgets (24 h; shorter to rehearse).
    pub window: Duration,
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
            window: DAY,
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

    /// How much longer than the window a call is counted: the service stamps a call when it
    /// arrives, a little after cosell reserved it, so a slot is taken as free only this much
    /// later (1% of the window, between 50 ms and 5 s) and the call that fills it is never
    /// throttled.
    pub fn window_margin(&self) -> Duration {
        self.window
            .mul_f64(0.01)
            .clamp(Duration::from_millis(50), Duration::from_secs(5))
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

/// One adaptive pacer: a FIFO queue of callers and the time the next one may leave.
struct Adaptive {
    configured: f64,
    /// The rate in force (requests per second).
    rate: Mutex<f64>,
    /// Held by the caller whose turn is next; guards when the next call may leave.
    queue: tokio::sync::Mutex<Instant>,
}

impl Adaptive {
    fn new(rate: f64) -> Self {
        Adaptive {
            configured: rate,
            rate: Mutex::new(rate),
            queue: tokio::sync::Mutex::new(Instant::now()),
        }
    }
    fn rate(&self) -> f64 {
        *self.rate.lock().unwrap()
    }
    /// Wait for this caller's turn. Cancel-safe: dropping the future gives up the place.
    async fn until_ready(&self) {
        let mut next = self.queue.lock().await;
        // The next slot follows the theoretical time (GCRA's TAT), not the moment the timer
        // woke us: a late wake-up (a busy machine) must not push every later call back with
        // it. But never less than half an interval after this call really left, so catching
        // up is never a burst.
        let slot = (*next).max(Instant::now());
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
        let left = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / self.rate().max(1e-6));
        *next = (slot + interval).max(left + interval / 2);
    }
    fn decrease(&self) {
        let mut r = self.rate.lock().unwrap();
        *r = (*r / 2.0).max(self.configured / 16.0);
    }
    fn increase(&self) {
        let mut r = self.rate.lock().unwrap();
        if *r < self.configured {
            *r = (*r + self.configured * 0.05).min(self.configured);
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

    /// Wait for the turn of one call of `op` in the rate limiters (the operation's own, if
    /// set, then its class's), then reserve it in its class's daily budget. Cancel-safe:
    /// a caller dropped while it waits has reserved nothing.
    pub async fn acquire(&self, op: &str) -> Result<(), DailyExhausted> {
        let class = QuotaClass::of(op);
        if let Some(a) = self.ops.get(op) {
            a.until_ready().await;
        }
        self.classes[&class].until_ready().await;
        self.reserve_daily(class, SystemTime::now())
    }

    fn reserve_daily(&self, class: QuotaClass, now: SystemTime) -> Result<(), DailyExhausted> {
        let Some(d) = self.daily.get(&class) else {
            return Ok(());
        };
        let mut d = d.lock().unwrap();
        let counted = self.config.window + self.config.window_margin();
        let horizon = now.checked_sub(counted).unwrap_or(SystemTime::UNIX_EPOCH);
        while d.calls.front().is_some_and(|t| *t <= horizon) {
            d.calls.pop_front();
        }
        if d.calls.len() as u64 >= d.limit {
            let oldest = d.calls.front().copied().unwrap_or(now);
            return Err(DailyExhausted {
                class,
                limit: d.limit,
                resume_at: oldest + counted,
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
    use std::sync::Arc;
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

    #[tokio::test]
    async fn a_slowdown_applies_to_callers_already_queued_with_no_bunching() {
        // 40 callers queue at once at 100/s; after the 5th call the service throttles. Every
        // later departure must keep the new, wider spacing: none may leave in a bunch on an
        // old schedule.
        let mut cfg = RateConfig::default();
        cfg.set("write", 100.0);
        let limits = Arc::new(Limits::new(cfg));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..40 {
            let (l, tx) = (limits.clone(), tx.clone());
            tokio::spawn(async move {
                l.acquire("CreateEngagementInvitation").await.unwrap();
                let _ = tx.send(Instant::now());
            });
        }
        drop(tx);
        let mut times = Vec::new();
        while let Some(t) = rx.recv().await {
            times.push(t);
            if times.len() == 5 {
                limits.throttled("CreateEngagementInvitation"); // 100/s -> 50/s
            }
        }
        assert_eq!(times.len(), 40);
        times.sort();
        // From the 7th departure on (one call may already hold the old slot) the calls leave
        // at the new rate, 20 ms apart on average, and no two closer than half of that (a late
        // timer on a busy machine is caught up, never in a bunch).
        let after = &times[6..];
        for w in after.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(9),
                "gap {gap:?} after a slowdown"
            );
        }
        let mean = (after[after.len() - 1] - after[0]) / (after.len() as u32 - 1);
        assert!(mean >= Duration::from_millis(19), "mean gap {mean:?}");
    }

    #[tokio::test]
    async fn a_cancelled_caller_reserves_nothing_in_the_daily_budget() {
        let mut cfg = RateConfig::default();
        cfg.set("write", 1.0);
        cfg.daily.insert(QuotaClass::Write, 2);
        let limits = Limits::new(cfg);
        limits.acquire("CreateEngagementInvitation").await.unwrap();
        // the next turn is a second away: give up after 50 ms
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("CreateEngagementInvitation"),
        )
        .await;
        assert!(waited.is_err());
        // one call of the budget is left: the cancelled caller took none
        limits
            .reserve_daily(QuotaClass::Write, SystemTime::now())
            .unwrap();
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
        // a day (and the margin for the service's later stamp) after the first call
        let margin = limits.config().window_margin();
        assert_eq!(margin, Duration::from_secs(5));
        assert_eq!(err.resume_at, t0 + DAY + margin);
        assert!(limits
            .reserve_daily(QuotaClass::Write, t0 + DAY + Duration::from_secs(1))
            .is_err());
        // then the first call has left the window
        limits
            .reserve_daily(
                QuotaClass::Write,
                t0 + DAY + margin + Duration::from_secs(1),
            )
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
