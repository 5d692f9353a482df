//! Emulator configuration: durations, the quota mode and the fault mix, parsed from the CLI
//! flags with errors that name the flag, the rule and an example of a good value.

use std::fmt;
use std::time::Duration;

/// How the emulator enforces the documented request quotas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quotas {
    /// The documented rates and rolling 24-hour budgets (`crate::model::QuotaClass`).
    Aws,
    /// No quotas at all.
    None,
    /// N × the documented rates and N × the daily budgets (N may be fractional).
    Scaled(f64),
}

impl Quotas {
    /// Parse `aws`, `none` or `xN`.
    pub fn parse(s: &str) -> Result<Quotas, String> {
        let t = s.trim();
        match t {
            "aws" => return Ok(Quotas::Aws),
            "none" => return Ok(Quotas::None),
            _ => {}
        }
        if let Some(n) = t.strip_prefix('x') {
            if let Ok(f) = n.parse::<f64>() {
                if f.is_finite() && f > 0.0 {
                    return Ok(Quotas::Scaled(f));
                }
            }
        }
        Err(format!(
            "--quotas {s:?}: expected `aws` (documented quotas), `none`, or `xN` with N > 0 \
             (N × the documented rates and daily budgets), e.g. `x10` or `x0.5`"
        ))
    }

    /// The factor applied to the documented rate and daily budget; `None` when unlimited.
    pub fn factor(self) -> Option<f64> {
        match self {
            Quotas::Aws => Some(1.0),
            Quotas::None => None,
            Quotas::Scaled(f) => Some(f),
        }
    }
}

impl fmt::Display for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quotas::Aws => f.write_str("aws"),
            Quotas::None => f.write_str("none"),
            Quotas::Scaled(n) => write!(f, "x{n}"),
        }
    }
}

/// Injected faults: each API request draws once from the seeded generator and gets at most
/// one fault. The probabilities are cumulative slices of [0, 1), in the order throttle,
/// internal, reset, latency, and sum to at most 1.
///
/// `task_failure` is separate: each Start…Task that creates a task draws once from its own
/// seeded generator (so it never shifts the per-request fault sequence), and a task that
/// draws it ends `FAILED` with a retryable `ReasonCode` instead of completing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Probability of an injected `ThrottlingException` (no effect on state).
    pub throttle: f64,
    /// Probability of an injected `InternalServerException` (no effect on state).
    pub internal: f64,
    /// Probability of a dropped connection: the first half of this slice drops the request
    /// before it has any effect, the second half after the effect (the response is lost).
    pub reset: f64,
    /// Extra delay before an otherwise normal request, and its probability.
    pub latency: Option<(Duration, f64)>,
    /// Probability that a task which would complete ends `FAILED` instead, with `ReasonCode`
    /// `InternalError` or `RequestThrottled` and no effect on its invitation or opportunity
    /// (a redrive with a new ClientToken starts a new task that may succeed).
    pub task_failure: f64,
}

impl Faults {
    /// Parse `throttle=0.05,internal=0.02,reset=0.01,latency=300ms@0.05,task_failure=0.1` (any
    /// subset; empty = no faults). `task_failure` is not part of the per-request sum.
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        let err = |item: &str, why: &str| {
            format!(
                "--faults {s:?}: {item:?} {why}; expected a comma-separated list such as \
                 `throttle=0.05,internal=0.02,reset=0.01,latency=300ms@0.05,task_failure=0.1` \
                 (probabilities in [0, 1]; all but task_failure sum to at most 1)"
            )
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(err(item, "is not KIND=VALUE"));
            };
            let prob = |v: &str| -> Result<f64, String> {
                match v.trim().parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(err(item, "needs a probability between 0 and 1")),
                }
            };
            match k.trim() {
                "throttle" => f.throttle = prob(v)?,
                "internal" => f.internal = prob(v)?,
                "reset" => f.reset = prob(v)?,
                "task_failure" => f.task_failure = prob(v)?,
                "latency" => {
                    let Some((d, p)) = v.split_once('@') else {
                        return Err(err(item, "needs DURATION@PROBABILITY, e.g. 300ms@0.05"));
                    };
                    let d = parse_duration(d).map_err(|e| err(item, &e))?;
                    f.latency = Some((d, prob(p)?));
                }
                other => {
                    return Err(err(
                        item,
                        &format!(
                            "names an unknown fault {other:?} (known: throttle, internal, reset, latency, task_failure)"
                        ),
                    ))
                }
            }
        }
        if f.total() > 1.0 + 1e-9 {
            return Err(err(s, "has probabilities that sum to more than 1"));
        }
        Ok(f)
    }

    /// The per-request slices (everything but `task_failure`).
    fn total(&self) -> f64 {
        self.throttle + self.internal + self.reset + self.latency.map_or(0.0, |(_, p)| p)
    }

    /// Whether a per-request fault can happen.
    pub fn any_per_request(&self) -> bool {
        self.total() > 0.0
    }

    /// Whether any fault can happen (per request or per task).
    pub fn any(&self) -> bool {
        self.total() > 0.0 || self.task_failure > 0.0
    }

    /// The fault for a uniform draw `u` in [0, 1).
    pub fn pick(&self, u: f64) -> Fault {
        let mut edge = self.throttle;
        if u < edge {
            return Fault::Throttle;
        }
        edge += self.internal;
        if u < edge {
            return Fault::Internal;
        }
        let reset_start = edge;
        edge += self.reset;
        if u < edge {
            return if u < reset_start + self.reset / 2.0 {
                Fault::ResetBefore
            } else {
                Fault::ResetAfter
            };
        }
        if let Some((d, p)) = self.latency {
            if u < edge + p {
                return Fault::Latency(d);
            }
        }
        Fault::None
    }
}

/// The fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Throttle,
    Internal,
    /// Drop the connection before the request has any effect.
    ResetBefore,
    /// Apply the request, then drop the connection instead of answering.
    ResetAfter,
    Latency(Duration),
}

/// Parse `15d`, `2h`, `10m`, `30s`, `500ms` (a decimal number and one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 15d, 2h, 10m, 30s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(format!(
                "{s:?} has no known unit; use ms, s, m, h or d (e.g. 15d, 2h, 30s, 500ms)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("15d").unwrap(),
            Duration::from_secs(15 * 86400)
        );
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn quotas() {
        assert_eq!(Quotas::parse("aws").unwrap(), Quotas::Aws);
        assert_eq!(Quotas::parse("none").unwrap(), Quotas::None);
        assert_eq!(Quotas::parse("x0.5").unwrap(), Quotas::Scaled(0.5));
        assert!(Quotas::parse("x0").is_err());
        assert!(Quotas::parse("fast").unwrap_err().contains("xN"));
    }

    #[test]
    fn faults_parse_and_pick() {
        let f = Faults::parse("throttle=0.1,internal=0.1,reset=0.2,latency=300ms@0.1").unwrap();
        assert_eq!(f.pick(0.05), Fault::Throttle);
        assert_eq!(f.pick(0.15), Fault::Internal);
        assert_eq!(f.pick(0.25), Fault::ResetBefore);
        assert_eq!(f.pick(0.35), Fault::ResetAfter);
        assert_eq!(f.pick(0.45), Fault::Latency(Duration::from_millis(300)));
        assert_eq!(f.pick(0.55), Fault::None);
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        assert!(Faults::parse("throttle=2").is_err());
        assert!(Faults::parse("boom=0.1")
            .unwrap_err()
            .contains("unknown fault"));
        assert!(Faults::parse("throttle=0.6,internal=0.6")
            .unwrap_err()
            .contains("more than 1"));
        assert!(Faults::parse("latency=0.1").is_err());
        // task_failure is drawn per task, outside the per-request sum
        let t = Faults::parse("throttle=1,task_failure=0.5").unwrap();
        assert_eq!(t.task_failure, 0.5);
        assert!(t.any() && Faults::parse("task_failure=1").unwrap().any());
        assert!(!Faults::parse("task_failure=1").unwrap().any_per_request());
        assert!(Faults::parse("task_failure=1.5").is_err());
    }
}
