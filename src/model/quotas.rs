//! The documented request quotas of Partner Central Selling (`../shared/reference/quotas.md`).
//!
//! Quotas are per partner account. Operations the page lists belong to their class; an
//! unlisted mutating operation counts as `write`, an unlisted read (`Get…`, `List…`) as `read`.

use std::fmt;

/// A quota class: operations that share one rate and one rolling 24-hour budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaClass {
    Read,
    Write,
    EngagementWrite,
    ProspectingGet,
    ProspectingList,
    ProspectingWrite,
}

/// The documented limits of a class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSpec {
    /// Requests per second.
    pub rate: f64,
    /// Requests per rolling 24 hours, where documented.
    pub daily: Option<u64>,
}

impl QuotaClass {
    pub const ALL: [QuotaClass; 6] = [
        QuotaClass::Read,
        QuotaClass::Write,
        QuotaClass::EngagementWrite,
        QuotaClass::ProspectingGet,
        QuotaClass::ProspectingList,
        QuotaClass::ProspectingWrite,
    ];

    /// The class an operation is charged to: its row of the operation table
    /// ([`super::ops`]); a name outside the model follows the unlisted rule.
    pub fn of(operation: &str) -> QuotaClass {
        match super::ops::operation(operation) {
            Some(row) => row.quota,
            None if operation.starts_with("Get") || operation.starts_with("List") => {
                QuotaClass::Read
            }
            None => QuotaClass::Write,
        }
    }

    /// The documented rate and daily budget.
    pub fn documented(self) -> QuotaSpec {
        let (rate, daily) = match self {
            QuotaClass::Read => (10.0, Some(100_000)),
            QuotaClass::Write => (1.0, Some(10_000)),
            QuotaClass::EngagementWrite => (15.0, None),
            QuotaClass::ProspectingGet => (100.0, None),
            QuotaClass::ProspectingList => (50.0, None),
            QuotaClass::ProspectingWrite => (2.0, None),
        };
        QuotaSpec { rate, daily }
    }

    pub fn name(self) -> &'static str {
        match self {
            QuotaClass::Read => "read",
            QuotaClass::Write => "write",
            QuotaClass::EngagementWrite => "engagement-write",
            QuotaClass::ProspectingGet => "prospecting-get",
            QuotaClass::ProspectingList => "prospecting-list",
            QuotaClass::ProspectingWrite => "prospecting-write",
        }
    }

    pub fn parse(name: &str) -> Option<QuotaClass> {
        QuotaClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for QuotaClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_documented_table_and_the_unlisted_rule() {
        assert_eq!(QuotaClass::of("GetEngagementInvitation"), QuotaClass::Read);
        assert_eq!(
            QuotaClass::of("StartEngagementByAcceptingInvitationTask"),
            QuotaClass::Write
        );
        assert_eq!(
            QuotaClass::of("CreateEngagement"),
            QuotaClass::EngagementWrite
        );
        // unlisted
        assert_eq!(
            QuotaClass::of("CreateEngagementInvitation"),
            QuotaClass::Write
        );
        assert_eq!(
            QuotaClass::of("ListEngagementByAcceptingInvitationTasks"),
            QuotaClass::Read
        );
        assert_eq!(QuotaClass::of("GetEngagement"), QuotaClass::Read);
        assert_eq!(QuotaClass::Write.documented().daily, Some(10_000));
        assert_eq!(
            QuotaClass::parse("engagement-write"),
            Some(QuotaClass::EngagementWrite)
        );
    }
}
