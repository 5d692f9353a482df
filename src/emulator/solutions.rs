//! Partner solutions: ListSolutions over [`State::solutions`].
//!
//! Rules enforced here:
//! - Seeded per account and catalog: the first ListSolutions or AssociateOpportunity (with
//!   `Solutions`) of an account in a catalog creates [`SEEDED`] solutions for it, so
//!   ListSolutions always returns at least one. Ten are `Active`, one `Inactive`, one `Draft`;
//!   categories cycle through [`CATEGORIES`]. Ids follow the model (`S-[0-9]{1,19}`) and are
//!   derived from the account and catalog (`S-<catalog digit><account><nn>`), so they are the
//!   same in every emulator and stable across state files. Seeding is a change of state (it is
//!   persisted).
//! - A solution belongs to its account: another account neither lists nor associates it.
//! - Filters: Status, Identifier, Category (exact); AwsMarketplaceSolutionArn matches nothing
//!   (no seeded solution is listed in AWS Marketplace). Sort by any `SolutionSortName` (default
//!   Identifier ascending). Pages with `MaxResults` (default 20) and `NextToken`.
//! - `Arn` is left out: the model's pattern for `SolutionArn` is the id pattern, and the member
//!   is optional.

use super::error::ApiError;
use super::ops::{descending, page, put_next, s, str_list, Ctx};
use super::state::*;
use serde_json::{json, Value};

/// Solutions seeded per account and catalog.
pub const SEEDED: usize = 12;

/// Categories of the seeded solutions (the console's solution categories).
pub const CATEGORIES: &[&str] = &[
    "Software Product",
    "Consulting Service",
    "Managed Service",
    "Hardware Product",
    "Communications Product",
    "Value-Added Resale AWS Service",
    "Training Service",
];

fn solution_id(account: &str, catalog: &str, n: usize) -> String {
    let digits: String = if account.bytes().all(|b| b.is_ascii_digit()) && !account.is_empty() {
        account.chars().take(15).collect()
    } else {
        let h = account
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        format!("{:012}", h % 1_000_000_000_000)
    };
    let c = if catalog == "AWS" { 1 } else { 2 };
    format!("S-{c}{digits}{n:02}")
}

/// Seed the caller's solutions in `catalog` unless they exist.
pub(super) fn ensure_seeded(state: &mut State, ctx: &Ctx<'_>, catalog: &str) {
    let first = solution_id(ctx.account, catalog, 1);
    if state.solutions.contains_key(&first) {
        return;
    }
    for n in 1..=SEEDED {
        let id = solution_id(ctx.account, catalog, n);
        let status = match n {
            11 => "Inactive",
            12 => "Draft",
            _ => "Active",
        };
        let category = CATEGORIES[(n - 1) % CATEGORIES.len()];
        state.solutions.insert(
            id.clone(),
            Solution {
                id,
                catalog: catalog.to_string(),
                owner: ctx.account.to_string(),
                name: format!("{} solution {n}", state.company_name(ctx.account)),
                status: status.into(),
                category: category.into(),
                created_at: ctx.now - (SEEDED - n + 1) as i64 * 86_400_000,
            },
        );
    }
    state.touch();
}

pub(super) fn list_solutions(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    ensure_seeded(state, ctx, &catalog);
    let statuses = str_list(body, "Status");
    let ids = str_list(body, "Identifier");
    let categories = str_list(body, "Category");
    let marketplace = str_list(body, "AwsMarketplaceSolutionArn").filter(|l| !l.is_empty());
    let in_list = |l: &Option<Vec<&str>>, v: &str| l.as_ref().is_none_or(|l| l.contains(&v));
    let mut found: Vec<&Solution> = state
        .solutions
        .values()
        .filter(|x| x.catalog == catalog && x.owner == ctx.account)
        .filter(|x| in_list(&statuses, &x.status))
        .filter(|x| in_list(&ids, &x.id))
        .filter(|x| in_list(&categories, &x.category))
        .filter(|_| marketplace.is_none())
        .collect();
    let by = body
        .get("Sort")
        .and_then(|s| s.get("SortBy"))
        .and_then(Value::as_str)
        .unwrap_or("Identifier");
    found.sort_by(|a, b| {
        let key = match by {
            "Name" => a.name.cmp(&b.name),
            "Status" => a.status.cmp(&b.status),
            "Category" => a.category.cmp(&b.category),
            "CreatedDate" => a.created_at.cmp(&b.created_at),
            _ => std::cmp::Ordering::Equal,
        };
        key.then(a.id.cmp(&b.id))
    });
    if descending(body) {
        found.reverse();
    }
    let (items, next) = page(body, found, 20)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|x| {
            json!({
                "Catalog": x.catalog, "Id": x.id, "Name": x.name, "Status": x.status,
                "Category": x.category, "CreatedDate": iso(x.created_at),
            })
        })
        .collect();
    let mut out = json!({ "SolutionSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}
