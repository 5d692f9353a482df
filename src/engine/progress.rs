//! Live progress: indicatif bars on a terminal, a plain line every few seconds otherwise.
//!
//! Shows rows done and failed, calls per second per quota class against its limit, throttles,
//! and an ETA from the quota bound (remaining rows × calls per row ÷ the class rate).

use super::limits::Limits;
use crate::journal::RowStatus;
use crate::model::QuotaClass;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_plain: Instant,
    total: u64,
    done: u64,
    failed: u64,
    throttles: u64,
    recent: BTreeMap<QuotaClass, VecDeque<Instant>>,
    per_row: BTreeMap<QuotaClass, f64>,
    rates: BTreeMap<QuotaClass, f64>,
}

impl Progress {
    /// `per_row` = calls per row in each class; `rates` = configured rate per class.
    pub fn new(
        total: u64,
        per_row: BTreeMap<QuotaClass, f64>,
        rates: BTreeMap<QuotaClass, f64>,
        enabled: bool,
    ) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows {msg}",
                )
                .expect("static template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            plain: enabled && !tty,
            last_plain: Instant::now(),
            total,
            done: 0,
            failed: 0,
            throttles: 0,
            recent: BTreeMap::new(),
            per_row,
            rates,
        }
    }

    pub fn call(&mut self, class: QuotaClass) {
        self.recent
            .entry(class)
            .or_default()
            .push_back(Instant::now());
    }

    pub fn row_finished(&mut self, status: RowStatus) {
        self.done += 1;
        if status == RowStatus::Failed {
            self.failed += 1;
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
    }

    pub fn row_already_done(&mut self) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
    }

    pub fn throttled(&mut self, n: u64) {
        self.throttles += n;
    }

    pub fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn line(&mut self, limits: &Limits) -> String {
        let now = Instant::now();
        let mut parts = Vec::new();
        for (class, q) in self.recent.iter_mut() {
            while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                q.pop_front();
            }
            let rate = q.len() as f64 / WINDOW.as_secs_f64();
            parts.push(format!(
                "{class} {rate:.1}/{:.1}/s",
                limits.current_rate(*class)
            ));
        }
        let remaining = self.total.saturating_sub(self.done) as f64;
        let eta = self
            .per_row
            .iter()
            .map(|(c, n)| remaining * n / self.rates.get(c).copied().unwrap_or(1.0))
            .fold(0.0, f64::max);
        format!(
            "failed {} · {} · throttled {} · ETA {}",
            self.failed,
            parts.join(", "),
            self.throttles,
            fmt_duration(Duration::from_secs_f64(eta))
        )
    }

    pub fn tick(&mut self, limits: &Limits) {
        if self.bar.is_some() {
            let l = self.line(limits);
            self.bar.as_ref().unwrap().set_message(l);
        } else if self.plain && self.last_plain.elapsed() >= Duration::from_secs(5) {
            self.last_plain = Instant::now();
            let l = self.line(limits);
            eprintln!("progress: {}/{} rows · {l}", self.done, self.total);
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// `1h02m03s`, `4m05s`, `12.3s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else {
        format!("{m}m{sec:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(fmt_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(fmt_duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
