//! Quotas (token buckets and rolling 24-hour budgets per account and quota class) and the
//! seeded fault generator.
//!
//! The rolling budget counts requests per millisecond of the emulator's life over the last
//! window (24 h unless `--quota-window`): a request made at `t` counts until `t + window`,
//! exactly. `--daily CLASS=N` sets a class's budget outright (not scaled by `--quotas`), and
//! applies even with `--quotas none` (which lifts the rates).

use super::config::{Fault, Faults, Quotas};
use crate::model::QuotaClass;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Requests per millisecond-of-emulator-life over the last window.
    window: VecDeque<(u64, u32)>,
    window_total: u64,
}

/// The quota enforcer.
pub struct Limiter {
    quotas: Quotas,
    /// `--daily CLASS=N`: budgets that replace the (scaled) documented ones.
    daily: HashMap<QuotaClass, u64>,
    /// The rolling window, in milliseconds.
    window_ms: u64,
    epoch: Instant,
    buckets: Mutex<HashMap<(String, QuotaClass), Bucket>>,
}

impl Limiter {
    #[cfg(test)]
    pub fn new(quotas: Quotas) -> Self {
        Limiter::with_budgets(
            quotas,
            HashMap::new(),
            std::time::Duration::from_secs(86_400),
        )
    }

    /// With `--daily` budgets and a `--quota-window`.
    pub fn with_budgets(
        quotas: Quotas,
        daily: HashMap<QuotaClass, u64>,
        window: std::time::Duration,
    ) -> Self {
        Limiter {
            quotas,
            daily,
            window_ms: (window.as_millis() as u64).max(1),
            epoch: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Charge one request of `op` to `account`; `Err(message)` when it is over quota.
    pub fn charge(&self, account: &str, op: &str) -> Result<(), String> {
        let class = QuotaClass::of(op);
        let factor = self.quotas.factor();
        let fixed = self.daily.get(&class).copied();
        if factor.is_none() && fixed.is_none() {
            return Ok(());
        }
        let spec = class.documented();
        // `--quotas none` with a `--daily` budget: the budget only
        let rate = factor.map(|f| spec.rate * f).unwrap_or(f64::INFINITY);
        let capacity = if rate.is_finite() { rate.max(2.0) } else { 0.0 };
        let daily = fixed.or_else(|| {
            let f = factor?;
            spec.daily.map(|d| ((d as f64) * f).floor() as u64)
        });
        let now = Instant::now();
        let sec = now.duration_since(self.epoch).as_millis() as u64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry((account.to_string(), class))
            .or_insert_with(|| Bucket {
                tokens: capacity,
                last: now,
                window: VecDeque::new(),
                window_total: 0,
            });
        if rate.is_finite() {
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(capacity);
        }
        b.last = now;
        while let Some(&(s, n)) = b.window.front() {
            if s + self.window_ms > sec {
                break;
            }
            b.window.pop_front();
            b.window_total -= n as u64;
        }
        if let Some(d) = daily {
            if b.window_total >= d {
                return Err(format!(
                    "Rate exceeded: the rolling {} quota of {d} {class} requests for account {account} is used up",
                    window_name(self.window_ms)
                ));
            }
        }
        if rate.is_finite() && b.tokens < 1.0 {
            return Err(format!(
                "Rate exceeded: {op} is limited to {rate} requests per second ({class} quota) for account {account}"
            ));
        }
        if rate.is_finite() {
            b.tokens -= 1.0;
        }
        match b.window.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            _ => b.window.push_back((sec, 1)),
        }
        b.window_total += 1;
        Ok(())
    }
}

fn window_name(ms: u64) -> String {
    if ms == 86_400_000 {
        "24-hour".into()
    } else {
        format!("{} ms", ms)
    }
}

/// One seeded generator, drawn exactly once per API request.
pub struct FaultGen {
    faults: Faults,
    rng: Mutex<StdRng>,
    task_rng: Mutex<StdRng>,
}

/// Keeps the task-failure draws independent of the per-request draws under one --seed.
const TASK_FAULT_SALT: u64 = 0x7a5c_fa11;

impl FaultGen {
    pub fn new(faults: Faults, seed: u64) -> Self {
        FaultGen {
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            task_rng: Mutex::new(StdRng::seed_from_u64(seed ^ TASK_FAULT_SALT)),
        }
    }

    /// For a task about to be created: the retryable `ReasonCode` it will fail with
    /// (`InternalError` or `RequestThrottled`), or `None` when it runs normally. Draws from its
    /// own generator, so the per-request fault sequence under a seed does not depend on it.
    pub fn draw_task_failure(&self) -> Option<&'static str> {
        if self.faults.task_failure <= 0.0 {
            return None;
        }
        let mut rng = self.task_rng.lock().unwrap_or_else(|p| p.into_inner());
        let u: f64 = rng.random();
        if u >= self.faults.task_failure {
            return None;
        }
        Some(if rng.random_bool(0.5) {
            "InternalError"
        } else {
            "RequestThrottled"
        })
    }

    pub fn draw(&self) -> Fault {
        if !self.faults.any_per_request() {
            return Fault::None;
        }
        let u: f64 = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random();
        self.faults.pick(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_max_of_rate_and_two_then_throttled() {
        let l = Limiter::new(Quotas::Aws);
        // write class: 1/s, burst 2
        assert!(l.charge("a", "CreateOpportunity").is_ok());
        assert!(l.charge("a", "CreateOpportunity").is_ok());
        assert!(l.charge("a", "CreateOpportunity").is_err());
        // another account has its own bucket, reads their own class
        assert!(l.charge("b", "CreateOpportunity").is_ok());
        for _ in 0..10 {
            assert!(l.charge("a", "GetOpportunity").is_ok());
        }
        assert!(l.charge("a", "GetOpportunity").is_err());
        assert!(Limiter::new(Quotas::None)
            .charge("a", "GetOpportunity")
            .is_ok());
    }

    #[test]
    fn daily_budget_is_scaled() {
        // x0.0005: write daily 5, rate 0.0005/s, burst 2
        let l = Limiter::new(Quotas::Scaled(0.0005));
        assert!(l.charge("a", "CreateOpportunity").is_ok());
        assert!(l.charge("a", "CreateOpportunity").is_ok());
        let e = l.charge("a", "CreateOpportunity").unwrap_err();
        assert!(e.contains("per second"), "{e}");
        let l = Limiter::new(Quotas::Scaled(0.0002)); // daily 2
        let mut ok = 0;
        for _ in 0..3 {
            if l.charge("a", "CreateOpportunity").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 2);
    }

    #[test]
    fn faults_are_deterministic_under_a_seed() {
        let f = Faults::parse("throttle=0.3,reset=0.3").unwrap();
        let a: Vec<Fault> = {
            let g = FaultGen::new(f, 42);
            (0..50).map(|_| g.draw()).collect()
        };
        let b: Vec<Fault> = {
            let g = FaultGen::new(f, 42);
            (0..50).map(|_| g.draw()).collect()
        };
        assert_eq!(a, b);
        assert!(a.contains(&Fault::ResetBefore) && a.contains(&Fault::ResetAfter));
    }

    #[test]
    fn task_failures_are_seeded_and_do_not_shift_request_faults() {
        let plain = Faults::parse("throttle=0.3,reset=0.3").unwrap();
        let with = Faults::parse("throttle=0.3,reset=0.3,task_failure=0.5").unwrap();
        let g1 = FaultGen::new(plain, 9);
        let g2 = FaultGen::new(with, 9);
        let mut reasons = Vec::new();
        for _ in 0..40 {
            assert_eq!(g1.draw(), g2.draw());
            reasons.push(g2.draw_task_failure());
        }
        let again = FaultGen::new(with, 9);
        let replay: Vec<_> = (0..40).map(|_| again.draw_task_failure()).collect();
        assert_eq!(reasons, replay);
        assert!(reasons.contains(&None));
        assert!(reasons.contains(&Some("InternalError")));
        assert!(reasons.contains(&Some("RequestThrottled")));
        assert_eq!(g1.draw_task_failure(), None);
        let always = FaultGen::new(Faults::parse("task_failure=1").unwrap(), 0);
        assert!((0..20).all(|_| always.draw_task_failure().is_some()));
    }
}
